"""Every text of locales/ru rendered with hostile values: it stays valid Telegram HTML, shows
the value literally, never `{???}`, never a link the .ftl did not write, and fits a message.

Variables are found by walking the Fluent AST; a variable that chooses a variant gets a value
for each variant (numbers for plural categories and NUMBER()), the others get the hostile
values. `tests/conftest.py` makes the translator strict: a format error raises."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fluent.syntax import FluentParser, ast
from fluent.syntax.visitor import Visitor
from markupsafe import Markup

from bot.i18n import MAX_VALUE, Translator, ftl_files, load_translator, shorten
from handlers.widgets import PAGE_LIMIT, split_markup
from sandbox.telegram_double import parse_html, utf16_len

LONG = ('a < b & c <a href="https://evil.example">x</a> ' * 200)[:5000]
HOSTILE = ['<a href="x">', "<b>", "a < b & c", "&amp;", LONG, "😀" * 3000, "²"]
TELEGRAM_MAX = 4096
# Lines that are joined into a longer text (a list, a card) — that text is paged or split,
# so each line alone need not fit a message... but every one of them does, with room to spare.
PLURAL_NUMBERS = {"zero": 0, "one": 1, "two": 2, "few": 3, "many": 5, "other": 1.5}

_ALLOWED_TAG = re.compile(
    r"</?(?:b|strong|i|em|u|ins|s|strike|del|code|pre|blockquote|tg-spoiler|a|span|tg-emoji)"
    r"(?:\s[^<>]*)?>"
)
_ENTITY = re.compile(r"&(?:lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);")


class _Variables(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()
        self.numeric: set[str] = set()
        self.selectors: dict[str, list[ast.Variant]] = {}

    def visit_VariableReference(self, node: ast.VariableReference) -> None:
        self.names.add(node.id.name)

    def visit_FunctionReference(self, node: ast.FunctionReference) -> None:
        for argument in node.arguments.positional:
            if isinstance(argument, ast.VariableReference):
                self.numeric.add(argument.id.name)
        self.generic_visit(node)

    def visit_SelectExpression(self, node: ast.SelectExpression) -> None:
        selector = node.selector
        if isinstance(selector, ast.FunctionReference) and selector.arguments.positional:
            selector = selector.arguments.positional[0]
        if isinstance(selector, ast.VariableReference):
            self.selectors.setdefault(selector.id.name, []).extend(node.variants)
        self.generic_visit(node)


def _messages() -> Iterator[tuple[str, ast.Message, str]]:
    for path in ftl_files():
        source = path.read_text("utf-8")
        for entry in FluentParser().parse(source).body:
            if isinstance(entry, ast.Message) and entry.value is not None:
                start, end = entry.span.start, entry.span.end  # type: ignore[union-attr]
                yield entry.id.name, entry, source[start:end]


MESSAGES = {key: (message, source) for key, message, source in _messages()}


def _variant_values(variants: list[ast.Variant]) -> list[Any]:
    values: list[Any] = []
    for variant in variants:
        key = variant.key
        if isinstance(key, ast.NumberLiteral):
            values.append(float(key.value) if "." in key.value else int(key.value))
        elif key.name in PLURAL_NUMBERS:
            values.append(PLURAL_NUMBERS[key.name])
        else:
            values.append(key.name)
    return values


def argument_sets(message: ast.Message) -> Iterator[dict[str, Any]]:
    """For each hostile value: every plain variable gets it; each choosing variable takes each
    of its variants in turn (the others their first)."""
    found = _Variables()
    found.visit(message)
    choices = {name: _variant_values(v) for name, v in found.selectors.items()}
    for hostile in HOSTILE:
        base: dict[str, Any] = {}
        for name in found.names:
            if name in choices:
                base[name] = choices[name][0]
            elif name in found.numeric:
                base[name] = 12345
            else:
                base[name] = hostile
        yield dict(base)
        for name, values in choices.items():
            for value in values[1:]:
                yield {**base, name: value}


def strict_html_problems(text: str) -> list[str]:
    """Our own reading of the Bot API's rules: every `<` opens an allowed tag, every `&` an
    entity Telegram knows, no bare `>`."""
    problems = []
    rest = _ALLOWED_TAG.sub("", text)
    if "<" in rest or ">" in rest:
        problems.append("bare < or >")
    if "&" in _ENTITY.sub("", rest):
        problems.append("bare & or unknown entity")
    return problems


def check_html(key: str, text: str, source: str) -> str:
    assert isinstance(text, Markup), key
    assert "{???}" not in text, key
    assert strict_html_problems(text) == [], (key, text[:300])
    plain, entities = parse_html(text)  # raises where Telegram would answer 400
    if "<a " not in source:
        links = [e for e in entities if e["type"] == "text_link"]
        assert links == [], (key, links)
    return plain


@pytest.fixture(scope="module")
def tr() -> Translator:
    return load_translator()


@pytest.mark.parametrize("key", sorted(MESSAGES))
def test_every_text_stays_html_with_hostile_values(tr: Translator, key: str) -> None:
    message, source = MESSAGES[key]
    for args in argument_sets(message):
        plain = check_html(key, tr(key, **args), source)
        assert utf16_len(plain) <= TELEGRAM_MAX, (key, utf16_len(plain))
        for value in args.values():
            named = isinstance(value, str) and f"${_name_of(args, value)}" in source
            if named and value in HOSTILE:
                assert shorten(value).rstrip("…").rstrip()[:40] in plain, (key, value[:40])
        label = tr.label(key, **args)
        assert "{???}" not in label
        assert "&lt;" not in label or "&lt;" in source, key  # labels are never escaped


def _name_of(args: dict[str, Any], value: str) -> str:
    return next(name for name, v in args.items() if v is value)


def test_a_value_is_escaped_once_and_nested_texts_stay_markup(tr: Translator) -> None:
    payee = tr("receipt-payee", payee="ООО <Ромашка> & Ко")
    assert "&lt;Ромашка&gt; &amp; Ко" in payee and "&amp;lt;" not in payee
    assert parse_html(payee)[0].endswith("ООО <Ромашка> & Ко")
    nested = tr("pay-epd-points", points=tr("points-count", count=3))
    assert "&amp;" not in nested and parse_html(nested)[0]
    assert tr.label("receipt-payee", payee="<b>").endswith("<b>")
    joined = Markup("\n").join([payee, "a < b"])
    assert joined.endswith("a &lt; b")


def test_a_long_value_is_shortened_not_refused(tr: Translator) -> None:
    answer = "глубина ямы < 5 см. " * 200  # 4 000 characters: Fluent alone makes it {???}
    text = tr("report-card-notes", notes=answer)
    plain = parse_html(text)[0]
    assert "{???}" not in text and plain.endswith("…")
    assert utf16_len(plain) <= MAX_VALUE + 50
    whole = tr("report-card-notes", notes=Markup.escape(answer))  # whole: for paged windows
    assert parse_html(whole)[0].endswith(answer.rstrip()) or answer.strip() in parse_html(whole)[0]


def test_strict_translator_raises_on_a_missing_variable_or_key(tr: Translator) -> None:
    from bot.i18n import TranslationError

    with pytest.raises(TranslationError):
        tr("receipt-payee")
    with pytest.raises(TranslationError):
        tr("no-such-key")
    Translator.failures.clear()  # expected here; any other failure fails its test


def test_production_logs_and_still_says_something(tr: Translator) -> None:
    Translator.strict = False
    try:
        assert tr("no-such-key") == tr("error-generic")
        assert tr("receipt-payee")  # the text Fluent could make
    finally:
        Translator.strict = True


@pytest.mark.parametrize("limit", [50, 300, PAGE_LIMIT])
def test_split_markup_keeps_tags_and_entities_whole(tr: Translator, limit: int) -> None:
    lines = [tr("report-card-notes", notes=Markup.escape(LONG))] + [
        tr("support-resident-card", number="7", name=h, level="x", linked="1", reports=1,
           autopays=2)
        for h in HOSTILE
    ]  # fmt: skip
    text = Markup("\n").join(lines) + Markup("\n<code>") + ("<x> & " * 300) + Markup("</code>")
    pages = split_markup(text, limit)
    assert len(pages) > 1
    seen = ""
    for page in pages:
        assert strict_html_problems(page) == [], page[:200]
        plain, _ = parse_html(page)
        assert utf16_len(plain) <= limit
        seen += plain
    assert seen.replace("\n", "").replace(" ", "") == parse_html(text)[0].replace("\n", "").replace(
        " ", ""
    )


def test_every_button_text_is_plain() -> None:
    """`plain_labels` marks every Tr inside a keyboard; window texts stay Markup."""
    from aiogram_dialog import Dialog

    from handlers import build_router
    from handlers.widgets import Tr, _mark

    root = build_router()
    dialogs = [r for r in root.chain_tail if isinstance(r, Dialog)]
    assert dialogs
    for dialog in dialogs:
        for window in dialog.windows.values():
            in_keyboard: list[Tr] = []
            _collect(window.keyboard, in_keyboard, set())
            assert all(t.plain for t in in_keyboard), [t.key for t in in_keyboard if not t.plain]
            in_text: list[Tr] = []
            _collect(window.text, in_text, set())
            assert not any(t.plain for t in in_text)
    assert _mark is not None


def _collect(widget: Any, found: list[Any], seen: set[int]) -> None:
    from aiogram_dialog.widgets.common import Whenable

    from handlers.widgets import Tr

    if id(widget) in seen:
        return
    seen.add(id(widget))
    if isinstance(widget, Tr):
        found.append(widget)
    elif isinstance(widget, list | tuple):
        for item in widget:
            _collect(item, found, seen)
    elif isinstance(widget, Whenable):
        for item in vars(widget).values():
            _collect(item, found, seen)


def test_hostile_values_cover_every_variable() -> None:
    """The walk finds variables (a guard against a test that checks nothing)."""
    counts = [len(list(argument_sets(m))) for m, _ in MESSAGES.values()]
    assert sum(counts) > len(MESSAGES) * len(HOSTILE) - 1
    assert any(
        len(set(itertools.chain.from_iterable(a.keys() for a in argument_sets(m)))) > 3
        for m, _ in MESSAGES.values()
    )
