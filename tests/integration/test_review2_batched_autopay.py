"""Second review of the batched path for plain autopays (`_Run.next`/`prepare`,
`charge_prepared`, `record_paid`, the lock order): where the first review's tests did not go.
Each test here fails now and says what should hold instead. Real databases (SQLite and
PostgreSQL) and the city sandbox; its ledger is the judge. Faults are injected at the storage
edge only, to hold a transaction at a chosen statement."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import random
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

import domain.autopaying as autopaying
from city.client import CityClient
from domain.autopay import AutopayStatus, RunStatus
from domain.autopaying import set_status, tick
from domain.errors import CityUnavailable
from domain.payments import Payment
from sandbox import SandboxServer
from storage.autopays import SqlAutopayRepository
from storage.database import create_engine
from storage.models import NotificationRow
from storage.notifications import SqlNotificationRepository
from storage.uow import UnitOfWorkFactory
from tests.conftest import POSTGRES_URL
from tests.integration.test_autopay_job import (
    DUE,
    RESIDENT,
    InFlight,
    add,
    charged,
    client,
    leased,
    ledger,
    linked,
    uow_factory,
)

LATER = DUE + timedelta(minutes=6)  # the five-minute leases of a run at DUE have expired


async def paid_notices(engine: AsyncEngine) -> Counter[str]:
    """autopay_paid notices by dedupe key."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(NotificationRow.dedupe_key, func.count())
            .where(NotificationRow.kind == "autopay_paid")
            .group_by(NotificationRow.dedupe_key)
        )
        return Counter({key: count for key, count in rows})


async def run_statuses(factory: UnitOfWorkFactory, autopay_id: int) -> list[RunStatus]:
    async with factory() as uow:
        return [r.status for r in await uow.autopays.runs(autopay_id)]


def autopay_of(key: str) -> int:
    return int(key.split("-")[1])  # ap-<id>-<period>-<attempt>


async def pause(factory: UnitOfWorkFactory, autopay_id: int) -> None:
    async with factory() as uow:
        resident = await uow.residents.get(RESIDENT)
        assert resident is not None
        await set_status(uow, resident, autopay_id, AutopayStatus.PAUSED, DUE)


# ---- findings -----------------------------------------------------------------------------


