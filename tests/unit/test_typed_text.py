"""What shows nothing is not a value (domain/typed_text.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.reports import clean_description
from domain.templates import NameProblem, clean_name
from domain.typed_text import (
    BLANK_LOOKALIKES,
    extends,
    shows_nothing,
    visible,
    without_invisible,
)

NOTHING = [
    " \t\n",
    "\u200b",  # zero-width space
    "\u200e\u200f",  # direction marks
    "\u202e",  # right-to-left override
    "\ufeff",  # BOM
    "\u3164",  # Hangul filler
    "\u2800",  # Braille blank
    "\u115f\u1160\uffa0",
    "\x00\x07",
    "\u200b\u200c\u200d\u2060",
    "\u17b5",  # Khmer vowel inherent AA, sold as an «invisible character»
    "\u034f",  # combining grapheme joiner
    "\u180b",  # Mongolian free variation selector
    "\ufe0f",  # a variation selector with nothing to select
    "\U000e0100",
]


@pytest.mark.parametrize("text", NOTHING)
def test_what_shows_nothing_is_empty(text: str) -> None:
    assert visible(text) == ""
    assert clean_description(text) == ""
    assert clean_name(text) is NameProblem.EMPTY


def test_inside_it_all_stays() -> None:
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # a ZWJ sequence
    assert visible(f"\u200b {family} яма\u200b\u3164 ") == f"{family} яма"
    assert visible("a\u200bb") == "a\u200bb"
    assert visible("❤️") == "❤️"  # the variation selector (Mn) is part of what shows


@given(st.text())
def test_the_ends_always_show_and_the_rest_is_kept(text: str) -> None:
    kept = visible(text)
    assert kept in text
    assert visible(kept) == kept
    if kept:
        assert not shows_nothing(kept[0])
        assert not shows_nothing(kept[-1]) or extends(kept[-1])  # a selector, a flag's tag
    else:
        assert all(shows_nothing(char) for char in text)


@given(st.text())
def test_dropping_the_invisible_keeps_what_shows(text: str) -> None:
    kept = without_invisible(text)
    assert [c for c in kept if not shows_nothing(c)] == [c for c in text if not shows_nothing(c)]
    assert without_invisible(kept) == kept


def test_the_blank_lookalikes_are_letters_and_symbols_python_does_not_call_space() -> None:
    assert not any(char.isspace() for char in BLANK_LOOKALIKES)
    assert all(shows_nothing(char) for char in BLANK_LOOKALIKES)


def test_what_belongs_to_the_character_before_stays_with_it() -> None:
    scotland = "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"
    assert visible(f"Разбитый флагшток {scotland}\u200b ") == f"Разбитый флагшток {scotland}"
    assert visible("сердце ❤️") == "сердце ❤️"
    assert without_invisible(f"флаг {scotland}") == f"флаг {scotland}"
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    assert without_invisible(f"{family}\u200d") == family
    assert without_invisible("Квартира\u202e ытавК") == "Квартира ытавК"  # no override
