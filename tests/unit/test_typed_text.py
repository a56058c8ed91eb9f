"""What shows nothing is not a value (domain/typed_text.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.reports import clean_description
from domain.templates import NameProblem, clean_name
from domain.typed_text import BLANK_LOOKALIKES, shows_nothing, visible

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
        assert not shows_nothing(kept[0]) and not shows_nothing(kept[-1])
    else:
        assert all(shows_nothing(char) for char in text)


def test_the_blank_lookalikes_are_letters_and_symbols_python_does_not_call_space() -> None:
    assert not any(char.isspace() for char in BLANK_LOOKALIKES)
    assert all(shows_nothing(char) for char in BLANK_LOOKALIKES)
