"""An update whose leases lapsed while it ran — the process stalled past them (both cores
saturated), nobody else came — is answered once.

Under full CPU load the 10 000-resident burst through long polling answered a few chats twice:
the update's marker or its chat locks lapsed during a stall, its end (`RedisDedup.finish`)
refused to write and the update failed with `LeaseLost` (transient), so polling's retry
(`TransientRetryMiddleware`; the webhook's redelivery alike) handled it again and the resident
got the greeting twice. A lapse nobody used is no conflict: the end writes then.

The lapse is forced without waiting: the handler deletes its marker and its locks in Redis, as
Redis's PX expiry does after a stall longer than the lease. The stack is polling's: the retry
in front of the de-duplication middleware in front of a handler that takes the chat's lock,
reads the dialog state, answers and writes the next step."""

from __future__ import annotations

from typing import Any

from aiogram.fsm.storage.base import StorageKey
from aiogram.types import Update
from redis.asyncio import Redis

from bot.dedup import LeasedRedisEventIsolation, RedisDedup
from bot.middlewares import TransientRetryMiddleware, UpdateDedupMiddleware
from storage.fsm import DIALOG_STATE_KEPT, BatchedRedisStorage, dialog_key_builder

KEY = StorageKey(bot_id=1, chat_id=2, user_id=2)


async def _no_sleep(_seconds: float) -> None:
    """The retry's delays, skipped: the test does not wait."""


def _stack(redis: Redis) -> tuple[BatchedRedisStorage, LeasedRedisEventIsolation, Any]:
    storage = BatchedRedisStorage(
        redis,
        key_builder=dialog_key_builder(),
        state_ttl=DIALOG_STATE_KEPT,
        data_ttl=DIALOG_STATE_KEPT,
    )
    # heartbeats far apart: nothing renews what the handler lets lapse
    isolation = LeasedRedisEventIsolation(redis, storage.key_builder, heartbeat=600)
    dedup = UpdateDedupMiddleware(RedisDedup(redis), heartbeat=600)
    return storage, isolation, dedup


async def _polling(
    dedup: UpdateDedupMiddleware, handler: Any, update_id: int, sleep: Any = _no_sleep
) -> None:
    retry = TransientRetryMiddleware(delays=(0.5, 2.0, 5.0), sleep=sleep)

    async def through_dedup(event: Any, data: dict[str, Any]) -> Any:
        return await dedup(handler, event, data)

    await retry(through_dedup, Update.model_validate({"update_id": update_id}), {})


async def test_an_update_whose_leases_lapsed_uncontested_is_answered_once(
    clean_redis: str,
) -> None:
    redis = Redis.from_url(clean_redis)
    storage, isolation, dedup = _stack(redis)
    answers: list[int] = []
    lock = storage.key_builder.build(KEY, "lock")

    async def handler(_event: Any, _data: dict[str, Any]) -> None:
        async with isolation.lock(KEY):
            n = (await storage.get_data(KEY)).get("n", 0)
            answers.append(n + 1)  # the resident is sent «step n + 1»
            await storage.set_data(KEY, {"n": n + 1})
            if len(answers) == 1:  # the loop stalls past both leases: Redis drops them
                assert await redis.delete("dedup:0:7", lock) == 2

    try:
        await _polling(dedup, handler, 7)
        assert answers == [1]  # told once
        assert await storage.get_data(KEY) == {"n": 1}  # and what it was told is remembered
        assert await redis.get("dedup:0:7") == b"done"
        assert [k async for k in redis.scan_iter(match="*:lock")] == []
    finally:
        await redis.aclose()


async def test_an_update_whose_marker_alone_lapsed_is_answered_once(clean_redis: str) -> None:
    """No chat lock at all (an update without dialog state): only the marker lapsed."""
    redis = Redis.from_url(clean_redis)
    _storage, _isolation, dedup = _stack(redis)
    answers: list[int] = []

    async def handler(_event: Any, _data: dict[str, Any]) -> None:
        answers.append(len(answers) + 1)
        if len(answers) == 1:
            assert await redis.delete("dedup:0:8") == 1

    try:
        await _polling(dedup, handler, 8)
        assert answers == [1]
        assert await redis.get("dedup:0:8") == b"done"
    finally:
        await redis.aclose()


