"""«Наш город»: themes, the draft of a report, the city boundary, duplicate hints, the report's
lifecycle as the resident sees it, and confirming or refuting the fix."""

from __future__ import annotations

import hashlib
import json
import math
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from functools import lru_cache

from rapidfuzz import fuzz

from domain.money import has_foreign_digit
from domain.typed_text import visible

MAX_PHOTOS = 5
MAX_DESCRIPTION = 2000  # Open311 allows 4000; a chat message this long is already an essay
MAX_ADDRESS = 200  # a typed address longer than this is not an address
MAX_ANSWER = 255  # an Open311 `string` attribute is one line of at most 255 characters
DUPLICATE_RADIUS_M = 50
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


THEME_CHOICES = 3  # buttons offered for what the resident typed
WORD_CUTOFF = 80  # rapidfuzz similarity (0–100) from which two words are the same word
MAX_QUERY_WORDS = 12  # a pasted essay is not a theme search


def _words(text: str) -> list[str]:
    cleaned = "".join(ch if ch.isalnum() else " " for ch in text.lower().replace("ё", "е"))
    return [word for word in cleaned.split() if len(word) >= 3]


@lru_cache(maxsize=4096)
def _vocabulary(theme: Theme) -> tuple[frozenset[str], frozenset[str]]:
    """The words of a theme's name and of its keywords; a theme is immutable, and the same
    catalogue is searched again and again (bounded: a catalogue holds a few hundred)."""
    keywords = frozenset().union(*(_words(k) for k in theme.keywords))
    return frozenset(_words(theme.name)), keywords


def _stem(word: str) -> str:
    """A rough cut of Russian endings («ямы», «яма» → «ям»; «вывезли», «вывезен» → «вывез»)."""
    if len(word) >= 6:
        return word[:-2]
    return word[:-1] if len(word) >= 3 else word


def _similarity(query: str, word: str) -> float:
    """How alike two words are, typos («фанарь») and word forms («сосульки») forgiven."""
    if _stem(query) == _stem(word):
        return 100.0
    if min(len(query), len(word)) <= 3:
        return 0.0  # short words: a one-letter typo is another word («люк», «лук»)
    return max(
        fuzz.ratio(query, word, score_cutoff=WORD_CUTOFF),
        fuzz.ratio(_stem(query), _stem(word), score_cutoff=WORD_CUTOFF),
    )


def search_themes(
    themes: Iterable[Theme], query: str, today: date, limit: int = THEME_CHOICES
) -> list[Theme]:
    """Themes for what the resident typed, best first (the catalogue's order breaks ties);
    out-of-season themes are left out. Each word of the query counts once, by its closest
    word in the theme's name or keywords (the everyday words the city lists for it), a little
    more when both have it."""
    words = list(dict.fromkeys(_words(query)))[:MAX_QUERY_WORDS]
    if not words or limit <= 0:
        return []
    scored: list[tuple[float, int, Theme]] = []
    for order, theme in enumerate(themes):
        if not theme.in_season(today):
            continue
        name, keywords = _vocabulary(theme)
        score = 0.0
        for word in words:
            in_name = max((_similarity(word, v) for v in name), default=0.0)
            in_keywords = max((_similarity(word, v) for v in keywords), default=0.0)
            score += max(in_name, in_keywords) + 0.2 * min(in_name, in_keywords)
        if score:
            scored.append((-score, order, theme))
    scored.sort(key=lambda item: (item[0], item[1]))
    return [theme for _score, _order, theme in scored[:limit]]


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
    """Ray casting: is the point inside one ring (closed or not)? A city of several areas, with
    holes, is `domain.boundary.Boundary`."""
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

    @classmethod
    def read(cls, value: object) -> ReportStatus:
        """The platform's extended status; one the extension does not list (added after this
        bot) is IN_WORK — not final, so the report is still followed — never an error that
        hides the resident's other reports or stops the status poll (review 27)."""
        try:
            return cls(str(value))
        except ValueError:
            return cls.IN_WORK


@dataclass(frozen=True, slots=True)
class ReportUpdate:
    update_id: str
    status: ReportStatus
    description: str
    media_url: str | None
    at: datetime
    by_resident: bool = False  # written by the report's author (a refutation), not the city


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
    points_credited: int = 0  # in the answer to a confirmation: the points it brought
    description: str = ""  # what the author wrote
    media_url: str | None = None  # the author's first photo, as the city keeps it

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


