"""Review of daa22b8 (the chat's pending album groups read with the update's claim) and 875743b
(an update's end checks its reads whenever a lease may have been taken back; `forget_user`
deferred to the update's end).

The middlewares are driven directly on real Redis (TEST_REDIS_URL): `UpdateDedupMiddleware`
(with `also_read=AlbumMiddleware.pending_key`, as bot/app.py wires it) in front of
`AlbumMiddleware`, polling's `TransientRetryMiddleware` in front of both where a retry is
probed. Interleavings are forced with hooks (a retry's sleep, a script's reply dropped after
it ran), never with sleeps; a dead replica's group is one buffered with no task waiting on it.

No attack found a broken invariant; these («held») probe attacks that held and must keep
passing."""

from __future__ import annotations

from typing import Any

import pytest
from aiogram import Bot
from aiogram.fsm.storage.base import StorageKey
from aiogram.types import Update
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from bot.album import AlbumMiddleware, RedisAlbumBuffer
from bot.dedup import ALSO_READ, ClaimState, Ended, LeasedRedisEventIsolation, RedisDedup
from bot.middlewares import TransientRetryMiddleware, UpdateDedupMiddleware
from handlers.account import forget_dialogs
from handlers.points import UNSETTLED
from storage.fsm import DIALOG_STATE_KEPT, BatchedRedisStorage, UpdateBatch, dialog_key_builder

BOT = Bot("42:TEST")  # only its id is used (42); nothing is sent
CHAT = 1001


def _message(update_id: int, message_id: int, group: str | None = None) -> Update:
    message: dict[str, Any] = {
        "message_id": message_id,
        "date": 1_700_000_000,
        "chat": {"id": CHAT, "type": "private"},
        "from": {"id": CHAT, "is_bot": False, "first_name": "R"},
        "text": f"m{message_id}",
    }
    if group is not None:
        message["media_group_id"] = group
    return Update.model_validate({"update_id": update_id, "message": message})


class _Seen:
    """The rest of the chain: records what it handled, in order (an album as its parts)."""

    def __init__(self) -> None:
        self.handled: list[tuple[int, ...]] = []
        self.prefetched: list[Any] = []

    async def __call__(self, event: Any, data: dict[str, Any]) -> None:
        self.prefetched.append(data.get(ALSO_READ))
        album = data.get("album")
        if album:
            self.handled.append(tuple(m.message_id for m in album))
        else:
            self.handled.append((event.message.message_id,))


def _chain(dedup: UpdateDedupMiddleware, albums: AlbumMiddleware, seen: _Seen) -> Any:
    async def after_dedup(event: Any, data: dict[str, Any]) -> Any:
        return await albums(seen, event, data)

    async def run(event: Any, data: dict[str, Any]) -> Any:
        return await dedup(after_dedup, event, data)

    return run


async def _dead_replicas_group(redis: Redis, group: str, *message_ids: int) -> None:
    """A group a replica buffered and died with (no task waits on it)."""
    buffer = RedisAlbumBuffer(redis)
    chat = f"{BOT.id}:{CHAT}"
    for n, message_id in enumerate(message_ids):
        part = _message(500 + message_id + n, message_id, group)
        assert await buffer.add(chat, f"{chat}:{group}", part, 0.0)


# ---- daa22b8: the claim's answer shapes --------------------------------------------------


@pytest.mark.parametrize("decode", [False, True])
async def test_held_claim_answers_the_set_in_every_shape(clean_redis: str, decode: bool) -> None:
    """Held: an empty or missing set is (), members come sorted and decoded with
    decode_responses on or off, for both scripts; a busy or done claim carries None."""
    redis = Redis.from_url(clean_redis, decode_responses=decode)
    store = RedisDedup(redis)
    try:
        got = await store.claim("dedup:42:1", "a", 10.0, "album:chat:42:9")
        assert got.state is ClaimState.ACQUIRED and got.also_read == ()
        await redis.sadd("album:chat:42:9", "42:9:g2", "42:9:g1")
        got, count = await store.claim_counted(
            "dedup:42:2", "a", 10.0, "flood:9", 60, "album:chat:42:9"
        )
        assert got.also_read == ("42:9:g1", "42:9:g2") and count == 1
        # our own claim sent again (redis-py's retry after a lost reply): ours, set read again
        got, count = await store.claim_counted(
            "dedup:42:2", "a", 10.0, "flood:9", 60, "album:chat:42:9"
        )
        assert got.state is ClaimState.ACQUIRED and got.also_read == ("42:9:g1", "42:9:g2")
        assert count == 1
        busy = await store.claim("dedup:42:2", "b", 10.0, "album:chat:42:9")
        assert busy.state is ClaimState.BUSY and busy.also_read is None
        await redis.set("dedup:42:3", "done")
        done, _ = await store.claim_counted(
            "dedup:42:3", "b", 10.0, "flood:9", 60, "album:chat:42:9"
        )
        assert done.state is ClaimState.DONE and done.also_read is None
        plain = await store.claim("dedup:42:4", "a", 10.0)
        assert plain.also_read is None
    finally:
        await redis.aclose()


