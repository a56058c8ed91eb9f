"""Review of 0d720ff: the update's resident read outside its transaction
(`SqlResidentRepository.peek`, on an AUTOCOMMIT view of the same pool: `UnitOfWorkFactory.reader`).

Probed: the AUTOCOMMIT level leaking into a connection a session takes next (same pool); the
pool's order (a peek's connection given back before the session takes its own: no deadlock with
every connection held); and a resident changed (unlinked) between the read and a write based
on it. Tests marked «FAILS (finding N)» show a broken invariant; the others held."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bot.middlewares import UnitOfWorkMiddleware
from domain.accounts import AccountLevel, Resident, TokenSet
from domain.errors import RelinkRequired
from domain.sessions import ResidentSession
from storage.database import create_sessionmaker
from storage.models import ResidentRow
from storage.token_cipher import TokenCipher
from storage.uow import UnitOfWorkFactory
from tests.conftest import fresh_engine

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _resident(user: int) -> Resident:
    return Resident(
        telegram_user_id=user,
        chat_id=user,
        city_account_id=f"C-{user}",
        account_level=AccountLevel.FULL,
        masked_name="Мария И.",
        tokens=TokenSet("access-1", "refresh-1", NOW + timedelta(hours=1)),
        linked_at=NOW,
    )


@pytest.fixture
async def one_connection(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """A PostgreSQL engine whose pool holds ONE connection, no overflow: whatever a peek does
    to a connection, the session's next checkout gets that same connection."""
    migrated = await fresh_engine("postgres", tmp_path)
    url = migrated.url
    await migrated.dispose()
    engine = create_async_engine(url, pool_size=1, max_overflow=0, pool_timeout=3)
    yield engine
    await engine.dispose()


async def _factory(engine: AsyncEngine, *users: int) -> UnitOfWorkFactory:
    factory = UnitOfWorkFactory(
        create_sessionmaker(engine), TokenCipher([TokenCipher.generate_key()])
    )
    assert factory.reader is not None
    async with factory() as uow:
        for user in users:
            await uow.residents.save(_resident(user))
        await uow.commit()
    return factory


async def test_held_autocommit_does_not_leak_into_the_sessions_connection(
    one_connection: AsyncEngine,
) -> None:
    """Held: after a peek on the pool's only connection, the session on that connection is in
    a transaction again — what it writes and does not commit is rolled back."""
    factory = await _factory(one_connection, 7)
    async with factory() as uow:
        assert await uow.residents.peek(7) is not None
        backend = await uow.session.scalar(text("select pg_backend_pid()"))
        await uow.residents.delete(7)
        assert uow.session.in_transaction()
        level = await uow.session.scalar(text("show transaction_isolation"))
        assert level == "read committed"
        in_block = await uow.session.scalar(text("select now() = statement_timestamp()"))
        assert in_block is False  # a transaction block: now() is its start, not this statement
        # (leaves without commit: rolled back)
    async with factory() as uow:
        assert await uow.residents.peek(7) is not None  # the delete was rolled back
        again = await uow.session.scalar(text("select pg_backend_pid()"))
        assert again == backend  # the very connection the peeks used


async def test_held_peek_gives_its_connection_back_before_the_session_takes_one(
    one_connection: AsyncEngine,
) -> None:
    """Held: with every connection held by an update's session, the next update's peek waits
    for one to come back — no deadlock: the peek never holds a connection while its session
    waits for another (UnitOfWorkMiddleware peeks first, the session connects lazily after)."""
    factory = await _factory(one_connection, 7, 8)
    middleware = UnitOfWorkMiddleware(factory)
    first_holds = asyncio.Event()
    let_go = asyncio.Event()
    seen: list[Any] = []

    async def handler(_event: Any, data: dict[str, Any]) -> None:
        await data["uow"].session.execute(select(ResidentRow.telegram_user_id))  # holds it
        seen.append(data["resident"].telegram_user_id)
        if len(seen) == 1:
            first_holds.set()
            await let_go.wait()

    class _User:
        def __init__(self, user: int) -> None:
            self.id = user

    first = asyncio.create_task(middleware(handler, object(), {"event_from_user": _User(7)}))
    await first_holds.wait()
    second = asyncio.create_task(middleware(handler, object(), {"event_from_user": _User(8)}))
    await asyncio.sleep(0)  # the second's peek is waiting for the pool's connection now
    let_go.set()
    await asyncio.gather(first, second)  # a deadlock would raise the pool's TimeoutError
    assert seen == [7, 8]


