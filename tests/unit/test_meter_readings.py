"""Meter readings as typed (properties), the dial's maximum, and the correction use case."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from domain.accounts import AccountLevel, Resident, TokenSet
from domain.meters import (
    MAX_READING,
    LastReading,
    Meter,
    MeterKind,
    NothingToCorrect,
    ReadingAlreadySubmitted,
    ReadingProblem,
    SubmittedReading,
    Window,
    check_correction,
    correct_reading,
    correction_key,
    decimals_allowed,
    format_reading,
    new_correction_nonce,
    parse_reading,
    reading_key,
    submit_reading,
)

KINDS = st.sampled_from(list(MeterKind))
IDEMPOTENCE_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")  # city/openapi.yaml


@given(KINDS, st.text(max_size=80))
@example(MeterKind.COLD_WATER, "1e5000")
@example(MeterKind.COLD_WATER, "1e999999999")
@example(MeterKind.ELECTRICITY, "9" * 5000)
@example(MeterKind.HOT_WATER, "Infinity")
@example(MeterKind.HOT_WATER, "-0")
def test_any_text_is_a_sane_reading_or_a_problem(kind: MeterKind, text: str) -> None:
    result = parse_reading(kind, text)
    if isinstance(result, ReadingProblem):
        assert result in (
            ReadingProblem.NOT_A_NUMBER,
            ReadingProblem.NEGATIVE,
            ReadingProblem.TOO_PRECISE,
            ReadingProblem.TOO_LARGE,
        )
        return
    assert isinstance(result, Decimal) and result.is_finite()
    assert Decimal(0) <= result <= MAX_READING[kind]
    shown = format_reading(kind, result)
    assert len(shown) <= 9 and parse_reading(kind, shown) == result


@given(
    KINDS,
    st.from_regex(r"[0-9]{1,5}([.,][0-9]{1,3})?[eE][+-]?[0-9]{1,12}", fullmatch=True),
)
@example(MeterKind.COLD_WATER, "1e5000")
@example(MeterKind.ELECTRICITY, "1e999999999")
def test_an_exponent_is_never_a_reading(kind: MeterKind, text: str) -> None:
    assert parse_reading(kind, text) is ReadingProblem.NOT_A_NUMBER


foreign_digits = st.characters(codec="utf-8", categories=("Nd", "No", "Nl")).filter(
    lambda ch: ch not in "0123456789"
)


@given(KINDS, st.text(alphabet="0123456789,. ", max_size=10), foreign_digits, st.data())
def test_a_foreign_digit_is_never_read(
    kind: MeterKind, base: str, digit: str, data: st.DataObject
) -> None:
    position = data.draw(st.integers(0, len(base)))
    text = base[:position] + digit + base[position:]
    assert unicodedata.numeric(digit, None) is not None
    assert parse_reading(kind, text) is ReadingProblem.NOT_A_NUMBER


@given(KINDS, st.integers(min_value=0, max_value=99_999_999), st.sampled_from([",", "."]))
def test_plain_decimals_within_the_dial_round_trip(kind: MeterKind, n: int, comma: str) -> None:
    decimals = decimals_allowed(kind)
    value = Decimal(n).scaleb(-decimals)
    text = format_reading(kind, value).replace(".", comma)
    expected: Decimal | ReadingProblem = (
        value if value <= MAX_READING[kind] else ReadingProblem.TOO_LARGE
    )
    assert parse_reading(kind, text) == expected


@pytest.mark.parametrize(
    ("kind", "text", "expected"),
    [
        (MeterKind.HOT_WATER, "99 999,999", Decimal("99999.999")),
        (MeterKind.HOT_WATER, "99999,9991", ReadingProblem.TOO_PRECISE),
        (MeterKind.HOT_WATER, "100 000", ReadingProblem.TOO_LARGE),
        (MeterKind.ELECTRICITY, "999 999", Decimal(999_999)),
        (MeterKind.ELECTRICITY, "1 000 000", ReadingProblem.TOO_LARGE),
        (MeterKind.ELECTRICITY, "0001000000", ReadingProblem.TOO_LARGE),
        (MeterKind.ELECTRICITY, "000999999", Decimal(999_999)),
        (MeterKind.COLD_WATER, "\u221242", ReadingProblem.NEGATIVE),  # the minus sign
        (MeterKind.COLD_WATER, "- 42", ReadingProblem.NEGATIVE),
        (MeterKind.COLD_WATER, "-много", ReadingProblem.NOT_A_NUMBER),
        (MeterKind.COLD_WATER, "12\u00a0345,5", Decimal("12345.5")),
        (MeterKind.COLD_WATER, "1\u202f234", Decimal(1234)),
        (MeterKind.COLD_WATER, "123 45", ReadingProblem.NOT_A_NUMBER),
        (MeterKind.COLD_WATER, "123,", ReadingProblem.NOT_A_NUMBER),
        (MeterKind.COLD_WATER, ",5", ReadingProblem.NOT_A_NUMBER),
        (MeterKind.COLD_WATER, "1.2.3", ReadingProblem.NOT_A_NUMBER),
        (MeterKind.COLD_WATER, "123 м3", ReadingProblem.NOT_A_NUMBER),
    ],
)
def test_edges(kind: MeterKind, text: str, expected: object) -> None:
    assert parse_reading(kind, text) == expected


def test_the_dials_maximum() -> None:
    assert format_reading(MeterKind.COLD_WATER, MAX_READING[MeterKind.COLD_WATER]) == "99999.999"
    assert format_reading(MeterKind.ELECTRICITY, MAX_READING[MeterKind.ELECTRICITY]) == "999999"


# ---------------------------------------------------------------- corrections

PERIOD = "11.2026"
WINDOW = Window(date(2026, 11, 15), date(2026, 12, 3))


def meter(*, submitted: bool) -> Meter:
    last = LastReading(
        Decimal("430.000") if submitted else Decimal("425.371"),
        PERIOD if submitted else "10.2026",
        datetime(2026, 11, 20, tzinfo=UTC),
    )
    return Meter("M-1", MeterKind.COLD_WATER, "21-1", "m3", last, PERIOD, submitted, WINDOW)


RESIDENT = Resident(
    telegram_user_id=42,
    chat_id=42,
    city_account_id="acc",
    account_level=AccountLevel.FULL,
    masked_name="Мария И.",
    tokens=TokenSet("a", "r", datetime(2030, 1, 1, tzinfo=UTC)),
    linked_at=datetime(2026, 1, 1, tzinfo=UTC),
)


class FakeCity:
    """Records what would be sent to the platform."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, str]] = []

    async def submit_reading(
        self, session: Any, key: str, meter_id: str, value: str
    ) -> SubmittedReading:
        self.calls.append(("reading", key, meter_id, value))
        return SubmittedReading(Decimal(value), PERIOD, 20)

    async def correct_reading(
        self, session: Any, key: str, meter_id: str, value: str
    ) -> SubmittedReading:
        self.calls.append(("correction", key, meter_id, value))
        return SubmittedReading(Decimal(value), PERIOD, 0)


