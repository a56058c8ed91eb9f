"""Meter windows at their edges, reading checks, points by level and the tips, donation input."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from domain.accounts import AccountLevel
from domain.charity import DonationProblem, parse_donation
from domain.meters import (
    POINTS_BY_LEVEL,
    MeterKind,
    ReadingProblem,
    Window,
    check_reading,
    next_window,
    open_window,
    parse_reading,
)
from domain.points import MeterState, TipKind, epd_cashback, how_to_earn_now

WATER, ELECTRICITY = MeterKind.COLD_WATER, MeterKind.ELECTRICITY


@pytest.mark.parametrize(
    ("kind", "day", "period"),
    [
        (WATER, date(2026, 11, 14), None),
        (WATER, date(2026, 11, 15), "11.2026"),
        (WATER, date(2026, 11, 30), "11.2026"),
        (WATER, date(2026, 12, 2), "11.2026"),  # belongs to the month the window opened in
        (WATER, date(2026, 12, 3), "11.2026"),
        (WATER, date(2026, 12, 4), None),
        (WATER, date(2027, 1, 3), "12.2026"),  # across the new year
        (ELECTRICITY, date(2026, 11, 14), None),
        (ELECTRICITY, date(2026, 11, 15), "11.2026"),
        (ELECTRICITY, date(2026, 11, 26), "11.2026"),
        (ELECTRICITY, date(2026, 11, 27), None),
        (ELECTRICITY, date(2026, 12, 2), None),
    ],
)
def test_windows_at_their_edges(kind: MeterKind, day: date, period: str | None) -> None:
    window = open_window(kind, day)
    assert (window.period if window else None) == period


def test_a_closed_window_says_when_it_opens() -> None:
    assert next_window(WATER, date(2026, 12, 4)).opens_on == date(2026, 12, 15)
    assert next_window(ELECTRICITY, date(2026, 11, 27)).opens_on == date(2026, 12, 15)
    assert next_window(ELECTRICITY, date(2026, 12, 31)).opens_on == date(2027, 1, 15)


@pytest.mark.parametrize(
    ("kind", "text", "expected"),
    [
        (WATER, "123,456", Decimal("123.456")),
        (WATER, " 12 345.5 ", Decimal("12345.5")),
        (WATER, "1.2345", ReadingProblem.TOO_PRECISE),
        (ELECTRICITY, "15234", Decimal(15234)),
        (ELECTRICITY, "15234.5", ReadingProblem.TOO_PRECISE),
        (WATER, "-5", ReadingProblem.NEGATIVE),
        (WATER, "много", ReadingProblem.NOT_A_NUMBER),
        (WATER, "NaN", ReadingProblem.NOT_A_NUMBER),
        (WATER, "", ReadingProblem.NOT_A_NUMBER),
        (WATER, "123", Decimal(123)),
        (WATER, "123,45", Decimal("123.45")),
        (WATER, "123.456", Decimal("123.456")),
        (WATER, "99999,999", Decimal("99999.999")),  # the dial's maximum
        (WATER, "100000", ReadingProblem.TOO_LARGE),
        (ELECTRICITY, "999999", Decimal(999999)),
        (ELECTRICITY, "1000000", ReadingProblem.TOO_LARGE),
        (WATER, "1e5000", ReadingProblem.NOT_A_NUMBER),
        (WATER, "1e999999999", ReadingProblem.NOT_A_NUMBER),
        (ELECTRICITY, "1E5", ReadingProblem.NOT_A_NUMBER),
        (WATER, "0x10", ReadingProblem.NOT_A_NUMBER),
        (WATER, "+5", ReadingProblem.NOT_A_NUMBER),
        (WATER, "inf", ReadingProblem.NOT_A_NUMBER),
        (WATER, "12²", ReadingProblem.NOT_A_NUMBER),
        (WATER, "١٢٣", ReadingProblem.NOT_A_NUMBER),  # Arabic-Indic
        (WATER, "１２３", ReadingProblem.NOT_A_NUMBER),  # full-width
        (WATER, "1 2345", ReadingProblem.NOT_A_NUMBER),  # spaces group in threes only
        (WATER, "1_000", ReadingProblem.NOT_A_NUMBER),
    ],
)
def test_parse_reading(kind: MeterKind, text: str, expected: object) -> None:
    assert parse_reading(kind, text) == expected


def test_reading_checks() -> None:
    last = Decimal("100.000")
    assert check_reading(WATER, Decimal("99.999"), last) is ReadingProblem.BELOW_PREVIOUS
    assert check_reading(WATER, Decimal("105.5"), last) is None
    assert check_reading(WATER, Decimal("100"), last) is None  # no water used is fine
    assert check_reading(WATER, Decimal("131"), last) is ReadingProblem.IMPLAUSIBLE
    assert check_reading(WATER, Decimal("5"), None) is None  # a first reading


def _state(kind: MeterKind, submitted: bool, day: date) -> MeterState:
    """A meter as the city describes it on `day`: its window open then, else the next one."""
    return MeterState(kind, submitted, next_window(kind, day))


def test_a_window_the_city_keeps_open_longer_is_still_a_tip() -> None:
    day = date(2026, 12, 4)  # past the usual close of the 3rd: the city extended it
    extended = Window(date(2026, 11, 15), date(2026, 12, 6))
    tips = how_to_earn_now(
        day, AccountLevel.FULL, [MeterState(MeterKind.COLD_WATER, False, extended)]
    )
    assert tips[0].kind is TipKind.READINGS_NOW and tips[0].until == date(2026, 12, 6)


def test_points_by_level() -> None:
    assert POINTS_BY_LEVEL[AccountLevel.SIMPLE] == 10
    assert POINTS_BY_LEVEL[AccountLevel.STANDARD] == 20
    assert POINTS_BY_LEVEL[AccountLevel.FULL] == 20


def test_two_meters_without_readings_in_an_open_window_earn_forty() -> None:
    day = date(2026, 11, 28)
    meters = [
        _state(MeterKind.COLD_WATER, False, day),
        _state(MeterKind.HOT_WATER, False, day),
        _state(MeterKind.ELECTRICITY, True, day),
    ]
    tips = how_to_earn_now(day, AccountLevel.STANDARD, meters)
    assert tips[0].kind is TipKind.READINGS_NOW
    assert (tips[0].points, tips[0].meters, tips[0].until) == (40, 2, date(2026, 12, 3))


def test_when_everything_is_sent_the_tip_is_the_next_window() -> None:
    meters = [_state(MeterKind.COLD_WATER, True, date(2026, 11, 28))]
    tips = how_to_earn_now(date(2026, 11, 28), AccountLevel.FULL, meters)
    assert tips[0].kind is TipKind.READINGS_LATER and tips[0].opens_on == date(2026, 12, 15)
    later = [_state(MeterKind.COLD_WATER, False, date(2026, 12, 10))]  # the city's next window
    outside = how_to_earn_now(date(2026, 12, 10), AccountLevel.FULL, later)
    assert outside[0].opens_on == date(2026, 12, 15)
    assert [t.kind for t in how_to_earn_now(date(2026, 12, 10), AccountLevel.FULL, [])] == [
        TipKind.EPD_CASHBACK
    ]


def test_epd_cashback_is_five_percent_of_whole_rubles() -> None:
    assert epd_cashback(812_450) == 406  # 8 124,50 ₽ → 8124 ₽ × 5% = 406.2
    assert epd_cashback(1_999) == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("49", DonationProblem.TOO_SMALL),
        ("49,99", DonationProblem.TOO_SMALL),
        ("0", DonationProblem.TOO_SMALL),
        ("-100", DonationProblem.TOO_SMALL),
        ("сто", DonationProblem.NOT_A_NUMBER),
        ("1e6", DonationProblem.NOT_A_NUMBER),
        ("99999999", DonationProblem.TOO_LARGE),
        ("50", 5_000),
        ("1 500,50", 150_050),
    ],
)
def test_parse_donation(text: str, expected: object) -> None:
    assert parse_donation(text) == expected
