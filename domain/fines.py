"""Looking for traffic fines by a vehicle registration certificate (СТС) or a driver's licence.

Both are 10 characters and an all-digit СТС looks exactly like a licence number, so the resident
says which one they type; these functions normalise and check it before any network call."""

from __future__ import annotations

import re
from enum import StrEnum

from domain.typed_text import visible

# СТС: 2 digits (region), 2 digits or Cyrillic capitals (series), 6 digits (number); a driver's
# licence: 10 digits (the city's contract, `GET /api/v1/fines`: a licence with letters is refused
# there, and the resident would be told «not found» as if the number were right).
# ASCII digits only: [0-9], not \d, which also matches Arabic-Indic, full-width and other
# scripts' digits (the city platform accepts only 0-9; other digits must never be sent on).
_STS = re.compile(r"[0-9]{2}[0-9А-ЯЁ]{2}[0-9]{6}")
_LICENCE = re.compile(r"[0-9]{10}")
# Latin letters that look like the Cyrillic ones used in series, typed on a Latin keyboard.
_LOOKALIKES = str.maketrans("ABEKMHOPCTYX", "АВЕКМНОРСТУХ")


class DocumentKind(StrEnum):
    STS = "sts"
    DRIVER_LICENSE = "driver_license"


def normalize_document(kind: DocumentKind, text: str) -> str | None:
    """'77 ав 123456' → '77АВ123456'; None when it cannot be a document of this kind."""
    typed = "".join(visible(text).split())  # pasted: direction marks at the ends go
    number = typed.replace("-", "").upper().translate(_LOOKALIKES)
    pattern = _STS if kind is DocumentKind.STS else _LICENCE
    return number if pattern.fullmatch(number) else None
