"""Money: integer kopecks everywhere; formatting and strict parsing of what residents type.

What a resident may type as an amount (`parse_rub`):

- digits 0-9 only (ASCII). `str.isdigit()` and the regex class `\\d` also accept «²», «½»,
  Arabic-Indic and full-width digits; they are refused here, never converted silently
  (as for a UIN, Minfin order 107н: only the ASCII digits 0-9 are digits);
- a comma or a dot before one or two digits of kopecks: «1500,50», «1500.5»;
- a space (also the no-break, narrow no-break and thin spaces Telegram clients and copied
  texts carry) groups the rubles in threes only, as Russian typography splits long numbers
  (Мильчин, «Справочник издателя и автора»: groups of three digits from the right, separated
  by a space): «1 500» and «1 500 000,50» are amounts; «1500 50», «15 00» and «1 5000» are
  typos, refused with `reason` GROUPING so a handler can say so;
- a currency word after the number: «₽», «р», «р.», «руб», «руб.», «рубль», «рубля», «рублей»,
  «RUB», «RUR» (any case);
- nothing else: no sign, exponent, hex, underscore, «inf» or «nan». No float is ever involved.
"""

from __future__ import annotations

import re
import unicodedata
from enum import StrEnum

from domain.typed_text import visible

NBSP = "\u00a0"
NARROW_NBSP = "\u202f"
THIN_SPACE = "\u2009"
GROUP_SPACES = " " + NBSP + NARROW_NBSP + THIN_SPACE
ASCII_DIGITS = "0123456789"
MAX_RUBLE_DIGITS = 12  # up to 999 999 999 999 ₽: anything longer is not an amount anyone pays
_MAX_TEXT = 64  # characters; a longer text is not an amount (and the regexes stay cheap)

_SPACE = f"[{GROUP_SPACES}]"
_CURRENCY = re.compile(rf"{_SPACE}*(?:₽|руб(?:ль|ля|лей)?\.?|р\.?|rub\.?|rur\.?)\Z", re.IGNORECASE)
_NUMBER = re.compile(rf"(?P<rub>[0-9]+(?:{_SPACE}+[0-9]+)*)(?:[.,](?P<kop>[0-9]+))?")
_GROUPED = re.compile(rf"[1-9][0-9]{{0,2}}(?:{_SPACE}[0-9]{{3}})+")


class MoneyProblem(StrEnum):
    """Why a text is not an amount: handlers pick their hint by it."""

    FORMAT = "format"  # not a number at all («сто», «1e5», «0x10», «1_000», «1,2,3»)
    GROUPING = "grouping"  # spaces that do not group the rubles in threes («1500 50»)
    DECIMALS = "decimals"  # more than two digits after the comma («1,234»)
    SIGN = "sign"  # «-5», «+5»
    DIGITS = "digits"  # a digit that is not 0-9 («²», «١٢», «１２», «½»)
    TOO_LONG = "too_long"  # more than MAX_RUBLE_DIGITS digits of rubles


class MoneyParseError(ValueError):
    """The text is not an amount of money; `reason` says why (a MoneyProblem)."""

    def __init__(self, text: str, reason: MoneyProblem = MoneyProblem.FORMAT) -> None:
        super().__init__(f"{reason.value}: {text[:_MAX_TEXT]!r}")
        self.text = text
        self.reason = reason


def format_rub(kopecks: int) -> str:
    """Kopecks → rubles as Russian texts write them: 123456 → «1 234,56 ₽», where each space
    is a NO-BREAK SPACE (U+00A0), between the groups of three digits and before «₽», so a
    message never wraps inside an amount. `parse_rub` reads it back."""
    sign = "-" if kopecks < 0 else ""
    rub, kop = divmod(abs(kopecks), 100)
    groups = f"{rub:,}".replace(",", NBSP)
    return f"{sign}{groups},{kop:02d}{NBSP}₽"


def has_foreign_digit(text: str) -> bool:
    """True when the text holds a character Unicode gives a numeric value that is not 0-9:
    «²», «½», «Ⅻ», Arabic-Indic «١», full-width «１»…"""
    return any(ch not in ASCII_DIGITS and unicodedata.numeric(ch, None) is not None for ch in text)


def parse_rub(text: str) -> int:
    """What a resident typed → kopecks (rules in the module docstring); raises only
    MoneyParseError, whose `reason` tells the handler which hint to give."""
    stripped = visible(text)  # pasted: direction marks, zero-width at the ends
    if len(stripped) > _MAX_TEXT:
        raise MoneyParseError(text, MoneyProblem.TOO_LONG)
    if has_foreign_digit(stripped):
        raise MoneyParseError(text, MoneyProblem.DIGITS)
    if stripped.startswith(("-", "+", "\u2212")):
        raise MoneyParseError(text, MoneyProblem.SIGN)
    currency = _CURRENCY.search(stripped)
    number = stripped[: currency.start()] if currency else stripped
    match = _NUMBER.fullmatch(number)
    if match is None:
        raise MoneyParseError(text, MoneyProblem.FORMAT)
    rub, kop = match.group("rub"), match.group("kop") or ""
    if any(ch in GROUP_SPACES for ch in rub) and _GROUPED.fullmatch(rub) is None:
        raise MoneyParseError(text, MoneyProblem.GROUPING)
    if len(kop) > 2:
        raise MoneyParseError(text, MoneyProblem.DECIMALS)
    digits = "".join(ch for ch in rub if ch in ASCII_DIGITS)
    if len(digits.lstrip("0")) > MAX_RUBLE_DIGITS:
        raise MoneyParseError(text, MoneyProblem.TOO_LONG)
    return int(digits) * 100 + int(kop.ljust(2, "0"))
