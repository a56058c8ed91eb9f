"""A resident's edit of a message already sent: Telegram delivers it as an update of its own
(`edited_message`), after the bot took the message as it first came. It is never met with
silence (a resident who fixed a typo believes the fix went through): the resident is told the
edit was not taken and how to change what they meant — a report's description on its review
screen, anything else by sending it again. A live location moving is an edit too: left alone."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.types import Message

from domain.accounts import Resident
from domain.ports import UnitOfWork
from domain.reporting import describes_draft
from handlers.ports import Texts


async def on_edited(
    message: Message, tr: Texts, uow: UnitOfWork, resident: Resident | None = None
) -> None:
    # Every edit is answered, a second fix of the same message too: telling a message only
    # once needs a mark written before the notice, and a notice then lost (a 429, the bot
    # blocked) would leave the next fix unanswered.
    if message.location is not None:  # a live location's new position, not a correction
        return
    if resident is not None and await describes_draft(uow, resident, message.message_id):
        await message.answer(tr("edit-report-description"))
    elif message.text is None:  # a caption (or the media itself) changed
        await message.answer(tr("edit-caption-not-taken"))
    else:
        await message.answer(tr("edit-not-taken"))


def build_router() -> Router:
    router = Router(name="edits")
    router.edited_message.filter(F.chat.type == ChatType.PRIVATE)
    router.edited_message.register(on_edited)
    return router
