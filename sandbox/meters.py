"""Meters («Электронный дом») of one sandbox instance: windows, readings and their points.

Windows are Moscow dates of the sandbox's clock: water from the 15th of a month to the 3rd of
the next (inclusive), electricity from the 15th to the 26th. A reading belongs to the period
(MM.YYYY) of the month in which its window opened. The first reading of a meter in a period
earns points by the resident's account level. A period has one reading: sending another is
refused (`already_submitted`) unless it is marked as a correction, which replaces the period's
value and earns nothing (a correction of a period without a reading is `nothing_to_correct`).

Values are plain decimals of ASCII digits, no larger than the meter's dial shows (MAX_VALUE).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from sandbox.clock import MOSCOW, Clock, moscow_date
from sandbox.common import Refused
from sandbox.data import FULL, STANDARD, DemoResident
from sandbox.idempotency import AnswerMemory, KeyReused
from sandbox.points import READING_POINTS, PointsBook, PointsKind

OPENS_ON_DAY = 15
WATER_CLOSES_DAY = 3  # of the next month
ELECTRICITY_CLOSES_DAY = 26

# fullmatch, ASCII digits only: no sign, exponent, spaces, comma or trailing newline.
_WATER_VALUE = re.compile(r"[0-9]+(?:\.[0-9]{1,3})?")
_ELECTRICITY_VALUE = re.compile(r"[0-9]+")
_MAX_DIGITS = 32  # characters of a value; longer is refused before Decimal sees it


class MeterKind(StrEnum):
    COLD_WATER = "cold_water"
    HOT_WATER = "hot_water"
    ELECTRICITY = "electricity"

    @property
    def is_water(self) -> bool:
        return self is not MeterKind.ELECTRICITY

    @property
    def unit(self) -> str:
        return "m3" if self.is_water else "kWh"

    @property
    def genitive(self) -> str:
        """For «Показания счётчика … за MM.YYYY»."""
        return _GENITIVE[self]


_GENITIVE = {
    MeterKind.COLD_WATER: "холодной воды",
    MeterKind.HOT_WATER: "горячей воды",
    MeterKind.ELECTRICITY: "электроэнергии",
}

# The largest value a meter's dial can show: flat water meters have 5 digits of m³ and 3 of
# litres, flat electricity meters 6 digits of kWh (the bot's domain/meters.py uses the same).
MAX_VALUE = {
    MeterKind.COLD_WATER: Decimal("99999.999"),
    MeterKind.HOT_WATER: Decimal("99999.999"),
    MeterKind.ELECTRICITY: Decimal(999_999),
}


@dataclass(frozen=True, slots=True, order=True)
class Period:
    year: int
    month: int

    @classmethod
    def of(cls, day: date) -> Period:
        return cls(day.year, day.month)

    def shifted(self, months: int) -> Period:
        index = self.year * 12 + self.month - 1 + months
        return Period(index // 12, index % 12 + 1)

    @property
    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    def __str__(self) -> str:
        return f"{self.month:02d}.{self.year}"


@dataclass(frozen=True, slots=True)
class Window:
    period: Period  # the month in which the window opens
    opens_on: date
    closes_on: date

    @classmethod
    def opening_in(cls, kind: MeterKind, period: Period) -> Window:
        opens = period.first_day.replace(day=OPENS_ON_DAY)
        if kind.is_water:
            closes = period.shifted(1).first_day.replace(day=WATER_CLOSES_DAY)
        else:
            closes = opens.replace(day=ELECTRICITY_CLOSES_DAY)
        return cls(period, opens, closes)

    def contains(self, day: date) -> bool:
        return self.opens_on <= day <= self.closes_on


def window_on(kind: MeterKind, day: date) -> tuple[Window, bool]:
    """The window open on `day` and True, or the next one to open and False."""
    this_month = Period.of(day)
    for period in (this_month.shifted(-1), this_month):
        window = Window.opening_in(kind, period)
        if window.contains(day):
            return window, True
    if day < Window.opening_in(kind, this_month).opens_on:
        return Window.opening_in(kind, this_month), False
    return Window.opening_in(kind, this_month.shifted(1)), False


def parse_value(kind: MeterKind, raw: str) -> Decimal | None:
    """A non-negative decimal with at most 3 decimals (water) or an integer (electricity), at
    most MAX_VALUE; None otherwise. Only plain digit strings reach Decimal (no exponent)."""
    pattern = _WATER_VALUE if kind.is_water else _ELECTRICITY_VALUE
    if len(raw) > _MAX_DIGITS or pattern.fullmatch(raw) is None:
        return None
    value = Decimal(raw)
    return value if value <= MAX_VALUE[kind] else None


def format_value(kind: MeterKind, value: Decimal) -> str:
    """'123.456' for water (always 3 decimals), '15234' for electricity."""
    return f"{value:.3f}" if kind.is_water else f"{value:.0f}"


@dataclass(frozen=True, slots=True)
class Reading:
    value: Decimal
    period: Period
    submitted_at: datetime


@dataclass(slots=True)
class CityMeter:
    id: str
    account_id: str
    kind: MeterKind
    serial: str
    readings: dict[Period, Reading] = field(default_factory=dict)

    @property
    def last_reading(self) -> Reading | None:
        return self.readings[max(self.readings)] if self.readings else None

    def reading_before(self, period: Period) -> Reading | None:
        """The latest reading of an earlier period (what a new reading must not go below)."""
        earlier = [p for p in self.readings if p < period]
        return self.readings[max(earlier)] if earlier else None


@dataclass(frozen=True, slots=True)
class ReadingAnswer:
    reading: Reading
    points_credited: int


class MeterBook:
    """The meters and readings of one sandbox instance."""

    def __init__(self, clock: Clock, points: PointsBook) -> None:
        self.clock = clock
        self.points = points
        self.meters: dict[str, CityMeter] = {}
        self._answers: AnswerMemory[ReadingAnswer] = AnswerMemory()

    def add(self, meter: CityMeter) -> CityMeter:
        self.meters[meter.id] = meter
        return meter

    def meters_of(self, account_id: str) -> list[CityMeter]:
        return [meter for meter in self.meters.values() if meter.account_id == account_id]

    def meter_of(self, account_id: str, meter_id: str) -> CityMeter | None:
        """The resident's meter (another resident's meter is not found)."""
        meter = self.meters.get(meter_id)
        return meter if meter is not None and meter.account_id == account_id else None

    def window(self, meter: CityMeter) -> tuple[Window, bool]:
        return window_on(meter.kind, moscow_date(self.clock()))

    def submit(
        self,
        resident: DemoResident,
        key: str,
        meter: CityMeter,
        value: Decimal,
        *,
        correction: bool = False,
    ) -> tuple[ReadingAnswer, bool]:
        """A reading for the open window's period: (answer, True) when taken now, (answer,
        False) for a replay of this key with the same request. Raises Refused (409, 422).

        Without `correction` the period must have no reading yet (409 `already_submitted`);
        with it, the period must have one (409 `nothing_to_correct`), which it replaces. Only
        the period's first reading credits points, so a correction never credits."""
        account_id = resident.account_id
        fingerprint = f"{meter.id}\n{format_value(meter.kind, value)}\n{correction}"
        try:
            known = self._answers.recall(account_id, key, fingerprint)
        except KeyReused as reused:
            raise Refused(422, "idempotency_key_reused", str(reused)) from None
        if known is not None:
            return known, False
        window, is_open = self.window(meter)
        if not is_open:
            raise Refused(
                409,
                "window_closed",
                f"readings are accepted from {window.opens_on.isoformat()}",
                opens_on=window.opens_on.isoformat(),
            )
        current = meter.readings.get(window.period)
        if current is not None and not correction:
            raise Refused(
                409,
                "already_submitted",
                f"the reading for {window.period} is already taken; send a correction",
                period=str(window.period),
                value=format_value(meter.kind, current.value),
            )
        if current is None and correction:
            raise Refused(
                409,
                "nothing_to_correct",
                f"no reading for {window.period} to correct",
                period=str(window.period),
            )
        previous = meter.reading_before(window.period)
        if previous is not None and value < previous.value:
            last_value = format_value(meter.kind, previous.value)
            raise Refused(
                409,
                "below_previous",
                f"the reading is below the last one ({last_value})",
                last_value=last_value,
            )
        reading = Reading(value, window.period, self.clock())
        meter.readings[window.period] = reading
        credited = 0
        if current is None:  # the period's first reading (a correction always has one)
            credited = READING_POINTS[resident.level]
            self.credit(meter, reading, credited)
        answer = ReadingAnswer(reading, credited)
        self._answers.remember(account_id, key, fingerprint, answer)
        return answer, True

    def credit(self, meter: CityMeter, reading: Reading, points: int) -> None:
        reason = f"Показания счётчика {meter.kind.genitive} за {reading.period}"
        self.points.add(
            meter.account_id, points, PointsKind.METER_READING, reason, at=reading.submitted_at
        )


