"""How aiogram-dialog puts a screen in the chat: its own MessageManager, refusals widened.

aiogram-dialog edits the current screen in place and, when Telegram answers that the message
can't be edited (over 48 hours old, forwarded) or was not found (deleted by the resident),
sends the screen as a new message. Telegram also answers «Bad Request: MESSAGE_ID_INVALID»
for a message it no longer has for this chat (aiogram-dialog issue #439): aiogram-dialog lets
that one through, the update fails after its handler did its work — a payment made, a report
sent — and the resident read «Что-то пошло не так» under a screen still offering to pay
(review 36b). It is treated as its two kin here: the screen comes as a new message."""

from __future__ import annotations

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import Message
from aiogram_dialog.api.entities import NewMessage, OldMessage
from aiogram_dialog.manager.message_manager import MessageManager

# Telegram's words (Bot API descriptions, compared in lower case) for an edit whose message
# is gone for this chat, beyond the two aiogram-dialog knows.
GONE_MESSAGE = ("message_id_invalid", "message to edit not found", "message can't be edited")


class ScreenMessageManager(MessageManager):
    async def edit_message_safe(
        self, bot: Bot, new_message: NewMessage, old_message: OldMessage
    ) -> Message:
        try:
            return await super().edit_message_safe(bot, new_message, old_message)
        except TelegramBadRequest as error:
            if not any(words in error.message.lower() for words in GONE_MESSAGE):
                raise
            return await self.send_message(bot, new_message)
