"""Migration 0007 on SQLite and PostgreSQL: autopays written before it are put right —
a bill autopay stops carrying a donation's fund and amount, autopays of residents no longer
linked are paused (relinking resumes nothing by itself), old pauses were the resident's."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.accounts import AccountLevel, Resident, TokenSet
from domain.autopay import MOSCOW, AutopayKind, AutopayStatus, PauseReason
from storage.database import create_sessionmaker
from storage.migrate import downgrade, upgrade
from storage.token_cipher import TokenCipher
from storage.uow import UnitOfWorkFactory

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=MOSCOW)
INSERT = text(
    'INSERT INTO autopays (telegram_user_id, kind, frequency, day, method_id, amount, "limit",'
    " fund_id, fund_name, bill_kind, status, next_due_at, created_at)"
    " VALUES (:user, :kind, 'monthly', 25, 'pm-full-4242', :amount, :limit, :fund_id,"
    " :fund_name, :bill_kind, :status, :due, :due)"
)


async def test_old_autopays_are_put_right(engine: AsyncEngine) -> None:
    factory = UnitOfWorkFactory(
        create_sessionmaker(engine), TokenCipher([TokenCipher.generate_key()])
    )
    async with factory() as uow:  # resident 7 is linked; resident 8 unlinked long ago
        tokens = TokenSet("access", "refresh", NOW)
        await uow.residents.save(
            Resident(7, 7, "C-100003", AccountLevel.FULL, "Мария В.", tokens, NOW)
        )
        await uow.commit()
    await downgrade(engine, "0006")
    rows = [
        # an ЕПД autopay set up after a donation in the same visit (the bug)
        dict(
            user=7,
            kind="bill",
            amount=30_000,
            limit=1_000_000,
            fund_id="F-101",
            fund_name="Фонд",
            bill_kind="epd",
            status="active",
        ),
        dict(
            user=7,
            kind="fixed",
            amount=15_000,
            limit=None,
            fund_id="F-102",
            fund_name="Фонд 2",
            bill_kind=None,
            status="paused",
        ),
        dict(
            user=8,
            kind="fixed",
            amount=15_000,
            limit=None,
            fund_id="F-103",
            fund_name="Фонд 3",
            bill_kind=None,
            status="active",
        ),
        dict(
            user=7,
            kind="fixed",
            amount=None,
            limit=None,
            fund_id=None,
            fund_name=None,
            bill_kind=None,
            status="active",
        ),  # could never be charged
    ]
    async with engine.begin() as connection:
        for row in rows:
            await connection.execute(INSERT, {**row, "due": NOW})
    await upgrade(engine)

    async with factory() as uow:
        epd, paused = await uow.autopays.of_resident(7)
        [unlinked] = await uow.autopays.of_resident(8)
        assert await uow.autopays.get(4) is None
    assert (epd.kind, epd.fund_id, epd.fund_name, epd.amount) == (
        AutopayKind.BILL,
        None,
        None,
        None,
    )
    assert (epd.limit, epd.status, epd.unanswered) == (1_000_000, AutopayStatus.ACTIVE, 0)
    assert (paused.status, paused.paused_reason) == (AutopayStatus.PAUSED, PauseReason.BY_RESIDENT)
    assert (unlinked.status, unlinked.paused_reason) == (AutopayStatus.PAUSED, PauseReason.RELINK)

    await downgrade(engine, "0006")  # and back again
    await upgrade(engine)
