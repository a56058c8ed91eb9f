"""Text a resident typed, as it shows: what shows nothing is not a value.

Telegram passes on any Unicode. Some of it shows nothing at all: white space, control
characters (Unicode category Cc, a NUL), format characters (Cf: zero-width spaces and joiners,
direction marks and overrides, the BOM) and the letters and symbols drawn blank (the Hangul
fillers U+115F, U+1160, U+3164, U+FFA0 and the Braille blank U+2800, used to send
«empty» messages). A description, an answer or a comment made only of them would be sent to the
city as if the resident had written something.
"""

from __future__ import annotations

import unicodedata

BLANK_LOOKALIKES = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def shows_nothing(char: str) -> bool:
    """Whether one character is drawn as nothing (white space included)."""
    return char.isspace() or char in BLANK_LOOKALIKES or unicodedata.category(char) in ("Cc", "Cf")


def visible(text: str) -> str:
    """`text` without what shows nothing at either end; "" when nothing in it shows. Inside
    it all stays: a zero-width joiner holds an emoji sequence together, a space separates words."""
    start, end = 0, len(text)
    while start < end and shows_nothing(text[start]):
        start += 1
    while end > start and shows_nothing(text[end - 1]):
        end -= 1
    return text[start:end]
