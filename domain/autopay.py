"""Autopay: schedules in Moscow time, due periods, and one run per (autopay, period).

Kinds (the city platform's «Мои платежи» autopayments):
- BILL: pay the issued bill of a service in full when it appears, up to the resident's limit;
- FIXED: a fixed amount on a schedule — monthly on a day (29–31 fall on the last day of
  shorter months) or weekly on a weekday — to a charity fund (≥ 50 ₽).

A run's key is (autopay id, period): the database refuses a second run for the same period,
and the run's idempotency key makes the platform refuse a second charge.

An autopay the city keeps refusing for a lasting reason (the card removed, expired or asking for
3-D Secure, the consent revoked, the fund gone, an amount above the ceiling) is PAUSED with its
`paused_reason`; one the city does not answer is pushed back (`back_off`), so neither can hold
the head of the earliest-due-first queue.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from domain.bills import BillKind
from domain.payable import Payable

MOSCOW = ZoneInfo("Europe/Moscow")
CHARGE_AT = time(10, 0)  # charges run at 10:00 Moscow time, after quiet hours
RETRY_DAYS = 2  # declined or insufficient funds: tried again on the next two days
BACKOFF_FIRST = timedelta(minutes=2)  # the city did not answer: 2, 4, 8 … minutes later
BACKOFF_MAX = timedelta(hours=1)
BILL_KINDS = (BillKind.EPD, BillKind.MGTS, BillKind.KINDERGARTEN, BillKind.CLUB)


class AutopayKind(StrEnum):
    BILL = "bill"
    FIXED = "fixed"


class Frequency(StrEnum):
    MONTHLY = "monthly"
    WEEKLY = "weekly"


@dataclass(frozen=True, slots=True)
class Schedule:
    frequency: Frequency
    day: int  # MONTHLY: 1..31; WEEKLY: 0 (Monday)..6

    def __post_init__(self) -> None:
        limit = 31 if self.frequency is Frequency.MONTHLY else 6
        low = 1 if self.frequency is Frequency.MONTHLY else 0
        if not low <= self.day <= limit:
            raise ValueError(f"day {self.day} out of range for {self.frequency}")

    def date_in(self, year: int, month: int) -> date:
        """MONTHLY: the day in that month, clamped to its last day."""
        last = calendar.monthrange(year, month)[1]
        return date(year, month, min(self.day, last))

    def next_date(self, after: date) -> date:
        """The first scheduled date strictly after `after`."""
        if self.frequency is Frequency.WEEKLY:
            return after + timedelta(days=(self.day - after.weekday() - 1) % 7 + 1)
        candidate = self.date_in(after.year, after.month)
        if candidate > after:
            return candidate
        year, month = (after.year + 1, 1) if after.month == 12 else (after.year, after.month + 1)
        return self.date_in(year, month)

    def period_of(self, day: date) -> str:
        """The period a scheduled date pays for: '2026-11' monthly, '2026-W48' weekly."""
        if self.frequency is Frequency.WEEKLY:
            iso = day.isocalendar()
            return f"{iso.year}-W{iso.week:02d}"
        return f"{day.year}-{day.month:02d}"


def charge_moment(day: date) -> datetime:
    """When a charge for a scheduled date is due: 10:00 Moscow time that day."""
    return datetime.combine(day, CHARGE_AT, MOSCOW)


def next_due(schedule: Schedule, now: datetime) -> datetime:
    """The next charge moment after `now` (aware): today's if 10:00 has not passed yet."""
    today = now.astimezone(MOSCOW).date()
    yesterday = today - timedelta(days=1)
    candidate = schedule.next_date(yesterday)
    if charge_moment(candidate) > now:
        return charge_moment(candidate)
    return charge_moment(schedule.next_date(candidate))


class AutopayStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    DELETED = "deleted"


class PauseReason(StrEnum):
    """Why an autopay is PAUSED: by the resident, or by a tick the city refused for good."""

    BY_RESIDENT = "resident"  # «Приостановить»
    CARD_REMOVED = "card_removed"  # the city no longer knows the saved card
    CARD_EXPIRED = "card_expired"
    NEEDS_CONFIRMATION = "needs_confirmation"  # the bank asks for 3-D Secure on every charge
    RELINK = "relink"  # the city no longer accepts our tokens (consent revoked, unlinked)
    TARGET_GONE = "target_gone"  # the fund (or the bill) is unknown to the city
    OVER_CEILING = "over_ceiling"  # the amount is above the operator's autopay ceiling

    @property
    def card(self) -> bool:
        """Fixed by choosing another card («Сменить карту» resumes the autopay)."""
        return self in _CARD_REASONS


_CARD_REASONS = frozenset(
    {PauseReason.CARD_REMOVED, PauseReason.CARD_EXPIRED, PauseReason.NEEDS_CONFIRMATION}
)


@dataclass(frozen=True, slots=True)
class AutopayTarget:
    """What an autopay pays: a service's bills (of one payer code — one flat — or of any when
    None) or a fund."""

    kind: AutopayKind
    bill_kind: BillKind | None = None
    payer_code: str | None = None
    fund_id: str | None = None

    def overlaps(self, other: AutopayTarget) -> bool:
        """Whether one bill or fund could be paid by both: the same service with the same
        payer code (None, or empty, covers any) — or the same fund."""
        if self.kind is not other.kind:
            return False
        if self.kind is AutopayKind.FIXED:
            return self.fund_id == other.fund_id
        return self.bill_kind == other.bill_kind and (
            not self.payer_code or not other.payer_code or self.payer_code == other.payer_code
        )


