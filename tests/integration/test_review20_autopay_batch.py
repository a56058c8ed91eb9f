"""Review 20 of the batched autopay path's speed-ups (`_Run.prepare` filtering first and
creating runs as their first attempts, `save_progress_many` ending the leases, Core rows in
`claim_due`/`lock_many`, the lazy `SqlUnitOfWork`): a run found STARTED sends its key again, a
declined one gets a new key, leases end exactly once and only their own, the reconciliation
of stranded runs still finds them and never takes one a scheduler holds. Real databases
(SQLite and PostgreSQL) and the city sandbox; its ledger is the judge."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from city.client import CityClient
from domain import autopaying
from domain.autopay import AutopayStatus, PauseReason, RunStatus
from domain.autopay_runs import reconcile_runs
from domain.autopaying import change, set_status, skip_once, tick
from domain.limits import AmountLimits
from domain.payments import Payment
from domain.sessions import ResidentSession
from sandbox import SandboxServer
from storage.autopays import LEASE, SqlAutopayRepository
from storage.database import create_engine
from storage.models import AutopayRow, AutopayRunRow, NotificationRow
from storage.uow import UnitOfWorkFactory
from tests.conftest import POSTGRES_URL
from tests.integration.test_autopay_job import (
    DUE,
    RESIDENT,
    Crash,
    DiesOnCharge,
    InFlight,
    add,
    client,
    leased,
    ledger,
    linked,
    uow_factory,
)

PERIOD = "2026-11"
AFTER_LEASE = DUE + LEASE + timedelta(minutes=1)
MONTH = timedelta(days=31)


def key(autopay_id: int, attempt: int = 1) -> str:
    return f"ap-{autopay_id}-{PERIOD}-{attempt}"


def paid_key(autopay_id: int) -> str:
    return f"autopay:{autopay_id}:{PERIOD}:succeeded"


def keys(charges: list[dict[str, Any]]) -> Counter[str]:
    return Counter(c["idempotence_key"] for c in charges)


async def runs(factory: UnitOfWorkFactory, autopay_id: int) -> list[Any]:
    async with factory() as uow:
        return await uow.autopays.runs(autopay_id)


async def stored(factory: UnitOfWorkFactory, autopay_id: int) -> Any:
    async with factory() as uow:
        return await uow.autopays.get(autopay_id)


async def notices(engine: AsyncEngine) -> Counter[tuple[str, str]]:
    async with engine.connect() as connection:
        rows = await connection.execute(select(NotificationRow.kind, NotificationRow.dedupe_key))
        return Counter((kind, dedupe) for kind, dedupe in rows)


async def lease_of(engine: AsyncEngine, autopay_id: int) -> datetime | None:
    async with engine.connect() as connection:
        value: datetime | None = await connection.scalar(
            select(AutopayRow.claimed_until).where(AutopayRow.id == autopay_id)
        )
        return value


async def act(
    factory: UnitOfWorkFactory, autopay_id: int, status: AutopayStatus, now: datetime = DUE
) -> None:
    async with factory() as uow:
        resident = await uow.residents.get(RESIDENT)
        assert resident is not None
        await set_status(uow, resident, autopay_id, status, now)


async def crashed(factory: UnitOfWorkFactory, city: CityClient, *, charged: bool) -> int:
    """One monthly 100 ₽ donation due at DUE whose scheduler died with its run's key on record:
    after the city charged it (`charged`), or before the city heard of it."""
    [autopay_id] = await add(factory, 1)

    class DiesBefore(InFlight):
        async def create_payment(self, *args: Any, **kwargs: Any) -> Payment:
            raise Crash()

    dying = DiesOnCharge(city, nth=1) if charged else DiesBefore(city)
    with pytest.raises(Crash):
        await tick(factory, dying, DUE)
    [run] = await runs(factory, autopay_id)
    assert (run.status, run.attempts, run.key, run.amount) == (
        RunStatus.STARTED,
        1,
        key(autopay_id),
        10_000,
    )
    return autopay_id


class Gated(InFlight):
    """The sandbox client; the charges of the autopays in `held` wait before the sandbox hears
    them until `go` is set. `entered` is set when a held charge reaches here."""

    def __init__(self, city: CityClient, held: set[int]) -> None:
        super().__init__(city)
        self.held = held
        self.go = asyncio.Event()
        self.entered = asyncio.Event()

    async def create_payment(self, *args: Any, **kwargs: Any) -> Payment:
        if int(args[1].split("-")[1]) in self.held:
            self.entered.set()
            await self.go.wait()
        return await self._city.create_payment(*args, **kwargs)

    async def find_payment(self, session: Any, key: str) -> Payment | None:
        """A run in doubt (its key on record) is looked up first: held here the same way."""
        if int(key.split("-")[1]) in self.held:
            self.entered.set()
            await self.go.wait()
        return await self._city.find_payment(session, key)


# ---- a run found STARTED, FAILED, or with a changed amount ---------------------------------


@pytest.mark.parametrize("charged", [True, False])
async def test_a_run_left_started_by_a_crash_is_sent_again_with_its_own_key_once(
    engine: AsyncEngine,
    factory: UnitOfWorkFactory,
    city: CityClient,
    sandbox: SandboxServer,
    charged: bool,
) -> None:
    autopay_id = await crashed(factory, city, charged=charged)
    assert await leased(engine) == 1  # the dead scheduler's lease holds
    assert await tick(factory, city, DUE + timedelta(minutes=1)) == 0
    outcomes: list[str] = []
    assert await tick(factory, city, AFTER_LEASE, outcomes) == 1
    assert outcomes == [RunStatus.SUCCEEDED.value]
    assert keys(await ledger(sandbox)) == {key(autopay_id): 1}  # same key, one charge
    [run] = await runs(factory, autopay_id)
    assert (run.status, run.attempts, run.key, run.amount) == (
        RunStatus.SUCCEEDED,
        1,
        key(autopay_id),
        10_000,
    )
    assert await notices(engine) == {
        ("autopay_paid", f"autopay:{autopay_id}:{PERIOD}:succeeded"): 1
    }
    assert await leased(engine) == 0
    assert await tick(factory, city, AFTER_LEASE + timedelta(days=1)) == 0


async def test_a_declined_run_is_tried_next_day_with_the_next_attempt_and_a_new_key(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    [autopay_id] = await add(factory, 1)
    async with factory() as uow:
        autopay = await uow.autopays.get(autopay_id)
        assert autopay is not None
        autopay.method_id = "pm-full-0002"  # declined
        await uow.autopays.save(autopay)
        await uow.commit()
    outcomes: list[str] = []
    await tick(factory, city, DUE, outcomes)
    assert outcomes == [RunStatus.RETRYING.value]
    [run] = await runs(factory, autopay_id)
    assert (run.status, run.attempts, run.key) == (RunStatus.RETRYING, 1, key(autopay_id))
    async with factory() as uow:
        autopay = await uow.autopays.get(autopay_id)
        assert autopay is not None
        autopay.method_id = "pm-full-4242"
        await uow.autopays.save(autopay)
        await uow.commit()
    outcomes = []
    await tick(factory, city, DUE + timedelta(days=1), outcomes)
    assert outcomes == [RunStatus.SUCCEEDED.value]
    [run] = await runs(factory, autopay_id)
    assert (run.status, run.attempts, run.key) == (RunStatus.SUCCEEDED, 2, key(autopay_id, 2))
    charges = await ledger(sandbox)
    assert keys(charges) == {key(autopay_id, 2): 1}
    assert [c["amount"] for c in charges] == [run.amount]
    assert await leased(engine) == 0


# Was (review 20): a STARTED run's retry sends its recorded key with the autopay's NEW amount: the
# city refuses the reused key and the charge it made is recorded FAILED
async def test_an_amount_changed_between_a_crash_and_the_retry_keeps_the_charge_made(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    """The scheduler dies after the city charged 100 ₽ for November. Before the lease expires
    the resident, seeing nothing in the bot, raises the donation to 200 ₽ («from the next
    charge on», `change`). The next run finds November's run STARTED (key recorded) and
    sends its key again — with 200 ₽ in the body: the city answers 422
    `idempotency_key_reused`, the run is recorded FAILED («refused»), the resident is told
    «не удалось списать» (urgent) and staff get a failure — while 100 ₽ were taken and are
    recorded nowhere. The repeat of a charge must send the same body: the run's amount."""
    autopay_id = await crashed(factory, city, charged=True)
    async with factory() as uow:
        resident = await uow.residents.get(RESIDENT)
        assert resident is not None
        await change(uow, resident, autopay_id, DUE + timedelta(minutes=1), money=20_000)
    await tick(factory, city, AFTER_LEASE)
    charges = await ledger(sandbox)
    assert [(c["idempotence_key"], c["amount"]) for c in charges] == [(key(autopay_id), 10_000)]
    [run] = await runs(factory, autopay_id)
    # the ledger and the run agree: what was charged is recorded as charged
    assert (run.status, run.amount) == (RunStatus.SUCCEEDED, 10_000)
    kinds = {kind for kind, _ in await notices(engine)}
    assert "autopay_failed" not in kinds
    assert await leased(engine) == 0
    # December is charged with the new amount
    await tick(factory, city, DUE + MONTH)
    assert [c["amount"] for c in await ledger(sandbox)][1:] == [20_000]


