"""Sending limits: one message a second per chat (the sender is told to come back, not made to
wait), and a true rolling second bot-wide, in memory and shared through Redis."""

from __future__ import annotations

import time

import pytest
from redis.asyncio import Redis

from bot.ratelimit import MemoryLimiter, RedisLimiter, SendLimiter
from tests.conftest import REDIS_URL, need_service


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    if request.param == "memory":
        yield MemoryLimiter(per_second=5)
        return
    client = Redis.from_url(need_service(REDIS_URL, "TEST_REDIS_URL"))
    await client.flushdb()
    yield RedisLimiter(client, per_second=5)
    await client.flushdb()
    await client.aclose()


async def test_a_chat_gets_one_message_a_second(limiter: SendLimiter) -> None:
    assert await limiter.acquire(1) == 0.0
    wait = await limiter.acquire(1)
    assert 0.5 < wait <= 1.0  # told how long, not kept waiting
    assert await limiter.acquire(2) == 0.0  # other chats go on


async def test_no_rolling_second_carries_more_than_the_budget(limiter: SendLimiter) -> None:
    sent: list[float] = []
    for chat in range(12):
        assert await limiter.acquire(100 + chat) == 0.0
        sent.append(time.monotonic())
    busiest = max(sum(1 for t in sent if start <= t < start + 0.999) for start in sent)
    assert busiest <= 5
    assert sent[-1] - sent[0] >= 1.9  # 12 messages at 5 a second take two seconds and more