async def test_a_lapsed_update_whose_state_another_wrote_meanwhile_is_handled_again(
    clean_redis: str,
) -> None:
    """The conflict the refusal is for stays refused: while the lock was lapsed another update
    of the chat took it, wrote its step and let it go. The stale step is not written over it;
    the update is handled again from the newer state (issue 14's review)."""
    redis = Redis.from_url(clean_redis)
    storage, isolation, dedup = _stack(redis)
    runs: list[int] = []
    lock = storage.key_builder.build(KEY, "lock")
    data = storage.key_builder.build(KEY, "data")

    async def handler(_event: Any, _data: dict[str, Any]) -> None:
        async with isolation.lock(KEY):
            n = (await storage.get_data(KEY)).get("n", 0)
            runs.append(n + 1)
            await storage.set_data(KEY, {"n": n + 1})
            if len(runs) == 1:  # the lock lapsed; the chat's next update ran meanwhile
                await redis.delete(lock)
                await redis.set(data, '{"n": 1}')

    try:
        await _polling(dedup, handler, 9)
        assert runs == [1, 2]  # the stale step refused, handled again from the newer one
        assert await storage.get_data(KEY) == {"n": 2}
        assert await redis.get("dedup:0:9") == b"done"
    finally:
        await redis.aclose()


async def test_a_lapsed_update_whose_lock_another_holds_now_is_handled_again(
    clean_redis: str,
) -> None:
    """The lock lapsed and another update holds it now: nothing is written; its holder's lock
    is left alone."""
    redis = Redis.from_url(clean_redis)
    storage, isolation, dedup = _stack(redis)
    runs: list[int] = []
    lock = storage.key_builder.build(KEY, "lock")

    async def handler(_event: Any, _data: dict[str, Any]) -> None:
        async with isolation.lock(KEY):
            n = (await storage.get_data(KEY)).get("n", 0)
            runs.append(n + 1)
            await storage.set_data(KEY, {"n": n + 1})
            if len(runs) == 1:
                await redis.set(lock, "another-token")  # taken over after the lapse

    held: list[bytes | None] = []

    async def holder_ends(_seconds: float) -> None:  # the retry's delay: the holder ends
        held.append(await redis.get(lock))
        await redis.delete(lock)

    try:
        await _polling(dedup, handler, 10, holder_ends)
        assert held == [b"another-token"]  # the end left the holder's lock alone
        assert runs == [1, 1]  # refused, then handled again (nothing of the first written)
        assert await storage.get_data(KEY) == {"n": 1}
    finally:
        await redis.aclose()


async def test_the_heartbeat_takes_back_a_lapsed_marker_and_lock_nobody_took(
    clean_redis: str,
) -> None:
    """A beat after a stall longer than the leases finds them gone: it takes them back (a
    delivery or the chat's next update arriving now waits), but leaves another's alone."""
    from storage.fsm import UpdateBatch

    redis = Redis.from_url(clean_redis)
    store = RedisDedup(redis)
    try:
        await store.claim("dedup:0:11", "owner-a", 10.0)
        batch = UpdateBatch(locks={"lock:a": "token-a", "lock:b": "token-a"}, lock_lease=5.0)
        await redis.set("lock:b", "token-b")  # lapsed and taken by another meanwhile
        assert await redis.delete("dedup:0:11") == 1  # lapsed (and lock:a, never set here)
        assert await store.renew_update("dedup:0:11", "owner-a", 10.0, batch)
        assert await redis.get("dedup:0:11") == b"processing:owner-a"
        assert await redis.get("lock:a") == b"token-a"
        assert await redis.get("lock:b") == b"token-b"
        assert await redis.pttl("lock:a") > 0 and await redis.pttl("dedup:0:11") > 0
        await redis.set("dedup:0:11", "processing:owner-b")  # another delivery's, meanwhile
        assert not await store.renew_update("dedup:0:11", "owner-a", 10.0, batch)
        assert await redis.get("dedup:0:11") == b"processing:owner-b"
    finally:
        await redis.aclose()


async def test_a_lock_taken_back_after_another_update_used_it_writes_nothing_stale(
    clean_redis: str,
) -> None:
    """The lock lapsed, the chat's next update took it, wrote its step and let it go, and then
    the stalled update's heartbeat took the free lock back: holding it again proves nothing,
    so the end still checks what it read and refuses its stale step."""
    from storage.fsm import UpdateBatch

    redis = Redis.from_url(clean_redis)
    store = RedisDedup(redis)
    try:
        await store.claim("dedup:0:12", "owner-a", 10.0)
        batch = UpdateBatch(
            writes={"state:2": ('{"n": 1}', None)},
            locks={"lock:2": "token-a"},
            read={"state:2": None},  # it read no state, and wrote step 1
            lock_lease=5.0,
        )
        await redis.set("state:2", '{"n": 7}')  # the next update's step, its lock let go
        assert await store.renew_update("dedup:0:12", "owner-a", 10.0, batch)  # taken back
        assert await redis.get("lock:2") == b"token-a"
        assert await store.finish("dedup:0:12", "owner-a", done=True, batch=batch) == "lost"
        assert await redis.get("state:2") == b'{"n": 7}'  # the next update's, not overwritten
        assert await redis.exists("dedup:0:12") == 0  # given back: handled again
        assert await redis.exists("lock:2") == 0
    finally:
        await redis.aclose()
