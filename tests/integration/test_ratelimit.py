"""Sending limits: one message a second per chat (the sender is told to come back, not made to
wait), and a true rolling second bot-wide, in memory and shared through Redis."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from fractions import Fraction

import pytest
from redis.asyncio import Redis

from bot.ratelimit import MemoryLimiter, RedisLimiter, SendLimiter
from tests.conftest import REDIS_URL, need_service

Clock = Callable[[], Awaitable[float | Fraction]]


@pytest.fixture(params=["memory", "redis"])
async def limited(request: pytest.FixtureRequest) -> AsyncIterator[tuple[SendLimiter, Clock]]:
    """A limiter and the clock it counts with: monotonic seconds in memory, Redis's TIME (exact
    microseconds) for the shared one."""
    if request.param == "memory":

        async def monotonic() -> float:
            return time.monotonic()

        yield MemoryLimiter(per_second=5), monotonic
        return
    client = Redis.from_url(need_service(REDIS_URL, "TEST_REDIS_URL"))
    await client.flushdb()

    async def server_time() -> Fraction:
        seconds, microseconds = await client.time()
        return Fraction(seconds * 1_000_000 + microseconds, 1_000_000)

    yield RedisLimiter(client, per_second=5), server_time
    await client.flushdb()
    await client.aclose()


@pytest.fixture
def limiter(limited: tuple[SendLimiter, Clock]) -> SendLimiter:
    return limited[0]


async def test_a_chat_gets_one_message_a_second(limiter: SendLimiter) -> None:
    assert await limiter.acquire(1) == 0.0
    wait = await limiter.acquire(1)
    assert 0.5 < wait <= 1.0  # told how long, not kept waiting
    assert await limiter.acquire(2) == 0.0  # other chats go on


async def test_no_rolling_second_carries_more_than_the_budget(
    limited: tuple[SendLimiter, Clock],
) -> None:
    # Each message is counted somewhere between the call and its return, on the limiter's own
    # clock (the Redis limiter's is Redis's TIME, read here before and after each call), so
    # message i+5 is counted a second after message i only if it returned at least a second,
    # on that clock, after message i was asked for. No margin: the clocks are the limiter's.
    limiter, now = limited
    calls: list[tuple[float | Fraction, float | Fraction]] = []
    for chat in range(12):
        asked = await now()
        assert await limiter.acquire(100 + chat) == 0.0
        calls.append((asked, await now()))
        # answered at once: a send never answered holds its slot for its lease (in flight)
        await limiter.answered(100 + chat, accepted=True)
    for (asked, _), (_, returned) in zip(calls, calls[5:], strict=False):
        assert returned - asked >= 1
    assert calls[-1][1] - calls[0][0] >= 2  # 12 messages at 5 a second take two seconds


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
