"""/start: the greeting, and the deep link that finishes linking (/start link-…)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from aiogram import F, Router
from aiogram.filters import CommandObject, CommandStart
from aiogram.types import Message
from aiogram_dialog import DialogManager, ShowMode, StartMode

from domain.errors import LinkError
from domain.linking import NONCE_PREFIX, confirm_link
from domain.ports import City, UnitOfWork
from handlers.ports import Texts
from handlers.states import MenuSG
from handlers.texts import LEVEL_KEYS, error_text


async def finish_link(
    message: Message,
    command: CommandObject,
    uow: UnitOfWork,
    city: City,
    tr: Texts,
    clock: Callable[[], datetime],
    dialog_manager: DialogManager,
) -> None:
    assert message.from_user is not None
    try:
        resident = await confirm_link(
            uow,
            city,
            nonce=command.args or "",
            telegram_user_id=message.from_user.id,
            chat_id=message.chat.id,
            now=clock(),
            payments=city,
        )
    except LinkError as error:
        await uow.commit()  # a refused link stays refused
        await message.answer(error_text(tr, error))
    else:
        await uow.commit()
        dialog_manager.middleware_data["resident"] = resident
        level = tr(LEVEL_KEYS[resident.account_level])
        await message.answer(tr("link-done", name=resident.masked_name, level=level))
    await dialog_manager.start(MenuSG.main, mode=StartMode.RESET_STACK, show_mode=ShowMode.SEND)


async def start(message: Message, tr: Texts, dialog_manager: DialogManager) -> None:
    await message.answer(tr("start-greeting"))
    await dialog_manager.start(MenuSG.main, mode=StartMode.RESET_STACK, show_mode=ShowMode.SEND)


def build_router() -> Router:
    router = Router(name="start")
    router.message.register(
        finish_link, CommandStart(deep_link=True, magic=F.args.startswith(NONCE_PREFIX))
    )
    router.message.register(start, CommandStart())
    return router
