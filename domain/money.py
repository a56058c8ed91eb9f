"""Money: integer kopecks everywhere; formatting and tolerant parsing of what residents type."""

from __future__ import annotations

import re

NBSP = "\u00a0"

_MONEY_RE = re.compile(r"^(?P<rub>\d{1,12})(?:[.,](?P<kop>\d{1,2}))?$")


class MoneyParseError(ValueError):
    """The text is not an amount of money."""


def format_rub(kopecks: int) -> str:
    """1234.56 rubles in kopecks → '1 234,56 ₽' (thousands separated by a space)."""
    sign = "-" if kopecks < 0 else ""
    rub, kop = divmod(abs(kopecks), 100)
    groups = f"{rub:,}".replace(",", " ")
    return f"{sign}{groups},{kop:02d} ₽"


def parse_rub(text: str) -> int:
    """'1500', '1 500', '1500,50', '1500.5', '1 500 ₽' → kopecks. Never goes through float."""
    cleaned = text.strip().replace(NBSP, "").replace(" ", "").replace("\u202f", "")
    for suffix in ("₽", "руб.", "руб", "р.", "р"):
        if cleaned.lower().endswith(suffix):
            cleaned = cleaned[: -len(suffix)]
            break
    match = _MONEY_RE.match(cleaned)
    if match is None:
        raise MoneyParseError(text)
    kop = (match.group("kop") or "0").ljust(2, "0")
    return int(match.group("rub")) * 100 + int(kop)
