"""Autopay exactly once on SQLite and PostgreSQL, judged by the sandbox's ledger: two schedulers
at once, a process killed after the charge, a repeated tick, retries, and no period skipped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from city.client import CityClient
from domain.accounts import AccountLevel, Resident
from domain.autopay import (
    IDLE,
    MOSCOW,
    Autopay,
    AutopayKind,
    Frequency,
    RunStatus,
    Schedule,
    bill_period,
)
from domain.autopaying import set_up, tick
from domain.bill_discovery import discover_bills
from domain.bills import BillKind
from sandbox import SandboxServer
from sandbox.data import BillKind as SandboxKind
from sandbox.data import BillStatus, CityBill
from sandbox.oauth import DATA_KEY
from storage.database import create_sessionmaker
from storage.token_cipher import TokenCipher
from storage.uow import UnitOfWorkFactory
from tests.contract.test_city_client import REDIRECT, VERIFIER, login_code

START = datetime(2026, 11, 24, 12, 0, tzinfo=MOSCOW)


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
    uow_factory = UnitOfWorkFactory(
        create_sessionmaker(engine), TokenCipher([TokenCipher.generate_key()])
    )
    tokens = await city.exchange_code(
        code=await login_code(city, "demo-full"), code_verifier=VERIFIER
    )
    async with uow_factory() as uow:
        await uow.residents.save(
            Resident(7, 7, "C-100003", AccountLevel.FULL, "Мария В.", tokens, START)
        )
        await uow.commit()
    return uow_factory


async def ledger(sandbox: SandboxServer) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as http:
        async with http.get(sandbox.url + "/sandbox/ledger") as answer:
            return (await answer.json())["charges"]


def donation(day: int, method: str = "pm-full-4242", fund: str = "F-101") -> Autopay:
    return Autopay(
        telegram_user_id=7,
        kind=AutopayKind.FIXED,
        schedule=Schedule(Frequency.MONTHLY, day),
        method_id=method,
        next_due_at=START,
        amount=10_000,
        fund_id=fund,
        fund_name="Фонд",
    )


async def add(factory: UnitOfWorkFactory, autopay: Autopay, now: datetime = START) -> Autopay:
    async with factory() as uow:
        return await set_up(uow, autopay, now)


def issue_mgts(sandbox: SandboxServer, period: str) -> str:
    """The city issues a new МГТС bill to the resident's account."""
    data = sandbox.app[DATA_KEY]
    bill = CityBill(
        id=data.new_bill_id(),
        account_id="C-100003",
        kind=SandboxKind.MGTS,
        title=f"Телефон за {period}",
        provider="ПАО «МГТС»",
        amount=90_000,
        due_date=date(2026, 12, 31),
        status=BillStatus.UNPAID,
        period=period,
    )
    data.add_bill(bill)
    return bill.id


async def tick_at(factory: UnitOfWorkFactory, city: Any, now: datetime) -> int:
    return await tick(factory, city, now)


