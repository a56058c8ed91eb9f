"""What a button carries and how a press is answered: the types of callback-data fields, the
answer to a forged button, and buttons that work once.

Callback data come back from the resident's client (the Bot API's rule: `callback_data`
is at most 64 bytes the bot set, but a modified client sends whatever it likes). So each
`CallbackData` factory declares its fields with these types, pydantic refuses anything else,
and the factory's filter does not match; `forged` then answers the press with a short toast
instead of an error:

- an id is ASCII digits 0-9 only (never «²», «١», «１», a sign, spaces or «1_000», which
  `int()` and pydantic's lax mode would take) within a PostgreSQL bigint, 1..2**63-1;
- an autopay period is «2026-11» (monthly), «2026-W48» (weekly) or «b-» and 12 hex digits (a
  bill, on issue), as domain/autopay.py makes them; an item reference is 12 hex digits; a
  report number is the city's «NG-2026-001001» (Latin letters, digits, hyphens).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterable
from typing import Annotated, Any, TypeVar

from aiogram import F
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from magic_filter import MagicFilter
from pydantic import BeforeValidator, Field

from domain.accounts import Resident
from handlers.digest import without_items
from handlers.ports import Texts

MAX_ID = 2**63 - 1  # the largest PostgreSQL bigint: no row has a larger id
T = TypeVar("T")


def item_ref(item_id: str) -> str:
    """What a list button carries for an item with a platform-given id: 12 hex digits of the
    id's SHA-256. The platform's ids have no length limit and callback data does (64 bytes);
    a position in the list would name another item once the list changed between drawing a
    message and the tap on it (a card added, a fund gone) — money to a fund or from a card
    the resident did not tap. A reference names the same item in every list, and one not in
    the current list is refused (`by_ref` → None: the forged-button toast)."""
    return hashlib.sha256(item_id.encode()).hexdigest()[:12]


def by_ref(items: Iterable[T], ref: str, item_id: Callable[[T], str]) -> T | None:
    """The item of `items` whose id's `item_ref` is `ref`; None when none is."""
    return next((item for item in items if item_ref(item_id(item)) == ref), None)


_MAX_ID_DIGITS = len(str(MAX_ID))


def _ascii_digits(value: Any) -> Any:
    """Only «0»-«9» in callback data: pydantic alone would also take «+5», « 5» and «1_000»."""
    if isinstance(value, str) and not (
        value.isascii() and value.isdigit() and len(value) <= _MAX_ID_DIGITS
    ):
        raise ValueError("an id is ASCII digits 0-9 only")
    return value


ButtonId = Annotated[int, BeforeValidator(_ascii_digits), Field(ge=1, le=MAX_ID)]
Period = Annotated[str, Field(pattern=r"^(?:[0-9]{4}-(?:W[0-9]{2}|[0-9]{2})|b-[0-9a-f]{12})$")]
ITEM_REF = r"^[0-9a-f]{12}$"  # what `item_ref` makes
ItemRef = Annotated[str, Field(pattern=ITEM_REF)]
REPORT_NUMBER = r"^[A-Za-z0-9][A-Za-z0-9-]{0,39}$"  # a report number callback data carries
ReportNumber = Annotated[str, Field(pattern=REPORT_NUMBER)]


def forged(factory: type[CallbackData]) -> MagicFilter:
    """Callback data with `factory`'s prefix that its own filter refused (register after it)."""
    return F.data.startswith(f"{factory.__prefix__}{factory.__separator__}")


async def on_forged(callback: CallbackQuery, tr: Texts) -> None:
    """A mangled or forged button of ours: a short answer, nothing done."""
    await callback.answer(tr.label("error-forged-button"))


async def drop_keyboard(callback: CallbackQuery, state: FSMContext | None = None) -> None:
    """Take the buttons off the pressed message — in a quiet hours' digest only the items
    spent: the pressed one's and those of every earlier press of that message remembered in
    `state` (`handlers.digest.without_items`), so two items tapped before the first edit
    arrived do not bring each other back; the others stay usable. Already gone (a second
    tap) is fine — Telegram refuses the same markup again with «message is not modified»."""
    if not isinstance(callback.message, Message) or callback.bot is None:
        # No message, or an inaccessible one (Bot API 7.0: older than 48 hours, date 0): its
        # keyboard is not known, and taking it all off would drop a digest's other items'
        # buttons too. It stays; a second tap is told by `pressed_before`.
        return
    pressed = [callback.data] if callback.data else []
    if state is not None:
        pressed += await pressed_on(state, callback.message.message_id)
    digest, rest = without_items(callback.message.reply_markup, pressed)
    if digest and rest is callback.message.reply_markup:
        return  # the spent items' buttons are gone already
    with contextlib.suppress(TelegramBadRequest):
        await callback.bot.edit_message_reply_markup(
            chat_id=callback.message.chat.id,
            message_id=callback.message.message_id,
            reply_markup=rest,
        )


_PRESSED = "pressed_once"
_KEEP_PRESSES = 50  # the latest one-shot presses remembered per chat


def press_key(callback: CallbackQuery) -> str:
    """One button of one message: a second tap of it has the same key."""
    message_id = callback.message.message_id if callback.message is not None else 0
    return f"{message_id}:{callback.data}"


async def pressed_before(state: FSMContext, key: str) -> bool:
    """Whether a one-shot button already did its work (updates of a chat are handled one at a
    time: the dispatcher's event isolation)."""
    return key in (await state.get_data()).get(_PRESSED, [])


async def pressed_on(state: FSMContext, message_id: int) -> list[str]:
    """The callback data of the remembered presses of one message's buttons."""
    prefix = f"{message_id}:"
    kept: list[str] = (await state.get_data()).get(_PRESSED, [])
    return [key.removeprefix(prefix) for key in kept if key.startswith(prefix)]


async def first_press(
    callback: CallbackQuery, state: FSMContext, tr: Texts, resident: Resident | None
) -> str | None:
    """A one-shot notice button («Пропустить этот раз», «Не оплачивать автоплатежом»): its
    press key when a linked resident presses it the first time; else None, the press answered
    («привяжите аккаунт», or «уже сделано» with the button taken off)."""
    if resident is None:
        await callback.answer(tr.label("error-not-linked"), show_alert=True)
        return None
    key = press_key(callback)
    if await pressed_before(state, key):
        await callback.answer(tr.label("button-already-done"))
        await drop_keyboard(callback, state)
        return None
    return key


async def remember_press(state: FSMContext, key: str) -> None:
    pressed = [*(await state.get_data()).get(_PRESSED, []), key]
    await state.update_data({_PRESSED: pressed[-_KEEP_PRESSES:]})
