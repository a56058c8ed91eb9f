"""A clean stop without Redis handles the albums buffered in memory (`bot.album.settle_now`):
their parts were confirmed to Telegram (polling) or answered 200 (the webhook), so Telegram
will not send them again and nothing else would ever handle them.

The webhook runner (`bot.runners.webhook`) is driven as in production: the real application
without Redis behind the fake HTTP Bot API (tests/polling_api.py), parts posted to its
endpoint, then SIGTERM. The middleware's own edges (a part after the stop began, a group
over the grace, a Redis buffer) are checked on the middleware itself."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiogram import BaseMiddleware, Bot
from aiogram.types import TelegramObject, Update
from aiohttp import web
from redis.asyncio import Redis

import bot.runners
from bot.album import AlbumMiddleware, MemoryAlbumBuffer, RedisAlbumBuffer, albums_of
from bot.app import Application, create_application
from bot.web import WEBHOOK_PATH
from sandbox import SandboxServer
from tests.conftest import REDIS_URL, need_service
from tests.flows.conftest import settings_for
from tests.integration.test_polling_confirm import until
from tests.integration.test_review16_backpressure import album_part
from tests.integration.test_wheel import TOKEN, FakeBotApi
from tests.polling_api import Handler, serve_bot_api

SECRET = "album-stop-secret"
CHAT = 620_000_077
LONG = 60.0  # seconds: a debounce that never fires within a test


class Albums(BaseMiddleware):
    """Innermost: what reached the handlers — (update_id, how many parts its album held; 0
    for an update handled alone)."""

    def __init__(self) -> None:
        self.handled: list[tuple[int, int]] = []
        self.release = asyncio.Event()  # an album waits for it before its handlers run

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        parts = len(data.get("album") or ())
        self.handled.append((event.update_id, parts))
        if parts:
            await self.release.wait()
        return await handler(event, data)


class RecordingBotApi(FakeBotApi):
    """FakeBotApi that notes the methods called (the runner's setWebhook)."""

    def __init__(self) -> None:
        super().__init__()
        self.methods: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.methods.append(request.match_info["method"])
        return await super().handle(request)


async def _post(http: aiohttp.ClientSession, app: Application, body: dict[str, Any]) -> int:
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    async with http.post(app.web_url + WEBHOOK_PATH, json=body, headers=headers) as response:
        return response.status


async def test_the_webhook_without_redis_handles_an_answered_album_on_sigterm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two parts answered 200 and buffered (a long debounce: the stop comes first); SIGTERM
    hands them to the handlers as one album before the replica ends, and a part that reaches
    the replica after that is handled alone in its own request."""
    api = RecordingBotApi()
    apps: list[Application] = []
    albums = Albums()
    loop = asyncio.get_running_loop()
    async with serve_bot_api(api) as url, SandboxServer() as city:

        async def create(settings: Any, **options: Any) -> Application:
            app = await create_application(settings, **{**options, "sandbox": city})
            for middleware in albums_of(app.dispatcher):
                middleware.debounce = LONG
            app.dispatcher.update.outer_middleware(albums)
            apps.append(app)
            return app

        monkeypatch.setattr(bot.runners, "create_application", create)
        settings = settings_for(tmp_path, bot_token=TOKEN, bot_api_url=url, webhook_secret=SECRET)
        assert settings.redis_url is None
        replica = asyncio.create_task(bot.runners.webhook(settings))
        try:
            # setWebhook comes after the runner's signal handlers are in place
            await until(lambda: "setWebhook" in api.methods, "the replica is ready")
            (app,) = apps
            async with aiohttp.ClientSession() as http:
                for n in (1, 2):
                    assert await _post(http, app, album_part(n, CHAT, 10 + n, "alb-w")) == 200
                assert albums.handled == []  # answered, only buffered
                os.kill(os.getpid(), signal.SIGTERM)  # the replica is told to stop
                (middleware,) = albums_of(app.dispatcher)
                await until(lambda: albums.handled != [], "the album handled on the stop")
                # still serving while the album is handled: a new part goes alone, at once
                other = album_part(3, CHAT + 1, 20, "alb-x")
                assert await _post(http, app, other) == 200
                assert albums.handled == [(1, 2), (3, 0)]
                albums.release.set()
            await asyncio.wait_for(replica, timeout=30)
        finally:
            for number in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(number)
            if not replica.done():
                replica.cancel()
                await asyncio.wait({replica})
    assert albums.handled == [(1, 2), (3, 0)]
    assert middleware._waiters == {}


# ---- the middleware's own edges ---------------------------------------------------------------


def _update(update_id: int, message_id: int, group: str) -> Update:
    return Update.model_validate(album_part(update_id, CHAT, message_id, group))


async def test_a_group_still_handled_after_the_grace_is_cancelled_and_logged() -> None:
    """The grace is a bound: an album whose handling hangs past it is cancelled (and logged
    as lost), so the stop goes on."""
    middleware = AlbumMiddleware(MemoryAlbumBuffer(), debounce=LONG)
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def hangs(event: TelegramObject, data: dict[str, Any]) -> Any:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    bot_ = Bot(TOKEN)
    try:
        assert await middleware(hangs, _update(1, 11, "g"), {"bot": bot_}) is None
        await middleware.settle_now(grace=0.1)
    finally:
        await bot_.session.close()
    assert started.is_set() and cancelled.is_set()
    assert middleware._waiters == {}


async def test_a_redis_buffer_is_left_for_the_next_update_or_the_sweep() -> None:
    """With Redis the parts outlive the process: a stop neither hurries nor ends the wait."""
    redis = Redis.from_url(need_service(REDIS_URL, "TEST_REDIS_URL"))
    await redis.flushdb()
    middleware = AlbumMiddleware(RedisAlbumBuffer(redis), debounce=LONG)
    handled: list[int] = []

    async def record(event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        handled.append(event.update_id)

    bot_ = Bot(TOKEN)
    try:
        assert await middleware(record, _update(1, 11, "r"), {"bot": bot_}) is None
        await middleware.settle_now(grace=0.1)
        assert handled == []
        assert len(middleware._waiters) == 1  # still waiting for its deadline
        # a later part is still buffered, not handled alone
        assert await middleware(record, _update(2, 12, "r"), {"bot": bot_}) is None
        assert handled == []
    finally:
        await middleware.abandon()
        await bot_.session.close()
        await redis.flushdb()
        await redis.aclose()
