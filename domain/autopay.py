"""Autopay: schedules in Moscow time, due periods, and one run per (autopay, period).

Kinds (the city platform's «Мои платежи» autopayments):
- BILL: pay the issued bill of a service in full when it appears, up to the resident's limit —
  «по выставленному счёту»: no schedule (`Schedule.on_issue()`); bill discovery
  (domain/bill_discovery.py) hands it each new bill (`bill_id`), due at 10:00 Moscow time the
  next day, and the period of that run is the bill (`bill_period`), so one bill is paid once
  and a second bill is a second period;
- FIXED: a fixed amount on a schedule — monthly on a day (29–31 fall on the last day of
  shorter months) or weekly on a weekday — to a charity fund (≥ 50 ₽);
- TOPUP: a fixed amount to a top-up account («Тройка» card, parking account) either on a
  schedule (like FIXED) or «когда баланс ниже N ₽» (`Schedule.below()`, `threshold`): the
  balance is read every CHECK_EVERY, and a drop below the threshold is topped up ONCE — the
  run's period is the drop («d-<drops>»), and `drops` is bumped only when a check sees the
  balance at or above the threshold again after that drop's run (`rearm`).

A run's key is (autopay id, period): the database refuses a second run for the same period,
and the run's idempotency key makes the platform refuse a second charge.

An autopay the city keeps refusing for a lasting reason (the card removed, expired or asking for
3-D Secure, the consent revoked, the fund gone, an amount above the ceiling) is PAUSED with its
`paused_reason`; one the city does not answer is pushed back (`back_off`), so neither can hold
the head of the earliest-due-first queue.
"""

from __future__ import annotations

import calendar
import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from domain.bills import Bill, BillKind
from domain.payable import Payable

MOSCOW = ZoneInfo("Europe/Moscow")
CHARGE_AT = time(10, 0)  # charges run at 10:00 Moscow time, after quiet hours
RETRY_DAYS = 2  # declined or insufficient funds: tried again on the next two days
BACKOFF_FIRST = timedelta(minutes=2)  # the city did not answer: 2, 4, 8 … minutes later
BACKOFF_MAX = timedelta(hours=1)
BILL_KINDS = (BillKind.EPD, BillKind.MGTS, BillKind.KINDERGARTEN, BillKind.CLUB)
# When an on-issue autopay waits for its next bill: never due by the clock (the claim and the
# reminders read due moments; discovery makes it due when a bill comes).
IDLE = datetime(2100, 1, 1, tzinfo=ZoneInfo("UTC"))
CHECK_EVERY = timedelta(minutes=30)  # a threshold top-up reads the balance this often
PASSED_OVER_MAX = 60  # scheduled dates told as passed over at most (a year of weeks and more)


class AutopayKind(StrEnum):
    BILL = "bill"
    FIXED = "fixed"
    TOPUP = "topup"


class Frequency(StrEnum):
    MONTHLY = "monthly"
    WEEKLY = "weekly"
    ON_ISSUE = "on_issue"  # BILL: when the bill is issued (discovered), not on a date
    BELOW = "below"  # TOPUP: when the balance is below the threshold, not on a date


@dataclass(frozen=True, slots=True)
class Schedule:
    frequency: Frequency
    day: int  # MONTHLY: 1..31; WEEKLY: 0 (Monday)..6

    def __post_init__(self) -> None:
        if self.frequency in (Frequency.ON_ISSUE, Frequency.BELOW):
            if self.day != 0:
                raise ValueError("an on-issue or threshold schedule has no day")
            return
        limit = 31 if self.frequency is Frequency.MONTHLY else 6
        low = 1 if self.frequency is Frequency.MONTHLY else 0
        if not low <= self.day <= limit:
            raise ValueError(f"day {self.day} out of range for {self.frequency}")

    @classmethod
    def on_issue(cls) -> Schedule:
        return cls(Frequency.ON_ISSUE, 0)

    @classmethod
    def below(cls) -> Schedule:
        return cls(Frequency.BELOW, 0)

    @property
    def is_on_issue(self) -> bool:
        return self.frequency is Frequency.ON_ISSUE

    @property
    def is_below(self) -> bool:
        return self.frequency is Frequency.BELOW

    @property
    def dated(self) -> bool:
        """Monthly or weekly: charged on dates (reminded the day before, skippable)."""
        return self.frequency in (Frequency.MONTHLY, Frequency.WEEKLY)

    def date_in(self, year: int, month: int) -> date:
        """MONTHLY: the day in that month, clamped to its last day."""
        last = calendar.monthrange(year, month)[1]
        return date(year, month, min(self.day, last))

    def next_date(self, after: date) -> date:
        """The first scheduled date strictly after `after` (none for an on-issue schedule:
        ValueError)."""
        if not self.dated:
            raise ValueError("an on-issue or threshold schedule has no dates")
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


