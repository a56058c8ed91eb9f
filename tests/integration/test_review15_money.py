"""Review 15, money: can money go where the resident did not confirm, or go twice? Each test
names the behaviour that should hold; the sandbox's ledger is the judge (SQLite and
PostgreSQL, the job tests' fixtures: demo-full linked as resident 7)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

import tests.integration.test_autopay_job as job
from city.client import CityClient
from domain.autopay import Autopay, AutopayKind, AutopayStatus, Frequency, RunStatus, Schedule
from domain.autopaying import AutopayExists, set_status, set_up, skip_once, tick
from domain.bills import BillKind
from domain.errors import CityUnavailable
from domain.payments import Payment
from domain.topups import TopupLimits
from sandbox import SandboxServer
from storage.uow import UnitOfWorkFactory
from tests.integration.test_autopay_job import DUE, RESIDENT, add, ledger
from tests.integration.test_autopay_threshold import CARD, TROIKA, set_balance, topup
from tests.integration.test_review14_autopay import Meanwhile, resident_of

MGTS_LIMITS = TopupLimits(100, 1_500_000, None)  # the sandbox's «mgts» service


class LostAnswer:
    """The real sandbox client, but the answer to each create_payment is lost after the
    platform charged (a timeout on the way back): the run sees CityUnavailable."""

    def __init__(self, city: CityClient) -> None:
        self._city = city

    def __getattr__(self, name: str) -> Any:
        return getattr(self._city, name)

    async def create_payment(self, *args: Any, **kwargs: Any) -> Payment:
        await self._city.create_payment(*args, **kwargs)
        raise CityUnavailable("answer lost")


async def test_a_skip_the_bot_accepts_is_never_charged(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    """«Пропустить этот раз» tapped while this period's charge is in flight (the row's lock is
    given up before the city call): the bot must either say it is too late
    (`skip_once` → None, «уже прошёл») or not charge — never «в этот раз не спишем» and a
    charge."""
    (only,) = await add(factory, 1)
    resident = await resident_of(factory)
    accepted: list[object] = []

    async def skip(call: int) -> None:
        async with factory() as uow:
            accepted.append(await skip_once(uow, resident, only, "2026-11"))

    await tick(factory, Meanwhile(city, skip), DUE, concurrency=1)
    charges = await ledger(sandbox)
    assert accepted[0] is None or charges == [], (
        "the resident was told «в этот раз не спишем», and the period was charged"
    )


async def test_resuming_a_threshold_topup_never_charges_an_unsettled_drop_twice(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    """Drop d-0's charge went through but its answer was lost (run STARTED, key kept to be
    sent again). The resident pauses and resumes: `Autopay.resume` starts a fresh drop
    (d-1), the kept key is never sent again, and the balance (0 + 100 ₽, still below 200 ₽)
    brings a second top-up for the same drop."""
    set_balance(sandbox, 0)
    async with factory() as uow:
        autopay = await set_up(uow, topup(20_000, 10_000), DUE, topup_limits=TROIKA)
    assert autopay.id is not None
    outcomes: list[str] = []
    await tick(factory, LostAnswer(city), DUE, outcomes)
    assert outcomes == ["unavailable"] and len(await ledger(sandbox)) == 1  # charged, unheard
    resident = await resident_of(factory)
    later = DUE + timedelta(minutes=1)
    async with factory() as uow:
        await set_status(uow, resident, autopay.id, AutopayStatus.PAUSED, later)
    async with factory() as uow:
        await set_status(uow, resident, autopay.id, AutopayStatus.ACTIVE, later)
    for step in range(1, 4):  # the next checks
        await tick(factory, city, later + timedelta(minutes=30 * step))
    keys = [c["idempotence_key"] for c in await ledger(sandbox)]
    assert keys == [f"ap-{autopay.id}-d-0-1"], f"{CARD} topped up twice for one drop: {keys}"


async def test_two_mgts_autopays_set_up_at_once_store_one(
    pg_engine: AsyncEngine, city: CityClient
) -> None:
    """An МГТС bill autopay and a fixed-amount one to the same МГТС number set up at the
    same moment (two replicas, a chat lock lost, the console and the bot): one way of paying
    a service at a time must hold in the database, not only in `autopay_for`'s Python check
    — two would pay the bill and an advance on top of it every month. (PostgreSQL: SQLite
    serialises the two units of work anyway.)"""
    factory = await job.linked(pg_engine, city)
    bill = Autopay(
        RESIDENT,
        AutopayKind.BILL,
        Schedule.on_issue(),
        "pm-full-4242",
        DUE,
        limit=200_000,
        bill_kind=BillKind.MGTS,
    )
    fixed = Autopay(
        telegram_user_id=RESIDENT,
        kind=AutopayKind.TOPUP,
        schedule=Schedule(Frequency.MONTHLY, 5),
        method_id="pm-full-4242",
        next_due_at=DUE,
        amount=90_000,
        topup_service="mgts",
        topup_account="74951234567",
    )

    # Each has checked before either inserts (two taps at once) — unless the other waits for
    # the resident's lock: a set-up that takes it before its check is not held for the
    # other's check (which that lock rightly keeps from happening; a plain barrier would
    # deadlock on it). A lock taken only after the check lets both check: two stored.
    there = [asyncio.Event(), asyncio.Event()]  # [i]: i has checked, or waits for the lock

    async def one(me: int, autopay: Autopay) -> object:
        async with factory() as uow:
            read, lock = uow.autopays.of_resident, uow.residents.lock

            async def of_resident(telegram_user_id: int) -> list[Autopay]:
                found = await read(telegram_user_id)
                there[me].set()
                await there[1 - me].wait()
                return found

            async def locking(telegram_user_id: int) -> None:
                there[me].set()
                await lock(telegram_user_id)

            uow.autopays.of_resident = of_resident  # type: ignore[method-assign]
            uow.residents.lock = locking  # type: ignore[method-assign]
            try:
                return await set_up(uow, autopay, DUE, topup_limits=MGTS_LIMITS)
            except AutopayExists as exists:
                return exists

    await asyncio.gather(one(0, bill), one(1, fixed))
    async with factory() as uow:
        stored = await uow.autopays.of_resident(RESIDENT)
    assert len(stored) == 1, [(a.kind, a.bill_kind, a.topup_service) for a in stored]


async def test_a_bill_handed_over_during_a_charge_after_a_resume_is_still_paid(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    """While bill X is being charged the resident pauses and resumes (bill_id cleared), and
    discovery hands the new bill Y over («Спишем завтра в 10:00», WILL_PAY). The run's end
    then writes its own progress (`save_progress`: bill_id None, IDLE) over Y's hand-over:
    the promised charge never happens, nothing queued, nobody told."""
    from domain.bill_discovery import discover_bills
    from tests.integration.test_autopay_exactly_once import issue_mgts

    async with factory() as uow:
        autopay = await set_up(
            uow,
            Autopay(
                RESIDENT,
                AutopayKind.BILL,
                Schedule.on_issue(),
                "pm-full-4242",
                DUE,
                limit=2_000_000,
                bill_kind=BillKind.MGTS,
            ),
            DUE - timedelta(days=1),
        )
    assert autopay.id is not None
    before = DUE - timedelta(days=1)
    await discover_bills(factory, city, before)  # the baseline
    issue_mgts(sandbox, "11.2026")
    assert (await discover_bills(factory, city, before)).handed == 1  # X, due DUE's 10:00
    resident = await resident_of(factory)
    handed: list[int] = []

    async def meanwhile(call: int) -> None:
        if call != 1:
            return
        async with factory() as uow:
            await set_status(uow, resident, autopay.id, AutopayStatus.PAUSED, DUE)
        async with factory() as uow:
            await set_status(uow, resident, autopay.id, AutopayStatus.ACTIVE, DUE)
        issue_mgts(sandbox, "12.2026")
        handed.append((await discover_bills(factory, city, DUE)).handed)

    await tick(factory, Meanwhile(city, meanwhile), DUE, concurrency=1)
    assert handed == [1]  # Y was handed over: the resident was told it is paid tomorrow
    await tick(factory, city, DUE + timedelta(days=1, minutes=1))
    assert len(await ledger(sandbox)) == 2, "bill Y was promised and never charged"


class SkipsMeanwhile:
    """The real sandbox client; the resident taps «Пропустить этот раз» while the run asks
    the city: `during[name]` runs before each call of that name goes out."""

    def __init__(self, city: CityClient, during: dict[str, Any]) -> None:
        self._city, self._during = city, during

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._city, name)
        if name not in self._during:
            return method

        async def call(*args: Any, **kwargs: Any) -> Any:
            await self._during[name]()
            return await method(*args, **kwargs)

        return call


async def mgts_bill_and_troika(
    factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> tuple[Autopay, Autopay]:
    """An on-issue МГТС autopay holding November's bill (handed over by discovery the day
    before DUE) and a «Тройка» top-up on the 25th, both set up the day before DUE."""
    from domain.bill_discovery import discover_bills
    from tests.integration.test_autopay_exactly_once import issue_mgts

    before = DUE - timedelta(days=1)
    async with factory() as uow:
        bill = await set_up(
            uow,
            Autopay(
                RESIDENT,
                AutopayKind.BILL,
                Schedule.on_issue(),
                "pm-full-4242",
                DUE,
                limit=2_000_000,
                bill_kind=BillKind.MGTS,
            ),
            before,
        )
    async with factory() as uow:
        scheduled = await set_up(uow, topup(None, day=25), before, topup_limits=TROIKA)
    await discover_bills(factory, city, before)  # the baseline
    issue_mgts(sandbox, "11.2026")
    assert (await discover_bills(factory, city, before)).handed == 1
    return bill, scheduled


async def test_a_skip_is_kept_or_refused_for_every_kind(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    """Every kind gives up the row's lock while it asks the city. A skip tapped before the
    charge's key is recorded (a scheduled top-up while the wallet's limits are read, a
    threshold one while its balance is read — a forged tap: no reminder offers it) is kept:
    nothing charged. One tapped once the key is recorded (an МГТС bill's, as it goes out) is
    refused («уже прошёл»), and that charge is the only one."""
    before = DUE - timedelta(days=1)
    parking = "79161234567"  # 420 ₽ on it
    bill, scheduled = await mgts_bill_and_troika(factory, city, sandbox)
    threshold = topup(100_000)
    threshold.topup_service, threshold.topup_account = "parking", parking
    async with factory() as uow:
        threshold = await set_up(
            uow, threshold, before, topup_limits=TopupLimits(1_000, 1_500_000, None)
        )
    async with factory() as uow:
        periods = {
            a.id: a.period for a in (await uow.autopays.of_resident(RESIDENT)) if a.id is not None
        }
    resident = await resident_of(factory)
    answers: dict[int, object] = {}

    def skipping(autopay: Autopay) -> Any:
        assert autopay.id is not None
        autopay_id = autopay.id

        async def skip() -> None:
            if autopay_id not in answers:  # the first tap
                async with factory() as uow:
                    answers[autopay_id] = await skip_once(
                        uow, resident, autopay_id, periods[autopay_id]
                    )

        return skip

    skip_bill, skip_scheduled, skip_threshold = map(skipping, (bill, scheduled, threshold))

    asked: list[int] = []

    async def topup_services() -> None:
        asked.append(1)
        if len(asked) == 2:  # the threshold one asks first (the earliest due), then this one
            await skip_scheduled()

    client = SkipsMeanwhile(
        city,
        {
            "topup_balance": skip_threshold,
            "topup_services": topup_services,
            "create_payment": skip_bill,
        },
    )
    await tick(factory, client, DUE, concurrency=1)
    assert bill.id and scheduled.id and threshold.id
    assert answers[bill.id] is None  # in flight: «уже прошёл»
    assert answers[scheduled.id] is not None and answers[threshold.id] is not None
    charges = await ledger(sandbox)
    assert [c["amount"] for c in charges] == [90_000], charges  # the bill's only
    async with factory() as uow:
        for autopay_id in (scheduled.id, threshold.id):
            runs = await uow.autopays.runs(autopay_id)
            assert [(r.period, r.status) for r in runs] == [
                (periods[autopay_id], RunStatus.SKIPPED)
            ]


async def test_a_pause_or_delete_while_the_run_asks_the_city_is_never_charged(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    """A bill autopay gives up its row's lock while the city lists the bills, a top-up one
    while it reads the service's limits: a resident's «Приостановить» or «Удалить» then is
    kept — the run reads the row again under the lock before it records the key, and charges
    nothing for an autopay no longer ACTIVE."""
    bill, scheduled = await mgts_bill_and_troika(factory, city, sandbox)
    resident = await resident_of(factory)
    assert bill.id is not None and scheduled.id is not None

    async def pause_bill() -> None:
        async with factory() as uow:
            await set_status(uow, resident, bill.id, AutopayStatus.PAUSED, DUE)

    async def delete_topup() -> None:
        async with factory() as uow:
            await set_status(uow, resident, scheduled.id, AutopayStatus.DELETED, DUE)

    client = SkipsMeanwhile(city, {"unpaid_bills": pause_bill, "topup_services": delete_topup})
    await tick(factory, client, DUE, concurrency=1)
    assert await ledger(sandbox) == []
    async with factory() as uow:
        stored = {a.id: a.status for a in await uow.autopays.of_resident(RESIDENT)}
    assert stored.get(bill.id) is AutopayStatus.PAUSED
    assert stored.get(scheduled.id, AutopayStatus.DELETED) is AutopayStatus.DELETED
