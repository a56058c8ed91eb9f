"""An in-process double of the Telegram Bot API.

``LocalTelegram`` is an aiogram session: give it to a ``Bot`` and every API call the bot makes
is answered here instead of by api.telegram.org. It behaves like the real server where it
matters for a bot author:

* results go through aiogram's own ``check_response`` (the JSON wire format), so they come back
  as correctly typed objects bound to the bot, and errors come back as the same exception types
  with the same descriptions Telegram uses ("message is not modified", "message to edit not
  found", "can't parse entities", "query is too old ...");
* HTML-formatted text is parsed the way Telegram does it: the stored message has the plain
  ``text`` plus ``entities``, unsupported tags are rejected, length limits are enforced;
* it keeps the current state of every message in every chat (text or caption, inline keyboard,
  media), so edits and deletions change that state, and records each call and each visible
  effect (``calls`` and ``events``);
* files are kept in memory: ``register_file`` / ``register_photo`` make bytes downloadable
  through ``getFile`` + ``bot.download(...)``, and files the bot uploads are kept too.

Unknown API methods raise ``LocalTelegramError`` naming the method, so a gap is noticed at once.
"""

from __future__ import annotations

import contextvars
import copy
import itertools
import mimetypes
import re
import time
from collections import defaultdict, deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from html import unescape
from typing import TYPE_CHECKING, Any, cast

from aiogram import methods
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.base import BaseSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramNetworkError
from aiogram.methods import TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import InputFile, Message, URLInputFile

if TYPE_CHECKING:
    from aiogram import Bot

BOT_USER_ID = 777000001
BOT_USERNAME = "resident_console_bot"
BOT_FIRST_NAME = "Resident Bot"
LOCAL_BOT_TOKEN = f"{BOT_USER_ID}:LOCAL-resident-console-token"

LOCAL_API = TelegramAPIServer(
    base="local-telegram://bot{token}/{method}",
    file="local-telegram://file/bot{token}/{path}",
)
_FILE_URL_PREFIX = "local-telegram://file/bot"

MAX_TEXT_LENGTH = 4096
MAX_INLINE_BUTTONS = (
    100  # an inline keyboard's buttons in all (Telegram's limits, as tdlib keeps them)
)
MAX_TOPIC_NAME = 128  # Bot API createForumTopic: «1-128 characters»
MAX_CAPTION_LENGTH = 1024
MAX_CALLBACK_DATA_BYTES = 64
DEFAULT_CALLBACK_QUERY_TIMEOUT = 15.0
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024
DEFAULT_FORUM_ICON_COLOR = 7322096

PHOTO_SIZES: tuple[tuple[int, int], ...] = ((90, 68), (320, 240), (800, 600), (1280, 960))

JsonDict = dict[str, Any]

_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)
_QUERY_TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"
_BUTTON_ACTIONS = (
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)
_MEDIA_KINDS = ("photo", "video", "animation", "document", "audio", "voice")
_CONTENT_KINDS = (
    "text",
    *_MEDIA_KINDS,
    "sticker",
    "venue",
    "location",
    "contact",
)
_COPYABLE_KEYS = (
    "text",
    "entities",
    "caption",
    "caption_entities",
    *_MEDIA_KINDS,
    "venue",
    "location",
    "contact",
)
# LocalTelegram's attributes a restarted console takes back (`snapshot` / `restore`).
_KEPT_ON_RESTART = (
    "_chats",
    "_messages",
    "_last_message_id",
    "_reply_keyboards",
    "_one_time_chats",
    "_files",
    "_files_by_path",
    "_photo_sets",
    "_users",
    "forum_topics",
    "chat_members",
)


class LocalTelegramError(RuntimeError):
    """The double was asked for something it does not implement (a method, a URL, ...)."""


class Fault(StrEnum):
    """Failures that ``LocalTelegram.fail_next`` can inject."""

    RETRY_AFTER = "retry_after"  # -> aiogram.exceptions.TelegramRetryAfter
    FORBIDDEN = "forbidden"  # -> aiogram.exceptions.TelegramForbiddenError
    SERVER_ERROR = "server_error"  # -> aiogram.exceptions.TelegramServerError
    NETWORK_ERROR = "network_error"  # -> aiogram.exceptions.TelegramNetworkError


class EventKind(StrEnum):
    SENT = "sent"
    EDITED = "edited"
    DELETED = "deleted"
    CALLBACK_ANSWERED = "callback_answered"


# --------------------------------------------------------------------------------------------
# HTML formatting (Telegram's "HTML" parse mode)
# --------------------------------------------------------------------------------------------


class HtmlParseError(ValueError):
    """Text is not valid Telegram HTML (Telegram answers "can't parse entities")."""


_SIMPLE_TAGS: dict[str, str] = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
}
_HTML_TAGS = frozenset(
    {*_SIMPLE_TAGS, "a", "span", "code", "pre", "blockquote", "tg-emoji"},
)
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
# tdlib's is_space: the terminating NUL counts as a space, which ends every scan at the end.
_SPACES = frozenset(" \t\r\n\v\0")
_MAX_CODE_POINT = 0x10FFFF
_URL_HOST = re.compile(r"^[0-9a-z._~%-]+(:\d{1,5})?$", re.IGNORECASE)
_NAMED_REFERENCE = re.compile(r"&[A-Za-z][A-Za-z0-9]*;")
_USER_LINK = re.compile(r"^tg://user\?id=(\d{1,18})$", re.IGNORECASE)


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram entity offsets and limits."""
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(text: str, index: int) -> int:
    """tdlib reports positions as UTF-8 byte offsets."""
    return len(text[:index].encode("utf-8", "surrogatepass"))


def _decode_entity(text: str, pos: int) -> tuple[str, int] | None:
    """The character an HTML entity at ``text[pos] == "&"`` stands for, and the index after it.

    Only complete references are entities here: ``&lt; &gt; &amp; &quot;``, ``&#NNN;`` and
    ``&#xHH;`` with the semicolon (the Bot API documentation lists exactly these; tdlib's
    parser also takes them without the semicolon, which the documentation does not promise).
    """
    end = text.find(";", pos + 1, pos + 12)
    if end < 0:
        return None
    body = text[pos + 1 : end]
    if body.startswith(("#x", "#X")):
        digits, base = body[2:], 16
        valid = bool(digits) and all(c in "0123456789abcdefABCDEF" for c in digits)
    elif body.startswith("#"):
        digits, base = body[1:], 10
        valid = digits.isascii() and digits.isdigit()
    else:
        char = _NAMED_ENTITIES.get(body)
        return None if char is None else (char, end + 1)
    if not valid:
        return None
    code = int(digits, base)
    if code == 0 or code > _MAX_CODE_POINT or 0xD800 <= code <= 0xDFFF:
        return None
    return chr(code), end + 1


def _checked_url(url: str) -> str | None:
    """The link an ``<a href>`` makes, or ``None`` where tdlib drops the link silently
    (the text stays, without an entity): http(s), tg:// and ton:// links and bare host names
    with a dot (tdlib treats those as http) are links; anything else is not."""
    url = url.strip()
    if not url or any(c in _SPACES or ord(c) < 0x20 for c in url):
        return None
    scheme, sep, rest = url.partition("://")
    if sep and scheme.lower() in ("tg", "ton"):
        return url if rest else None
    if sep and scheme.lower() not in ("http", "https"):
        return None
    host = (rest if sep else url).split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    host = host.rsplit("@", 1)[-1]
    if not _URL_HOST.match(host) or "." not in host.split(":", 1)[0].strip("."):
        return None
    return url


@dataclass
class _OpenTag:
    tag: str
    argument: str
    offset: int
    """UTF-16 offset of the tag's content in the plain text."""
    text_index: int
    """Index of the tag's content in the plain text (for ``<a>`` without href)."""


