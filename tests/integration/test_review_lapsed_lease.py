"""Review of 9087210 (an update whose lease lapsed is written when nobody used the lapse).

An attacker's, an operator's and a resident's look at `RedisDedup.finish` (`_FINISH`), the
heartbeats' take-back (`_RENEW_UPDATE`, `_RENEW_ALL`) and the batch's record of what an update
read (`UpdateBatch.read`). Lapses are forced by deleting keys in Redis (what PX expiry does
after a stall), never by sleeping.

The tests marked «FINDING N» showed a broken invariant: they failed on 9087210 and pass
since its fix. The others probe attacks that held; they pass and must keep passing.

Invariants: an update is answered once; two updates of one chat never both commit dialog state
computed from the same stale read; a redelivery is never handled twice to the end; an end sent
twice writes nothing twice; a failed update ('release') keeps the strict behaviour."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiogram.fsm.storage.base import StorageKey
from aiogram.types import Update
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bot.dedup import Ended, MemoryDedup, RedisDedup
from bot.middlewares import TransientRetryMiddleware
from handlers.account import forget_dialogs
from handlers.points import UNSETTLED
from storage.fsm import UpdateBatch
from tests.integration.test_lapsed_lease_answers_once import KEY, _polling, _stack

# ---- finding 1: `forget_user` erases the evidence of a write made during the lapse -----------


async def test_unlink_after_a_lapse_keeps_an_unsettled_key_another_update_added(
    clean_redis: str,
) -> None:
    """FINDING 1 (fixed). handlers/account.py `on_unlink` reads the dialog data (the unsettled
    points keys), forgets the dialogs (`BatchedRedisStorage.forget_user`) and writes the
    unsettled keys it read back. Its lock lapses after the read; the chat's next update (a
    points operation, handlers/points.py) runs entirely inside the lapse and adds a second
    unsettled key. `forget_user` then sets every recorded read under the prefix to «absent»
    (`batch.read[name] = None`) and deletes the keys, so the end's check compares «absent»
    with «absent» and passes: the stale {op-1} is written, op-2's key is gone. The module's
    own comment says what that costs: a repeat after linking again goes with a new key and
    debits twice. Before 9087210 the lapse alone refused the end (handled again, from the
    newer data)."""
    redis = Redis.from_url(clean_redis)
    storage, isolation, dedup = _stack(redis)
    lock = storage.key_builder.build(KEY, "lock")
    stack_lock = storage.key_builder.build(
        StorageKey(bot_id=1, chat_id=2, user_id=2, destiny="aiogd:stack:"), "lock"
    )
    await storage.set_data(KEY, {UNSETTLED: {"acc": {"op-1": "k1"}}})  # before both updates
    runs: list[int] = []

    async def points_operation(_event: Any, _data: dict[str, Any]) -> None:
        async with isolation.lock(KEY):
            everyone = dict((await storage.get_data(KEY)).get(UNSETTLED, {}))
            everyone["acc"] = {**everyone.get("acc", {}), "op-2": "k2"}
            await storage.set_data(KEY, {UNSETTLED: everyone})

    async def unlink(_event: Any, _data: dict[str, Any]) -> None:
        async with isolation.lock(KEY):
            runs.append(1)
            unsettled = (await storage.get_data(KEY)).get(UNSETTLED)
            if len(runs) == 1:  # stalled past the lock's lease; the next update ran meanwhile
                assert await redis.delete(lock, stack_lock) == 2
                await asyncio.create_task(_polling(dedup, points_operation, 101))
                assert (await storage.redis.get(storage.key_builder.build(KEY, "data"))) is not None
            await forget_dialogs(storage, 1, 2)
            if unsettled:
                await storage.set_data(KEY, {UNSETTLED: unsettled})

    try:
        await _polling(dedup, unlink, 100)
        kept = (await storage.get_data(KEY)).get(UNSETTLED, {}).get("acc", {})
        assert "op-2" in kept, f"op-2's unsettled key lost: {kept} (unlink ran {len(runs)}x)"
    finally:
        await redis.aclose()


async def test_unlink_refused_at_its_end_keeps_the_unsettled_keys_for_its_retry(
    clean_redis: str,
) -> None:
    """FINDING 1b (fixed; older than 9087210). `forget_user` inside an
    update deletes in Redis at once, outside the batch, so an end refused ('lost': the lock
    lapsed and the chat's next update holds it when this one ends) writes nothing of the
    batch but its deletions stay done. The retry (polling's, or Telegram's redelivery) reads
    data already forgotten: no unsettled key is carried over, op-1's key is lost (a repeat
    after linking again debits twice, handlers/account.py)."""
    redis = Redis.from_url(clean_redis)
    storage, isolation, dedup = _stack(redis)
    lock = storage.key_builder.build(KEY, "lock")
    await storage.set_data(KEY, {UNSETTLED: {"acc": {"op-1": "k1"}}})
    runs: list[Any] = []

    async def unlink(_event: Any, _data: dict[str, Any]) -> None:
        async with isolation.lock(KEY):
            unsettled = (await storage.get_data(KEY)).get(UNSETTLED)
            runs.append(unsettled)
            if len(runs) == 1:  # lapsed; the chat's next update holds the lock at the end
                await redis.set(lock, "token-b", px=60_000)
            await forget_dialogs(storage, 1, 2)
            if unsettled:
                await storage.set_data(KEY, {UNSETTLED: unsettled})

    async def holder_ends(_seconds: float) -> None:
        await redis.delete(lock)

    retry = TransientRetryMiddleware(delays=(0.5,), sleep=holder_ends)

    async def through_dedup(event: Any, data: dict[str, Any]) -> Any:
        return await dedup(unlink, event, data)

    try:
        await retry(through_dedup, Update.model_validate({"update_id": 110}), {})
        assert len(runs) == 2  # refused, handled again
        kept = (await storage.get_data(KEY)).get(UNSETTLED, {}).get("acc", {})
        assert "op-1" in kept, f"unsettled key lost; the retry read {runs[1]}"
    finally:
        await redis.aclose()


# ---- finding 2: the end's retry after a lost reply, with a take-back in between ---------------


class _ReplyLost:
    """`RedisDedup._finish` whose first call runs on Redis but whose answer never arrives (a
    connection reset after the script ran); `between` runs before the retry — what happens in
    Redis meanwhile, including the beat of the heartbeat `_finish_again` keeps."""

    def __init__(self, store: RedisDedup, between: Any) -> None:
        self.real = store._finish
        self.between = between
        self.calls = 0
        self.first: Any = None

    async def __call__(self, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls == 1:
            self.first = await self.real(**kwargs)
            raise RedisConnectionError("reply lost")
        if self.calls == 2:
            await self.between()
        return await self.real(**kwargs)


async def test_a_lost_end_retried_after_a_heartbeat_took_back_its_leases_writes_nothing(
    clean_redis: str,
) -> None:
    """FINDING 2a (fixed). A lapsed update's end finds that the chat's next update wrote what it
    read: 'lost' — it deletes its marker and the locks it still held. The reply is lost
    (connection reset). `finish` retries (`_finish_again`) with a heartbeat running
    (`renew_update` every min(lease, lock lease)/3 = 1.67 s, the retries span 1.75 s, so a beat
    comes before the last try). The beat finds the marker and lock free and takes them back;
    the retry's arguments were built before, with «no take-back» (ARGV[6] = '0'), so the
    script sees marker and lock ours and skips the read check: the stale step is written over
    the other update's and the update is marked done."""
    redis = Redis.from_url(clean_redis)
    store = RedisDedup(redis)
    try:
        await store.claim("dedup:0:200", "owner-a", 10.0)
        batch = UpdateBatch(
            writes={"state:2": ('{"n": 1}', None)},
            locks={"lock:2": "token-a"},
            read={"state:2": None},
            lock_lease=5.0,
        )
        await redis.set("state:2", '{"n": 7}')  # the next update's step; its lock let go
        kept = dict(batch.locks)

        async def beat() -> None:  # the heartbeat of `_finish_again`, between two tries
            probe = UpdateBatch(locks=kept, lock_lease=5.0)
            assert await store.renew_update("dedup:0:200", "owner-a", 10.0, probe)

        lost = _ReplyLost(store, beat)
        store._finish = lost  # type: ignore[method-assign]
        ended = await store.finish("dedup:0:200", "owner-a", done=True, batch=batch, retries=(0,))
        assert lost.first is not None and lost.first[0] in (b"lost", "lost")  # the first try
        assert await redis.get("state:2") == b'{"n": 7}', "stale step written over the newer"
        assert ended is Ended.LOST
    finally:
        await redis.aclose()


