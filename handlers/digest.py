"""The quiet hours' digest: a resident's notifications held by their quiet hours, as one
message (bot/outbox.py decides which; here is how it reads).

Each item is its notification's own text, numbered; its buttons stay, each label prefixed with
the item's number («2 · Подтвердить»), so a tap acts on that item exactly as on the single
notification (the buttons carry their own ids). A one-shot button that did its work takes off
only its own item's buttons (`without_item`, used by `handlers.buttons.drop_keyboard`): the
other items' «Пропустить этот раз» must stay. Photos are left out (the report's card shows
them). A digest stays within Telegram's 4 096 characters: the items that do not fit wait for
the next digest.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from markupsafe import Markup

from handlers.ports import Texts
from handlers.texts import utf16_len

DIGEST_ITEMS = 10  # notifications in one digest at most
MESSAGE_LIMIT = 4096  # Telegram's text limit, in UTF-16 units (measured on the HTML: ≥ shown)
_ITEM = re.compile(r"([0-9]{1,2}) \u00b7 ")  # «2 · Подтвердить»: the item's number


def item_label(number: int, text: str) -> str:
    return f"{number} \u00b7 {text}"


def without_item(
    markup: InlineKeyboardMarkup | None, pressed: str | None
) -> tuple[bool, InlineKeyboardMarkup | None]:
    """(whether `markup` is a digest's, its buttons less those of the item whose button
    carries `pressed`, the callback data of a tap). Not a digest's: (False, None). A press
    of a button no longer there (a second tap): the buttons as they are."""
    return without_items(markup, [] if pressed is None else [pressed])


def without_items(
    markup: InlineKeyboardMarkup | None, pressed: Sequence[str]
) -> tuple[bool, InlineKeyboardMarkup | None]:
    """`without_item` for every item one of whose buttons carries one of `pressed`: the
    keyboard a tap carries may be older than the message (two items tapped before the first
    edit arrived), so the items spent are taken from every press remembered, not only this
    one's, and none comes back. Unchanged: `markup` itself."""
    buttons = [button for row in (markup.inline_keyboard if markup else []) for button in row]
    numbers = {id(button): _ITEM.match(button.text) for button in buttons}
    if markup is None or not any(numbers.values()):
        return False, None
    spent = {
        found.group(1)
        for button in buttons
        if button.callback_data in pressed and (found := numbers[id(button)]) is not None
    }
    if not spent:
        return True, markup
    rows = [
        kept
        for row in markup.inline_keyboard
        if (
            kept := [
                button
                for button in row
                if (number := numbers[id(button)]) is None or number.group(1) not in spent
            ]
        )
    ]
    return True, InlineKeyboardMarkup(inline_keyboard=rows) if rows else None


def digest(
    tr: Texts, items: Sequence[tuple[Markup, InlineKeyboardMarkup | None]]
) -> tuple[Markup, InlineKeyboardMarkup | None, int]:
    """(text, buttons, how many of `items` it holds): the first items, in order, as many as
    fit (at most DIGEST_ITEMS)."""
    parts: list[Markup] = []
    text = Markup("")
    for number, (item, _) in enumerate(items[:DIGEST_ITEMS], start=1):
        candidate = [*parts, tr("notify-digest-item", number=number, text=item)]
        joined = Markup("\n\n").join([tr("notify-digest-title", count=number), *candidate])
        if utf16_len(str(joined)) > MESSAGE_LIMIT:
            break
        parts, text = candidate, joined
    rows: list[list[InlineKeyboardButton]] = []
    for number, (_, markup) in enumerate(items[: len(parts)], start=1):
        for row in markup.inline_keyboard if markup is not None else []:
            rows.append(
                [
                    button.model_copy(update={"text": item_label(number, button.text)})
                    for button in row
                ]
            )
    return text, InlineKeyboardMarkup(inline_keyboard=rows) if rows else None, len(parts)
