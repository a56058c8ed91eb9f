"""Screens started from outside the menu (a photo, a notification's button, a staff reply)."""

from __future__ import annotations

from typing import Any

from aiogram.fsm.state import State
from aiogram_dialog import DialogManager, ShowMode, StartMode

from handlers.states import MenuSG


async def start_over_menu(manager: DialogManager, state: State, data: Any = None) -> None:
    """Start `state` as the one screen above the main menu: whatever the resident was in is
    closed, as `StartMode.RESET_STACK` closes it, but the started dialog's «Отмена» or
    «‹ Назад» lands on the menu. Started with RESET_STACK alone, closing it left an empty
    stack: nothing was shown and no keyboard was left in the chat (review 26)."""
    await manager.start(MenuSG.main, mode=StartMode.RESET_STACK, show_mode=ShowMode.NO_UPDATE)
    await manager.start(state, data=data, show_mode=ShowMode.SEND)
