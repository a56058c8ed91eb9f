"""Meter readings («Электронный дом»): submission windows, reading checks, points by level.

Windows (the city platform's rules): water from the 15th to the 3rd of the next month,
electricity from the 15th to the 26th; a reading belongs to the month in which its window
opened. Dates are Moscow dates: the caller converts.

A period has one reading; one sent by mistake is corrected while the window is open
(`correct_reading`: the platform replaces the period's value and credits no points — the
platform contract, city/openapi.yaml).

What a resident may type as a reading (`parse_reading`): ASCII digits 0-9, a comma or a dot
before at most 3 decimals (water; electricity: whole kWh), spaces only grouping thousands in
threes («12 345,5»). Nothing else: no sign, exponent («1e5»), hex, «²», Arabic-Indic or
full-width digits. The text is checked with a regular expression before any Decimal is made,
so a huge exponent such as «1e999999999» never becomes a number, and no value above the dial's
maximum (MAX_READING) goes further.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from zoneinfo import ZoneInfo

from domain.accounts import AccountLevel, Resident
from domain.errors import DomainError
from domain.money import GROUP_SPACES, has_foreign_digit
from domain.ports import CityAuth, CityCharity, UnitOfWork
from domain.sessions import ResidentSession
from domain.typed_text import visible

MOSCOW = ZoneInfo("Europe/Moscow")
OPENS_ON_DAY = 15
WATER_CLOSES_NEXT_MONTH_DAY = 3
ELECTRICITY_CLOSES_DAY = 26
POINTS_BY_LEVEL = {AccountLevel.SIMPLE: 10, AccountLevel.STANDARD: 20, AccountLevel.FULL: 20}


class MeterKind(StrEnum):
    COLD_WATER = "cold_water"
    HOT_WATER = "hot_water"
    ELECTRICITY = "electricity"

    @property
    def is_water(self) -> bool:
        return self is not MeterKind.ELECTRICITY


# The largest value a flat's meter can show, its dial full: water meters have 5 digits of m³
# and 3 of litres (99 999,999 m³), electricity meters 6 digits of kWh (999 999 kWh). A typed
# value above is a typo, never sent. The sandbox (sandbox/meters.py) refuses the same.
MAX_READING = {
    MeterKind.COLD_WATER: Decimal("99999.999"),
    MeterKind.HOT_WATER: Decimal("99999.999"),
    MeterKind.ELECTRICITY: Decimal(999_999),
}
_MAX_TEXT = 64  # characters: a longer text is not a reading, whatever it holds

_SPACE = f"[{GROUP_SPACES}]"
_READING = re.compile(rf"(?P<whole>[0-9]+(?:{_SPACE}+[0-9]+)*)(?:[.,](?P<fraction>[0-9]+))?")
_GROUPED = re.compile(rf"[1-9][0-9]{{0,2}}(?:{_SPACE}[0-9]{{3}})+")

# A month's use above this is more likely a typo than a leak: ask before sending it.
IMPLAUSIBLE_JUMP = {
    MeterKind.COLD_WATER: Decimal(30),
    MeterKind.HOT_WATER: Decimal(30),
    MeterKind.ELECTRICITY: Decimal(3000),
}


@dataclass(frozen=True, slots=True)
class Window:
    opens_on: date
    closes_on: date

    @property
    def period(self) -> str:
        return f"{self.opens_on.month:02d}.{self.opens_on.year}"

    def contains(self, day: date) -> bool:
        return self.opens_on <= day <= self.closes_on


def _month_start(day: date, shift: int = 0) -> date:
    months = day.year * 12 + day.month - 1 + shift
    return date(months // 12, months % 12 + 1, 1)


def _window_opening_in(kind: MeterKind, month: date) -> Window:
    opens = month.replace(day=OPENS_ON_DAY)
    if kind.is_water:
        closes = _month_start(month, 1).replace(day=WATER_CLOSES_NEXT_MONTH_DAY)
    else:
        closes = month.replace(day=ELECTRICITY_CLOSES_DAY)
    return Window(opens, closes)


def open_window(kind: MeterKind, day: date) -> Window | None:
    """The window open on `day`, if any."""
    for shift in (0, -1):
        window = _window_opening_in(kind, _month_start(day, shift))
        if window.contains(day):
            return window
    return None


def next_window(kind: MeterKind, day: date) -> Window:
    """The window open on `day`, else the next one to open."""
    return open_window(kind, day) or upcoming_window(kind, day)


def upcoming_window(kind: MeterKind, day: date) -> Window:
    """The next window that opens after `day` (an open one does not count)."""
    this_month = _window_opening_in(kind, _month_start(day))
    if day < this_month.opens_on:
        return this_month
    return _window_opening_in(kind, _month_start(day, 1))


class ReadingProblem(StrEnum):
    NOT_A_NUMBER = "not_a_number"  # also «1e5», «0x10», «²», «１２», «1 2345»
    NEGATIVE = "negative"
    TOO_PRECISE = "too_precise"  # water: at most 3 decimals; electricity: whole kWh
    TOO_LARGE = "too_large"  # above MAX_READING: more than the dial can show
    BELOW_PREVIOUS = "below_previous"
    IMPLAUSIBLE = "implausible"  # may still be sent once the resident confirms
    UNCHANGED = "unchanged"  # a correction to the value already sent


def decimals_allowed(kind: MeterKind) -> int:
    """Water in m³ to the litre (3 decimals); electricity in whole kWh."""
    return 3 if kind.is_water else 0


def parse_reading(kind: MeterKind, text: str) -> Decimal | ReadingProblem:
    """What the resident typed → the reading (m³ or kWh), or why it is not one (rules in the
    module docstring). Never raises; Decimal only ever sees at most 6 + 3 plain digits."""
    stripped = visible(text)  # pasted: direction marks, zero-width at the ends
    if len(stripped) > _MAX_TEXT or has_foreign_digit(stripped):
        return ReadingProblem.NOT_A_NUMBER
    if stripped.startswith(("-", "\u2212")) and _READING.fullmatch(stripped[1:].lstrip()):
        return ReadingProblem.NEGATIVE
    match = _READING.fullmatch(stripped)
    if match is None:
        return ReadingProblem.NOT_A_NUMBER
    whole, fraction = match.group("whole"), match.group("fraction") or ""
    if any(ch in GROUP_SPACES for ch in whole) and _GROUPED.fullmatch(whole) is None:
        return ReadingProblem.NOT_A_NUMBER
    digits = "".join(ch for ch in whole if ch not in GROUP_SPACES).lstrip("0") or "0"
    if len(digits) > len(str(int(MAX_READING[kind]))):
        return ReadingProblem.TOO_LARGE
    if len(fraction) > decimals_allowed(kind):
        return ReadingProblem.TOO_PRECISE
    value = Decimal(f"{digits}.{fraction}" if fraction else digits)
    if value > MAX_READING[kind]:
        return ReadingProblem.TOO_LARGE
    return value


def check_reading(kind: MeterKind, value: Decimal, last: Decimal | None) -> ReadingProblem | None:
    """BELOW_PREVIOUS refuses; IMPLAUSIBLE asks the resident to confirm; None is fine."""
    if last is None:
        return None
    if value < last:
        return ReadingProblem.BELOW_PREVIOUS
    if value - last > IMPLAUSIBLE_JUMP[kind]:
        return ReadingProblem.IMPLAUSIBLE
    return None


def format_reading(kind: MeterKind, value: Decimal) -> str:
    """'123.456' (m³, always 3 decimals) or '15234' (kWh): as the platform takes it."""
    return f"{value:.3f}" if kind.is_water else f"{value:.0f}"


@dataclass(frozen=True, slots=True)
class LastReading:
    value: Decimal
    period: str
    submitted_at: datetime


@dataclass(frozen=True, slots=True)
class Meter:
    id: str
    kind: MeterKind
    serial: str
    unit: str
    last_reading: LastReading | None
    current_period: str
    submitted_this_period: bool
    window: Window


@dataclass(frozen=True, slots=True)
class SubmittedReading:
    value: Decimal
    period: str
    points_credited: int


class WindowClosed(DomainError):
    def __init__(self, opens_on: date) -> None:
        super().__init__(f"opens on {opens_on}")
        self.opens_on = opens_on


class ReadingBelowPrevious(DomainError):
    def __init__(self, last_value: Decimal) -> None:
        super().__init__(f"below {last_value}")
        self.last_value = last_value


class ReadingAlreadySubmitted(DomainError):
    """The period has its reading (`value`); another one can only be a correction."""

    def __init__(self, period: str, value: Decimal) -> None:
        super().__init__(f"{period} already has {value}")
        self.period = period
        self.value = value


class NothingToCorrect(DomainError):
    """A correction for a period without a reading: send it as the period's reading."""

    def __init__(self, period: str) -> None:
        super().__init__(f"no reading for {period}")
        self.period = period