# ---- daa22b8: a dead replica's group, picked up by the chat's next update -----------------


@pytest.mark.parametrize("flood_window", [None, 60])
async def test_held_a_dead_replicas_album_is_handled_before_the_next_message(
    clean_redis: str, flood_window: int | None
) -> None:
    """Held, with flood protection on (claim_counted) and off (claim): the prefetched set
    names the dead replica's group; it is handled (its parts in order) before the message,
    and the prefetched list does not leak into the handlers' data."""
    redis = Redis.from_url(clean_redis)
    albums = AlbumMiddleware(RedisAlbumBuffer(redis), debounce=0.0)
    dedup = UpdateDedupMiddleware(
        RedisDedup(redis), flood_window=flood_window, also_read=albums.pending_key
    )
    seen = _Seen()
    try:
        await _dead_replicas_group(redis, "g1", 11, 10)
        await _chain(dedup, albums, seen)(_message(1, 12), {"bot": BOT})
        assert seen.handled == [(10, 11), (12,)]
        assert seen.prefetched == [None, None]
        assert await redis.smembers(f"album:chat:{BOT.id}:{CHAT}") == set()
    finally:
        await redis.aclose()


async def test_held_a_busy_claim_retried_reads_the_set_afresh(clean_redis: str) -> None:
    """Held: the update's first claim finds it BUSY (another replica's lease) — no set is
    read, nothing left in data; between the tries (polling's retry sleep) the other replica
    dies leaving a group of the chat and its lease goes. The retry (a fresh copy of the data)
    claims afresh and reads the set now: the group is handled before the message."""
    redis = Redis.from_url(clean_redis)
    albums = AlbumMiddleware(RedisAlbumBuffer(redis), debounce=0.0)
    dedup = UpdateDedupMiddleware(RedisDedup(redis), also_read=albums.pending_key)
    seen = _Seen()
    await redis.set(f"dedup:{BOT.id}:1", "processing:other", px=10_000)

    async def between_tries(_seconds: float) -> None:
        await _dead_replicas_group(redis, "g1", 10, 11)
        await redis.delete(f"dedup:{BOT.id}:1")  # its lease lapsed

    retry = TransientRetryMiddleware(delays=(0.5,), sleep=between_tries)
    data: dict[str, Any] = {"bot": BOT}
    try:
        await retry(_chain(dedup, albums, seen), _message(1, 12), data)
        assert seen.handled == [(10, 11), (12,)]
        assert ALSO_READ not in data
    finally:
        await redis.aclose()


async def test_held_a_prefetched_set_of_another_chat_is_not_used(clean_redis: str) -> None:
    """Held: a prefetched (key, members) pair whose key is not the update's chat's (a caller
    mixing data dicts) is ignored: the middleware reads its own chat's set."""
    redis = Redis.from_url(clean_redis)
    albums = AlbumMiddleware(RedisAlbumBuffer(redis), debounce=0.0)
    seen = _Seen()
    try:
        await _dead_replicas_group(redis, "g1", 10)
        data = {"bot": BOT, ALSO_READ: ("album:chat:42:7", ())}
        await albums(seen, _message(1, 12), data)
        assert seen.handled == [(10,), (12,)]
    finally:
        await redis.aclose()


# ---- 875743b: forget_user deferred to the update's end -----------------------------------


def _stack(redis: Redis) -> tuple[BatchedRedisStorage, LeasedRedisEventIsolation, RedisDedup]:
    storage = BatchedRedisStorage(
        redis,
        key_builder=dialog_key_builder(),
        state_ttl=DIALOG_STATE_KEPT,
        data_ttl=DIALOG_STATE_KEPT,
    )
    return (
        storage,
        LeasedRedisEventIsolation(redis, storage.key_builder, heartbeat=600),
        RedisDedup(redis),
    )


