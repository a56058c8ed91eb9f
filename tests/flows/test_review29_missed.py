"""Review 29: periods passed over while an earlier one was still being charged («missed»:
`Autopay.advance` / `autopaying._passed_over`), and the unlinking that settles runs of autopays
still leased by a live scheduler (`autopay_runs.settle_runs_of`, `leased_too`).

The real bot (SQLite, or PostgreSQL where transactions race) over the real sandbox city; the
city's outage is its `create_payment` raising CityUnavailable; the clock is the harness's."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import select

from bot.jobs import deliver_notifications, reconcile_autopay_runs
from bot.ratelimit import MemoryLimiter
from domain.autopay import Autopay, AutopayKind, AutopayStatus, Frequency, Schedule
from domain.autopaying import set_status, set_up
from domain.autopaying import tick as autopay_tick
from domain.errors import CityUnavailable
from domain.linking import unlink
from storage.autopays import LEASE
from storage.models import AutopayRunRow, NotificationRow
from tests.flows.conftest import Harness

MSK = timezone(timedelta(hours=3))
USER = 100001
CARD_OK, CARD_DECLINED = "pm-full-4242", "pm-full-0002"
HOSTILE_FUND = "Фонд <b>«Дом»</b> & Co ² 1e5 \u200b\u202eмир"


async def _donation(
    harness: Harness, schedule: Schedule, *, method: str = CARD_OK, fund_name: str = "Фонд"
) -> int:
    assert harness.app is not None
    async with harness.app.uow_factory() as uow:
        stored = await set_up(
            uow,
            Autopay(
                USER,
                AutopayKind.FIXED,
                schedule,
                method,
                harness.clock(),
                amount=15_000,
                fund_id="F-101",
                fund_name=fund_name,
            ),
            harness.clock(),
        )
    assert stored.id is not None
    return stored.id


async def _tick(harness: Harness, at: datetime) -> list[str]:
    assert harness.app is not None
    harness.clock.now = at
    outcomes: list[str] = []
    await autopay_tick(harness.app.uow_factory, harness.app.city, harness.clock, outcomes)
    return outcomes


async def _outage(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, moments: Iterable[datetime]
) -> None:
    """The city answers no charge; the scheduler ticks at each of `moments`."""
    assert harness.app is not None

    async def down(*args: Any, **kwargs: Any) -> Any:
        raise CityUnavailable("review 29: no answer")

    with monkeypatch.context() as patch:
        patch.setattr(harness.app.city, "create_payment", down)
        for moment in moments:
            await _tick(harness, moment)


def _every(first: datetime, last: datetime, step: timedelta) -> list[datetime]:
    moments = []
    while first <= last:
        moments.append(first)
        first += step
    return [*moments, last] if moments[-1] != last else moments


async def _runs(harness: Harness, autopay_id: int) -> dict[str, tuple[str, str | None]]:
    assert harness.app is not None
    async with harness.app.uow_factory() as uow:
        return {
            run.period: (run.status.value, run.failure)
            for run in await uow.autopays.runs(autopay_id)
        }


async def _charged_keys(harness: Harness, autopay_id: int) -> list[str]:
    charges = (await harness.sandbox_call("GET", "/sandbox/ledger"))["charges"]
    return sorted(
        c["idempotence_key"]
        for c in charges
        if c["idempotence_key"].startswith(f"ap-{autopay_id}-")
    )


async def _deliver(harness: Harness) -> None:
    """The outbox, a few seconds of it: one message a second to a chat."""
    assert harness.app is not None
    for _ in range(4):
        await deliver_notifications(harness.app, harness.clock, MemoryLimiter())
        harness.clock.advance(2)


async def _notices(harness: Harness, kind: str) -> list[tuple[int, dict[str, Any]]]:
    assert harness.app is not None
    async with harness.app.engine.connect() as connection:
        rows = await connection.execute(
            select(NotificationRow.telegram_user_id, NotificationRow.data).where(
                NotificationRow.kind == kind
            )
        )
        return [(user, data) for user, data in rows.all()]


# --- defects ---------------------------------------------------------------------------------


# Was (review 29): a late charge landing on the next period's day before 10:00 records that period
# «missed» (never charged, told «сервис не отвечал») though its moment had not come
async def test_a_period_not_yet_due_is_not_recorded_missed(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A weekly donation on Wednesdays. The city does not answer the 25 November charge for a
    week; the back-off (at most an hour) brings it round again on Wednesday 2 December at
    09:xx, and the city answers: W48 is charged. The W49 charge is due at 10:00 that very day
    — it has not come due, nothing was missed — yet `advance` starts from the back-off's date
    (not W48's), jumps to 9 December, and `_passed_over` records W49 SKIPPED «missed» for good
    and tells the resident it was not charged because the service did not answer. Had the
    scheduler itself been down instead (no back-off), the same morning charges W48 and then
    W49 at 10:00 (see the test below): the outcome depends on which of the two was down."""
    assert harness.app is not None
    await harness.link(harness.chat(USER))
    harness.clock.now = datetime(2026, 11, 24, 12, 0, tzinfo=MSK)  # Tuesday
    autopay_id = await _donation(harness, Schedule(Frequency.WEEKLY, 2))
    await _outage(
        harness,
        monkeypatch,
        _every(
            datetime(2026, 11, 25, 10, 0, 5, tzinfo=MSK),
            datetime(2026, 12, 2, 8, 0, tzinfo=MSK),
            timedelta(hours=12),
        ),
    )
    await _tick(harness, datetime(2026, 12, 2, 9, 30, tzinfo=MSK))  # the city answers again
    await _tick(harness, datetime(2026, 12, 2, 10, 0, 5, tzinfo=MSK))  # W49's own moment

    runs = await _runs(harness, autopay_id)
    assert runs["2026-W48"][0] == "succeeded", runs
    assert runs.get("2026-W49", ("none", None))[0] == "succeeded", runs  # now: skipped, missed
    assert await _notices(harness, "autopay_missed") == []