class FakeUow:
    residents: Any = None


async def test_a_second_reading_in_a_period_is_refused_without_a_call() -> None:
    city = FakeCity()
    with pytest.raises(ReadingAlreadySubmitted) as refused:
        await submit_reading(
            FakeUow(),
            city,
            city,
            RESIDENT,
            meter(submitted=True),
            Decimal(431),
        )
    assert (refused.value.period, refused.value.value) == (PERIOD, Decimal("430.000"))
    assert city.calls == []


async def test_a_correction_without_a_reading_is_refused_without_a_call() -> None:
    city = FakeCity()
    with pytest.raises(NothingToCorrect):
        await correct_reading(
            FakeUow(),
            city,
            city,
            RESIDENT,
            meter(submitted=False),
            Decimal(431),
            "n",
        )
    assert city.calls == []


async def test_a_correction_is_sent_as_one_with_its_own_key() -> None:
    city = FakeCity()
    answer = await correct_reading(
        FakeUow(),
        city,
        city,
        RESIDENT,
        meter(submitted=True),
        Decimal("428.5"),
        "nonce",
    )
    [(kind, key, meter_id, value)] = city.calls
    assert (kind, meter_id, value, answer.points_credited) == ("correction", "M-1", "428.500", 0)
    assert key == correction_key(42, "M-1", PERIOD, Decimal("428.5"), "nonce")
    assert IDEMPOTENCE_KEY.fullmatch(key)


def test_correction_keys() -> None:
    value = Decimal("430.000")
    first = reading_key(42, "M-1", PERIOD, value)
    a, b = new_correction_nonce(), new_correction_nonce()
    assert a != b
    keys = {correction_key(42, "M-1", PERIOD, value, nonce) for nonce in (a, b)}
    assert len(keys) == 2 and first not in keys  # 425 → 430 → 425 never replays the first
    assert correction_key(42, "M-1", PERIOD, Decimal("430"), a) == correction_key(
        42, "M-1", PERIOD, value, a
    )  # a retry of the same correction carries the same key
    assert all(IDEMPOTENCE_KEY.fullmatch(key) for key in keys)


def test_a_correction_to_the_same_value_is_unchanged() -> None:
    assert check_correction(meter(submitted=True), Decimal("430")) is ReadingProblem.UNCHANGED
    assert check_correction(meter(submitted=True), Decimal("429.9")) is None