def moscow_date(moment: datetime) -> date:
    return moment.astimezone(MOSCOW).date()


def reading_key(telegram_user_id: int, meter_id: str, period: str, value: Decimal) -> str:
    """The same reading sent twice (a double tap, a retry) carries the same key: one credit."""
    raw = f"{telegram_user_id}:{meter_id}:{period}:{value.normalize()}"
    return "r-" + hashlib.sha256(raw.encode()).hexdigest()[:40]


async def resident_meters(
    uow: UnitOfWork, auth: CityAuth, city: CityCharity, resident: Resident
) -> list[Meter]:
    return await city.meters(ResidentSession(resident, auth, uow))


def reading_this_period(meter: Meter) -> LastReading | None:
    """The reading already sent for the current period (what a correction replaces)."""
    last = meter.last_reading
    if meter.submitted_this_period and last is not None and last.period == meter.current_period:
        return last
    return None


def check_correction(meter: Meter, value: Decimal) -> ReadingProblem | None:
    """UNCHANGED when the corrected value is the one already sent; IMPLAUSIBLE (the resident
    confirms first) when it is more than a month's plausible use (`IMPLAUSIBLE_JUMP`) above
    it — an extra digit, as a first reading is checked against the last period's; None
    otherwise. Below the previous period is the platform's to say (the meter list names only
    the latest period)."""
    current = reading_this_period(meter)
    if current is None:
        return None
    if value == current.value:
        return ReadingProblem.UNCHANGED
    if value - current.value > IMPLAUSIBLE_JUMP[meter.kind]:
        return ReadingProblem.IMPLAUSIBLE
    return None


