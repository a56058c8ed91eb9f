"""Looking for traffic fines by a vehicle registration certificate (СТС) or a driver's licence.

Both are 10 characters and an all-digit СТС looks exactly like a licence number, so the resident
says which one they type; these functions normalise and check it before any network call."""

from __future__ import annotations

import re
from enum import StrEnum

# СТС: 2 digits (region), 2 digits or Cyrillic capitals (series), 6 digits (number).
_STS = re.compile(r"^\d{2}[\dА-ЯЁ]{2}\d{6}$")
_LICENCE = re.compile(r"^\d{2}[\dА-ЯЁ]{2}\d{6}$")
# Latin letters that look like the Cyrillic ones used in series, typed on a Latin keyboard.
_LOOKALIKES = str.maketrans("ABEKMHOPCTYX", "АВЕКМНОРСТУХ")


class DocumentKind(StrEnum):
    STS = "sts"
    DRIVER_LICENSE = "driver_license"


def normalize_document(kind: DocumentKind, text: str) -> str | None:
    """'77 ав 123456' → '77АВ123456'; None when it cannot be a document of this kind."""
    number = "".join(text.split()).replace("-", "").upper().translate(_LOOKALIKES)
    pattern = _STS if kind is DocumentKind.STS else _LICENCE
    return number if pattern.match(number) else None
