"""Meter readings («Электронный дом»): submission windows, reading checks, points by level.

Windows (REFERENCE.md): water from the 15th to the 3rd of the next month, electricity from the
15th to the 26th; a reading belongs to the month in which its window opened. Dates are Moscow
dates: the caller converts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from zoneinfo import ZoneInfo

from domain.accounts import AccountLevel, Resident
from domain.errors import DomainError
from domain.ports import CityAuth, CityCharity, UnitOfWork
from domain.sessions import ResidentSession

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
    NOT_A_NUMBER = "not_a_number"
    TOO_PRECISE = "too_precise"  # water: at most 3 decimals; electricity: whole kWh
    BELOW_PREVIOUS = "below_previous"
    IMPLAUSIBLE = "implausible"  # may still be sent once the resident confirms


def parse_reading(kind: MeterKind, text: str) -> Decimal | ReadingProblem:
    cleaned = "".join(text.split()).replace(",", ".")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return ReadingProblem.NOT_A_NUMBER
    if not value.is_finite() or value < 0 or cleaned.startswith(("+", "-")):
        return ReadingProblem.NOT_A_NUMBER
    exponent = value.as_tuple().exponent
    decimals = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    if decimals > (3 if kind.is_water else 0):
        return ReadingProblem.TOO_PRECISE
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


def moscow_date(moment: datetime) -> date:
    return moment.astimezone(MOSCOW).date()


def reading_key(telegram_user_id: int, meter_id: str, period: str, value: Decimal) -> str:
    """The same reading sent twice (a double tap, a retry) carries the same key: one credit."""
    raw = f"{telegram_user_id}:{meter_id}:{period}:{value.normalize()}"
    return "r-" + hashlib.sha256(raw.encode()).hexdigest()[:40]


async def resident_meters(
    uow: UnitOfWork, auth: CityAuth, city: CityCharity, resident: Resident
) -> list[Meter]:
    return await city.meters(ResidentSession(resident, auth, uow.residents))


async def submit_reading(
    uow: UnitOfWork,
    auth: CityAuth,
    city: CityCharity,
    resident: Resident,
    meter: Meter,
    value: Decimal,
) -> SubmittedReading:
    key = reading_key(resident.telegram_user_id, meter.id, meter.window.period, value)
    session = ResidentSession(resident, auth, uow.residents)
    return await city.submit_reading(session, key, meter.id, format_reading(meter.kind, value))
