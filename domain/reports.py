"""«Наш город»: themes, the draft of a report, the city boundary, duplicate hints, the report's
lifecycle as the resident sees it, and confirming or refuting the fix."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

MAX_PHOTOS = 5
MAX_DESCRIPTION = 2000  # Open311 allows 4000; a chat message this long is already an essay
DUPLICATE_RADIUS_M = 50
CONFIRM_DAYS = 15
EARTH_RADIUS_M = 6_371_000


@dataclass(frozen=True, slots=True)
class Theme:
    code: str
    name: str
    group: str
    keywords: tuple[str, ...]
    description: str = ""
    photo_required: bool = False
    season: tuple[str, str] | None = None  # ("MM-DD", "MM-DD"), may wrap the new year

    def in_season(self, day: date) -> bool:
        if self.season is None:
            return True
        start, end = self.season
        today = f"{day.month:02d}-{day.day:02d}"
        return start <= today <= end if start <= end else today >= start or today <= end


def _words(text: str) -> list[str]:
    cleaned = "".join(ch.lower() if ch.isalnum() else " " for ch in text.replace("ё", "е"))
    return [word for word in cleaned.split() if len(word) >= 3]


def _stem_match(query: str, candidate: str) -> bool:
    """Russian endings vary («яму», «ямы», «фонари»): compare the first letters."""
    shortest = min(len(query), len(candidate))
    size = max(2, shortest - 1 if shortest <= 5 else shortest - 2)
    return query[:size] == candidate[:size]


def search_themes(themes: Iterable[Theme], query: str, today: date, limit: int = 10) -> list[Theme]:
    """Themes for what the resident typed, best first; out-of-season themes are left out."""
    words = _words(query)
    if not words:
        return []
    scored: list[tuple[int, str, Theme]] = []
    for theme in themes:
        if not theme.in_season(today):
            continue
        keys = [w for k in theme.keywords for w in _words(k)]
        name = _words(theme.name)
        score = sum(
            3 * any(_stem_match(w, k) for k in keys) + 2 * any(_stem_match(w, n) for n in name)
            for w in words
        )
        if score:
            scored.append((-score, theme.name, theme))
    return [theme for _score, _name, theme in sorted(scored)[:limit]]


@dataclass(frozen=True, slots=True)
class Point:
    lat: float
    long: float


def distance_m(a: Point, b: Point) -> float:
    """Great-circle distance (haversine): metres between two points."""
    lat1, lat2 = math.radians(a.lat), math.radians(b.lat)
    dlat, dlong = lat2 - lat1, math.radians(b.long - a.long)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlong / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(h))


def inside(point: Point, polygon: Sequence[Point]) -> bool:
    """Ray casting: is the point inside the city's boundary polygon?"""
    result = False
    for i, a in enumerate(polygon):
        b = polygon[i - 1]
        if (a.lat > point.lat) != (b.lat > point.lat):
            cross = (b.long - a.long) * (point.lat - a.lat) / (b.lat - a.lat) + a.long
            if point.long < cross:
                result = not result
    return result


class ReportStatus(StrEnum):
    """The platform's extended statuses (Open311 extension)."""

    MODERATION = "moderation"
    IN_WORK = "in_work"
    ANSWERED = "answered"
    REJECTED = "rejected"
    CLOSED = "closed"
    RETURNED = "returned"

    @property
    def final(self) -> bool:
        return self in (ReportStatus.REJECTED, ReportStatus.CLOSED)


@dataclass(frozen=True, slots=True)
class ReportUpdate:
    update_id: str
    status: ReportStatus
    description: str
    media_url: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class Report:
    id: str
    theme_code: str
    theme_name: str
    status: ReportStatus
    address: str
    point: Point | None
    requested_at: datetime
    expected_at: datetime | None
    status_notes: str = ""
    answer_media_url: str | None = None
    confirm_until: datetime | None = None
    account_id: str | None = None

    def can_confirm(self, now: datetime) -> bool:
        """«Подтвердить» / «Не устранено» while the answer is fresh (15 days)."""
        return (
            self.status is ReportStatus.ANSWERED
            and self.confirm_until is not None
            and now < self.confirm_until
        )


def nearby_duplicates(
    reports: Iterable[Report], theme_code: str, point: Point, radius_m: float = DUPLICATE_RADIUS_M
) -> list[Report]:
    """Open reports on the same theme close enough to be the same problem, nearest first."""
    found = [
        (distance_m(point, r.point), r.id, r)
        for r in reports
        if r.theme_code == theme_code and not r.status.final and r.point is not None
    ]
    return [r for d, _id, r in sorted(found) if d <= radius_m]


@dataclass(slots=True)
class Draft:
    """What the resident has entered so far; kept between updates and across restarts."""

    theme_code: str | None = None
    theme_name: str | None = None
    photo_required: bool = False
    lat: float | None = None
    long: float | None = None
    address: str | None = None
    photos: list[str] = field(default_factory=list)  # Telegram file ids
    description: str = ""
    stage: str = "theme"  # the step to come back to

    @property
    def point(self) -> Point | None:
        return None if self.lat is None or self.long is None else Point(self.lat, self.long)

    def missing(self) -> list[str]:
        """Steps still to do before the report can be sent: theme, place, photo."""
        steps = []
        if self.theme_code is None:
            steps.append("theme")
        if self.point is None and not self.address:
            steps.append("place")
        if self.photo_required and not self.photos:
            steps.append("photo")
        return steps

    def to_json(self) -> dict[str, object]:
        return {
            "theme_code": self.theme_code,
            "theme_name": self.theme_name,
            "photo_required": self.photo_required,
            "lat": self.lat,
            "long": self.long,
            "address": self.address,
            "photos": list(self.photos),
            "description": self.description,
            "stage": self.stage,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Draft:
        draft = cls()
        for name in ("theme_code", "theme_name", "address"):
            value = data.get(name)
            setattr(draft, name, value if isinstance(value, str) else None)
        draft.photo_required = bool(data.get("photo_required"))
        for name in ("lat", "long"):
            value = data.get(name)
            setattr(draft, name, float(value) if isinstance(value, (int, float)) else None)
        photos = data.get("photos")
        draft.photos = [str(p) for p in photos] if isinstance(photos, list) else []
        description = data.get("description")
        draft.description = description if isinstance(description, str) else ""
        stage = data.get("stage")
        draft.stage = stage if isinstance(stage, str) else "theme"
        return draft


class PhotoProblem(StrEnum):
    TOO_MANY = "too_many"


def add_photos(draft: Draft, file_ids: Sequence[str]) -> PhotoProblem | None:
    """All or nothing: an album that would exceed five photos adds none of them."""
    if len(draft.photos) + len(file_ids) > MAX_PHOTOS:
        return PhotoProblem.TOO_MANY
    draft.photos.extend(f for f in file_ids if f not in draft.photos)
    return None


def clean_description(text: str) -> str | None:
    """Plain text for Open311 (which refuses HTML); None when it is over the limit."""
    cleaned = text.strip().replace("<", "‹").replace(">", "›")
    return cleaned if len(cleaned) <= MAX_DESCRIPTION else None
