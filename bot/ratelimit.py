"""Telegram's sending limits (REFERENCE.md): about 30 messages a second bot-wide and one a
second per chat. In one process a small in-memory limiter does; with Redis configured the
counters are shared, so all replicas together stay within the limits.

`acquire(chat)` waits for the bot-wide budget (short waits) but never for a chat: it answers
how long that chat must wait, so the sender moves on to other chats instead of stalling the
whole outbox behind one resident (found by bench/delivery.py)."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Protocol

from redis.asyncio import Redis

GLOBAL_PER_SECOND = 28  # Telegram's ~30, with a margin for clocks and in-flight requests
CHAT_INTERVAL = 1.0


class SendLimiter(Protocol):
    async def acquire(self, chat_id: int) -> float:
        """0.0: send now (it is counted); otherwise seconds this chat must wait."""
        ...


class MemoryLimiter:
    def __init__(self, per_second: int = GLOBAL_PER_SECOND, interval: float = CHAT_INTERVAL):
        self._per_second = per_second
        self._interval = interval
        self._sent: deque[float] = deque()
        self._chats: dict[int, float] = {}
        self._lock = asyncio.Lock()

    async def acquire(self, chat_id: int) -> float:
        async with self._lock:
            wait_chat = self._chats.get(chat_id, -self._interval) + self._interval
            wait_chat -= time.monotonic()
            if wait_chat > 0:
                return wait_chat
            while True:  # a true rolling second, bot-wide
                now = time.monotonic()
                while self._sent and now - self._sent[0] >= 1.0:
                    self._sent.popleft()
                if len(self._sent) < self._per_second:
                    self._sent.append(now)
                    self._chats[chat_id] = now
                    return 0.0
                await asyncio.sleep(1.0 - (now - self._sent[0]))


# A sliding one-second log in a sorted set, on Redis's own clock (replicas' clocks may
# differ): returns 0 when the message may go, else the milliseconds to wait.
_SLIDING = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, now - 1000)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now, ARGV[2])
  redis.call('PEXPIRE', KEYS[1], 2000)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + 1000 - now)
"""


class RedisLimiter:
    def __init__(self, redis: Redis, per_second: int = GLOBAL_PER_SECOND) -> None:
        self._redis = redis
        self._per_second = per_second
        self._script = redis.register_script(_SLIDING)
        self._counter = 0

    async def acquire(self, chat_id: int) -> float:
        chat_key = f"rl:chat:{chat_id}"
        if not await self._redis.set(chat_key, 1, nx=True, px=int(CHAT_INTERVAL * 1000)):
            ttl = await self._redis.pttl(chat_key)
            return max(ttl, 1) / 1000
        while True:
            self._counter += 1
            member = f"{time.time_ns()}:{id(self)}:{self._counter}"
            wait_ms = int(await self._script(keys=["rl:global"], args=[self._per_second, member]))
            if wait_ms == 0:
                return 0.0
            await asyncio.sleep(wait_ms / 1000)
