"""Review of issue 14's `SqlUnitOfWork.release_idle`: before a city call it COMMITs the update's
transaction when it "only read". What it counts as a write is what passes through the ORM
session's `do_orm_execute` and flushes; a write sent on the session's connection (Core,
`await session.connection()`) and a transaction-scoped lock taken by a SELECT are not seen, so
the release commits the write (which the update's failure should have rolled back) or lets
the lock go while the update still relies on it. No repository does either today: latent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.database import create_sessionmaker
from storage.token_cipher import TokenCipher
from storage.uow import UnitOfWorkFactory
from tests.conftest import fresh_engine


@pytest.fixture
async def pg_engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = await fresh_engine("postgres", tmp_path)
    yield engine
    await engine.dispose()


def factory(engine: AsyncEngine) -> UnitOfWorkFactory:
    return UnitOfWorkFactory(create_sessionmaker(engine), TokenCipher([TokenCipher.generate_key()]))


async def test_a_write_on_the_sessions_connection_is_not_committed_by_the_release(
    pg_engine: AsyncEngine,
) -> None:
    async with factory(pg_engine)() as uow:
        connection = await uow.session.connection()
        await connection.execute(
            text(
                "INSERT INTO fsm_state (key, state, data, updated_at)"
                " VALUES ('leak', 'x', '{}', now())"
            )
        )
        released = await uow.release_idle()  # a city call
        # … the update then fails: nothing it wrote may stay
    async with pg_engine.connect() as look:
        kept = await look.scalar(text("SELECT count(*) FROM fsm_state WHERE key = 'leak'"))
    assert (released, kept) == (False, 0)


async def test_a_transaction_lock_taken_by_a_select_is_not_let_go_by_the_release(
    pg_engine: AsyncEngine,
) -> None:
    async with factory(pg_engine)() as uow:
        await uow.session.execute(select(func.pg_advisory_xact_lock(14)))
        assert not await uow.release_idle()  # the lock must be kept over the city call
