"""Backpressure in long polling: a burst of residents queues instead of failing. The real
application and the real polling loop (`bot.runners.run_polling` → `bot.polling`) against an
HTTP fake Bot API whose getUpdates hands out the burst 100 at a time as Telegram does, on
SQLite with a pool of two connections."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update
from sqlalchemy import exc as sa

from bot.album import install_first
from bot.app import Application
from bot.runners import run_polling
from tests.polling_api import (
    InFlight,
    TelegramQueue,
    polling_application,
    sent_per_chat,
    serve_bot_api,
    start_update,
)

POOL = 2  # DATABASE_POOL_SIZE: the bound on updates in flight follows it
FIRST_USER = 500_000_000

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class PoolTimeoutOnce(BaseMiddleware):
    """Each update's first attempt fails as if no connection came free in the pool."""

    def __init__(self) -> None:
        self.failed: set[int] = set()

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        if event.update_id not in self.failed:
            self.failed.add(event.update_id)
            raise sa.TimeoutError("QueuePool limit of size 2 overflow 2 reached (injected)")
        return await handler(event, data)


class Unhandled(logging.Handler):
    """aiogram's «Cause exception while process update» lines."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
async def bot_api() -> AsyncIterator[tuple[TelegramQueue, str]]:
    api = TelegramQueue()
    async with serve_bot_api(api) as url:
        yield api, url


@pytest.fixture
async def application(
    bot_api: tuple[TelegramQueue, str], tmp_path: Path
) -> AsyncIterator[Application]:
    async with polling_application(tmp_path, bot_api[1], database_pool_size=POOL) as app:
        yield app


async def _burst(
    app: Application, api: TelegramQueue, residents: int, *, retry_delays: tuple[float, ...]
) -> tuple[InFlight, Unhandled]:
    """Hand out `residents` distinct residents' /start at once, poll until each chat got two
    messages (or 30 s passed), stop polling; the in-flight count and aiogram's errors."""
    api.updates.extend(start_update(n + 1, FIRST_USER + n) for n in range(residents))
    counter = InFlight()
    install_first(app.dispatcher, counter)  # outside the unit of work and its pool checkout
    unhandled = Unhandled()
    logging.getLogger("aiogram.event").addHandler(unhandled)
    polling = asyncio.create_task(run_polling(app, retry_delays=retry_delays))
    try:
        for _ in range(600):  # 30 s at most
            if len(api.sent) >= 2 * residents or polling.done():
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # anything sent twice would show now
    finally:
        await app.dispatcher.stop_polling()
        await polling
        logging.getLogger("aiogram.event").removeHandler(unhandled)
    return counter, unhandled


async def test_a_burst_queues_within_the_pool_and_every_resident_is_answered(
    application: Application, bot_api: tuple[TelegramQueue, str]
) -> None:
    api, _ = bot_api
    residents = 300
    counter, unhandled = await _burst(application, api, residents, retry_delays=(0.1,))

    assert application.settings.updates_in_flight == POOL
    assert unhandled.lines == []
    per_chat = sent_per_chat(api)
    assert per_chat == {FIRST_USER + n: 2 for n in range(residents)}  # greeting + menu, once
    menus = [m for m in api.sent if "reply_markup" in m]
    assert len(menus) == residents
    assert counter.most == POOL  # bounded, and the bound was used


async def test_a_pool_timeout_is_retried_not_lost(
    application: Application, bot_api: tuple[TelegramQueue, str]
) -> None:
    api, _ = bot_api
    residents = 40
    flaky = PoolTimeoutOnce()
    application.dispatcher.update.outer_middleware(flaky)  # inside the error handlers
    counter, unhandled = await _burst(application, api, residents, retry_delays=(0.05, 0.1))

    assert len(flaky.failed) == residents  # every update failed once…
    assert unhandled.lines == []  # …and none was given up
    assert sent_per_chat(api) == {FIRST_USER + n: 2 for n in range(residents)}  # answered once
    texts = {m["text"] for m in api.sent}
    assert application.tr("error-generic") not in texts  # retried silently
    assert counter.most <= POOL
