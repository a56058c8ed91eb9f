"""A text without values is formatted by Fluent once per translator and key (buttons and
titles are most of an update's texts); texts with values, and texts that failed, every time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from markupsafe import Markup

from bot.i18n import TranslationError, Translator, load_translator

FTL = """
error-generic = Что-то пошло не так
nav-back = ‹ Назад
pager-next = ›
plain = Оплатить <b>всё</b>
hello = Привет, { $name }
"""


@pytest.fixture
def tr(tmp_path: Path) -> Translator:
    (tmp_path / "ru").mkdir()
    (tmp_path / "ru" / "main.ftl").write_text(FTL, "utf-8")
    return load_translator("ru", tmp_path)


def _counting(tr: Translator) -> list[str]:
    calls: list[str] = []
    bundle = tr._bundle
    format_pattern = bundle.format_pattern

    def counted(pattern: Any, args: Any = None) -> Any:
        calls.append(str(pattern))
        return format_pattern(pattern, args)

    bundle.format_pattern = counted  # type: ignore[method-assign]
    return calls


def test_a_text_without_values_is_formatted_once(tr: Translator) -> None:
    calls = _counting(tr)
    assert tr("plain") == Markup("Оплатить <b>всё</b>")
    assert tr("plain") == Markup("Оплатить <b>всё</b>")
    assert tr.label("plain") == "Оплатить <b>всё</b>"
    assert tr.label("plain") == "Оплатить <b>всё</b>"
    assert isinstance(tr("plain"), Markup)
    assert len(calls) == 2  # once as Markup, once as a label


def test_texts_with_values_are_formatted_every_time(tr: Translator) -> None:
    calls = _counting(tr)
    assert tr("hello", name="<Ann>") == Markup("Привет, &lt;Ann&gt;")
    assert tr("hello", name="Bob") == Markup("Привет, Bob")
    assert len(calls) == 2


def test_a_failed_text_is_not_kept(tr: Translator, monkeypatch: pytest.MonkeyPatch) -> None:
    """A variable left out is an error each time it happens (strict in tests: raised; logged in
    production), not once and then a quiet `{$name}`."""
    monkeypatch.setattr(Translator, "failures", [])  # this test's own failures, expected
    with pytest.raises(TranslationError):
        tr("hello")
    with pytest.raises(TranslationError):
        tr("hello")
    assert len(Translator.failures) == 2
    monkeypatch.setattr(Translator, "strict", False)
    calls = _counting(tr)
    tr("hello")
    tr("hello")
    assert len(calls) == 2
