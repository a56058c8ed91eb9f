"""aiogram-dialog widgets that take their words from the Fluent locale."""

from __future__ import annotations

from typing import Any

from aiogram.enums import ContentType
from aiogram.types import Message
from aiogram_dialog import DialogManager, ShowMode
from aiogram_dialog.widgets.common import WhenCondition
from aiogram_dialog.widgets.input import MessageInput
from aiogram_dialog.widgets.text import Text

from bot.i18n import Translator

_SCALARS = (str, int, float)


class Tr(Text):
    """A Fluent message; scalar values from the window's data become its variables."""

    def __init__(self, key: str, when: WhenCondition = None) -> None:
        super().__init__(when=when)
        self.key = key

    async def _render_text(self, data: dict[str, Any], manager: DialogManager) -> str:
        tr: Translator = manager.middleware_data["tr"]
        args = {name: value for name, value in data.items() if isinstance(value, _SCALARS)}
        return tr(self.key, **args)


async def _hint(message: Message, _widget: MessageInput, manager: DialogManager) -> None:
    tr: Translator = manager.middleware_data["tr"]
    await message.answer(tr("fallback-hint"))
    manager.show_mode = ShowMode.SEND  # the window comes back below the hint


def HintOnText() -> MessageInput:  # named like the widget it stands for
    """For windows that expect buttons only: typed text gets a hint, then the window again."""
    return MessageInput(_hint, content_types=ContentType.TEXT)
