"""Review of issue 14's Redis batching: an update's dialog state is sent only at its end
(`RedisDedup.finish`, with the marker and the chat's locks). Redis going away exactly then —
after the handler answered the resident and committed — must neither lose the state the
resident now sees nor make the bot answer the same update twice.

The Redis client has no retries of its own here: Redis is down longer than redis-py's three
jittered retries (a restart, a failover), which is what reaches the middleware."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiogram.fsm.storage.base import StorageKey
from aiogram.types import Update
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from bot.dedup import LeasedRedisEventIsolation, RedisDedup
from bot.middlewares import TransientRetryMiddleware, UpdateDedupMiddleware
from storage.fsm import DIALOG_STATE_KEPT, BatchedRedisStorage, dialog_key_builder
from tests.proxy import Proxy

KEY = StorageKey(bot_id=1, chat_id=2, user_id=2)


@pytest.fixture
async def proxied(clean_redis: str) -> AsyncIterator[tuple[Proxy, Redis, Redis]]:
    """(the proxy, a client through it as the bot's, a direct client to look with)."""
    url = urlsplit(clean_redis)
    proxy = Proxy(url.hostname or "127.0.0.1", url.port or 6379)
    await proxy.start()
    bot_redis = Redis(
        host="127.0.0.1",
        port=proxy.port,
        db=int(url.path.strip("/") or 0),
        retry=Retry(NoBackoff(), 0),
    )
    direct = Redis.from_url(clean_redis)
    yield proxy, bot_redis, direct
    await bot_redis.aclose()
    await direct.aclose()
    await proxy.stop()


async def test_redis_gone_at_the_end_of_a_handled_update_neither_loses_its_state_nor_answers_twice(
    proxied: tuple[Proxy, Redis, Redis],
) -> None:
    proxy, redis, direct = proxied
    storage = BatchedRedisStorage(
        redis,
        key_builder=dialog_key_builder(),
        state_ttl=DIALOG_STATE_KEPT,
        data_ttl=DIALOG_STATE_KEPT,
    )
    isolation = LeasedRedisEventIsolation(redis, storage.key_builder)
    dedup = UpdateDedupMiddleware(RedisDedup(redis), lease=1.0)
    retry = TransientRetryMiddleware(delays=(0.05, 0.5, 1.5))
    answers: list[int] = []

    async def handler(_event: Any, _data: dict[str, Any]) -> None:
        async with isolation.lock(KEY):
            n = (await storage.get_data(KEY)).get("n", 0)
            await storage.set_data(KEY, {"n": n + 1})
            answers.append(n + 1)  # the resident is sent «step n + 1» (and the DB committed)
        if len(answers) == 1:  # Redis goes away as the update ends, for a moment
            proxy.down()
            asyncio.get_running_loop().call_later(0.2, proxy.restore)

    async def through_dedup(event: Any, data: dict[str, Any]) -> Any:
        return await dedup(handler, event, data)

    event = Update.model_validate({"update_id": 77})
    try:
        await retry(through_dedup, event, {})
    except Exception as error:  # what the poller would log and then confirm
        print("the update ended with", type(error).__name__, error)
    stored = await direct.get(storage.key_builder.build(KEY, "data"))
    print("answers", answers, "stored", stored, "marker", await direct.get("dedup:0:77"))
    assert answers == [1]  # told once
    assert stored == b'{"n": 1}'  # and what they were told is what the bot remembers
    assert await direct.get("dedup:0:77") == b"done"  # not left `processing:`
    assert await direct.keys(storage.key_builder.build(KEY, "lock") + "*") == []  # let go


async def test_an_update_whose_chat_lock_lapsed_does_not_write_its_stale_state_over_the_next(
    clean_redis: str,
) -> None:
    """Update A's chat lock lapses while it runs (its heartbeat could not renew it: the event
    loop stalled or Redis was slow to answer the renewals; here it simply never beats). Update B
    of the same chat then takes the lock, reads the state A has not sent yet, and writes its own.
    A's end still sends A's writes (`_FINISH` only counts the lapsed locks): B's step is lost.
    With the writes sent at once (before issue 14) A's write landed before B read it.

    A's end must write nothing then and fail as transient (`LeaseLost`), so that A is handled
    again (here by polling's retry) from the state B left. (Reviewer's version called the
    de-duplication middleware bare, so A could never be handled again after refusing its
    stale write; A's second run does not stall, or its lock would lapse once more.)"""
    redis = Redis.from_url(clean_redis)
    storage = BatchedRedisStorage(
        redis,
        key_builder=dialog_key_builder(),
        state_ttl=DIALOG_STATE_KEPT,
        data_ttl=DIALOG_STATE_KEPT,
    )
    isolation = LeasedRedisEventIsolation(redis, storage.key_builder, lease=0.3, heartbeat=60)
    dedup = UpdateDedupMiddleware(RedisDedup(redis), heartbeat=60)  # no renewal: it lapses
    retry = TransientRetryMiddleware(delays=(0.05,))
    a_read = asyncio.Event()
    runs: list[tuple[int, int]] = []  # (update, the step it wrote)

    def step(update_id: int, pause: float) -> Any:
        async def handler(_event: Any, _data: dict[str, Any]) -> None:
            async with isolation.lock(KEY):
                n = (await storage.get_data(KEY)).get("n", 0)
                await storage.set_data(KEY, {"n": n + 1})
                runs.append((update_id, n + 1))
                a_read.set()
                if len([r for r in runs if r[0] == update_id]) == 1:  # stalls the first time
                    await asyncio.sleep(pause)

        async def through_dedup(event: Any, data: dict[str, Any]) -> Any:
            return await dedup(handler, event, data)

        return retry(through_dedup, Update.model_validate({"update_id": update_id}), {})

    async def b_after_a_read() -> None:
        await a_read.wait()
        await step(2, 0)

    try:
        await asyncio.gather(step(1, 0.8), b_after_a_read())
        assert runs == [(1, 1), (2, 1), (1, 2)]  # A's stale step refused, A handled again
        assert await storage.get_data(KEY) == {"n": 2}  # both steps counted
        assert await redis.get("dedup:0:1") == b"done"
    finally:
        await redis.aclose()


async def test_a_claim_sent_again_by_the_redis_client_is_still_ours(clean_redis: str) -> None:
    """redis-py (7.x: three retries on ConnectionError/TimeoutError by default) sends a command
    again when its answer was lost — the script already ran. The claim then finds its own
    `processing:<owner>` marker and answers BUSY: the update is refused by the replica that
    holds it (UpdateBusy → retried only after the 10 s lease lapses), and counted twice for
    flood protection."""
    redis = Redis.from_url(clean_redis)
    store = RedisDedup(redis)
    try:
        first, counted = await store.claim_counted("dedup:0:5", "owner-a", 10.0, "flood:9", 60)
        again, recounted = await store.claim_counted("dedup:0:5", "owner-a", 10.0, "flood:9", 60)
        assert first.state.value == "acquired"
        assert again.state.value == "acquired"  # the same owner's claim, sent twice
        assert (counted, recounted) == (1, 1)  # and counted once for flood protection
        other, _ = await store.claim_counted("dedup:0:5", "owner-b", 10.0, "flood:9", 60)
        assert other.state.value == "busy"  # another owner's claim still is refused
        assert (await store.claim("dedup:0:5", "owner-a", 10.0)).state.value == "acquired"
    finally:
        await redis.aclose()


async def test_an_updates_end_sent_again_does_not_write_over_the_next_updates_state(
    clean_redis: str,
) -> None:
    """The same replay for the end of an update: `finish` ran (state written, locks and marker
    let go), its answer was lost, and meanwhile the chat's next update took the free lock and
    wrote its own step. The replayed script writes the older state again over it."""
    from storage.fsm import UpdateBatch

    redis = Redis.from_url(clean_redis)
    store = RedisDedup(redis)
    storage = BatchedRedisStorage(redis, key_builder=dialog_key_builder())
    name = storage.key_builder.build(KEY, "data")
    try:
        await store.claim("dedup:0:1", "owner-a", 10.0)
        first = UpdateBatch(writes={name: ('{"n": 1}', None)})
        replay = UpdateBatch(writes={name: ('{"n": 1}', None)})  # what redis-py sends again
        await store.finish("dedup:0:1", "owner-a", done=True, batch=first)
        await redis.set(name, '{"n": 2}')  # update 2 of the chat, handled in between
        # Not a lost lease either: the update did end (a failure would handle it again).
        assert await store.finish("dedup:0:1", "owner-a", done=True, batch=replay) == "finished"
        assert await redis.get(name) == b'{"n": 2}'
        assert await redis.get("dedup:0:1") == b"done"
    finally:
        await redis.aclose()
