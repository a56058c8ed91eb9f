"""Short-lived shared markers: update de-duplication and flood counters.

In the embedded mode they live in process memory; with Redis they are shared by replicas."""

from __future__ import annotations

import time
from typing import Protocol

from redis.asyncio import Redis

PROCESSING_TTL = 300  # an update being handled; longer than any handler should take
DONE_TTL = 24 * 3600  # Telegram does not redeliver after a day


class DedupStore(Protocol):
    async def begin(self, key: str) -> bool:
        """Mark as being handled; False when it was already handled or is being handled."""
        ...

    async def done(self, key: str) -> None: ...

    async def forget(self, key: str) -> None: ...

    async def hit(self, key: str, window: int) -> int:
        """Count an event in a window of `window` seconds; the count so far."""
        ...


class MemoryDedup:
    def __init__(self) -> None:
        self._until: dict[str, float] = {}
        self._counts: dict[str, tuple[int, float]] = {}

    def _alive(self, key: str) -> bool:
        until = self._until.get(key)
        if until is None:
            return False
        if until < time.monotonic():
            del self._until[key]
            return False
        return True

    def _sweep(self) -> None:
        if len(self._until) > 100_000:
            now = time.monotonic()
            self._until = {k: v for k, v in self._until.items() if v >= now}

    async def begin(self, key: str) -> bool:
        if self._alive(key):
            return False
        self._sweep()
        self._until[key] = time.monotonic() + PROCESSING_TTL
        return True

    async def done(self, key: str) -> None:
        self._until[key] = time.monotonic() + DONE_TTL

    async def forget(self, key: str) -> None:
        self._until.pop(key, None)

    async def hit(self, key: str, window: int) -> int:
        now = time.monotonic()
        count, expires = self._counts.get(key, (0, now + window))
        if expires < now:
            count, expires = 0, now + window
        self._counts[key] = (count + 1, expires)
        if len(self._counts) > 100_000:
            self._counts = {k: v for k, v in self._counts.items() if v[1] >= now}
        return count + 1


class RedisDedup:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def begin(self, key: str) -> bool:
        return bool(await self._redis.set(key, "processing", nx=True, ex=PROCESSING_TTL))

    async def done(self, key: str) -> None:
        await self._redis.set(key, "done", ex=DONE_TTL)

    async def forget(self, key: str) -> None:
        await self._redis.delete(key)

    async def hit(self, key: str, window: int) -> int:
        bucket = f"{key}:{int(time.time() // window)}"
        count = int(await self._redis.incr(bucket))
        if count == 1:
            await self._redis.expire(bucket, window * 2)
        return count
