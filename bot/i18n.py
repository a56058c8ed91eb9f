"""Texts from Fluent files in locales/<locale>/*.ftl.

Text that can't break a message: `tr(key, **values)` returns `markupsafe.Markup` — HTML for
a message sent with parse_mode=HTML. Markup comes only from the .ftl files; every string value
that is not already Markup (a resident's words, a QR code's fields, the city's answers, an
address, a fund's name) is escaped, so it can neither be refused by Telegram («can't parse
entities») nor become a link. A value from another `tr` call (Markup) goes in as it is.
`tr.label(key, **values)` is the same text as plain, unescaped text: for what Telegram shows
as it is (button texts, callback alerts, topic names, invoices).

A string value longer than `MAX_VALUE` characters is shortened with «…» (Fluent itself turns a
placeable over 2,500 characters into `{???}`); a caller that must show a value whole passes it
escaped as Markup (`handlers.texts.whole`) into a window that pages its text."""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Any, ClassVar

import structlog
from fluent.runtime import FluentBundle
from fluent.syntax import FluentParser, ast
from markupsafe import Markup, escape

import locales

# The text rules live with the handlers that need them too; the dependency points bot → handlers.
from handlers.texts import ELLIPSIS as ELLIPSIS
from handlers.texts import MAX_VALUE as MAX_VALUE
from handlers.texts import shorten as shorten
from handlers.texts import utf16_len as utf16_len

LOCALES_DIR = Path(locales.__file__).resolve().parent  # package data: in the checkout and the wheel
log = structlog.get_logger(__name__)

# All outside values of one text together: with many of them, each gets its share, so that a
# text with several long values still fits in a message (4,096) with its own words.
VALUES_BUDGET = 3000
# Fluent refuses a placeable over 2,500 characters; longer values (Markup, which is never cut,
# or an escaped value grown by `&amp;`) go in as a short token and are put back afterwards.
_FLUENT_PART = 2000
# Private-use characters (never in a .ftl text) around a nonce drawn for each text: an outside
# value that happens to hold such characters (old carrier emoji, icon fonts) can never name a
# token, so a long value is put back only where it was placed.
_TOKEN = "\ue000{}:{}\ue001"


class TranslationError(RuntimeError):
    """A missing key or a Fluent format error while `Translator.strict` is on (tests)."""


class TextsMissing(RuntimeError):
    """No texts for the locale (say, an install without the .ftl files): start-up refuses."""


# Keys without which no reply can be written at all: start-up checks them, so an install that
# lost its texts stops at once instead of failing every reply.
ESSENTIAL_KEYS = ("error-generic", "nav-back", "pager-next")


