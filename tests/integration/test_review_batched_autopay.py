"""Review of the batched path for plain autopays (`_Run.prepare`, `charge_prepared`,
`record_paid`): what the general path guaranteed one autopay at a time must still hold when runs
are prepared a chunk at a time and successful charges wait to be recorded together. Real
databases (SQLite and PostgreSQL) and the city sandbox; its ledger is the judge."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace as copy
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from city.client import CityClient
from domain.autopay import AutopayStatus, RunStatus
from domain.autopaying import set_status, skip_once, tick
from domain.payments import Payment
from sandbox import SandboxServer
from storage.autopays import SqlAutopayRepository
from storage.database import create_engine
from storage.models import NotificationRow
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

MONTH = timedelta(days=31)
RECORD_PAID_AFTER = 1.0  # the second the first version promised a success waits at most


def autopay_of(key: str) -> int:
    return int(key.split("-")[1])  # ap-<id>-<period>-<attempt>


class Gated(InFlight):
    """The real sandbox client; the charges of the autopays in `held` wait (before the sandbox
    hears them) until `release` — a city that is slow to answer them. `entered[id]` is set when
    an autopay's charge reaches the city, `answered[id]` when the sandbox answered it."""

    def __init__(self, city: CityClient, held: set[int], *, answered: bool = False) -> None:
        super().__init__(city)
        self.held, self.after = held, answered  # `answered`: held after the sandbox answered
        self.release = asyncio.Event()
        self.entered: dict[int, asyncio.Event] = {}
        self.answered: dict[int, asyncio.Event] = {}

    def event(self, events: dict[int, asyncio.Event], autopay_id: int) -> asyncio.Event:
        return events.setdefault(autopay_id, asyncio.Event())

    async def create_payment(self, *args: Any, **kwargs: Any) -> Payment:
        autopay_id = autopay_of(args[1])
        self.event(self.entered, autopay_id).set()
        if autopay_id in self.held and not self.after:
            await self.release.wait()
        payment = await self._city.create_payment(*args, **kwargs)
        self.event(self.answered, autopay_id).set()
        if autopay_id in self.held and self.after:
            await self.release.wait()
        return payment


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


async def pause(factory: UnitOfWorkFactory, autopay_id: int) -> None:
    async with factory() as uow:
        resident = await uow.residents.get(RESIDENT)
        assert resident is not None
        await set_status(uow, resident, autopay_id, AutopayStatus.PAUSED, DUE)


# ---- findings -----------------------------------------------------------------------------


