"""City points («Миллион призов»): the account, what earns points right now, and how many
points a resident typed (`parse_points`).

What a resident may type as a number of points (the same rules as amounts of money,
domain/money.py, without kopecks):

- digits 0-9 only (ASCII). `str.isdigit()` and the regex class `\\d` also accept «²», «½»,
  Arabic-Indic and full-width digits; they are refused, never converted;
- a space (also the no-break, narrow no-break and thin spaces that Telegram clients and copied
  texts carry — the bot itself shows «1 500 баллов» with a no-break space) groups the digits in
  threes only: «1 500» and «1 500 000» are counts; «1500 50», «15 00» and «1 5000» are typos;
- the word «балл», «балла» or «баллов» after the number (any case);
- nothing else: no sign, fraction, exponent, hex, underscore; and not zero.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from domain.accounts import AccountLevel, Resident
from domain.errors import DomainError
from domain.meters import POINTS_BY_LEVEL, MeterKind, Window, upcoming_window
from domain.money import ASCII_DIGITS, GROUP_SPACES, has_foreign_digit
from domain.ports import CityAuth, CityCharity, UnitOfWork
from domain.sessions import ResidentSession
from domain.typed_text import visible

EPD_CASHBACK_PERCENT = 5


@dataclass(frozen=True, slots=True)
class PointsEntry:
    id: str
    amount: int
    kind: str
    reason: str
    created_at: datetime
    available_at: datetime


@dataclass(frozen=True, slots=True)
class PointsAccount:
    balance: int
    pending: tuple[PointsEntry, ...]
    entries: tuple[PointsEntry, ...]

    @property
    def pending_total(self) -> int:
        return sum(entry.amount for entry in self.pending)


@dataclass(frozen=True, slots=True)
class Transfer:
    id: str
    fund_id: str
    fund_name: str
    points: int
    balance: int  # after the transfer


class InsufficientPoints(DomainError):
    def __init__(self, balance: int) -> None:
        super().__init__(f"balance {balance}")
        self.balance = balance


MAX_POINTS_DIGITS = 12  # more is not a number of points anyone has
_MAX_TEXT = 64  # characters; a longer text is not a number of points (the regexes stay cheap)
_SPACE = f"[{GROUP_SPACES}]"
_POINTS_WORD = re.compile(rf"{_SPACE}*балл(?:ов|а)?\Z", re.IGNORECASE)
_BARE = re.compile(r"[0-9]+")
_GROUPED = re.compile(rf"[1-9][0-9]{{0,2}}(?:{_SPACE}[0-9]{{3}})+")
_SPACED = re.compile(rf"[0-9]+(?:{_SPACE}+[0-9]+)+")


class PointsProblem(StrEnum):
    """Why a text is not a number of points: handlers pick their hint by it."""

    FORMAT = "format"  # not a whole number at all («сто», «1e3», «1,5», «0x10», «1_000»)
    GROUPING = "grouping"  # spaces that do not group the digits in threes («1500 50»)
    SIGN = "sign"  # «-5», «+5»
    DIGITS = "digits"  # a digit that is not 0-9 («²», «١٢», «１２»)
    ZERO = "zero"  # «0»: nothing to transfer
    TOO_LONG = "too_long"  # more than MAX_POINTS_DIGITS digits


class PointsParseError(ValueError):
    """The text is not a number of points; `reason` says why (a PointsProblem)."""

    def __init__(self, text: str, reason: PointsProblem = PointsProblem.FORMAT) -> None:
        super().__init__(f"{reason.value}: {text[:_MAX_TEXT]!r}")
        self.text = text
        self.reason = reason


def parse_points(text: str) -> int:
    """What a resident typed → a number of points above zero (rules in the module docstring);
    raises only PointsParseError."""
    stripped = visible(text)  # pasted: direction marks, zero-width at the ends
    if len(stripped) > _MAX_TEXT:
        raise PointsParseError(text, PointsProblem.TOO_LONG)
    if has_foreign_digit(stripped):
        raise PointsParseError(text, PointsProblem.DIGITS)
    if stripped.startswith(("-", "+", "\u2212")):
        raise PointsParseError(text, PointsProblem.SIGN)
    word = _POINTS_WORD.search(stripped)
    number = stripped[: word.start()] if word else stripped
    if _BARE.fullmatch(number) is None and _GROUPED.fullmatch(number) is None:
        spaced = _SPACED.fullmatch(number) is not None
        raise PointsParseError(text, PointsProblem.GROUPING if spaced else PointsProblem.FORMAT)
    digits = "".join(ch for ch in number if ch in ASCII_DIGITS)
    if len(digits.lstrip("0")) > MAX_POINTS_DIGITS:
        raise PointsParseError(text, PointsProblem.TOO_LONG)
    points = int(digits)
    if points == 0:
        raise PointsParseError(text, PointsProblem.ZERO)
    return points


@dataclass(frozen=True, slots=True)
class MeterState:
    """What the tips need to know about one meter: its `window` is the city's (the one open
    now, else the next one), which may differ from the usual days (`domain.meters`)."""

    kind: MeterKind
    submitted_this_period: bool
    window: Window


class TipKind(StrEnum):
    READINGS_NOW = "readings_now"  # windows open, readings missing: +N points
    READINGS_LATER = "readings_later"  # nothing to send now: the next window opens on a date
    EPD_CASHBACK = "epd_cashback"


@dataclass(frozen=True, slots=True)
class EarnTip:
    kind: TipKind
    points: int = 0
    meters: int = 0
    until: date | None = None  # READINGS_NOW: the earliest closing date of the open windows
    opens_on: date | None = None  # READINGS_LATER


def how_to_earn_now(today: date, level: AccountLevel, meters: list[MeterState]) -> list[EarnTip]:
    """Tips that depend on the date and the resident: open windows with missing readings first."""
    tips: list[EarnTip] = []
    due = [m for m in meters if not m.submitted_this_period and m.window.contains(today)]
    if due:
        closing = min(m.window.closes_on for m in due)
        tips.append(
            EarnTip(
                TipKind.READINGS_NOW,
                points=POINTS_BY_LEVEL[level] * len(due),
                meters=len(due),
                until=closing,
            )
        )
    elif meters:
        # the city's next window; after one open now (already sent), the usual next one
        opens = min(
            m.window.opens_on
            if m.window.opens_on > today
            else upcoming_window(m.kind, today).opens_on
            for m in meters
        )
        tips.append(EarnTip(TipKind.READINGS_LATER, opens_on=opens))
    tips.append(EarnTip(TipKind.EPD_CASHBACK, points=EPD_CASHBACK_PERCENT))
    return tips


def epd_cashback(amount_kopecks: int) -> int:
    """Points that come back for an ЕПД payment: 5% of the rubles, rounded down."""
    return amount_kopecks // 100 * EPD_CASHBACK_PERCENT // 100


async def points_account(
    uow: UnitOfWork, auth: CityAuth, city: CityCharity, resident: Resident, limit: int = 10
) -> PointsAccount:
    return await city.points(ResidentSession(resident, auth, uow), limit)


async def transfer_points(
    uow: UnitOfWork,
    auth: CityAuth,
    city: CityCharity,
    resident: Resident,
    key: str,
    fund_id: str,
    points: int,
) -> Transfer:
    """Points to a fund. The key is made when the confirmation is shown, so pressing
    «Подтвердить» twice sends the same key and the platform debits once."""
    return await city.transfer_points(ResidentSession(resident, auth, uow), key, fund_id, points)
