"""The last router: anything nobody else understood gets a hint and the menu; and a command
the bot does not have (`unknown_command`, asked right after /start, before the dialogs)."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.types import CallbackQuery, Message
from aiogram_dialog import DialogManager, ShowMode, StartMode

from handlers.ports import Texts
from handlers.states import MenuSG
from handlers.texts import COMMAND
from handlers.widgets import SENT_BY_PEOPLE


async def unknown_message(message: Message, tr: Texts, dialog_manager: DialogManager) -> None:
    await message.answer(tr("fallback-hint"))
    await dialog_manager.start(MenuSG.main, mode=StartMode.RESET_STACK, show_mode=ShowMode.SEND)


async def unknown_command(message: Message, tr: Texts, dialog_manager: DialogManager) -> None:
    """A command other than /start («/cancel», «/help»), wherever the resident is: said to be
    unknown, never read as the value a step asks for; an open step comes back below, as it
    was (nothing typed before is lost)."""
    await message.answer(tr("fallback-unknown-command"))
    if dialog_manager.has_context():
        await dialog_manager.show(ShowMode.SEND)


def build_command_router() -> Router:
    """After /start, before the dialogs: every other command (`handlers.texts.COMMAND`)."""
    router = Router(name="unknown-commands")
    router.message.register(unknown_command, F.text.regexp(COMMAND))
    return router


async def unknown_button(
    callback: CallbackQuery, tr: Texts, dialog_manager: DialogManager | None = None
) -> None:
    """A button nobody handles: answered (the spinner stops) with the stale-button text, and the
    menu shown afresh. A button under a message the bot cannot see (an inline-mode message, a
    game) has no chat and no dialog (aiogram-dialog gives no manager): a toast that promises
    no menu."""
    if callback.message is None:  # no chat to show a menu in
        await callback.answer(tr.label("error-button-without-chat"))
        return
    await callback.answer(tr.label("error-stale-button"))
    if dialog_manager is not None:
        await dialog_manager.start(MenuSG.main, mode=StartMode.RESET_STACK, show_mode=ShowMode.SEND)


def build_router() -> Router:
    router = Router(name="fallback")
    router.message.register(unknown_message, SENT_BY_PEOPLE)  # not a pin
    router.callback_query.register(unknown_button)
    return router
