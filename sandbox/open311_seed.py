"""Demo «Наш город» reports, relative to the sandbox clock at start-up.

Other residents' reports around the gazetteer (an open and a closed «Яма на дороге» at
Тверская ул., 7, another open one about 100 m away at Тверская ул., 9, a rejected one, one in
moderation, one older than 90 days) give the bot's duplicate hint something to find; demo-full
has reports filed on the site or in the app: one answered (confirmable for about 13 more days),
one in work and one closed long ago (250 days, outside the default 90-day window).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sandbox import gazetteer
from sandbox.clock import MOSCOW
from sandbox.data import FULL
from sandbox.open311 import (
    NOTE_CLOSED,
    NOTE_CONFIRMED,
    ExtendedStatus,
    Location,
    RequestBook,
    Submission,
)
from sandbox.themes import theme_by_name

POTHOLE = "Яма на дороге"
LAMP = "Не горит фонарь"
BINS = "Переполнены мусорные контейнеры"


@dataclass(frozen=True, slots=True)
class _Step:
    after: timedelta  # after the request was made
    to: ExtendedStatus
    notes: str


@dataclass(frozen=True, slots=True)
class _Seed:
    number: int
    theme: str
    address: str
    account_id: str
    age: timedelta
    description: str | None
    photos: int = 1
    attributes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    steps: tuple[_Step, ...] = ()


_SEEDS = (
    _Seed(
        101,
        POTHOLE,
        "Тверская ул., 7",
        "C-200117",
        timedelta(days=2, hours=3),
        "Глубокая яма у перехода, машины объезжают её по встречной полосе",
        attributes={"pit_size": ("large",)},
    ),
    _Seed(
        102,
        POTHOLE,
        "Тверская ул., 7",
        "C-200342",
        timedelta(days=40),
        "Яма на правой полосе",
        steps=(_Step(timedelta(days=4), ExtendedStatus.CLOSED, NOTE_CONFIRMED),),
    ),
    _Seed(
        103,
        POTHOLE,
        "Тверская ул., 9",
        "C-200508",
        timedelta(hours=3),
        "Выбоина у бордюра",
        attributes={"pit_size": ("small",)},
    ),
    _Seed(
        104,
        "Граффити на стене",
        "ул. Мясницкая, 20",
        "C-200117",
        timedelta(days=10),
        None,
        steps=(
            _Step(
                timedelta(minutes=30),
                ExtendedStatus.REJECTED,
                "Отклонено: фасад не содержится городом, обратитесь в управляющую компанию",
            ),
        ),
    ),
    _Seed(105, BINS, "ул. Покровка, 17", "C-200342", timedelta(minutes=20), None, photos=0),
    _Seed(106, LAMP, "Кутузовский пр-т, 26", "C-200508", timedelta(days=150), None),
    _Seed(
        107,
        "Не убран снег во дворе",
        "Профсоюзная ул., 56",
        "C-200117",
        timedelta(days=4),
        "Двор не чистили с понедельника",
        photos=2,
    ),
    _Seed(
        108,
        LAMP,
        "ул. Арбат, 10",
        FULL.account_id,
        timedelta(days=5),
        "Не горят три фонаря у дома 10",
        attributes={"lamp_count": ("several",)},
    ),
    _Seed(
        109,
        BINS,
        "Ленинский пр-т, 30",
        FULL.account_id,
        timedelta(days=1),
        "Контейнеры переполнены третий день",
        attributes={"container_type": ("mixed",)},
    ),
    _Seed(
        110,
        LAMP,
        "Профсоюзная ул., 56",
        FULL.account_id,
        timedelta(days=250),
        "Фонарь во дворе мигает",
        steps=(_Step(timedelta(days=6), ExtendedStatus.CLOSED, NOTE_CLOSED),),
    ),
)


def seed_requests(book: RequestBook, now: datetime) -> None:
    """Add the demo reports, each with its history up to `now`."""
    moment = now.astimezone(MOSCOW).replace(second=0, microsecond=0)
    for seed in _SEEDS:
        place = _place(seed.address)
        photos = tuple(
            book.media.placeholder(f"seed-{seed.number}-{index}.jpg", "before")
            for index in range(1, seed.photos + 1)
        )
        submission = Submission(
            theme=theme_by_name(seed.theme),
            location=Location(place.lat, place.long, place.address, place.id, place.zipcode),
            description=seed.description,
            media=photos,
            account_id=seed.account_id,
            attributes=seed.attributes,
        )
        requested = moment - seed.age
        request = book.create(submission, at=requested, number=seed.number)
        for step in seed.steps:
            book.advance(request.id, step.to, notes=step.notes, at=requested + step.after)
    book.catch_up(now)


def _place(address: str) -> gazetteer.Place:
    place = gazetteer.exact(address)
    if place is None:
        raise KeyError(address)
    return place