class InconsistentAutopay(ValueError):
    """An autopay whose fields contradict its kind: a BILL one names a fund or a fixed amount,
    a FIXED one lacks its fund or amount (or names a service). A programming error, never a
    resident's: such an autopay could charge the wrong target."""


@dataclass(slots=True)
class Autopay:
    telegram_user_id: int
    kind: AutopayKind
    schedule: Schedule
    method_id: str
    next_due_at: datetime
    amount: int | None = None  # FIXED: kopecks
    limit: int | None = None  # BILL: the most it pays without asking
    fund_id: str | None = None
    fund_name: str | None = None
    bill_kind: BillKind | None = None
    payer_code: str | None = None  # ЕПД: which flat
    status: AutopayStatus = AutopayStatus.ACTIVE
    skip_period: str | None = None  # «Пропустить этот раз»
    retry_period: str | None = None  # a period being tried again (declined, or no answer)
    paused_reason: PauseReason | None = None  # PAUSED: why
    unanswered: int = 0  # charges in a row the city did not answer (the back-off's exponent)
    id: int | None = None

    def __post_init__(self) -> None:
        """Raises InconsistentAutopay: a BILL autopay pays a service's bill up to `limit` and
        names no fund or amount; a FIXED one pays `amount` kopecks to `fund_id` and names no
        service or limit."""
        if self.kind is AutopayKind.BILL:
            if self.bill_kind is None:
                raise InconsistentAutopay("a bill autopay needs its service")
            if self.fund_id is not None or self.fund_name is not None or self.amount is not None:
                raise InconsistentAutopay("a bill autopay names no fund and no fixed amount")
        else:
            if not self.fund_id or self.amount is None:
                raise InconsistentAutopay("a fixed autopay needs its fund and amount")
            if self.bill_kind is not None or self.limit is not None or self.payer_code:
                raise InconsistentAutopay("a fixed autopay names no service and no limit")

    @property
    def target(self) -> AutopayTarget:
        if self.kind is AutopayKind.BILL:
            return AutopayTarget(self.kind, bill_kind=self.bill_kind, payer_code=self.payer_code)
        return AutopayTarget(self.kind, fund_id=self.fund_id)

    def payable(self, bill_ids: list[str]) -> Payable:
        """What one run pays: the bill found for a BILL autopay, the fund for a FIXED one —
        decided by the kind alone, so a stray fund id on a bill autopay is never charged."""
        if self.kind is AutopayKind.BILL:
            return Payable.bills(bill_ids)
        assert self.fund_id is not None, "a fixed autopay pays a fund"
        return Payable.donation(self.fund_id)

    @property
    def period(self) -> str:
        if self.retry_period is not None:
            return self.retry_period
        return self.schedule.period_of(self.next_due_at.astimezone(MOSCOW).date())

    def advance(self, now: datetime) -> None:
        """Move to the next scheduled charge after the current one."""
        self.retry_period = None
        self.unanswered = 0
        current = self.next_due_at.astimezone(MOSCOW).date()
        following = charge_moment(self.schedule.next_date(current))
        self.next_due_at = max(following, next_due(self.schedule, now))

    def retry_tomorrow(self, now: datetime) -> None:
        """Keep the period, try again at 10:00 tomorrow."""
        self.retry_period = self.period
        self.unanswered = 0
        tomorrow = now.astimezone(MOSCOW).date() + timedelta(days=1)
        self.next_due_at = charge_moment(tomorrow)

    def back_off(self, now: datetime) -> None:
        """The city did not answer: keep the period (and the run's key) and try again after
        2, 4, 8 … minutes, at most an hour — behind every autopay due meanwhile, so one that
        keeps failing never holds the head of the earliest-due-first queue."""
        self.retry_period = self.period
        self.unanswered += 1
        delay = BACKOFF_FIRST * 2 ** min(self.unanswered - 1, 10)
        self.next_due_at = now + min(delay, BACKOFF_MAX)

    def pause(self, reason: PauseReason) -> None:
        self.status = AutopayStatus.PAUSED
        self.paused_reason = reason

    def resume(self, now: datetime) -> None:
        """Active again from the next scheduled date after `now`: no period in the past is
        charged late."""
        self.status = AutopayStatus.ACTIVE
        self.paused_reason = None
        self.retry_period = None
        self.unanswered = 0
        self.next_due_at = next_due(self.schedule, now)


class RunStatus(StrEnum):
    STARTED = "started"  # the charge was (maybe) sent; the outcome is not recorded yet
    SUCCEEDED = "succeeded"
    SKIPPED = "skipped"  # the resident skipped this time, or no bill was issued
    OVER_LIMIT = "over_limit"  # a bill above the limit: the resident pays by hand
    RETRYING = "retrying"  # declined / insufficient funds: tried again tomorrow
    FAILED = "failed"  # retries used up, refused by the city, or the autopay was paused


@dataclass(slots=True)
class AutopayRun:
    autopay_id: int
    period: str
    key: str  # the idempotency key of its charge
    status: RunStatus
    attempts: int = 0
    amount: int | None = None
    failure: str | None = None
    id: int | None = None


def run_key(autopay_id: int, period: str, attempt: int) -> str:
    """Each attempt for a period has its own key (a declined charge may be tried again);
    the same attempt always has the same key, so a repeated tick cannot charge twice."""
    return f"ap-{autopay_id}-{period}-{attempt}"
