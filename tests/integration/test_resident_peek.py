"""The update's resident is read outside the unit of work's transaction on PostgreSQL
(`SqlResidentRepository.peek`): one statement in autocommit, so an update that never touches
the database again opens no transaction at all."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.accounts import AccountLevel, Resident, TokenSet
from storage.database import create_sessionmaker
from storage.token_cipher import TokenCipher
from storage.uow import UnitOfWorkFactory

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
RESIDENT = Resident(
    telegram_user_id=7,
    chat_id=7,
    city_account_id="C-7",
    account_level=AccountLevel.FULL,
    masked_name="Мария И.",
    tokens=TokenSet("access-1", "refresh-1", NOW + timedelta(hours=1)),
    linked_at=NOW,
)


async def _factory(engine: AsyncEngine) -> UnitOfWorkFactory:
    factory = UnitOfWorkFactory(
        create_sessionmaker(engine), TokenCipher([TokenCipher.generate_key()])
    )
    async with factory() as uow:
        await uow.residents.save(RESIDENT)
        await uow.commit()
    return factory


async def test_peek_reads_what_get_reads(engine: AsyncEngine) -> None:
    factory = await _factory(engine)
    async with factory() as uow:
        peeked = await uow.residents.peek(7)
        assert peeked == RESIDENT  # tokens decrypted on read, dates aware UTC
        assert peeked == await uow.residents.get(7)
        assert await uow.residents.peek(8) is None


async def test_peek_sees_a_commit_made_after_the_unit_of_work_began(engine: AsyncEngine) -> None:
    factory = await _factory(engine)
    async with factory() as uow:
        assert await uow.residents.peek(7) is not None
        async with factory() as other:
            await other.residents.delete(7)
            await other.commit()
        assert await uow.residents.peek(7) is None


async def test_on_postgresql_peek_begins_no_transaction(
    pg_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a transaction the update that only reads its resident costs one round trip:
    no BEGIN, and no COMMIT or ROLLBACK to end it (`get`, in the session's transaction, costs
    all three)."""
    factory = await _factory(pg_engine)
    begun: list[object] = []
    transaction = asyncpg.Connection.transaction

    def counted(self: asyncpg.Connection, *args: Any, **kwargs: Any) -> Any:
        begun.append(self)
        return transaction(self, *args, **kwargs)

    monkeypatch.setattr(asyncpg.Connection, "transaction", counted)
    async with factory() as uow:
        assert await uow.residents.peek(7) == RESIDENT
        assert not uow.session.in_transaction()
    assert begun == []
    async with factory() as uow:  # the yardstick: the same read inside the transaction
        assert await uow.residents.get(7) == RESIDENT
    assert len(begun) == 1
