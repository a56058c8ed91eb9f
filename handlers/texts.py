"""Keys for texts chosen by value (account levels, errors), small display helpers, and the
rules of Telegram's text units (`utf16_len`, `shorten`) the translator in bot/i18n.py uses."""

from __future__ import annotations

import html
import re
from datetime import date, datetime
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape

from domain.accounts import AccountLevel
from domain.autopaying import AutopayExists, AutopayTooSmall, TopupDoesNotFit, UnsuitableCard
from domain.errors import (
    CityUnavailable,
    DomainError,
    InvalidGrant,
    LinkCodeRejected,
    LinkError,
    LinkStateExpired,
    LinkStateInvalid,
    LinkStateUsed,
    LinkWrongUser,
    NotFound,
    NotLinked,
    RelinkRequired,
    ReportRefused,
)
from domain.limits import AmountTooLarge
from domain.meters import (
    NothingToCorrect,
    ReadingAlreadySubmitted,
    ReadingBelowPrevious,
    WindowClosed,
)
from domain.money import format_rub
from domain.payments import (
    AmountChanged,
    BillAlreadyPaid,
    DonationTooSmall,
    InvalidAmount,
    InvalidTopupAccount,
    PaymentRefused,
    UnknownBill,
)
from domain.points import InsufficientPoints
from domain.prizes import PriceChanged, PrizeOutOfStock
from domain.reporting import (
    AnswersMissing,
    ConfirmWindowClosed,
    DraftGone,
    ForeignReport,
    OutsideCity,
    ReportAlreadyClosed,
)
from domain.templates import (
    NoBillNow,
    NotTemplatable,
    PayeeGone,
    TemplateNotFound,
    TemplateUnreadable,
    TooManyTemplates,
)
from domain.topups import TopupRefused, UnknownTopupAccount
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


_TAG = re.compile(r"<[^>]*>")


def shown_len(text: str) -> int:
    """What Telegram counts of an HTML text against its limits: UTF-16 units of the text
    once parsed — tags gone, `&amp;` one «&» (Bot API: «after entities parsing»). Our texts'
    only `<` and `>` are their own tags: every outside value is escaped."""
    return utf16_len(html.unescape(_TAG.sub("", text)))


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

# Most specific first: the first class the error is an instance of wins. Every DomainError has
# a sentence here (tests/unit/test_error_texts.py), so an error a step did not expect is told as
# what it is — never as the bot's own failure («error-generic», kept for bugs): a step with a
# sentence of its own (with names and amounts) still catches its errors first.
ERROR_KEYS: list[tuple[type[DomainError], str]] = [
    (LinkStateInvalid, "link-error-invalid"),
    (LinkStateExpired, "link-error-expired"),
    (LinkStateUsed, "link-error-used"),
    (LinkWrongUser, "link-error-wrong-user"),
    (LinkCodeRejected, "link-error-code"),
    (LinkError, "link-error-invalid"),
    (CityUnavailable, "error-city-unavailable"),
    (RelinkRequired, "error-relink"),
    (InvalidGrant, "error-relink"),
    (TemplateNotFound, "templates-gone"),
    (ForeignReport, "error-foreign-report"),
    (NotFound, "error-not-found"),
    (NotLinked, "error-not-linked"),
    (UnknownBill, "pay-unknown-bill"),
    (BillAlreadyPaid, "pay-already-paid"),
    (PaymentRefused, "pay-refused"),
    (DonationTooSmall, "charity-too-small"),
    (InvalidAmount, "error-bad-amount"),
    (AmountTooLarge, "error-amount-too-large"),
    (AmountChanged, "error-amount-changed"),
    (InvalidTopupAccount, "error-account-unknown"),
    (UnknownTopupAccount, "error-account-unknown"),
    (TopupRefused, "error-account-unknown"),
    (AutopayExists, "error-autopay-exists"),
    (AutopayTooSmall, "error-autopay-too-small"),
    (TopupDoesNotFit, "error-topup-does-not-fit"),
    (UnsuitableCard, "error-card-unsuitable"),
    (ReadingAlreadySubmitted, "error-reading-sent"),
    (ReadingBelowPrevious, "error-reading-below"),
    (WindowClosed, "error-meters-closed"),
    (NothingToCorrect, "error-nothing-to-correct"),
    (InsufficientPoints, "error-points-insufficient"),
    (PriceChanged, "error-prize-price-changed"),
    (PrizeOutOfStock, "error-prize-sold-out"),
    (ReportRefused, "error-report-refused"),
    (AnswersMissing, "error-report-answers"),
    (DraftGone, "report-draft-gone"),  # with the number its send made: `error_text`
    (ConfirmWindowClosed, "error-report-window"),
    (OutsideCity, "error-report-outside"),
    (ReportAlreadyClosed, "error-report-closed"),
    (NoBillNow, "error-no-bill-now"),
    (PayeeGone, "error-payee-gone"),
    (TemplateUnreadable, "error-template-unreadable"),
    (NotTemplatable, "error-template-not-kept"),
    (TooManyTemplates, "error-templates-full"),
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
    if isinstance(error, DraftGone):  # the number its send made, when a send made one
        if error.number is not None:
            return tr("report-draft-sent", number=error.number)
        return tr("report-draft-gone")
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
