"""Dialog/FSM state storage: the SQL one (SQLite, PostgreSQL) and Redis behave the same."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiogram.fsm.storage.base import BaseStorage, StorageKey
from aiogram.fsm.storage.redis import RedisStorage
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.database import create_sessionmaker
from storage.fsm import SqlStorage, dialog_key_builder
from tests.conftest import REDIS_URL, need_service

KEY = StorageKey(bot_id=42, chat_id=1001, user_id=1001)
DIALOG_KEY = StorageKey(bot_id=42, chat_id=1001, user_id=1001, destiny="aiogram_dialog_stack")


@pytest.fixture(params=["sql", "redis"])
async def storage(
    request: pytest.FixtureRequest, sqlite_engine: AsyncEngine
) -> AsyncIterator[BaseStorage]:
    if request.param == "sql":
        yield SqlStorage(create_sessionmaker(sqlite_engine))
        return
    redis_storage = RedisStorage.from_url(
        need_service(REDIS_URL, "TEST_REDIS_URL"), key_builder=dialog_key_builder()
    )
    await redis_storage.redis.flushdb()
    yield redis_storage
    await redis_storage.redis.flushdb()
    await redis_storage.close()


async def test_state_and_data_round_trip(storage: BaseStorage) -> None:
    assert await storage.get_state(KEY) is None
    assert await storage.get_data(KEY) == {}
    await storage.set_state(KEY, "Bills:list")
    await storage.set_data(KEY, {"page": 2, "ids": ["B-1", "B-2"], "nested": {"a": None}})
    assert await storage.get_state(KEY) == "Bills:list"
    assert await storage.get_data(KEY) == {"page": 2, "ids": ["B-1", "B-2"], "nested": {"a": None}}
    await storage.set_state(KEY, None)
    assert await storage.get_state(KEY) is None
    assert await storage.get_data(KEY) == {"page": 2, "ids": ["B-1", "B-2"], "nested": {"a": None}}


async def test_destinies_are_kept_apart(storage: BaseStorage) -> None:
    await storage.set_data(KEY, {"who": "fsm"})
    await storage.set_data(DIALOG_KEY, {"who": "dialog"})
    assert (await storage.get_data(KEY))["who"] == "fsm"
    assert (await storage.get_data(DIALOG_KEY))["who"] == "dialog"


async def test_update_data_merges(storage: BaseStorage) -> None:
    await storage.set_data(KEY, {"a": 1})
    assert await storage.update_data(KEY, {"b": 2}) == {"a": 1, "b": 2}


async def test_sql_storage_on_postgres(engine: AsyncEngine) -> None:
    sql = SqlStorage(create_sessionmaker(engine))
    await sql.set_state(KEY, "Menu:main")
    await sql.set_data(KEY, {"x": "ы"})
    await sql.set_state(KEY, "Menu:login")  # an update of an existing row
    assert await sql.get_state(KEY) == "Menu:login"
    assert await sql.get_data(KEY) == {"x": "ы"}
