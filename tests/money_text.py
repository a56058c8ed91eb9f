"""Amounts as the bot shows them. `format_rub` puts a NO-BREAK SPACE (U+00A0) between groups of
digits and before «₽», so an amount never wraps; tests write amounts with ordinary spaces, to be
read, and pass the text through `nb`, which puts U+00A0 exactly there (and nowhere else)."""

from __future__ import annotations

import re

NBSP = "\u00a0"
_GROUP = re.compile(r"(?<=[0-9]) (?=[0-9]{3}(?![0-9]))")  # «8 124,50» → 8⍽124,50
_CURRENCY = re.compile(r"(?<=[0-9]) (?=₽)")  # «124,50 ₽» → 124,50⍽₽


def nb(text: str) -> str:
    """'Оплатить 8 124,50 ₽' → 'Оплатить 8\\u00a0124,50\\u00a0₽': the spaces inside amounts
    become no-break spaces; other spaces (and typed amounts: use the text as it is) stay."""
    return _CURRENCY.sub(NBSP, _GROUP.sub(NBSP, text))