async def test_a_charge_answered_long_before_a_shutdown_is_recorded(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    """The city answers A «succeeded» at once; B and C hang (a slow city). Well over
    RECORD_PAID_AFTER later the scheduler shuts down and cancels the run (`stop_scheduler`
    after its grace). A was answered seconds ago — the general path recorded it right after the
    answer, and `RECORD_PAID_AFTER` promises it waits at most a second — but `record_paid` is
    only tried when ANOTHER success comes in: A is still in memory, and the cancellation drops
    it. The resident, who sees no payment in the bot, pauses A before its lease expires: A is
    never claimed again, its run stays STARTED for ever, nobody is told of the 100 ₽ taken."""
    a, b, c = await add(factory, 3)
    gated = Gated(city, held={b, c})
    run = asyncio.ensure_future(tick(factory, gated, DUE, concurrency=2, batch=10))
    await asyncio.wait_for(gated.event(gated.answered, a).wait(), 10)
    # A's worker has moved on to C: on the general path A's outcome is committed by now
    await asyncio.wait_for(gated.event(gated.entered, c).wait(), 10)
    await asyncio.sleep(RECORD_PAID_AFTER + 1.0)  # well past the promised second
    run.cancel()  # the scheduler's shutdown after its grace
    with pytest.raises(asyncio.CancelledError):
        await run
    assert charged(await ledger(sandbox)) == [a]  # A's 100 ₽ are gone
    await pause(factory, a)  # the resident, seeing nothing paid, pauses it
    assert await tick(factory, city, DUE + timedelta(minutes=6)) == 2  # B and C, leases expired
    assert Counter(charged(await ledger(sandbox))) == {a: 1, b: 1, c: 1}
    # what should hold: the charge the city answered is recorded and the resident told
    assert await run_statuses(factory, a) == [RunStatus.SUCCEEDED]
    assert f"autopay:{a}:2026-11:succeeded" in await paid_notices(engine)


async def test_a_pause_made_before_the_charge_is_sent_prevents_it(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    """Two workers: A and B are prepared and charged; when A is done, C and D are prepared
    together — D then waits in `ready` while B and C are at the (slow) city. The resident pauses
    D meanwhile, and the pause is committed (`set_status`, under the row's lock) before D's
    charge is sent. On the general path D was read under its lock right before its charge
    and never charged; now its key was recorded a whole city call earlier and D is charged
    after the pause — for up to `concurrency - 1` autopays of every chunk, for as long as the
    slowest charge under way takes (up to the client's 6-s deadline)."""
    a, b, c, d = await add(factory, 4)
    gated = Gated(city, held={b, c})
    run = asyncio.ensure_future(tick(factory, gated, DUE, concurrency=2, batch=10))
    await asyncio.wait_for(gated.event(gated.entered, c).wait(), 10)  # both workers busy
    assert d not in gated.entered  # nothing sent for D
    await pause(factory, d)  # committed before the city hears of D
    gated.release.set()
    await asyncio.wait_for(run, 30)
    assert sorted(charged(await ledger(sandbox))) == [a, b, c]  # D paused before its charge
    async with factory() as uow:
        stored = await uow.autopays.get(d)
    assert stored is not None and stored.status is AutopayStatus.PAUSED
    assert await leased(engine) == 0


async def test_a_skip_tapped_before_the_charge_is_sent_is_kept(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    """As above with «Пропустить этот раз» from the reminder: tapped while D waits in `ready`
    (prepared, not sent), it is refused as «the charge is under way» (`skip_once` sees a key
    on record) and D is charged. On the general path the skip was kept: D was read under its
    lock right before its charge."""
    a, b, c, d = await add(factory, 4)
    gated = Gated(city, held={b, c})
    run = asyncio.ensure_future(tick(factory, gated, DUE, concurrency=2, batch=10))
    await asyncio.wait_for(gated.event(gated.entered, c).wait(), 10)  # both workers busy
    assert d not in gated.entered  # nothing sent for D
    async with factory() as uow:
        resident = await uow.residents.get(RESIDENT)
        assert resident is not None
        skipped = await skip_once(uow, resident, d, "2026-11")
    gated.release.set()
    await asyncio.wait_for(run, 30)
    assert skipped is not None  # the skip is kept (nothing was sent for D)
    assert sorted(charged(await ledger(sandbox))) == [a, b, c]


async def test_linking_again_before_the_charge_is_sent_does_not_unlink_the_resident(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    """B and C went through, their answers are slow on the way back; D waits in `ready` with
    the tokens read when its chunk was prepared. Meanwhile the resident links the same
    account again (`confirm_link`: the previous tokens revoked at the city, the new ones
    saved). D's charge goes with the revoked token: 401, the refresh with the revoked refresh
    token is refused, and `ResidentSession.refresh` deletes the resident's link — the NEW one
    — and D is paused «link again». On the general path D read the resident (the new tokens)
    under its lock right before its charge and was paid; the resident stayed linked."""
    from tests.contract.test_city_client import VERIFIER, login_code

    a, b, c, d = await add(factory, 4)
    gated = Gated(city, held={b, c}, answered=True)
    run = asyncio.ensure_future(tick(factory, gated, DUE, concurrency=2, batch=10))
    await asyncio.wait_for(gated.event(gated.answered, c).wait(), 10)  # both workers busy
    assert d not in gated.entered
    fresh = await city.exchange_code(
        code=await login_code(city, "demo-full"), code_verifier=VERIFIER
    )
    async with factory() as uow:  # what confirm_link does for the same account
        previous = await uow.residents.get(RESIDENT)
        assert previous is not None
        await city.revoke(previous.tokens.refresh_token)
        await uow.residents.save(copy(previous, tokens=fresh))
        await uow.commit()
    gated.release.set()
    await asyncio.wait_for(run, 30)
    async with factory() as uow:
        resident = await uow.residents.get(RESIDENT)
        stored = await uow.autopays.get(d)
    assert resident is not None and resident.tokens.access_token == fresh.access_token
    assert stored is not None and stored.status is AutopayStatus.ACTIVE
    assert sorted(charged(await ledger(sandbox))) == [a, b, c, d]


# ---- what held -----------------------------------------------------------------------------


async def test_a_cancelled_run_leaves_its_paid_charges_to_the_next_run_after_the_lease(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    a, b, c = await add(factory, 3)
    gated = Gated(city, held={b, c})
    run = asyncio.ensure_future(tick(factory, gated, DUE, concurrency=2, batch=10))
    await asyncio.wait_for(gated.event(gated.entered, c).wait(), 10)
    await asyncio.wait_for(gated.event(gated.answered, a).wait(), 10)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert await tick(factory, city, DUE) == 0  # leased: nobody takes them meanwhile
    outcomes: list[str] = []
    await tick(factory, city, DUE + timedelta(minutes=6), outcomes)
    assert set(outcomes) == {RunStatus.SUCCEEDED.value}
    keys = Counter(c["idempotence_key"] for c in await ledger(sandbox))
    assert keys == {f"ap-{i}-2026-11-1": 1 for i in (a, b, c)}
    assert await paid_notices(engine) == {f"autopay:{i}:2026-11:succeeded": 1 for i in (a, b, c)}
    assert await leased(engine) == 0


class Crash(BaseException):
    """The scheduler process dies."""


@pytest.mark.parametrize("where", ["runs_for", "save_runs"])
async def test_a_crash_while_preparing_charges_nobody_and_loses_nobody(
    engine: AsyncEngine,
    factory: UnitOfWorkFactory,
    city: CityClient,
    sandbox: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
    where: str,
) -> None:
    ids = await add(factory, 6)
    original = getattr(SqlAutopayRepository, where)
    calls = 0

    async def dies(self: SqlAutopayRepository, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:  # the second chunk
            raise Crash()
        return await original(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(SqlAutopayRepository, where, dies)
        with pytest.raises(Crash):
            await tick(factory, city, DUE, concurrency=2, batch=10)
    first = charged(await ledger(sandbox))
    assert sorted(first) == ids[:2]
    await tick(factory, city, DUE + timedelta(minutes=6))
    keys = Counter(c["idempotence_key"] for c in await ledger(sandbox))
    assert keys == {f"ap-{i}-2026-11-1": 1 for i in ids}
    assert await leased(engine) == 0
    assert len(await paid_notices(engine)) == 6


async def test_a_crash_inside_record_paid_charges_nobody_twice(
    engine: AsyncEngine,
    factory: UnitOfWorkFactory,
    city: CityClient,
    sandbox: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = await add(factory, 5)

    async def dies(*_args: Any, **_kwargs: Any) -> None:
        raise Crash()

    with monkeypatch.context() as patch:
        patch.setattr(SqlAutopayRepository, "save_progress_many", dies)
        with pytest.raises(Crash):
            await tick(factory, city, DUE, concurrency=3)
    assert sorted(charged(await ledger(sandbox))) == ids
    assert await paid_notices(engine) == {}  # rolled back with the rest
    assert {s for i in ids for s in await run_statuses(factory, i)} == {RunStatus.STARTED}
    assert await tick(factory, city, DUE + timedelta(minutes=6)) == 5
    keys = Counter(c["idempotence_key"] for c in await ledger(sandbox))
    assert keys == {f"ap-{i}-2026-11-1": 1 for i in ids}
    assert await paid_notices(engine) == {f"autopay:{i}:2026-11:succeeded": 1 for i in ids}


async def test_declines_and_successes_in_one_chunk_then_the_retry_next_day(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    ids = await add(factory, 6)
    cards = ["pm-full-4242", "pm-full-0002", "pm-full-9995", "pm-full-3220", "pm-full-4242"]
    async with factory() as uow:
        for autopay_id, card in zip(ids, cards, strict=False):
            autopay = await uow.autopays.get(autopay_id)
            assert autopay is not None
            autopay.method_id = card
            await uow.autopays.save(autopay)
        await uow.commit()
    outcomes: list[str] = []
    assert await tick(factory, city, DUE, outcomes, concurrency=6) == 6
    assert Counter(outcomes) == {"succeeded": 3, "retrying": 2, "paused": 1}
    assert sorted(charged(await ledger(sandbox))) == [ids[0], ids[4], ids[5]]
    assert await run_statuses(factory, ids[1]) == [RunStatus.RETRYING]
    assert await leased(engine) == 0
    # the declined card is swapped for a good one; the next day the retry goes through
    async with factory() as uow:
        autopay = await uow.autopays.get(ids[1])
        assert autopay is not None
        autopay.method_id = "pm-full-4242"
        await uow.autopays.save(autopay)
        await uow.commit()
    outcomes = []
    assert await tick(factory, city, DUE + timedelta(days=1), outcomes, concurrency=6) == 2
    assert Counter(outcomes) == {"succeeded": 1, "retrying": 1}
    keys = Counter(c["idempotence_key"] for c in await ledger(sandbox))
    assert keys[f"ap-{ids[1]}-2026-11-2"] == 1 and len(keys) == 4
    assert await run_statuses(factory, ids[1]) == [RunStatus.SUCCEEDED]
    async with factory() as uow:
        paid = await uow.autopays.get(ids[1])
    assert paid is not None and paid.retry_period is None and paid.next_due_at > DUE + MONTH / 2
    # a month later each active one is charged once for December
    await tick(factory, city, DUE + MONTH)
    december = [k for k in (c["idempotence_key"] for c in await ledger(sandbox)) if "2026-12" in k]
    assert sorted(autopay_of(k) for k in december) == [ids[0], ids[1], ids[4], ids[5]]


async def test_a_change_between_claim_and_prepare_is_charged_as_changed(
    engine: AsyncEngine,
    factory: UnitOfWorkFactory,
    city: CityClient,
    sandbox: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After the claim, before the prepare: one is skipped, one paused, one gets a new amount
    and card, one is deleted."""
    ids = await add(factory, 5)
    original = SqlAutopayRepository.lock_many
    acted = False

    async def acts_first(self: SqlAutopayRepository, *args: Any, **kwargs: Any) -> Any:
        nonlocal acted
        if not acted:
            acted = True
            async with factory() as uow:
                resident = await uow.residents.get(RESIDENT)
                assert resident is not None
                assert await skip_once(uow, resident, ids[0], "2026-11") is not None
            await pause(factory, ids[1])
            async with factory() as uow:
                resident = await uow.residents.get(RESIDENT)
                assert resident is not None
                await set_status(uow, resident, ids[3], AutopayStatus.DELETED, DUE)
            async with factory() as uow:
                autopay = await uow.autopays.get(ids[2])
                assert autopay is not None
                autopay.amount, autopay.method_id = 25_000, "pm-full-0002"
                await uow.autopays.save(autopay)
                await uow.commit()
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(SqlAutopayRepository, "lock_many", acts_first)
    outcomes: list[str] = []
    assert await tick(factory, city, DUE, outcomes, concurrency=8) == 5
    assert Counter(outcomes) == {"skipped": 1, "inactive": 2, "retrying": 1, "succeeded": 1}
    assert charged(await ledger(sandbox)) == [ids[4]]
    assert await run_statuses(factory, ids[0]) == [RunStatus.SKIPPED]
    assert await leased(engine) == 0


@pytest.mark.parametrize("concurrency", [1, 3])
async def test_two_schedulers_when_a_lease_expires_while_a_success_waits(
    pg_engine: AsyncEngine, city: CityClient, sandbox: SandboxServer, concurrency: int
) -> None:
    """The first scheduler's success for A waits in `paid` while B hangs for longer than the
    lease; a second scheduler takes A over and sends its key again. One charge, one notice."""
    first = await linked(pg_engine, city)
    a, b, *rest = await add(first, 8)
    gated = Gated(city, held={b})
    run = asyncio.ensure_future(tick(first, gated, DUE, concurrency=2, batch=3))
    await asyncio.wait_for(gated.event(gated.entered, b).wait(), 10)
    await asyncio.wait_for(gated.event(gated.answered, a).wait(), 10)
    second_engine = create_engine(POSTGRES_URL)
    second_city = client(sandbox)
    try:
        later = DUE + timedelta(minutes=6)
        await tick(uow_factory(second_engine), second_city, later, concurrency=concurrency, batch=2)
    finally:
        gated.release.set()
        await asyncio.wait_for(run, 30)
        await second_city.close()
        await second_engine.dispose()
    keys = Counter(c["idempotence_key"] for c in await ledger(sandbox))
    assert keys == {f"ap-{i}-2026-11-1": 1 for i in [a, b, *rest]}
    assert await paid_notices(pg_engine) == {
        f"autopay:{i}:2026-11:succeeded": 1 for i in [a, b, *rest]
    }
    async with first() as uow:
        for autopay_id in [a, b, *rest]:
            stored = await uow.autopays.get(autopay_id)
            assert stored is not None and stored.next_due_at > DUE + MONTH / 2
    assert await leased(pg_engine) == 0


class SlowRefresh(InFlight):
    """Counts the refreshes; the first waits until `go` (a slow OAuth server)."""

    def __init__(self, city: CityClient) -> None:
        super().__init__(city)
        self.refreshes = 0
        self.go = asyncio.Event()
        self.refreshing = asyncio.Event()

    async def refresh(self, refresh_token: str) -> Any:
        self.refreshes += 1
        self.refreshing.set()
        await self.go.wait()
        return await self._city.refresh(refresh_token)


async def test_a_chunk_prepared_during_a_refresh_does_not_refresh_again(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    """The stored access token is stale. A's charge refreshes (slowly); the other worker's
    autopay was skipped (no city call), so it prepares the next chunk meanwhile — reading the
    stale tokens. Those charges must take the refreshed tokens, not refresh with the spent
    refresh token (which the city refuses: the resident would be unlinked)."""
    from domain.accounts import TokenSet
    from tests.integration.test_autopay_job import START

    async with factory() as uow:
        resident = await uow.residents.get(RESIDENT)
        assert resident is not None
        stale = TokenSet("stale-access", resident.tokens.refresh_token, START)
        await uow.residents.save(copy(resident, tokens=stale))
        await uow.commit()
    a, skipped, *rest = await add(factory, 5)
    async with factory() as uow:
        autopay = await uow.autopays.get(skipped)
        assert autopay is not None
        autopay.skip_period = "2026-11"
        await uow.autopays.save(autopay)
        await uow.commit()
    slow = SlowRefresh(city)
    outcomes: list[str] = []
    run = asyncio.ensure_future(tick(factory, slow, DUE, outcomes, concurrency=2, batch=10))
    await asyncio.wait_for(slow.refreshing.wait(), 10)
    for _ in range(50):  # let the skipped one finish and the next chunk be prepared
        await asyncio.sleep(0.02)
    slow.go.set()
    await asyncio.wait_for(run, 30)
    assert slow.refreshes == 1
    assert Counter(outcomes) == {"succeeded": 4, "skipped": 1}
    assert sorted(charged(await ledger(sandbox))) == sorted([a, *rest])
    async with factory() as uow:
        assert await uow.residents.get(RESIDENT) is not None  # still linked


async def test_a_chunk_mixing_plain_bill_and_topup_autopays_charges_each_once(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    """An on-issue МГТС bill and a «Тройка» top-up (the general path) between plain donations
    in one chunk; then the same again after the leases expired: nothing charged twice."""
    from tests.integration.test_review15_money import mgts_bill_and_troika

    before = await add(factory, 3, due=DUE - timedelta(hours=2))
    bill, troika = await mgts_bill_and_troika(factory, city, sandbox)
    after = await add(factory, 3)
    outcomes: list[str] = []
    assert await tick(factory, city, DUE, outcomes, concurrency=8) == 8
    assert Counter(outcomes) == {"succeeded": 8}
    keys = Counter(c["idempotence_key"] for c in await ledger(sandbox))
    assert sorted(autopay_of(k) for k in keys) == sorted([*before, *after, bill.id, troika.id])
    assert set(keys.values()) == {1}
    assert await tick(factory, city, DUE + timedelta(minutes=6)) == 0
    assert len(await ledger(sandbox)) == 8
    assert len(await paid_notices(engine)) == 8
    assert await leased(engine) == 0


class LosesSomeAnswers(InFlight):
    """The real sandbox client; the answers for the autopays in `lost` are lost after the
    sandbox charged (a timeout on the way back), those in `down` never reach it (a 503)."""

    def __init__(self, city: CityClient, lost: set[int], down: set[int]) -> None:
        super().__init__(city)
        self.lost, self.down = lost, down

    async def create_payment(self, *args: Any, **kwargs: Any) -> Payment:
        from domain.errors import CityUnavailable

        autopay_id = autopay_of(args[1])
        if autopay_id in self.down:
            raise CityUnavailable()
        payment = await self._city.create_payment(*args, **kwargs)
        if autopay_id in self.lost:
            raise CityUnavailable()
        return payment


async def test_lost_answers_and_refusals_inside_a_chunk_are_sent_again_with_their_keys(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    ids = await add(factory, 8)
    flaky = LosesSomeAnswers(city, lost={ids[1], ids[4]}, down={ids[2], ids[6]})
    outcomes: list[str] = []
    assert await tick(factory, flaky, DUE, outcomes, concurrency=4) == 8
    assert Counter(outcomes) == {"succeeded": 4, "unavailable": 4}
    assert await leased(engine) == 0
    assert await tick(factory, city, DUE + timedelta(hours=1), outcomes) == 4  # backed off
    keys = Counter(c["idempotence_key"] for c in await ledger(sandbox))
    assert keys == {f"ap-{i}-2026-11-1": 1 for i in ids}
    assert await paid_notices(engine) == {f"autopay:{i}:2026-11:succeeded": 1 for i in ids}
    async with factory() as uow:
        for autopay_id in ids:
            stored = await uow.autopays.get(autopay_id)
            assert stored is not None and stored.retry_period is None
            assert stored.next_due_at > DUE + MONTH / 2 and stored.unanswered == 0