def new_correction_nonce() -> str:
    """Made when «Исправить показание» is pressed and kept with the dialog: a retry of the
    same correction carries the same key, a later correction a new one."""
    return secrets.token_hex(8)


def correction_key(
    telegram_user_id: int, meter_id: str, period: str, value: Decimal, nonce: str
) -> str:
    """Not derived from the value alone: correcting 425 → 430 → 425 must not replay the first
    reading's answer (its key is the value's), so each correction has its own nonce."""
    raw = f"{telegram_user_id}:{meter_id}:{period}:{value.normalize()}:correction:{nonce}"
    return "c-" + hashlib.sha256(raw.encode()).hexdigest()[:40]


async def submit_reading(
    uow: UnitOfWork,
    auth: CityAuth,
    city: CityCharity,
    resident: Resident,
    meter: Meter,
    value: Decimal,
) -> SubmittedReading:
    """The period's first reading: points credited by the account level. Raises
    ReadingAlreadySubmitted when the period has one (offer a correction instead)."""
    current = reading_this_period(meter)
    if current is not None:
        raise ReadingAlreadySubmitted(current.period, current.value)
    key = reading_key(resident.telegram_user_id, meter.id, meter.window.period, value)
    session = ResidentSession(resident, auth, uow)
    return await city.submit_reading(session, key, meter.id, format_reading(meter.kind, value))


async def correct_reading(
    uow: UnitOfWork,
    auth: CityAuth,
    city: CityCharity,
    resident: Resident,
    meter: Meter,
    value: Decimal,
    nonce: str,
) -> SubmittedReading:
    """Replace this period's reading with `value`; the platform credits no points for it.
    Raises NothingToCorrect when the period has no reading yet."""
    if reading_this_period(meter) is None:
        raise NothingToCorrect(meter.current_period)
    key = correction_key(resident.telegram_user_id, meter.id, meter.window.period, value, nonce)
    session = ResidentSession(resident, auth, uow)
    return await city.correct_reading(session, key, meter.id, format_reading(meter.kind, value))