async def test_an_amount_changed_before_the_first_charge_is_charged_as_changed(
    engine: AsyncEngine,
    factory: UnitOfWorkFactory,
    city: CityClient,
    sandbox: SandboxServer,
) -> None:
    """No key on record yet (the crash came before the city heard anything: the run is made
    at its first attempt); the run's amount is the one charged."""
    autopay_id = await crashed(factory, city, charged=False)
    async with factory() as uow:
        resident = await uow.residents.get(RESIDENT)
        assert resident is not None
        await change(uow, resident, autopay_id, DUE + timedelta(minutes=1), money=20_000)
    await tick(factory, city, AFTER_LEASE)
    charges = await ledger(sandbox)
    [run] = await runs(factory, autopay_id)
    assert [(c["idempotence_key"], c["amount"]) for c in charges] == [(run.key, run.amount)]
    assert run.status is RunStatus.SUCCEEDED and run.amount == 20_000


# ---- what the general path decides (filtered before the runs are made) ---------------------


async def test_skipped_unlinked_and_over_ceiling_autopays_are_charged_nothing_and_freed(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    ids = await add(factory, 4)
    async with factory() as uow:
        resident = await uow.residents.get(RESIDENT)
        assert resident is not None
        assert await skip_once(uow, resident, ids[0], PERIOD) is not None
    async with factory() as uow:
        autopay = await uow.autopays.get(ids[1])
        assert autopay is not None
        autopay.amount = 60_000
        await uow.autopays.save(autopay)
        await uow.commit()
    ceiling = 50_000
    limits = AmountLimits(donation=ceiling)
    outcomes: list[str] = []
    assert await tick(factory, city, DUE, outcomes, limits) == 4
    assert Counter(outcomes) == {"skipped": 1, "paused": 1, "succeeded": 2}
    assert sorted(int(k.split("-")[1]) for k in keys(await ledger(sandbox))) == ids[2:]
    assert [r.status for r in await runs(factory, ids[0])] == [RunStatus.SKIPPED]
    [over] = await runs(factory, ids[1])
    assert (over.status, over.attempts, over.failure) == (RunStatus.FAILED, 0, "over_ceiling")
    assert (await stored(factory, ids[1])).paused_reason is PauseReason.OVER_CEILING
    assert await leased(engine) == 0
    # the resident row gone (a refused refresh) but the autopays kept: link again, paused
    more = await add(factory, 1)
    async with factory() as uow:
        await uow.residents.delete(RESIDENT)
        await uow.commit()
    outcomes = []
    assert await tick(factory, city, DUE, outcomes, limits) == 1
    assert outcomes == ["paused"]
    [relink] = await runs(factory, more[0])
    assert (relink.status, relink.attempts) == (RunStatus.FAILED, 0)  # no key was recorded
    assert (await stored(factory, more[0])).paused_reason is PauseReason.RELINK
    assert len(await ledger(sandbox)) == 2
    assert await leased(engine) == 0


# ---- leases: paused or deleted between charge and record; re-claimed meanwhile -------------


class ActsDuringTheCharge(InFlight):
    """While `target`'s charge is at the city (sent, not answered), the resident acts."""

    def __init__(
        self, city: CityClient, factory: UnitOfWorkFactory, target: int, status: AutopayStatus
    ) -> None:
        super().__init__(city)
        self._factory, self._target, self._status = factory, target, status

    async def create_payment(self, *args: Any, **kwargs: Any) -> Payment:
        payment = await super().create_payment(*args, **kwargs)
        if int(args[1].split("-")[1]) == self._target:
            await act(self._factory, self._target, self._status)
        return payment


@pytest.mark.parametrize("status", [AutopayStatus.PAUSED, AutopayStatus.DELETED])
async def test_paused_or_deleted_between_charge_and_record_ends_the_lease(
    engine: AsyncEngine,
    factory: UnitOfWorkFactory,
    city: CityClient,
    sandbox: SandboxServer,
    status: AutopayStatus,
) -> None:
    ids = await add(factory, 4)
    acting = ActsDuringTheCharge(city, factory, ids[1], status)
    outcomes: list[str] = []
    assert await tick(factory, acting, DUE, outcomes, concurrency=2) == 4
    assert outcomes == [RunStatus.SUCCEEDED.value] * 4
    assert keys(await ledger(sandbox)) == {key(i): 1 for i in ids}
    for autopay_id in ids:
        assert await lease_of(engine, autopay_id) is None
        assert [r.status for r in await runs(factory, autopay_id)] == [RunStatus.SUCCEEDED]
    acted = await stored(factory, ids[1])
    assert acted.status is status  # the resident's act stands
    assert await tick(factory, city, DUE + MONTH) == 3  # and it is not charged in December
    assert Counter(int(k.split("-")[1]) for k in keys(await ledger(sandbox)))[ids[1]] == 1


@pytest.mark.parametrize("deleted", [False, True])
async def test_a_record_after_the_lease_was_taken_over_leaves_the_new_lease(
    engine: AsyncEngine,
    factory: UnitOfWorkFactory,
    city: CityClient,
    sandbox: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
    deleted: bool,
) -> None:
    """Scheduler A's success for X waits to be recorded longer than the lease; scheduler B
    claims X and, its run in doubt (the key on record), asks the city about the key — held
    there. A records first: X's lease is B's and must stay B's (`deleted`: the resident deleted
    X meanwhile, released separately); then B finds A's payment and records it. One charge,
    one notice, the schedule moved once."""
    [x] = await add(factory, 1)
    original = autopaying._Run._record
    gate, waiting = asyncio.Event(), asyncio.Event()

    async def gated(self: Any, paid: list[Any]) -> None:
        waiting.set()
        await gate.wait()
        await original(self, paid)

    monkeypatch.setattr(autopaying._Run, "_record", gated)
    first = asyncio.ensure_future(tick(factory, city, DUE))
    await asyncio.wait_for(waiting.wait(), 10)
    second_at = DUE + LEASE + timedelta(minutes=1)
    held = Gated(city, {x})
    second = asyncio.ensure_future(tick(factory, held, second_at))
    await asyncio.wait_for(held.entered.wait(), 10)
    assert keys(await ledger(sandbox)) == {key(x): 1}
    assert await lease_of(engine, x) == second_at + LEASE  # B holds X
    if deleted:
        await act(factory, x, AutopayStatus.DELETED, second_at)
    gate.set()
    await asyncio.wait_for(first, 10)
    assert await lease_of(engine, x) == second_at + LEASE  # A ended nothing of B's
    assert [r.status for r in await runs(factory, x)] == [RunStatus.SUCCEEDED]
    held.go.set()
    await asyncio.wait_for(second, 10)
    assert await lease_of(engine, x) is None  # B's end ends B's lease
    assert keys(await ledger(sandbox)) == {key(x): 1}
    assert await notices(engine) == {("autopay_paid", f"autopay:{x}:{PERIOD}:succeeded"): 1}
    autopay = await stored(factory, x)
    assert autopay.status is (AutopayStatus.DELETED if deleted else AutopayStatus.ACTIVE)
    if not deleted:
        assert DUE + MONTH / 2 < autopay.next_due_at < DUE + MONTH + MONTH / 2  # December


async def test_a_run_cancelled_in_the_middle_of_a_record_records_once_and_frees_all(
    engine: AsyncEngine,
    factory: UnitOfWorkFactory,
    city: CityClient,
    sandbox: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The record of the successes is made by a worker (RECORD_AT reached); the scheduler is
    cancelled while that record's transaction is under way (its rows locked, runs and notices
    written, the schedules and leases not yet). The run's final record, shielded, records
    them: each once, leases ended."""
    ids = await add(factory, 4)
    monkeypatch.setattr(autopaying, "RECORD_AT", 2)
    original = SqlAutopayRepository.save_progress_many
    inside = asyncio.Event()
    calls = 0

    async def stuck(self: SqlAutopayRepository, *args: Any, **kwargs: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            inside.set()
            await asyncio.Event().wait()  # until cancelled
        await original(self, *args, **kwargs)

    monkeypatch.setattr(SqlAutopayRepository, "save_progress_many", stuck)
    run = asyncio.ensure_future(tick(factory, city, DUE, concurrency=2, batch=10))
    await asyncio.wait_for(inside.wait(), 10)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    charged = keys(await ledger(sandbox))
    assert all(count == 1 for count in charged.values())
    recorded = {
        i for i in ids if [r.status for r in await runs(factory, i)] == [RunStatus.SUCCEEDED]
    }
    # Every charge whose answer arrived is recorded; one whose answer was on its way when the
    # cancel came (a loaded machine) is in doubt, as after a crash: STARTED, its key on record,
    # its lease held — looked up after the lease, below.
    assert {key(i) for i in recorded} <= set(charged)
    for autopay_id in ids:
        if key(autopay_id) in charged and autopay_id not in recorded:
            [run] = await runs(factory, autopay_id)
            assert (run.status, run.key) == (RunStatus.STARTED, key(autopay_id))
            assert await lease_of(engine, autopay_id) is not None
    for autopay_id in recorded:  # their leases ended (the unstarted keep theirs: cancelled)
        assert await lease_of(engine, autopay_id) is None
    assert set(await notices(engine)) == {
        ("autopay_paid", f"autopay:{i}:{PERIOD}:succeeded") for i in recorded
    }
    await tick(factory, city, AFTER_LEASE)  # the rest, not charged twice
    assert keys(await ledger(sandbox)) == {key(i): 1 for i in ids}
    for autopay_id in ids:
        assert [r.status for r in await runs(factory, autopay_id)] == [RunStatus.SUCCEEDED]
    assert set(await notices(engine)) == {
        ("autopay_paid", f"autopay:{i}:{PERIOD}:succeeded") for i in ids
    }
    assert await leased(engine) == 0


# ---- the reconciliation of stranded runs ---------------------------------------------------


async def reconcile(factory: UnitOfWorkFactory, payments: Any, now: datetime) -> list[Any]:
    async with factory() as uow:
        return await reconcile_runs(uow, payments, payments, now, now - LEASE)


async def test_a_truly_stranded_run_is_still_found_and_recorded_once(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    """Created at its first attempt by the preparation (one write), charged, the scheduler
    died; the resident deleted it: nobody would send the key again."""
    autopay_id = await crashed(factory, city, charged=True)
    await act(factory, autopay_id, AutopayStatus.DELETED, DUE + timedelta(minutes=1))
    [settled] = await reconcile(factory, city, AFTER_LEASE)
    assert settled.recorded is RunStatus.SUCCEEDED
    [run] = await runs(factory, autopay_id)
    assert (run.status, run.key, run.amount) == (RunStatus.SUCCEEDED, key(autopay_id), 10_000)
    assert await reconcile(factory, city, AFTER_LEASE + timedelta(minutes=1)) == []
    assert keys(await ledger(sandbox)) == {key(autopay_id): 1}


async def test_the_reconciliation_never_takes_a_run_a_scheduler_is_charging(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    """A run left STARTED by a crash (last written long ago: the preparation that takes it up
    writes nothing) is being sent again by a scheduler (lease held) when the resident pauses
    the autopay: it looks stranded but for the lease. The reconciliation leaves it; the
    scheduler records it; once."""
    autopay_id = await crashed(factory, city, charged=True)
    gated = Gated(city, {autopay_id})
    run = asyncio.ensure_future(tick(factory, gated, AFTER_LEASE))
    await asyncio.wait_for(gated.entered.wait(), 10)
    await act(factory, autopay_id, AutopayStatus.PAUSED, AFTER_LEASE)
    assert await reconcile(factory, city, AFTER_LEASE + timedelta(minutes=1)) == []
    [run_now] = await runs(factory, autopay_id)
    assert run_now.status is RunStatus.STARTED
    gated.go.set()
    await asyncio.wait_for(run, 10)
    [done] = await runs(factory, autopay_id)
    assert (done.status, done.key) == (RunStatus.SUCCEEDED, key(autopay_id))
    assert keys(await ledger(sandbox)) == {key(autopay_id): 1}
    assert await notices(engine) == {
        ("autopay_paid", f"autopay:{autopay_id}:{PERIOD}:succeeded"): 1
    }
    assert (await stored(factory, autopay_id)).status is AutopayStatus.PAUSED
    assert await leased(engine) == 0


# ---- several schedulers, mixed histories: the ledger agrees with the runs ------------------


async def test_two_schedulers_over_crashed_declined_and_fresh_runs_charge_each_period_once(
    pg_engine: AsyncEngine, city: CityClient, sandbox: SandboxServer
) -> None:
    first = await linked(pg_engine, city)
    ids = await add(first, 24)
    # a third of them crashed after the charge, a third before: runs STARTED, keys on record
    async with first() as uow:
        for n, autopay_id in enumerate(ids[:16]):
            await uow.autopays.runs_for(
                [(autopay_id, PERIOD, key(autopay_id))], DUE, first_amounts={autopay_id: 10_000}
            )
            if n < 8:  # charged by the dead scheduler
                resident = await uow.residents.get(RESIDENT)
                assert resident is not None
                await city.create_payment(
                    ResidentSession(resident, city, uow),
                    key(autopay_id),
                    payable=(await uow.autopays.get(autopay_id)).payable([]),  # type: ignore[union-attr]
                    amount=10_000,
                    method_id="pm-full-4242",
                )
        await uow.commit()
    second_engine = create_engine(POSTGRES_URL)
    second_city = client(sandbox)
    try:
        processed = await asyncio.gather(
            tick(first, city, DUE, concurrency=3, batch=4),
            tick(uow_factory(second_engine), second_city, DUE, concurrency=2, batch=3),
        )
    finally:
        await second_city.close()
        await second_engine.dispose()
    assert sum(processed) == len(ids)
    charges = await ledger(sandbox)
    assert keys(charges) == {key(i): 1 for i in ids}
    async with pg_engine.connect() as connection:
        rows = (
            await connection.execute(
                select(AutopayRunRow.key, AutopayRunRow.amount, AutopayRunRow.status)
            )
        ).all()
    assert sorted((r.key, r.amount) for r in rows) == sorted(
        (c["idempotence_key"], c["amount"]) for c in charges
    )
    assert {r.status for r in rows} == {RunStatus.SUCCEEDED.value}
    assert len(await notices(pg_engine)) == len(ids)
    assert await leased(pg_engine) == 0


# ---- the lazy unit of work -----------------------------------------------------------------


async def test_a_unit_of_work_used_again_after_exit_gets_a_fresh_session(
    engine: AsyncEngine, factory: UnitOfWorkFactory
) -> None:
    [autopay_id] = await add(factory, 1)
    uow = factory()
    async with uow:
        await uow.commit()  # first use a commit: nothing opened, nothing to do
        assert uow._session is None
    async with uow:
        await uow.session.execute(
            update(AutopayRow).where(AutopayRow.id == autopay_id).values(claimed_until=DUE)
        )
        await uow.commit()
    assert await lease_of(engine, autopay_id) == DUE
    async with uow:  # entered again: a new session, the committed state
        assert (await uow.autopays.get(autopay_id)) is not None
        await uow.autopays.release([autopay_id])
    assert await lease_of(engine, autopay_id) == DUE  # not committed: rolled back on exit
    with pytest.raises(AssertionError):
        _ = uow.autopays  # after exit: refused, not a session nobody will close


# Was (review 20): SqlUnitOfWork.commit() outside `async with` (after exit, or after a nested entry
# ended) does nothing instead of refusing: the writes are silently dropped
async def test_a_commit_with_no_transaction_to_commit_is_refused(
    engine: AsyncEngine, factory: UnitOfWorkFactory
) -> None:
    """A unit of work entered again while inside (nested): the inner exit rolls back and
    closes the outer's session; the outer's commit then finds no session and returns as if
    it committed. Before the lazy session, that commit raised («used outside `async
    with`»). A write lost in silence is the worst outcome of a misuse."""
    [autopay_id] = await add(factory, 1)
    uow = factory()
    async with uow:
        await uow.session.execute(
            update(AutopayRow).where(AutopayRow.id == autopay_id).values(claimed_until=DUE)
        )
        with pytest.raises(RuntimeError):  # nested: the same unit of work is refused …
            async with uow:
                pass
        await uow.commit()  # … and the outer's write is committed, not lost
    with pytest.raises(AssertionError):  # after its exit: refused, not a silent no-op
        await uow.commit()
    assert await lease_of(engine, autopay_id) == DUE


# Was (review 20): a bill autopay's STARTED run, retried after a crash, finds its bill paid (by its
# own charge) and is recorded SKIPPED without asking the city about its key
async def test_a_bill_charged_before_a_crash_is_recorded_as_paid(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    """The general path, for comparison: an on-issue МГТС autopay's bill is charged, the
    scheduler dies before the record. After the lease the run (STARTED, key on record) is
    taken up again: the bill is no longer among the unpaid ones — our own charge paid it —
    so the run ends SKIPPED («paid elsewhere»): 900 ₽ taken, the resident never told, the
    reconciliation never asks (SKIPPED is final). The ledger and the runs disagree."""
    from domain.autopay import Autopay, AutopayKind, Schedule
    from domain.autopaying import set_up
    from domain.bill_discovery import discover_bills
    from domain.bills import BillKind
    from tests.integration.test_autopay_exactly_once import issue_mgts

    start = DUE - timedelta(days=2)
    async with factory() as uow:
        bill = await set_up(
            uow,
            Autopay(
                RESIDENT,
                AutopayKind.BILL,
                Schedule.on_issue(),
                "pm-full-4242",
                start,
                limit=2_000_000,
                bill_kind=BillKind.MGTS,
            ),
            start,
        )
    assert bill.id is not None
    await discover_bills(factory, city, start)  # the baseline
    issue_mgts(sandbox, "11.2026")
    assert (await discover_bills(factory, city, start)).handed == 1
    with pytest.raises(Crash):
        await tick(factory, DiesOnCharge(city, nth=1), DUE)
    [run] = await runs(factory, bill.id)
    assert (run.status, run.attempts) == (RunStatus.STARTED, 1)
    await tick(factory, city, AFTER_LEASE)
    charges = await ledger(sandbox)
    assert [c["idempotence_key"] for c in charges] == [run.key]
    [run] = await runs(factory, bill.id)
    assert (run.status, run.amount) == (RunStatus.SUCCEEDED, charges[0]["amount"])
