"""aiogram-dialog widgets that take their words from the Fluent locale, and the widgets that
keep a message's text safe: `Html` (a Format that escapes outside values), `Paged` (a text
over one message's size shown page by page), `PagerRow` (its ‹ 1/3 › buttons)."""

from __future__ import annotations

import re
import zlib
from inspect import isawaitable
from types import SimpleNamespace
from typing import Any, TypedDict

from aiogram import F
from aiogram.enums import ContentType
from aiogram.types import CallbackQuery, Message
from aiogram_dialog import Dialog, DialogManager, ShowMode, Window
from aiogram_dialog.api.internal import RawKeyboard
from aiogram_dialog.api.protocols import DialogProtocol
from aiogram_dialog.widgets import kbd
from aiogram_dialog.widgets.common import Whenable, WhenCondition
from aiogram_dialog.widgets.input import BaseInput, CombinedInput, MessageInput
from aiogram_dialog.widgets.kbd import Keyboard, Row
from aiogram_dialog.widgets.kbd.select import ItemIdGetter
from aiogram_dialog.widgets.text import Format, ScrollingText, Text
from markupsafe import Markup, escape

from handlers.ports import Texts
from handlers.texts import utf16_len

_SCALARS = (str, int, float)
# Visible UTF-16 units of one page of a long text; the rest of the window (a title, a line of
# hints) must fit in Telegram's 4,096 as well.
PAGE_LIMIT = 3500


class SelectIds(TypedDict):
    """The keyword arguments several Selects of a dialog share, typed for `**`."""

    item_id_getter: ItemIdGetter


class Tr(Text):
    """A Fluent message; scalar values from the window's data become its variables.

    In a message text it renders Markup (values escaped); inside a keyboard — marked by
    `plain_labels`, which `handlers.build_router` runs over every dialog — plain text, since
    Telegram shows a button's text as it is."""

    def __init__(self, key: str, when: WhenCondition = None, *, plain: bool = False) -> None:
        super().__init__(when=when)
        self.key = key
        self.plain = plain

    async def _render_text(self, data: dict[str, Any], manager: DialogManager) -> str:
        tr: Texts = manager.middleware_data["tr"]
        args = {name: value for name, value in data.items() if isinstance(value, _SCALARS)}
        return tr.label(self.key, **args) if self.plain else tr(self.key, **args)


class Html(Format):
    """`Format` for a message text: a value that is not Markup (a text from `tr`) is escaped,
    so nothing from outside becomes markup. (Plain `Format` stays for button texts.)"""

    async def _render_text(self, data: dict[str, Any], manager: DialogManager) -> str:
        if manager.is_preview():
            return await super()._render_text(data, manager)
        safe = {
            name: escape(value) if isinstance(value, str) else value for name, value in data.items()
        }
        return Markup(self.text.format_map(safe))


_MARKUP_TOKEN = re.compile(r"<[^>]*>|&(?:#\d+|#[xX][0-9a-fA-F]+|[A-Za-z]+);|\n| |[^<&\n ]+")
_TAG = re.compile(r"<(/?)([A-Za-z][\w-]*)")
_WORD_PART = 200  # a run of characters without a space is cut into pieces of this size


