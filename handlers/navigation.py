"""Screens started from outside the menu (a photo, a notification's button, a staff reply)."""

from __future__ import annotations

import contextlib
from typing import Any

from aiogram.exceptions import TelegramBadRequest
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram_dialog import DialogManager, ShowMode, StartMode

from handlers.buttons import press_key, pressed_on, remember_press
from handlers.digest import without_items
from handlers.states import MenuSG


async def start_over_menu(manager: DialogManager, state: State, data: Any = None) -> None:
    """Start `state` as the one screen above the main menu: whatever the resident was in is
    closed, as `StartMode.RESET_STACK` closes it, but the started dialog's «Отмена» or
    «‹ Назад» lands on the menu. Started with RESET_STACK alone, closing it left an empty
    stack: nothing was shown and no keyboard was left in the chat (review 26).

    Started from a button of a quiet hours' digest, the digest keeps its other items'
    buttons: aiogram-dialog takes every button off the pressed message when it sends the new
    screen, and another item's «Пропустить этот раз» would be gone with them (review 30d)."""
    digest = await _digest_left(manager)
    await manager.start(MenuSG.main, mode=StartMode.RESET_STACK, show_mode=ShowMode.NO_UPDATE)
    await manager.start(state, data=data, show_mode=ShowMode.SEND)
    if digest is not None:
        message, rest = digest
        with contextlib.suppress(TelegramBadRequest):  # e.g. the message is gone meanwhile
            await message.edit_reply_markup(reply_markup=rest)


async def _digest_left(manager: DialogManager) -> tuple[Message, InlineKeyboardMarkup] | None:
    """The pressed digest and the buttons its other items keep (the press remembered, so a
    later edit of the digest does not bring this item back); None for any other press, or
    when no item is left."""
    event = manager.event
    if not isinstance(event, CallbackQuery) or not isinstance(event.message, Message):
        return None
    if not without_items(event.message.reply_markup, [])[0]:
        return None  # not a digest (a notice of its own, a screen's button): nothing to keep
    fsm: FSMContext | None = manager.middleware_data.get("state")
    pressed = [event.data] if event.data else []
    if fsm is not None:
        await remember_press(fsm, press_key(event))
        pressed += await pressed_on(fsm, event.message.message_id)
    _, rest = without_items(event.message.reply_markup, pressed)
    return (event.message, rest) if rest is not None else None
