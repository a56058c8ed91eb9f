"""Theme search people can use: typos, word forms and everyday phrases find the theme (over
the sandbox's catalogue and its keywords); at most three themes, never an error."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain import reports
from domain.reports import THEME_CHOICES, Theme, search_themes
from sandbox.themes import THEMES

CATALOGUE = [
    Theme(
        t.code,
        t.name,
        t.group,
        t.keywords,
        season=(t.season.start, t.season.end) if t.season else None,
    )
    for t in THEMES
]
WINTER_DAY = date(2027, 1, 15)
SUMMER_DAY = date(2026, 7, 1)


def names(query: str, today: date = WINTER_DAY) -> list[str]:
    return [theme.name for theme in search_themes(CATALOGUE, query, today)]


@pytest.mark.parametrize(
    ("query", "first"),
    [
        ("фанарь", "Не горит фонарь"),  # a typo
        ("ФОНАРИ не горят", "Не горит фонарь"),  # word forms, capitals
        ("ямы на дороге", "Яма на дороге"),  # a word form in a phrase
        ("не вывезли мусор", "Переполнены мусорные контейнеры"),  # everyday phrasing
        ("сосулька", "Сосульки на крыше"),  # singular for plural
        ("сосульки свисают с крыши", "Сосульки на крыше"),
        ("светофор не работает", "Не работает светофор"),
        ("сломали качели", "Повреждены качели"),
    ],
)
def test_everyday_words_find_the_theme(query: str, first: str) -> None:
    found = names(query)
    assert found and found[0] == first, found
    assert len(found) <= THEME_CHOICES


def test_garbage_phrases_find_garbage_themes() -> None:
    groups = {t.name: t.group for t in CATALOGUE}
    found = names("не вывезли мусор")
    assert len(found) == 3 and all(groups[name] == "Мусор и уборка" for name in found)


def test_out_of_season_themes_are_left_out() -> None:
    assert "Сосульки на крыше" not in names("сосулька", SUMMER_DAY)
    assert names("фанарь", SUMMER_DAY)[0] == "Не горит фонарь"


@pytest.mark.parametrize("query", ["", "??", "  ", "ы", "qwertyuiop", "1234567"])
def test_nothing_meaningful_finds_nothing(query: str) -> None:
    assert names(query) == []


@settings(max_examples=200, deadline=None)
@given(query=st.text(max_size=300), day=st.dates())
def test_any_query_gives_at_most_three_themes_and_never_raises(query: str, day: date) -> None:
    found = search_themes(CATALOGUE, query, day)
    assert len(found) <= THEME_CHOICES
    assert len({theme.code for theme in found}) == len(found)
    assert all(theme.in_season(day) for theme in found)


@settings(max_examples=100, deadline=None)
@given(
    query=st.text(alphabet="абвгдежзийклмнопрстуфхцчшщъыьэюяё ", min_size=1, max_size=60),
    limit=st.integers(min_value=-1, max_value=5),
)
def test_the_limit_is_kept(query: str, limit: int) -> None:
    assert len(search_themes(CATALOGUE, query, WINTER_DAY, limit)) <= max(limit, 0)


def test_a_theme_searched_again_gives_the_same_answer_and_reads_its_words_once() -> None:
    """A theme's words are taken apart once (`_vocabulary`), not on every search."""
    theme = reports.Theme("T-1", "Яма на дороге", "Дороги", ("выбоина", "асфальт провалился"))
    reports._vocabulary.cache_clear()
    first = reports.search_themes([theme], "яма", date(2026, 3, 1))
    second = reports.search_themes([theme], "яма во дворе", date(2026, 3, 1))
    assert first == second == [theme]
    assert reports._vocabulary.cache_info().misses == 1
    assert reports._vocabulary(theme) == (
        frozenset({"яма", "дороге"}),
        frozenset({"выбоина", "асфальт", "провалился"}),
    )