class _HtmlParser:
    """Telegram's HTML parse mode, as tdlib's parser reads it, with the Bot API documentation's
    stricter rule for bare characters: every ``<``, ``>`` and ``&`` that is not part of a tag
    or of an entity is refused (tdlib passes a bare ``>`` or ``&`` through, but the
    documentation says they must be escaped, and the bot must not rely on the leniency)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.i = 0
        self.parts: list[str] = []
        self.plain_length = 0
        self.utf16 = 0
        self.stack: list[_OpenTag] = []
        self.entities: list[JsonDict] = []

    def at(self, index: int) -> str:
        return self.source[index] if index < len(self.source) else "\0"

    def error(self, message: str, index: int) -> HtmlParseError:
        return HtmlParseError(f"{message} at byte offset {_byte_offset(self.source, index)}")

    def emit(self, text: str) -> None:
        self.parts.append(text)
        self.plain_length += len(text)
        self.utf16 += utf16_len(text)

    def parse(self) -> tuple[str, list[JsonDict]]:
        source = self.source
        while self.i < len(source):
            char = source[self.i]
            if char == "&":
                decoded = _decode_entity(source, self.i)
                if decoded is None:
                    named = _NAMED_REFERENCE.match(source, self.i)
                    if named:
                        raise self.error(f'Unsupported HTML entity "{named.group()}"', self.i)
                    raise self.error('Character "&" must be escaped as "&amp;"', self.i)
                self.emit(decoded[0])
                self.i = decoded[1]
            elif char == ">":
                raise self.error('Character ">" must be escaped as "&gt;"', self.i)
            elif char == "<":
                if self.at(self.i + 1) == "/":
                    self.end_tag()
                else:
                    self.start_tag()
            else:
                start = self.i
                while self.i < len(source) and source[self.i] not in "&<>":
                    self.i += 1
                self.emit(source[start : self.i])
        if self.stack:
            raise HtmlParseError(
                f'Can\'t find end tag corresponding to start tag "{self.stack[-1].tag}"'
            )
        plain = "".join(self.parts)
        try:
            plain.encode("utf-8")
        except UnicodeEncodeError as error:
            raise HtmlParseError("Text contains invalid Unicode characters") from error
        for entity in self.entities:
            if entity["type"] == "code":
                entity.pop("language", None)  # a language belongs to pre entities only
        entities = sorted(self.entities, key=lambda item: (item["offset"], -item["length"]))
        return plain, entities

    def start_tag(self) -> None:
        begin = self.i
        i = begin + 1
        while self.at(i) not in _SPACES and self.at(i) != ">":
            i += 1
        if i >= len(self.source):
            raise self.error("Unclosed start tag", begin)
        tag = self.source[begin + 1 : i].lower()
        if tag not in _HTML_TAGS:
            raise self.error(f'Unsupported start tag "{tag}"', begin)
        argument = ""
        while self.at(i) != ">":
            while i < len(self.source) and self.at(i) in _SPACES:
                i += 1
            if i >= len(self.source):
                raise self.error("Unclosed start tag", begin)
            if self.at(i) == ">":
                break
            name_begin = i
            while self.at(i) not in _SPACES and self.at(i) not in "=>":
                i += 1
            name = self.source[name_begin:i]
            if not name:
                raise self.error(f'Empty attribute name in the tag "{tag}"', begin)
            while i < len(self.source) and self.at(i) in _SPACES:
                i += 1
            if self.at(i) != "=":
                # The Bot API documents <blockquote expandable>: the one valueless attribute.
                if tag == "blockquote" and name == "expandable" and self.at(i) != "\0":
                    argument = "1"
                    continue
                raise self.error(
                    f'Expected equal sign in declaration of an attribute of the tag "{tag}"',
                    begin,
                )
            i += 1
            while i < len(self.source) and self.at(i) in _SPACES:
                i += 1
            if i >= len(self.source):
                raise self.error(f'Unclosed start tag "{tag}"', begin)
            value, i = self.attribute_value(i, begin)
            # tdlib keeps the attributes it knows and ignores every other one.
            if tag == "a" and name == "href":
                argument = value
            elif tag == "code" and name == "class" and value.startswith("language-"):
                argument = value.removeprefix("language-")
            elif tag == "span" and name == "class" and value.startswith("tg-"):
                argument = value.removeprefix("tg-")
            elif tag == "tg-emoji" and name == "emoji-id":
                argument = value
            elif tag == "blockquote" and name == "expandable":
                argument = "1"
        if tag == "span" and argument != "spoiler":
            raise self.error('Tag "span" must have class "tg-spoiler"', begin)
        if tag == "a" and any(opened.tag == "a" for opened in self.stack):
            raise self.error('Tag "a" can\'t be nested in another "a"', begin)
        self.stack.append(_OpenTag(tag, argument, self.utf16, self.plain_length))
        self.i = i + 1

    def attribute_value(self, i: int, begin: int) -> tuple[str, int]:
        quote = self.at(i)
        if quote not in "'\"":
            # An unquoted value is a name token: letters, digits, periods and hyphens.
            token_begin = i
            while self.at(i).isascii() and (self.at(i).isalnum() or self.at(i) in ".-"):
                i += 1
            if self.at(i) not in _SPACES and self.at(i) != ">":
                raise self.error("Unexpected end of name token", token_begin)
            return self.source[token_begin:i].lower(), i
        i += 1
        value: list[str] = []
        while i < len(self.source) and self.source[i] != quote:
            if self.source[i] == "&":
                decoded = _decode_entity(self.source, i)
                if decoded is not None:
                    value.append(decoded[0])
                    i = decoded[1]
                    continue
            value.append(self.source[i])
            i += 1
        if i >= len(self.source) or i + 1 >= len(self.source):
            raise self.error("Unclosed start tag", begin)
        return "".join(value), i + 1

    def end_tag(self) -> None:
        begin = self.i
        if not self.stack:
            raise self.error("Unexpected end tag", begin)
        i = begin + 2
        while self.at(i) not in _SPACES and self.at(i) != ">":
            i += 1
        name = self.source[begin + 2 : i]
        while i < len(self.source) and self.at(i) in _SPACES:
            i += 1
        if self.at(i) != ">":
            raise self.error("Unclosed end tag", begin)
        opened = self.stack[-1]
        if name and name != opened.tag:
            offset = _byte_offset(self.source, begin)
            raise HtmlParseError(
                f"Unmatched end tag at byte offset {offset}, "
                f'expected "</{opened.tag}>", found "</{name}>"'
            )
        self.stack.pop()
        self.i = i + 1
        if self.utf16 > opened.offset:
            self.close(opened)

    def close(self, opened: _OpenTag) -> None:
        length = self.utf16 - opened.offset
        entity: JsonDict
        tag = opened.tag
        if tag in _SIMPLE_TAGS:
            entity = {"type": _SIMPLE_TAGS[tag]}
        elif tag == "span":
            entity = {"type": "spoiler"}
        elif tag == "a":
            url = opened.argument or "".join(self.parts)[opened.text_index :]
            user = _USER_LINK.match(url)
            if user:
                member = {"id": int(user.group(1)), "is_bot": False, "first_name": ""}
                entity = {"type": "text_mention", "user": member}
            else:
                checked = _checked_url(url)
                if checked is None:
                    return  # tdlib keeps the text and drops a link that is not a URL
                entity = {"type": "text_link", "url": checked}
        elif tag == "blockquote":
            entity = {"type": "expandable_blockquote" if opened.argument else "blockquote"}
        elif tag == "tg-emoji":
            if not opened.argument.isascii() or not opened.argument.isdigit():
                raise HtmlParseError("Invalid custom emoji identifier specified")
            entity = {"type": "custom_emoji", "custom_emoji_id": opened.argument}
        elif tag == "pre":
            # <pre><code class="language-…">…</code></pre> is one pre entity with a language;
            # a plain <code> spanning the whole <pre> is dropped (Telegram shows just pre).
            entity = {"type": "pre"}
            inner = self._same_span(opened.offset, length, "code")
            if inner is not None:
                self.entities.remove(inner)
                if inner.get("language"):
                    entity["language"] = inner["language"]
        else:  # code
            outer = self._same_span(opened.offset, length, "pre")
            if outer is not None:  # <code class="language-…"><pre>…</pre></code>
                if opened.argument:
                    outer["language"] = opened.argument
                return
            entity = {"type": "code"}
            if opened.argument:
                entity["language"] = opened.argument  # removed again unless a pre takes it
        self.entities.append({**entity, "offset": opened.offset, "length": length})

    def _same_span(self, offset: int, length: int, kind: str) -> JsonDict | None:
        for entity in reversed(self.entities):
            if entity["type"] == kind and (entity["offset"], entity["length"]) == (offset, length):
                return entity
        return None


def parse_html(text: str) -> tuple[str, list[JsonDict]]:
    """Split Telegram HTML into the plain text and its entities (as Bot API JSON dicts).

    Follows Telegram's HTML parse mode as tdlib's parser implements it (tags, attributes,
    entities, error messages with byte offsets) and the Bot API documentation where it is
    stricter (bare ``<``, ``>`` and ``&`` are refused; only ``&lt; &gt; &amp; &quot;`` and
    numeric references are entities). Raises ``HtmlParseError`` where the text is refused.
    """
    return _HtmlParser(text).parse()


def strip_html(text: str) -> str:
    """The text as a resident sees it: tags removed, HTML entities unescaped."""
    try:
        return parse_html(text)[0]
    except HtmlParseError:
        return unescape(re.sub(r"<[^>]*>", "", text))


# --------------------------------------------------------------------------------------------
# Read-only views
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InlineButton:
    """One inline keyboard button, as the resident sees it."""

    text: str
    callback_data: str | None = None
    url: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def kind(self) -> str:
        return next((key for key in _BUTTON_ACTIONS if key in self.raw), "unknown")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> InlineButton:
        return cls(
            text=str(data.get("text", "")),
            callback_data=data.get("callback_data"),
            url=data.get("url") or _login_url(data),
            raw=dict(data),
        )


def _login_url(data: Mapping[str, Any]) -> str | None:
    login = data.get("login_url")
    if isinstance(login, Mapping):
        return cast(str | None, login.get("url"))
    return None


@dataclass(frozen=True)
class ChatMessage:
    """A snapshot of one message in a chat (a bot message unless ``from_bot`` is false)."""

    chat_id: int
    message_id: int
    from_bot: bool
    content_type: str
    text: str
    """Text or caption as displayed (HTML already applied)."""
    html: str
    """Text or caption exactly as the sender passed it (HTML source for parse_mode=HTML)."""
    parse_mode: str | None
    keyboard: tuple[tuple[InlineButton, ...], ...]
    reply_keyboard: tuple[tuple[str, ...], ...] | None
    """Rows of a reply keyboard this message installed, ``()`` if it removed one."""
    payload: Mapping[str, Any] = field(compare=False, repr=False)
    """The message as Bot API JSON."""

    @property
    def buttons(self) -> list[InlineButton]:
        return [button for row in self.keyboard for button in row]

    @property
    def button_rows(self) -> list[list[str]]:
        return [[button.text for button in row] for row in self.keyboard]

    @property
    def file_id(self) -> str | None:
        media = self.payload.get(self.content_type)
        if isinstance(media, list) and media:
            return cast(str, media[-1]["file_id"])
        if isinstance(media, Mapping):
            return cast(str | None, media.get("file_id"))
        return None

    @property
    def location(self) -> tuple[float, float] | None:
        location = self.payload.get("location")
        if not isinstance(location, Mapping):
            return None
        return float(location["latitude"]), float(location["longitude"])

    @property
    def media_group_id(self) -> str | None:
        return cast(str | None, self.payload.get("media_group_id"))

    def to_message(self, bot: Bot | None = None) -> Message:
        return Message.model_validate(dict(self.payload), context={"bot": bot})


@dataclass(frozen=True)
class CallbackAnswer:
    query_id: str
    text: str | None
    show_alert: bool
    url: str | None


# Which resident action (an id of the driver's choosing) the running code answers: set by the
# conversation driver while it feeds an update, inherited by the tasks that update starts, and
# unset in the scheduler's jobs — so an Event tells an answer from a background message.
ACTION: contextvars.ContextVar[int | None] = contextvars.ContextVar("action", default=None)


@dataclass(frozen=True)
class Event:
    """A visible effect of one successful API call."""

    kind: EventKind
    chat_id: int | None
    method: TelegramMethod[Any] = field(repr=False)
    message_id: int | None = None
    message: ChatMessage | None = None
    """The message after the call (for SENT and EDITED)."""
    answer: CallbackAnswer | None = None
    markup_only: bool = False
    """An edit that only changed the inline keyboard (editMessageReplyMarkup)."""
    action: int | None = field(default_factory=ACTION.get, compare=False)
    """The resident action this answered (`ACTION` when the call was made); None: background."""


@dataclass
class StoredFile:
    file_id: str
    file_unique_id: str
    file_path: str
    data: bytes | None
    """``None`` for files known only by URL (never downloaded by the double)."""
    file_name: str | None = None
    mime_type: str | None = None
    url: str | None = None

    @property
    def size(self) -> int | None:
        return None if self.data is None else len(self.data)


# --------------------------------------------------------------------------------------------
# Internal state
# --------------------------------------------------------------------------------------------


@dataclass
class _StoredMessage:
    payload: JsonDict
    from_bot: bool
    html: str
    parse_mode: str | None
    reply_keyboard: tuple[tuple[str, ...], ...] | None = None

    @property
    def chat_id(self) -> int:
        return cast(int, self.payload["chat"]["id"])

    @property
    def message_id(self) -> int:
        return cast(int, self.payload["message_id"])

    def copyable_content(self) -> JsonDict:
        return {
            key: copy.deepcopy(value)
            for key, value in self.payload.items()
            if key in _COPYABLE_KEYS
        }

    def has_inline_buttons(self) -> bool:
        keyboard = (self.payload.get("reply_markup") or {}).get("inline_keyboard") or []
        return any(row for row in keyboard)

    def view(self) -> ChatMessage:
        payload = copy.deepcopy(self.payload)
        keyboard = (payload.get("reply_markup") or {}).get("inline_keyboard") or []
        return ChatMessage(
            chat_id=self.chat_id,
            message_id=self.message_id,
            from_bot=self.from_bot,
            content_type=content_type_of(payload),
            text=payload.get("text") or payload.get("caption") or "",
            html=self.html,
            parse_mode=self.parse_mode,
            keyboard=tuple(tuple(InlineButton.from_json(b) for b in row) for row in keyboard),
            reply_keyboard=self.reply_keyboard,
            payload=payload,
        )


def content_type_of(payload: Mapping[str, Any]) -> str:
    return next((kind for kind in _CONTENT_KINDS if kind in payload), "unknown")


class _ApiError(Exception):
    """An error answer of the Bot API, turned into aiogram's exception by ``check_response``."""

    def __init__(self, status: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after

    def body(self) -> JsonDict:
        body: JsonDict = {"ok": False, "error_code": self.status, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def _bad_request(description: str) -> _ApiError:
    return _ApiError(400, f"Bad Request: {description}")


@dataclass(frozen=True)
class _FaultSpec:
    fault: Fault
    retry_after: int
    description: str | None


@dataclass
class _Call:
    bot: Bot
    method: TelegramMethod[Any]
    params: JsonDict
    files: dict[str, InputFile]


_Handler = Callable[[_Call], Awaitable[Any]]


# --------------------------------------------------------------------------------------------
# The session
# --------------------------------------------------------------------------------------------


class LocalTelegram(BaseSession):
    """A fake Bot API server living inside the aiogram session."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        callback_query_timeout: float = DEFAULT_CALLBACK_QUERY_TIMEOUT,
    ) -> None:
        super().__init__(api=LOCAL_API)
        self.clock = clock
        self.callback_query_timeout = callback_query_timeout
        """Seconds of ``clock`` after a press within which its query can be answered."""
        self.calls: list[TelegramMethod[Any]] = []
        """Every method the bot called, in order (failed ones included)."""
        self.events: list[Event] = []
        """Visible effects of the successful calls, in order."""
        self.bot_user: JsonDict = {
            "id": BOT_USER_ID,
            "is_bot": True,
            "first_name": BOT_FIRST_NAME,
            "username": BOT_USERNAME,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }
        self.my_commands: dict[str, list[JsonDict]] = {}
        """Commands set by setMyCommands, keyed by "<scope type>:<language code>"."""
        self.menu_buttons: dict[int | None, JsonDict | None] = {}
        self.forum_topics: dict[int, dict[int, str]] = defaultdict(dict)
        """Topics the bot created, by chat: thread id → name (deleted ones removed)."""
        self.chat_members: dict[int, dict[int, str]] = defaultdict(dict)
        """Membership statuses getChatMember answers with, by chat and user ("left" if unset)."""
        self._chats: dict[int, JsonDict] = {}
        self._messages: dict[int, dict[int, _StoredMessage]] = defaultdict(dict)
        self._last_message_id: dict[int, int] = defaultdict(int)
        self._reply_keyboards: dict[int, tuple[tuple[str, ...], ...]] = {}
        self._one_time_chats: set[int] = set()
        self._files: dict[str, StoredFile] = {}
        self._files_by_path: dict[str, StoredFile] = {}
        self._photo_sets: dict[str, list[JsonDict]] = {}
        self._file_counter = itertools.count(1)
        self._group_counter = itertools.count(1)
        self._open_queries: dict[str, float] = {}
        """Callback queries that may still be answered: query id → time of the press."""
        self._faults: dict[type[TelegramMethod[Any]], deque[_FaultSpec]] = defaultdict(deque)
        self._blocked: set[int] = set()
        self._users: dict[int, JsonDict] = {}
        self._handlers = self._build_handlers()

    # ---- setup helpers --------------------------------------------------------------------

    def register_chat(self, chat: Mapping[str, Any]) -> None:
        """Make a chat known (Bot API ``Chat`` JSON), e.g. a staff supergroup with a title."""
        self._chats[int(chat["id"])] = dict(chat)

    def register_user(self, user: Mapping[str, Any]) -> JsonDict:
        """Register a resident; their private chat (id == user id) becomes known."""
        chat = {"id": user["id"], "type": "private", "first_name": user.get("first_name", "")}
        for key in ("last_name", "username"):
            if user.get(key):
                chat[key] = user[key]
        self.register_chat(chat)
        return chat

    def chat(self, chat_id: int) -> JsonDict:
        """Bot API ``Chat`` JSON for a chat id (private for positive ids, supergroup else)."""
        if chat_id in self._chats:
            return dict(self._chats[chat_id])
        if chat_id > 0:
            return {"id": chat_id, "type": "private", "first_name": f"User {chat_id}"}
        return {"id": chat_id, "type": "supergroup", "title": f"Chat {chat_id}"}

    def snapshot(self) -> JsonDict:
        """What a restarted console keeps (sandbox/state.py pickles it): chats, messages and
        their ids, files with their bytes and the counters, so a file id kept in a report
        draft still downloads its photo and a new message or file never reuses an old id.
        Calls, events, faults and open callback queries are this process's only."""
        state: JsonDict = {name: getattr(self, name) for name in _KEPT_ON_RESTART}
        for name in ("_file_counter", "_group_counter"):
            number = next(getattr(self, name))
            setattr(self, name, itertools.count(number))  # peeked, not consumed
            state[name] = number
        return state

    def restore(self, state: Mapping[str, Any]) -> None:
        """Take back a `snapshot()` (before the bot's first call)."""
        for name in _KEPT_ON_RESTART:
            setattr(self, name, state[name])
        for name in ("_file_counter", "_group_counter"):
            setattr(self, name, itertools.count(int(state[name])))

    def register_file(
        self,
        data: bytes | None,
        *,
        kind: str = "document",
        file_name: str | None = None,
        mime_type: str | None = None,
        url: str | None = None,
    ) -> StoredFile:
        """Keep a file so that getFile + ``bot.download`` can fetch it."""
        number = next(self._file_counter)
        extension = _extension(file_name, mime_type, kind)
        stored = StoredFile(
            file_id=f"local-{kind}-{number:06d}",
            file_unique_id=f"u{kind[:3]}{number:06d}",
            file_path=f"{kind}s/file_{number}{extension}",
            data=data,
            file_name=file_name,
            mime_type=mime_type,
            url=url,
        )
        self._files[stored.file_id] = stored
        self._files_by_path[stored.file_path] = stored
        return stored

    def register_photo(
        self, data: bytes | None, *, width: int = 1280, height: int = 960, url: str | None = None
    ) -> list[JsonDict]:
        """Keep a photo and return its ``PhotoSize`` list (smallest first, as Telegram does)."""
        sizes: list[JsonDict] = []
        for box_width, box_height in PHOTO_SIZES:
            scale = min(1.0, box_width / width, box_height / height)
            if sizes and scale == 1.0 and sizes[-1]["width"] == width:
                break
            stored = self.register_file(data, kind="photo", mime_type="image/jpeg", url=url)
            size: JsonDict = {
                "file_id": stored.file_id,
                "file_unique_id": stored.file_unique_id,
                "width": max(1, round(width * scale)),
                "height": max(1, round(height * scale)),
            }
            if stored.size is not None:
                size["file_size"] = stored.size
            sizes.append(size)
        for size in sizes:
            self._photo_sets[size["file_id"]] = sizes
        return sizes

    def file(self, file_id: str) -> StoredFile | None:
        return self._files.get(file_id)

    def incoming_message(
        self, chat_id: int, sender: Mapping[str, Any], content: Mapping[str, Any]
    ) -> JsonDict:
        """Store a message the resident sends; returns it as Bot API JSON (new message_id)."""
        message_id = self._allocate_message_id(chat_id)
        payload: JsonDict = {
            "message_id": message_id,
            "from": dict(sender),
            "chat": self.chat(chat_id),
            "date": int(self.clock()),
            **copy.deepcopy(dict(content)),
        }
        html = payload.get("text") or payload.get("caption") or ""
        self._messages[chat_id][message_id] = _StoredMessage(payload, False, html, None)
        self._hide_one_time_keyboard(chat_id, payload.get("text"))
        return copy.deepcopy(payload)

    def open_callback_query(self, query_id: str) -> None:
        """Announce a callback query (a press). It can be answered once, within
        ``callback_query_timeout`` seconds of ``clock``; answering it again, later, or
        answering a query that was never announced fails like on Telegram."""
        self._open_queries[query_id] = self.clock()

    def fail_next(
        self,
        method: type[TelegramMethod[Any]],
        fault: Fault,
        *,
        times: int = 1,
        retry_after: int = 5,
        description: str | None = None,
    ) -> None:
        """Make the next ``times`` calls of ``method`` fail with ``fault`` (before any effect)."""
        spec = _FaultSpec(fault, retry_after, description)
        self._faults[method].extend([spec] * times)

    def pending_faults(self, method: type[TelegramMethod[Any]]) -> int:
        return len(self._faults[method])

    def set_member(self, chat_id: int, user: Mapping[str, Any], status: str = "member") -> None:
        """Make getChatMember answer `status` (creator, administrator, member, restricted,
        left, kicked) for this user in this chat; the user becomes known."""
        if status not in _MEMBER_STATUSES:
            raise ValueError(f"unknown chat member status {status!r}")
        self._users[int(user["id"])] = dict(user)
        self.chat_members[chat_id][int(user["id"])] = status

    def block_chat(self, chat_id: int) -> None:
        """The resident blocked the bot: every call addressed to the chat is Forbidden."""
        self._blocked.add(chat_id)

    def unblock_chat(self, chat_id: int) -> None:
        self._blocked.discard(chat_id)

    # ---- inspection -------------------------------------------------------------------------

    def messages(self, chat_id: int, *, include_incoming: bool = False) -> list[ChatMessage]:
        """Current state of the chat's messages, oldest first (bot messages only by default)."""
        stored = sorted(self._messages[chat_id].values(), key=lambda item: item.message_id)
        return [item.view() for item in stored if include_incoming or item.from_bot]

    def last_message(self, chat_id: int, *, with_keyboard: bool = False) -> ChatMessage | None:
        """The chat's latest bot message (with an inline keyboard, if asked), in its current
        state; what ``messages(chat_id)[-1]`` gives, without copying every older message."""
        for stored in sorted(
            self._messages[chat_id].values(), key=lambda item: item.message_id, reverse=True
        ):
            if stored.from_bot and (not with_keyboard or stored.has_inline_buttons()):
                return stored.view()
        return None

    def message(self, chat_id: int, message_id: int) -> ChatMessage | None:
        stored = self._messages[chat_id].get(message_id)
        return None if stored is None else stored.view()

    def reply_keyboard(self, chat_id: int) -> tuple[tuple[str, ...], ...] | None:
        """Rows of the reply keyboard currently shown in the chat, if any."""
        return self._reply_keyboards.get(chat_id)

    def calls_of(self, method: type[TelegramMethod[TelegramType]]) -> list[Any]:
        return [call for call in self.calls if isinstance(call, method)]

    # ---- BaseSession ------------------------------------------------------------------------

    async def close(self) -> None:
        """Nothing to release: the double keeps its state for inspection after the bot stops."""

    async def make_request(
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        timeout: int | None = None,  # noqa: ASYNC109 - BaseSession's signature
    ) -> TelegramType:
        self.calls.append(method)
        handler = self._handlers.get(type(method))
        if handler is None:
            raise LocalTelegramError(
                f"LocalTelegram does not implement {type(method).__name__} "
                f"({method.__api_method__}); add it to sandbox/telegram_double.py"
            )
        files: dict[str, InputFile] = {}
        params = self._wire_params(bot, method, files)
        try:
            self._raise_injected_fault(method, params)
            result = await handler(_Call(bot, method, params, files))
        except _ApiError as error:
            return self._respond(bot, method, error.status, error.body())
        return self._respond(bot, method, 200, {"ok": True, "result": result})

    async def stream_content(
        self,
        url: str,
        headers: dict[str, Any] | None = None,
        timeout: int = 30,  # noqa: ASYNC109 - BaseSession's signature
        chunk_size: int = 65536,
        raise_for_status: bool = True,
    ) -> AsyncGenerator[bytes, None]:
        stored = self._file_for_url(url)
        data = stored.data or b""
        for start in range(0, len(data), chunk_size):
            yield data[start : start + chunk_size]

    # ---- plumbing ---------------------------------------------------------------------------

    def _wire_params(
        self, bot: Bot, method: TelegramMethod[Any], files: dict[str, InputFile]
    ) -> JsonDict:
        """The parameters as they would travel: defaults resolved, files as ``attach://``,
        then through JSON (str enums become plain strings, as on the wire)."""
        params: JsonDict = {}
        for key, value in method.model_dump(warnings=False).items():
            prepared = self.prepare_value(value, bot=bot, files=files, _dumps_json=False)
            if prepared is not None:
                params[key] = prepared
        return cast(JsonDict, self.json_loads(self.json_dumps(params)))

    def _respond(
        self, bot: Bot, method: TelegramMethod[TelegramType], status: int, body: JsonDict
    ) -> TelegramType:
        response = self.check_response(
            bot=bot, method=method, status_code=status, content=self.json_dumps(body)
        )
        return cast(TelegramType, response.result)

    def _raise_injected_fault(self, method: TelegramMethod[Any], params: JsonDict) -> None:
        queue = self._faults.get(type(method))
        if queue:
            spec = queue.popleft()
            if spec.fault is Fault.NETWORK_ERROR:
                raise TelegramNetworkError(
                    method=method, message=spec.description or "ClientConnectorError: injected"
                )
            raise _fault_error(spec)
        chat_id = params.get("chat_id")
        if isinstance(chat_id, int) and chat_id in self._blocked:
            raise _ApiError(403, "Forbidden: bot was blocked by the user")

    def _file_for_url(self, url: str) -> StoredFile:
        if not url.startswith(_FILE_URL_PREFIX):
            raise LocalTelegramError(f"LocalTelegram has no network access: cannot fetch {url}")
        _token, _, path = url.removeprefix(_FILE_URL_PREFIX).partition("/")
        stored = self._files_by_path.get(path)
        if stored is None or stored.data is None:
            raise LocalTelegramError(f"LocalTelegram has no content for file path {path!r}")
        return stored

    def _allocate_message_id(self, chat_id: int) -> int:
        self._last_message_id[chat_id] += 1
        return self._last_message_id[chat_id]

    def _resolve_chat_id(self, value: Any) -> int:
        if isinstance(value, int):
            return value
        text = str(value)
        if text.lstrip("-").isdigit():
            return int(text)
        username = text.removeprefix("@").lower()
        for chat_id, chat in self._chats.items():
            if str(chat.get("username", "")).lower() == username:
                return chat_id
        raise _bad_request("chat not found")

    def _record(self, event: Event) -> None:
        self.events.append(event)

    def _build_handlers(self) -> dict[type[TelegramMethod[Any]], _Handler]:
        handlers: dict[type[TelegramMethod[Any]], _Handler] = {
            methods.GetMe: self._get_me,
            methods.SendMessage: self._send_message,
            methods.SendPhoto: self._send_media,
            methods.SendDocument: self._send_media,
            methods.SendVideo: self._send_media,
            methods.SendAnimation: self._send_media,
            methods.SendAudio: self._send_media,
            methods.SendVoice: self._send_media,
            methods.SendLocation: self._send_location,
            methods.SendVenue: self._send_venue,
            methods.SendContact: self._send_contact,
            methods.SendMediaGroup: self._send_media_group,
            methods.SendInvoice: self._send_invoice,
            methods.EditMessageText: self._edit_message_text,
            methods.EditMessageCaption: self._edit_message_caption,
            methods.EditMessageReplyMarkup: self._edit_message_reply_markup,
            methods.EditMessageMedia: self._edit_message_media,
            methods.DeleteMessage: self._delete_message,
            methods.DeleteMessages: self._delete_messages,
            methods.AnswerCallbackQuery: self._answer_callback_query,
            methods.GetFile: self._get_file,
            methods.CopyMessage: self._copy_message,
            methods.ForwardMessage: self._forward_message,
            methods.CreateForumTopic: self._create_forum_topic,
            methods.EditForumTopic: self._edit_forum_topic,
            methods.DeleteForumTopic: self._delete_forum_topic,
            methods.GetChatMember: self._get_chat_member,
            methods.SetMyCommands: self._set_my_commands,
            methods.SetChatMenuButton: self._set_chat_menu_button,
        }
        for trivial in (
            methods.SendChatAction,
            methods.DeleteWebhook,
            methods.DeleteMyCommands,
            methods.SetMyDescription,
            methods.SetMyShortDescription,
            methods.SetMyName,
            methods.AnswerPreCheckoutQuery,
        ):
            handlers[trivial] = self._ok
        return handlers

    # ---- handlers: misc ---------------------------------------------------------------------

    async def _ok(self, call: _Call) -> bool:
        return True

    async def _get_me(self, call: _Call) -> JsonDict:
        return dict(self.bot_user)

    async def _set_my_commands(self, call: _Call) -> bool:
        scope = (call.params.get("scope") or {}).get("type", "default")
        language = call.params.get("language_code") or ""
        self.my_commands[f"{scope}:{language}"] = list(call.params["commands"])
        return True

    async def _set_chat_menu_button(self, call: _Call) -> bool:
        self.menu_buttons[call.params.get("chat_id")] = call.params.get("menu_button")
        return True

    async def _create_forum_topic(self, call: _Call) -> JsonDict:
        chat_id = self._resolve_chat_id(call.params["chat_id"])
        _check_topic_name(call.params["name"])
        thread_id = self._allocate_message_id(chat_id)
        self.forum_topics[chat_id][thread_id] = call.params["name"]
        topic: JsonDict = {
            "message_thread_id": thread_id,
            "name": call.params["name"],
            "icon_color": call.params.get("icon_color", DEFAULT_FORUM_ICON_COLOR),
        }
        if call.params.get("icon_custom_emoji_id"):
            topic["icon_custom_emoji_id"] = call.params["icon_custom_emoji_id"]
        return topic

    def _topic(self, params: JsonDict) -> tuple[int, int]:
        chat_id = self._resolve_chat_id(params["chat_id"])
        thread_id = int(params["message_thread_id"])
        if thread_id not in self.forum_topics.get(chat_id, {}):
            raise _bad_request("message thread not found")
        return chat_id, thread_id

    async def _edit_forum_topic(self, call: _Call) -> bool:
        chat_id, thread_id = self._topic(call.params)
        name = call.params.get("name")
        if name is not None:
            _check_topic_name(name)
            if name == self.forum_topics[chat_id][thread_id]:
                raise _bad_request("TOPIC_NOT_MODIFIED")
            self.forum_topics[chat_id][thread_id] = name
        return True

    async def _delete_forum_topic(self, call: _Call) -> bool:
        """The topic and every message in it are gone (as when staff delete a topic)."""
        chat_id, thread_id = self._topic(call.params)
        del self.forum_topics[chat_id][thread_id]
        for message_id, stored in list(self._messages[chat_id].items()):
            if message_id == thread_id or stored.payload.get("message_thread_id") == thread_id:
                del self._messages[chat_id][message_id]
        return True

    async def _get_chat_member(self, call: _Call) -> JsonDict:
        chat_id = self._resolve_chat_id(call.params["chat_id"])
        user_id = int(call.params["user_id"])
        user = self._users.get(user_id) or {
            "id": user_id,
            "is_bot": False,
            "first_name": f"User {user_id}",
        }
        status = self.chat_members.get(chat_id, {}).get(user_id, "left")
        return _chat_member(status, user)

    async def _answer_callback_query(self, call: _Call) -> bool:
        """The Bot API documentation: a query is answered once, shortly after the press; an
        unknown, already answered or late query gets "query is too old ... or query ID is
        invalid"."""
        query_id = str(call.params["callback_query_id"])
        pressed_at = self._open_queries.get(query_id)
        if pressed_at is None or self.clock() - pressed_at > self.callback_query_timeout:
            raise _bad_request(_QUERY_TOO_OLD.removeprefix("Bad Request: "))
        del self._open_queries[query_id]
        answer = CallbackAnswer(
            query_id=query_id,
            text=call.params.get("text"),
            show_alert=bool(call.params.get("show_alert")),
            url=call.params.get("url"),
        )
        self._record(Event(EventKind.CALLBACK_ANSWERED, None, call.method, answer=answer))
        return True

    async def _get_file(self, call: _Call) -> JsonDict:
        stored = self._files.get(str(call.params["file_id"]))
        if stored is None:
            raise _bad_request("invalid file_id")
        if stored.size is not None and stored.size > MAX_DOWNLOAD_BYTES:
            raise _bad_request("file is too big")
        result: JsonDict = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_path": stored.file_path,
        }
        if stored.size is not None:
            result["file_size"] = stored.size
        return result

    # ---- handlers: sending ------------------------------------------------------------------

    async def _send_message(self, call: _Call) -> JsonDict:
        params = call.params
        content = _formatted(
            params["text"], params.get("parse_mode"), params.get("entities"), caption=False
        )
        stored = self._store_bot_message(call, content, html=params["text"])
        return stored.payload

    async def _send_media(self, call: _Call) -> JsonDict:
        kind = next(kind for kind in _MEDIA_KINDS if kind in call.params)
        content = await self._media_content(call, kind, call.params[kind], call.params)
        content.update(self._caption(call.params))
        stored = self._store_bot_message(call, content, html=call.params.get("caption") or "")
        return stored.payload

    async def _send_location(self, call: _Call) -> JsonDict:
        content = {"location": _location(call.params)}
        return self._store_bot_message(call, content, html="").payload

    async def _send_invoice(self, call: _Call) -> JsonDict:
        """The invoice as the resident sees it; its payload stays in `calls`, as in Telegram."""
        params = call.params
        total = sum(int(price["amount"]) for price in params["prices"])
        invoice = {
            "title": params["title"],
            "description": params["description"],
            "start_parameter": params.get("start_parameter") or "",
            "currency": params["currency"],
            "total_amount": total,
        }
        return self._store_bot_message(call, {"invoice": invoice}, html="").payload

    async def _send_venue(self, call: _Call) -> JsonDict:
        params = call.params
        location = _location(params)
        venue = {"location": location, "title": params["title"], "address": params["address"]}
        content = {"venue": venue, "location": dict(location)}
        return self._store_bot_message(call, content, html="").payload

    async def _send_contact(self, call: _Call) -> JsonDict:
        keys = ("phone_number", "first_name", "last_name", "vcard")
        contact = {key: call.params[key] for key in keys if key in call.params}
        return self._store_bot_message(call, {"contact": contact}, html="").payload

    async def _send_media_group(self, call: _Call) -> list[JsonDict]:
        items = call.params["media"]
        if not 2 <= len(items) <= 10:
            raise _bad_request("wrong number of messages in the media group")
        group_id = f"local-group-{next(self._group_counter)}"
        sent = []
        for item in items:
            kind = str(item["type"])
            content = await self._media_content(call, kind, item["media"], item)
            content.update(self._caption(item))
            content["media_group_id"] = group_id
            stored = self._store_bot_message(call, content, html=item.get("caption") or "")
            sent.append(stored.payload)
        return sent

    async def _copy_message(self, call: _Call) -> JsonDict:
        source = self._source_message(call.params, "message to copy not found")
        content = source.copyable_content()
        html = source.html
        if "caption" in call.params and "text" not in content:
            content.pop("caption_entities", None)
            content.pop("caption", None)
            content.update(self._caption(call.params))
            html = call.params.get("caption") or ""
        stored = self._store_bot_message(call, content, html=html)
        return {"message_id": stored.message_id}

    async def _forward_message(self, call: _Call) -> JsonDict:
        source = self._source_message(call.params, "message to forward not found")
        content = source.copyable_content()
        origin_date = source.payload["date"]
        if source.payload.get("from"):
            origin = {"type": "user", "sender_user": source.payload["from"], "date": origin_date}
        else:
            origin = {"type": "chat", "sender_chat": source.payload["chat"], "date": origin_date}
        content["forward_origin"] = origin
        return self._store_bot_message(call, content, html=source.html).payload

    def _source_message(self, params: JsonDict, missing: str) -> _StoredMessage:
        from_chat_id = self._resolve_chat_id(params["from_chat_id"])
        source = self._messages[from_chat_id].get(int(params["message_id"]))
        if source is None:
            raise _bad_request(missing)
        return source

    def _store_bot_message(self, call: _Call, content: JsonDict, *, html: str) -> _StoredMessage:
        params = call.params
        chat_id = self._resolve_chat_id(params["chat_id"])
        thread_id = params.get("message_thread_id")
        if (
            thread_id
            and chat_id in self.forum_topics
            and thread_id not in self.forum_topics[chat_id]
        ):
            raise _bad_request("message thread not found")
        inline, reply_keyboard = self._split_markup(chat_id, params.get("reply_markup"))
        payload: JsonDict = {
            "message_id": self._allocate_message_id(chat_id),
            "from": dict(self.bot_user),
            "chat": self.chat(chat_id),
            "date": int(self.clock()),
            **{key: value for key, value in content.items() if value is not None},
        }
        if params.get("message_thread_id"):
            payload["message_thread_id"] = params["message_thread_id"]
            payload["is_topic_message"] = True
        if params.get("protect_content"):
            payload["has_protected_content"] = True
        if inline is not None:
            payload["reply_markup"] = inline
        parse_mode = params.get("parse_mode")
        stored = _StoredMessage(payload, True, html, parse_mode, reply_keyboard)
        self._messages[chat_id][stored.message_id] = stored
        self._record(Event(EventKind.SENT, chat_id, call.method, stored.message_id, stored.view()))
        return stored

    def _split_markup(
        self, chat_id: int, markup: JsonDict | None
    ) -> tuple[JsonDict | None, tuple[tuple[str, ...], ...] | None]:
        """Inline keyboards stay on the message; reply keyboards change the chat's keyboard."""
        if not markup:
            return None, None
        if "inline_keyboard" in markup:
            return _validated_inline_markup(markup), None
        if "keyboard" in markup:
            rows = tuple(tuple(_reply_button_text(b) for b in row) for row in markup["keyboard"])
            self._reply_keyboards[chat_id] = rows
            if markup.get("one_time_keyboard"):
                self._one_time_chats.add(chat_id)
            return None, rows
        if markup.get("remove_keyboard"):
            self._reply_keyboards.pop(chat_id, None)
            return None, ()
        return None, None

    def _hide_one_time_keyboard(self, chat_id: int, text: str | None) -> None:
        rows = self._reply_keyboards.get(chat_id)
        if rows and chat_id in self._one_time_chats and any(text in row for row in rows):
            self._reply_keyboards.pop(chat_id, None)
            self._one_time_chats.discard(chat_id)

    def _caption(self, params: Mapping[str, Any]) -> JsonDict:
        caption = params.get("caption")
        if not caption:
            return {}
        return _formatted(
            caption, params.get("parse_mode"), params.get("caption_entities"), caption=True
        )

    async def _media_content(
        self, call: _Call, kind: str, source: Any, options: Mapping[str, Any]
    ) -> JsonDict:
        if kind not in _MEDIA_KINDS:
            raise LocalTelegramError(f"LocalTelegram does not support {kind!r} media")
        if kind == "photo":
            return {"photo": await self._photo_sizes(call, source)}
        stored = await self._input_file(call, source, kind)
        media: JsonDict = {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id}
        if stored.size is not None:
            media["file_size"] = stored.size
        if stored.file_name:
            media["file_name"] = stored.file_name
        if stored.mime_type:
            media["mime_type"] = stored.mime_type
        if kind in ("video", "animation"):
            media["width"] = options.get("width") or 1280
            media["height"] = options.get("height") or 720
        if kind in ("video", "animation", "audio", "voice"):
            media["duration"] = options.get("duration") or 1
        if kind == "voice":
            media.pop("file_name", None)
        return {kind: media}

    async def _photo_sizes(self, call: _Call, source: Any) -> list[JsonDict]:
        if isinstance(source, str) and source in self._photo_sets:
            return copy.deepcopy(self._photo_sets[source])
        if isinstance(source, str) and source in self._files:
            stored = self._files[source]
            return self.register_photo(stored.data, url=stored.url)
        stored = await self._input_file(call, source, "photo")
        self._forget(stored)
        return self.register_photo(stored.data, url=stored.url)

    def _forget(self, stored: StoredFile) -> None:
        self._files.pop(stored.file_id, None)
        self._files_by_path.pop(stored.file_path, None)

    async def _input_file(self, call: _Call, source: Any, kind: str) -> StoredFile:
        """Resolve an uploaded file, a known file_id or a URL to a stored file."""
        text = str(source)
        if text.startswith("attach://"):
            upload = call.files[text.removeprefix("attach://")]
            name = upload.filename
            mime_type = mimetypes.guess_type(name)[0] if name else None
            if isinstance(upload, URLInputFile):
                return self.register_file(
                    None, kind=kind, file_name=name, mime_type=mime_type, url=upload.url
                )
            data = b"".join([chunk async for chunk in upload.read(call.bot)])
            return self.register_file(data, kind=kind, file_name=name, mime_type=mime_type)
        if text in self._files:
            return self._files[text]
        if text.startswith(("http://", "https://")):
            name = text.rsplit("/", 1)[-1] or None
            return self.register_file(None, kind=kind, file_name=name, url=text)
        raise _bad_request("wrong file identifier/HTTP URL specified")

    # ---- handlers: editing and deleting -----------------------------------------------------

    def _editable(self, params: JsonDict) -> _StoredMessage:
        if params.get("inline_message_id"):
            raise LocalTelegramError("LocalTelegram does not support inline messages")
        if "chat_id" not in params or "message_id" not in params:
            raise _bad_request("message identifier is not specified")
        chat_id = self._resolve_chat_id(params["chat_id"])
        stored = self._messages[chat_id].get(int(params["message_id"]))
        if stored is None:
            raise _bad_request("message to edit not found")
        if not stored.from_bot:
            raise _bad_request("message can't be edited")
        return stored

    def _apply_edit(
        self,
        call: _Call,
        stored: _StoredMessage,
        content: JsonDict,
        *,
        html: str | None,
        markup_only: bool = False,
    ) -> JsonDict:
        inline = call.params.get("reply_markup")
        new_markup = _validated_inline_markup(inline) if inline else None
        payload = stored.payload
        removed = _TEXT_KEYS if not markup_only else ()
        unchanged = all(payload.get(key) == content.get(key) for key in (*removed, *content))
        if unchanged and payload.get("reply_markup") == new_markup:
            raise _bad_request(_NOT_MODIFIED.removeprefix("Bad Request: "))
        for key in removed:
            payload.pop(key, None)
        payload.update(content)
        payload.pop("reply_markup", None)
        if new_markup is not None:
            payload["reply_markup"] = new_markup
        payload["edit_date"] = int(self.clock())
        if html is not None:
            stored.html = html
            stored.parse_mode = call.params.get("parse_mode")
        self._record(
            Event(
                EventKind.EDITED,
                stored.chat_id,
                call.method,
                stored.message_id,
                stored.view(),
                markup_only=markup_only,
            )
        )
        return payload

    async def _edit_message_text(self, call: _Call) -> JsonDict:
        stored = self._editable(call.params)
        if "text" not in stored.payload:
            raise _bad_request("there is no text in the message to edit")
        text = call.params.get("text")
        if not text:
            raise _bad_request("message text is empty")
        content = _formatted(
            text, call.params.get("parse_mode"), call.params.get("entities"), caption=False
        )
        return self._apply_edit(call, stored, content, html=text)

    async def _edit_message_caption(self, call: _Call) -> JsonDict:
        stored = self._editable(call.params)
        if not any(kind in stored.payload for kind in _MEDIA_KINDS):
            raise _bad_request("there is no caption in the message to edit")
        media = {kind: stored.payload[kind] for kind in _MEDIA_KINDS if kind in stored.payload}
        content = {**media, **self._caption(call.params)}
        return self._apply_edit(call, stored, content, html=call.params.get("caption") or "")

    async def _edit_message_reply_markup(self, call: _Call) -> JsonDict:
        stored = self._editable(call.params)
        return self._apply_edit(call, stored, {}, html=None, markup_only=True)

    async def _edit_message_media(self, call: _Call) -> JsonDict:
        stored = self._editable(call.params)
        item = call.params["media"]
        content = await self._media_content(call, str(item["type"]), item["media"], item)
        content.update(self._caption(item))
        return self._apply_edit(call, stored, content, html=item.get("caption") or "")

    async def _delete_message(self, call: _Call) -> bool:
        chat_id = self._resolve_chat_id(call.params["chat_id"])
        if not self._delete(call, chat_id, int(call.params["message_id"])):
            raise _bad_request("message to delete not found")
        return True

    async def _delete_messages(self, call: _Call) -> bool:
        chat_id = self._resolve_chat_id(call.params["chat_id"])
        for message_id in call.params["message_ids"]:
            self._delete(call, chat_id, int(message_id))
        return True

    def _delete(self, call: _Call, chat_id: int, message_id: int) -> bool:
        if self._messages[chat_id].pop(message_id, None) is None:
            return False
        self._record(Event(EventKind.DELETED, chat_id, call.method, message_id))
        return True


_TEXT_KEYS = (
    "text",
    "entities",
    "caption",
    "caption_entities",
    *_MEDIA_KINDS,
)


_MEMBER_STATUSES = ("creator", "administrator", "member", "restricted", "left", "kicked")


def _chat_member(status: str, user: JsonDict) -> JsonDict:
    """Bot API ``ChatMember`` JSON of the given status. The fields that status requires are
    read from aiogram's model, so a newer Bot API's rights are filled in too: an administrator
    may do everything, a restricted member nothing."""
    from aiogram import types

    model: Any = {
        "creator": types.ChatMemberOwner,
        "administrator": types.ChatMemberAdministrator,
        "member": types.ChatMemberMember,
        "restricted": types.ChatMemberRestricted,
        "left": types.ChatMemberLeft,
        "kicked": types.ChatMemberBanned,
    }[status]
    member: JsonDict = {"status": status, "user": dict(user)}
    fixed = {"can_be_edited": False, "is_anonymous": False, "is_member": True, "until_date": 0}
    for name, info in model.model_fields.items():
        if name in member or not info.is_required():
            continue
        member[name] = fixed.get(name, status == "administrator")
    return member


def _fault_error(spec: _FaultSpec) -> _ApiError:
    if spec.fault is Fault.RETRY_AFTER:
        description = spec.description or f"Too Many Requests: retry after {spec.retry_after}"
        return _ApiError(429, description, retry_after=spec.retry_after)
    if spec.fault is Fault.FORBIDDEN:
        return _ApiError(403, spec.description or "Forbidden: bot was blocked by the user")
    return _ApiError(500, spec.description or "Internal Server Error")


def _formatted(
    text: str, parse_mode: str | None, entities: list[JsonDict] | None, *, caption: bool
) -> JsonDict:
    """Text (or caption) and its entities as Telegram stores them, with Telegram's checks."""
    if parse_mode and parse_mode.upper() == "HTML":
        try:
            plain, parsed = parse_html(text)
        except HtmlParseError as error:
            raise _bad_request(f"can't parse entities: {error}") from error
    else:
        plain, parsed = text, list(entities or [])
    limit = MAX_CAPTION_LENGTH if caption else MAX_TEXT_LENGTH
    if not caption and not plain.strip():
        raise _bad_request("message text is empty")
    if utf16_len(plain) > limit:
        raise _bad_request("message caption is too long" if caption else "message is too long")
    key = "caption" if caption else "text"
    result: JsonDict = {key: plain}
    if parsed:
        result[f"{key}_entities" if caption else "entities"] = parsed
    return result


def _validated_inline_markup(markup: JsonDict) -> JsonDict:
    rows = markup["inline_keyboard"]
    if sum(len(row) for row in rows) > MAX_INLINE_BUTTONS:
        raise _bad_request("REPLY_MARKUP_TOO_LONG")
    for row in rows:
        for button in row:
            _validate_button(button)
    return copy.deepcopy(markup)


def _validate_button(button: Mapping[str, Any]) -> None:
    """The Bot API server's checks of an inline button: it needs an action besides its text,
    a non-empty text, and callback data of 1-64 bytes."""
    if not any(key in button for key in _BUTTON_ACTIONS):
        raise _bad_request(
            "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
        )
    if not str(button.get("text") or "").strip():
        raise _bad_request("BUTTON_TEXT_INVALID")
    data = button.get("callback_data")
    if data is not None and not 1 <= len(str(data).encode()) <= MAX_CALLBACK_DATA_BYTES:
        raise _bad_request("BUTTON_DATA_INVALID")
    url = button.get("url")
    if url is not None and not str(url).startswith(("http://", "https://", "tg://")):
        raise _bad_request("BUTTON_URL_INVALID")  # Bot API: «HTTP or tg:// URL»


def _check_topic_name(name: Any) -> None:
    """Bot API createForumTopic / editForumTopic: «Topic name, 1-128 characters» (UTF-16)."""
    if not 1 <= len(str(name).encode("utf-16-le", "surrogatepass")) // 2 <= MAX_TOPIC_NAME:
        raise _bad_request("TOPIC_TITLE_EMPTY" if not name else "TOPIC_TITLE_TOO_LONG")


def _reply_button_text(button: Any) -> str:
    return str(button["text"]) if isinstance(button, Mapping) else str(button)


def _location(params: Mapping[str, Any]) -> JsonDict:
    return {"latitude": float(params["latitude"]), "longitude": float(params["longitude"])}


def _extension(file_name: str | None, mime_type: str | None, kind: str) -> str:
    if file_name and "." in file_name:
        return "." + file_name.rsplit(".", 1)[-1]
    guessed = mimetypes.guess_extension(mime_type) if mime_type else None
    return guessed or {"photo": ".jpg", "video": ".mp4", "voice": ".oga"}.get(kind, "")


def make_local_bot(
    telegram: LocalTelegram | None = None, *, parse_mode: str | None = "HTML"
) -> Bot:
    """A ``Bot`` wired to a ``LocalTelegram`` (a new one unless given), HTML by default."""
    from aiogram import Bot

    return Bot(
        token=LOCAL_BOT_TOKEN,
        session=telegram or LocalTelegram(),
        default=DefaultBotProperties(parse_mode=parse_mode),
    )


def local_telegram_of(bot: Bot) -> LocalTelegram:
    """The ``LocalTelegram`` behind a bot, or ``TypeError`` if the bot talks to real Telegram."""
    session = bot.session
    if not isinstance(session, LocalTelegram):
        raise TypeError(f"the bot's session is {type(session).__name__}, not LocalTelegram")
    return session
