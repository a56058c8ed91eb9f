"""Dialog state is not kept for nothing: the SQL storage deletes a key left with neither state
nor data (as aiogram's RedisStorage does), a user's keys are forgotten on unlinking (SQL and
Redis) — theirs only — and SQL state not written for a while is purged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from aiogram.fsm.storage.base import BaseStorage, StorageKey
from aiogram.fsm.storage.redis import RedisStorage
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from handlers.account import forget_dialogs
from storage.database import create_sessionmaker
from storage.fsm import SqlStorage, dialog_key_builder
from storage.models import FsmRow
from tests.conftest import REDIS_URL, need_service

BOT = 42
USER, OTHER = 1001, 1002


def key(user: int, destiny: str = "default") -> StorageKey:
    return StorageKey(bot_id=BOT, chat_id=user, user_id=user, destiny=destiny)


async def rows(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as connection:
        return list((await connection.execute(select(FsmRow.key).order_by(FsmRow.key))).scalars())


async def test_a_key_with_neither_state_nor_data_is_deleted(engine: AsyncEngine) -> None:
    sql = SqlStorage(create_sessionmaker(engine))
    await sql.set_data(key(USER), {})  # nothing to keep: no row is made
    await sql.set_state(key(USER), None)
    assert await rows(engine) == []

    await sql.set_state(key(USER), "Menu:main")
    await sql.set_data(key(USER), {"page": 2})
    await sql.set_data(key(USER), {})  # the state is still there: kept
    assert await sql.get_state(key(USER)) == "Menu:main"
    assert len(await rows(engine)) == 1
    await sql.set_state(key(USER), None)  # now nothing: deleted
    assert await rows(engine) == []

    await sql.set_data(key(USER, "aiogd:context:abc"), {"state": "X"})
    await sql.set_state(key(USER, "aiogd:context:abc"), None)  # data left: kept
    assert await sql.get_data(key(USER, "aiogd:context:abc")) == {"state": "X"}
    await sql.set_data(key(USER, "aiogd:context:abc"), {})  # as aiogram-dialog removes one
    assert await rows(engine) == []


async def test_forgetting_a_user_deletes_their_keys_only_sql(engine: AsyncEngine) -> None:
    sql = SqlStorage(create_sessionmaker(engine))
    for user in (USER, OTHER):
        await sql.set_state(key(user), "Menu:main")
        await sql.set_data(key(user, "aiogd:stack:"), {"intents": ["a"]})
        await sql.set_data(key(user, "aiogd:context:a"), {"state": "Menu:main"})
    await sql.set_data(key(10010), {"x": 1})  # a user id that starts like USER's
    assert await forget_dialogs(sql, BOT, USER) == 3
    left = await rows(engine)
    assert left and all(f":{USER}:" not in name for name in left)
    assert len([name for name in left if f":{OTHER}:" in name]) == 3
    assert await sql.get_data(key(10010)) == {"x": 1}


@pytest.fixture
async def redis_storage() -> AsyncIterator[RedisStorage]:
    storage = RedisStorage.from_url(
        need_service(REDIS_URL, "TEST_REDIS_URL"), key_builder=dialog_key_builder()
    )
    await storage.redis.flushdb()
    yield storage
    await storage.redis.flushdb()
    await storage.close()


async def test_forgetting_a_user_deletes_their_keys_only_redis(
    redis_storage: RedisStorage,
) -> None:
    storage: BaseStorage = redis_storage
    for user in (USER, OTHER, 10010):
        await storage.set_state(key(user), "Menu:main")
        await storage.set_data(key(user), {"x": 1})
        await storage.set_data(key(user, "aiogd:context:a"), {"state": "Menu:main"})
    lock = redis_storage.key_builder.build(key(USER), "lock")
    await redis_storage.redis.set(lock, "held")  # the update being handled holds it
    assert await forget_dialogs(storage, BOT, USER) == 3
    names = sorted(n.decode() for n in await redis_storage.redis.keys("*"))
    assert [n for n in names if f":{USER}:" in n] == [lock]
    assert len([n for n in names if f":{OTHER}:" in n]) == 3
    assert await storage.get_data(key(10010)) == {"x": 1}


async def test_state_not_written_for_a_while_is_purged(engine: AsyncEngine) -> None:
    sql = SqlStorage(create_sessionmaker(engine))
    await sql.set_state(key(USER), "Menu:main")
    await sql.set_state(key(OTHER), "Menu:main")
    old = datetime.now(UTC) - timedelta(days=31)
    async with engine.begin() as connection:
        await connection.execute(
            update(FsmRow).where(FsmRow.key.contains(f":{USER}:")).values(updated_at=old)
        )
    assert await sql.purge_stale(datetime.now(UTC) - timedelta(days=30)) == 1
    async with engine.connect() as connection:
        assert (await connection.execute(select(func.count()).select_from(FsmRow))).scalar() == 1
    assert await sql.get_state(key(OTHER)) == "Menu:main"
    assert await sql.get_state(key(USER)) is None


async def test_redis_dialog_state_expires_after_the_kept_period() -> None:
    """What the retention job does for SQL, Redis does itself: the storage the application
    builds sets a TTL of DIALOG_STATE_KEPT on every state and data key it writes."""
    from bot.app import _storage, utc_now
    from bot.config import Settings
    from storage.fsm import DIALOG_STATE_KEPT

    url = need_service(REDIS_URL, "Redis")
    storage, _isolation, _engine = _storage(Settings(redis_url=url), utc_now)
    assert isinstance(storage, RedisStorage)
    try:
        await storage.set_state(key(USER), "Menu:main")
        await storage.set_data(key(USER, "aiogd:stack:"), {"intents": ["a"]})
        builder = storage.key_builder
        for part, destiny in (("state", "default"), ("data", "aiogd:stack:")):
            ttl = await storage.redis.ttl(builder.build(key(USER, destiny), part))
            assert DIALOG_STATE_KEPT.total_seconds() - 60 < ttl <= DIALOG_STATE_KEPT.total_seconds()
    finally:
        await storage.redis.delete(*[k async for k in storage.redis.scan_iter(f"*{USER}*")])
        await storage.close()
