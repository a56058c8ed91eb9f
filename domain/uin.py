"""UIN (уникальный идентификатор начисления): offline validation before any network call.

The control digit algorithm and the letter values are the ones the Moscow Department of
Information Technologies (DIT) describes, with its table; Minfin order 107н gives the lengths
20 and 25 and the all-zero UIN. Only the ASCII digits 0-9 are digits: anything else that
Unicode calls a digit («²», Arabic-Indic, full-width) is refused as an invalid character, never
converted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from domain.typed_text import visible

UIN_LENGTHS = (20, 25)
DIGITS = "0123456789"  # ASCII only: «²», «١», «１» are not digits of a UIN

# Letters of old traffic-police UINs and their values before `mod 10` (the Moscow DIT table,
# used by two independent public implementations). Ё and Й are not in it; Latin letters that
# look like Cyrillic ones take the Cyrillic value, the other Latin letters go on after Я
# (D 29 … Z 42).
_CYRILLIC_VALUES = {
    "А": 1, "Б": 2, "В": 3, "Г": 4, "Д": 5, "Е": 6, "Ж": 7, "З": 8, "И": 9, "К": 10,
    "Л": 11, "М": 12, "Н": 13, "О": 14, "П": 15, "Р": 16, "С": 17, "Т": 18, "У": 19,
    "Ф": 20, "Х": 21, "Ц": 22, "Ч": 23, "Ш": 24, "Щ": 25, "Э": 26, "Ю": 27, "Я": 28,
    "Ъ": 33, "Ы": 36, "Ь": 42,
}  # fmt: skip
_LATIN_LOOKALIKE_VALUES = {
    "A": 1, "B": 3, "E": 6, "K": 10, "M": 12, "H": 13, "O": 14, "P": 16, "C": 17, "T": 18,
    "Y": 19, "X": 21,
}  # fmt: skip
_OTHER_LATIN_VALUES = {
    "D": 29, "F": 30, "G": 31, "I": 32, "J": 33, "L": 34, "N": 35, "Q": 36, "R": 37, "S": 38,
    "U": 39, "V": 40, "W": 41, "Z": 42,
}  # fmt: skip


def _values() -> dict[str, int]:
    """Every character a UIN may hold → its value in the control sum. Lower case is accepted
    as typed; the table is explicit, so no case mapping can let another character in
    (dotless ı, long ſ, the Kelvin sign…)."""
    values = {digit: int(digit) for digit in DIGITS}
    for table in (_CYRILLIC_VALUES, _LATIN_LOOKALIKE_VALUES, _OTHER_LATIN_VALUES):
        for letter, value in table.items():
            values[letter] = values[letter.lower()] = value % 10
    return values


_VALUES = _values()
_UPPER = {
    letter.lower(): letter
    for table in (_CYRILLIC_VALUES, _LATIN_LOOKALIKE_VALUES, _OTHER_LATIN_VALUES)
    for letter in table
}


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


def char_value(ch: str) -> int:
    """A character's value in the control sum: a digit its own, a letter the DIT table's value
    mod 10 (Л 11 → 1, О 14 → 4). KeyError for anything else (check_uin refuses it first)."""
    return _VALUES[ch]


def control_digit(body: str) -> int:
    """Control digit for the characters before it (the DIT description's steps 1-4)."""
    values = [char_value(ch) for ch in body]
    for shift in (0, 2):
        total = sum(v * ((i + shift) % 10 + 1) for i, v in enumerate(values))
        rest = total % 11
        if rest < 10:
            return rest
    return 0


def normalize(text: str) -> str:
    """Spaces and hyphens dropped, the table's lower-case letters in upper case (each letter
    keeps its script: a Latin M and a Cyrillic М make different UINs). A UIN pasted with its
    label («УИН: 1881…», «№ 1881…», as an SMS or Госуслуги put it) or a full stop after it is
    read without them (review 33d): У, И and Н are letters of the table, so the label would
    otherwise count as three characters of the number."""
    shown = visible(text)  # pasted: marks at the ends go
    labelled = _LABEL.match(shown)
    if labelled is not None:
        rest = _compact(labelled.group("rest"))
        # «УИН 1881…», «УИН: А000…»: a label and what follows; glued («УИН1881…»), only when
        # what follows is a whole UIN (a UIN may start with a letter of the table).
        if labelled.group("sep") or len(rest.rstrip(".,;:")) in UIN_LENGTHS:
            shown = rest
    typed = _compact(shown).lstrip("№#")
    if len(typed.rstrip(".,;:")) in UIN_LENGTHS:  # a stop after the whole number, not a typo
        typed = typed.rstrip(".,;:")
    return "".join(_UPPER.get(ch, ch) for ch in typed)


# What a UIN is grouped with when typed or pasted: the ASCII hyphen and its typographic kin
# (U+2010 hyphen, U+2011 non-breaking hyphen, U+2012–U+2015 dashes, U+2212 minus — what a
# phone's keyboard or a PDF gives; review 36d).
_GROUPING_DASHES = str.maketrans(dict.fromkeys("-\u2010\u2011\u2012\u2013\u2014\u2015\u2212"))


def _compact(text: str) -> str:
    return "".join(text.split()).translate(_GROUPING_DASHES)


# A UIN's label as pasted («УИН: …», «UIN №…»), Cyrillic or Latin, any case.
_LABEL = re.compile(r"^\s*(?:УИН|UIN)(?P<sep>[\s:№#]*)(?P<rest>\S.*)$", re.IGNORECASE | re.DOTALL)


def check_uin(text: str) -> UinCheck:
    uin = normalize(text)
    if not uin:
        return UinCheck(uin, UinProblem.EMPTY)
    if not all(ch in _VALUES for ch in uin):
        return UinCheck(uin, UinProblem.CHARACTERS)
    if len(uin) not in UIN_LENGTHS:
        return UinCheck(uin, UinProblem.LENGTH)
    if uin[-1] not in DIGITS:
        return UinCheck(uin, UinProblem.CHARACTERS)
    if set(uin) == {"0"}:
        return UinCheck(uin, UinProblem.ZEROS)
    if control_digit(uin[:-1]) != int(uin[-1]):
        return UinCheck(uin, UinProblem.CONTROL)
    return UinCheck(uin, None)


def with_control_digit(body: str) -> str:
    """Append the control digit: body of 19 or 24 characters → a valid UIN."""
    return body + str(control_digit(body))
