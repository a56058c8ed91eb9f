"""A unit of work gives its connection back before a city call when it only read, and never
when it wrote or holds a row lock (`SqlUnitOfWork.release_idle`, `city.transport.before_call`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.accounts import AccountLevel, Resident, TokenSet
from storage.database import create_sessionmaker
from storage.token_cipher import TokenCipher
from storage.uow import UnitOfWorkFactory, _only_reads

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def factory(engine: AsyncEngine) -> UnitOfWorkFactory:
    return UnitOfWorkFactory(create_sessionmaker(engine), TokenCipher([TokenCipher.generate_key()]))


def resident(user_id: int) -> Resident:
    return Resident(
        telegram_user_id=user_id,
        chat_id=user_id,
        city_account_id="C-100003",
        account_level=AccountLevel.FULL,
        masked_name="Мария И.",
        tokens=TokenSet("access", "refresh", NOW + timedelta(hours=1)),
        linked_at=NOW,
    )


def checked_out(engine: AsyncEngine) -> int:
    return int(engine.sync_engine.pool.checkedout())  # type: ignore[attr-defined]


async def test_a_transaction_that_only_read_is_ended_and_its_connection_returned(
    engine: AsyncEngine,
) -> None:
    uow_factory = factory(engine)
    async with uow_factory() as uow:
        await uow.residents.save(resident(1))
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.residents.get(1) is not None
        assert checked_out(engine) == 1
        assert await uow.release_idle() is True
        assert checked_out(engine) == 0
        assert await uow.release_idle() is False  # nothing open any more
        loaded = await uow.residents.get(1)  # the next statement simply begins again
        assert loaded is not None and loaded.tokens.access_token == "access"


async def test_a_transaction_that_wrote_keeps_its_connection_and_its_writes(
    engine: AsyncEngine,
) -> None:
    uow_factory = factory(engine)
    async with uow_factory() as uow:
        await uow.residents.save(resident(2))  # a flush: written, not committed
        assert await uow.release_idle() is False
        assert checked_out(engine) == 1
        await uow.rollback()  # the caller's choice stays its own: nothing was committed early
    async with uow_factory() as uow:
        assert await uow.residents.get(2) is None

    async with uow_factory() as uow:
        await uow.residents.save(resident(3))
        await uow.commit()
    async with uow_factory() as uow:
        await uow.residents.delete(3)  # a DML statement through session.execute
        assert await uow.release_idle() is False
        await uow.rollback()
        assert await uow.residents.get(3) is not None
        assert await uow.release_idle() is True  # after the rollback, a new read-only one


async def test_a_row_lock_or_a_text_statement_is_never_given_up(engine: AsyncEngine) -> None:
    uow_factory = factory(engine)
    async with uow_factory() as uow:
        await uow.autopays.lock(12345)  # SELECT … FOR UPDATE: its lock must last
        # (SQLite has no row locks: there the statement is a plain SELECT)
        assert await uow.release_idle() is (engine.dialect.name == "sqlite")
    async with uow_factory() as uow:
        await uow.session.execute(text("SELECT 1"))  # judged by its SQL, however it was sent
        assert await uow.release_idle() is True
        await uow.session.execute(text("DELETE FROM residents WHERE telegram_user_id = 0"))
        assert await uow.release_idle() is False
        await uow.rollback()
        connection = await uow.session.connection()  # Core on the session's own connection
        await connection.execute(text("UPDATE residents SET locale = 'ru' WHERE 1 = 0"))
        assert await uow.release_idle() is False


@pytest.mark.parametrize(
    ("statement", "reads"),
    [
        ("SELECT residents.locale FROM residents WHERE residents.telegram_user_id = $1", True),
        ("  select 1", True),
        ("WITH t AS (SELECT 1) SELECT * FROM t", True),
        ("SELECT updated_at FROM fsm_state", True),
        ("SELECT id FROM autopays WHERE id = $1 FOR UPDATE", False),
        ("SELECT id FROM autopays FOR NO KEY UPDATE SKIP LOCKED", False),
        ("SELECT id FROM autopays FOR SHARE", False),
        ("SELECT pg_advisory_xact_lock($1)", False),
        ("WITH moved AS (UPDATE autopays SET day = 1 RETURNING id) SELECT * FROM moved", False),
        ("INSERT INTO residents DEFAULT VALUES", False),
        ("UPDATE residents SET locale = 'ru'", False),
        ("DELETE FROM residents", False),
        ("CREATE TABLE x (id int)", False),
    ],
)
def test_what_counts_as_only_reading(statement: str, reads: bool) -> None:
    assert _only_reads(statement) is reads
