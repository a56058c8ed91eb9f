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
    # Each message is counted somewhere between the call and its return (the Redis limiter on
    # Redis's clock), so message i+5 is counted at least a second after message i only if it
    # returned at least a second after message i was asked for.
    calls: list[tuple[float, float]] = []
    for chat in range(12):
        asked = time.monotonic()
        assert await limiter.acquire(100 + chat) == 0.0
        calls.append((asked, time.monotonic()))
    for (asked, _), (_, returned) in zip(calls, calls[5:], strict=False):
        assert returned - asked >= 0.999
    assert calls[-1][1] - calls[0][0] >= 1.9  # 12 messages at 5 a second take two seconds


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_a_refused_send_gives_its_slot_back() -> None:
    clock = FakeTime()
    limiter = MemoryLimiter(per_second=2, clock=clock, sleep=clock.sleep)
    assert await limiter.acquire(1) == 0.0
    assert await limiter.acquire(2) == 0.0
    await limiter.answered(2, accepted=False)  # e.g. a 429: Telegram did not take it
    assert await limiter.acquire(3) == 0.0
    assert clock.slept == []  # its bot-wide slot was free again at once
    assert await limiter.acquire(2) == 0.0  # nor does it count against the chat


async def test_the_window_counts_from_the_answer() -> None:
    """Telegram counts a message when it arrives, at the latest when its answer comes: the
    slot and the chat's second run from there."""
    clock = FakeTime()
    limiter = MemoryLimiter(per_second=1, clock=clock, sleep=clock.sleep)
    assert await limiter.acquire(1) == 0.0
    clock.now = 0.4  # the answer took 0.4 s
    await limiter.answered(1, accepted=True)
    clock.now = 1.2
    assert await limiter.acquire(1) == pytest.approx(0.2)  # a second after the answer
    assert await limiter.acquire(2) == 0.0
    assert sum(clock.slept) == pytest.approx(0.2, abs=0.002)  # the bot-wide slot, too
