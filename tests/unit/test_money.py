"""Amounts as residents type them: grouping in threes, currency words, ASCII digits only."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from domain.money import (
    GROUP_SPACES,
    MoneyParseError,
    MoneyProblem,
    format_rub,
    has_foreign_digit,
    parse_rub,
)
from tests.money_text import nb


@pytest.mark.parametrize(
    ("kopecks", "text"),
    [
        (0, "0,00\u00a0₽"),
        (5, "0,05\u00a0₽"),
        (123456, "1\u00a0234,56\u00a0₽"),
        (4150768, "41\u00a0507,68\u00a0₽"),
        (100000000, "1\u00a0000\u00a0000,00\u00a0₽"),
        (-123456, "-1\u00a0234,56\u00a0₽"),
    ],
)
def test_format_puts_no_break_spaces_in_the_amount(kopecks: int, text: str) -> None:
    assert format_rub(kopecks) == text


@given(st.integers(min_value=-(10**14), max_value=10**14))
def test_an_amount_never_breaks_across_lines(kopecks: int) -> None:
    """Every space in an amount is U+00A0: Telegram wraps a line only at the other spaces."""
    text = format_rub(kopecks)
    assert [ch for ch in text if ch.isspace()] == ["\u00a0"] * (text.count("\u00a0"))
    assert unicodedata.name(text[-2]) == "NO-BREAK SPACE" and text.endswith("₽")
    digits = str(abs(kopecks) // 100)
    assert text.count("\u00a0") == (len(digits) - 1) // 3 + 1  # between groups, before ₽


@pytest.mark.parametrize(
    ("text", "kopecks"),
    [
        ("1500", 150000),
        ("1 500", 150000),
        ("1 500 000", 150000000),
        ("1 500,50", 150050),
        ("1 500 000,50", 150000050),
        ("1500,50", 150050),
        ("1500.5", 150050),
        ("1\u00a0500 ₽", 150000),  # no-break space
        ("1\u202f500", 150000),  # narrow no-break space
        ("1\u2009500", 150000),  # thin space
        ("0,01", 1),
        ("  250  ", 25000),
        ("100 рублей", 10000),
        ("100 руб", 10000),
        ("100 руб.", 10000),
        ("100 р", 10000),
        ("100 Р", 10000),
        ("50р.", 5000),
        ("50 RUB", 5000),
        ("50 rub", 5000),
        ("50 ₽", 5000),
        ("50₽", 5000),
        ("100 рубля", 10000),
        ("1 рубль", 100),
        ("70 RUR", 7000),
        ("1 500,50 руб.", 150050),
    ],
)
def test_parse(text: str, kopecks: int) -> None:
    assert parse_rub(text) == kopecks


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("1500 50", MoneyProblem.GROUPING),
        ("15 00", MoneyProblem.GROUPING),
        ("1 5000", MoneyProblem.GROUPING),
        ("1 500 00", MoneyProblem.GROUPING),
        ("1  500", MoneyProblem.GROUPING),  # two spaces are not one group separator
        ("0 500", MoneyProblem.GROUPING),
        ("1500\u00a050 ₽", MoneyProblem.GROUPING),
        ("1e5", MoneyProblem.FORMAT),
        ("1E5", MoneyProblem.FORMAT),
        ("1.5e3", MoneyProblem.FORMAT),
        ("0x10", MoneyProblem.FORMAT),
        ("1_000", MoneyProblem.FORMAT),
        ("inf", MoneyProblem.FORMAT),
        ("nan", MoneyProblem.FORMAT),
        ("Infinity", MoneyProblem.FORMAT),
        ("", MoneyProblem.FORMAT),
        ("abc", MoneyProblem.FORMAT),
        ("сто рублей", MoneyProblem.FORMAT),
        ("1,2,3", MoneyProblem.FORMAT),
        ("₽", MoneyProblem.FORMAT),
        ("рублей", MoneyProblem.FORMAT),
        ("100 долларов", MoneyProblem.FORMAT),
        ("1.234", MoneyProblem.DECIMALS),
        ("1,234", MoneyProblem.DECIMALS),
        ("-5", MoneyProblem.SIGN),
        ("+5", MoneyProblem.SIGN),
        ("\u22125", MoneyProblem.SIGN),
        ("²", MoneyProblem.DIGITS),
        ("100²", MoneyProblem.DIGITS),
        ("١٢", MoneyProblem.DIGITS),  # Arabic-Indic
        ("۱۲", MoneyProblem.DIGITS),  # Persian
        ("１２", MoneyProblem.DIGITS),  # full-width
        ("½", MoneyProblem.DIGITS),
        ("1½", MoneyProblem.DIGITS),
        ("1" * 13, MoneyProblem.TOO_LONG),
        ("1" * 5000, MoneyProblem.TOO_LONG),
    ],
)
def test_parse_refuses_with_a_reason(text: str, reason: MoneyProblem) -> None:
    with pytest.raises(MoneyParseError) as refused:
        parse_rub(text)
    assert refused.value.reason is reason
    assert isinstance(refused.value, ValueError)  # callers that catch ValueError keep working


def test_twelve_digits_of_rubles_are_the_most() -> None:
    assert parse_rub("999 999 999 999,99") == 99_999_999_999_999


@given(st.integers(min_value=0, max_value=10**14 - 1))
def test_format_then_parse_round_trips(kopecks: int) -> None:
    assert parse_rub(format_rub(kopecks)) == kopecks


@given(st.integers(min_value=0, max_value=10**12 - 1), st.sampled_from(list(GROUP_SPACES)))
def test_any_grouping_space_groups_in_threes(rubles: int, space: str) -> None:
    grouped = f"{rubles:,}".replace(",", space)
    assert parse_rub(grouped) == rubles * 100


@given(st.integers(min_value=1000, max_value=10**9), st.integers(min_value=1, max_value=9))
def test_a_space_anywhere_but_between_threes_is_refused(rubles: int, cut: int) -> None:
    digits = str(rubles)
    position = len(digits) - cut
    if position < 1 or (cut == 3 and position <= 3):
        return  # «1 500» or «150 000»: a correct first group
    text = digits[:position] + " " + digits[position:]
    with pytest.raises(MoneyParseError) as refused:
        parse_rub(text)
    assert refused.value.reason in (MoneyProblem.GROUPING, MoneyProblem.FORMAT)


# Characters Unicode gives a numeric value other than 0-9: superscripts, fractions, other
# scripts' decimal digits, full-width digits, Roman numerals…
foreign_digits = st.characters(
    codec="utf-8",
    categories=("Nd", "No", "Nl"),
).filter(lambda ch: ch not in "0123456789")


def ascii_reading(text: str) -> str:
    """The text with each decimal digit of any script replaced by its ASCII digit."""
    return "".join(
        str(unicodedata.decimal(ch)) if unicodedata.decimal(ch, None) is not None else ch
        for ch in text
    )


@given(st.text(alphabet="0123456789 ,.₽р", max_size=12), foreign_digits, st.data())
@example("1500", "١", None)
@example("", "²", None)
def test_a_foreign_digit_is_refused_or_read_as_its_ascii_digit(
    base: str, digit: str, data: st.DataObject | None
) -> None:
    position = data.draw(st.integers(0, len(base))) if data is not None else len(base)
    text = base[:position] + digit + base[position:]
    assert has_foreign_digit(text)
    try:
        parsed = parse_rub(text)
    except MoneyParseError:
        return
    assert parsed == parse_rub(ascii_reading(text))  # pragma: no cover - refused today


@given(st.text(max_size=80))
@example("1e999999999")
@example("9" * 5000)
@example("١" * 100)
def test_nothing_but_money_parse_error_is_ever_raised(text: str) -> None:
    try:
        result = parse_rub(text)
    except MoneyParseError:
        return
    assert isinstance(result, int) and result >= 0
    assert all(ch.isascii() for ch in text if unicodedata.numeric(ch, None) is not None)


@given(st.from_regex(r"[0-9]{1,9}([.,][0-9]{1,2})?", fullmatch=True))
def test_plain_numbers_are_read_exactly(text: str) -> None:
    rub, _, kop = text.replace(",", ".").partition(".")
    assert parse_rub(text) == int(rub) * 100 + int(kop.ljust(2, "0") or "0")


@given(st.integers(min_value=-(10**14), max_value=10**14))
def test_the_tests_helper_writes_amounts_as_format_rub_does(kopecks: int) -> None:
    """Tests write «8 124,50 ₽» with ordinary spaces and compare `nb(...)` with what is shown."""
    shown = format_rub(kopecks)
    assert nb(shown.replace("\u00a0", " ")) == shown


def test_the_texts_write_their_own_amounts_with_no_break_spaces() -> None:
    """What format_rub does for amounts, the .ftl files do for the amounts they hold
    («Минимум 50 ₽», «1 500»): a line never breaks inside a number or before «₽»."""
    from bot.i18n import ftl_files

    breaking = re.compile(r"\d (?:\d{3}(?!\d)|₽)")
    found = [
        f"{path.name}: {line.strip()}"
        for path in ftl_files()
        for line in path.read_text("utf-8").splitlines()
        if breaking.search(line)
    ]
    assert found == []
