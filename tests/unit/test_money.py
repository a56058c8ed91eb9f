from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.money import MoneyParseError, format_rub, parse_rub


@pytest.mark.parametrize(
    ("kopecks", "text"),
    [(0, "0,00 ₽"), (5, "0,05 ₽"), (123456, "1 234,56 ₽"), (100000000, "1 000 000,00 ₽")],
)
def test_format(kopecks: int, text: str) -> None:
    assert format_rub(kopecks) == text


@pytest.mark.parametrize(
    ("text", "kopecks"),
    [
        ("1500", 150000),
        ("1 500", 150000),
        ("1500,50", 150050),
        ("1500.5", 150050),
        ("1\u00a0500 ₽", 150000),
        ("0,01", 1),
    ],
)
def test_parse(text: str, kopecks: int) -> None:
    assert parse_rub(text) == kopecks


@pytest.mark.parametrize("text", ["", "abc", "1,2,3", "-5", "1.234", "1e3", "₽"])
def test_parse_refuses(text: str) -> None:
    with pytest.raises(MoneyParseError):
        parse_rub(text)


@given(st.integers(min_value=0, max_value=10**14 - 1))
def test_format_then_parse_round_trips(kopecks: int) -> None:
    assert parse_rub(format_rub(kopecks)) == kopecks