async def test_two_schedulers_at_once_charge_each_period_once(
    factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    autopays = [await add(factory, donation(25, fund=f"F-10{n}")) for n in (1, 2, 3)]
    bill = await add(
        factory,
        Autopay(
            7,
            AutopayKind.BILL,
            Schedule.on_issue(),  # «по выставленному счёту»: paid when its bill is discovered
            "pm-full-4242",
            START,
            limit=2_000_000,
            bill_kind=BillKind.MGTS,
        ),
    )
    await discover_bills(factory, city, START)  # the baseline: the bills there are now
    issued = [issue_mgts(sandbox, "11.2026")]
    assert (await discover_bills(factory, city, START)).handed == 1  # due 25.11 at 10:00
    due = datetime(2026, 11, 25, 10, 0, 1, tzinfo=MOSCOW)
    await asyncio.gather(tick_at(factory, city, due), tick_at(factory, city, due))
    await tick_at(factory, city, due)  # a tick repeated
    charges = await ledger(sandbox)
    assert len(charges) == 4
    assert sorted(c["amount"] for c in charges)[:3] == [10_000] * 3
    async with factory() as uow:
        for autopay in [*autopays, bill]:
            assert autopay.id is not None
            runs = await uow.autopays.runs(autopay.id)
            assert [r.status for r in runs] == [RunStatus.SUCCEEDED]
            stored = await uow.autopays.get(autopay.id)
            assert stored is not None
            if autopay is bill:  # waits for the next bill
                assert stored.next_due_at == IDLE and stored.bill_id is None
            else:
                assert stored.next_due_at.astimezone(MOSCOW).month == 12

    issued.append(issue_mgts(sandbox, "12.2026"))
    assert (await discover_bills(factory, city, START + timedelta(days=30))).handed == 1
    next_month = datetime(2026, 12, 25, 10, 0, 1, tzinfo=MOSCOW)  # no period is skipped
    await tick_at(factory, city, next_month)
    await tick_at(factory, city, next_month)
    keys = [c["idempotence_key"] for c in await ledger(sandbox)]
    assert len(keys) == len(set(keys))
    assert bill.id is not None  # one charge per bill: its period is the bill
    assert sorted(k for k in keys if k.startswith(f"ap-{bill.id}-")) == sorted(
        f"ap-{bill.id}-{bill_period(b)}-1" for b in issued
    )
    data = sandbox.app[DATA_KEY]
    assert all(data.bill(b).status is BillStatus.PAID for b in issued)
    for autopay in autopays:  # one charge per donation per month, November and December
        assert sorted(k for k in keys if k.startswith(f"ap-{autopay.id}-")) == [
            f"ap-{autopay.id}-2026-11-1",
            f"ap-{autopay.id}-2026-12-1",
        ]


class Crash(BaseException):
    """The scheduler process dies."""


class DiesAfterCharging:
    def __init__(self, city: CityClient) -> None:
        self._city = city

    def __getattr__(self, name: str) -> Any:
        return getattr(self._city, name)

    async def create_payment(self, *args: Any, **kwargs: Any) -> Any:
        await self._city.create_payment(*args, **kwargs)
        raise Crash()


async def test_a_scheduler_killed_after_the_charge_does_not_charge_again(
    factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    autopay = await add(factory, donation(25))
    due = datetime(2026, 11, 25, 10, 0, 1, tzinfo=MOSCOW)
    with pytest.raises(Crash):
        await tick_at(factory, DiesAfterCharging(city), due)
    assert len(await ledger(sandbox)) == 1
    assert await tick_at(factory, city, due) == 0  # its lease is still held
    later = due + timedelta(minutes=6)  # the lease expired: another scheduler takes over
    assert await tick_at(factory, city, later) == 1
    assert len(await ledger(sandbox)) == 1
    async with factory() as uow:
        assert autopay.id is not None
        [run] = await uow.autopays.runs(autopay.id)
    assert run.status is RunStatus.SUCCEEDED


async def test_a_declined_card_is_retried_on_the_next_two_days_then_reported(
    factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    autopay = await add(factory, donation(25, method="pm-full-0002"))
    for day in (25, 26, 27):
        await tick_at(factory, city, datetime(2026, 11, day, 10, 0, 1, tzinfo=MOSCOW))
    assert await ledger(sandbox) == []
    async with factory() as uow:
        assert autopay.id is not None
        [run] = await uow.autopays.runs(autopay.id)
        assert (run.status, run.attempts) == (RunStatus.FAILED, 3)
        claimed = await uow.notifications.claim(START + timedelta(days=5), 10)
    assert [n.kind for n in claimed] == ["autopay_failed"] and claimed[0].urgent
    async with factory() as uow:
        stored = await uow.autopays.get(autopay.id)
    assert stored is not None and stored.next_due_at.date().month == 12
