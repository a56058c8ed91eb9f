"""Autopays the city keeps refusing or does not answer never hold the queue (SQLite and
PostgreSQL, the sandbox's ledger as the judge): a lasting refusal pauses the autopay and tells
the resident and staff once; an unanswered charge is pushed back behind the others. Also what
each outcome of a charge is told as, and that unlinking cancels autopays."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.i18n import load_translator
from city.client import CityClient
from domain.accounts import AccountLevel, Resident
from domain.autopay import (
    MOSCOW,
    Autopay,
    AutopayKind,
    AutopayStatus,
    Frequency,
    PauseReason,
    RunStatus,
    Schedule,
)
from domain.autopaying import TICK_BATCH, change, set_status, set_up, tick
from domain.bill_discovery import discover_bills
from domain.bills import BillKind
from domain.errors import CityUnavailable
from domain.limits import AmountLimits
from domain.linking import unlink
from domain.payments import Payment, PaymentStatus
from domain.ports import Dashboard
from handlers.notifications import render
from sandbox import SandboxServer
from sandbox.data import BillStatus
from sandbox.oauth import DATA_KEY
from storage.database import create_sessionmaker
from storage.models import NotificationRow
from storage.token_cipher import TokenCipher
from storage.uow import UnitOfWorkFactory
from tests.contract.test_city_client import REDIRECT, VERIFIER, login_code

START = datetime(2026, 11, 24, 12, 0, tzinfo=MOSCOW)
DUE = datetime(2026, 11, 25, 10, 0, 1, tzinfo=MOSCOW)
RESIDENT = 7
SUPPORT_CHAT = -100500


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    async with SandboxServer() as server:
        yield server


@pytest.fixture
async def city(sandbox: SandboxServer) -> AsyncIterator[CityClient]:
    client = CityClient(
        sandbox.url, client_id="resident-bot", client_secret="sandbox-secret", redirect_uri=REDIRECT
    )
    yield client
    await client.close()


@pytest.fixture
async def factory(engine: AsyncEngine, city: CityClient) -> UnitOfWorkFactory:
    """demo-full linked as resident 7; a support dashboard is kept."""
    uow_factory = UnitOfWorkFactory(
        create_sessionmaker(engine), TokenCipher([TokenCipher.generate_key()])
    )
    tokens = await city.exchange_code(
        code=await login_code(city, "demo-full"), code_verifier=VERIFIER
    )
    async with uow_factory() as uow:
        await uow.residents.save(
            Resident(RESIDENT, RESIDENT, "C-100003", AccountLevel.FULL, "Мария В.", tokens, START)
        )
        await uow.support.add_dashboard(Dashboard(SUPPORT_CHAT, 5), START)
        await uow.commit()
    return uow_factory


async def ledger(sandbox: SandboxServer) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as http:
        async with http.get(sandbox.url + "/sandbox/ledger") as answer:
            return (await answer.json())["charges"]


def donation(method: str = "pm-full-4242", amount: int = 10_000) -> Autopay:
    return Autopay(
        telegram_user_id=RESIDENT,
        kind=AutopayKind.FIXED,
        schedule=Schedule(Frequency.MONTHLY, 25),
        method_id=method,
        next_due_at=START,
        amount=amount,
        fund_id="F-101",
        fund_name="Фонд",
    )


async def add(factory: UnitOfWorkFactory, count: int, **kwargs: Any) -> list[int]:
    ids = []
    async with factory() as uow:
        for _ in range(count):
            autopay = donation(**kwargs)
            autopay.next_due_at = DUE - timedelta(seconds=1)
            await uow.autopays.add(autopay, START)
            assert autopay.id is not None
            ids.append(autopay.id)
        await uow.commit()
    return ids


async def tick_at(factory: UnitOfWorkFactory, city: Any, now: datetime) -> int:
    return await tick(factory, city, now)


async def outbox(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(NotificationRow.kind, func.count()).group_by(NotificationRow.kind)
        )
        return {kind: count for kind, count in rows}


def charged_autopays(charges: list[dict[str, Any]]) -> list[int]:
    return sorted(int(c["idempotence_key"].split("-")[1]) for c in charges)


async def test_refused_autopays_are_paused_and_told_once_and_never_block_the_others(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    # The worst order: the refused ones are older, so they come first in the claim.
    refused = await add(factory, TICK_BATCH, method="pm-full-removed")
    ordinary = await add(factory, 2 * TICK_BATCH)

    for _ in range(2):
        await tick_at(factory, city, DUE)
    assert charged_autopays(await ledger(sandbox)) == ordinary  # each charged, once

    async with factory() as uow:
        for autopay_id in refused:
            stored = await uow.autopays.get(autopay_id)
            assert stored is not None
            assert (stored.status, stored.paused_reason) == (
                AutopayStatus.PAUSED,
                PauseReason.CARD_REMOVED,
            )
            [run] = await uow.autopays.runs(autopay_id)
            assert (run.status, run.failure) == (RunStatus.FAILED, "card_removed")
    told = await outbox(engine)
    assert told == {"autopay_paid": 100, "autopay_paused": 50, "dashboard_autopay_failed": 50}
    async with engine.connect() as connection:
        urgent = await connection.scalar(
            select(func.count()).where(
                NotificationRow.kind == "autopay_paused", NotificationRow.urgent.is_(True)
            )
        )
    assert urgent == 50

    # More ticks — the same minute, the next days, the next month: nothing told again, and a
    # paused autopay is never tried again.
    for moment in (DUE, DUE + timedelta(days=1), DUE + timedelta(days=2)):
        await tick_at(factory, city, moment)
    await tick_at(factory, city, datetime(2026, 12, 25, 10, 0, 1, tzinfo=MOSCOW))
    assert await outbox(engine) == {**told, "autopay_paid": 200}
    assert set(charged_autopays(await ledger(sandbox))) == set(ordinary)


class FlakyCity:
    """The sandbox, except that charges of `amount` kopecks go unanswered while `down`."""

    def __init__(self, city: CityClient, amount: int) -> None:
        self._city, self._amount, self.down, self.calls = city, amount, True, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._city, name)

    async def create_payment(self, *args: Any, **kwargs: Any) -> Payment:
        if self.down and kwargs["amount"] == self._amount:
            self.calls += 1
            raise CityUnavailable("timeout")
        return await self._city.create_payment(*args, **kwargs)


async def test_unanswered_autopays_are_pushed_back_behind_the_others(
    factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    flaky_city = FlakyCity(city, amount=5_100)
    flaky = await add(factory, TICK_BATCH, amount=5_100)
    ordinary = await add(factory, 2 * TICK_BATCH)

    for _ in range(2):
        await tick_at(factory, flaky_city, DUE)
    assert charged_autopays(await ledger(sandbox)) == ordinary
    assert flaky_city.calls == TICK_BATCH  # each unanswered one tried once, then pushed back
    async with factory() as uow:
        stored = await uow.autopays.get(flaky[0])
        assert stored is not None and stored.status is AutopayStatus.ACTIVE
        assert stored.next_due_at == DUE + timedelta(minutes=2)
        [run] = await uow.autopays.runs(flaky[0])
        assert run.status is RunStatus.STARTED  # its key is kept for the next attempt

    flaky_city.down = False  # the city answers again: each charged once, for November
    await tick_at(factory, flaky_city, DUE + timedelta(minutes=3))
    charges = await ledger(sandbox)
    assert charged_autopays(charges) == sorted(flaky + ordinary)
    assert {
        c["idempotence_key"] for c in charges if int(c["idempotence_key"].split("-")[1]) in flaky
    } == {f"ap-{autopay_id}-2026-11-1" for autopay_id in flaky}
    async with factory() as uow:
        stored = await uow.autopays.get(flaky[0])
        assert stored is not None and stored.next_due_at.astimezone(MOSCOW).month == 12
        assert (stored.retry_period, stored.unanswered) == (None, 0)


class AnsweringCity:
    """The sandbox, except that every charge answers `status` (nothing is charged)."""

    def __init__(self, city: CityClient, status: PaymentStatus) -> None:
        self._city, self._status = city, status

    def __getattr__(self, name: str) -> Any:
        return getattr(self._city, name)

    async def create_payment(self, _session: Any, key: str, **kwargs: Any) -> Payment:
        return Payment("P-1", self._status, kwargs["amount"], (), START, idempotence_key=key)


@pytest.mark.parametrize(
    ("status", "outcome", "said"),
    [
        (PaymentStatus.PENDING, PauseReason.NEEDS_CONFIRMATION, "3-D Secure"),
        (PaymentStatus.EXPIRED_CARD, PauseReason.CARD_EXPIRED, "срок действия карты истёк"),
        (PaymentStatus.CANCELED, RunStatus.FAILED, "платёж отменён"),
    ],
)
async def test_the_first_failure_says_what_happened(
    factory: UnitOfWorkFactory,
    city: CityClient,
    status: PaymentStatus,
    outcome: PauseReason | RunStatus,
    said: str,
) -> None:
    """Not «declined three days in a row» for what is not a decline."""
    [autopay_id] = await add(factory, 1)
    await tick_at(factory, AnsweringCity(city, status), DUE)
    async with factory() as uow:
        stored = await uow.autopays.get(autopay_id)
        [notification] = [
            n for n in await uow.notifications.claim(DUE, 10) if n.telegram_user_id == RESIDENT
        ]
    assert stored is not None and notification.urgent
    if isinstance(outcome, PauseReason):
        assert (stored.status, stored.paused_reason) == (AutopayStatus.PAUSED, outcome)
    else:
        assert stored.status is AutopayStatus.ACTIVE  # the next period is tried as usual
    text, markup, _ = render(notification.kind, notification.data, load_translator())
    assert said in text and "три дня" not in text
    if isinstance(outcome, PauseReason):
        assert markup is not None  # «Открыть автоплатёж»


async def test_a_donation_above_the_ceiling_is_paused_not_charged(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    """Set up before the ceiling existed (10 000 000 ₽): never charged as it is."""
    [huge] = await add(factory, 1, amount=1_000_000_000)
    await tick_at(factory, city, DUE)
    assert await ledger(sandbox) == []
    async with factory() as uow:
        stored = await uow.autopays.get(huge)
        assert stored is not None and stored.paused_reason is PauseReason.OVER_CEILING
        resident = await uow.residents.get(RESIDENT)
        assert resident is not None
        resumed = await change(uow, resident, huge, DUE, money=20_000)  # a new amount resumes
    assert resumed.status is AutopayStatus.ACTIVE
    await tick_at(factory, city, datetime(2026, 12, 25, 10, 0, 1, tzinfo=MOSCOW))
    assert [c["amount"] for c in await ledger(sandbox)] == [20_000]
    assert (await outbox(engine))["autopay_paused"] == 1


async def test_operator_ceilings_bound_what_an_autopay_charges(
    factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    """A bill above min(the resident's limit, the autopay ceiling) is left to the resident: at
    discovery (not handed over: the resident is asked) and again at the charge (a ceiling
    lowered after the bill was handed over)."""
    async with factory() as uow:
        bill = await set_up(
            uow,
            Autopay(
                RESIDENT,
                AutopayKind.BILL,
                Schedule.on_issue(),
                "pm-full-4242",
                START,
                limit=5_000_000,
                bill_kind=BillKind.EPD,
            ),
            START,
        )
    await discover_bills(factory, city, START)  # the baseline
    data = sandbox.app[DATA_KEY]
    new_epd = replace(data.bill("B-1001"), id="B-9001", status=BillStatus.UNPAID, amount=812_450)
    data.add_bill(new_epd)
    assert new_epd.account_id == "C-100003" and new_epd.kind.value == "epd"
    assert (await discover_bills(factory, city, START)).handed == 1  # within the limit then
    await tick(factory, city, DUE, limits=AmountLimits(autopay=100_000))
    async with factory() as uow:
        [run] = await uow.autopays.runs(bill.id or 0)
        [notification] = [
            n
            for n in await uow.notifications.claim(DUE, 10)
            if n.telegram_user_id == RESIDENT and n.kind == "autopay_over_limit"
        ]
    assert run.status is RunStatus.OVER_LIMIT and await ledger(sandbox) == []
    assert notification.data["limit"] == 100_000

    data.add_bill(replace(new_epd, id="B-9002"))
    low = AmountLimits(autopay=100_000)
    found = await discover_bills(factory, city, DUE, limits=low)
    assert found.notices == 1 and found.handed == 0
    async with factory() as uow:
        [asked] = [
            n
            for n in await uow.notifications.claim(DUE + timedelta(hours=1), 10)
            if n.kind == "bill_issued" and n.data["bill_id"] == "B-9002"
        ]
        stored = await uow.autopays.get(bill.id or 0)
    assert asked.data["autopay"] == "over_limit" and asked.data["limit"] == 100_000
    assert stored is not None and stored.bill_id is None
    await tick(factory, city, DUE + timedelta(days=2), limits=low)
    assert await ledger(sandbox) == []


async def test_unlinking_cancels_autopays_and_relinking_resumes_none(
    factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    ids = await add(factory, 2)
    async with factory() as uow:
        resident = await uow.residents.get(RESIDENT)
        assert resident is not None
        await set_status(uow, resident, ids[1], AutopayStatus.PAUSED, START)
        await unlink(uow, city, resident)
        await uow.commit()
    tokens = await city.exchange_code(  # linked again
        code=await login_code(city, "demo-full"), code_verifier=VERIFIER
    )
    async with factory() as uow:
        await uow.residents.save(replace(resident, tokens=tokens))
        await uow.commit()
        assert await uow.autopays.of_resident(RESIDENT) == []
    await tick_at(factory, city, DUE)
    await tick_at(factory, city, datetime(2026, 12, 25, 10, 0, 1, tzinfo=MOSCOW))
    assert await ledger(sandbox) == []


async def test_a_deleted_autopay_stays_deleted_whatever_a_tick_saves(
    factory: UnitOfWorkFactory,
) -> None:
    """A tick that loaded an autopay before the resident unlinked cannot bring it back."""
    [autopay_id] = await add(factory, 1)
    async with factory() as uow:
        loaded = await uow.autopays.get(autopay_id)
        assert loaded is not None
    async with factory() as uow:
        resident = await uow.residents.get(RESIDENT)
        assert resident is not None
        await set_status(uow, resident, autopay_id, AutopayStatus.DELETED, START)
    async with factory() as uow:
        loaded.next_due_at = DUE + timedelta(days=30)
        await uow.autopays.save(loaded)  # what the tick would write back
        await uow.commit()
        again = await uow.autopays.get(autopay_id)
    assert again is not None and again.status is AutopayStatus.DELETED
