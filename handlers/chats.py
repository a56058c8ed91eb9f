"""Which chats the resident's screens live in: the private chat with the bot, and no other.

A bot in a group still gets the commands addressed to it (Telegram's privacy mode delivers
them), the presses under its messages there and, with privacy mode off, every message. A
resident's screens show their name, bills and payments, and the link confirms their city
account, so `build_router` puts every resident router behind `private_only` (its message and
callback filters); what reaches the bot from any other chat comes here instead (`build_router`
below): a command addressed to this bot gets one line pointing to the private chat, a press a
toast saying the same, anything else silence (a group's own conversation is not ours). The
staff supergroup's messages are taken before either (`handlers.support`)."""

from __future__ import annotations

import structlog
from aiogram import Bot, F, Router
from aiogram.enums import ChatType
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError
from aiogram.types import CallbackQuery, Message

from handlers.fallback import unknown_button
from handlers.ports import Texts
from handlers.texts import COMMAND
from handlers.widgets import SERVICE_CONTENT

log = structlog.get_logger(__name__)


def private_only(router: Router) -> Router:
    """`router`'s messages and presses limited to private chats (its sub-routers inherit the
    filter: aiogram checks a router's own filters before its sub-routers'). A press under a
    message the bot cannot see (an inline-mode message) has no chat: left to `build_router`."""
    router.message.filter(F.chat.type == ChatType.PRIVATE)
    router.callback_query.filter(F.message.chat.type == ChatType.PRIVATE)
    return router


async def command_elsewhere(message: Message, bot: Bot, tr: Texts) -> None:
    """A command in a group: one line pointing to the private chat, unless it is addressed to
    another bot («/start@other_bot», seen when privacy mode is off)."""
    match = COMMAND.match(message.text or message.caption or "")
    if match is None:
        return
    me = await bot.me()
    addressed = match.group("bot")
    if addressed is not None and addressed.lower() != (me.username or "").lower():
        return
    try:
        await message.answer(
            tr("chat-private-only", bot=f"@{me.username}" if me.username else "none")
        )
    except (TelegramForbiddenError, TelegramBadRequest) as error:  # kicked, muted: not ours
        log.info("chat.cannot_write_there", error=type(error).__name__)


async def press_elsewhere(callback: CallbackQuery, tr: Texts) -> None:
    """A press under a message of a group (one sent before the bot kept to private chats)."""
    try:
        await callback.answer(tr.label("chat-private-only-toast"), show_alert=True)
    except TelegramBadRequest as error:  # the press is too old to answer
        log.info("chat.cannot_answer_there", error=type(error).__name__)


async def service_message(message: Message) -> None:
    """A service message in the private chat (the resident pinned a message, set the chat's
    auto-delete timer): nobody wrote to the bot, so nothing is said and no screen is shown
    again — an open dialog would send its window once more for any message it did not take."""


def build_service_router() -> Router:
    """In the private chat, after the routers that take service messages of their own
    (`telegram_pay`: a successful payment) and before the dialogs: every other service one."""
    router = Router(name="service-messages")
    router.message.register(service_message, F.content_type.in_(SERVICE_CONTENT))
    return router


def build_router() -> Router:
    """What reaches the bot from chats other than private ones, and presses without a chat."""
    router = Router(name="other-chats")
    router.message.register(command_elsewhere, F.chat.type != ChatType.PRIVATE)
    router.callback_query.register(press_elsewhere, F.message.chat.type != ChatType.PRIVATE)
    router.callback_query.register(unknown_button)  # no message (inline mode): the toast alone
    return router
