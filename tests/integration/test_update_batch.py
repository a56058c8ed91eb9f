"""One update's dialog state in Redis: read once, written at the update's end together with its
de-duplication marker, while the chat's lock is still held (storage.fsm.BatchedRedisStorage,
bot.dedup.LeasedRedisEventIsolation and RedisDedup.finish, bot.middlewares.UpdateDedup…)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest
from aiogram.fsm.storage.base import StorageKey
from aiogram.methods import SendMessage
from aiogram.types import Update
from redis.asyncio import Redis

from bot.dedup import Ended, LeasedRedisEventIsolation, RedisDedup
from bot.middlewares import UpdateDedupMiddleware
from sandbox import SandboxServer
from sandbox.telegram_double import LocalTelegram
from storage.fsm import DIALOG_STATE_KEPT, BatchedRedisStorage, UpdateBatch, dialog_key_builder
from tests.integration.test_operations import app_for, post, settings, start_update
from tests.integration.test_webhook_delivery import sandbox  # noqa: F401 - fixture

KEY = StorageKey(bot_id=1, chat_id=2, user_id=2)
Body = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass
class Parts:
    redis: Redis
    storage: BatchedRedisStorage
    isolation: LeasedRedisEventIsolation
    middleware: UpdateDedupMiddleware

    def name(self, part: Literal["data", "state", "lock"], key: StorageKey = KEY) -> str:
        return self.storage.key_builder.build(key, part)

    async def update(self, update_id: int, body: Body) -> Any:
        """An update through the de-duplication middleware; `body` runs under the chat's lock,
        as aiogram's FSM middleware runs the handlers."""

        async def handler(_event: Any, data: dict[str, Any]) -> None:
            async with self.isolation.lock(KEY):
                await body(data)
            await asyncio.sleep(0.1)  # the outer middlewares' ends (the unit of work's, …)

        event = Update.model_validate({"update_id": update_id})
        return await self.middleware(handler, event, {})


@pytest.fixture
async def parts(clean_redis: str) -> AsyncIterator[Parts]:
    redis = Redis.from_url(clean_redis)
    storage = BatchedRedisStorage(
        redis,
        key_builder=dialog_key_builder(),
        state_ttl=DIALOG_STATE_KEPT,
        data_ttl=DIALOG_STATE_KEPT,
    )
    isolation = LeasedRedisEventIsolation(redis, storage.key_builder)
    yield Parts(redis, storage, isolation, UpdateDedupMiddleware(RedisDedup(redis)))
    await redis.aclose()


async def test_writes_reach_redis_at_the_end_with_the_marker_and_the_lock_still_held(
    parts: Parts,
) -> None:
    seen: dict[str, Any] = {}

    async def body(_data: dict[str, Any]) -> None:
        await parts.storage.set_state(KEY, "Menu:main")
        await parts.storage.set_data(KEY, {"n": 1})
        await parts.storage.set_data(KEY, {"n": 2})  # the last write of a key wins
        seen["read back"] = await parts.storage.get_data(KEY)
        seen["in redis"] = await parts.redis.get(parts.name("data"))

    await parts.update(1, body)
    assert seen == {"read back": {"n": 2}, "in redis": None}
    assert await parts.redis.get(parts.name("data")) == b'{"n": 2}'
    assert await parts.redis.get(parts.name("state")) == b"Menu:main"
    assert 0 < await parts.redis.ttl(parts.name("data")) <= DIALOG_STATE_KEPT.total_seconds()
    assert await parts.redis.get("dedup:0:1") == b"done"
    assert await parts.redis.exists(parts.name("lock")) == 0


async def test_the_chat_lock_is_held_from_its_block_until_the_writes_are_sent(
    parts: Parts,
) -> None:
    """Updates of one chat one after another even when they come together: each reads what the
    one before it wrote (a lock let go before the writes would lose increments)."""

    async def increment(_data: dict[str, Any]) -> None:
        n = (await parts.storage.get_data(KEY)).get("n", 0)
        await asyncio.sleep(0.01)
        await parts.storage.set_data(KEY, {"n": n + 1})

    await asyncio.gather(*(parts.update(10 + i, increment) for i in range(8)))
    assert await parts.storage.get_data(KEY) == {"n": 8}
    assert [k async for k in parts.redis.scan_iter(match="*:lock")] == []


async def test_a_failed_update_keeps_its_writes_and_is_given_back_or_done(parts: Parts) -> None:
    async def transient(_data: dict[str, Any]) -> None:
        await parts.storage.set_data(KEY, {"step": "before the failure"})
        raise ConnectionError("the city went away")

    async def deterministic(_data: dict[str, Any]) -> None:
        await parts.storage.set_state(KEY, "Menu:main")
        raise ValueError("a bug")

    with pytest.raises(ConnectionError):
        await parts.update(1, transient)
    assert await parts.storage.get_data(KEY) == {"step": "before the failure"}
    assert await parts.redis.exists("dedup:0:1") == 0  # given back: the redelivery is handled
    with pytest.raises(ValueError):
        await parts.update(2, deterministic)
    assert await parts.storage.get_state(KEY) == "Menu:main"
    assert await parts.redis.get("dedup:0:2") == b"done"  # told once
    assert [k async for k in parts.redis.scan_iter(match="*:lock")] == []


