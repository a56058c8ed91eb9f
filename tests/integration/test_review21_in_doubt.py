"""Review 21 of the «run in doubt» rule (e123d66): a run whose key is on record and whose outcome
is not (STARTED, attempts ≥ 1) is looked up at the city (`find_payment`) before anything else
is decided. Every autopay kind, in doubt after a crash after the charge, a crash before the
city heard it, or a charge the city did not answer (the key maybe heard); the lookup failing;
the payment found pending, declined; the resident acting meanwhile; a bill paid elsewhere;
a threshold top-up. The sandbox's ledger is the judge; the notices must say what happened."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from city.client import CityClient
from domain.autopay import (
    CHECK_EVERY,
    Autopay,
    AutopayKind,
    AutopayStatus,
    Frequency,
    PauseReason,
    RunStatus,
    Schedule,
    bill_period,
)
from domain.autopaying import UNAVAILABLE, change, set_up, skip_once, tick
from domain.bill_discovery import discover_bills
from domain.bills import BillKind
from domain.errors import CityUnavailable
from domain.payments import Payment
from domain.topups import TopupLimits
from sandbox import SandboxServer
from sandbox.oauth import TOKENS_KEY
from sandbox.payments_api import PAYMENTS_KEY
from storage.autopays import LEASE
from storage.uow import UnitOfWorkFactory
from tests.contract.test_city_client import VERIFIER, login_code
from tests.integration.test_autopay_exactly_once import issue_mgts
from tests.integration.test_autopay_job import (
    DUE,
    RESIDENT,
    Crash,
    DiesOnCharge,
    InFlight,
    leased,
    ledger,
)
from tests.integration.test_review20_autopay_batch import (
    AFTER_LEASE,
    reconcile,
    runs,
    stored,
)
from tests.integration.test_review20_autopay_batch import notices as all_notices

TROIKA = TopupLimits(100, 300_000, 300_000)
TROIKA_CARD = "0012345678"  # demo-full's «Тройка», 150 ₽ on it
KINDS = ["fixed", "bill", "topup", "below"]
MODES = ["after", "before", "unanswered"]


def _topup(threshold: int | None) -> Autopay:
    return Autopay(
        telegram_user_id=RESIDENT,
        kind=AutopayKind.TOPUP,
        schedule=Schedule.below() if threshold is not None else Schedule(Frequency.MONTHLY, 25),
        method_id="pm-full-4242",
        next_due_at=DUE - timedelta(seconds=1),
        amount=10_000,
        topup_service="troika",
        topup_account=TROIKA_CARD,
        threshold=threshold,
    )


async def make(
    factory: UnitOfWorkFactory,
    city: CityClient,
    sandbox: SandboxServer,
    kind: str,
    method: str = "pm-full-4242",
) -> int:
    """One autopay of `kind`, due at DUE: a 100 ₽ monthly donation, an on-issue МГТС bill
    (900 ₽, handed over), a 100 ₽ monthly «Тройка» top-up, or a 100 ₽ top-up when the balance
    is below 200 ₽ (it is 150 ₽)."""
    start = DUE - timedelta(days=2)
    if kind == "fixed":
        autopay = Autopay(
            telegram_user_id=RESIDENT,
            kind=AutopayKind.FIXED,
            schedule=Schedule(Frequency.MONTHLY, 25),
            method_id=method,
            next_due_at=DUE - timedelta(seconds=1),
            amount=10_000,
            fund_id="F-101",
            fund_name="Фонд",
        )
    elif kind == "bill":
        autopay = Autopay(
            RESIDENT,
            AutopayKind.BILL,
            Schedule.on_issue(),
            method,
            start,
            limit=2_000_000,
            bill_kind=BillKind.MGTS,
        )
    else:
        autopay = _topup(20_000 if kind == "below" else None)
        autopay.method_id = method
    async with factory() as uow:
        autopay = await set_up(
            uow, autopay, start, topup_limits=TROIKA if kind in ("topup", "below") else None
        )
    assert autopay.id is not None
    if kind == "bill":
        await discover_bills(factory, city, start)  # the baseline
        issue_mgts(sandbox, "11.2026")
        assert (await discover_bills(factory, city, start)).handed == 1
    async with factory() as uow:
        stored_one = await uow.autopays.get(autopay.id)
        assert stored_one is not None
        stored_one.next_due_at = DUE - timedelta(seconds=1)
        await uow.autopays.save(stored_one)
        await uow.commit()
    return autopay.id


class DiesBefore(InFlight):
    """The scheduler dies after the key is on record, before the city hears the charge."""

    async def create_payment(self, *args: Any, **kwargs: Any) -> Payment:
        raise Crash()


class HeardUnanswered(InFlight):
    """The city takes the charge, but its answer never arrives (a timeout): CityUnavailable."""

    async def create_payment(self, *args: Any, **kwargs: Any) -> Payment:
        await self._city.create_payment(*args, **kwargs)
        raise CityUnavailable("timed out")


class LookupDown(InFlight):
    """The city does not answer a payment lookup (`find_payment`)."""

    def __init__(self, city: CityClient) -> None:
        super().__init__(city)
        self.lookups = 0

    async def find_payment(self, session: Any, key: str) -> Payment | None:
        self.lookups += 1
        raise CityUnavailable("lookup timed out")


async def in_doubt(factory: UnitOfWorkFactory, city: CityClient, autopay_id: int, mode: str) -> Any:
    """The autopay's run left in doubt at DUE: `mode` after (charged, the scheduler died),
    before (died before the city heard it), unanswered (charged, the answer lost)."""
    if mode == "unanswered":
        outcomes: list[str] = []
        await tick(factory, HeardUnanswered(city), DUE, outcomes)
        assert outcomes == [UNAVAILABLE]
    else:
        dying = DiesOnCharge(city, nth=1) if mode == "after" else DiesBefore(city)
        with pytest.raises(Crash):
            await tick(factory, dying, DUE)
    [run] = await runs(factory, autopay_id)
    assert (run.status, run.attempts) == (RunStatus.STARTED, 1)
    return run


async def notices(engine: AsyncEngine) -> Counter[tuple[str, str]]:
    """The autopays' notices (the bill's «Пришёл счёт» left out), by kind and dedupe key."""
    found = await all_notices(engine)
    return Counter({k: n for k, n in found.items() if k[0].startswith("autopay_")})


def kinds_of(found: Any) -> list[str]:
    return sorted(kind for kind, _ in found)


# ---- every kind × every way into doubt: one charge, recorded, told once ---------------------


# Was (review 21): threshold top-up: the balance check before the in-doubt lookup left a charge
# made unrecorded (BALANCE_OK) and untold («below» × «after», «unanswered» below).


@pytest.mark.parametrize(
    ("kind", "mode"),
    [pytest.param(kind, mode) for kind in KINDS for mode in MODES],
)
async def test_a_run_in_doubt_is_charged_once_recorded_and_told_once(
    engine: AsyncEngine,
    factory: UnitOfWorkFactory,
    city: CityClient,
    sandbox: SandboxServer,
    kind: str,
    mode: str,
) -> None:
    autopay_id = await make(factory, city, sandbox, kind)
    run = await in_doubt(factory, city, autopay_id, mode)
    charged_before = len(await ledger(sandbox))
    assert charged_before == (0 if mode == "before" else 1)
    outcomes: list[str] = []
    await tick(factory, city, AFTER_LEASE, outcomes)
    charges = await ledger(sandbox)
    assert [c["idempotence_key"] for c in charges] == [run.key]  # the same key, once
    [done] = await runs(factory, autopay_id)
    assert (done.status, done.key, done.amount) == (
        RunStatus.SUCCEEDED,
        run.key,
        charges[0]["amount"],
    )
    assert await notices(engine) == {
        ("autopay_paid", f"autopay:{autopay_id}:{run.period}:succeeded"): 1
    }
    assert await leased(engine) == 0
    # nothing more for this period, however many ticks
    await tick(factory, city, AFTER_LEASE + timedelta(minutes=10))
    assert len(await ledger(sandbox)) == 1


def set_balance(sandbox: SandboxServer, balance: int) -> None:
    sandbox.app[PAYMENTS_KEY].topups.set_balance("troika", TROIKA_CARD, balance)


# Was (review 21): `_process` checks a threshold top-up's balance (`_check_balance`) before it
# looks up a run in doubt: the top-up made before the crash lifted the balance, so the run stays
# STARTED (BALANCE_OK, no re-arm) and is never recorded nor told; when the balance drops again
# the same drop's key is looked up, the OLD top-up recorded as this drop's, and nothing is charged
# Was (review 21): threshold top-up in doubt: balance seen above (by its own top-up) before the key
# is looked up; the next drop is never topped up
async def test_a_threshold_top_up_in_doubt_is_recorded_and_the_next_drop_topped_up(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    autopay_id = await make(factory, city, sandbox, "below")
    run = await in_doubt(factory, city, autopay_id, "after")
    assert sandbox.app[PAYMENTS_KEY].topups.balance("troika", TROIKA_CARD) == 25_000
    now = AFTER_LEASE
    for _ in range(2):
        await tick(factory, city, now)
        now += CHECK_EVERY
    charged = [c["idempotence_key"] for c in await ledger(sandbox)]
    assert charged == [run.key]
    # the top-up made is recorded and told while the balance it made is seen
    assert [r.status for r in await runs(factory, autopay_id)] == [RunStatus.SUCCEEDED]
    assert kinds_of(await notices(engine)) == ["autopay_paid"]
    # the resident spends it down: a new drop, a new top-up
    set_balance(sandbox, 5_000)
    for _ in range(3):
        await tick(factory, city, now)
        now += CHECK_EVERY
    charged = [c["idempotence_key"] for c in await ledger(sandbox)]
    assert charged == [run.key, f"ap-{autopay_id}-d-1-1"]
    statuses = [(r.period, r.status) for r in await runs(factory, autopay_id)]
    assert statuses == [("d-0", RunStatus.SUCCEEDED), ("d-1", RunStatus.SUCCEEDED)]


async def test_a_threshold_top_up_never_sent_is_sent_once_with_its_key(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    """Before the city heard it the balance is still low: looked up (nothing), charged once."""
    autopay_id = await make(factory, city, sandbox, "below")
    run = await in_doubt(factory, city, autopay_id, "before")
    await asyncio.gather(tick(factory, city, AFTER_LEASE), tick(factory, city, AFTER_LEASE))
    assert [c["idempotence_key"] for c in await ledger(sandbox)] == [run.key]
    assert [r.status for r in await runs(factory, autopay_id)] == [RunStatus.SUCCEEDED]


# ---- the lookup itself fails -----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["fixed", "bill", "topup"])
async def test_a_lookup_the_city_does_not_answer_backs_off_and_decides_nothing(
    engine: AsyncEngine,
    factory: UnitOfWorkFactory,
    city: CityClient,
    sandbox: SandboxServer,
    kind: str,
) -> None:
    autopay_id = await make(factory, city, sandbox, kind)
    run = await in_doubt(factory, city, autopay_id, "after")
    down = LookupDown(city)
    outcomes: list[str] = []
    await tick(factory, down, AFTER_LEASE, outcomes)
    assert outcomes == [UNAVAILABLE] and down.lookups == 1
    [same] = await runs(factory, autopay_id)
    assert (same.status, same.key, same.attempts) == (RunStatus.STARTED, run.key, 1)
    autopay = await stored(factory, autopay_id)
    assert autopay.status is AutopayStatus.ACTIVE and autopay.retry_period == run.period
    assert await notices(engine) == {}
    await tick(factory, city, AFTER_LEASE + timedelta(hours=1))
    assert [c["idempotence_key"] for c in await ledger(sandbox)] == [run.key]
    assert [r.status for r in await runs(factory, autopay_id)] == [RunStatus.SUCCEEDED]
    assert kinds_of(await notices(engine)) == ["autopay_paid"]


async def test_a_lookup_with_an_expired_access_token_refreshes_and_finds_the_charge(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    autopay_id = await make(factory, city, sandbox, "fixed")
    run = await in_doubt(factory, city, autopay_id, "after")
    async with factory() as uow:
        before = await uow.residents.get(RESIDENT)
    assert before is not None
    assert sandbox.app[TOKENS_KEY].expire_access_tokens() >= 1
    await tick(factory, city, AFTER_LEASE)
    assert [c["idempotence_key"] for c in await ledger(sandbox)] == [run.key]
    assert [r.status for r in await runs(factory, autopay_id)] == [RunStatus.SUCCEEDED]
    async with factory() as uow:
        after = await uow.residents.get(RESIDENT)
    assert after is not None and after.tokens.access_token != before.tokens.access_token


async def relink(factory: UnitOfWorkFactory, city: CityClient) -> None:
    from domain.accounts import AccountLevel, Resident

    tokens = await city.exchange_code(
        code=await login_code(city, "demo-full"), code_verifier=VERIFIER
    )
    async with factory() as uow:
        await uow.residents.save(
            Resident(RESIDENT, RESIDENT, "C-100003", AccountLevel.FULL, "Мария В.", tokens, DUE)
        )
        await uow.commit()


# Was (review 21): a lookup refused for the link (RelinkRequired) goes through `_after_error` →
# `_refused(RELINK)` → `_pause`, which records the run in doubt FAILED («relink»): the charge the
# city made is recorded failed, the resident is told «деньги не списаны», and no reconciliation
# ever asks again (it reads STARTED runs only)
# Was (review 21): lookup refused for the link records the run in doubt FAILED and tells «деньги не
# списаны» although the city charged it; nothing asks again
async def test_a_lookup_refused_for_the_link_keeps_the_run_in_doubt(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    autopay_id = await make(factory, city, sandbox, "fixed")
    run = await in_doubt(factory, city, autopay_id, "after")
    async with factory() as uow:
        resident = await uow.residents.get(RESIDENT)
    assert resident is not None
    # the resident revokes the bot's access at mos.ru
    sandbox.app[TOKENS_KEY].revoke(resident.tokens.refresh_token)
    outcomes: list[str] = []
    await tick(factory, city, AFTER_LEASE, outcomes)
    assert outcomes == ["paused"]
    assert (await stored(factory, autopay_id)).paused_reason is PauseReason.RELINK
    [same] = await runs(factory, autopay_id)
    assert [c["idempotence_key"] for c in await ledger(sandbox)] == [run.key]
    # the charge went through: the run must not say it failed (nor the resident be told so)
    assert same.status is not RunStatus.FAILED
    # linked again, the reconciliation (the autopay is paused: stranded) records the charge
    await relink(factory, city)
    await reconcile(factory, city, AFTER_LEASE + LEASE + timedelta(minutes=1))
    [done] = await runs(factory, autopay_id)
    assert done.status is RunStatus.SUCCEEDED
    assert "autopay_paid" in kinds_of(await notices(engine))


# ---- what the city says about the key ------------------------------------------------------


async def test_a_pending_payment_found_pauses_for_3ds_without_a_second_charge(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    autopay_id = await make(factory, city, sandbox, "fixed", method="pm-full-3220")
    run = await in_doubt(factory, city, autopay_id, "after")
    outcomes: list[str] = []
    await tick(factory, city, AFTER_LEASE, outcomes)
    assert outcomes == ["paused"]
    assert (await stored(factory, autopay_id)).paused_reason is PauseReason.NEEDS_CONFIRMATION
    [done] = await runs(factory, autopay_id)
    assert (done.status, done.key) == (RunStatus.FAILED, run.key)
    assert await ledger(sandbox) == []  # 3-D Secure never confirmed: nothing taken
    assert kinds_of(await notices(engine)) == ["autopay_paused"]


@pytest.mark.parametrize("kind", ["fixed", "bill", "topup"])
async def test_a_declined_payment_found_counts_as_the_first_attempt_and_is_retried_with_a_new_key(
    engine: AsyncEngine,
    factory: UnitOfWorkFactory,
    city: CityClient,
    sandbox: SandboxServer,
    kind: str,
) -> None:
    autopay_id = await make(factory, city, sandbox, kind, method="pm-full-0002")
    run = await in_doubt(factory, city, autopay_id, "after")
    outcomes: list[str] = []
    await tick(factory, city, AFTER_LEASE, outcomes)
    assert outcomes == [RunStatus.RETRYING.value]
    [retrying] = await runs(factory, autopay_id)
    assert (retrying.status, retrying.attempts, retrying.key) == (RunStatus.RETRYING, 1, run.key)
    assert await notices(engine) == {}  # a decline with retries left: no word yet
    async with factory() as uow:  # the resident picks a working card
        autopay = await uow.autopays.get(autopay_id)
        assert autopay is not None
        autopay.method_id = "pm-full-4242"
        await uow.autopays.save(autopay)
        await uow.commit()
    await tick(factory, city, DUE + timedelta(days=1))
    charges = await ledger(sandbox)
    second = run.key[:-1] + "2"
    assert [c["idempotence_key"] for c in charges] == [second]
    [done] = await runs(factory, autopay_id)
    assert (done.status, done.attempts, done.key) == (RunStatus.SUCCEEDED, 2, second)
    assert kinds_of(await notices(engine)) == ["autopay_paid"]


# ---- the resident acted meanwhile ------------------------------------------------------------


@pytest.mark.parametrize("mode", ["after", "before"])
async def test_a_skip_pressed_while_the_run_is_in_doubt_is_refused_and_charged_once(
    engine: AsyncEngine,
    factory: UnitOfWorkFactory,
    city: CityClient,
    sandbox: SandboxServer,
    mode: str,
) -> None:
    """Its key may have reached the city: «Пропустить этот раз» is refused (`skip_once`), and
    the run is settled by the lookup — found, or sent under its key — once."""
    autopay_id = await make(factory, city, sandbox, "fixed")
    run = await in_doubt(factory, city, autopay_id, mode)
    async with factory() as uow:
        resident = await uow.residents.get(RESIDENT)
        assert resident is not None
        assert await skip_once(uow, resident, autopay_id, run.period) is None
    await tick(factory, city, AFTER_LEASE)
    [done] = await runs(factory, autopay_id)
    assert done.status is RunStatus.SUCCEEDED
    assert [c["idempotence_key"] for c in await ledger(sandbox)] == [run.key]
    assert kinds_of(await notices(engine)) == ["autopay_paid"]


@pytest.mark.parametrize("mode", ["after", "before"])
async def test_a_card_changed_after_the_crash(
    engine: AsyncEngine,
    factory: UnitOfWorkFactory,
    city: CityClient,
    sandbox: SandboxServer,
    mode: str,
) -> None:
    """Charged: found and recorded (never sent again with the new card: the city would refuse
    the key reused). Never sent: sent under its key with the card stored now."""
    autopay_id = await make(factory, city, sandbox, "fixed", method="pm-full-4242")
    run = await in_doubt(factory, city, autopay_id, mode)
    async with factory() as uow:
        autopay = await uow.autopays.get(autopay_id)
        assert autopay is not None
        autopay.method_id = "pm-full-0002"  # a card that declines
        await uow.autopays.save(autopay)
        await uow.commit()
    outcomes: list[str] = []
    await tick(factory, city, AFTER_LEASE, outcomes)
    if mode == "after":
        assert outcomes == [RunStatus.SUCCEEDED.value]
        assert [c["card_last4"] for c in await ledger(sandbox)] == ["4242"]
        assert "autopay_failed" not in kinds_of(await notices(engine))
    else:
        assert outcomes == [RunStatus.RETRYING.value]  # the new card declined, as it does
        assert await ledger(sandbox) == []
    [done] = await runs(factory, autopay_id)
    assert done.key == run.key


async def test_an_amount_changed_after_an_unanswered_charge_keeps_the_charge_made(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    autopay_id = await make(factory, city, sandbox, "fixed")
    run = await in_doubt(factory, city, autopay_id, "unanswered")
    async with factory() as uow:
        resident = await uow.residents.get(RESIDENT)
        assert resident is not None
        await change(uow, resident, autopay_id, DUE + timedelta(minutes=1), money=20_000)
    await tick(factory, city, DUE + timedelta(minutes=10))  # after the back-off
    charges = await ledger(sandbox)
    assert [(c["idempotence_key"], c["amount"]) for c in charges] == [(run.key, 10_000)]
    [done] = await runs(factory, autopay_id)
    assert (done.status, done.amount) == (RunStatus.SUCCEEDED, 10_000)
    assert kinds_of(await notices(engine)) == ["autopay_paid"]


@pytest.mark.parametrize("status", [AutopayStatus.PAUSED, AutopayStatus.DELETED])
async def test_paused_or_deleted_after_the_crash_is_recorded_by_the_reconciliation_once(
    engine: AsyncEngine,
    factory: UnitOfWorkFactory,
    city: CityClient,
    sandbox: SandboxServer,
    status: AutopayStatus,
) -> None:
    autopay_id = await make(factory, city, sandbox, "topup")
    run = await in_doubt(factory, city, autopay_id, "after")
    async with factory() as uow:
        resident = await uow.residents.get(RESIDENT)
        assert resident is not None
        from domain.autopaying import set_status

        await set_status(uow, resident, autopay_id, status, DUE + timedelta(minutes=1))
    outcomes: list[str] = []
    await tick(factory, city, AFTER_LEASE, outcomes)
    assert outcomes == []  # not due: nothing claimed
    settled = await reconcile(factory, city, AFTER_LEASE)
    assert [s.recorded for s in settled] == [RunStatus.SUCCEEDED]
    assert await reconcile(factory, city, AFTER_LEASE + timedelta(minutes=1)) == []
    [done] = await runs(factory, autopay_id)
    assert (done.status, done.key) == (RunStatus.SUCCEEDED, run.key)
    assert [c["idempotence_key"] for c in await ledger(sandbox)] == [run.key]
    assert kinds_of(await notices(engine)) == ["autopay_paid"]


# ---- a bill paid elsewhere meanwhile ---------------------------------------------------------


async def test_a_bill_paid_elsewhere_before_the_key_reached_the_city_is_skipped_uncharged(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    autopay_id = await make(factory, city, sandbox, "bill")
    run = await in_doubt(factory, city, autopay_id, "before")
    bill_id = (await stored(factory, autopay_id)).bill_id
    assert run.period == bill_period(bill_id)
    async with aiohttp.ClientSession() as http:
        async with http.patch(
            f"{sandbox.url}/sandbox/bills/{bill_id}", json={"status": "paid"}
        ) as answer:
            assert answer.status == 200
    await tick(factory, city, AFTER_LEASE)
    [done] = await runs(factory, autopay_id)
    assert done.status is RunStatus.SKIPPED
    assert await ledger(sandbox) == []
    assert "autopay_failed" not in kinds_of(await notices(engine))


# ---- two schedulers over the same run in doubt -----------------------------------------------


class HoldsFirstCharge(InFlight):
    """Scheduler A: its first charge waits (past its lease) before the city hears it."""

    def __init__(self, city: CityClient) -> None:
        super().__init__(city)
        self.go, self.entered = asyncio.Event(), asyncio.Event()

    async def create_payment(self, *args: Any, **kwargs: Any) -> Payment:
        self.entered.set()
        await self.go.wait()
        return await self._city.create_payment(*args, **kwargs)


# Was (review 21): «none found» is taken as «never sent»: scheduler B (after A's lease) sends the
# recorded key with the amount stored NOW; A, stalled with that key, sends it later with the run's
# amount — the city refuses the reused key, and A's `_refused` overwrites B's SUCCEEDED with FAILED
# and tells the resident «не прошёл … деньги не списаны» for the charge that went through
# Was (review 21): a key found nowhere is resent with the amount stored now, not the run's: a
# stalled scheduler's same key is refused and overwrites the success with FAILED
async def test_two_schedulers_on_one_run_in_doubt_with_an_amount_changed_charge_once(
    pg_engine: AsyncEngine, city: CityClient, sandbox: SandboxServer
) -> None:
    from tests.integration.test_autopay_job import linked

    factory = await linked(pg_engine, city)
    autopay_id = await make(factory, city, sandbox, "fixed")
    run = await in_doubt(factory, city, autopay_id, "before")
    first = HoldsFirstCharge(city)
    a = asyncio.ensure_future(tick(factory, first, AFTER_LEASE))
    await asyncio.wait_for(first.entered.wait(), 10)  # A looked up (nothing), is sending
    async with factory() as uow:
        resident = await uow.residents.get(RESIDENT)
        assert resident is not None
        await change(uow, resident, autopay_id, AFTER_LEASE, money=20_000)
    b_at = AFTER_LEASE + LEASE + timedelta(minutes=1)
    await tick(factory, city, b_at)  # B, after A's lease
    first.go.set()
    await asyncio.wait_for(a, 10)
    charges = await ledger(sandbox)
    assert [c["idempotence_key"] for c in charges] == [run.key]
    [done] = await runs(factory, autopay_id)
    assert (done.status, done.amount) == (RunStatus.SUCCEEDED, charges[0]["amount"])
    assert "autopay_failed" not in kinds_of(await notices(pg_engine))
