"""The autopay job runs continuously (issue 14, «Autopay bounded by the city»): one run charges
every due autopay, batch after batch, oldest due first, with at most `concurrency` city calls
in flight; a batch is claimed with one statement; two runs at once charge each autopay once.
Real databases and the city sandbox; its ledger is the judge."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from city.client import CityClient
from domain.accounts import AccountLevel, Resident, TokenSet
from domain.autopay import MOSCOW, Autopay, AutopayKind, Frequency, RunStatus, Schedule
from domain.autopaying import TICK_BATCH, tick
from domain.payments import Payment
from sandbox import SandboxServer
from storage.database import create_engine, create_sessionmaker
from storage.models import AutopayRow
from storage.token_cipher import TokenCipher
from storage.uow import UnitOfWorkFactory
from tests.conftest import POSTGRES_URL
from tests.contract.test_city_client import REDIRECT, VERIFIER, login_code

START = datetime(2026, 11, 24, 12, 0, tzinfo=MOSCOW)
DUE = datetime(2026, 11, 25, 10, 0, 1, tzinfo=MOSCOW)
RESIDENT = 7
KEY = TokenCipher.generate_key()  # every factory of a test reads the same stored tokens


def client(sandbox: SandboxServer) -> CityClient:
    return CityClient(
        sandbox.url, client_id="resident-bot", client_secret="sandbox-secret", redirect_uri=REDIRECT
    )


def uow_factory(engine: AsyncEngine) -> UnitOfWorkFactory:
    return UnitOfWorkFactory(create_sessionmaker(engine), TokenCipher([KEY]))


async def linked(engine: AsyncEngine, city: CityClient) -> UnitOfWorkFactory:
    factory = uow_factory(engine)
    tokens = await city.exchange_code(
        code=await login_code(city, "demo-full"), code_verifier=VERIFIER
    )
    async with factory() as uow:
        await uow.residents.save(
            Resident(RESIDENT, RESIDENT, "C-100003", AccountLevel.FULL, "Мария В.", tokens, START)
        )
        await uow.commit()
    return factory


async def add(
    factory: UnitOfWorkFactory, count: int, due: datetime = DUE - timedelta(seconds=1)
) -> list[int]:
    """`count` monthly 100 ₽ donations to F-101, all due at `due`."""
    ids = []
    async with factory() as uow:
        for _ in range(count):
            autopay = Autopay(
                telegram_user_id=RESIDENT,
                kind=AutopayKind.FIXED,
                schedule=Schedule(Frequency.MONTHLY, 25),
                method_id="pm-full-4242",
                next_due_at=due,
                amount=10_000,
                fund_id="F-101",
                fund_name="Фонд",
            )
            await uow.autopays.add(autopay, START)
            assert autopay.id is not None
            ids.append(autopay.id)
        await uow.commit()
    return ids


async def ledger(sandbox: SandboxServer) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as http:
        async with http.get(sandbox.url + "/sandbox/ledger") as answer:
            charges: list[dict[str, Any]] = (await answer.json())["charges"]
            return charges


def charged(charges: list[dict[str, Any]]) -> list[int]:
    """Autopay ids in the order the sandbox charged them (keys ap-<id>-<period>-<attempt>)."""
    return [int(c["idempotence_key"].split("-")[1]) for c in charges]


async def leased(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        count = await connection.scalar(
            select(func.count()).where(AutopayRow.claimed_until.is_not(None))
        )
        return int(count or 0)


class InFlight:
    """The real sandbox client, counting the create_payment calls under way at once. With
    `gather`, a call waits (up to a second) until that many are under way before it goes on,
    so a run that can overlap that many does, whatever the machine's speed."""

    def __init__(self, city: CityClient, gather: int = 0) -> None:
        self._city, self._gather = city, gather
        self.now, self.most, self.calls = 0, 0, 0
        self._full = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._city, name)

    async def create_payment(self, *args: Any, **kwargs: Any) -> Payment:
        self.now += 1
        self.calls += 1
        self.most = max(self.most, self.now)
        try:
            if self.now >= self._gather:
                self._full.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), 1.0)
                await asyncio.sleep(0.02)  # held a moment: one call too many would show here
            return await self._city.create_payment(*args, **kwargs)
        finally:
            self.now -= 1
            if self.now == 0:
                self._full.clear()