async def test_the_chat_lock_is_kept_after_its_block_until_the_updates_end(
    clean_redis: str,
) -> None:
    """The update's heartbeat renews the chat's locks too, between the lock's block and the
    update's end (the outer middlewares' ends): a lock that lapsed there would make the end
    refuse to write (a lapsed lock means the state may be stale)."""
    redis = Redis.from_url(clean_redis)
    storage = BatchedRedisStorage(redis, key_builder=dialog_key_builder())
    isolation = LeasedRedisEventIsolation(redis, storage.key_builder, lease=0.3)
    middleware = UpdateDedupMiddleware(RedisDedup(redis), lease=3.0, heartbeat=0.1)

    async def handler(_event: Any, _data: dict[str, Any]) -> None:
        async with isolation.lock(KEY):
            await storage.set_data(KEY, {"n": 1})
        await asyncio.sleep(0.8)  # longer than the lock's lease, outside its block

    try:
        await middleware(handler, Update.model_validate({"update_id": 1}), {})
        assert await storage.get_data(KEY) == {"n": 1}
        assert await redis.get("dedup:0:1") == b"done"
    finally:
        await redis.aclose()


async def test_an_end_that_lost_a_lock_writes_nothing_and_leaves_the_new_owners_lock(
    parts: Parts,
) -> None:
    """The lock lapsed and another update holds it now: the end writes nothing, lets go only
    what is still its own (the marker, given back to be handled again), and says so."""
    dedup = RedisDedup(parts.redis)
    await dedup.claim("dedup:0:1", "owner-a", 10.0)
    await parts.redis.set(parts.name("lock"), "token-b")  # the next update's lock
    batch = UpdateBatch(
        writes={parts.name("data"): ('{"n": 1}', None)},
        locks={parts.name("lock"): "token-a"},
    )
    assert await dedup.finish("dedup:0:1", "owner-a", done=True, batch=batch) == Ended.LOST
    assert await parts.redis.get(parts.name("data")) is None
    assert await parts.redis.get(parts.name("lock")) == b"token-b"
    assert await parts.redis.exists("dedup:0:1") == 0  # given back: handled again
    assert batch.writes == {} and batch.locks == {}


async def test_forgetting_a_user_drops_the_updates_earlier_writes(parts: Parts) -> None:
    other = StorageKey(bot_id=1, chat_id=2, user_id=2, destiny="aiogd:stack:")

    async def unlink(_data: dict[str, Any]) -> None:
        await parts.storage.set_data(other, {"intents": ["old"]})
        await parts.storage.forget_user(1, 2)
        await parts.storage.set_state(KEY, "Menu:main")  # what is started afterwards stays

    await parts.redis.set(parts.name("data"), '{"kept": "before"}')
    await parts.update(1, unlink)
    assert await parts.storage.get_data(other) == {}
    assert await parts.storage.get_data(KEY) == {}
    assert await parts.storage.get_state(KEY) == "Menu:main"


async def test_outside_an_update_it_is_redis_storage(parts: Parts) -> None:
    await parts.storage.set_data(KEY, {"n": 1})
    assert await parts.redis.get(parts.name("data")) == b'{"n": 1}'
    async with parts.isolation.lock(KEY):
        assert await parts.redis.exists(parts.name("lock")) == 1
    assert await parts.redis.exists(parts.name("lock")) == 0


async def test_flood_protection_counts_with_the_claim_in_redis(
    tmp_path: Path,
    sandbox: SandboxServer,  # noqa: F811 - the fixture imported above
    clean_redis: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("bot.app.FLOOD_WINDOW", 3600)  # the test's posts in one window
    telegram = LocalTelegram()
    app = await app_for(settings(tmp_path, flood_limit=3, redis_url=clean_redis), sandbox, telegram)
    try:
        for n in range(6):
            await post(app, start_update(100 + n, user_id=7001))
        await post(app, start_update(100, user_id=7001))  # a redelivery: not counted again
        await post(app, start_update(200, user_id=7002))
        to_first = [c for c in telegram.calls if isinstance(c, SendMessage) and c.chat_id == 7001]
        assert sum("Не так быстро" in str(c.text) for c in to_first) == 1
        assert sum("Здравствуйте" in str(c.text) for c in to_first) == 3
        to_second = [c for c in telegram.calls if isinstance(c, SendMessage) and c.chat_id == 7002]
        assert any("Здравствуйте" in str(c.text) for c in to_second)
    finally:
        await app.stop()
