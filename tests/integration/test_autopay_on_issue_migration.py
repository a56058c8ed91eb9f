"""Migration 0012 on SQLite and PostgreSQL: BILL autopays stored with a schedule become «по
выставленному счёту» (on issue). One with a period still being tried keeps that period and
its due moment (its run is finished with its own key); the others wait for the next bill
discovered; donations keep their schedule. Down and up again works."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.autopay import IDLE, MOSCOW, AutopayKind, Frequency
from storage.database import create_sessionmaker
from storage.migrate import downgrade, upgrade
from storage.token_cipher import TokenCipher
from storage.uow import UnitOfWorkFactory

DUE = datetime(2026, 11, 25, 10, 0, tzinfo=MOSCOW)
INSERT = text(
    'INSERT INTO autopays (telegram_user_id, kind, frequency, day, method_id, amount, "limit",'
    " fund_id, fund_name, bill_kind, status, next_due_at, created_at, retry_period,"
    " skip_period, unanswered)"
    " VALUES (7, :kind, :frequency, :day, 'pm-full-4242', :amount, :limit, :fund_id, :fund_name,"
    " :bill_kind, 'active', :due, :due, :retry, :skip, 0)"
)


async def test_bill_autopays_become_on_issue(engine: AsyncEngine) -> None:
    await downgrade(engine, "0011")
    bill = {"kind": "bill", "amount": None, "limit": 1_000_000, "fund_id": None}
    rows = [
        {**bill, "frequency": "monthly", "day": 25, "bill_kind": "epd", "retry": None,
         "skip": "2026-11"},
        {**bill, "frequency": "weekly", "day": 3, "bill_kind": "mgts", "retry": "2026-11",
         "skip": None},
        {"kind": "fixed", "frequency": "monthly", "day": 5, "amount": 15_000, "limit": None,
         "fund_id": "F-101", "bill_kind": None, "retry": None, "skip": None},
    ]  # fmt: skip
    async with engine.begin() as connection:
        for row in rows:
            await connection.execute(
                INSERT, {"fund_name": "Фонд" if row["fund_id"] else None, "due": DUE, **row}
            )
    await upgrade(engine)

    factory = UnitOfWorkFactory(
        create_sessionmaker(engine), TokenCipher([TokenCipher.generate_key()])
    )
    async with factory() as uow:
        epd, mgts, fund = await uow.autopays.of_resident(7)
    assert epd.kind is AutopayKind.BILL and epd.on_issue and epd.schedule.day == 0
    assert (epd.next_due_at, epd.skip_period, epd.bill_id) == (IDLE, None, None)
    assert epd.period == "idle"  # waits for a bill: never due by the clock
    assert mgts.on_issue and mgts.next_due_at == DUE and mgts.retry_period == "2026-11"
    assert mgts.period == "2026-11"  # the period being tried, with its run's key
    assert fund.schedule.frequency is Frequency.MONTHLY and fund.schedule.day == 5
    assert fund.next_due_at == DUE

    await downgrade(engine, "0011")  # and back again
    await upgrade(engine)
