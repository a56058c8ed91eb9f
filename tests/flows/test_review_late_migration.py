"""Reviewer probe of migration 0011 with data in the tables, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.accounts import AccountLevel, Resident, TokenSet
from domain.autopay import MOSCOW
from storage.database import create_sessionmaker
from storage.migrate import downgrade, head_revision, upgrade
from storage.token_cipher import TokenCipher
from storage.uow import UnitOfWorkFactory

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=MOSCOW)
INSERT = text(
    'INSERT INTO autopays (telegram_user_id, kind, frequency, day, method_id, amount, "limit",'
    " fund_id, fund_name, bill_kind, status, next_due_at, created_at)"
    " VALUES (7, 'fixed', 'monthly', 25, :method, 15000, NULL, :fund, :name, NULL, 'active',"
    " :due, :due)"
)


async def _rows(engine: AsyncEngine) -> list[tuple[str, str, str]]:
    async with engine.connect() as c:
        got = await c.execute(
            text("SELECT method_id, fund_id, fund_name FROM autopays ORDER BY id")
        )
        return [tuple(r) for r in got]


async def _revision(engine: AsyncEngine) -> str:
    async with engine.connect() as c:
        return str((await c.execute(text("SELECT version_num FROM alembic_version"))).scalar())


async def test_0011_round_trip_with_data(engine: AsyncEngine) -> None:
    factory = UnitOfWorkFactory(
        create_sessionmaker(engine), TokenCipher([TokenCipher.generate_key()])
    )
    async with factory() as uow:
        await uow.residents.save(
            Resident(7, 7, "C-100003", AccountLevel.FULL, "Мария В.", TokenSet("a", "r", NOW), NOW)
        )
        await uow.commit()
    await downgrade(engine, "0010")
    async with engine.begin() as c:
        await c.execute(INSERT, dict(method="pm-1", fund="F-1", name="Фонд", due=NOW))
    await upgrade(engine)
    assert await _rows(engine) == [("pm-1", "F-1", "Фонд")]
    async with engine.begin() as c:  # long values now fit
        await c.execute(INSERT, dict(method="m" * 300, fund="f" * 300, name="н" * 600, due=NOW))
    assert len(await _rows(engine)) == 2
    # downgrade with a value longer than the old column
    if engine.dialect.name == "postgresql":
        with pytest.raises(Exception) as raised:
            await downgrade(engine, "0010")
        print("PG downgrade:", type(raised.value).__name__, str(raised.value)[:200])
        assert await _revision(engine) == head_revision()  # rolled back as a whole
        assert len(await _rows(engine)) == 2
    else:
        await downgrade(engine, "0010")
        print("SQLite downgrade kept:", [len(r[0]) for r in await _rows(engine)])
        assert await _revision(engine) == "0010"
    async with factory() as uow:
        got = await uow.residents.get(7)
        assert got is not None and got.city_account_id == "C-100003"