MAX_DRAFT_NAME = 32  # characters of `Draft.draft_id` (the column `tracked_reports.draft_id`)


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
    answers: dict[str, list[str]] = field(default_factory=dict)  # attribute code → values
    send_key: str | None = None  # Idempotence-Key of the send, stored before the POST
    uploaded: dict[str, str] = field(default_factory=dict)  # photo file id → its media URL
    sent_as: str | None = None  # `fingerprint()` of what went out with `send_key`
    sent_at: datetime | None = None  # when the send under `send_key` was made (UTC)
    # This draft's own name, kept on the report its send made (`TrackedReport.draft_id`): a
    # screen whose draft went is told that report's number. None: saved before it was kept.
    draft_id: str | None = field(default_factory=lambda: secrets.token_hex(8))
    # Telegram's message_id of the resident's message the description was taken from: an edit
    # of that message is answered with how to change the description (Telegram sends edits
    # as updates of their own; the text taken stays as it came).
    description_message: int | None = None

    def fingerprint(self) -> str:
        """What a send would say (theme, place, photos, description, answers), hashed: a
        draft edited after a send no longer matches the `sent_as` stored with its key."""
        said = [
            self.theme_code,
            self.lat,
            self.long,
            self.address,
            self.photos,
            self.description,
            sorted(self.answers.items()),
        ]
        return hashlib.sha256(json.dumps(said, ensure_ascii=False).encode()).hexdigest()[:32]

    def unchanged_since_sent(self) -> bool:
        """A send went out with `send_key` and the draft still says the same."""
        return self.send_key is not None and self.sent_as == self.fingerprint()

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
            "answers": {code: list(values) for code, values in self.answers.items()},
            "send_key": self.send_key,
            "uploaded": dict(self.uploaded),
            "sent_as": self.sent_as,
            "sent_at": self.sent_at.isoformat() if self.sent_at is not None else None,
            "draft_id": self.draft_id,
            "description_message": self.description_message,
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
        answers = data.get("answers")  # absent in drafts saved before attributes were asked
        if isinstance(answers, dict):
            draft.answers = {
                str(code): [str(v) for v in values]
                for code, values in answers.items()
                if isinstance(values, list) and values
            }
        send_key = data.get("send_key")
        draft.send_key = send_key if isinstance(send_key, str) else None
        sent_as = data.get("sent_as")  # absent in drafts saved before it was kept
        draft.sent_as = sent_as if isinstance(sent_as, str) else None
        sent_at = data.get("sent_at")  # absent in drafts keyed before it was kept
        try:
            draft.sent_at = datetime.fromisoformat(sent_at) if isinstance(sent_at, str) else None
        except ValueError:
            draft.sent_at = None
        draft_id = data.get("draft_id")  # absent in drafts saved before it was kept
        named = isinstance(draft_id, str) and 0 < len(draft_id) <= MAX_DRAFT_NAME
        draft.draft_id = str(draft_id) if named else None  # any other: named again when used
        described = data.get("description_message")
        draft.description_message = described if type(described) is int else None
        uploaded = data.get("uploaded")
        if isinstance(uploaded, dict):
            draft.uploaded = {str(f): url for f, url in uploaded.items() if isinstance(url, str)}
        if draft.send_key is not None and draft.sent_as is None:
            # Keyed before `sent_as` was kept: that release never moved a key on an edit, so
            # the draft as it stands is the best guess of what went out with it.
            draft.sent_as = draft.fingerprint()
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
    cleaned = visible(text).replace("<", "‹").replace(">", "›")
    return cleaned if len(cleaned) <= MAX_DESCRIPTION else None


# --- a theme's questions (Open311 service definition attributes) --------------------------

ASKED_DATATYPES = frozenset({"string", "number", "text", "singlevaluelist", "multivaluelist"})
_NUMBER = re.compile(r"^-?[0-9]{1,9}([.,][0-9]{1,6})?$")
_ANY_NUMBER = re.compile(r"^-?[0-9]+([.,][0-9]+)?$")  # digits, but more than _NUMBER takes


@dataclass(frozen=True, slots=True)
class AttributeChoice:
    key: str
    name: str


