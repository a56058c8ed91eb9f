"""The quiet hours' digest stays within one Telegram message and keeps each item's buttons,
numbered; outside text in the items stays escaped."""

from __future__ import annotations

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.i18n import load_translator
from handlers.digest import DIGEST_ITEMS, MESSAGE_LIMIT, digest, without_item
from handlers.texts import utf16_len


def test_a_digest_fits_one_message_and_numbers_the_buttons() -> None:
    tr = load_translator()
    long = tr("notify-digest-item", number=0, text="<b>&" + "я" * 1500)  # escaped outside text
    button = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Подтвердить", callback_data="x")]]
    )
    text, markup, taken = digest(tr, [(long, button)] * 12)
    assert 1 < taken < 12 and utf16_len(str(text)) <= MESSAGE_LIMIT
    assert "&lt;b&gt;&amp;" in str(text) and "<b>&" not in str(text)
    assert markup is not None
    labels = [row[0].text for row in markup.inline_keyboard]
    assert labels == [f"{n} · Подтвердить" for n in range(1, taken + 1)]

    short = tr("notify-digest-item", number=0, text="ok")
    text, markup, taken = digest(tr, [(short, None)] * 30)
    assert taken == DIGEST_ITEMS and markup is None
    assert f"пришло {DIGEST_ITEMS} уведомлений" in str(text)


def test_a_one_shot_press_takes_off_only_its_own_items_buttons() -> None:
    """`without_item` (used by `drop_keyboard`): the pressed item's buttons go, the other
    items' stay; a second tap (its buttons gone) changes nothing; forged data matches no
    button; a single notification's keyboard is not a digest's (dropped whole, as before)."""
    tr = load_translator()
    report = InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(text="Подтвердить", callback_data="ra:ok:NG-1"),
                InlineKeyboardButton(text="Не устранено", callback_data="ra:no:NG-1"),
            ],
            [InlineKeyboardButton(text="Показать полностью", callback_data="ra:show:NG-1")],
        ]
    )
    skip = [
        InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text="Пропустить", callback_data=f"as:{n}")]]
        )
        for n in (1, 2)
    ]
    item = tr("notify-digest-item", number=0, text="x")
    _text, markup, _ = digest(tr, [(item, skip[0]), (item, report), (item, skip[1])])
    assert markup is not None

    def labels(keyboard: InlineKeyboardMarkup | None) -> list[str]:
        return [b.text for row in (keyboard.inline_keyboard if keyboard else []) for b in row]

    is_digest, rest = without_item(markup, "ra:ok:NG-1")
    assert is_digest and labels(rest) == ["1 · Пропустить", "3 · Пропустить"]
    assert without_item(rest, "ra:ok:NG-1") == (True, rest)  # a second tap: as it is
    assert without_item(rest, "as:999") == (True, rest)  # forged: no such button
    is_digest, rest = without_item(rest, "as:1")
    assert is_digest and labels(rest) == ["3 · Пропустить"]
    assert without_item(rest, "as:2") == (True, None)  # the last item's: nothing left
    assert without_item(report, "ra:ok:NG-1") == (False, None)  # a single notification
    assert without_item(None, "ra:ok:NG-1") == (False, None)
