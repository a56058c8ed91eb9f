"""Telegram's sending limits (the Bot API FAQ): about 30 messages a second
bot-wide and one a second per chat; over that the API answers 429. In one process a small
in-memory limiter does; with Redis configured the counters are shared, so all replicas
together stay within the limits.

`acquire(chat)` waits for the bot-wide budget (short waits) but never for a chat: it answers
how long that chat must wait, so the sender moves on to other chats instead of stalling the
whole outbox behind one resident (found by bench/delivery.py).

`answered(chat, accepted)` is told when the Bot API's answer to that send arrived. Telegram
counts a message when it *arrives*, somewhere between our request and its answer, so a slot
stamped at `acquire` time alone could make two messages look a second apart to us and less
than a second apart to Telegram (a request that travelled slower than the next one). Moving
the stamp to the moment of the answer makes the window a true rolling second as Telegram sees
it, at the cost of one round trip per message; so the bot-wide budget is the full 30. A send
Telegram refused (a 4xx/5xx answer: the message was not taken) gives its slot back.

Stamping at the answer alone costs throughput: a slot is then busy for the round trip *and* a
second, so the bot-wide rate is 30 / (1 + round trip), 27.3 a second at 100 ms (measured by
bench/delivery.py), whatever the concurrency. No limiter can do better while it knows nothing
of when the message arrived but «between the request and the answer». So the slot is stamped
at the answer minus the fastest recent round trip (less `ARRIVAL_MARGIN`), never earlier
than its request: a message whose round trip was as fast as the fastest counts from its
request, one that took longer counts that much later. That estimate assumes one-way trips
vary no more than round trips do; it is trusted only after `TRUSTED_ROUND_TRIPS` answers (until
then the stamp is the answer). The chat's one-second rule keeps the answer's stamp: it costs
nothing while other chats are waiting, and no chat is ever sent two messages in one second.

Until its answer comes a slot counts as if its message were arriving at that very moment: a
request may travel for longer than the window (a slow route, a retransmitted packet), and a
slot that fell out of the window a second after its request would let a full second's budget
go out just before it arrives, 31 in Telegram's rolling second. So a slot in flight stays in
the window however long the answer takes, up to `IN_FLIGHT_LEASE` (a sender that crashed
mid-send, or a limiter never told, holds its slot for the lease and a window, not for ever).
When the window is full and a slot in flight could be freed by its answer at any moment (it
was asked for over a window ago), a send waiting for the budget asks again after
`IN_FLIGHT_POLL`; otherwise it waits for the first slot that can free.

A chat with a send in flight (acquired, not yet answered) gets no second slot, however long
the answer takes (up to `IN_FLIGHT_LEASE`, after which a sender that crashed mid-send no longer
holds the chat): `acquire` answers `CHAT_INTERVAL` for it.

The in-memory limiter forgets what no longer binds (a chat whose interval or hold ended, a send
whose lease passed): each entry's moment is kept in a heap popped only while its head has
passed, so a call touches what expired since the last one, never every chat ever sent to."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol

from redis.asyncio import Redis

GLOBAL_PER_SECOND = 30  # Telegram's bot-wide bulk limit (Bot API FAQ), in any rolling second
CHAT_INTERVAL = 1.0  # seconds between two messages to one chat (Bot API FAQ)
WINDOW = 1.0  # seconds: the bot-wide budget is counted in a rolling window this long
IN_FLIGHT_LEASE = 15.0  # seconds a send may stay unanswered before its chat is free again
# Seconds a send waiting for the bot-wide budget sleeps before asking again while a slot in
# flight for over a window could be freed by its answer at any moment.
IN_FLIGHT_POLL = 0.02
ARRIVAL_MARGIN = 0.005  # seconds: a slot counts this much later than the estimate says
# «The fastest recent round trip» is the fastest of this many (about half a minute at full
# rate): long enough to remember the network's floor through a slow spell, short enough to
# follow a lasting change. A floor read too high would count messages too early.
ROUND_TRIP_SAMPLES = 1024
# Answers before the estimate is used (the answer's stamp until then): a process's first sends
# open their connections and all come back slowly together, and a floor read from them alone
# was 0.37 s where the network's is 0.1 s (bench/delivery.py: 429s in the first second).
TRUSTED_ROUND_TRIPS = 64


class SendLimiter(Protocol):
    async def acquire(self, chat_id: int) -> float:
        """0.0: send now (it is counted); otherwise seconds this chat must wait."""
        ...

    async def answered(self, chat_id: int, accepted: bool) -> None:
        """The Bot API answered the send `acquire(chat_id)` allowed: `accepted` False when the
        answer proves the message was not taken (its slot is given back), True when it was or
        may have been (the slot is stamped now, when the message has surely arrived)."""
        ...

    async def hold(self, chat_id: int, seconds: float) -> None:
        """Nothing more to this chat for `seconds` from now (never shortens a longer hold): a
        429's `retry_after` binds the chat, not only the refused message, and a message put
        back after a failure must not be overtaken by the chat's later ones."""
        ...