async def test_a_release_end_retried_after_a_heartbeat_took_back_writes_nothing_twice(
    clean_redis: str,
) -> None:
    """FINDING 2b (fixed). A failed update's end ('release') runs: its partial step written, its
    lock and marker let go. The reply is lost. The chat's next update takes the free lock,
    writes its step, lets go. The heartbeat of `_finish_again` takes the free marker and lock
    back; the retry, its arguments built before, sees them ours, no lapse, and writes the
    failed update's step a second time — over the next update's."""
    redis = Redis.from_url(clean_redis)
    store = RedisDedup(redis)
    try:
        await store.claim("dedup:0:201", "owner-a", 10.0)
        await redis.set("lock:2", "token-a", px=5000)
        batch = UpdateBatch(
            writes={"state:2": ('{"n": 1}', None)},
            locks={"lock:2": "token-a"},
            read={"state:2": None},
            lock_lease=5.0,
        )
        kept = dict(batch.locks)

        async def next_update_then_beat() -> None:
            assert await redis.get("state:2") == b'{"n": 1}'  # the first try did write
            assert await redis.set("lock:2", "token-b", nx=True)  # the next update
            await redis.set("state:2", '{"n": 2}')
            await redis.delete("lock:2")
            probe = UpdateBatch(locks=kept, lock_lease=5.0)
            await store.renew_update("dedup:0:201", "owner-a", 10.0, probe)  # a beat

        store._finish = _ReplyLost(store, next_update_then_beat)  # type: ignore[method-assign]
        await store.finish("dedup:0:201", "owner-a", done=False, batch=batch, retries=(0,))
        assert await redis.get("state:2") == b'{"n": 2}', "the failed update's step written twice"
    finally:
        await redis.aclose()


