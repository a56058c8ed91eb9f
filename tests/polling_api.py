"""What the long-polling tests share: an HTTP fake Bot API whose getUpdates keeps Telegram's
confirmation rule, the real application pointed at it, residents' /start updates and a count
of the updates handled at once."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject
from aiohttp import web

from bot.app import Application, create_application
from sandbox import SandboxServer
from tests.flows.conftest import settings_for
from tests.integration.test_wheel import TOKEN, FakeBotApi

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]
LIMIT = 100  # getUpdates' default and largest `limit`


@dataclass
class TelegramQueue(FakeBotApi):
    """FakeBotApi whose getUpdates acts as Telegram's: an update with an id below an offset
    sent is confirmed and never returned again; the others come back with every answer, the
    earliest `limit` (100 at most) first. `offsets` holds each offset sent (None when
    omitted), `answers` the update ids of each answer."""

    offsets: list[int | None] = field(default_factory=list)
    answers: list[list[int]] = field(default_factory=list)
    confirmed: int = 0  # every update_id below it is confirmed

    async def handle(self, request: web.Request) -> web.Response:
        if request.match_info["method"] != "getUpdates":
            return await super().handle(request)
        form: dict[str, Any] = dict(await request.post())
        if not form and request.can_read_body:
            form = await request.json()
        offset = int(form["offset"]) if form.get("offset") not in (None, "") else None
        limit = min(int(form.get("limit") or LIMIT), LIMIT)
        self.offsets.append(offset)
        if offset is not None:
            self.confirmed = max(self.confirmed, offset)
        pending = [u for u in self.updates if u["update_id"] >= self.confirmed][:limit]
        self.answers.append([u["update_id"] for u in pending])
        if not pending:
            await asyncio.sleep(0.2)  # a short long poll
        return web.json_response({"ok": True, "result": pending})

    def delivered(self, since: int = 0) -> Counter[int]:
        """How many times each update was handed out, counting answers from `since` on."""
        return Counter(number for answer in self.answers[since:] for number in answer)


@asynccontextmanager
async def serve_bot_api(api: FakeBotApi) -> AsyncIterator[str]:
    """`api` over HTTP on a free port; yields its base URL (BOT_API_URL)."""
    server = web.Application()
    server.router.add_route("*", "/bot{token}/{method}", api.handle)
    runner = web.AppRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def polling_application(
    tmp_path: Path, bot_api_url: str, **settings: Any
) -> AsyncIterator[Application]:
    """The real application (SQLite in `tmp_path`, the city sandbox) talking to the fake Bot
    API; `settings` override Settings fields. Two of them on one `tmp_path` are one bot before
    and after a restart."""
    values = settings_for(tmp_path, bot_token=TOKEN, bot_api_url=bot_api_url, **settings)
    async with SandboxServer() as city:
        app = await create_application(values, sandbox=city)
        try:
            yield app
        finally:
            await app.stop()


def start_update(update_id: int, user_id: int) -> dict[str, Any]:
    """A resident's /start in their private chat (chat id = user id)."""
    person = {"id": user_id, "is_bot": False, "first_name": "Житель", "language_code": "ru"}
    return {
        "update_id": update_id,
        "message": {
            "message_id": 1,
            "date": 1_700_000_000,
            "chat": {"id": user_id, "type": "private", "first_name": "Житель"},
            "from": person,
            "text": "/start",
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
        },
    }


def sent_per_chat(api: FakeBotApi) -> Counter[int]:
    """Messages the bot sent, per chat (a /start is answered with two: greeting and menu)."""
    return Counter(int(message["chat_id"]) for message in api.sent)


class InFlight(BaseMiddleware):
    """Counts the updates being handled at once; `most` is the highest count seen."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            await asyncio.sleep(0)  # let the others in, as a real query would
            return await handler(event, data)
        finally:
            self.now -= 1
