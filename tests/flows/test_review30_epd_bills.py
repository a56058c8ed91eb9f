"""Review 30a: the ЕПД («on issue») autopay given two bills — the blind spot of review 27c's
machine (`_swallowed`). The «second bill with no run» it skipped was a bill queued behind one
being tried again, paid once its turn came (the machine now owes it so: `_behind`); lifting the
skip found a real defect, «Возобновить» on an ACTIVE autopay (pinned below, fixed)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from domain.autopay import (
    Autopay,
    AutopayKind,
    AutopayStatus,
    Frequency,
    RunStatus,
    Schedule,
    bill_period,
)
from domain.autopaying import change_card, set_status, set_up
from domain.autopaying import tick as autopay_tick
from domain.bill_discovery import AutopayPlan, discover_bills
from domain.bills import BillKind
from domain.reporting import DiscoveryCursor
from sandbox.payments_api import PAYMENTS_KEY
from storage.models import NotificationRow
from tests.flows.conftest import Harness
from tests.flows.test_bill_discovery import FULL, issue

# --- the scenario the machine's skip hid, as it really goes --------------------------------

MSK = timezone(timedelta(hours=3))
USER = 100001
CARD_OK, CARD_NO_FUNDS = "pm-full-4242", "pm-full-9995"  # 9995: «insufficient funds»
CARD_DECLINED = "pm-full-0002"


async def _discover(harness: Harness) -> None:
    assert harness.app is not None
    result = await discover_bills(
        harness.app.uow_factory, harness.app.city, harness.clock(), DiscoveryCursor()
    )
    assert not result.halted


async def _epd_autopay(harness: Harness) -> int:
    """Linked, the baseline scan taken, an ЕПД autopay on issue (limit 10 000 ₽, card 4242)."""
    assert harness.app is not None
    await harness.link(harness.chat(USER))
    await _discover(harness)  # the baseline: the bills there are now are not «new»
    async with harness.app.uow_factory() as uow:
        stored = await set_up(
            uow,
            Autopay(
                USER,
                AutopayKind.BILL,
                Schedule.on_issue(),
                CARD_OK,
                harness.clock(),
                limit=1_000_000,
                bill_kind=BillKind.EPD,
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


async def _runs(harness: Harness, autopay_id: int) -> dict[str, str]:
    assert harness.app is not None
    async with harness.app.uow_factory() as uow:
        return {run.period: run.status.value for run in await uow.autopays.runs(autopay_id)}


async def _bills_paid(harness: Harness) -> Counter[str]:
    assert harness.sandbox is not None
    charges = (await harness.sandbox_call("GET", "/sandbox/ledger"))["charges"]
    payments = harness.sandbox.app[PAYMENTS_KEY].payments
    return Counter(
        bill
        for c in charges
        if c["idempotence_key"].startswith("ap-")
        for bill in payments[c["payment_id"]].request.bill_ids
    )


async def _notice_plans(harness: Harness) -> dict[str, str]:
    """Each bill's «Пришёл счёт»: what it told the resident the autopay does with it."""
    assert harness.app is not None
    async with harness.app.engine.connect() as connection:
        rows = (
            await connection.execute(
                select(NotificationRow.data).where(NotificationRow.kind == "bill_issued")
            )
        ).scalars()
        return {str(d["bill_id"]): str(d["autopay"]) for d in rows if not d.get("reminder")}


async def _card(harness: Harness, autopay_id: int, method_id: str) -> None:
    assert harness.app is not None
    app = harness.app
    async with app.uow_factory() as uow:
        resident = await uow.residents.get(USER)
        assert resident is not None
        _, resumed = await change_card(
            uow, app.city, app.city, resident, autopay_id, method_id, harness.clock()
        )
    assert not resumed  # it was ACTIVE


async def test_a_bill_queued_behind_one_being_retried_waits_for_it_then_is_paid(
    pg_harness: Harness,
) -> None:
    """Review 27c's machine, its skip removed, shrank to this (seed 8148…0313): three ЕПД
    bills found on 27 November, the first handed over (due 10:00 the next day), the other two
    queued. The first is paid; the resident then picks the card 9995, and the second is
    declined («insufficient funds»): RETRYING, tried again at 10:00 the next day. The third
    has no run at all — the machine owed it one since 28 November 10:00 (its notice's «due»)
    — but it is queued, as its notice said («queued»): handed over only when the bill before
    it is done (`_finish` → `_take_queued`). Not lost: once the second is paid on its retry,
    the third is handed over at once and paid. Each bill once."""
    harness = pg_harness
    assert harness.app is not None
    harness.clock.now = datetime(2026, 11, 27, 12, 0, tzinfo=MSK)
    autopay_id = await _epd_autopay(harness)
    bills = []
    for _ in range(3):
        bills.append(issue(harness, FULL, 300_000))
        await _discover(harness)
    first, second, third = bills
    plans = await _notice_plans(harness)
    assert [plans[b] for b in bills] == [AutopayPlan.WILL_PAY] + [AutopayPlan.QUEUED] * 2

    await _tick(harness, datetime(2026, 11, 28, 10, 0, 5, tzinfo=MSK))
    assert (await _bills_paid(harness))[first] == 1
    await _card(harness, autopay_id, CARD_NO_FUNDS)
    await _tick(harness, datetime(2026, 11, 28, 11, 5, tzinfo=MSK))
    runs = await _runs(harness, autopay_id)
    assert runs[bill_period(second)] == RunStatus.RETRYING.value
    assert bill_period(third) not in runs  # queued behind the retry: no run yet, by design
    async with harness.app.uow_factory() as uow:
        stored = await uow.autopays.get(autopay_id)
        assert stored is not None and stored.bill_id == second
        assert stored.next_due_at == datetime(2026, 11, 29, 10, 0, tzinfo=MSK)

    await _card(harness, autopay_id, CARD_OK)
    await _tick(harness, datetime(2026, 11, 29, 10, 0, 5, tzinfo=MSK))
    await _tick(harness, datetime(2026, 11, 29, 10, 1, tzinfo=MSK))
    runs = await _runs(harness, autopay_id)
    assert {runs.get(bill_period(b)) for b in bills} == {RunStatus.SUCCEEDED.value}, runs
    assert await _bills_paid(harness) == Counter(bills)


