"""Texts from Fluent files in locales/<locale>/*.ftl."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import structlog
from fluent.runtime import FluentBundle, FluentResource
from fluent.syntax import FluentParser, ast

LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"
log = structlog.get_logger(__name__)


class Translator:
    """`tr(<key>, name=value)` → the text. Keys must exist; a test checks code ⇄ .ftl."""

    def __init__(self, bundle: FluentBundle, locale: str) -> None:
        self._bundle = bundle
        self.locale = locale

    def has(self, key: str) -> bool:
        return self._bundle.has_message(key)

    def __call__(self, key: str, **args: Any) -> str:
        if not self._bundle.has_message(key):
            log.error("i18n.missing_key", key=key)
            key = "error-generic"
        message = self._bundle.get_message(key)
        text, errors = self._bundle.format_pattern(message.value, args)
        if errors:
            log.error("i18n.format_error", key=key, errors=[str(e) for e in errors])
        return str(text)


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
    bundle = FluentBundle([locale], use_isolating=False)
    for path in ftl_files(locale, root):
        resource = FluentParser().parse(path.read_text("utf-8"))
        junk = [entry for entry in resource.body if isinstance(entry, ast.Junk)]
        if junk:
            raise ValueError(f"{path}: cannot parse {junk[0].content[:60]!r}")
        bundle.add_resource(FluentResource(path.read_text("utf-8")))
    return Translator(bundle, locale)
