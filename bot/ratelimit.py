"""Telegram's sending limits (REFERENCE.md): about 30 messages a second bot-wide and one a
second per chat. In one process a small in-memory limiter does; with Redis configured the
counters are shared, so all replicas together stay within the limits."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from redis.asyncio import Redis

GLOBAL_PER_SECOND = 30
CHAT_INTERVAL = 1.0


class SendLimiter(Protocol):
    async def acquire(self, chat_id: int) -> None:
        """Wait until a message to this chat may be sent."""
        ...


class MemoryLimiter:
    def __init__(self, per_second: int = GLOBAL_PER_SECOND, interval: float = CHAT_INTERVAL):
        self._per_second = per_second
        self._interval = interval
        self._sent: list[float] = []
        self._chats: dict[int, float] = {}
        self._lock = asyncio.Lock()

    async def acquire(self, chat_id: int) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                self._sent = [t for t in self._sent if now - t < 1.0]
                wait_global = (
                    0.0 if len(self._sent) < self._per_second else 1.0 - (now - self._sent[0])
                )
                wait_chat = self._chats.get(chat_id, 0.0) + self._interval - now
                wait = max(wait_global, wait_chat, 0.0)
                if wait <= 0:
                    self._sent.append(now)
                    self._chats[chat_id] = now
                    return
                await asyncio.sleep(wait)


class RedisLimiter:
    """Fixed one-second windows in Redis: `INCR` bot-wide, `SET NX PX` per chat."""

    def __init__(self, redis: Redis, per_second: int = GLOBAL_PER_SECOND) -> None:
        self._redis = redis
        self._per_second = per_second

    async def acquire(self, chat_id: int) -> None:
        while True:
            if await self._redis.set(
                f"rl:chat:{chat_id}", 1, nx=True, px=int(CHAT_INTERVAL * 1000)
            ):
                break
            await asyncio.sleep(0.05)
        while True:
            window = int(time.time())
            key = f"rl:global:{window}"
            count = await self._redis.incr(key)
            if count == 1:
                await self._redis.expire(key, 2)
            if count <= self._per_second:
                return
            await asyncio.sleep(window + 1 - time.time())
