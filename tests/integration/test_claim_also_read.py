"""The update's claim reads the chat's pending album groups in its own round trip
(`RedisDedup.claim(..., also_read)`, `bot.dedup.ALSO_READ`): an update costs three round trips
to Redis, not four (`tests/integration/test_update_cost.py`). Only an acquired claim carries
them: a done or busy update is not handled, and reads nothing for the album middleware."""

from __future__ import annotations

from redis.asyncio import Redis

from bot.dedup import ClaimState, RedisDedup

GROUPS = "album:chat:1:42"


async def test_an_acquired_claim_carries_the_sets_members(clean_redis: str) -> None:
    redis = Redis.from_url(clean_redis)
    try:
        await redis.sadd(GROUPS, "1:42:g2", "1:42:g1")  # type: ignore[misc]
        store = RedisDedup(redis)
        claim = await store.claim("dedup:1:10", "a", 10.0, GROUPS)
        assert (claim.state, claim.also_read) == (ClaimState.ACQUIRED, ("1:42:g1", "1:42:g2"))
        counted, count = await store.claim_counted("dedup:1:11", "b", 10.0, "flood:42", 60, GROUPS)
        assert (counted.state, counted.also_read, count) == (
            ClaimState.ACQUIRED,
            ("1:42:g1", "1:42:g2"),
            1,
        )
        # an empty set reads as no groups; no set named reads as nothing asked
        empty = await store.claim("dedup:1:12", "c", 10.0, "album:chat:1:43")
        assert empty.also_read == ()
        plain = await store.claim("dedup:1:13", "d", 10.0)
        assert (plain.state, plain.also_read) == (ClaimState.ACQUIRED, None)
    finally:
        await redis.aclose()


async def test_a_busy_or_done_claim_reads_nothing(clean_redis: str) -> None:
    redis = Redis.from_url(clean_redis)
    try:
        await redis.sadd(GROUPS, "1:42:g1")  # type: ignore[misc]
        store = RedisDedup(redis)
        await store.claim("dedup:1:20", "a", 10.0)
        busy = await store.claim("dedup:1:20", "b", 10.0, GROUPS)
        assert (busy.state, busy.also_read) == (ClaimState.BUSY, None)
        busy_counted, _ = await store.claim_counted("dedup:1:20", "b", 10.0, "flood:42", 60, GROUPS)
        assert (busy_counted.state, busy_counted.also_read) == (ClaimState.BUSY, None)
        await store.done("dedup:1:20")
        done = await store.claim("dedup:1:20", "c", 10.0, GROUPS)
        assert (done.state, done.also_read) == (ClaimState.DONE, None)
    finally:
        await redis.aclose()