async def test_one_run_charges_every_due_autopay_batch_after_batch(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    ids = await add(factory, 3 * TICK_BATCH)
    outcomes: list[str] = []
    assert await tick(factory, city, DUE, outcomes) == 3 * TICK_BATCH  # one job call
    assert Counter(outcomes) == {RunStatus.SUCCEEDED.value: 3 * TICK_BATCH}
    assert sorted(charged(await ledger(sandbox))) == ids  # each once
    assert await leased(engine) == 0  # every lease ended with its autopay's outcome
    assert await tick(factory, city, DUE) == 0  # nothing is due any more


async def test_oldest_due_first(
    factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    """One worker: the sandbox sees the charges in the run's order, by (next_due_at, id)."""
    later = await add(factory, 3, due=DUE - timedelta(minutes=1))
    earlier = await add(factory, 3, due=DUE - timedelta(hours=1))
    await tick(factory, city, DUE, concurrency=1, batch=2)
    assert charged(await ledger(sandbox)) == earlier + later


async def test_never_more_city_calls_in_flight_than_the_concurrency(
    factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    counting = InFlight(city, gather=3)
    await add(factory, 3 * 10)
    assert await tick(factory, counting, DUE, concurrency=3, batch=10) == 30
    assert counting.calls == 30
    assert counting.most == 3  # used to the full, never beyond
    assert len(await ledger(sandbox)) == 30


async def test_two_runs_at_once_charge_each_autopay_exactly_once(
    pg_engine: AsyncEngine, city: CityClient, sandbox: SandboxServer
) -> None:
    """Two schedulers: two engines (connection pools) and two city clients, one PostgreSQL."""
    first = await linked(pg_engine, city)
    ids = await add(first, 3 * TICK_BATCH)
    second_engine = create_engine(POSTGRES_URL)
    second_city = client(sandbox)
    try:
        processed = await asyncio.gather(
            tick(first, InFlight(city), DUE, concurrency=4),
            tick(uow_factory(second_engine), InFlight(second_city), DUE, concurrency=4),
        )
    finally:
        await second_city.close()
        await second_engine.dispose()
    assert sum(processed) == len(ids)  # none handled twice
    keys = Counter(c["idempotence_key"] for c in await ledger(sandbox))
    assert keys == {f"ap-{autopay_id}-2026-11-1": 1 for autopay_id in ids}  # none missed
    async with first() as uow:
        for autopay_id in ids:
            assert [r.status for r in await uow.autopays.runs(autopay_id)] == [RunStatus.SUCCEEDED]


async def test_a_claim_is_one_statement(engine: AsyncEngine, factory: UnitOfWorkFactory) -> None:
    ids = await add(factory, 12)
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    async with factory() as uow:
        event.listen(engine.sync_engine, "before_cursor_execute", count)
        try:
            claimed = await uow.autopays.claim_due(DUE, 5)
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", count)
        await uow.commit()
    assert len(statements) == 1 and statements[0].lstrip().upper().startswith("UPDATE")
    assert [a.id for a in claimed] == ids[:5]  # oldest first (same moment: by id)
    async with factory() as uow:  # leased: the next claim takes the next ones
        assert [a.id for a in await uow.autopays.claim_due(DUE, 5)] == ids[5:10]


async def test_a_run_asked_to_stop_starts_nothing_more_and_frees_what_it_claimed(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    ids = await add(factory, 20)
    outcomes: list[str] = []
    processed = await tick(
        factory, city, DUE, outcomes, concurrency=1, batch=10, stopping=lambda: len(outcomes) >= 3
    )
    assert processed == 3 and charged(await ledger(sandbox)) == ids[:3]
    assert await leased(engine) == 0  # the 7 claimed, never started, are free at once
    assert await tick(factory, city, DUE) == 17  # the next run takes them, none twice
    assert sorted(charged(await ledger(sandbox))) == ids


class CountingRefreshes(InFlight):
    """InFlight, also counting the token refreshes asked of the real sandbox client."""

    def __init__(self, city: CityClient, gather: int = 0) -> None:
        super().__init__(city, gather)
        self.refreshes = 0

    async def refresh(self, refresh_token: str) -> TokenSet:
        self.refreshes += 1
        return await self._city.refresh(refresh_token)


async def test_charges_of_one_resident_under_way_at_once_refresh_the_tokens_once(
    factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    """The stored access token is stale: three charges meet the 401 together. The city rotates
    refresh tokens, so a second refresh with the spent one would unlink the resident."""
    async with factory() as uow:
        resident = await uow.residents.get(RESIDENT)
        assert resident is not None
        stale = TokenSet("stale-access", resident.tokens.refresh_token, START)
        await uow.residents.save(replace(resident, tokens=stale))
        await uow.commit()
    ids = await add(factory, 3)
    counting = CountingRefreshes(city, gather=3)
    outcomes: list[str] = []
    assert await tick(factory, counting, DUE, outcomes, concurrency=3) == 3
    assert counting.most == 3 and counting.refreshes == 1
    assert outcomes == [RunStatus.SUCCEEDED.value] * 3
    assert sorted(charged(await ledger(sandbox))) == ids
    async with factory() as uow:
        resident = await uow.residents.get(RESIDENT)
    assert resident is not None and resident.tokens.access_token != "stale-access"  # saved


async def test_two_claims_at_once_take_different_autopays_without_waiting(
    pg_engine: AsyncEngine, city: CityClient
) -> None:
    """PostgreSQL: a claim whose transaction is still open holds its rows; a second scheduler's
    claim skips them at once (SKIP LOCKED) — it neither waits for nor takes the same ones."""
    factory = await linked(pg_engine, city)
    ids = await add(factory, 12)
    async with factory() as first, factory() as second:
        held = await first.autopays.claim_due(DUE, 5)  # not committed yet
        other = await asyncio.wait_for(second.autopays.claim_due(DUE, 5), 10)
        await second.commit()
        await first.commit()
    assert [a.id for a in held] == ids[:5] and [a.id for a in other] == ids[5:10]


class Crash(BaseException):
    """The scheduler process dies."""


class DiesOnCharge(InFlight):
    """The real sandbox client; the process dies right after the `nth` charge went through."""

    def __init__(self, city: CityClient, nth: int) -> None:
        super().__init__(city)
        self._nth = nth

    async def create_payment(self, *args: Any, **kwargs: Any) -> Payment:
        number = self.calls + 1  # this call's number (`calls` counts it on entry)
        payment = await super().create_payment(*args, **kwargs)
        if number == self._nth:
            raise Crash()
        return payment


async def test_a_charge_that_breaks_ends_the_run_and_keeps_only_its_own_lease(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    ids = await add(factory, 10)
    with pytest.raises(Crash):
        await tick(factory, DiesOnCharge(city, nth=3), DUE, concurrency=2, batch=10)
    before = charged(await ledger(sandbox))
    # the other worker finishes what it held, no more (in whichever order they reached the city)
    assert sorted(before) in (ids[:3], ids[:4])
    assert await leased(engine) == 1  # the broken one's lease is kept; the others are free
    assert await tick(factory, city, DUE) == 10 - len(before)  # the rest; the broken one waits
    assert await tick(factory, city, DUE + timedelta(minutes=6)) == 1  # its lease expired
    keys = Counter(c["idempotence_key"] for c in await ledger(sandbox))
    assert keys == {f"ap-{autopay_id}-2026-11-1": 1 for autopay_id in ids}  # charged once each
