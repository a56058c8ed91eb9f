"""Keys for texts chosen by value (account levels, errors), small display helpers, and the
rules of Telegram's text units (`utf16_len`, `shorten`) the translator in bot/i18n.py uses."""

from __future__ import annotations

import re
from datetime import date, datetime
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape

from domain.accounts import AccountLevel
from domain.errors import (
    CityUnavailable,
    DomainError,
    LinkCodeRejected,
    LinkStateExpired,
    LinkStateInvalid,
    LinkStateUsed,
    LinkWrongUser,
    NotFound,
    NotLinked,
    RelinkRequired,
)
from domain.limits import AmountTooLarge
from domain.money import format_rub
from domain.payments import (
    BillAlreadyPaid,
    DonationTooSmall,
    InvalidAmount,
    PaymentRefused,
    UnknownBill,
)
from handlers.ports import Texts

# A bot command as Telegram marks one (the Bot API's «bot_command» entity): «/», 1–32 Latin
# letters, digits or underscores, then «@» and a bot's username, a space or the end.
COMMAND = re.compile(r"^/[A-Za-z0-9_]{1,32}(?:@(?P<bot>[A-Za-z0-9_]{1,64}))?(?:\s|$)")
MAX_VALUE = 500  # UTF-16 units of one outside value inside a message (then «…»)
ELLIPSIS = "…"


def valid_text(text: str) -> str:
    """`text` with every lone surrogate (a broken «\\ud83d» escape in a city's JSON) replaced
    by U+FFFD: Telegram refuses text that is not valid Unicode, and it cannot be encoded."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units: the unit of Telegram's limits (a lone surrogate counts
    as the one unit it is)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def shorten(text: str, limit: int = MAX_VALUE) -> str:
    """`text` cut to at most `limit` UTF-16 units, «…» included; never splits a character.
    Lone surrogates become U+FFFD (`valid_text`): what is shown must be valid Unicode."""
    text = valid_text(text)
    if utf16_len(text) <= limit:
        return text
    size, end = 0, 0
    for end, char in enumerate(text):  # noqa: B007 - `end` is used after the loop
        size += 2 if ord(char) > 0xFFFF else 1
        if size > limit - 1:
            break
    return text[:end].rstrip() + ELLIPSIS


LEVEL_KEYS: dict[AccountLevel, str] = {
    AccountLevel.SIMPLE: "level-simple",
    AccountLevel.STANDARD: "level-standard",
    AccountLevel.FULL: "level-full",
}

# Most specific first: the first class the error is an instance of wins.
ERROR_KEYS: list[tuple[type[DomainError], str]] = [
    (LinkStateInvalid, "link-error-invalid"),
    (LinkStateExpired, "link-error-expired"),
    (LinkStateUsed, "link-error-used"),
    (LinkWrongUser, "link-error-wrong-user"),
    (LinkCodeRejected, "link-error-code"),
    (CityUnavailable, "error-city-unavailable"),
    (RelinkRequired, "error-relink"),
    (NotFound, "error-not-found"),
    (NotLinked, "error-not-linked"),
    (UnknownBill, "pay-unknown-bill"),
    (BillAlreadyPaid, "pay-already-paid"),
    (PaymentRefused, "pay-refused"),
    (DonationTooSmall, "charity-too-small"),
    (InvalidAmount, "error-bad-amount"),
    (AmountTooLarge, "error-amount-too-large"),
]


def error_key(error: DomainError) -> str:
    for cls, key in ERROR_KEYS:
        if isinstance(error, cls):
            return key
    return "error-generic"


def error_text(tr: Texts, error: DomainError) -> Markup:
    """The resident's sentence for a domain error, with the values it names."""
    if isinstance(error, AmountTooLarge):
        return tr("error-amount-too-large", ceiling=format_rub(error.ceiling))
    return tr(error_key(error))


MOSCOW = ZoneInfo("Europe/Moscow")


def whole(value: str) -> Markup:
    """An outside value the resident must be able to read in full (a city's answer, a report's
    description): escaped here, so the translator does not shorten it. Only for a window whose
    text is `Paged` (or a text split into several messages)."""
    return escape(valid_text(value))


def button_int(value: str) -> int | None:
    """A number carried by a button's callback data; None for anything forged or mangled
    (ASCII digits only: «²».isdigit() is true and int("²") raises)."""
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 18 else None


def format_time(moment: datetime) -> str:
    """Moscow time of day with seconds («12:03:41»): when something was checked."""
    return moment.astimezone(MOSCOW).strftime("%H:%M:%S")


def format_date(day: date) -> str:
    return day.strftime("%d.%m.%Y")


def format_datetime(moment: datetime) -> str:
    """Shown in Moscow time, as residents read it."""
    return moment.astimezone(MOSCOW).strftime("%d.%m.%Y %H:%M")
