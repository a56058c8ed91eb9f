"""Plain autopays (donations of a fixed amount on a schedule) are charged with a few statements a
batch, not a dozen an autopay (issue 14, «batched claims and writes»): their runs and keys are
recorded for the whole batch before any charge, and successful charges are recorded together.
The guarantees stay: a key on record before the city hears it, one charge per period across a
crash between the charge and its record, a resident's pause or unlinking meanwhile stands.
Real databases (SQLite and PostgreSQL) and the city sandbox; its ledger is the judge."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from city.client import CityClient
from domain import autopaying
from domain.autopay import AutopayStatus, PauseReason, RunStatus
from domain.autopaying import TICK_BATCH, tick
from domain.linking import forget_account_data
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


def statements_of(engine: AsyncEngine) -> tuple[list[str], Any]:
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    return statements, count


async def notices(engine: AsyncEngine) -> Counter[str]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(NotificationRow.kind, func.count()).group_by(NotificationRow.kind)
        )
        return Counter({kind: count for kind, count in rows})


async def test_a_batch_of_plain_autopays_costs_a_few_statements_not_a_dozen_each(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    ids = await add(factory, TICK_BATCH)
    statements, count = statements_of(engine)
    try:
        outcomes: list[str] = []
        # the city holds each call until 8 are in flight: the workers come back together, as
        # on a loaded machine, so each preparation takes the 8 (not a matter of timing)
        together = InFlight(city, gather=8)
        assert await tick(factory, together, DUE, outcomes, concurrency=8) == TICK_BATCH
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)
    assert Counter(outcomes) == {RunStatus.SUCCEEDED.value: TICK_BATCH}
    assert sorted(charged(await ledger(sandbox))) == ids  # each once
    # claims; the autopays prepared together, as many as workers waited for one at that
    # moment (lock — on SQLite a no-op UPDATE first —, runs created or found, residents, keys:
    # 4–5 statements each time, ~4 autopays a time here); the charges recorded together (lock,
    # runs, notices, schedules, leases: 5). The general path took 12–14 an autopay (600+ here).
    assert len(statements) < 3 * TICK_BATCH, statements
    assert await leased(engine) == 0
    assert await notices(engine) == {"autopay_paid": TICK_BATCH}
    async with factory() as uow:
        for autopay_id in ids:
            runs = await uow.autopays.runs(autopay_id)
            assert [(r.status, r.key, r.amount) for r in runs] == [
                (RunStatus.SUCCEEDED, f"ap-{autopay_id}-2026-11-1", 10_000)
            ]
            stored = await uow.autopays.get(autopay_id)
            assert stored is not None and stored.next_due_at > DUE  # moved to December
    assert await tick(factory, city, DUE) == 0  # nothing due any more


class RecordingFails(Exception):
    """The database refuses the transaction that records the successful charges."""


async def test_a_crash_before_the_charges_are_recorded_charges_nobody_twice(
    engine: AsyncEngine,
    factory: UnitOfWorkFactory,
    city: CityClient,
    sandbox: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = await add(factory, 12)

    async def refuse(*_args: Any, **_kwargs: Any) -> int:
        raise RecordingFails()

    with monkeypatch.context() as patch:
        patch.setattr(SqlNotificationRepository, "add_all_once", refuse)
        with pytest.raises(RecordingFails):
            await tick(factory, city, DUE)
    assert sorted(charged(await ledger(sandbox))) == ids  # charged, nothing recorded
    assert await leased(engine) == 12  # their leases stay: nobody takes them meanwhile
    assert await tick(factory, city, DUE) == 0
    async with factory() as uow:  # the keys are on record, the runs STARTED
        assert {(await uow.autopays.runs(i))[0].status for i in ids} == {RunStatus.STARTED}
    # the leases expire: the next run sends the same keys; the city answers with the payments
    # it made, and they are recorded — no second charge
    outcomes: list[str] = []
    assert await tick(factory, city, DUE + timedelta(minutes=6), outcomes) == 12
    assert outcomes == [RunStatus.SUCCEEDED.value] * 12
    keys = Counter(c["idempotence_key"] for c in await ledger(sandbox))
    assert keys == {f"ap-{autopay_id}-2026-11-1": 1 for autopay_id in ids}
    assert await notices(engine) == {"autopay_paid": 12}
    assert await leased(engine) == 0


class ActsDuringTheCharge(InFlight):
    """The real sandbox client; while the `nth` charge is at the city, the resident acts."""

    def __init__(self, city: CityClient, factory: UnitOfWorkFactory, nth: int, act: str) -> None:
        super().__init__(city)
        self._factory, self._nth, self._act = factory, nth, act

    async def create_payment(self, *args: Any, **kwargs: Any) -> Payment:
        if self.calls + 1 == self._nth:
            async with self._factory() as uow:
                if self._act == "unlink":
                    await forget_account_data(uow, RESIDENT)
                else:
                    autopay_id = int(args[1].split("-")[1])  # the key: ap-<id>-<period>-<n>
                    autopay = await uow.autopays.get(autopay_id)
                    assert autopay is not None
                    autopay.pause(PauseReason.BY_RESIDENT)
                    await uow.autopays.save(autopay)
                await uow.commit()
        return await super().create_payment(*args, **kwargs)


async def test_a_pause_during_the_charge_stands_when_the_batch_is_recorded(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    ids = await add(factory, 5)
    acting = ActsDuringTheCharge(city, factory, nth=2, act="pause")
    assert await tick(factory, acting, DUE, concurrency=1) == 5
    assert sorted(charged(await ledger(sandbox))) == ids  # the charge was under way: it went
    async with factory() as uow:
        paused = await uow.autopays.get(ids[1])
        assert paused is not None and paused.status is AutopayStatus.PAUSED  # not undone
        assert [r.status for r in await uow.autopays.runs(ids[1])] == [RunStatus.SUCCEEDED]
    assert await notices(engine) == {"autopay_paid": 5}  # told of what was charged
    # a month later: the paused one is not charged again
    assert await tick(factory, city, DUE + timedelta(days=31)) == 4
    assert Counter(charged(await ledger(sandbox)))[ids[1]] == 1


async def test_unlinking_during_the_charge_tells_nobody_and_keeps_what_was_charged(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    ids = await add(factory, 4)
    acting = ActsDuringTheCharge(city, factory, nth=3, act="unlink")
    outcomes: list[str] = []
    await tick(factory, acting, DUE, outcomes, concurrency=1)
    assert len(charged(await ledger(sandbox))) == 3  # the fourth was never charged
    assert await notices(engine) == {}  # the resident is gone: nothing is written to them
    async with factory() as uow:
        statuses = [[r.status for r in await uow.autopays.runs(i)] for i in ids]
        stored = [await uow.autopays.get(i) for i in ids]
    assert statuses[:3] == [[RunStatus.SUCCEEDED]] * 3  # what was charged stays recorded
    assert all(a is not None and a.status is AutopayStatus.DELETED for a in stored)
    assert await leased(engine) == 0


@pytest.mark.parametrize("nth", [1, 7])
async def test_two_schedulers_on_postgresql_charge_each_plain_autopay_once(
    pg_engine: AsyncEngine,
    city: CityClient,
    sandbox: SandboxServer,
    nth: int,
) -> None:
    """Small batches so that the two runs interleave batch after batch."""
    first = await linked(pg_engine, city)
    ids = await add(first, 60)
    second_engine = create_engine(POSTGRES_URL)
    second_city = client(sandbox)
    try:
        processed = await asyncio.gather(
            tick(first, city, DUE, concurrency=nth, batch=nth + 2),
            tick(uow_factory(second_engine), second_city, DUE, concurrency=3, batch=5),
        )
    finally:
        await second_city.close()
        await second_engine.dispose()
    assert sum(processed) == len(ids)
    keys = Counter(c["idempotence_key"] for c in await ledger(sandbox))
    assert keys == {f"ap-{autopay_id}-2026-11-1": 1 for autopay_id in ids}
    assert await notices(pg_engine) == {"autopay_paid": 60}


class Jumping:
    """`time` for the run: every look at the monotonic clock is a second later, so a prepared
    autopay is always found to have waited past FRESH_FOR and is read again before its charge."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        self.now += 1.0
        return self.now


