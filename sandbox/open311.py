"""«Наш город» reports of one sandbox app: service requests and their lifecycle.

Extended statuses (the Open311 `status` in brackets): `moderation` (open) → `in_work` (open)
→ `answered` (open) → `closed` (closed) when the author confirms or 15 days pass; `answered`
→ `returned` (open) when the author refutes, and `returned` → `answered` again; `rejected`
(closed) only by the sandbox control. By the sandbox clock, moderation ends after 1 hour and
the city answers 3 days after a request went (back) to work. Every change is an update.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from sandbox.clock import MOSCOW, Clock
from sandbox.idempotency import AnswerMemory
from sandbox.media import MediaStore
from sandbox.open311_common import Open311Error
from sandbox.themes import Theme

MODERATION_TIME = timedelta(hours=1)
WORK_TIME = timedelta(days=3)
CONFIRM_WINDOW = timedelta(days=15)
ANSWER_WORKING_DAYS = 8
FIRST_NEW_NUMBER = 1001  # requests posted at run time are NG-YYYY-001001, ...


class ExtendedStatus(StrEnum):
    MODERATION = "moderation"
    IN_WORK = "in_work"
    ANSWERED = "answered"
    REJECTED = "rejected"
    CLOSED = "closed"
    RETURNED = "returned"

    @property
    def status(self) -> str:
        """The Open311 status: `open` or `closed`."""
        closed = self in (ExtendedStatus.REJECTED, ExtendedStatus.CLOSED)
        return "closed" if closed else "open"


# The sandbox control's moves: target → the statuses it may come from.
ADVANCES: dict[ExtendedStatus, frozenset[ExtendedStatus]] = {
    ExtendedStatus.IN_WORK: frozenset({ExtendedStatus.MODERATION, ExtendedStatus.RETURNED}),
    ExtendedStatus.ANSWERED: frozenset(
        {ExtendedStatus.MODERATION, ExtendedStatus.IN_WORK, ExtendedStatus.RETURNED}
    ),
    ExtendedStatus.REJECTED: frozenset(
        {ExtendedStatus.MODERATION, ExtendedStatus.IN_WORK, ExtendedStatus.RETURNED}
    ),
    ExtendedStatus.CLOSED: frozenset(
        {
            ExtendedStatus.MODERATION,
            ExtendedStatus.IN_WORK,
            ExtendedStatus.ANSWERED,
            ExtendedStatus.RETURNED,
        }
    ),
}

NOTE_CREATED = "Сообщение принято и отправлено на модерацию"
NOTE_CONFIRMED = "Житель подтвердил, что проблема решена"
NOTE_EXPIRED = "Срок подтверждения истёк: решение считается принятым"
NOTE_REJECTED = "Отклонено: вопрос не относится к компетенции городских служб"
NOTE_CLOSED = "Работы завершены, сообщение закрыто"


@dataclass(frozen=True, slots=True)
class Location:
    lat: float | None
    long: float | None
    address: str | None
    address_id: str | None
    zipcode: str | None


@dataclass(frozen=True, slots=True)
class Submission:
    """What the resident sent, validated."""

    theme: Theme
    location: Location
    description: str | None
    media: tuple[str, ...]  # absolute URLs, or /media/... paths of this sandbox
    account_id: str | None
    attributes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    contact: Mapping[str, str] = field(default_factory=dict)  # first_name, email, ...


@dataclass(frozen=True, slots=True)
class Update:
    number: int  # 1, 2, ... within the request
    extended_status: ExtendedStatus
    description: str
    media: str | None
    at: datetime
    by_author: bool = False  # written by the request's author (confirm, refute), not the city


@dataclass(slots=True)
class ServiceRequest:
    id: str
    submission: Submission
    requested_at: datetime
    expected_at: datetime
    updates: list[Update]
    answer_media: str | None = None
    confirm_until: datetime | None = None

    @property
    def theme(self) -> Theme:
        return self.submission.theme

    @property
    def extended_status(self) -> ExtendedStatus:
        return self.updates[-1].extended_status

    @property
    def updated_at(self) -> datetime:
        return self.updates[-1].at

    @property
    def status_notes(self) -> str:
        return self.updates[-1].description

    @property
    def service_notice(self) -> str:
        day = self.expected_at.astimezone(MOSCOW).strftime("%d.%m.%Y")
        return f"Ответ будет дан до {day} (в течение {ANSWER_WORKING_DAYS} рабочих дней)"


def add_working_days(start: datetime, days: int) -> datetime:
    """`start` moved on by `days` Moscow working days (Saturdays and Sundays skipped; public
    holidays are ignored), keeping the time of day."""
    moment = start.astimezone(MOSCOW)
    counted = 0
    while counted < days:
        moment += timedelta(days=1)
        if moment.weekday() < 5:
            counted += 1
    return moment


def request_id(number: int, requested_at: datetime) -> str:
    return f"NG-{requested_at.astimezone(MOSCOW).year}-{number:06d}"


class RequestBook:
    """Every service request of one sandbox app; the lifecycle follows `clock`."""

    def __init__(self, clock: Clock, media: MediaStore) -> None:
        self.clock = clock
        self.media = media
        self._requests: dict[str, ServiceRequest] = {}
        self._next_number = FIRST_NEW_NUMBER
        # POST requests.json with an Idempotence-Key: (account, key) → the request it made
        self.created_by_key: AnswerMemory[str] = AnswerMemory()
        # Called once per confirmed request; each returns the points it credited for it.
        self.confirm_listeners: list[Callable[[ServiceRequest], int]] = []

    # ------------------------------------------------------------ reading

    def get(self, service_request_id: str) -> ServiceRequest | None:
        self.catch_up()
        return self._requests.get(service_request_id)

    def existing(self, service_request_id: str) -> ServiceRequest:
        """The request, or a 404 Open311Error."""
        found = self.get(service_request_id)
        if found is None:
            raise Open311Error(404, f"service_request_id {service_request_id} not found")
        return found

    def all(self) -> list[ServiceRequest]:
        self.catch_up()
        return list(self._requests.values())

    # ------------------------------------------------------------ changes

    def create(
        self, submission: Submission, *, at: datetime | None = None, number: int | None = None
    ) -> ServiceRequest:
        """A new request in moderation (seeds pass their own moment and number)."""
        requested = _second(at or self.clock())
        if number is None:
            number, self._next_number = self._next_number, self._next_number + 1
        request = ServiceRequest(
            id=request_id(number, requested),
            submission=submission,
            requested_at=requested,
            expected_at=add_working_days(requested, ANSWER_WORKING_DAYS),
            updates=[],
        )
        first_photo = submission.media[0] if submission.media else None
        self._add(request, ExtendedStatus.MODERATION, NOTE_CREATED, first_photo, requested)
        self._requests[request.id] = request
        return request

    def confirm(self, service_request_id: str, account_id: str) -> tuple[ServiceRequest, int]:
        """Close the request as the author confirmed it: (request, points credited for it)."""
        request = self._awaiting_author(service_request_id, account_id)
        moment = _second(self.clock())
        self._add(request, ExtendedStatus.CLOSED, NOTE_CONFIRMED, None, moment, by_author=True)
        request.confirm_until = None
        return request, sum(listener(request) for listener in self.confirm_listeners)

    def refute(
        self, service_request_id: str, account_id: str, description: str, media: str | None
    ) -> ServiceRequest:
        request = self._awaiting_author(service_request_id, account_id)
        moment = _second(self.clock())
        self._add(request, ExtendedStatus.RETURNED, description, media, moment, by_author=True)
        request.answer_media = None
        request.confirm_until = None
        return request

    def advance(
        self,
        service_request_id: str,
        target: ExtendedStatus,
        *,
        notes: str | None = None,
        media: str | None = None,
        at: datetime | None = None,
    ) -> ServiceRequest:
        """The sandbox control (and the seeds): move a request on now (or `at`)."""
        moment = _second(at or self.clock())
        self.catch_up(moment)
        request = self._requests.get(service_request_id)
        if request is None:
            raise Open311Error(404, f"service_request_id {service_request_id} not found")
        allowed = ADVANCES.get(target, frozenset())
        if request.extended_status not in allowed:
            raise Open311Error(
                409,
                f"a request in {request.extended_status} cannot be moved to {target}",
            )
        self._move(request, target, moment, notes=notes, media=media)
        return request

    def catch_up(self, until: datetime | None = None) -> None:
        """Apply every automatic step due by `until` (default: now), each at its due time."""
        moment = until or self.clock()
        for request in self._requests.values():
            while (step := _next_step(request)) is not None and step[0] <= moment:
                when, target = step
                notes = NOTE_EXPIRED if target is ExtendedStatus.CLOSED else None
                self._move(request, target, when, notes=notes)

    # ------------------------------------------------------------ internals

    def _awaiting_author(self, service_request_id: str, account_id: str) -> ServiceRequest:
        request = self.existing(service_request_id)
        if request.submission.account_id != account_id:
            raise Open311Error(409, "only the author of the request can confirm or refute it")
        if request.extended_status is not ExtendedStatus.ANSWERED:
            raise Open311Error(
                409,
                f"the request is {request.extended_status}: only an answered request can be "
                "confirmed or refuted, within 15 days of the answer",
            )
        return request

    def _move(
        self,
        request: ServiceRequest,
        target: ExtendedStatus,
        at: datetime,
        *,
        notes: str | None = None,
        media: str | None = None,
    ) -> None:
        agency = request.theme.agency
        if target is ExtendedStatus.ANSWERED:
            request.confirm_until = at + CONFIRM_WINDOW
            number = len(request.updates) + 1
            request.answer_media = media or self.media.placeholder(
                f"answer-{request.id}-{number}.jpg", "after"
            )
            until = request.confirm_until.astimezone(MOSCOW).strftime("%d.%m.%Y")
            default = (
                f"{agency}: работы выполнены. Подтвердите решение или верните сообщение "
                f"в работу до {until}"
            )
            self._add(request, target, notes or default, request.answer_media, at)
            return
        if request.extended_status is ExtendedStatus.ANSWERED:
            request.confirm_until = None
        defaults = {
            ExtendedStatus.IN_WORK: f"Сообщение передано в работу: {agency}",
            ExtendedStatus.REJECTED: NOTE_REJECTED,
            ExtendedStatus.CLOSED: NOTE_CLOSED,
        }
        self._add(request, target, notes or defaults[target], media, at)

    @staticmethod
    def _add(
        request: ServiceRequest,
        status: ExtendedStatus,
        description: str,
        media: str | None,
        at: datetime,
        *,
        by_author: bool = False,
    ) -> None:
        number = len(request.updates) + 1
        request.updates.append(Update(number, status, description, media, at, by_author))


def _next_step(request: ServiceRequest) -> tuple[datetime, ExtendedStatus] | None:
    """The automatic step due next for this request, if any: (when, to)."""
    last = request.updates[-1]
    if last.extended_status is ExtendedStatus.MODERATION:
        return last.at + MODERATION_TIME, ExtendedStatus.IN_WORK
    if last.extended_status in (ExtendedStatus.IN_WORK, ExtendedStatus.RETURNED):
        return last.at + WORK_TIME, ExtendedStatus.ANSWERED
    if last.extended_status is ExtendedStatus.ANSWERED and request.confirm_until is not None:
        return request.confirm_until, ExtendedStatus.CLOSED
    return None


def _second(moment: datetime) -> datetime:
    return moment.astimezone(MOSCOW).replace(microsecond=0)