def bill_period(bill_id: str) -> str:
    """The period of an on-issue autopay's run for one bill: «b-» and 12 hex digits of the
    bill id's SHA-256 (the same digits as the bill's button reference). Short enough for the
    run's period column whatever the platform's id, the same for the same bill every time."""
    return "b-" + hashlib.sha256(bill_id.encode()).hexdigest()[:12]


def on_issue_due(now: datetime) -> datetime:
    """When a bill discovered at `now` is charged by its on-issue autopay: 10:00 Moscow time
    the next day — the discovery notice is the day-before reminder («Пропустить этот раз»)."""
    return charge_moment(now.astimezone(MOSCOW).date() + timedelta(days=1))


def charge_moment(day: date) -> datetime:
    """When a charge for a scheduled date is due: 10:00 Moscow time that day."""
    return datetime.combine(day, CHARGE_AT, MOSCOW)


def next_due(schedule: Schedule, now: datetime) -> datetime:
    """The next charge moment after `now` (aware): today's if 10:00 has not passed yet. An
    on-issue schedule has none of its own: IDLE (bill discovery sets its due moment)."""
    if schedule.is_on_issue:
        return IDLE
    if schedule.is_below:  # the balance is read at once, then every CHECK_EVERY
        return now
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
    TOPUP_LIMITS = "topup_limits"  # the top-up amount no longer fits the service's limits
    NO_BALANCE = "no_balance"  # a threshold top-up: the platform does not show the balance

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
    None), a fund, or a top-up account (service and account)."""

    kind: AutopayKind
    bill_kind: BillKind | None = None
    payer_code: str | None = None
    fund_id: str | None = None
    topup_service: str | None = None
    topup_account: str | None = None

    def overlaps(self, other: AutopayTarget) -> bool:
        """Whether one bill, fund or top-up account could be paid by both: the same service
        with the same payer code (None, or empty, covers any), the same fund, or the same card
        or parking account (a scheduled and a threshold top-up of one card would both pay it).
        A service's bill autopay and its fixed-amount one (a TOPUP of the service with the
        bill service's code, `mgts`) overlap too: both would pay the same account every month,
        the bill and an advance on top of it — one way of paying a service at a time."""
        if {self.kind, other.kind} == {AutopayKind.BILL, AutopayKind.TOPUP}:
            bill, topup = (self, other) if self.kind is AutopayKind.BILL else (other, self)
            return bill.bill_kind is not None and bill.bill_kind.value == topup.topup_service
        if self.kind is not other.kind:
            return False
        if self.kind is AutopayKind.FIXED:
            return self.fund_id == other.fund_id
        if self.kind is AutopayKind.TOPUP:
            return (self.topup_service, self.topup_account) == (
                other.topup_service,
                other.topup_account,
            )
        return self.bill_kind == other.bill_kind and (
            not self.payer_code or not other.payer_code or self.payer_code == other.payer_code
        )


class InconsistentAutopay(ValueError):
    """An autopay whose fields contradict its kind: a BILL one names a fund or a fixed amount,
    a FIXED one lacks its fund or amount (or names a service), a TOPUP one lacks its account or
    amount, names a fund or service, or has a threshold without the threshold schedule. A
    programming error, never a resident's: such an autopay could charge the wrong target."""


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
    bill_id: str | None = None  # BILL on issue: the discovered bill it is to pay now
    topup_service: str | None = None  # TOPUP: the platform's service code («troika», …)
    topup_account: str | None = None  # TOPUP: the card number or parking phone (normalised)
    threshold: int | None = None  # TOPUP below: kopecks; topped up when the balance is below
    drops: int = 0  # TOPUP below: the drops handled so far (the current drop's period)
    id: int | None = None

    def __post_init__(self) -> None:
        """Raises InconsistentAutopay: a BILL autopay pays a service's bill up to `limit` and
        names no fund or amount; a FIXED one pays `amount` kopecks to `fund_id` and names no
        service or limit."""
        topup = (self.topup_service, self.topup_account, self.threshold)
        if self.kind is not AutopayKind.TOPUP:
            if any(v is not None for v in topup) or self.schedule.is_below:
                raise InconsistentAutopay("only a top-up autopay names an account or threshold")
        if self.kind is AutopayKind.TOPUP:
            if not self.topup_service or not self.topup_account or self.amount is None:
                raise InconsistentAutopay("a top-up autopay needs its account and amount")
            if (
                self.fund_id is not None
                or self.fund_name is not None
                or self.bill_kind is not None
                or self.limit is not None
                or self.payer_code
                or self.bill_id is not None
            ):
                raise InconsistentAutopay("a top-up autopay names no fund, service or limit")
            if self.schedule.is_on_issue:
                raise InconsistentAutopay("a top-up autopay is not on issue")
            if self.schedule.is_below != (self.threshold is not None):
                raise InconsistentAutopay("a threshold top-up has a threshold, and only it")
            if self.threshold is not None and self.threshold <= 0:
                raise InconsistentAutopay("a threshold is above zero")
        elif self.kind is AutopayKind.BILL:
            if self.bill_kind is None:
                raise InconsistentAutopay("a bill autopay needs its service")
            if self.fund_id is not None or self.fund_name is not None or self.amount is not None:
                raise InconsistentAutopay("a bill autopay names no fund and no fixed amount")
            if self.bill_id is not None and not self.schedule.is_on_issue:
                raise InconsistentAutopay("only an on-issue autopay is handed a bill")
        else:
            if not self.fund_id or self.amount is None:
                raise InconsistentAutopay("a fixed autopay needs its fund and amount")
            if self.bill_kind is not None or self.limit is not None or self.payer_code:
                raise InconsistentAutopay("a fixed autopay names no service and no limit")
            if self.schedule.is_on_issue or self.bill_id is not None:
                raise InconsistentAutopay("a fixed autopay has a schedule and no bill")

    @property
    def target(self) -> AutopayTarget:
        if self.kind is AutopayKind.BILL:
            return AutopayTarget(self.kind, bill_kind=self.bill_kind, payer_code=self.payer_code)
        if self.kind is AutopayKind.TOPUP:
            return AutopayTarget(
                self.kind, topup_service=self.topup_service, topup_account=self.topup_account
            )
        return AutopayTarget(self.kind, fund_id=self.fund_id)

    def payable(self, bill_ids: list[str]) -> Payable:
        """What one run pays: the bill found for a BILL autopay, the fund for a FIXED one, the
        account for a TOPUP one — decided by the kind alone, so a stray fund id on a bill
        autopay is never charged."""
        if self.kind is AutopayKind.BILL:
            return Payable.bills(bill_ids)
        if self.kind is AutopayKind.TOPUP:
            assert self.topup_service and self.topup_account, "a top-up autopay pays an account"
            return Payable.top_up(self.topup_service, self.topup_account)
        assert self.fund_id is not None, "a fixed autopay pays a fund"
        return Payable.donation(self.fund_id)

    @property
    def on_issue(self) -> bool:
        return self.schedule.is_on_issue

    @property
    def below(self) -> bool:
        """A threshold top-up: charged when a check finds the balance below `threshold`."""
        return self.schedule.is_below

    @property
    def period(self) -> str:
        if self.retry_period is not None:
            return self.retry_period
        if self.on_issue:  # the bill it pays now («idle» while it waits for one)
            return bill_period(self.bill_id) if self.bill_id is not None else "idle"
        if self.below:  # the drop being handled: one run, one charge per drop
            return f"d-{self.drops}"
        return self.schedule.period_of(self.next_due_at.astimezone(MOSCOW).date())

    def matches(self, bill: Bill) -> bool:
        """Whether this BILL autopay pays `bill`: the same service, and the same payer code
        unless it covers any (None)."""
        return (
            self.kind is AutopayKind.BILL
            and bill.kind == self.bill_kind
            and (not self.payer_code or bill.payer_code == self.payer_code)
        )

    def take_bill(self, bill_id: str | None, due: datetime) -> None:
        """On issue: pay `bill_id` next, at `due` (None: wait for the next bill, IDLE)."""
        assert self.on_issue, "only an on-issue autopay is handed a bill"
        self.bill_id, self.retry_period, self.unanswered = bill_id, None, 0
        self.next_due_at = due if bill_id is not None else IDLE

    def advance(self, now: datetime) -> list[date]:
        """Move to the next scheduled charge after the current one (on issue: wait for the
        next bill; the caller hands it the next one already discovered, if any). Returns the
        scheduled dates passed over on the way (`passed_over`): none, unless the period just
        done was charged after one or more later ones came due."""
        done = self.period
        self.retry_period = None
        self.unanswered = 0
        if self.on_issue:
            self.bill_id, self.next_due_at = None, IDLE
            return []
        if self.below:  # the next balance check; the drop stays until `rearm`
            self.next_due_at = now + CHECK_EVERY
            return []
        # From the done period's own date, not from `next_due_at`: after a back-off or a
        # retry that is a later day, and the next period's date may be today, still to come
        # (review 29: it was passed over, and recorded «missed», before its 10:00).
        scheduled = self.scheduled_date(done) or self.next_due_at.astimezone(MOSCOW).date()
        following = charge_moment(self.schedule.next_date(scheduled))
        self.next_due_at = max(following, next_due(self.schedule, now))
        return self.passed_over(done, now)

    def scheduled_date(self, period: str) -> date | None:
        """The date this schedule charges `period` on; None when `period` is not one of its
        frequency's («2026-11» for a weekly schedule — changed meanwhile — or «idle»)."""
        try:
            if self.schedule.frequency is Frequency.WEEKLY:
                year, week = period.split("-W")
                first = date.fromisocalendar(int(year), int(week), 1)
            else:
                year, month = period.split("-")
                first = date(int(year), int(month), 1)
        except ValueError:
            return None
        return self.schedule.next_date(first - timedelta(days=1))

    def passed_over(self, done: str, now: datetime) -> list[date]:
        """The scheduled dates after period `done` whose charge moment came by `now`, before
        the next charge (`next_due_at`): periods that came due while `done` was still being
        charged (the city or the scheduler down for longer than a period). They are not
        charged late — a resident away from the chat would find several charges at once — but
        recorded and told (`autopaying`). Empty when `done` is not of the schedule's
        frequency (changed meanwhile)."""
        day = self.scheduled_date(done)
        if day is None:
            return []
        passed: list[date] = []
        while len(passed) < PASSED_OVER_MAX:
            day = self.schedule.next_date(day)
            moment = charge_moment(day)
            if moment >= self.next_due_at or moment > now:
                break
            passed.append(day)
        return passed

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

    def rearm(self) -> None:
        """A threshold top-up whose drop was handled saw the balance at or above the threshold
        again: the next drop below it is a new period (charged once more)."""
        assert self.below, "only a threshold top-up is re-armed"
        self.drops += 1

    def pause(self, reason: PauseReason) -> None:
        self.status = AutopayStatus.PAUSED
        self.paused_reason = reason

    def resume(self, now: datetime, drop_run: RunStatus | None = None) -> None:
        """Active again from the next scheduled date after `now` (on issue: from the next bill
        discovered; by threshold: checked at once): no period in the past is charged late.

        By threshold, `drop_run` is the status of the current drop's run (None: no run). Only
        a FAILED one starts a new drop (the resident fixed what stopped it: card, limits); a
        drop whose run is unfinished (STARTED: a charge maybe sent, its key sent again),
        being retried or done keeps its period — a new drop would be charged with a new key,
        a second top-up for one drop."""
        self.status = AutopayStatus.ACTIVE
        self.paused_reason = None
        self.retry_period = None
        self.unanswered = 0
        self.next_due_at = next_due(self.schedule, now)
        if self.on_issue:
            self.bill_id = None
        if self.below and drop_run is RunStatus.FAILED:
            self.drops += 1


