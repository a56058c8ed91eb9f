"""Backpressure in the webhook: no more updates are handled at once than the pools serve
(MAX_CONCURRENT_UPDATES, by default DATABASE_POOL_SIZE); a delivery finding every slot taken
waits, and past SLOT_WAIT is answered 503 + Retry-After before the update is claimed, so
Telegram's redelivery is handled. On PostgreSQL and Redis (its blocking connection pool)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiogram import BaseMiddleware
from aiogram.types import TelegramObject
from redis.asyncio import BlockingConnectionPool

import bot.web
from sandbox import SandboxServer
from sandbox.telegram_double import LocalTelegram
from tests.integration.test_operations import app_for, settings, start_update
from tests.integration.test_webhook_delivery import (  # noqa: F401 - fixtures
    deliver,
    greeted,
    sandbox,
    services,
)

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class Gate(BaseMiddleware):
    """Holds every update until `open` is set; counts those being handled at once."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.now = 0
        self.most = 0
        self.both_in = asyncio.Event()  # two updates held at once

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        self.now += 1
        self.most = max(self.most, self.now)
        if self.now == 2:
            self.both_in.set()
        try:
            await self.open.wait()
            return await handler(event, data)
        finally:
            self.now -= 1


async def test_the_webhook_handles_at_most_the_bound_and_a_full_replica_answers_503(
    tmp_path: Path,
    sandbox: SandboxServer,  # noqa: F811 - the fixture imported above
    services: tuple[str, str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    database_url, redis_url = services
    telegram = LocalTelegram()
    app = await app_for(
        settings(tmp_path, database_url=database_url, redis_url=redis_url, database_pool_size=2),
        sandbox,
        telegram,
    )
    gate = Gate()
    app.dispatcher.update.outer_middleware(gate)
    monkeypatch.setattr(bot.web, "SLOT_WAIT", 0.3)
    try:
        redis = app.storage.redis  # type: ignore[attr-defined]
        assert isinstance(redis.connection_pool, BlockingConnectionPool)  # waits, never fails
        held = [
            asyncio.create_task(deliver(app.web_url, start_update(n, 6000 + n))) for n in (1, 2)
        ]
        await asyncio.wait_for(gate.both_in.wait(), 10)
        # both slots taken: the third waits SLOT_WAIT, then Telegram is asked to come back
        third = deliver(app.web_url, start_update(3, 6003))
        assert await asyncio.wait_for(third, 5) == (503, "1")
        assert gate.most == 2
        gate.open.set()
        assert [await task for task in held] == [(200, None), (200, None)]
        # the 503 claimed nothing: the redelivery is handled
        assert await deliver(app.web_url, start_update(3, 6003)) == (200, None)
        assert greeted(telegram, 6003) == 1

        # a burst with room to wait: every delivery handled, never more than two at once
        monkeypatch.setattr(bot.web, "SLOT_WAIT", 30.0)
        burst = [deliver(app.web_url, start_update(100 + n, 7000 + n)) for n in range(20)]
        assert await asyncio.gather(*burst) == [(200, None)] * 20
        assert gate.most == 2
        assert all(greeted(telegram, 7000 + n) == 1 for n in range(20))
    finally:
        gate.open.set()  # nothing left hanging for the web server's shutdown
        await app.stop()