async def test_held_unlinking_forgets_more_keys_than_a_scan_page(clean_redis: str) -> None:
    """Held: 1 200 dialog keys of the user (SCAN pages of 500), a held lock and another
    user's key. Unlinking in an update (the batch) keeps them until the end, then deletes
    them all but the lock (released by the end itself) and the other user's; the unsettled
    key written back and a dialog key created after the forgetting (a menu started) stay."""
    redis = Redis.from_url(clean_redis)
    storage, isolation, store = _stack(redis)
    dedup = UpdateDedupMiddleware(store, heartbeat=600)
    key = StorageKey(bot_id=1, chat_id=2, user_id=2)
    builder = storage.key_builder
    contexts = [
        builder.build(
            StorageKey(bot_id=1, chat_id=2, user_id=2, destiny=f"aiogd:context:c{i}"), "data"
        )
        for i in range(1200)
    ]
    other_user = builder.build(StorageKey(bot_id=1, chat_id=22, user_id=22), "data")
    await redis.mset({name: "{}" for name in [*contexts, other_user]})
    await storage.set_data(key, {UNSETTLED: {"acc": {"op-1": "k1"}}, "x": 1})
    fresh = builder.build(
        StorageKey(bot_id=1, chat_id=2, user_id=2, destiny="aiogd:context:new"), "data"
    )

    async def unlink(_event: Any, _data: dict[str, Any]) -> None:
        async with isolation.lock(key):
            unsettled = (await storage.get_data(key)).get(UNSETTLED)
            assert await forget_dialogs(storage, 1, 2) == 1201
            assert await redis.exists(contexts[0]) == 1  # deferred to the end
            await storage.set_data(key, {UNSETTLED: unsettled})
            await storage.set_data(
                StorageKey(bot_id=1, chat_id=2, user_id=2, destiny="aiogd:context:new"), {"m": 1}
            )

    try:
        await dedup(unlink, Update.model_validate({"update_id": 7}), {})
        assert await redis.exists(*contexts) == 0
        assert await redis.exists(other_user) == 1
        assert await storage.get_data(key) == {UNSETTLED: {"acc": {"op-1": "k1"}}}
        assert await redis.exists(fresh) == 1
        assert await redis.keys("*:lock") == []
        assert await redis.get("dedup:0:7") == b"done"
    finally:
        await redis.aclose()


async def test_held_forget_user_outside_an_update_deletes_at_once_but_locks(
    clean_redis: str,
) -> None:
    """Held: without a batch (a job, a console) the keys go at once; a held lock stays."""
    redis = Redis.from_url(clean_redis)
    storage, _, _ = _stack(redis)
    builder = storage.key_builder
    key = StorageKey(bot_id=1, chat_id=2, user_id=2)
    await storage.set_data(key, {"x": 1})
    await redis.set(builder.build(key, "lock"), "token", px=5000)
    try:
        assert await storage.forget_user(1, 2) == 1
        assert await storage.get_data(key) == {}
        assert await redis.exists(builder.build(key, "lock")) == 1
    finally:
        await redis.aclose()


# ---- 875743b: the end's retry with Redis flapping ----------------------------------------


