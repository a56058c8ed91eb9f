"""Text a resident typed, as it shows: what shows nothing is not a value.

Telegram passes on any Unicode. Some of it shows nothing at all: white space, control
characters (Unicode category Cc, a NUL), format characters (Cf: zero-width spaces and joiners,
direction marks and overrides, the BOM), the rest of Unicode's Default_Ignorable_Code_Point
(the combining grapheme joiner, variation selectors, the Khmer and Mongolian invisible signs —
DerivedCoreProperties.txt, which `unicodedata` does not expose) and the letters and symbols
drawn blank (the Hangul fillers U+115F, U+1160, U+3164, U+FFA0 and the Braille blank U+2800,
used to send «empty» messages). A description, an answer or a comment made only of them would
be sent to the city as if the resident had written something.

Some of them belong to the character before them: a variation selector («❤️» is U+2764
U+FE0F), the tag characters of a subdivision flag («🏴󠁧󠁢󠁳󠁣󠁴󠁿»), combining marks. Those are
kept with what they follow (`extends`).
"""

from __future__ import annotations

import unicodedata

BLANK_LOOKALIKES = frozenset("\u115f\u1160\u3164\uffa0\u2800")

# Default_Ignorable_Code_Point (Unicode 15.1, DerivedCoreProperties.txt), as inclusive ranges.
_IGNORABLE = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)
IGNORABLE = _IGNORABLE  # for values read from elsewhere (domain/payment_qr.py)
_TAGS = (0xE0020, 0xE007F)  # a subdivision flag's tag letters and its CANCEL TAG
# Kept between two characters shown: they decide how the letters around them join (an emoji
# sequence; Persian «می‌خواهم», a Devanagari half form).
JOINERS = frozenset("\u200c\u200d")  # ZERO WIDTH NON-JOINER, ZERO WIDTH JOINER


def _ignorable(code: int) -> bool:
    return any(low <= code <= high for low, high in _IGNORABLE)


def shows_nothing(char: str) -> bool:
    """Whether one character is drawn as nothing by itself (white space included)."""
    return (
        char.isspace()
        or char in BLANK_LOOKALIKES
        or unicodedata.category(char) in ("Cc", "Cf")
        or _ignorable(ord(char))
    )


def extends(char: str) -> bool:
    """Whether `char` belongs to the character before it: a combining mark (Mn, Me — the
    variation selectors among them) or a flag's tag character."""
    return unicodedata.category(char) in ("Mn", "Me") or _TAGS[0] <= ord(char) <= _TAGS[1]


def visible(text: str) -> str:
    """`text` without what shows nothing at either end; "" when nothing in it shows. What
    extends the last character shown stays with it; inside, it all stays (a zero-width
    joiner holds an emoji sequence together, a space separates words)."""
    start, end = 0, len(text)
    while start < end and shows_nothing(text[start]):
        start += 1
    while end > start and shows_nothing(text[end - 1]):
        end -= 1
    while start < end < len(text) and extends(text[end]):
        end += 1
    return text[start:end]


def without_invisible(text: str) -> str:
    """`text` with every character that shows nothing dropped, white space kept: zero-width
    and direction characters (an override turns the rest of a line around) and blanks go;
    what extends a character shown stays, and a joiner or non-joiner between two shown."""
    kept: list[str] = []
    for index, char in enumerate(text):
        if char.isspace() or not shows_nothing(char):
            kept.append(char)
            continue
        after_shown = bool(kept) and not kept[-1].isspace()
        if after_shown and extends(char):
            kept.append(char)
        elif (
            after_shown
            and char in JOINERS
            and index + 1 < len(text)
            and not shows_nothing(text[index + 1])
        ):
            kept.append(char)
    return "".join(kept)