async def test_a_done_end_retried_after_its_reply_was_lost_writes_nothing_twice(
    clean_redis: str,
) -> None:
    """Held: a 'done' end that ran leaves the marker done; the beat between tries sees done and
    takes nothing back; the retry is FINISHED and writes nothing over the next update's."""
    redis = Redis.from_url(clean_redis)
    store = RedisDedup(redis)
    try:
        await store.claim("dedup:0:202", "owner-a", 10.0)
        await redis.set("lock:2", "token-a", px=5000)
        batch = UpdateBatch(
            writes={"state:2": ('{"n": 1}', None)},
            locks={"lock:2": "token-a"},
            read={"state:2": None},
            lock_lease=5.0,
        )
        kept = dict(batch.locks)

        async def next_update_then_beat() -> None:
            assert await redis.set("lock:2", "token-b", nx=True)
            await redis.set("state:2", '{"n": 2}')
            await redis.delete("lock:2")
            probe = UpdateBatch(locks=kept, lock_lease=5.0)
            await store.renew_update("dedup:0:202", "owner-a", 10.0, probe)

        store._finish = _ReplyLost(store, next_update_then_beat)  # type: ignore[method-assign]
        ended = await store.finish("dedup:0:202", "owner-a", done=True, batch=batch, retries=(0,))
        assert ended is Ended.FINISHED
        assert await redis.get("state:2") == b'{"n": 2}'
        assert await redis.exists("lock:2") == 0
    finally:
        await redis.aclose()


# ---- finding 3: a take-back whose reply was lost is forgotten -------------------------------


