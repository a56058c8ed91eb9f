"""The last router: anything nobody else understood gets a hint and the menu."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import CallbackQuery, Message
from aiogram_dialog import DialogManager, ShowMode, StartMode

from handlers.ports import Texts
from handlers.states import MenuSG


async def unknown_message(message: Message, tr: Texts, dialog_manager: DialogManager) -> None:
    await message.answer(tr("fallback-hint"))
    await dialog_manager.start(MenuSG.main, mode=StartMode.RESET_STACK, show_mode=ShowMode.SEND)


async def unknown_button(
    callback: CallbackQuery, tr: Texts, dialog_manager: DialogManager | None = None
) -> None:
    """A button nobody handles: answered (the spinner stops) with the stale-button text, and the
    menu shown afresh. A button under a message the bot cannot see (an inline-mode message, a
    game) has no chat and no dialog (aiogram-dialog gives no manager): the answer alone."""
    await callback.answer(tr.label("error-stale-button"))
    if dialog_manager is not None:
        await dialog_manager.start(MenuSG.main, mode=StartMode.RESET_STACK, show_mode=ShowMode.SEND)


def build_router() -> Router:
    router = Router(name="fallback")
    router.message.register(unknown_message)
    router.callback_query.register(unknown_button)
    return router