class Translator:
    """`tr(<key>, name=value)` → the text (Markup). Keys must exist; a test checks code ⇄ .ftl.
    Implements `handlers.ports.Texts`, what handlers depend on.

    In production a missing key or a format error is logged and the resident still reads a
    sentence («Что-то пошло не так» or the text Fluent could make); with `strict` (switched on
    by the tests) it raises `TranslationError`, and every such failure is kept in `failures`."""

    strict: ClassVar[bool] = False
    failures: ClassVar[list[str]] = []

    def __init__(self, bundle: FluentBundle, locale: str) -> None:
        self._bundle = bundle
        self.locale = locale
        # (key, html) → the text of a key formatted without values: the same every time (the
        # bundle is read-only), and buttons and titles are most of an update's texts. Bounded
        # by the keys in the files; only texts that formatted without an error are kept.
        self._fixed: dict[tuple[str, bool], str] = {}

    def has(self, key: str) -> bool:
        return self._bundle.has_message(key)

    def __call__(self, key: str, **args: Any) -> Markup:
        return Markup(self._format(key, args, html=True))

    def label(self, key: str, **args: Any) -> str:
        """Plain text: nothing escaped (Telegram shows button texts, alerts, topic names and
        invoice fields as they are). Markup values (another `tr`) are unescaped."""
        return self._format(key, args, html=False)

    def _fail(self, event: str, key: str, detail: str) -> None:
        log.error(event, key=key, errors=detail)
        if self.strict:
            Translator.failures.append(f"{key}: {detail}")
            raise TranslationError(f"{event} {key}: {detail}")

    def _format(self, key: str, args: dict[str, Any], *, html: bool) -> str:
        if not args:
            fixed = self._fixed.get((key, html))
            if fixed is None:
                fixed, failed = self._formatted(key, args, html=html)
                if not failed:
                    self._fixed[(key, html)] = fixed
            return fixed
        return self._formatted(key, args, html=html)[0]

    def _formatted(self, key: str, args: dict[str, Any], *, html: bool) -> tuple[str, bool]:
        """The text, and whether the key was missing or Fluent reported an error."""
        failed = False
        if not self._bundle.has_message(key):
            failed = True
            self._fail("i18n.missing_key", key, "no such key")
            key = "error-generic"
        values: dict[str, Any] = {}
        late: dict[str, str] = {}
        nonce = ""
        outside = sum(1 for v in args.values() if isinstance(v, str) and not isinstance(v, Markup))
        limit = min(MAX_VALUE, VALUES_BUDGET // max(outside, 1))
        for name, value in args.items():
            if isinstance(value, str):
                value = _value(value, html=html, limit=limit)
                if len(value) > _FLUENT_PART:
                    nonce = nonce or secrets.token_hex(8)
                    token = _TOKEN.format(nonce, len(late))
                    late[token] = value
                    value = token
            values[name] = value
        pattern = self._bundle.get_message(key).value
        if pattern is None:  # a message with attributes only
            failed = True
            self._fail("i18n.missing_key", key, "no value")
            pattern = self._bundle.get_message("error-generic").value
            assert pattern is not None  # an essential key (load_translator)
        text, errors = self._bundle.format_pattern(pattern, values)
        if errors:
            failed = True
            self._fail("i18n.format_error", key, "; ".join(str(e) for e in errors))
        text = str(text)
        if late:  # one pass: a value put back is never searched for tokens again
            text = re.sub(
                "|".join(re.escape(token) for token in late), lambda m: late[m.group(0)], text
            )
        return text, failed


def _value(value: str, *, html: bool, limit: int) -> str:
    if isinstance(value, Markup):  # another tr's text: whole, already safe
        return str(value) if html else value.unescape()
    value = shorten(value, limit)  # valid Unicode, cut
    return str(escape(value)) if html else value


def ftl_files(locale: str = "ru", root: Path = LOCALES_DIR) -> list[Path]:
    return sorted((root / locale).glob("*.ftl"))


def defined_keys(locale: str = "ru", root: Path = LOCALES_DIR) -> set[str]:
    keys: set[str] = set()
    for path in ftl_files(locale, root):
        for entry in FluentParser().parse(path.read_text("utf-8")).body:
            if isinstance(entry, ast.Message):
                keys.add(entry.id.name)
    return keys


def load_translator(locale: str = "ru", root: Path = LOCALES_DIR) -> Translator:
    """The texts of `locale` under `root`. Raises `TextsMissing` when there are no .ftl files
    or an essential key is absent, `ValueError` when a file does not parse.

    The bundle is built once per process for the same files (same paths, sizes and modification
    times) and shared: parsing the texts takes a tenth of a second, and every application made
    in one process (a test each, a replica's restart) would pay it again. A bundle is read-only
    once built (Fluent only caches compiled messages in it), so sharing it is safe."""
    files = ftl_files(locale, root)
    if not files:
        raise TextsMissing(f"no texts: {root / locale} holds no .ftl files")
    signature = (locale, tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files))
    bundle = _BUNDLES.get(signature)
    if bundle is None:
        bundle = _build_bundle(locale, files)
        missing = [key for key in ESSENTIAL_KEYS if not bundle.has_message(key)]
        if missing:
            raise TextsMissing(f"no texts: {root / locale} lacks {', '.join(missing)}")
        _BUNDLES.clear()  # one set of texts at a time: an edited file replaces the old bundle
        _BUNDLES[signature] = bundle
    return Translator(bundle, locale)


_BUNDLES: dict[tuple[str, tuple[tuple[str, int, int], ...]], FluentBundle] = {}


def _build_bundle(locale: str, files: list[Path]) -> FluentBundle:
    bundle = FluentBundle([locale], use_isolating=False)
    for path in files:
        # fluent.runtime's FluentResource is this same parse: parsed once, checked, added.
        resource = FluentParser().parse(path.read_text("utf-8"))
        junk = [entry for entry in resource.body if isinstance(entry, ast.Junk)]
        if junk:
            raise ValueError(f"{path}: cannot parse {(junk[0].content or '')[:60]!r}")
        bundle.add_resource(resource)
    return bundle