@dataclass(frozen=True, slots=True)
class ThemeQuestion:
    """One attribute of a theme's Open311 service definition."""

    code: str
    datatype: str  # string, number, text, datetime, singlevaluelist, multivaluelist
    required: bool
    description: str
    order: int = 0
    hint: str = ""  # datatype_description
    choices: tuple[AttributeChoice, ...] = ()
    variable: bool = True  # False: a notice for the resident, nothing to answer

    @property
    def asked(self) -> bool:
        """Asked in the dialog: variable and of a datatype the bot can ask. (An optional
        `datetime` is not asked; the platform's themes have no required one.)"""
        return self.variable and (self.datatype in ASKED_DATATYPES or self.required)

    @property
    def is_list(self) -> bool:
        return self.datatype in ("singlevaluelist", "multivaluelist")

    def choice_name(self, key: str) -> str:
        return next((c.name for c in self.choices if c.key == key), key)


def questions(definition: Iterable[ThemeQuestion]) -> list[ThemeQuestion]:
    """The questions to ask, in the definition's order."""
    return sorted((q for q in definition if q.asked), key=lambda q: q.order)


def notices(definition: Iterable[ThemeQuestion]) -> list[str]:
    """What the city tells the resident about this theme (attributes with variable=false)."""
    return [q.description for q in sorted(definition, key=lambda q: q.order) if not q.variable]


def unanswered(definition: Iterable[ThemeQuestion], draft: Draft) -> list[ThemeQuestion]:
    """Required questions still without an answer: the report cannot be sent yet."""
    return [q for q in questions(definition) if q.required and not draft.answers.get(q.code)]


class AnswerProblem(StrEnum):
    EMPTY = "empty"
    NOT_A_NUMBER = "not_a_number"
    FOREIGN_DIGITS = "foreign_digits"
    TOO_LONG = "too_long"
    TOO_BIG = "too_big"  # a number of more digits than any entrance, floor or post has
    NOT_A_CHOICE = "not_a_choice"


def typed_answer(question: ThemeQuestion, text: str) -> str | AnswerProblem:
    """A typed answer as it will be sent, or what is wrong with it.

    Numbers take ASCII digits only («３» or «٣» would not be read by the platform the way the
    resident means it); a decimal comma becomes a point."""
    value = visible(text)
    if not value:
        return AnswerProblem.EMPTY
    if question.datatype == "number":
        if has_foreign_digit(value):
            return AnswerProblem.FOREIGN_DIGITS
        if not _NUMBER.match(value):
            return AnswerProblem.TOO_BIG if _ANY_NUMBER.match(value) else AnswerProblem.NOT_A_NUMBER
        return value.replace(",", ".")
    cleaned = value.replace("<", "‹").replace(">", "›")
    if question.datatype == "text":
        return cleaned if len(cleaned) <= MAX_DESCRIPTION else AnswerProblem.TOO_LONG
    cleaned = " ".join(cleaned.split())  # a string is one line
    return cleaned if len(cleaned) <= MAX_ANSWER else AnswerProblem.TOO_LONG


def choose(question: ThemeQuestion, draft: Draft, key: str) -> AnswerProblem | None:
    """A list button: a singlevaluelist takes the key, a multivaluelist toggles it."""
    if key not in {c.key for c in question.choices}:
        return AnswerProblem.NOT_A_CHOICE  # a forged or stale button
    if question.datatype == "multivaluelist":
        chosen = list(draft.answers.get(question.code, []))
        chosen = [k for k in chosen if k != key] if key in chosen else [*chosen, key]
        order = [c.key for c in question.choices]
        draft.answers[question.code] = sorted(chosen, key=order.index)
        if not draft.answers[question.code]:
            del draft.answers[question.code]
    else:
        draft.answers[question.code] = [key]
    return None


def shown_answer(question: ThemeQuestion, values: Sequence[str]) -> str:
    """An answer as the resident reads it: list keys become their names."""
    if question.is_list:
        return ", ".join(question.choice_name(v) for v in values)
    return ", ".join(values)


def answers_to_send(definition: Iterable[ThemeQuestion], draft: Draft) -> dict[str, list[str]]:
    """The answers the theme defines (answers left from another theme are not sent)."""
    codes = {q.code for q in questions(definition)}
    return {code: values for code, values in draft.answers.items() if code in codes and values}


def is_russian(text: str) -> bool:
    """Has Cyrillic letters: a platform's sentence the resident can read as it is."""
    return any("\u0400" <= ch <= "\u04ff" for ch in text)
