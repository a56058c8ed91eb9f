"""Quiet hours a resident sets in «Настройки»: while they last, only urgent notifications go
out; the others wait and arrive, at their end, as one digest (bot/outbox.py).

Times are Moscow wall-clock minutes of the day (0..1439). A range runs from `start` up to, not
including, `end`, and crosses midnight when `end < start` (22:00–09:00). `start == end` is an
empty range: quiet hours off. A typed range of equal ends («23:00–23:00») is refused rather
than read as «off» or «all day», so a slip never silences or floods the chat by surprise.

What a resident may type (`parse_range`): «HH:MM–HH:MM» with a hyphen, an en or em dash or a
minus sign between (spaces around it allowed); hours 0..23 (one or two digits; «24:00» as
midnight), minutes 00..59, a dot instead of the colon, or hours alone («23-8», «23–08»: on the
hour); ASCII digits only; at most 32 characters.

A notice that offers to stop a charge («Пропустить этот раз» on an autopay's reminder, or on a
«Пришёл счёт» whose autopay will pay it) is never held past the charge: `send_by` is the latest
moment the quiet hours may hold it to (the charge less `HOLD_MARGIN`); the outbox sends it at
once, like an urgent one, when the resident's quiet hours would hold it longer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from domain.typed_text import visible

MOSCOW = ZoneInfo("Europe/Moscow")
DAY = 24 * 60
# A notice offering to stop a charge reaches the resident at least this long before it.
HOLD_MARGIN = timedelta(hours=1)
# The kinds that offer «Пропустить этот раз» (domain/autopaying.py, domain/bill_discovery.py;
# a `bill_issued` carries `charge_at` only when its autopay will pay it).
STOPPABLE_KINDS = frozenset({"autopay_reminder", "bill_issued"})
_MAX_TEXT = 32
_RANGE = re.compile(
    r"(?P<h1>[0-9]{1,2})(?:[:.](?P<m1>[0-9]{2}))?\s*[-\u2010-\u2015\u2212]\s*"
    r"(?P<h2>[0-9]{1,2})(?:[:.](?P<m2>[0-9]{2}))?",
    re.ASCII,
)


@dataclass(frozen=True, slots=True)
class QuietHours:
    start: int  # minutes after midnight, Moscow time
    end: int

    def __post_init__(self) -> None:
        if not (0 <= self.start < DAY and 0 <= self.end < DAY):
            raise ValueError(f"quiet hours out of the day: {self.start}–{self.end}")

    @property
    def off(self) -> bool:
        return self.start == self.end

    def covers_minute(self, minute: int) -> bool:
        """Whether a minute of the day (0..1439) is quiet."""
        if self.start < self.end:
            return self.start <= minute < self.end
        if self.start > self.end:
            return minute >= self.start or minute < self.end
        return False

    def covers(self, moment: datetime) -> bool:
        """Whether `moment` (any time zone) falls in the quiet hours."""
        return self.covers_minute(minute_of_day(moment))

    def label(self) -> str:
        """«22:00–09:00» (an en dash), as shown."""
        return f"{_hhmm(self.start)}\u2013{_hhmm(self.end)}"

    def button_id(self) -> str:
        """ASCII, for a button's callback data: «1320-540», «off»."""
        return "off" if self.off else f"{self.start}-{self.end}"


OFF = QuietHours(0, 0)
DEFAULT = QuietHours(22 * 60, 9 * 60)
# The ranges offered as buttons in «Настройки» (besides «off»).
PRESETS = (DEFAULT, QuietHours(23 * 60, 8 * 60), QuietHours(0, 7 * 60))


def minute_of_day(moment: datetime) -> int:
    local = moment.astimezone(MOSCOW)
    return local.hour * 60 + local.minute


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


class RangeProblem(StrEnum):
    NOT_A_RANGE = "not_a_range"  # also «1e5», «²», foreign digits, 5 000 characters
    NO_SUCH_TIME = "no_such_time"  # «25:00», «23:60»
    EMPTY = "empty"  # «23:00–23:00»


def parse_range(text: str) -> QuietHours | RangeProblem:
    """What the resident typed → quiet hours, or why it is not a range. Never raises."""
    stripped = visible(text)  # pasted: direction marks, zero-width at the ends
    if len(stripped) > _MAX_TEXT:
        return RangeProblem.NOT_A_RANGE
    match = _RANGE.fullmatch(stripped)
    if match is None:
        return RangeProblem.NOT_A_RANGE
    ends = []
    for hours, minutes in (("h1", "m1"), ("h2", "m2")):
        h, m = int(match.group(hours)), int(match.group(minutes) or 0)
        if h == 24 and m == 0:
            h = 0  # «24:00» is midnight
        if h > 23 or m > 59:
            return RangeProblem.NO_SUCH_TIME
        ends.append(h * 60 + m)
    if ends[0] == ends[1]:
        return RangeProblem.EMPTY
    return QuietHours(ends[0], ends[1])


def by_button_id(button_id: str) -> QuietHours | None:
    """A preset button's id back to its range; anything else (a forged id) is None."""
    if button_id == OFF.button_id():
        return OFF
    return next((preset for preset in PRESETS if preset.button_id() == button_id), None)


def send_by(kind: str, data: dict[str, Any] | None) -> datetime | None:
    """For a notice that offers to stop a charge: the latest moment quiet hours may hold it
    to — the charge (`charge_at`, an ISO moment) less HOLD_MARGIN. A reminder written before
    it carried the moment has only the charge's day (`due`): its start counts. Anything
    else, or a moment that does not parse: None (held like any other notice)."""
    if kind not in STOPPABLE_KINDS or not isinstance(data, dict):
        return None
    charge: datetime | None = None
    try:
        if isinstance(data.get("charge_at"), str):
            charge = datetime.fromisoformat(data["charge_at"])
        elif kind == "autopay_reminder" and isinstance(data.get("due"), str):
            charge = datetime.combine(date.fromisoformat(data["due"]), time(), MOSCOW)
    except ValueError:
        return None
    if charge is None or charge.tzinfo is None:
        return None
    return charge - HOLD_MARGIN
