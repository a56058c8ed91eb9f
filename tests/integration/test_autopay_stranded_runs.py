"""Autopay charges a dead scheduler left unrecorded, that the charge run will never send again
(the autopay paused, deleted, moved to another period, or its resident unlinking), are settled
by asking the city about their keys (`domain.autopay_runs`): a charge made is recorded and told
once, a key the city has not taken is left STARTED (a resume sends that same key) — never a
lost payment record, never a second charge. Real databases (SQLite and PostgreSQL) and the
city sandbox; its ledger is the judge."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from city.client import CityClient
from domain.accounts import Resident
from domain.autopay import MOSCOW, AutopayStatus, Frequency, RunStatus, Schedule
from domain.autopay_runs import ASKED_FOR, reconcile_runs
from domain.autopaying import change, set_status, tick
from domain.errors import CityUnavailable
from domain.linking import ANONYMOUS, unlink
from domain.payments import Payment
from sandbox import SandboxServer
from storage.autopays import LEASE
from storage.uow import UnitOfWorkFactory
from tests.integration.test_autopay_batched import notices
from tests.integration.test_autopay_job import (
    DUE,
    RESIDENT,
    Crash,
    DiesOnCharge,
    InFlight,
    add,
    ledger,
)

PERIOD = "2026-11"  # DUE's period (monthly, the 25th)
LATER = DUE + LEASE + timedelta(minutes=5)  # the crashed run's lease long gone
THE_28TH = datetime(2026, 11, 28, 10, 0, 1, tzinfo=MOSCOW)  # due once moved to the 28th


class DiesBeforeTheCity(InFlight):
    """The scheduler process dies after the key was recorded, before the city heard it."""

    async def create_payment(self, *args: Any, **kwargs: Any) -> Payment:
        raise Crash()


class Asks:
    """The sandbox client whose `find_payment` does something first (`before`) or after the
    city answered (`after`, once: the interleaving a test forces), or fails (`down`)."""

    def __init__(
        self,
        city: CityClient,
        *,
        down: bool = False,
        after: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._city, self._down, self._after = city, down, after
        self.asked: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._city, name)

    async def find_payment(self, session: Any, key: str) -> Payment | None:
        self.asked.append(key)
        if self._down:
            raise CityUnavailable("the city does not answer")
        payment = await self._city.find_payment(session, key)
        if self._after is not None:
            after, self._after = self._after, None
            await after()
        return payment


async def crashed(
    factory: UnitOfWorkFactory, city: CityClient, *, charged: bool, card: str = "pm-full-4242"
) -> int:
    """One monthly donation due at DUE whose scheduler dies with the run's key on record:
    after the city answered the charge (`charged`), or before the city heard of it."""
    [autopay_id] = await add(factory, 1)
    async with factory() as uow:
        autopay = await uow.autopays.get(autopay_id)
        assert autopay is not None
        autopay.method_id = card
        await uow.autopays.save(autopay)
        await uow.commit()
    dying = DiesOnCharge(city, nth=1) if charged else DiesBeforeTheCity(city)
    with pytest.raises(Crash):
        await tick(factory, dying, DUE)
    [run] = await runs(factory, autopay_id)
    assert (run.status, run.attempts) == (RunStatus.STARTED, 1)
    return autopay_id


async def runs(factory: UnitOfWorkFactory, autopay_id: int) -> list[Any]:
    async with factory() as uow:
        return await uow.autopays.runs(autopay_id)


async def resident(factory: UnitOfWorkFactory) -> Resident:
    async with factory() as uow:
        found = await uow.residents.get(RESIDENT)
    assert found is not None
    return found


async def act(
    factory: UnitOfWorkFactory,
    autopay_id: int,
    status: AutopayStatus,
    now: datetime = DUE + timedelta(minutes=1),  # a minute after the crash
) -> None:
    """The resident pauses, resumes or deletes the autopay."""
    who = await resident(factory)
    async with factory() as uow:
        await set_status(uow, who, autopay_id, status, now)


async def move_to_the_28th(factory: UnitOfWorkFactory, autopay_id: int) -> None:
    """The resident moves the charge day to the 28th (November's period stays ahead)."""
    who = await resident(factory)
    async with factory() as uow:
        await change(
            uow,
            who,
            autopay_id,
            DUE + timedelta(minutes=1),
            schedule=Schedule(Frequency.MONTHLY, 28),
        )


async def reconcile(factory: UnitOfWorkFactory, payments: Any, now: datetime = LATER) -> list[Any]:
    async with factory() as uow:
        return await reconcile_runs(uow, payments, payments, now, now - LEASE)


def key(autopay_id: int, attempt: int = 1) -> str:
    """The key of November's charge (`run_key`), by attempt."""
    return f"ap-{autopay_id}-{PERIOD}-{attempt}"


def keys(charges: list[dict[str, Any]]) -> Counter[str]:
    return Counter(c["idempotence_key"] for c in charges)


async def test_a_charge_made_then_paused_is_recorded_and_told_once(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    autopay_id = await crashed(factory, city, charged=True)
    await act(factory, autopay_id, AutopayStatus.PAUSED)
    [settled] = await reconcile(factory, city)
    assert settled.recorded is RunStatus.SUCCEEDED and settled.told
    [run] = await runs(factory, autopay_id)
    assert (run.status, run.key, run.amount) == (
        RunStatus.SUCCEEDED,
        key(autopay_id),
        10_000,
    )
    assert await notices(engine) == {"autopay_paid": 1}
    assert await reconcile(factory, city, LATER + timedelta(minutes=10)) == []  # settled: once
    assert await notices(engine) == {"autopay_paid": 1}
    # the resident moves the day within November and resumes: that period is done — the
    # charge run moves on without a word to the city
    await move_to_the_28th(factory, autopay_id)
    await act(factory, autopay_id, AutopayStatus.ACTIVE)
    outcomes: list[str] = []
    assert await tick(factory, city, THE_28TH, outcomes) == 1
    assert outcomes == ["already_done"]
    assert keys(await ledger(sandbox)) == {key(autopay_id): 1}
    async with factory() as uow:
        stored = await uow.autopays.get(autopay_id)
    assert stored is not None and stored.period == "2026-12"


async def test_a_charge_made_then_deleted_is_recorded(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    autopay_id = await crashed(factory, city, charged=True)
    await act(factory, autopay_id, AutopayStatus.DELETED)
    [settled] = await reconcile(factory, city)
    assert settled.recorded is RunStatus.SUCCEEDED
    assert [r.status for r in await runs(factory, autopay_id)] == [RunStatus.SUCCEEDED]
    assert await notices(engine) == {"autopay_paid": 1}  # what was charged is told
    assert keys(await ledger(sandbox)) == {key(autopay_id): 1}
    async with factory() as uow:
        stored = await uow.autopays.get(autopay_id)
    assert stored is not None and stored.status is AutopayStatus.DELETED  # stays deleted


async def test_a_key_the_city_never_heard_is_left_and_a_resume_sends_it_once(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    """No payment yet is not «never»: the run stays STARTED with its key (closing it would let
    a resume charge the period with a new key while a stalled scheduler sends the old one), and
    a resume back on that period sends the same key: one charge."""
    autopay_id = await crashed(factory, city, charged=False)
    await act(factory, autopay_id, AutopayStatus.PAUSED)
    [settled] = await reconcile(factory, city)
    assert settled.recorded is None and settled.left_because is None and not settled.told
    [run] = await runs(factory, autopay_id)
    assert (run.status, run.key) == (RunStatus.STARTED, key(autopay_id))
    assert await notices(engine) == {}  # nothing was charged, nothing to tell
    assert await ledger(sandbox) == []
    # back on November's period: the same key, charged once
    await move_to_the_28th(factory, autopay_id)
    await act(factory, autopay_id, AutopayStatus.ACTIVE)
    outcomes: list[str] = []
    assert await tick(factory, city, THE_28TH, outcomes) == 1
    assert outcomes == [RunStatus.SUCCEEDED.value]
    assert keys(await ledger(sandbox)) == {key(autopay_id): 1}
    [run] = await runs(factory, autopay_id)
    assert (run.status, run.attempts) == (RunStatus.SUCCEEDED, 1)


async def test_a_run_not_taken_for_asked_for_is_no_longer_asked_about(
    factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    """A key the city has not taken is asked about at every reconciliation — for ASKED_FOR
    after the run's last write, then no more (no city call every few minutes for good)."""
    autopay_id = await crashed(factory, city, charged=False)
    await act(factory, autopay_id, AutopayStatus.DELETED)
    asks = Asks(city)  # the run was last written at DUE, when the scheduler died
    assert len(await reconcile(factory, asks, DUE + ASKED_FOR - timedelta(minutes=1))) == 1
    assert asks.asked == [key(autopay_id)]
    assert await reconcile(factory, asks, DUE + ASKED_FOR + timedelta(minutes=1)) == []
    assert asks.asked == [key(autopay_id)]  # not asked again
    assert [r.status for r in await runs(factory, autopay_id)] == [RunStatus.STARTED]


async def test_a_declined_charge_is_recorded_failed_with_the_citys_reason(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    """A first decline the charge run would have tried again tomorrow, silently: the autopay
    paused, it is not — the run fails with the city's reason, and nobody is told."""
    autopay_id = await crashed(factory, city, charged=True, card="pm-full-0002")  # declines
    await act(factory, autopay_id, AutopayStatus.PAUSED)
    [settled] = await reconcile(factory, city)
    assert settled.recorded is RunStatus.FAILED and not settled.told
    [run] = await runs(factory, autopay_id)
    assert (run.status, run.failure) == (RunStatus.FAILED, "declined")
    assert await notices(engine) == {}
    assert await ledger(sandbox) == []


async def test_a_charge_made_before_the_schedule_moved_on_is_recorded(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    autopay_id = await crashed(factory, city, charged=True)
    who = await resident(factory)
    async with factory() as uow:  # the 5th: the next charge is December's
        moved = await change(
            uow,
            who,
            autopay_id,
            DUE + timedelta(minutes=1),
            schedule=Schedule(Frequency.MONTHLY, 5),
        )
    assert moved.status is AutopayStatus.ACTIVE and moved.period == "2026-12"
    [settled] = await reconcile(factory, city)
    assert settled.recorded is RunStatus.SUCCEEDED
    assert await notices(engine) == {"autopay_paid": 1}
    async with factory() as uow:
        stored = await uow.autopays.get(autopay_id)
    assert stored is not None and stored.next_due_at == moved.next_due_at  # left as it was
    assert await tick(factory, city, datetime(2026, 12, 5, 10, 0, 1, tzinfo=MOSCOW)) == 1
    assert keys(await ledger(sandbox)) == {
        key(autopay_id): 1,
        f"ap-{autopay_id}-2026-12-1": 1,
    }


async def test_the_run_of_an_active_due_autopay_is_left_to_the_charge_run(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    autopay_id = await crashed(factory, city, charged=True)
    asking = Asks(city)
    assert await reconcile(factory, asking) == []
    assert asking.asked == []  # not even asked about
    assert [r.status for r in await runs(factory, autopay_id)] == [RunStatus.STARTED]
    assert await tick(factory, city, LATER) == 1  # the charge run sends the key again
    assert [r.status for r in await runs(factory, autopay_id)] == [RunStatus.SUCCEEDED]
    assert keys(await ledger(sandbox)) == {key(autopay_id): 1}
    assert await notices(engine) == {"autopay_paid": 1}


async def test_a_leased_autopay_is_left_alone(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    autopay_id = await crashed(factory, city, charged=True)
    await act(factory, autopay_id, AutopayStatus.PAUSED)
    leased = DUE + LEASE - timedelta(seconds=30)  # the crashed scheduler's lease still holds
    asking = Asks(city)
    async with factory() as uow:  # however old the run is taken to be
        assert await reconcile_runs(uow, asking, asking, leased, leased) == []
    assert asking.asked == []
    assert [r.status for r in await runs(factory, autopay_id)] == [RunStatus.STARTED]
    [settled] = await reconcile(factory, city)  # once the lease is gone
    assert settled.recorded is RunStatus.SUCCEEDED


async def test_a_recent_run_is_left_alone(
    factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    """Younger than a lease: a scheduler may still be sending it."""
    autopay_id = await crashed(factory, city, charged=True)
    await act(factory, autopay_id, AutopayStatus.PAUSED)
    async with factory() as uow:  # the lease released early, the run written at DUE
        await uow.autopays.release([autopay_id])
        await uow.commit()
    assert await reconcile(factory, city, DUE + LEASE - timedelta(seconds=1)) == []
    assert [r.status for r in await runs(factory, autopay_id)] == [RunStatus.STARTED]


async def test_the_city_down_leaves_the_run_for_a_later_reconciliation(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    charged_id = await crashed(factory, city, charged=True)
    await act(factory, charged_id, AutopayStatus.PAUSED)
    [left] = await reconcile(factory, Asks(city, down=True))
    assert left.recorded is None and isinstance(left.left_because, CityUnavailable)
    assert [r.status for r in await runs(factory, charged_id)] == [RunStatus.STARTED]
    assert await notices(engine) == {}
    [settled] = await reconcile(factory, city, LATER + timedelta(minutes=5))
    assert settled.recorded is RunStatus.SUCCEEDED
    assert await notices(engine) == {"autopay_paid": 1}
    assert keys(await ledger(sandbox)) == {key(charged_id): 1}


async def test_unlinking_records_a_charge_made_before_forgetting(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    autopay_id = await crashed(factory, city, charged=True)  # ACTIVE: the charge run's, until…
    who = await resident(factory)
    async with factory() as uow:
        await unlink(uow, city, who, payments=city, now=LATER)
        await uow.commit()
    [run] = await runs(factory, autopay_id)
    assert (run.status, run.key, run.amount) == (
        RunStatus.SUCCEEDED,
        key(autopay_id),
        10_000,
    )
    assert await notices(engine) == {}  # the resident is forgotten: nothing is written to them
    async with factory() as uow:
        stored = await uow.autopays.get(autopay_id)
        assert await uow.residents.get(RESIDENT) is None
    assert stored is not None
    assert (stored.status, stored.telegram_user_id) == (AutopayStatus.DELETED, ANONYMOUS)
    assert keys(await ledger(sandbox)) == {key(autopay_id): 1}


async def test_unlinking_while_the_city_is_down_still_forgets(
    factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    autopay_id = await crashed(factory, city, charged=True)
    who = await resident(factory)
    down = Asks(city, down=True)
    async with factory() as uow:
        done = await unlink(uow, city, who, payments=down, now=LATER)
        await uow.commit()
    assert down.asked == [key(autopay_id)]  # asked, before forgetting
    assert done is not None
    async with factory() as uow:
        assert await uow.residents.get(RESIDENT) is None
        stored = await uow.autopays.get(autopay_id)
    assert stored is not None and stored.telegram_user_id == ANONYMOUS
    # left STARTED with its key, on an anonymous record, for the city's ledger
    assert [r.status for r in await runs(factory, autopay_id)] == [RunStatus.STARTED]


async def test_a_resume_meanwhile_leaves_the_run_to_the_charge_run(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    """Forced interleaving: the city says it never heard the key; before the reconciliation
    records that, the resident resumes the autopay, back on November's period (the 28th).
    The record, under the autopay's lock, sees it is the charge run's again and leaves it:
    the charge run sends the run's own key, once."""
    autopay_id = await crashed(factory, city, charged=False)
    await move_to_the_28th(factory, autopay_id)
    await act(factory, autopay_id, AutopayStatus.PAUSED)

    async def resumed() -> None:
        await act(factory, autopay_id, AutopayStatus.ACTIVE, THE_28TH - timedelta(days=1))

    [left] = await reconcile(factory, Asks(city, after=resumed), THE_28TH - timedelta(hours=1))
    assert left.recorded is None
    [run] = await runs(factory, autopay_id)
    assert (run.status, run.key) == (RunStatus.STARTED, key(autopay_id))
    assert await tick(factory, city, THE_28TH) == 1
    assert [r.status for r in await runs(factory, autopay_id)] == [RunStatus.SUCCEEDED]
    assert keys(await ledger(sandbox)) == {key(autopay_id): 1}


@pytest.mark.parametrize("pauses_again", [False, True])
async def test_a_scheduler_that_takes_the_run_up_meanwhile_is_never_overruled(
    engine: AsyncEngine,
    factory: UnitOfWorkFactory,
    city: CityClient,
    sandbox: SandboxServer,
    pauses_again: bool,
) -> None:
    """Forced interleaving: the city says it never heard the key; before the reconciliation
    records that, the resident resumes the autopay (back on November's period: the 28th) and
    a scheduler claims it, sends the key — charged — and dies holding the lease; then
    (`pauses_again`) the resident pauses it once more, so the run looks stranded again. The
    record, made under the autopay's lock, sees the run is the charge run's (ACTIVE on its
    period), or leased and written since, and leaves it: the key is never closed as «not
    charged» over a charge made. It is settled later — by the charge run sending the same
    key, or by a reconciliation once the lease is gone — once, as the ledger has it."""
    autopay_id = await crashed(factory, city, charged=False)
    await move_to_the_28th(factory, autopay_id)
    await act(factory, autopay_id, AutopayStatus.PAUSED)

    async def resumed_and_charged() -> None:
        await act(factory, autopay_id, AutopayStatus.ACTIVE, THE_28TH - timedelta(days=1))
        with pytest.raises(Crash):
            await tick(factory, DiesOnCharge(city, nth=1), THE_28TH)
        if pauses_again:
            await act(factory, autopay_id, AutopayStatus.PAUSED, THE_28TH + timedelta(seconds=30))

    asking = Asks(city, after=resumed_and_charged)
    [left] = await reconcile(factory, asking, THE_28TH + timedelta(minutes=1))
    assert asking.asked == [key(autopay_id)]
    assert left.recorded is None
    [run] = await runs(factory, autopay_id)
    assert (run.status, run.key) == (RunStatus.STARTED, key(autopay_id))
    after_the_lease = THE_28TH + LEASE + timedelta(minutes=1)
    if pauses_again:
        [settled] = await reconcile(factory, city, after_the_lease)
        assert settled.recorded is RunStatus.SUCCEEDED
    else:  # the charge run sends the same key; the city answers with the payment it made
        assert await tick(factory, city, after_the_lease) == 1
    assert [r.status for r in await runs(factory, autopay_id)] == [RunStatus.SUCCEEDED]
    assert keys(await ledger(sandbox)) == {key(autopay_id): 1}
    assert await notices(engine) == {"autopay_paid": 1}