class _Flapping:
    """A script object whose every other call fails: odd calls raise ConnectionError before
    sending (`before=True`) or after the script ran (its reply lost). With `beat`, a failed
    end is followed by what the end's heartbeat does in Redis (`_RENEW_UPDATE` over its
    marker and locks: a lease let go by the first try is taken back)."""

    def __init__(self, real: Any, *, before: bool, beat: Any = None) -> None:
        self.real = real
        self.before = before
        self.beat = beat
        self.calls = 0

    async def __call__(self, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls % 2 == 1:
            if not self.before:
                await self.real(**kwargs)
            if self.beat is not None:
                keys, args = kwargs["keys"], kwargs["args"]
                writes, locks = int(args[3]), int(args[4])
                tokens = args[6 + 2 * writes : 6 + 2 * writes + locks]
                await self.beat(
                    keys=[keys[0], *keys[1 + writes : 1 + writes + locks]],
                    args=[args[1], 10_000, 5_000, *tokens],
                )
            raise RedisConnectionError("flap")
        return await self.real(**kwargs)


@pytest.mark.parametrize("before", [True, False], ids=["never-sent", "reply-lost"])
async def test_held_an_update_whose_end_meets_a_flapping_redis_is_answered_once(
    clean_redis: str, before: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Held: the end's first try fails (never sent, or ran and its reply lost); every other
    call of the heartbeat's renewal fails too (so `batch.lapsed` is set: the retry checks the
    reads). The retry finds its own first write as 'finished' (reply lost) or writes (never
    sent): the update ends once, its step written once, no LeaseLost, the handler run once
    under polling's retry — no second answer."""
    monkeypatch.setattr("bot.dedup.FINISH_RETRIES", (0.0, 0.0, 0.0))
    redis = Redis.from_url(clean_redis)
    storage, isolation, store = _stack(redis)
    flapping = _Flapping(store._finish, before=before, beat=store._renew_update)
    store._finish = flapping  # type: ignore[assignment]
    store._renew_update = _Flapping(store._renew_update, before=before)  # type: ignore[assignment]
    dedup = UpdateDedupMiddleware(store, heartbeat=600)
    key = StorageKey(bot_id=1, chat_id=2, user_id=2)
    await storage.set_data(key, {"n": 1})
    runs: list[int] = []
    ends: list[Ended] = []
    real_finish = store.finish

    async def finish(*args: Any, **kwargs: Any) -> Ended:
        ended = await real_finish(*args, **kwargs)
        ends.append(ended)
        return ended

    store.finish = finish  # type: ignore[assignment]

    async def step(_event: Any, _data: dict[str, Any]) -> None:
        async with isolation.lock(key):
            runs.append(1)
            n = (await storage.get_data(key))["n"]
            await storage.set_data(key, {"n": n + 1})

    async def through(event: Any, data: dict[str, Any]) -> Any:
        return await dedup(step, event, data)

    async def no_sleep(_seconds: float) -> None:
        pass

    retry = TransientRetryMiddleware(delays=(0.0, 0.0), sleep=no_sleep)
    try:
        await retry(through, Update.model_validate({"update_id": 9}), {})
        assert flapping.calls == 2  # the first try failed, the retry answered
        assert runs == [1], f"handled {len(runs)} times (ends: {ends})"
        assert ends == [Ended.FINISHED if not before else Ended.OK]
        assert await storage.get_data(key) == {"n": 2}
        assert await redis.get("dedup:0:9") == b"done"
        assert await redis.keys("*:lock") == []
    finally:
        await redis.aclose()


async def test_held_a_release_end_whose_reply_was_lost_leaves_the_update_to_its_redelivery(
    clean_redis: str,
) -> None:
    """Held: a failed update's end ('release') ran (partial step written, marker and lock let
    go), its reply lost; the heartbeat takes both back; the retry checks the reads, finds its
    own write and answers 'lost' — which lets go of what was taken back. The redelivery can
    claim the update at once and the step is written once."""
    redis = Redis.from_url(clean_redis)
    store = RedisDedup(redis)
    try:
        await store.claim("dedup:0:300", "owner-a", 10.0)
        await redis.set("lock:2", "token-a", px=5000)
        batch = UpdateBatch(
            writes={"state:2": ('{"n": 1}', None)},
            locks={"lock:2": "token-a"},
            read={"state:2": None},
            lock_lease=5.0,
        )
        kept = dict(batch.locks)
        real = store._finish
        calls = 0

        async def reply_lost_then_beat(**kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            answer = await real(**kwargs)
            if calls == 1:
                probe = UpdateBatch(locks=kept, lock_lease=5.0)
                assert await store.renew_update("dedup:0:300", "owner-a", 10.0, probe)
                assert await redis.get("lock:2") == b"token-a"  # taken back
                raise RedisConnectionError("reply lost")
            return answer

        store._finish = reply_lost_then_beat  # type: ignore[assignment]
        ended = await store.finish("dedup:0:300", "owner-a", done=False, batch=batch, retries=(0,))
        assert ended is Ended.LOST
        assert await redis.exists("dedup:0:300", "lock:2") == 0
        assert await redis.get("state:2") == b'{"n": 1}'
        again = await store.claim("dedup:0:300", "owner-b", 10.0)
        assert again.state is ClaimState.ACQUIRED
    finally:
        await redis.aclose()


async def test_held_a_group_added_after_the_claim_is_left_for_the_next_update(
    clean_redis: str,
) -> None:
    """Held: another replica buffers a new group's part between this update's claim (which
    read the set) and the album middleware. The part is later than this update (Telegram
    sends a chat's next message only after this one was answered; a press is a queue of its
    own), so it is not settled before it — as with the old SMEMBERS, a snapshot one step
    earlier — and it is not lost: the chat's next update (its replica died) handles it first."""
    redis = Redis.from_url(clean_redis)
    albums = AlbumMiddleware(RedisAlbumBuffer(redis), debounce=0.0)
    dedup = UpdateDedupMiddleware(RedisDedup(redis), also_read=albums.pending_key)
    seen = _Seen()
    added = False

    async def between(event: Any, data: dict[str, Any]) -> Any:
        nonlocal added
        if not added:
            added = True
            assert data[ALSO_READ][1] == ()  # read with the claim, before the part came
            await _dead_replicas_group(redis, "g2", 20, 21)
        return await albums(seen, event, data)

    async def run(event: Any) -> Any:
        return await dedup(between, event, {"bot": BOT})

    try:
        await run(_message(1, 12))
        assert seen.handled == [(12,)]
        await run(_message(2, 30))
        assert seen.handled == [(12,), (20, 21), (30,)]
    finally:
        await redis.aclose()