class RunStatus(StrEnum):
    STARTED = "started"  # the charge was (maybe) sent; the outcome is not recorded yet
    SUCCEEDED = "succeeded"
    SKIPPED = "skipped"  # the resident skipped this time, or no bill was issued
    OVER_LIMIT = "over_limit"  # a bill above the limit: the resident pays by hand
    RETRYING = "retrying"  # declined / insufficient funds: tried again tomorrow
    FAILED = "failed"  # retries used up, refused by the city, or the autopay was paused


# A period whose run ended so is charged no more: the job only moves the schedule on.
FINISHED_FOR_GOOD = frozenset({RunStatus.SUCCEEDED, RunStatus.SKIPPED, RunStatus.OVER_LIMIT})


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
    # The version of the run this copy was read as or last wrote: (status, key, attempts).
    # A write is made only over that version (optimistic), so an outcome recorded meanwhile
    # by another writer — unlinking's settlement, the stranded-run reconciliation, a scheduler
    # that took the run over after this one's lease — is never overwritten by a stale copy
    # (review 36c: a run settled FAILED by unlinking was rewritten as RETRYING). None: a copy
    # not read from the store (any write goes).
    stored: tuple[RunStatus, str, int] | None = field(default=None, compare=False, repr=False)

    def as_stored(self) -> None:
        """Mark this copy's values as the store's version (read or written just now)."""
        self.stored = (self.status, self.key, self.attempts)


def run_key(autopay_id: int, period: str, attempt: int) -> str:
    """Each attempt for a period has its own key (a declined charge may be tried again);
    the same attempt always has the same key, so a repeated tick cannot charge twice."""
    return f"ap-{autopay_id}-{period}-{attempt}"