async def test_hazard_a_peek_while_the_session_holds_the_last_connection_waits_for_nothing(
    one_connection: AsyncEngine,
) -> None:
    """Held as a hazard, not a bug today: `peek` called by a handler after its session took a
    connection needs a second one. With pool_size updates in flight, each holding its
    session's, every such peek waits out POOL_TIMEOUT and fails (transient: handled again,
    same again). Today only the middleware peeks, before the session connects; the docstring
    says «for the update's start only», which is the only guard."""
    factory = await _factory(one_connection, 7)
    async with factory() as uow:
        await uow.session.execute(select(ResidentRow.telegram_user_id))
        with pytest.raises(PoolTimeout):
            await uow.residents.peek(7)


class _RotatingAuth:
    """The city's token endpoint: a refresh gives a new pair (the refresh token rotates)."""

    def __init__(self) -> None:
        self.before_answer: Any = None
        self.revoked: list[str] = []

    async def refresh(self, refresh_token: str) -> TokenSet:
        if self.before_answer is not None:
            await self.before_answer()
        return TokenSet("access-2", "refresh-2", NOW + timedelta(hours=2))

    async def revoke(self, token: str) -> None:
        self.revoked.append(token)


async def test_a_refresh_after_a_concurrent_unlink_does_not_bring_the_resident_back(
    one_connection: AsyncEngine,
) -> None:
    """FINDING 4 (fixed: failed before `ResidentSession.refresh` re-read the row under its lock;
    not made by 0d720ff — `get` read the same committed row outside any
    lock before — but it answers the brief's question: a write based on the resident read at
    the update's start, not re-read under a lock). An update (or a job: autopay, bill
    discovery) holds the resident it read; its city call needs a refresh. While the city
    answers, the resident unlinks (handlers/account.py `on_unlink`: revokes the tokens it
    knows — refresh-1 — and deletes the row, committed). `ResidentSession.refresh` then saves
    the fresh tokens with `residents.save`, an upsert: the deleted resident is inserted again,
    linked, with tokens the unlink never revoked. The resident asked to be forgotten."""
    factory = await _factory(one_connection, 7)
    auth = _RotatingAuth()
    async with factory() as uow:
        resident = await uow.residents.peek(7)
        assert resident is not None
        await uow.session.rollback()  # release_idle before the city call: no connection held

        async def unlinked_meanwhile() -> None:
            async with factory() as other:
                await other.residents.delete(7)
                await other.commit()

        auth.before_answer = unlinked_meanwhile
        with pytest.raises(RelinkRequired):  # unlinked: what a refused refresh says too
            await ResidentSession(resident, auth, uow).refresh()  # type: ignore[arg-type]
    async with factory() as uow:
        assert await uow.residents.peek(7) is None, "an unlinked resident linked again"
    assert auth.revoked == ["refresh-2"]  # the tokens the unlinking never saw are revoked


async def test_a_refresh_after_a_new_link_keeps_the_new_links_tokens(
    one_connection: AsyncEngine,
) -> None:
    """The resident linked again while the city answered a refresh of the old link's tokens:
    the new link's tokens stand (not overwritten by the old link's refreshed ones), the call
    goes on with them, and the old link's fresh tokens are revoked."""
    factory = await _factory(one_connection, 7)
    auth = _RotatingAuth()
    relinked = TokenSet("access-new", "refresh-new", NOW + timedelta(hours=2))
    async with factory() as uow:
        resident = await uow.residents.peek(7)
        assert resident is not None
        await uow.session.rollback()

        async def linked_again_meanwhile() -> None:
            async with factory() as other:
                again = await other.residents.get(7)
                assert again is not None
                again.tokens = relinked
                await other.residents.save(again)
                await other.commit()

        auth.before_answer = linked_again_meanwhile
        session = ResidentSession(resident, auth, uow)  # type: ignore[arg-type]
        await session.refresh()
        assert session.access_token == "access-new"
    async with factory() as uow:
        stored = await uow.residents.peek(7)
    assert stored is not None and stored.tokens == relinked
    assert auth.revoked == ["refresh-2"]
