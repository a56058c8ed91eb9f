"""Review of issue 15 part 1: migration 0012 on a BILL autopay whose charge was in flight when
the old bot stopped (its run STARTED, its key maybe at the city, `retry_period` not yet set)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.autopay import MOSCOW
from storage.database import create_sessionmaker
from storage.migrate import downgrade, upgrade
from storage.token_cipher import TokenCipher
from storage.uow import UnitOfWorkFactory

DUE = datetime(2026, 11, 25, 10, 0, tzinfo=MOSCOW)


async def test_a_charge_in_flight_at_the_upgrade_is_finished_with_its_key(
    sqlite_engine: AsyncEngine,
) -> None:
    """The old bot died after committing the run's key and before recording the outcome (the
    lease is kept for its successor, `retry_period` is still None). 0012 sends every BILL
    autopay without `retry_period` to IDLE and makes its period the next bill's: the STARTED
    run of «2026-11» is never looked at again — a charge the city may have made is never
    recorded, told or receipted, and one it did not make is never finished."""
    engine = sqlite_engine
    await downgrade(engine, "0011")
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO autopays (id, telegram_user_id, kind, frequency, day, method_id,"
                ' "limit", bill_kind, status, next_due_at, created_at, unanswered,'
                " claimed_until)"
                " VALUES (1, 7, 'bill', 'monthly', 25, 'pm-full-4242', 1000000, 'epd',"
                " 'active', :due, :due, 0, :lease)"
            ),
            {"due": DUE, "lease": DUE.replace(minute=5)},
        )
        await connection.execute(
            text(
                "INSERT INTO autopay_runs (autopay_id, period, key, status, attempts, amount,"
                " created_at, updated_at)"
                " VALUES (1, '2026-11', 'ap-1-2026-11-1', 'started', 1, 812450, :due, :due)"
            ),
            {"due": DUE},
        )
    await upgrade(engine)
    factory = UnitOfWorkFactory(
        create_sessionmaker(engine), TokenCipher([TokenCipher.generate_key()])
    )
    async with factory() as uow:
        [autopay] = await uow.autopays.of_resident(7)
    assert autopay.period == "2026-11" and autopay.next_due_at == DUE