class RoundTrips:
    """The round trips (request to answer, seconds) of recent sends, and from them how much
    earlier than its answer a message may be counted (see the module's docstring)."""

    def __init__(
        self, samples: int = ROUND_TRIP_SAMPLES, trusted_after: int = TRUSTED_ROUND_TRIPS
    ) -> None:
        self._recent: deque[float] = deque(maxlen=samples)
        self._trusted_after = trusted_after

    def credit(self, round_trip: float) -> float:
        """Record one send's round trip; seconds its slot's stamp may sit before its answer:
        the fastest recent round trip less ARRIVAL_MARGIN, 0.0 until enough are known. Never
        more than `round_trip` itself, so a slot never counts before its request."""
        self._recent.append(max(round_trip, 0.0))
        if len(self._recent) < self._trusted_after:
            return 0.0
        return max(min(self._recent) - ARRIVAL_MARGIN, 0.0)


class MemoryLimiter:
    """One process's limiter. `clock` (seconds, monotonic) and `sleep` can be replaced, e.g.
    by a test's fake time. It keeps only what still binds: at most `per_second` slots, the
    chats sent to within the interval or held, the sends in flight within their lease; each
    call forgets what expired since the last one (see the module's docstring)."""

    def __init__(
        self,
        per_second: int = GLOBAL_PER_SECOND,
        interval: float = CHAT_INTERVAL,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._per_second = per_second
        self._interval = interval
        self._clock = clock
        self._sleep = sleep
        # slot → when it is counted: its stamp once answered; while in flight its request plus
        # IN_FLIGHT_LEASE (in the future: it counts as arriving now until answered or the lease)
        self._window: dict[int, float] = {}
        self._slots = itertools.count()
        self._in_flight: dict[int, tuple[int, float]] = {}  # chat → (slot, asked), until answered
        self._chats: dict[int, float] = {}  # chat → its last message (a hold: its end - interval)
        # When those entries stop binding, soonest first; an entry changed since is skipped.
        self._chats_free: list[tuple[float, int]] = []  # (last + interval, chat)
        self._leases: list[tuple[float, int, int]] = []  # (asked + IN_FLIGHT_LEASE, chat, slot)
        self._round_trips = RoundTrips()
        self._lock = asyncio.Lock()

    async def acquire(self, chat_id: int) -> float:
        async with self._lock:
            self._forget(self._clock())
            flight = self._in_flight.get(chat_id)
            if flight is not None and self._clock() - flight[1] < IN_FLIGHT_LEASE:
                return self._interval  # never two sends in flight to one chat
            last = self._chats.get(chat_id)
            if last is not None and (wait := last + self._interval - self._clock()) > 0:
                return wait
            while True:  # a true rolling second, bot-wide (at most per_second slots to look at)
                now = self._clock()
                for slot in [s for s, at in self._window.items() if now - at >= WINDOW]:
                    del self._window[slot]
                if len(self._window) < self._per_second:
                    slot = next(self._slots)
                    self._window[slot] = now + IN_FLIGHT_LEASE  # arriving now, until answered
                    self._in_flight[chat_id] = (slot, now)
                    heapq.heappush(self._leases, (now + IN_FLIGHT_LEASE, chat_id, slot))
                    self._last_message(chat_id, now)
                    return 0.0
                # At least a millisecond: rounding must not leave the window full forever.
                await self._sleep(max(self._first_free(now) - now, 0.001))

    def _first_free(self, now: float) -> float:
        """When a slot of the (full) window may free first: an answered one a window after its
        stamp; one in flight no sooner than a window after its request (its stamp will not be
        earlier), and at any moment once that has passed (so ask again after IN_FLIGHT_POLL)."""
        soonest = math.inf
        for at in self._window.values():
            if at > now:  # in flight
                free = max(at - IN_FLIGHT_LEASE + WINDOW, now + IN_FLIGHT_POLL)
            else:
                free = at + WINDOW
            soonest = min(soonest, free)
        return soonest

    async def answered(self, chat_id: int, accepted: bool) -> None:
        flight = self._in_flight.pop(chat_id, None)
        now = self._clock()
        self._forget(now)
        if flight is None:
            return
        slot, asked = flight
        credit = self._round_trips.credit(now - asked)
        if accepted:
            if slot in self._window:
                self._window[slot] = max(now - credit, asked)
            self._last_message(chat_id, now)
        else:
            self._window.pop(slot, None)
            self._chats.pop(chat_id, None)

    async def hold(self, chat_id: int, seconds: float) -> None:
        now = self._clock()
        self._forget(now)
        until = now + seconds - self._interval  # `acquire` adds the interval back
        last = self._chats.get(chat_id)
        if last is None or until > last:
            self._last_message(chat_id, until)

    def _last_message(self, chat_id: int, at: float) -> None:
        self._chats[chat_id] = at
        heapq.heappush(self._chats_free, (at + self._interval, chat_id))

    def _forget(self, now: float) -> None:
        """Drop what no longer binds: each heap is popped only while its head has passed, so a
        call costs what expired since the last one (a heap entry is pushed once, popped once)."""
        while self._chats_free and self._chats_free[0][0] <= now:
            _, chat = heapq.heappop(self._chats_free)
            last = self._chats.get(chat)
            if last is not None and last + self._interval <= now:  # not a later one's
                del self._chats[chat]
        while self._leases and self._leases[0][0] <= now:
            _, chat, slot = heapq.heappop(self._leases)
            flight = self._in_flight.get(chat)
            if flight is not None and flight[0] == slot:  # unanswered within its lease
                del self._in_flight[chat]


# One round trip: the chat's turn, then a sliding one-second log in a sorted set, on Redis's
# own clock (replicas' clocks may differ) to the microsecond: a millisecond floor counted two
# stamps 999.1 ms apart as a second apart. Stamps, the window (ARGV[3]) and the answered waits
# are in microseconds, written with %.0f (Lua's default number format keeps 14 digits, too few
# for a stamp); PTTL and PX stay in milliseconds. A slot in flight is scored its request plus
# IN_FLIGHT_LEASE (ARGV[5] ms): in the future, so it stays in the window until answered (or a
# window after the lease); an answered one is scored its stamp, never in the future. The log
# lives as long as its longest slot may (the lease and two windows). Answers {0, 0} when the
# message may go (counted, the chat key holds 'f:' and its slot for the lease, until the
# answer), {1, us} when the chat must wait (ARGV[4], the interval, while a send to it is in
# flight), {2, us} when the bot-wide budget is spent for that long: until the oldest answered
# slot frees, or a slot in flight a window after its request, and once that passed any answer
# may free it, so ARGV[6] µs (IN_FLIGHT_POLL).
_ACQUIRE = """
local chat_ttl = redis.call('PTTL', KEYS[2])
if chat_ttl ~= -2 then
  local held = redis.call('GET', KEYS[2])
  if held and string.sub(held, 1, 2) == 'f:' then
    chat_ttl = math.min(chat_ttl, tonumber(ARGV[4]))
  end
  return {1, math.max(chat_ttl, 1) * 1000}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[3])
local lease = tonumber(ARGV[5]) * 1000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now - window))
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], string.format('%.0f', now + lease), ARGV[2])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[5]) + 2 * math.ceil(window / 1000))
  redis.call('SET', KEYS[2], 'f:' .. ARGV[2], 'PX', tonumber(ARGV[5]))
  return {0, 0}
end
local free = nil
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if tonumber(oldest[2]) <= now then
  free = tonumber(oldest[2]) + window
end
local after = '(' .. string.format('%.0f', now)
local flying = redis.call('ZRANGEBYSCORE', KEYS[1], after, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
if flying[2] then
  local soonest = math.max(tonumber(flying[2]) - lease + window, now + tonumber(ARGV[6]))
  if not free or soonest < free then
    free = soonest
  end
end
return {2, math.max(1, free - now)}
"""

# The answer arrived: accepted (ARGV[2] = '1') stamps the slot ARGV[5] µs before now (the
# round-trip credit, see the module's docstring) but never before its request (its score in
# flight less the lease, ARGV[6] ms), and the chat now (a longer hold stays); refused gives
# both back (the chat key only if it is still this slot's).
_ANSWERED = """
if ARGV[2] == '1' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local stamp = now - tonumber(ARGV[5])
  local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
  if score then
    local asked = tonumber(score) - tonumber(ARGV[6]) * 1000
    if asked > stamp then
      stamp = asked
    end
  end
  redis.call('ZADD', KEYS[1], string.format('%.0f', stamp), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[6]) + 2 * math.ceil(tonumber(ARGV[3]) / 1000))
  local held = redis.call('GET', KEYS[2])
  if held ~= 'hold' or redis.call('PTTL', KEYS[2]) < tonumber(ARGV[4]) then
    redis.call('SET', KEYS[2], ARGV[1], 'PX', tonumber(ARGV[4]))
  end
else
  redis.call('ZREM', KEYS[1], ARGV[1])
  if redis.call('GET', KEYS[2]) == 'f:' .. ARGV[1] then
    redis.call('DEL', KEYS[2])
  end
end
return 0
"""


# Hold a chat: its key lives ARGV[1] ms from now, unless it already lives longer.
_HOLD = """
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], 'hold', 'PX', tonumber(ARGV[1]))
end
return 0
"""


class RedisLimiter:
    def __init__(self, redis: Redis, per_second: int = GLOBAL_PER_SECOND) -> None:
        self._redis = redis
        self._per_second = per_second
        self._acquire = redis.register_script(_ACQUIRE)
        self._answered = redis.register_script(_ANSWERED)
        self._hold = redis.register_script(_HOLD)
        self._counter = itertools.count()
        self._in_flight: dict[int, tuple[str, float]] = {}  # chat → (member, asked), until answered
        self._round_trips = RoundTrips()

    async def acquire(self, chat_id: int) -> float:
        keys = ["rl:global", f"rl:chat:{chat_id}"]
        while True:
            member = f"{time.time_ns()}:{id(self)}:{next(self._counter)}"
            window_us, interval_ms = int(WINDOW * 1_000_000), int(CHAT_INTERVAL * 1000)
            lease_ms, poll_us = int(IN_FLIGHT_LEASE * 1000), int(IN_FLIGHT_POLL * 1_000_000)
            args: list[int | str] = [
                self._per_second,
                member,
                window_us,
                interval_ms,
                lease_ms,
                poll_us,
            ]
            verdict, wait_us = await self._acquire(keys=keys, args=args)
            if int(verdict) == 0:
                self._in_flight[chat_id] = (member, time.monotonic())
                return 0.0
            if int(verdict) == 1:
                return int(wait_us) / 1_000_000
            await asyncio.sleep(int(wait_us) / 1_000_000)

    async def answered(self, chat_id: int, accepted: bool) -> None:
        flight = self._in_flight.pop(chat_id, None)
        if flight is None:
            return
        member, asked = flight
        credit_us = int(self._round_trips.credit(time.monotonic() - asked) * 1_000_000)
        window_us, interval_ms = int(WINDOW * 1_000_000), int(CHAT_INTERVAL * 1000)
        lease_ms = int(IN_FLIGHT_LEASE * 1000)
        args = [member, "1" if accepted else "0", window_us, interval_ms, credit_us, lease_ms]
        await self._answered(keys=["rl:global", f"rl:chat:{chat_id}"], args=args)

    async def hold(self, chat_id: int, seconds: float) -> None:
        await self._hold(keys=[f"rl:chat:{chat_id}"], args=[max(1, int(seconds * 1000))])