async def test_a_prepared_autopay_that_waited_is_read_again_keeps_its_key_and_sees_a_pause(
    engine: AsyncEngine,
    factory: UnitOfWorkFactory,
    city: CityClient,
    sandbox: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = await add(factory, 3)
    original = SqlAutopayRepository.lock_many
    reads = 0

    async def paused_before_the_second_read(
        self: SqlAutopayRepository, *args: Any, **kwargs: Any
    ) -> Any:
        nonlocal reads
        reads += 1
        if reads == 2:  # the first chunk was prepared; the resident pauses its second autopay
            async with factory() as uow:
                autopay = await uow.autopays.get(ids[1])
                assert autopay is not None
                autopay.pause(PauseReason.BY_RESIDENT)
                await uow.autopays.save(autopay)
                await uow.commit()
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(autopaying, "time", Jumping())
    monkeypatch.setattr(SqlAutopayRepository, "lock_many", paused_before_the_second_read)
    outcomes: list[str] = []
    assert await tick(factory, city, DUE, outcomes, concurrency=2) == 3
    assert Counter(outcomes) == {RunStatus.SUCCEEDED.value: 2, "inactive": 1}
    keys = Counter(c["idempotence_key"] for c in await ledger(sandbox))
    assert keys == {f"ap-{i}-2026-11-1": 1 for i in (ids[0], ids[2])}  # read again: same key
    assert reads > 2  # the waited ones were read again
    assert await leased(engine) == 0