# Was (review 30a): «Возобновить» on an ACTIVE on-issue autopay drops its bill in hand and queue,
# unsaid
async def test_resuming_an_active_epd_autopay_keeps_the_bills_handed_to_it(
    pg_harness: Harness,
) -> None:
    """Two ЕПД bills found: the first handed over («Спишем завтра в 10:00», with «Пропустить
    этот раз»), the second queued. The resident then presses «Возобновить» on the autopay's
    card — a card message shown while it was paused (the button's `when` is checked only when
    it is drawn, not when pressed), a double tap, or «Возобновить» offered by a set-up of a
    second ЕПД autopay (`on_exists_resume`) after the first was resumed elsewhere. The
    autopay is ACTIVE already, yet `set_status` resumes it again: `Autopay.resume` clears the
    bill in hand and `drop_queue` the queue. Neither bill is ever charged, no run is
    recorded, nobody is told — the resident was promised the charge."""
    harness = pg_harness
    assert harness.app is not None
    app = harness.app
    harness.clock.now = datetime(2026, 11, 27, 12, 0, tzinfo=MSK)
    autopay_id = await _epd_autopay(harness)
    bills = []
    for _ in range(2):
        bills.append(issue(harness, FULL, 300_000))
        await _discover(harness)
    plans = await _notice_plans(harness)
    assert [plans[b] for b in bills] == [AutopayPlan.WILL_PAY, AutopayPlan.QUEUED]

    harness.clock.now = datetime(2026, 11, 27, 12, 5, tzinfo=MSK)
    async with app.uow_factory() as uow:
        resident = await uow.residents.get(USER)
        assert resident is not None
        await set_status(uow, resident, autopay_id, AutopayStatus.ACTIVE, harness.clock())

    for moment in (
        datetime(2026, 11, 28, 10, 0, 5, tzinfo=MSK),
        datetime(2026, 11, 28, 10, 1, tzinfo=MSK),
        datetime(2026, 11, 28, 12, 0, tzinfo=MSK),
    ):
        await _tick(harness, moment)
    runs = await _runs(harness, autopay_id)
    assert await _bills_paid(harness) == Counter(bills), runs
    assert {runs.get(bill_period(b)) for b in bills} == {RunStatus.SUCCEEDED.value}, runs


# Was (review 30a): «Возобновить» on an ACTIVE donation drops the period being retried: RETRYING for
# good
async def test_resuming_an_active_donation_keeps_the_period_being_retried(
    pg_harness: Harness,
) -> None:
    """The same fault on a dated autopay: a monthly donation (the 25th) declined on 25
    November is RETRYING, tried again at 10:00 on the 26th. A stale «Возобновить» on the
    ACTIVE autopay runs `Autopay.resume`: `retry_period` cleared, next charge 25 December.
    The November run stays RETRYING for good — never tried again, never FAILED, the resident
    never told «не прошёл»."""
    harness = pg_harness
    assert harness.app is not None
    app = harness.app
    harness.clock.now = datetime(2026, 11, 24, 12, 0, tzinfo=MSK)
    await harness.link(harness.chat(USER))
    async with app.uow_factory() as uow:
        stored = await set_up(
            uow,
            Autopay(
                USER,
                AutopayKind.FIXED,
                Schedule(Frequency.MONTHLY, 25),
                CARD_DECLINED,
                harness.clock(),
                amount=15_000,
                fund_id="F-101",
                fund_name="Фонд",
            ),
            harness.clock(),
        )
    assert stored.id is not None
    await _tick(harness, datetime(2026, 11, 25, 10, 0, 5, tzinfo=MSK))
    assert (await _runs(harness, stored.id))["2026-11"] == RunStatus.RETRYING.value

    harness.clock.now = datetime(2026, 11, 25, 12, 0, tzinfo=MSK)
    async with app.uow_factory() as uow:
        resident = await uow.residents.get(USER)
        assert resident is not None
        await set_status(uow, resident, stored.id, AutopayStatus.ACTIVE, harness.clock())
    for day in (26, 27, 28):
        await _tick(harness, datetime(2026, 11, day, 10, 0, 5, tzinfo=MSK))
    # retried on the 26th and 27th (RETRY_DAYS), then FAILED and told
    assert (await _runs(harness, stored.id))["2026-11"] == RunStatus.FAILED.value
