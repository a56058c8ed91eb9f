"""The send limiter (bot/ratelimit.py): the in-memory one forgets what no longer binds, at a
cost of what expired (never a walk over every chat ever sent to), and on both limiters a send
still in flight keeps counting toward the rolling second until its answer (or its lease).

The in-memory limiter runs on a fake clock; the Redis one on Redis's clock with the window and
the lease shrunk, so nothing here waits more than a fraction of a second."""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

import bot.ratelimit
from bot.ratelimit import (
    CHAT_INTERVAL,
    IN_FLIGHT_LEASE,
    IN_FLIGHT_POLL,
    WINDOW,
    MemoryLimiter,
    RedisLimiter,
)
from tests.conftest import REDIS_URL, need_service


class FakeTime:
    """Seconds that move only when slept; `on_sleep` runs after each sleep (an answer arriving
    while a send waits for the budget)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []
        self.on_sleep: Callable[[], Awaitable[None]] | None = None

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        if self.on_sleep is not None:
            await self.on_sleep()


def entries(limiter: MemoryLimiter) -> int:
    return len(limiter._chats) + len(limiter._in_flight) + len(limiter._window)


# ------------------------------------------------------------- the in-memory limiter's bound


async def test_a_chat_is_forgotten_once_its_interval_passed() -> None:
    time = FakeTime()
    limiter = MemoryLimiter(clock=time, sleep=time.sleep)
    assert await limiter.acquire(1) == 0.0
    await limiter.answered(1, accepted=True)
    time.now += CHAT_INTERVAL - 0.01
    assert await limiter.acquire(1) == pytest.approx(0.01)  # still binds: kept
    assert 1 in limiter._chats
    time.now += 0.01
    assert await limiter.acquire(2) == 0.0  # any call forgets what expired
    assert 1 not in limiter._chats
    assert await limiter.acquire(1) == 0.0  # and the chat may go at once, as before


async def test_a_hold_is_kept_until_it_ends_then_forgotten() -> None:
    time = FakeTime()
    limiter = MemoryLimiter(clock=time, sleep=time.sleep)
    await limiter.hold(7, 60.0)
    await limiter.hold(7, 5.0)  # never shortens the longer hold
    time.now += 59.5
    assert await limiter.acquire(8) == 0.0
    assert await limiter.acquire(7) == pytest.approx(0.5)
    time.now += 0.5
    await limiter.answered(8, accepted=True)
    assert 7 not in limiter._chats


async def test_an_unanswered_send_is_forgotten_after_its_lease() -> None:
    """A sender that crashed mid-send: its chat is free after the lease, its entry dropped,
    and its slot leaves the window a window later."""
    time = FakeTime()
    limiter = MemoryLimiter(clock=time, sleep=time.sleep)
    assert await limiter.acquire(1) == 0.0  # never answered
    time.now += IN_FLIGHT_LEASE - 0.01
    assert await limiter.acquire(1) == CHAT_INTERVAL  # still in flight
    time.now += 0.01
    assert await limiter.acquire(2) == 0.0
    await limiter.answered(2, accepted=True)
    assert 1 not in limiter._in_flight
    time.now += WINDOW + CHAT_INTERVAL
    assert await limiter.acquire(3) == 0.0
    assert entries(limiter) == 3  # chat 3's stamp, its send in flight and its slot


async def test_entries_stay_bounded_by_what_still_binds() -> None:
    time = FakeTime()
    limiter = MemoryLimiter(clock=time, sleep=time.sleep)
    for chat in range(3000):
        assert await limiter.acquire(chat) == 0.0
        if chat % 20:  # one in twenty never answered (crashed sends)
            await limiter.answered(chat, accepted=chat % 3 != 0)
        if chat % 7 == 0:
            await limiter.hold(chat, 2.0)
        time.now += 0.05
    # at 20 a second: the chats of the last (hold) seconds, the sends of the last lease
    assert len(limiter._chats) <= 20 * 3 + 1
    assert len(limiter._in_flight) <= IN_FLIGHT_LEASE + 1
    assert len(limiter._window) <= bot.ratelimit.GLOBAL_PER_SECOND
    # and what they were built from: a heap entry lives no longer than its moment
    assert len(limiter._chats_free) + len(limiter._leases) <= 3 * 20 * 3 + 20 * IN_FLIGHT_LEASE
    time.now += IN_FLIGHT_LEASE + WINDOW + 3.0
    assert await limiter.acquire(99_999) == 0.0
    assert (len(limiter._chats), len(limiter._in_flight), len(limiter._window)) == (1, 1, 1)


class Touches:
    """Counts the entries a call touches: heap pops, and whole walks over the chat maps."""

    def __init__(self) -> None:
        self.count = 0


def counting_map(touches: Touches, base: dict[int, Any]) -> dict[int, Any]:
    class Walked(dict[int, Any]):
        def __iter__(self) -> Any:
            touches.count += len(self)
            return super().__iter__()

        def items(self) -> Any:
            touches.count += len(self)
            return super().items()

        def values(self) -> Any:
            touches.count += len(self)
            return super().values()

        def keys(self) -> Any:
            touches.count += len(self)
            return super().keys()

    return Walked(base)


async def test_a_call_touches_only_what_expired(monkeypatch: pytest.MonkeyPatch) -> None:
    """5 000 chats held at once (a hold takes no bot-wide slot), each ending 10 ms after the
    one before: a call touches the holds that ended since the last call and a constant more,
    never all 5 000."""
    time = FakeTime()
    limiter = MemoryLimiter(clock=time, sleep=time.sleep)
    for chat in range(5000):
        await limiter.hold(chat, 60.0 + chat * 0.01)
    touches = Touches()
    limiter._chats = counting_map(touches, limiter._chats)
    limiter._in_flight = counting_map(touches, limiter._in_flight)
    pop = heapq.heappop

    def counted_pop(heap: list[Any]) -> Any:
        touches.count += 1
        return pop(heap)

    monkeypatch.setattr(heapq, "heappop", counted_pop)  # the one bot.ratelimit calls
    constant = 8
    for chat in range(5000, 5020):  # nothing expired yet
        touches.count = 0
        assert await limiter.acquire(chat) == 0.0
        await limiter.answered(chat, accepted=True)
        time.now += 0.05
        assert touches.count <= constant
    time.now = 1000.0 + 60.0 + 99.5 * 0.01  # the first 100 holds ended
    touches.count = 0
    assert await limiter.acquire(9000) == 0.0
    assert touches.count <= 100 + 3 * 20 + constant  # the holds; the 20 sends: 2 stamps, a lease
    assert len(limiter._chats) == 4900 + 1
    for _ in range(10):  # then again only what expired since
        time.now += 0.01
        touches.count = 0
        await limiter.hold(9001, 0.5)
        assert touches.count <= 1 + constant


# ------------------------------------------------- the in-flight rule, in memory (fake clock)


async def test_a_send_in_flight_keeps_its_slot_until_answered() -> None:
    """One slot a second. Chat 1's request goes at 0 and is answered at 1.5: chat 2, asking at
    1.2, must not go before chat 1's slot counted a second from its answer (2.5); meanwhile it
    asks again in short steps (the answer may come at any moment)."""
    time = FakeTime()
    start = time.now
    limiter = MemoryLimiter(per_second=1, clock=time, sleep=time.sleep)
    assert await limiter.acquire(1) == 0.0

    async def answer_at_1_5() -> None:
        if time.now - start >= 1.5 and 1 in limiter._in_flight:
            await limiter.answered(1, accepted=True)

    time.on_sleep = answer_at_1_5
    time.now = start + 1.2
    assert await limiter.acquire(2) == 0.0
    assert time.now - start == pytest.approx(2.5, abs=0.03)
    polls = [s for s in time.slept if s <= IN_FLIGHT_POLL + 1e-9]
    assert len(polls) == len(time.slept) - 1  # short steps, then straight to 2.5
    assert time.slept[-1] == pytest.approx(1.0, abs=0.03)


async def test_a_send_never_answered_holds_its_slot_for_the_lease_and_a_window() -> None:
    time = FakeTime()
    start = time.now
    limiter = MemoryLimiter(per_second=1, clock=time, sleep=time.sleep)
    assert await limiter.acquire(1) == 0.0  # the sender crashed: never answered
    assert await limiter.acquire(2) == 0.0
    assert time.slept[0] == pytest.approx(WINDOW)  # no answer can free it sooner: one sleep
    assert time.now - start == pytest.approx(IN_FLIGHT_LEASE + WINDOW, abs=0.03)


async def test_a_full_window_waits_for_its_first_answered_slot() -> None:
    """Behaviour kept: with every slot answered, the wait is until the oldest is a window old."""
    time = FakeTime()
    start = time.now
    limiter = MemoryLimiter(per_second=2, clock=time, sleep=time.sleep)
    for chat in (1, 2):
        assert await limiter.acquire(chat) == 0.0
        time.now += 0.1
        await limiter.answered(chat, accepted=True)
    assert await limiter.acquire(3) == 0.0
    assert time.slept == [pytest.approx(start + 0.1 + WINDOW - (start + 0.2))]


# ------------------------------------------------- the in-flight rule, shared through Redis


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(need_service(REDIS_URL, "TEST_REDIS_URL"))
    await client.flushdb()
    yield client
    await client.flushdb()
    await client.aclose()


@pytest.fixture
def short(monkeypatch: pytest.MonkeyPatch) -> None:
    """A window of 0.1 s and a lease of 0.4 s, so the tests take a fraction of a second."""
    monkeypatch.setattr(bot.ratelimit, "WINDOW", 0.1)
    monkeypatch.setattr(bot.ratelimit, "IN_FLIGHT_LEASE", 0.4)


async def test_redis_a_send_in_flight_keeps_its_slot_until_answered(
    redis: Redis, short: None
) -> None:
    limiter = RedisLimiter(redis, per_second=1)
    assert await limiter.acquire(1) == 0.0
    waiting = asyncio.create_task(limiter.acquire(2))
    await asyncio.sleep(0.25)  # over two windows after chat 1's request, not answered
    assert not waiting.done()  # its slot still counts
    await limiter.answered(1, accepted=True)
    assert await asyncio.wait_for(waiting, 2.0) == 0.0


async def test_redis_a_full_window_of_sends_in_flight_answers_a_short_wait(
    redis: Redis, short: None
) -> None:
    """The wait answered while the only slot is in flight: until a window after its request
    (no answer can free it sooner), then short steps (any answer may free it) — never the
    lease and a window."""
    limiter = RedisLimiter(redis, per_second=1)
    assert await limiter.acquire(1) == 0.0
    window_us, poll_us = 100_000, int(IN_FLIGHT_POLL * 1_000_000)
    args: list[int | str] = [1, "probe", window_us, 1000, 400, poll_us]
    verdict, wait_us = await limiter._acquire(keys=["rl:global", "rl:chat:2"], args=args)
    assert (int(verdict), 0 < int(wait_us) <= window_us) == (2, True)
    await asyncio.sleep(0.15)
    verdict, wait_us = await limiter._acquire(keys=["rl:global", "rl:chat:2"], args=args)
    assert (int(verdict), int(wait_us)) == (2, poll_us)


async def test_redis_a_send_never_answered_frees_its_slot_after_the_lease(
    redis: Redis, short: None
) -> None:
    limiter = RedisLimiter(redis, per_second=1)
    assert await limiter.acquire(1) == 0.0  # never answered
    waiting = asyncio.create_task(limiter.acquire(2))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    assert await asyncio.wait_for(waiting, 3.0) == 0.0  # after the lease and a window


async def test_redis_the_log_outlives_its_sends_in_flight(redis: Redis, short: None) -> None:
    """The sorted set must not expire (taking the counted slots with it) while a send it counts
    is still in flight: its time to live covers the lease, after acquire and after an answer."""
    limiter = RedisLimiter(redis, per_second=5)
    assert await limiter.acquire(1) == 0.0
    assert await limiter.acquire(2) == 0.0
    assert await redis.pttl("rl:global") > 400
    await limiter.answered(1, accepted=True)
    assert await redis.pttl("rl:global") > 400  # chat 2 is still in flight


async def test_redis_an_answer_is_stamped_never_before_its_request(redis: Redis) -> None:
    """The request time is read back from the slot's score (its request plus the lease)."""
    limiter = RedisLimiter(redis, per_second=5)
    limiter._round_trips.credit = lambda round_trip: 3600.0  # type: ignore[method-assign]
    before = await redis.time()
    assert await limiter.acquire(1) == 0.0
    await limiter.answered(1, accepted=True)
    after = await redis.time()
    [(_, score)] = await redis.zrange("rl:global", 0, -1, withscores=True)
    assert before[0] * 1_000_000 + before[1] <= score <= after[0] * 1_000_000 + after[1]