def split_markup(text: str, limit: int = PAGE_LIMIT) -> list[str]:
    """Telegram HTML cut into pages of at most `limit` visible UTF-16 units: at a line break
    where possible, else at a space, never inside a tag or an entity; a tag open across a cut
    is closed on one page and opened again on the next."""
    if utf16_len(text) <= limit:
        return [text]
    part = max(1, min(_WORD_PART, limit // 4))  # characters: up to 2 UTF-16 units each
    tokens: list[str] = []
    for token in _MARKUP_TOKEN.findall(text):
        if token[0] not in "<&\n " and len(token) > part:
            tokens += [token[i : i + part] for i in range(0, len(token), part)]
        else:
            tokens.append(token)
    pages: list[str] = []
    page: list[str] = []
    sizes: list[int] = []  # visible size of page[: i + 1]
    stack: list[tuple[str, str]] = []  # open tags: (name, the opening tag as written)
    stacks: list[list[tuple[str, str]]] = []  # the stack after page[i]
    for token in tokens:
        width = _visible(token)
        if page and sizes[-1] + width > limit:
            cut = _cut_at(page, sizes)
            head_stack = stacks[cut - 1]
            pages.append("".join(page[:cut]) + _close(head_stack))
            tail = page[cut:]
            page = ["".join(opening for _name, opening in head_stack), *tail]
            stacks = [list(head_stack), *stacks[cut:]]
            sizes = [0]
            for piece in tail:
                sizes.append(sizes[-1] + _visible(piece))
        match = _TAG.match(token)
        if match and token.startswith("<"):
            if match.group(1):
                if stack and stack[-1][0] == match.group(2).lower():
                    stack.pop()
            elif not token.endswith("/>"):
                stack.append((match.group(2).lower(), token))
        page.append(token)
        sizes.append((sizes[-1] if sizes else 0) + width)
        stacks.append(list(stack))
    if "".join(page).strip():
        pages.append("".join(page))
    return pages


def _visible(token: str) -> int:
    if token.startswith("<"):
        return 0
    if token.startswith("&"):
        return 1
    return utf16_len(token)


def _cut_at(page: list[str], sizes: list[int]) -> int:
    """Where the page ends: after its last line break in the second half, else after its last
    space, else at the end."""
    half = sizes[-1] // 2
    for wanted in ("\n", " "):
        for i in range(len(page) - 1, 0, -1):
            if page[i] == wanted and sizes[i] >= half:
                return i + 1
    return len(page)


def _close(stack: list[tuple[str, str]]) -> str:
    return "".join(f"</{name}>" for name, _opening in reversed(stack))


class Paged(ScrollingText):
    """A text that may pass one message's size, shown page by page (with `PagerRow`)."""

    def __init__(self, text: Text, id: str, when: WhenCondition = None) -> None:
        super().__init__(text=text, id=id, page_size=PAGE_LIMIT, when=when)

    async def _pages(self, data: dict[str, Any], manager: DialogManager) -> list[str]:
        return split_markup(await self._render_contents(data, manager), self.page_size)

    async def _render_text(self, data: dict[str, Any], manager: DialogManager) -> str:
        pages = await self._pages(data, manager)
        page = min(await self.get_page(manager), len(pages) - 1)
        return Markup(pages[page])

    async def get_page(self, manager: DialogManager) -> int:
        return max(0, await super().get_page(manager))  # a page stored before the guard

    async def get_page_count(self, data: dict[str, Any], manager: DialogManager) -> int:
        return len(await self._pages(data, manager))


# What aiogram-dialog's own page buttons carry: a page number from 0 (its pagers hide while
# there is one page, so they never offer the «-1» an empty list would compute).
_PAGE = re.compile(r"[0-9]{1,9}")


class _PageGuard(Keyboard):
    """aiogram-dialog's page buttons read their callback data with a bare `int(data)`: a
    forged press («…__pager__:x») raised ValueError out of the dispatcher («Что-то пошло не
    так», counted as a bug; review 26), and a negative one («-5») was stored as the page: a
    long text's page then raised IndexError each time it was drawn, a button list showed
    an empty page «0» (review 27). Data that is not a page number from 0 is answered like any
    forged button of ours (`error-forged-button`) and nothing changes; a page past the last
    shows the last."""

    async def _process_item_callback(
        self, callback: CallbackQuery, data: str, dialog: DialogProtocol, manager: DialogManager
    ) -> bool:
        if _PAGE.fullmatch(data) is None:
            tr: Texts = manager.middleware_data["tr"]
            await callback.answer(tr.label("error-forged-button"))
            return True
        return await super()._process_item_callback(callback, data, dialog, manager)


class PrevPage(_PageGuard, kbd.PrevPage):
    """aiogram-dialog's, with forged pages answered (`_PageGuard`)."""


class CurrentPage(_PageGuard, kbd.CurrentPage):
    """aiogram-dialog's, with forged pages answered (`_PageGuard`)."""


class NextPage(_PageGuard, kbd.NextPage):
    """aiogram-dialog's, with forged pages answered (`_PageGuard`)."""


class ScrollingGroup(_PageGuard, kbd.ScrollingGroup):
    """aiogram-dialog's, with forged pages answered (`_PageGuard`), and opening on its first
    page whenever the items it pages are not those it paged when last drawn.

    aiogram-dialog keeps a group's page by its widget id only: the next question's choices
    (one window, one list) opened on the page the last question was left at, its first
    twenty choices out of sight (review 35d); a new search's places or groups likewise. The
    items are told by their buttons' callback data (a pick's «✅» changes a text, not the
    list), kept as a CRC-32 beside the page (stable across processes, unlike `hash`)."""

    async def get_page(self, manager: DialogManager) -> int:
        return max(0, await super().get_page(manager))  # a page stored before the guard

    async def _render_keyboard(self, data: dict[str, Any], manager: DialogManager) -> RawKeyboard:
        # kbd.ScrollingGroup._render_keyboard, with the list's items compared first (its
        # contents rendered once, as there)
        keyboard = await self._render_contents(data, manager)
        items = zlib.crc32(
            "\n".join(
                getattr(b, "callback_data", None) or getattr(b, "url", None) or ""
                for row in keyboard
                for b in row
            ).encode()
        )
        stored = manager.current_context().widget_data
        if stored.get(f"{self.widget_id}:items") != items:
            stored[f"{self.widget_id}:items"] = items
            self.set_widget_data(manager, 0)
        pages = self._get_page_count(keyboard)
        pager = await self._render_pager(pages, manager)
        page = await self._render_page(
            page=await self.get_page(manager),
            keyboard=keyboard,  # type: ignore[arg-type]  # the library's own annotations
        )
        return page + pager  # type: ignore[return-value]  # disagree: inline rows in, any out


# A list's buttons a page. Telegram refuses an inline keyboard of over 100 buttons (Bot API
# limits as tdlib enforces them), and a list of the city's items (meters, categories, themes,
# places, a question's choices, cards) has no length of its own: 120 meters made «Показания
# счётчиков» refused (review 35c).
LIST_ROWS = 20


def one_per_row(
    select: Keyboard, id: str, rows: int = LIST_ROWS, when: WhenCondition = None
) -> ScrollingGroup:
    """`select` one button a row, `rows` rows a page, ‹ 1/3 › under it only when it has more
    than one page. For every list whose items come from outside."""
    return ScrollingGroup(select, id=id, width=1, height=rows, hide_on_single_page=True, when=when)


class PagerRow(Row):
    """‹ 2/3 › under a `Paged` text; no buttons while the text fits in one page."""

    def __init__(self, scroll: str, when: WhenCondition = None) -> None:
        super().__init__(
            PrevPage(scroll=scroll, text=Tr("pager-prev")),
            CurrentPage(scroll=scroll, text=Format("{current_page1}/{pages}")),
            NextPage(scroll=scroll, text=Tr("pager-next")),
            when=when,
        )
        self.scroll = scroll

    async def _render_keyboard(self, data: dict[str, Any], manager: DialogManager) -> RawKeyboard:
        scroll = manager.find(self.scroll)
        if scroll is None or await scroll.get_page_count(data) <= 1:
            return []
        return await super()._render_keyboard(data, manager)


def body(field: str, id: str, when: WhenCondition = None) -> tuple[Paged, PagerRow]:
    """A window's main text from the `field` of its data, escaped (`Html`) and page-safe: a
    text that would pass one message (Telegram refuses over 4,096 characters) is shown page by
    page with ‹ 2/3 › above the window's buttons. Use as `Window(*body("text", "pay_text"), …)`."""
    return Paged(Html(f"{{{field}}}"), id=id, when=when), PagerRow(id, when=when)


def plain_labels(dialog: Dialog) -> Dialog:
    """Every `Tr` inside a window's keyboard renders plain text (a button's text is not HTML)."""
    for window in dialog.windows.values():
        _mark(getattr(window, "keyboard", None), set())
    return dialog


def _mark(widget: Any, seen: set[int]) -> None:
    if id(widget) in seen:
        return
    seen.add(id(widget))
    if isinstance(widget, Tr):
        widget.plain = True
        return
    if isinstance(widget, list | tuple):
        for item in widget:
            _mark(item, seen)
    elif isinstance(widget, dict):
        for item in widget.values():
            _mark(item, seen)
    elif isinstance(widget, Whenable | Keyboard):
        for item in vars(widget).values():
            _mark(item, seen)


async def _hint(message: Message, _widget: MessageInput, manager: DialogManager) -> None:
    tr: Texts = manager.middleware_data["tr"]
    await message.answer(tr("fallback-hint"))
    manager.show_mode = ShowMode.SEND  # the window comes back below the hint


class HintOnText(MessageInput):
    """For windows that expect buttons only: typed text gets a hint, then the window again."""

    def __init__(self) -> None:
        super().__init__(_hint, content_types=ContentType.TEXT)


# Service messages (Bot API: what Telegram writes into a chat, nobody typed): a pin, the chat's
# auto-delete timer, a payment's, a shared user or chat, members and titles of a group. Named
# rather than what people send, so a kind of message Telegram adds later (a checklist) counts as
# a person's and is answered.
SERVICE_CONTENT = [
    ContentType.PINNED_MESSAGE,
    ContentType.MESSAGE_AUTO_DELETE_TIMER_CHANGED,
    ContentType.SUCCESSFUL_PAYMENT,
    ContentType.REFUNDED_PAYMENT,
    ContentType.USERS_SHARED,
    ContentType.CHAT_SHARED,
    ContentType.WRITE_ACCESS_ALLOWED,
    ContentType.WEB_APP_DATA,
    ContentType.CONNECTED_WEBSITE,
    ContentType.PASSPORT_DATA,
    ContentType.PROXIMITY_ALERT_TRIGGERED,
    ContentType.NEW_CHAT_MEMBERS,
    ContentType.LEFT_CHAT_MEMBER,
    ContentType.NEW_CHAT_TITLE,
    ContentType.NEW_CHAT_PHOTO,
    ContentType.DELETE_CHAT_PHOTO,
    ContentType.GROUP_CHAT_CREATED,
    ContentType.SUPERGROUP_CHAT_CREATED,
    ContentType.CHANNEL_CHAT_CREATED,
    ContentType.MIGRATE_TO_CHAT_ID,
    ContentType.MIGRATE_FROM_CHAT_ID,
    ContentType.CHAT_BACKGROUND_SET,
    ContentType.BOOST_ADDED,
    ContentType.FORUM_TOPIC_CREATED,
    ContentType.FORUM_TOPIC_EDITED,
    ContentType.FORUM_TOPIC_CLOSED,
    ContentType.FORUM_TOPIC_REOPENED,
    ContentType.GENERAL_FORUM_TOPIC_HIDDEN,
    ContentType.GENERAL_FORUM_TOPIC_UNHIDDEN,
    ContentType.VIDEO_CHAT_SCHEDULED,
    ContentType.VIDEO_CHAT_STARTED,
    ContentType.VIDEO_CHAT_ENDED,
    ContentType.VIDEO_CHAT_PARTICIPANTS_INVITED,
    ContentType.GIVEAWAY_CREATED,
    ContentType.GIVEAWAY_COMPLETED,
]
SENT_BY_PEOPLE = ~F.content_type.in_(SERVICE_CONTENT)  # a magic filter: anything else


class OtherInput(MessageInput):
    """The last input of a window (`explain_other_input`): a message none of the window's own
    inputs takes — a sticker, a voice message, a location where text is asked — is told what
    the window expects (`key`), and the window comes back below; what was entered stays. A
    file where a photo is asked is told to send it as a photo. Service messages (a pin) are
    not answered."""

    def __init__(self, key: str) -> None:
        super().__init__(self._explain, content_types=ContentType.ANY, filter=SENT_BY_PEOPLE)
        self.key = key

    async def _explain(
        self, message: Message, _widget: MessageInput, manager: DialogManager
    ) -> None:
        tr: Texts = manager.middleware_data["tr"]
        as_file = message.document is not None and self.key in _PHOTO_KEYS
        await message.answer(tr("input-photo-as-file" if as_file else self.key))
        manager.show_mode = ShowMode.SEND


_PHOTO_KEYS = {"input-photo-only", "input-text-or-photo"}


# Stand-ins for what a resident sends, to ask a window's inputs which they take: their filters
# are aiogram magic filters over the message's `content_type`, asked once, when the dialogs are
# built. Not aiogram Messages: building one at start-up would build every Bot API type a message
# can hold, which `bot.lazy_models` leaves until an update needs them.
_SAMPLES = {kind: SimpleNamespace(content_type=kind) for kind in ("text", "photo", "sticker")}


def _takes(widget: BaseInput | None, sample: SimpleNamespace) -> bool:
    if widget is None:
        return False
    if isinstance(widget, CombinedInput):
        return any(_takes(each, sample) for each in widget.inputs)
    if isinstance(widget, HintOnText) or not isinstance(widget, MessageInput):
        return False  # a hint takes text only to say buttons are expected
    for check in widget.filters:
        answer = check.callback(sample)  # a magic filter's `resolve`: synchronous
        if isawaitable(answer):
            raise TypeError(f"an input's filter must be synchronous: {check.callback!r}")
        if not answer:
            return False
    return True


def explain_other_input(dialog: Dialog) -> None:
    """Give every window of `dialog` an `OtherInput` after its own inputs, unless one of them
    takes anything (a sticker too). What it says follows what the window takes: typed text
    (`input-text-only`), a photo (`input-photo-only`), both (`input-text-or-photo`), or only
    its buttons (`input-buttons-only`)."""
    for window in dialog.windows.values():
        if not isinstance(window, Window):
            continue
        own = window.on_message
        if _takes(own, _SAMPLES["sticker"]):
            continue  # the window answers anything itself
        text, photo = (_takes(own, _SAMPLES[kind]) for kind in ("text", "photo"))
        key = {
            (True, False): "input-text-only",
            (False, True): "input-photo-only",
            (True, True): "input-text-or-photo",
            (False, False): "input-buttons-only",
        }[(text, photo)]
        other = OtherInput(key)
        window.on_message = other if own is None else CombinedInput(own, other)
