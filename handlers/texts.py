"""Keys for texts chosen by value (account levels, errors) and small display helpers."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

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
from domain.payments import BillAlreadyPaid, UnknownBill

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
]


def error_key(error: DomainError) -> str:
    for cls, key in ERROR_KEYS:
        if isinstance(error, cls):
            return key
    return "error-generic"


MOSCOW = ZoneInfo("Europe/Moscow")


def format_date(day: date) -> str:
    return day.strftime("%d.%m.%Y")


def format_datetime(moment: datetime) -> str:
    """Shown in Moscow time, as residents read it."""
    return moment.astimezone(MOSCOW).strftime("%d.%m.%Y %H:%M")