async def test_the_scheduler_down_until_the_next_mornings_charges_both(
    harness: Harness,
) -> None:
    """The control of the defect above: the scheduler (not the city) was down from 25 November
    to 2 December 09:30 — W48 is charged late, and W49 at its own moment, nothing «missed»."""
    assert harness.app is not None
    await harness.link(harness.chat(USER))
    harness.clock.now = datetime(2026, 11, 24, 12, 0, tzinfo=MSK)
    autopay_id = await _donation(harness, Schedule(Frequency.WEEKLY, 2))
    await _tick(harness, datetime(2026, 12, 2, 9, 30, tzinfo=MSK))
    await _tick(harness, datetime(2026, 12, 2, 10, 0, 5, tzinfo=MSK))
    runs = await _runs(harness, autopay_id)
    assert runs == {"2026-W48": ("succeeded", None), "2026-W49": ("succeeded", None)}, runs
    assert await _notices(harness, "autopay_missed") == []


# --- what holds ------------------------------------------------------------------------------


@pytest.mark.markup_in_values
async def test_the_31st_across_february_is_missed_once_and_told_safely(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Monthly on the 31st, a fund whose name is hostile HTML. The city is down from the
    31 January charge until 1 March: January is charged late, 28 February (February's date,
    clamped) recorded «missed» — once, told once, with the next charge on 31 March — and
    nothing is ever charged for February: not by a later tick, not by the stranded-run
    reconciliation; the 31 March charge goes as usual. The text is valid HTML and names the
    fund as it is."""
    assert harness.app is not None
    app = harness.app
    chat = harness.chat(USER)
    await harness.link(chat)
    harness.clock.now = datetime(2027, 1, 30, 12, 0, tzinfo=MSK)
    autopay_id = await _donation(harness, Schedule(Frequency.MONTHLY, 31), fund_name=HOSTILE_FUND)
    await _outage(
        harness,
        monkeypatch,
        _every(
            datetime(2027, 1, 31, 10, 0, 5, tzinfo=MSK),
            datetime(2027, 3, 1, 8, 0, tzinfo=MSK),
            timedelta(days=1),
        ),
    )
    await _tick(harness, datetime(2027, 3, 1, 12, 0, tzinfo=MSK))
    await _tick(harness, datetime(2027, 3, 1, 12, 30, tzinfo=MSK))  # a repeated tick
    runs = await _runs(harness, autopay_id)
    assert runs == {"2027-01": ("succeeded", None), "2027-02": ("skipped", "missed")}, runs
    [(user, data)] = await _notices(harness, "autopay_missed")
    assert user == USER and data["missed"] == ["2027-02-28"] and data["due"] == "2027-03-31"

    sent = len(harness.telegram.messages(USER))
    await _deliver(harness)
    texts = [m.text for m in harness.telegram.messages(USER)[sent:]]
    missed = [t for t in texts if "не списан" in t]
    assert len(missed) == 1, texts
    assert "28.02" in missed[0] and "31.03" in missed[0] and HOSTILE_FUND in missed[0]

    for _ in range(2):
        harness.clock.advance(LEASE.total_seconds() + 60)
        await reconcile_autopay_runs(app, harness.clock)
    await _tick(harness, datetime(2027, 3, 31, 10, 0, 5, tzinfo=MSK))
    assert await _charged_keys(harness, autopay_id) == [
        f"ap-{autopay_id}-2027-01-1",
        f"ap-{autopay_id}-2027-03-1",
    ]
    assert len(await _notices(harness, "autopay_missed")) == 1


async def test_a_weekly_donation_over_iso_week_53_then_paused_and_resumed(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Weekly on Sundays over the new year of 2027 (ISO 2026 has a week 53: Sunday 3 January
    2027 is 2026-W53). The city is down from 27 December to 10 January 08:00; at noon the W52
    charge goes, 3 and 10 January are «missed» (10:00 had passed), told in one notice — held
    in the quiet hours until the morning. A pause and resume right after charges nothing for
    them; 2027-W02 is charged on 17 January."""
    assert harness.app is not None
    app = harness.app
    chat = harness.chat(USER)
    await harness.link(chat)
    harness.clock.now = datetime(2026, 12, 26, 12, 0, tzinfo=MSK)  # Saturday
    autopay_id = await _donation(harness, Schedule(Frequency.WEEKLY, 6))
    await _outage(
        harness,
        monkeypatch,
        _every(
            datetime(2026, 12, 27, 10, 0, 5, tzinfo=MSK),
            datetime(2027, 1, 10, 8, 0, tzinfo=MSK),
            timedelta(hours=12),
        ),
    )
    await _tick(harness, datetime(2027, 1, 10, 12, 0, tzinfo=MSK))
    runs = await _runs(harness, autopay_id)
    assert runs == {
        "2026-W52": ("succeeded", None),
        "2026-W53": ("skipped", "missed"),
        "2027-W01": ("skipped", "missed"),
    }, runs
    [(_, data)] = await _notices(harness, "autopay_missed")
    assert data["missed"] == ["2027-01-03", "2027-01-10"] and data["due"] == "2027-01-17"

    async with app.uow_factory() as uow:
        resident = await uow.residents.get(USER)
        assert resident is not None
        await set_status(uow, resident, autopay_id, AutopayStatus.PAUSED, harness.clock())
    harness.clock.now = datetime(2027, 1, 10, 23, 30, tzinfo=MSK)
    async with app.uow_factory() as uow:
        resident = await uow.residents.get(USER)
        assert resident is not None
        done = await set_status(uow, resident, autopay_id, AutopayStatus.ACTIVE, harness.clock())
    resumed = done.autopay
    assert resumed.next_due_at == datetime(2027, 1, 17, 10, 0, tzinfo=MSK)

    sent = len(harness.telegram.messages(USER))
    await _deliver(harness)  # quiet hours: held
    assert not [m for m in harness.telegram.messages(USER)[sent:] if "не списан" in m.text]
    harness.clock.now = datetime(2027, 1, 11, 10, 0, tzinfo=MSK)
    await _deliver(harness)
    told = [m.text for m in harness.telegram.messages(USER)[sent:] if "не списан" in m.text]
    assert len(told) == 1 and "03.01, 10.01" in told[0] and "17.01" in told[0], told

    await _tick(harness, datetime(2027, 1, 11, 10, 5, tzinfo=MSK))
    await _tick(harness, datetime(2027, 1, 17, 10, 0, 5, tzinfo=MSK))
    assert await _charged_keys(harness, autopay_id) == [
        f"ap-{autopay_id}-2026-W52-1",
        f"ap-{autopay_id}-2027-W02-1",
    ]


async def test_the_frequency_changed_while_a_charge_backs_off_misses_nothing_wrongly(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Monthly on the 5th, the 5 November charge backing off; the resident switches to weekly
    on Wednesdays while the city still holds the charge, and the city then answers «paid».
    The monthly period done and the weekly schedule do not compare: nothing is told
    «missed», and the next weekly Wednesday is charged."""
    assert harness.app is not None
    app = harness.app
    await harness.link(harness.chat(USER))
    harness.clock.now = datetime(2026, 11, 4, 12, 0, tzinfo=MSK)
    autopay_id = await _donation(harness, Schedule(Frequency.MONTHLY, 5))
    await _outage(harness, monkeypatch, [datetime(2026, 11, 5, 10, 0, 5, tzinfo=MSK)])
    charge = app.city.create_payment

    async def changed_meanwhile(*args: Any, **kwargs: Any) -> Any:
        from domain.autopaying import change

        async with app.uow_factory() as uow:
            resident = await uow.residents.get(USER)
            assert resident is not None
            await change(
                uow,
                resident,
                autopay_id,
                harness.clock(),
                schedule=Schedule(Frequency.WEEKLY, 2),
            )
        return await charge(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(app.city, "create_payment", changed_meanwhile)
        await _tick(harness, datetime(2026, 11, 9, 12, 0, tzinfo=MSK))  # Monday
    await _tick(harness, datetime(2026, 11, 11, 10, 0, 5, tzinfo=MSK))  # Wednesday
    runs = await _runs(harness, autopay_id)
    assert runs == {"2026-11": ("succeeded", None), "2026-W46": ("succeeded", None)}, runs
    assert await _notices(harness, "autopay_missed") == []


# --- the unlinking settles a run a live scheduler holds (PostgreSQL) ---------------------------


@pytest.mark.parametrize(("method", "relink"), [(CARD_OK, False), (CARD_DECLINED, True)])
async def test_unlinking_while_a_live_scheduler_records_the_same_charge(
    pg_harness: Harness, method: str, relink: bool
) -> None:
    """The city has just answered a donation's charge; at that moment the resident unlinks
    (and, in one case, links the same Telegram account again while the lease is held). Both
    the unlinking (which now settles leased runs) and the live scheduler record the answer,
    really side by side on PostgreSQL: no deadlock, one charge at most, no notice or
    Dashboard event about the forgotten account, and nothing told to the new link."""
    harness = pg_harness
    assert harness.app is not None
    app = harness.app
    chat = harness.chat(USER)
    await harness.link(chat)
    harness.clock.now = datetime(2026, 11, 24, 12, 0, tzinfo=MSK)
    autopay_id = await _donation(harness, Schedule(Frequency.MONTHLY, 25), method=method)
    charge = app.city.create_payment
    tasks: list[asyncio.Task[Any]] = []

    async def forget_and_maybe_link_again() -> None:
        async with app.uow_factory() as uow:
            resident = await uow.residents.get(USER)
            assert resident is not None
            await unlink(uow, app.city, resident, payments=app.city, now=harness.clock())
            await uow.commit()
        if relink:
            await harness.link(chat)

    async def answered_then_unlinked(*args: Any, **kwargs: Any) -> Any:
        payment = await charge(*args, **kwargs)
        tasks.append(asyncio.ensure_future(forget_and_maybe_link_again()))
        await asyncio.sleep(0)
        return payment

    app.city.create_payment = answered_then_unlinked  # type: ignore[method-assign]
    try:
        await _tick(harness, datetime(2026, 11, 25, 10, 0, 5, tzinfo=MSK))
        await asyncio.gather(*tasks)
    finally:
        del app.city.create_payment
    charged = await _charged_keys(harness, autopay_id)
    async with app.engine.connect() as connection:
        runs = (
            await connection.execute(
                select(AutopayRunRow.status, AutopayRunRow.failure).where(
                    AutopayRunRow.autopay_id == autopay_id
                )
            )
        ).all()
        notes = (await connection.execute(select(NotificationRow.kind))).scalars().all()
    if method == CARD_OK:
        assert len(charged) == 1 and [tuple(r) for r in runs] == [("succeeded", None)], runs
    else:
        assert len(runs) == 1 and runs[0].status in ("failed", "retrying"), runs
        assert runs[0].failure == "declined", runs
    autopay_notes = [k for k in notes if k.startswith("autopay") or k.startswith("dashboard")]
    assert autopay_notes == [], notes
    # Nothing more ever goes out for the forgotten autopay.
    await _tick(harness, datetime(2026, 11, 26, 10, 0, 5, tzinfo=MSK))
    harness.clock.advance(LEASE.total_seconds() + 60)
    await reconcile_autopay_runs(app, harness.clock)
    assert await _charged_keys(harness, autopay_id) == charged


async def test_a_late_charges_record_that_failed_once_writes_missed_runs_and_notice_once(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scheduler was down from 25 November to 3 December: the W48 donation is charged late
    on the batched path (`_Run._record`), passing over 2 December. Its record fails once (the
    database refuses the notices' INSERT) and is tried again by the run's final record: the
    «missed» run and the notice are written once, the charge made once."""
    from storage.notifications import SqlNotificationRepository

    assert harness.app is not None
    await harness.link(harness.chat(USER))
    harness.clock.now = datetime(2026, 11, 24, 12, 0, tzinfo=MSK)
    autopay_id = await _donation(harness, Schedule(Frequency.WEEKLY, 2))
    real = SqlNotificationRepository.add_all_once
    failures = [RuntimeError("review 29: the database refused")]

    async def fails_once(self: Any, *args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return await real(self, *args, **kwargs)

    monkeypatch.setattr(SqlNotificationRepository, "add_all_once", fails_once)
    with pytest.raises(RuntimeError):
        await _tick(harness, datetime(2026, 12, 3, 12, 0, tzinfo=MSK))
    await _tick(harness, datetime(2026, 12, 3, 12, 5, tzinfo=MSK))
    harness.clock.advance(LEASE.total_seconds() + 60)
    await _tick(harness, harness.clock())
    runs = await _runs(harness, autopay_id)
    assert runs == {"2026-W48": ("succeeded", None), "2026-W49": ("skipped", "missed")}, runs
    assert len(await _notices(harness, "autopay_missed")) == 1
    assert len(await _notices(harness, "autopay_paid")) == 1
    assert await _charged_keys(harness, autopay_id) == [f"ap-{autopay_id}-2026-W48-1"]
