"""A resident who blocked the bot must not make the webhook loop (found by a reviewer breaking
the work; driven like test_webhook_delivery.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramForbiddenError
from aiogram.methods import SendMessage, TelegramMethod

from sandbox import SandboxServer
from sandbox.telegram_double import LocalTelegram
from tests.integration.test_operations import app_for, settings, start_update
from tests.integration.test_webhook_delivery import (  # noqa: F401 - fixtures
    deliver,
    greeted,
    sandbox,
    services,
)


class Blocked:
    """The resident blocked the bot: every send to them is 403."""

    def __init__(self) -> None:
        self.refused = 0

    async def __call__(self, make_request: Any, bot: Bot, method: TelegramMethod[Any]) -> Any:
        if isinstance(method, SendMessage) and method.chat_id == 5001:
            self.refused += 1
            raise TelegramForbiddenError(method, "Forbidden: bot was blocked by the user")
        return await make_request(bot, method)


async def test_a_blocked_resident_does_not_loop(
    tmp_path: Path,
    sandbox: SandboxServer,  # noqa: F811 - the fixture imported above
    services: tuple[str, str],  # noqa: F811
) -> None:
    database_url, redis_url = services
    telegram = LocalTelegram()
    app = await app_for(
        settings(tmp_path, database_url=database_url, redis_url=redis_url), sandbox, telegram
    )
    blocked = Blocked()
    app.bot.session.middleware(blocked)
    try:
        statuses = [await deliver(app.web_url, start_update(70)) for _ in range(3)]
        assert statuses == [(200, None)] * 3
        assert 1 <= blocked.refused <= 2  # the greeting, and at most one attempt to tell
    finally:
        await app.stop()