# ---------------------------------------------------------------- demo meters

# (meter id, account, kind, serial, readings of the last periods, the latest first)
_DEMO_METERS: tuple[tuple[str, DemoResident, MeterKind, str, tuple[str, ...]], ...] = (
    ("M-3101", FULL, MeterKind.COLD_WATER, "21-048735", ("425.371", "418.905", "412.118")),
    ("M-3102", FULL, MeterKind.HOT_WATER, "21-048736", ("243.967", "240.112", "236.540")),
    ("M-3103", FULL, MeterKind.ELECTRICITY, "011852904", ("15234", "14968", "14702")),
    ("M-2101", STANDARD, MeterKind.COLD_WATER, "19-730214", ("87.204",)),
    ("M-2102", STANDARD, MeterKind.HOT_WATER, "24-115690", ()),  # installed lately: no reading
)


def seed_meters(book: MeterBook, now: datetime) -> None:
    """demo-full: cold and hot water and electricity, three past periods each; demo-standard:
    cold water with last period's reading, and a new hot water meter. Each past reading earned
    its points."""
    today = moscow_date(now)
    for meter_id, resident, kind, serial, values in _DEMO_METERS:
        meter = book.add(CityMeter(meter_id, resident.account_id, kind, serial))
        current = window_on(kind, today)[0].period
        for months_back, raw in enumerate(values, start=1):
            period = current.shifted(-months_back)
            at = datetime(period.year, period.month, 20, 10, 0, tzinfo=MOSCOW)
            reading = Reading(Decimal(raw), period, at)
            meter.readings[period] = reading
            book.credit(meter, reading, READING_POINTS[resident.level])