async def test_a_take_back_whose_reply_was_lost_still_makes_the_end_check_its_reads(
    clean_redis: str,
) -> None:
    """FINDING 3 (fixed). The lock lapsed; the chat's next update took it, wrote what this one
    read, let it go. This update's heartbeat beats: `_RENEW_UPDATE` takes the free marker and
    lock back in Redis, but its reply is lost (a read timeout): `heartbeat` logs
    «lease.renew_failed» and beats again; that beat finds them ours (nothing taken back), so
    `batch.lapsed` is never set. The end sees marker and lock ours, no take-back, skips the
    read check, and writes the stale step over the newer one."""
    redis = Redis.from_url(clean_redis)
    store = RedisDedup(redis)
    try:
        await store.claim("dedup:0:203", "owner-a", 10.0)
        batch = UpdateBatch(
            writes={"state:2": ('{"n": 1}', None)},
            locks={"lock:2": "token-a"},
            read={"state:2": None},
            lock_lease=5.0,
        )
        await redis.set("state:2", '{"n": 7}')  # the next update's step; lock:2 free
        real = store._renew_update
        calls = 0

        async def reply_lost_once(**kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            answer = await real(**kwargs)
            if calls == 1:
                raise RedisTimeoutError("reply lost")
            return answer

        store._renew_update = reply_lost_once  # type: ignore[method-assign]
        try:  # the heartbeat's first beat: logged, beats again
            await store.renew_update("dedup:0:203", "owner-a", 10.0, batch)
        except RedisTimeoutError:
            pass
        assert await store.renew_update("dedup:0:203", "owner-a", 10.0, batch)
        ended = await store.finish("dedup:0:203", "owner-a", done=True, batch=batch)
        assert await redis.get("state:2") == b'{"n": 7}', "stale step written over the newer"
        assert ended is Ended.LOST
    finally:
        await redis.aclose()


# ---- attacks that held -----------------------------------------------------------------------


async def test_held_another_update_still_holding_the_lock_at_the_end_refuses_it(
    clean_redis: str,
) -> None:
    """Held: the chat's next update took the lapsed lock and is still running (it wrote nothing
    yet: its writes wait for its own end) when this one ends: 'lost', its lock untouched."""
    redis = Redis.from_url(clean_redis)
    store = RedisDedup(redis)
    try:
        await store.claim("dedup:0:300", "owner-a", 10.0)
        batch = UpdateBatch(
            writes={"state:2": ('{"n": 1}', None)},
            locks={"lock:2": "token-a"},
            read={"state:2": None},
            lock_lease=5.0,
        )
        await redis.set("lock:2", "token-b", px=5000)
        assert await store.finish("dedup:0:300", "owner-a", done=True, batch=batch) == "lost"
        assert await redis.get("lock:2") == b"token-b"
        assert await redis.exists("state:2") == 0
    finally:
        await redis.aclose()


async def test_held_a_redelivery_that_ended_during_the_lapse_makes_the_end_write_nothing(
    clean_redis: str,
) -> None:
    """Held: the marker lapsed, a redelivery of the same update claimed it and ended (done)
    before this one's end: FINISHED, nothing of this one written (the redelivery's state
    stands). The resident was answered by both — unavoidable once a second copy ran."""
    redis = Redis.from_url(clean_redis)
    store = RedisDedup(redis)
    try:
        await store.claim("dedup:0:301", "owner-a", 10.0)
        batch = UpdateBatch(
            writes={"state:2": ('{"n": 1}', None)}, read={"state:2": None}, lock_lease=5.0
        )
        await redis.delete("dedup:0:301")
        assert (await store.claim("dedup:0:301", "owner-r", 10.0)).state == "acquired"
        redelivery = UpdateBatch(writes={"state:2": ('{"n": 9}', None)}, read={"state:2": None})
        assert await store.finish("dedup:0:301", "owner-r", done=True, batch=redelivery) == "ok"
        assert await store.renew_update("dedup:0:301", "owner-a", 10.0, batch)  # done: kept
        assert await redis.get("dedup:0:301") == b"done"  # nothing taken back over done
        assert await store.finish("dedup:0:301", "owner-a", done=True, batch=batch) == "finished"
        assert await redis.get("state:2") == b'{"n": 9}'
    finally:
        await redis.aclose()


async def test_held_a_take_back_and_a_new_claim_exclude_each_other(clean_redis: str) -> None:
    """Held: whichever of the heartbeat's take-back and a redelivery's claim comes first wins;
    the other sees it (BUSY for the claim; not kept for the heartbeat)."""
    redis = Redis.from_url(clean_redis)
    store = RedisDedup(redis)
    try:
        await store.claim("dedup:0:302", "owner-a", 10.0)
        await redis.delete("dedup:0:302")
        assert await store.renew_update("dedup:0:302", "owner-a", 10.0, UpdateBatch())
        assert (await store.claim("dedup:0:302", "owner-r", 10.0)).state == "busy"
        await redis.delete("dedup:0:302")
        assert (await store.claim("dedup:0:302", "owner-r", 10.0)).state == "acquired"
        assert not await store.renew_update("dedup:0:302", "owner-a", 10.0, UpdateBatch())
        assert await store.finish("dedup:0:302", "owner-a", done=True, batch=UpdateBatch()) == (
            "lost"
        )
        assert await redis.get("dedup:0:302") == b"processing:owner-r"
    finally:
        await redis.aclose()


async def test_held_a_failed_update_whose_lock_lapsed_writes_nothing(clean_redis: str) -> None:
    """Held: 'release' keeps the strict behaviour when a lock lapsed (free, nothing changed)."""
    redis = Redis.from_url(clean_redis)
    store = RedisDedup(redis)
    try:
        await store.claim("dedup:0:303", "owner-a", 10.0)
        batch = UpdateBatch(
            writes={"state:2": ('{"n": 1}', None)},
            locks={"lock:2": "token-a"},
            read={"state:2": None},
            lock_lease=5.0,
        )
        assert await store.finish("dedup:0:303", "owner-a", done=False, batch=batch) == "lost"
        assert await redis.exists("state:2") == 0
    finally:
        await redis.aclose()


async def test_held_aba_the_same_value_written_back_is_no_conflict(clean_redis: str) -> None:
    """Held, by design: the chat's next update ran in the lapse and left what this one read as
    it was (the same bytes written back); this one's step is written. That is a valid serial
    order (the other first, then this one from identical state), so no lost dialog state; the
    other's own step to keys this one did not read stays too."""
    redis = Redis.from_url(clean_redis)
    store = RedisDedup(redis)
    try:
        await store.claim("dedup:0:304", "owner-a", 10.0)
        await redis.set("state:2", '{"n": 1}')
        batch = UpdateBatch(
            writes={"state:2": ('{"n": 2}', None)},
            locks={"lock:2": "token-a"},
            read={"state:2": '{"n": 1}'},
            lock_lease=5.0,
        )
        await redis.set("state:2", '{"n": 1}')  # written back as it was
        await redis.set("context:other", json.dumps({"intent": "other"}))
        assert await store.finish("dedup:0:304", "owner-a", done=True, batch=batch) == "ok"
        assert await redis.get("state:2") == b'{"n": 2}'
        assert await redis.get("context:other") is not None
    finally:
        await redis.aclose()


async def test_held_memory_renew_does_not_take_back_a_done_or_another_owners_update() -> None:
    """Held: the in-memory store takes back only a lapsed lease nobody took nor ended."""
    now = [0.0]
    store = MemoryDedup(clock=lambda: now[0])
    await store.claim("u", "a", 1.0)
    now[0] = 2.0  # lapsed
    assert (await store.claim("u", "r", 1.0)).state == "acquired"
    assert not await store.renew("u", "a", 1.0)
    await store.done("u")
    assert await store.renew("u", "a", 1.0) is False
    assert (await store.claim("u", "x", 1.0)).state == "done"
