"""How many points a resident types («Перевести баллы в фонд»): digits grouped in threes like
every other number the bot asks for, the word «баллов» allowed, ASCII digits only, not zero."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from bot.i18n import load_translator
from domain.points import MAX_POINTS_DIGITS, PointsParseError, PointsProblem, parse_points

SPACES = (" ", "\u00a0", "\u202f")  # space, no-break space, narrow no-break space
WORDS = ("", " баллов", " балла", " балл", "баллов", "\u00a0Баллов", " БАЛЛ")
TR = load_translator()


def grouped(points: int, space: str) -> str:
    return f"{points:,}".replace(",", space)


@pytest.mark.parametrize(
    ("text", "points"),
    [
        ("1", 1),
        ("100", 100),
        ("1500", 1500),
        ("1 500", 1500),
        ("1\u00a0500", 1500),
        ("1\u202f500", 1500),
        ("1\u2009500", 1500),  # a thin space, as amounts of money take it
        ("1 500 000", 1_500_000),
        ("1 500 баллов", 1500),
        ("1 500баллов", 1500),
        ("21 балл", 21),
        ("3 балла", 3),
        ("1 000 Баллов", 1000),
        ("  250  ", 250),
        ("007", 7),
    ],
)
def test_parse(text: str, points: int) -> None:
    assert parse_points(text) == points


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("1500 50", PointsProblem.GROUPING),
        ("15 00", PointsProblem.GROUPING),
        ("1 5000", PointsProblem.GROUPING),
        ("1 500 50", PointsProblem.GROUPING),
        ("01 500", PointsProblem.GROUPING),
        ("1  500", PointsProblem.GROUPING),  # two spaces are not one group separator
        ("1e3", PointsProblem.FORMAT),
        ("1E3", PointsProblem.FORMAT),
        ("1,5", PointsProblem.FORMAT),
        ("1.5", PointsProblem.FORMAT),
        ("1 500,00", PointsProblem.FORMAT),
        ("0x10", PointsProblem.FORMAT),
        ("1_000", PointsProblem.FORMAT),
        ("сто", PointsProblem.FORMAT),
        ("баллов", PointsProblem.FORMAT),
        ("", PointsProblem.FORMAT),
        ("   ", PointsProblem.FORMAT),
        ("100 рублей", PointsProblem.FORMAT),
        ("100 баллов баллов", PointsProblem.FORMAT),
        ("inf", PointsProblem.FORMAT),
        ("-5", PointsProblem.SIGN),
        ("+5", PointsProblem.SIGN),
        ("\u22125", PointsProblem.SIGN),  # a minus sign
        ("²", PointsProblem.DIGITS),
        ("1²", PointsProblem.DIGITS),
        ("١٥٠٠", PointsProblem.DIGITS),  # Arabic-Indic
        ("１５００", PointsProblem.DIGITS),  # full-width
        ("½", PointsProblem.DIGITS),
        ("0", PointsProblem.ZERO),
        ("000", PointsProblem.ZERO),
        ("0 баллов", PointsProblem.ZERO),
        ("9" * (MAX_POINTS_DIGITS + 1), PointsProblem.TOO_LONG),
        ("1" * 65, PointsProblem.TOO_LONG),
    ],
)
def test_refused(text: str, reason: PointsProblem) -> None:
    with pytest.raises(PointsParseError) as error:
        parse_points(text)
    assert error.value.reason is reason


TYPED = st.text(
    alphabet=st.sampled_from([*"0123456789 ,.-+eE_xбалловБ²½١１\u00a0\u202f\u2009\u2212\n\t"]),
    max_size=24,
)


@given(st.one_of(TYPED, st.text(max_size=80)))
@example("1" * 100_000)
@example("\u00a0" * 70)
def test_only_its_own_error_and_only_ascii_digits(text: str) -> None:
    """Whatever is typed: a count above zero made of the ASCII digits typed, or
    PointsParseError — never another exception, never a digit converted from elsewhere."""
    try:
        points = parse_points(text)
    except PointsParseError as error:
        assert isinstance(error.reason, PointsProblem)
        return
    assert points > 0
    assert len(str(points)) <= MAX_POINTS_DIGITS
    assert not any(
        ch not in "0123456789" and unicodedata.numeric(ch, None) is not None for ch in text
    )
    assert int("".join(ch for ch in text if ch in "0123456789")) == points


@given(
    st.integers(min_value=1, max_value=10**MAX_POINTS_DIGITS - 1),
    st.sampled_from(SPACES),
    st.sampled_from(WORDS),
)
def test_formatted_counts_round_trip(points: int, space: str, word: str) -> None:
    assert parse_points(grouped(points, space) + word) == points
    assert parse_points(str(points) + word) == points


@given(st.integers(min_value=1, max_value=10**MAX_POINTS_DIGITS - 1))
def test_the_count_the_bot_shows_is_read_back(points: int) -> None:
    """«У вас 1 250 баллов» (a no-break space, from Fluent) copied into the answer."""
    shown = TR("points-count", count=points)
    assert parse_points(shown) == points


@given(
    st.integers(min_value=1_000, max_value=10**9),
    st.sampled_from(SPACES),
    st.integers(min_value=1, max_value=8),
)
def test_a_space_that_does_not_group_in_threes_is_a_typo(points: int, space: str, cut: int) -> None:
    """«1500 50»: a space anywhere but between groups of three is refused, not glued."""
    digits = str(points)
    cut = min(cut, len(digits) - 1)
    text = digits[:cut] + space + digits[cut:]
    if len(digits) - cut == 3 and cut <= 3:
        assert parse_points(text) == points  # «1 500», «12 345»: a real group
    else:
        with pytest.raises(PointsParseError) as error:
            parse_points(text)
        assert error.value.reason is PointsProblem.GROUPING