async def test_a_stop_during_a_preparation_frees_the_prepared_autopays(
    engine: AsyncEngine,
    factory: UnitOfWorkFactory,
    city: CityClient,
    sandbox: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The scheduler is told to stop (`stopping()` turns true: `stop_scheduler`) while a
    chunk's statements are under way. `_next` checks `stopping` before it looks at `ready`,
    so the prepared chunk — keys recorded, nothing sent — is left in `ready`, and `tick` now
    releases only `waiting` (the working-tree change dropped `ready` from what it frees). The
    prepared autopays stay leased for five minutes: a restarted scheduler charges them late,
    and a resident's «Пропустить этот раз» meanwhile is refused as «under way». The tick's
    contract (and docs/ARCHITECTURE.md): what was claimed and not started is released at once."""
    ids = await add(factory, 5)
    stop = False
    original = SqlAutopayRepository.runs_for

    async def shutdown_arrives(self: SqlAutopayRepository, *args: Any, **kwargs: Any) -> Any:
        nonlocal stop
        stop = True  # the scheduler's shutdown, while the preparation's statements run
        return await original(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(SqlAutopayRepository, "runs_for", shutdown_arrives)
        processed = await tick(factory, city, DUE, concurrency=3, batch=10, stopping=lambda: stop)
    assert processed == 0 and charged(await ledger(sandbox)) == []  # nothing was started
    assert await leased(engine) == 0  # now 3: the prepared chunk keeps its leases
    # the scheduler starts again at once: every autopay is charged now, once
    assert await tick(factory, city, DUE) == 5
    assert sorted(charged(await ledger(sandbox))) == ids


class DownFor(InFlight):
    """The real sandbox client; the charges of the autopays in `down` get a 503 (nothing
    reaches the sandbox), those in `held` only once `release` is set."""

    def __init__(self, city: CityClient, down: set[int], held: set[int]) -> None:
        super().__init__(city)
        self.down, self.held = down, held
        self.release = asyncio.Event()

    async def create_payment(self, *args: Any, **kwargs: Any) -> Payment:
        autopay_id = autopay_of(args[1])
        if autopay_id in self.held:
            await self.release.wait()
        if autopay_id in self.down:
            raise CityUnavailable()
        return await self._city.create_payment(*args, **kwargs)


class Outcomes(list[str]):
    """A tick's outcomes; `two` is set when the second one comes."""

    def __init__(self) -> None:
        super().__init__()
        self.two = asyncio.Event()

    def append(self, outcome: str) -> None:
        super().append(outcome)
        if len(self) >= 2:
            self.two.set()


async def test_a_city_found_down_during_a_preparation_frees_the_prepared_autopays(
    engine: AsyncEngine,
    factory: UnitOfWorkFactory,
    city: CityClient,
    sandbox: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same through the «city is down» rule, with no shutdown: batches of 2, A and B both
    answered 503. A's worker, free first, claims the next batch (C, D) and prepares C; B's 503
    comes while C's statements are under way and halts the run (a whole batch unanswered).
    The preparer then sees `halted` before it takes C: C stays prepared in `ready`, its key
    recorded, never sent — and leased for five minutes, while D (never prepared) is freed.
    When the city is back a moment later C waits for its lease. Seen without any hook too:
    30 autopays, batches of 3, a city that answers nothing leaves 1–2 leased in most runs."""
    if engine.dialect.name == "sqlite":
        # The hook keeps C's preparation open until B's 503 is recorded; on SQLite that
        # preparation holds the database's write lock (`lock_on_sqlite`), so B's record would
        # wait for it: a wait of the hook's own making. The rule under test is the run's.
        pytest.skip("the hook's wait would hold SQLite's write lock against B's record")
    a, b, c, d = await add(factory, 4)
    down = DownFor(city, down={a, b}, held={b})
    outcomes = Outcomes()
    original = SqlAutopayRepository.runs_for
    calls = 0

    async def b_answers_meanwhile(self: SqlAutopayRepository, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:  # the second batch's preparation: B's 503 comes now
            down.release.set()
            await asyncio.wait_for(outcomes.two.wait(), 10)  # B done: the run is halted
        return await original(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(SqlAutopayRepository, "runs_for", b_answers_meanwhile)
        processed = await tick(factory, down, DUE, outcomes, concurrency=2, batch=2)
    assert processed == 2 and outcomes == ["unavailable"] * 2  # the run halted
    assert charged(await ledger(sandbox)) == []
    assert await leased(engine) == 0  # now 1: C, prepared and never sent
    # the city is back: C and D are due and free (A and B were pushed back two minutes)
    assert await tick(factory, city, DUE) == 2
    assert sorted(charged(await ledger(sandbox))) == [c, d]


async def test_a_run_cancelled_while_a_full_record_is_written_keeps_the_record(
    engine: AsyncEngine,
    factory: UnitOfWorkFactory,
    city: CityClient,
    sandbox: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """RECORD_AT successes waiting: the worker that brought the last one records them itself
    (`charge_prepared` → `record_paid`), unshielded. The scheduler's shutdown cancels the run
    while that record's transaction is under way: the transaction is rolled back and the
    successes, already taken out of `paid`, are gone — the shielded final `record_paid` finds
    nothing to record. The city has the money; the runs stay STARTED, nobody is told; a
    resident who, seeing nothing paid, pauses before the leases expire is never recorded nor
    told at all. (The timer's record, by contrast, is waited for.) RECORD_AT is lowered to the
    three charges of this run and the timer pushed away, so that the RECORD_AT record is
    the one cut; with 50 the same happens to 50 charges."""
    ids = await add(factory, 3)
    monkeypatch.setattr(autopaying, "RECORD_AT", 3)
    monkeypatch.setattr(autopaying, "RECORD_AFTER", 60.0)
    original = SqlNotificationRepository.add_all_once
    recording = asyncio.Event()
    calls = 0

    async def slow_record(self: SqlNotificationRepository, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:  # the record's transaction is under way (a slow database)
            recording.set()
            await asyncio.Event().wait()
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(SqlNotificationRepository, "add_all_once", slow_record)
    run = asyncio.ensure_future(tick(factory, city, DUE, concurrency=3, batch=10))
    await asyncio.wait_for(recording.wait(), 10)
    run.cancel()  # the scheduler's shutdown
    with pytest.raises(asyncio.CancelledError):
        await run
    assert sorted(charged(await ledger(sandbox))) == ids  # the money is taken
    # what should hold: the charges the city answered are recorded, the resident told
    assert {i: await run_statuses(factory, i) for i in ids} == {
        i: [RunStatus.SUCCEEDED] for i in ids
    }
    assert await paid_notices(engine) == {f"autopay:{i}:2026-11:succeeded": 1 for i in ids}


WHO: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="")


async def test_a_decline_recorded_while_another_scheduler_prepares_does_not_deadlock(
    pg_engine: AsyncEngine,
    city: CityClient,
    sandbox: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The lock order («the autopay's row before its run's», to end the deadlock with a
    preparation) is not kept by `_after_payment`'s retry branch for a plain autopay: it locks
    the autopay's row only `if autopay.on_issue`, so a decline (RETRYING) writes the run
    (`save_run`: its row locked) and then the autopay (`save_progress`). The first scheduler's
    decline of X is being recorded when X's lease has expired and a second scheduler prepares
    X: `lock_many` holds X's row and `runs_for` (ON CONFLICT DO UPDATE) waits for X's run —
    held by the first, which now waits for X's row. PostgreSQL breaks the deadlock by
    failing one of them: a tick raises «deadlock detected». The statements are only held
    apart (the first one's `save_progress` starts when the second waits on the run), the same
    interleaving a slow database gives."""
    first = await linked(pg_engine, city)
    (declined,) = await add(first, 1)
    async with first() as uow:
        autopay = await uow.autopays.get(declined)
        assert autopay is not None
        autopay.method_id = "pm-full-0002"  # the bank declines: tried again tomorrow
        await uow.autopays.save(autopay)
        await uow.commit()
    run_written, second_waits = asyncio.Event(), asyncio.Event()
    save_progress, runs_for = SqlAutopayRepository.save_progress, SqlAutopayRepository.runs_for

    async def first_pauses(self: SqlAutopayRepository, *args: Any, **kwargs: Any) -> Any:
        if WHO.get() == "first" and not run_written.is_set():
            run_written.set()  # the decline's run row is written (locked), not yet the autopay
            # With the autopay's row locked first (the fix), the second waits in `lock_many`
            # and never reaches `runs_for`: after 2 s the first goes on, and so does the second.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(second_waits.wait(), 2)
                await asyncio.sleep(0.3)  # the second one's runs_for is waiting on the run row
        return await save_progress(self, *args, **kwargs)

    async def second_marks(self: SqlAutopayRepository, *args: Any, **kwargs: Any) -> Any:
        if WHO.get() == "second":
            second_waits.set()  # X's autopay row is locked by this preparation (lock_many)
        return await runs_for(self, *args, **kwargs)

    monkeypatch.setattr(SqlAutopayRepository, "save_progress", first_pauses)
    monkeypatch.setattr(SqlAutopayRepository, "runs_for", second_marks)
    WHO.set("first")
    one = asyncio.ensure_future(tick(first, city, DUE, concurrency=1, batch=1))
    await asyncio.wait_for(run_written.wait(), 10)
    second_engine = create_engine(POSTGRES_URL)
    second_city = client(sandbox)
    try:
        WHO.set("second")
        two = asyncio.ensure_future(
            tick(uow_factory(second_engine), second_city, LATER, concurrency=1, batch=1)
        )
        WHO.set("")
        results = await asyncio.wait_for(asyncio.gather(one, two, return_exceptions=True), 30)
    finally:
        await second_city.close()
        await second_engine.dispose()
    assert [repr(r) for r in results if isinstance(r, BaseException)] == []
    keys = Counter(c["idempotence_key"] for c in await ledger(sandbox))
    assert keys == {}  # declined: nothing charged
    assert await run_statuses(first, declined) == [RunStatus.RETRYING]
    assert await leased(pg_engine) == 0


class Jitter(InFlight):
    """The real sandbox client, each charge a few random milliseconds slow (seeded)."""

    def __init__(self, city: CityClient, seed: int) -> None:
        super().__init__(city)
        self.random = random.Random(seed)

    async def create_payment(self, *args: Any, **kwargs: Any) -> Payment:
        await asyncio.sleep(self.random.random() * 0.03)
        return await self._city.create_payment(*args, **kwargs)


@pytest.mark.parametrize("seed", range(10))
async def test_two_schedulers_with_expired_leases_and_declines_do_not_deadlock(
    pg_engine: AsyncEngine, city: CityClient, sandbox: SandboxServer, seed: int
) -> None:
    """The same deadlock with no hook at all: two schedulers on PostgreSQL, the second one's
    leases taken after the first one's expired (it runs at DUE + 6 min), tiny batches, a
    quarter of the cards declined. About 4 runs in 10 end with «deadlock detected» raised by
    one tick (each single item here fails about 40 % of the time); with every card good
    (no retry branch) none did in 10 runs. The money held in every run: each key charged
    once, one notice each, the runs right."""
    first = await linked(pg_engine, city)
    ids = await add(first, 40)
    declined = set(ids[::4])
    async with first() as uow:
        for autopay_id in declined:
            autopay = await uow.autopays.get(autopay_id)
            assert autopay is not None
            autopay.method_id = "pm-full-0002"
            await uow.autopays.save(autopay)
        await uow.commit()
    second_engine = create_engine(POSTGRES_URL)
    second_city = client(sandbox)
    try:
        results = await asyncio.gather(
            tick(first, Jitter(city, seed), DUE, concurrency=3, batch=3),
            tick(
                uow_factory(second_engine),
                Jitter(second_city, seed + 100),
                LATER,
                concurrency=4,
                batch=2,
            ),
            return_exceptions=True,
        )
    finally:
        await second_city.close()
        await second_engine.dispose()
    keys = Counter(c["idempotence_key"] for c in await ledger(sandbox))
    assert keys == {f"ap-{i}-2026-11-1": 1 for i in ids if i not in declined}
    assert await paid_notices(pg_engine) == {
        f"autopay:{i}:2026-11:succeeded": 1 for i in ids if i not in declined
    }
    assert [repr(r) for r in results if isinstance(r, BaseException)] == []
