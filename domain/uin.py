"""UIN (уникальный идентификатор начисления): offline validation before any network call.

The control digit algorithm is the one in shared/REFERENCE.md (Moscow DIT description).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

UIN_LENGTHS = (20, 25)

_CYRILLIC = "абвгдеёжзийклмнопрстуфхцчшщъыьэюя"
_LATIN = "abcdefghijklmnopqrstuvwxyz"


class UinProblem(StrEnum):
    EMPTY = "empty"
    LENGTH = "length"
    CHARACTERS = "characters"
    ZEROS = "zeros"
    CONTROL = "control"


@dataclass(frozen=True, slots=True)
class UinCheck:
    uin: str
    problem: UinProblem | None

    @property
    def ok(self) -> bool:
        return self.problem is None


def _char_value(ch: str) -> int:
    if ch.isdigit():
        return int(ch)
    low = ch.lower()
    # Old traffic-police UINs may contain letters: a letter counts as its position mod 10.
    if low in _CYRILLIC:
        return (_CYRILLIC.index(low) + 1) % 10
    return (_LATIN.index(low) + 1) % 10


def control_digit(body: str) -> int:
    """Control digit for the characters before it (REFERENCE.md, steps 1-4)."""
    values = [_char_value(ch) for ch in body]
    for shift in (0, 2):
        total = sum(v * ((i + shift) % 10 + 1) for i, v in enumerate(values))
        rest = total % 11
        if rest < 10:
            return rest
    return 0


def normalize(text: str) -> str:
    return "".join(text.split()).replace("-", "")


def check_uin(text: str) -> UinCheck:
    uin = normalize(text)
    if not uin:
        return UinCheck(uin, UinProblem.EMPTY)
    if not all(ch.isdigit() or ch.lower() in _CYRILLIC or ch.lower() in _LATIN for ch in uin):
        return UinCheck(uin, UinProblem.CHARACTERS)
    if len(uin) not in UIN_LENGTHS:
        return UinCheck(uin, UinProblem.LENGTH)
    if not uin[-1].isdigit():
        return UinCheck(uin, UinProblem.CHARACTERS)
    if set(uin) == {"0"}:
        return UinCheck(uin, UinProblem.ZEROS)
    if control_digit(uin[:-1]) != int(uin[-1]):
        return UinCheck(uin, UinProblem.CONTROL)
    return UinCheck(uin, None)


def with_control_digit(body: str) -> str:
    """Append the control digit: body of 19 or 24 characters → a valid UIN."""
    return body + str(control_digit(body))
