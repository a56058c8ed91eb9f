"""Autopay use cases: set up (one per service or fund), change (amount, day, card), pause,
skip once, remind, and the tick that charges.

The tick claims due autopays batch by batch, one statement a batch (a lease, `FOR UPDATE SKIP
LOCKED` on PostgreSQL), and works through them continuously with a bounded number of charges in
flight, each autopay in its own unit of work: it finds or creates the run of its period —
unique per (autopay, period) — then charges with the run's idempotency key after committing
it, and commits the outcome together with the end of its lease. A tick that repeats, a second
scheduler, or a crash after the charge all meet the same run and the same key: one charge per
period. The claimed copy only names the autopay: each one is read again under its row's lock
before it is charged (charged only if still ACTIVE, due and leased by this run, with what the
resident set last), and the outcome writes only the schedule's progress and a pause onto the
row as it is then (`save_progress`): a resident's pause, deletion or change made meanwhile
stands.

Nothing holds the queue. A refusal that will not pass by itself (the card removed, expired or
asking for 3-D Secure, the consent revoked, the fund gone, an amount above the ceiling) pauses
the autopay and tells the resident and the support dashboard once; a charge the city did not
answer keeps its run and key and is pushed back (`Autopay.back_off`) behind the others due.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from enum import StrEnum

from domain import support
from domain.accounts import Resident, TokenSet
from domain.autopay import (
    FINISHED_FOR_GOOD,
    MOSCOW,
    RETRY_DAYS,
    Autopay,
    AutopayKind,
    AutopayRun,
    AutopayStatus,
    AutopayTarget,
    PauseReason,
    RunStatus,
    Schedule,
    next_due,
    run_key,
)
from domain.charity import MIN_DONATION
from domain.errors import CityUnavailable, DomainError, NotFound, RelinkRequired
from domain.limits import DEFAULT_LIMITS, AmountLimits, AmountTooLarge, LimitKind
from domain.payments import (
    AmountChanged,
    BillAlreadyPaid,
    Payment,
    PaymentMethod,
    PaymentRefused,
    PaymentStatus,
)
from domain.ports import (
    City,
    CityAuth,
    CityPayments,
    Notification,
    UnitOfWork,
    UnitOfWorkFactory,
)
from domain.sessions import ResidentSession
from domain.topups import (
    AmountProblem,
    TopupLimits,
    TopupRefused,
    TopupService,
    UnknownTopupAccount,
    check_amount,
    service_of,
)

TICK_BATCH = 50  # autopays claimed (leased) at once, in one statement
AUTOPAY_CONCURRENCY = 32  # charges (city calls) in flight at once in one run, by default
RETRYABLE = {PaymentStatus.DECLINED, PaymentStatus.INSUFFICIENT_FUNDS}
UNAVAILABLE = "unavailable"  # a tick outcome: the city did not answer, tried again later
PAUSED = "paused"  # a tick outcome: refused for a lasting reason, the autopay is paused
INACTIVE = "inactive"  # a tick outcome: paused, deleted or moved since the claim; or re-leased
# A tick outcome: the run was recorded by another writer while the city answered (unlinking's
# settlement, the stranded-run reconciliation, a scheduler that took it over after this one's
# lease) — its record stands and nothing of this charge's is written (`AutopayRun.stored`).
SETTLED = "settled"
# The city's reasons for refusing a payment that will not pass by themselves.
LASTING_REFUSALS = {
    "unknown_payment_method": PauseReason.CARD_REMOVED,
    "unknown_fund": PauseReason.TARGET_GONE,
    "unknown_bill": PauseReason.TARGET_GONE,
    "unknown_account": PauseReason.TARGET_GONE,  # a top-up's card or parking account
    "invalid_account": PauseReason.TARGET_GONE,
    "unknown_service": PauseReason.TARGET_GONE,
}
BALANCE_OK = "balance_ok"  # a tick outcome: a threshold top-up found the balance high enough
TOPUP_FULL = "topup_full"  # a run's failure: the wallet had no room for the scheduled top-up
REFUSED = "refused"  # a run's failure: the city refused this period's payment for another reason
# A run's failure: its period came due while an earlier one was still being charged (the city or
# the scheduler down for longer than a period); SKIPPED, never charged late (`_passed_over`).
MISSED = "missed"


class AutopayTooSmall(DomainError):
    """A charity autopay below 50 ₽, or a bill autopay's limit of zero."""


class UnsuitableCard(DomainError):
    """Not one of the resident's saved cards an autopay can charge unattended (unknown, or its
    bank asks for 3-D Secure on every charge)."""


class TopupDoesNotFit(DomainError):
    """A top-up autopay's amount outside the service's limits for one payment, or a threshold
    that with the amount would overfill the wallet (threshold + amount above its ceiling:
    every drop's top-up would be refused). `problem` says which."""

    def __init__(self, problem: AmountProblem) -> None:
        super().__init__(problem.value)
        self.problem = problem


def check_topup(autopay: Autopay, limits: TopupLimits, ceiling: int) -> None:
    """A TOPUP autopay's amount within the service's limits and the operator's `ceiling`, and
    a threshold autopay's threshold + amount within the wallet's ceiling (a top-up made below
    the threshold then always fits). Raises TopupDoesNotFit."""
    assert autopay.amount is not None
    check_topup_amount(autopay.amount, autopay.threshold, limits, ceiling)


def check_topup_amount(
    amount: int, threshold: int | None, limits: TopupLimits, ceiling: int
) -> None:
    """`check_topup` of an amount (and threshold) typed in a set-up, before the autopay exists."""
    fits = check_amount(amount, limits, None, ceiling)
    if isinstance(fits, AmountProblem):
        raise TopupDoesNotFit(fits)
    if threshold is not None and limits.max_balance is not None:
        if threshold + amount > limits.max_balance:
            raise TopupDoesNotFit(AmountProblem.OVER_BALANCE)


def highest_threshold(limits: TopupLimits) -> int | None:
    """The highest threshold some top-up still fits under (the wallet's ceiling less the
    service's minimum: threshold + amount within the ceiling, `check_topup`); None when the
    wallet has no ceiling."""
    if limits.max_balance is None:
        return None
    return limits.max_balance - limits.min_amount


class AutopayExists(DomainError):
    """The resident already has an autopay (active or paused) for this service or fund: a
    second one would pay the same bill twice, or the fund twice a period. `autopay` is that
    one — open it to change its amount, day or card, or resume it."""

    def __init__(self, autopay: Autopay) -> None:
        super().__init__(f"autopay {autopay.id}")
        self.autopay = autopay
        self.autopay_id = autopay.id


def money_ceiling(
    kind: AutopayKind, limits: AmountLimits = DEFAULT_LIMITS
) -> tuple[LimitKind, int]:
    """The most an autopay of this kind may charge at once, in kopecks, and which ceiling that
    is: the autopay ceiling, and for a donation also the donation ceiling (whichever is lower)."""
    kinds = [LimitKind.AUTOPAY] + ([LimitKind.DONATION] if kind is AutopayKind.FIXED else [])
    chosen = min(kinds, key=limits.of)
    return chosen, limits.of(chosen)


def check_money(kind: AutopayKind, money: int, limits: AmountLimits = DEFAULT_LIMITS) -> int:
    """A FIXED autopay's amount or a BILL one's limit, in kopecks, back if allowed: a donation
    is at least 50 ₽, a limit above zero, and neither above `money_ceiling`. Raises
    AutopayTooSmall, AmountTooLarge (with the ceiling that applies)."""
    if money <= 0 or (kind is AutopayKind.FIXED and money < MIN_DONATION):
        raise AutopayTooSmall()
    limit_kind, ceiling = money_ceiling(kind, limits)
    if money > ceiling:
        raise AmountTooLarge(limit_kind, ceiling)
    return money


def _money_of(autopay: Autopay) -> int | None:
    return autopay.limit if autopay.kind is AutopayKind.BILL else autopay.amount


async def autopay_for(
    uow: UnitOfWork, telegram_user_id: int, target: AutopayTarget
) -> Autopay | None:
    """The resident's autopay (active or paused, not deleted) that pays `target` or overlaps
    it (`AutopayTarget.overlaps`); None if there is none."""
    for autopay in await uow.autopays.of_resident(telegram_user_id):
        if autopay.status is not AutopayStatus.DELETED and autopay.target.overlaps(target):
            return autopay
    return None


async def set_up(
    uow: UnitOfWork,
    autopay: Autopay,
    now: datetime,
    limits: AmountLimits = DEFAULT_LIMITS,
    *,
    topup_limits: TopupLimits | None = None,
) -> Autopay:
    """Store a new ACTIVE autopay, first charged at its next scheduled moment after `now`.
    One autopay per target: a resident who already has one for the same service (and payer
    code, None covering any) or the same fund is refused, whatever its amount — two would
    charge the same bill or fund twice. The check and the insert share the unit of work under
    the resident's row lock (`residents.lock`, taken before the check): two set-ups at once
    (a double tap, two replicas, the console and the bot) store one. Raises AutopayExists
    (with the one there is), AutopayTooSmall, AmountTooLarge (its amount or limit, in kopecks,
    is checked by `check_money`), TopupDoesNotFit (a TOPUP one, against the service's
    `topup_limits`, which it needs).

    A BILL autopay is always «по выставленному счёту» (on issue): whatever schedule it came
    with, it waits for the next bill discovered (`domain.bill_discovery`)."""
    if autopay.kind is AutopayKind.BILL:
        autopay.schedule, autopay.bill_id = Schedule.on_issue(), None
    await uow.residents.lock(autopay.telegram_user_id)  # one set-up of theirs at a time
    existing = await autopay_for(uow, autopay.telegram_user_id, autopay.target)
    if existing is not None and _same_set_up(existing, autopay):
        # This very set-up again: the press repeated after its answer was lost (a dropped
        # connection, a 429) is told «подключён» like the first, not «у вас уже есть»
        # (review 35e). Nothing is stored twice.
        return existing
    if existing is not None:
        raise AutopayExists(existing)
    money = _money_of(autopay)
    if money is not None or autopay.kind is not AutopayKind.BILL:
        check_money(autopay.kind, money or 0, limits)
    if autopay.kind is AutopayKind.TOPUP:
        if topup_limits is None:
            raise ValueError("a top-up autopay is checked against its service's limits")
        check_topup(autopay, topup_limits, money_ceiling(autopay.kind, limits)[1])
    autopay.drops = 0
    autopay.status, autopay.paused_reason = AutopayStatus.ACTIVE, None
    autopay.next_due_at = next_due(autopay.schedule, now)
    await uow.autopays.add(autopay, now)
    await uow.commit()
    return autopay


def _same_set_up(existing: Autopay, new: Autopay) -> bool:
    """An active autopay with every setting of `new`: what a repeated set-up finds."""
    return existing.status is AutopayStatus.ACTIVE and all(
        getattr(existing, name) == getattr(new, name)
        for name in (
            "kind",
            "schedule",
            "method_id",
            "amount",
            "limit",
            "fund_id",
            "bill_kind",
            "payer_code",
            "topup_service",
            "topup_account",
            "threshold",
        )
    )


async def own_autopay(uow: UnitOfWork, resident: Resident, autopay_id: int) -> Autopay:
    """The resident's autopay (not a deleted one). Raises NotFound."""
    autopay = await uow.autopays.get(autopay_id)
    if (
        autopay is None
        or autopay.telegram_user_id != resident.telegram_user_id
        or autopay.status is AutopayStatus.DELETED
    ):
        raise NotFound(f"autopay {autopay_id}")
    return autopay


async def _held(uow: UnitOfWork, resident: Resident, autopay_id: int) -> Autopay:
    """The resident's autopay for a resident's write, read again under its row's lock until
    the commit: `save` writes every field back, so what the charge run or bill discovery wrote
    before (a bill handed over, a retry, the queue) is what it writes, and they wait for this
    write to end. Raises NotFound."""
    await own_autopay(uow, resident, autopay_id)
    autopay = await uow.autopays.lock(autopay_id)
    if (
        autopay is None
        or autopay.telegram_user_id != resident.telegram_user_id
        or autopay.status is AutopayStatus.DELETED
    ):
        raise NotFound(f"autopay {autopay_id}")
    return autopay


async def _resume(uow: UnitOfWork, autopay: Autopay, now: datetime) -> None:
    """`Autopay.resume`, told (by threshold) how the current drop's run stands: a new drop only
    after a FAILED one, never over a charge maybe sent."""
    drop_run = None
    if autopay.below and autopay.id is not None:
        run = await uow.autopays.run_of(autopay.id, autopay.period)
        drop_run = None if run is None else run.status
    autopay.resume(now, drop_run)


@dataclass(frozen=True, slots=True)
class StatusSet:
    """What `set_status` did: the autopay as saved, and whether this period's charge was on
    its way already (its run's key on record, STARTED with attempts ≥ 1: it may have reached
    the bank, and it is sent again with that key until answered, so a pause or a delete does
    not stop it — the resident is told so, and told its result as any charge's)."""

    autopay: Autopay
    charge_under_way: bool = False


async def set_status(
    uow: UnitOfWork,
    resident: Resident,
    autopay_id: int,
    status: AutopayStatus,
    now: datetime,
    limits: AmountLimits = DEFAULT_LIMITS,
) -> StatusSet:
    """Pause («Приостановить»), resume (from the next date after `now`, none in the past) or
    delete. Raises NotFound, AmountTooLarge (resuming an amount above today's ceiling).

    Read under the autopay row's lock, which the charge run also holds when it records a
    period's key: a pause or delete is either seen by the run before its key is recorded (no
    charge), or comes after it, and is returned with `charge_under_way` (review 36c).

    Resuming an autopay that is ACTIVE already (a «Возобновить» drawn while it was paused, a
    double tap) changes nothing: resuming clears the bill it was handed, the period being
    retried and the bills queued behind them, and those would then never be paid, recorded or
    told (review 30a)."""
    autopay = await _held(uow, resident, autopay_id)
    if status is AutopayStatus.ACTIVE and autopay.status is AutopayStatus.ACTIVE:
        await uow.commit()  # nothing of its own to write; the row's lock let go
        return StatusSet(autopay)
    under_way = False
    if status is not AutopayStatus.ACTIVE and autopay.id is not None:
        run = await uow.autopays.run_of(autopay.id, autopay.period)
        under_way = run is not None and run.status is RunStatus.STARTED and run.attempts > 0
    if status is AutopayStatus.ACTIVE:
        money = _money_of(autopay)
        if money is not None:
            check_money(autopay.kind, money, limits)
        await _resume(uow, autopay, now)
    elif status is AutopayStatus.PAUSED:
        autopay.pause(PauseReason.BY_RESIDENT)
    else:
        autopay.status = AutopayStatus.DELETED
    if autopay.on_issue and autopay.id is not None:  # from the next bill discovered on
        await uow.known_bills.drop_queue(autopay.id)
    await uow.autopays.save(autopay)
    await uow.commit()
    return StatusSet(autopay, under_way)


# A period whose run ended so has nothing left to skip: charged, or left to the resident (over
# the limit). SKIPPED is left out (skipping it again stays true), and FAILED too: a resumed
# autopay may charge that period again, and a skip then still stops it.
_RUN_OVER = frozenset({RunStatus.SUCCEEDED, RunStatus.OVER_LIMIT})


async def skip_once(
    uow: UnitOfWork, resident: Resident, autopay_id: int, period: str
) -> Autopay | None:
    """«Пропустить этот раз»: only the period the reminder was about; None if it has passed —
    or if its charge is under way: its run has recorded a key (STARTED, attempts ≥ 1), which
    may have been sent, and is sent again until answered — or if its run is over (charged,
    or over the limit): a day moved later after the charge puts the autopay
    back on the period it has paid, and «в этот раз не спишем» would then be false (review
    30d). Read under the autopay row's lock, which the run also holds when it records the key
    and re-checks `skip_period` (`_process`): a skip is either seen by the run before its key
    is recorded, or refused here."""
    autopay = await _held(uow, resident, autopay_id)
    if autopay.period != period or autopay.id is None:
        return None
    run = await uow.autopays.run_of(autopay.id, period)
    if run is not None and (
        run.status in _RUN_OVER or (run.status is RunStatus.STARTED and run.attempts > 0)
    ):
        return None
    autopay.skip_period = period
    await uow.autopays.save(autopay)
    await uow.commit()
    return autopay


class BillSkip(StrEnum):
    """What «Не оплачивать автоплатежом» did (`skip_bill`)."""

    SKIPPED = "skipped"  # off the queue, or its charge skipped: the resident pays it
    UNDER_WAY = "under_way"  # its charge is under way or over: too late to stop
    NOT_WAITING = "not_waiting"  # neither queued nor in hand: paid before, or the queue dropped


async def skip_bill(
    uow: UnitOfWork, resident: Resident, autopay_id: int, is_bill: Callable[[str], bool]
) -> BillSkip:
    """«Не оплачивать автоплатежом» under a «Пришёл счёт» queued behind the bill its on-issue
    autopay is paying now: a queued bill is charged the moment the one before it is done
    (`_take_queued`), so this notice is the resident's only chance to stop it. The bill
    (`is_bill` picks it: the button carries a reference, not the id) is taken off the queue —
    or, handed over meanwhile, its charge skipped as «Пропустить этот раз» skips it
    (`skip_once`: refused once its charge is under way or over). Raises NotFound (another
    resident's autopay)."""
    try:
        autopay = await _held(uow, resident, autopay_id)
    except NotFound:  # their own, deleted since: nothing waits for it (review 33c)
        stored = await uow.autopays.get(autopay_id)
        if stored is not None and stored.telegram_user_id == resident.telegram_user_id:
            return BillSkip.NOT_WAITING
        raise
    if autopay.id is None:
        return BillSkip.NOT_WAITING
    waiting = next((b for b in await uow.known_bills.queued(autopay.id) if is_bill(b)), None)
    if waiting is not None:
        await uow.known_bills.unqueue(autopay.id, waiting)
        await uow.commit()
        return BillSkip.SKIPPED
    if autopay.bill_id is not None and is_bill(autopay.bill_id):
        skipped = await skip_once(uow, resident, autopay.id, autopay.period)
        return BillSkip.UNDER_WAY if skipped is None else BillSkip.SKIPPED
    return BillSkip.NOT_WAITING


async def autopay_methods(
    uow: UnitOfWork, auth: CityAuth, payments: CityPayments, resident: Resident
) -> tuple[list[PaymentMethod], list[PaymentMethod]]:
    """(the saved cards an autopay may charge, those it may not: their bank asks for 3-D
    Secure on every charge, and nobody is there to confirm). Raises CityUnavailable,
    RelinkRequired."""
    methods = await payments.payment_methods(ResidentSession(resident, auth, uow))
    return (
        [m for m in methods if not m.requires_confirmation],
        [m for m in methods if m.requires_confirmation],
    )


async def change_card(
    uow: UnitOfWork,
    auth: CityAuth,
    payments: CityPayments,
    resident: Resident,
    autopay_id: int,
    method_id: str,
    now: datetime,
) -> tuple[Autopay, bool]:
    """«Сменить карту»: from the next charge on. An autopay paused because of its card is
    resumed from its next date after `now`; returns (the autopay, whether it was resumed).
    Raises NotFound, UnsuitableCard, CityUnavailable, RelinkRequired."""
    autopay = await own_autopay(uow, resident, autopay_id)
    suitable, _ = await autopay_methods(uow, auth, payments, resident)
    if method_id not in {m.id for m in suitable}:
        raise UnsuitableCard(method_id)
    autopay = await _held(uow, resident, autopay_id)  # as stored after the city's answer
    autopay.method_id = method_id
    resumed = autopay.status is AutopayStatus.PAUSED and bool(
        autopay.paused_reason and autopay.paused_reason.card
    )
    if resumed:
        await _resume(uow, autopay, now)
        if autopay.on_issue and autopay.id is not None:
            await uow.known_bills.drop_queue(autopay.id)
    await uow.autopays.save(autopay)
    await uow.commit()
    return autopay, resumed


async def cancel_all(uow: UnitOfWork, telegram_user_id: int) -> int:
    """Every autopay of a resident DELETED (unlinking): relinking never resumes an old charge.
    The caller commits. Returns how many there were."""
    autopays = await uow.autopays.of_resident(telegram_user_id)
    for autopay in autopays:
        autopay.status = AutopayStatus.DELETED
        await uow.autopays.save(autopay)
    return len(autopays)


REMIND_BATCH = 500  # reminders written per statement


async def send_reminders(uow: UnitOfWork, now: datetime) -> int:
    """«Завтра спишем …»: once per autopay and period (the dedupe key), the day before; none
    for a period whose run is done for good (`finished_periods`).

    Only autopays not yet reminded for their due moment are read, REMIND_BATCH at a time, and
    each batch is written with one INSERT and one UPDATE: a tick costs the new reminders, not
    the day's autopays. Returns how many reminders were written."""
    tomorrow = now.astimezone(MOSCOW).date() + timedelta(days=1)
    start = datetime.combine(tomorrow, datetime.min.time(), MOSCOW)
    end = start + timedelta(days=1)
    written = 0
    while batch := await uow.autopays.reminders_due(start, end, REMIND_BATCH):
        # A period already charged (or skipped, or over the limit) is charged no more, e.g. when
        # the resident moved the day later in a month already paid: no «Завтра спишем».
        done = await uow.autopays.finished_periods([(a.id, a.period) for a in batch if a.id])
        reminders = [
            Notification(
                telegram_user_id=autopay.telegram_user_id,
                kind="autopay_reminder",
                dedupe_key=f"autopay:{autopay.id}:{autopay.period}:reminder",
                data=_describe(autopay, charge_at=autopay.next_due_at.isoformat()),
            )
            for autopay in batch
            if autopay.skip_period != autopay.period  # skipped: marked, nothing written
            and (autopay.id, autopay.period) not in done
        ]
        written += await uow.autopays.remind(batch, reminders, now)
        await uow.commit()
        if len(batch) < REMIND_BATCH:
            break
    return written


async def _lock(
    uow: UnitOfWork, autopay_id: int, claimed_at: datetime | None = None
) -> Autopay | None:
    """The charge run's read of an autopay under its row's lock, before it writes: `lock_many`
    of one, which on SQLite also takes the database's write lock first (there a lone SELECT
    reads outside any transaction, and an unlinking could commit before the run's write)."""
    return (await uow.autopays.lock_many([autopay_id], claimed_at)).get(autopay_id)


def _describe(autopay: Autopay, **extra: object) -> dict[str, object]:
    return {
        "autopay_id": autopay.id,
        "period": autopay.period,
        "kind": autopay.kind.value,
        "amount": autopay.amount,
        "limit": autopay.limit,
        "fund_name": autopay.fund_name,
        "bill_kind": autopay.bill_kind.value if autopay.bill_kind else None,
        "bill_id": autopay.bill_id,  # on issue: the bill it pays (the resident's if it fails)
        "topup_service": autopay.topup_service,
        "topup_account": autopay.topup_account,
        "threshold": autopay.threshold,
        "due": autopay.next_due_at.astimezone(MOSCOW).date().isoformat(),
        **extra,
    }


async def tick(
    uows: UnitOfWorkFactory,
    city: City,
    now: datetime | Callable[[], datetime],
    outcomes: list[str] | None = None,
    limits: AmountLimits = DEFAULT_LIMITS,
    *,
    concurrency: int = AUTOPAY_CONCURRENCY,
    batch: int = TICK_BATCH,
    stopping: Callable[[], bool] | None = None,
) -> int:
    """Charge every due autopay once for its period, continuously, until none is due. Returns
    how many were processed; each one's outcome (a RunStatus value, "already_done", "paused",
    "inactive", "unavailable" or "settled") is appended to `outcomes` as it comes.

    `now` is a fixed moment, or a clock read at each claim and each autopay (a long run leases
    and decides with the time it is). Due autopays are claimed (leased) `batch` at a time,
    oldest due first, the next batch as soon as the last one is all started; `concurrency`
    workers take them in that order, so at most `concurrency` charges (city calls) are in
    flight. Each autopay is handled in its own unit of work from `uows` (`_charge`) — except
    plain ones (a fixed donation on a schedule), prepared and recorded a few together (`_Run`);
    charges of one resident under way at once share a token refresh (`_RunSession`).

    The run ends when a claim comes back short (nothing more due that nobody else holds), when
    a whole batch came back "unavailable" (the city is down: tried again by the next run), or
    when `stopping()` turns true (the scheduler is shutting down). Autopays claimed but not
    started by then are released at once (nothing was done for them). An error other than a
    domain one in one charge stops the run the same way — the charges under way finish — and
    is raised; that autopay keeps its lease until it expires, like one of a scheduler that
    died; so does a plain autopay charged whose record failed (the error is raised after the
    run, which records what it can even when cancelled). Raises ValueError for a `concurrency`
    or `batch` below 1."""
    if concurrency < 1 or batch < 1:
        raise ValueError("concurrency and batch are at least 1")
    clock = now if callable(now) else (lambda: now)
    run = _Run(uows, city, clock, limits, batch, stopping, outcomes)
    workers = [asyncio.ensure_future(run.work()) for _ in range(concurrency)]
    try:
        results: list[BaseException | None] = list(
            await asyncio.gather(*workers, return_exceptions=True)
        )
    finally:
        # What was charged is recorded even when the run is cancelled (a scheduler stopping):
        # shielded, so the record's transaction is not cut in the middle.
        recorded = asyncio.ensure_future(run.record_paid(final=True))
        await asyncio.shield(recorded)
    if run.record_error is not None:  # the leases stay: the keys are sent again after they
        results.append(run.record_error)  # expire
    unstarted = [(a, b) for a, b in run.waiting] + [(a, b) for a, b, _, _ in run.ready]
    if unstarted:  # claimed (some prepared: their keys are sent again), never started: free
        async with uows() as uow:  # for the next run at once
            for claimed_at in {b.claimed_at for _, b in unstarted}:
                await uow.autopays.release(
                    [a.id for a, b in unstarted if a.id and b.claimed_at == claimed_at],
                    claimed_at,
                )
            await uow.commit()
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return run.processed


@dataclass
class _Batch:
    size: int
    claimed_at: datetime  # the moment given to `claim_due`: names this batch's leases
    finished: int = 0
    unanswered: int = 0


@dataclass
class _Prepared:
    """A plain autopay whose run and key were recorded together with the others prepared with
    it (`_Run.prepare`): its charge is only the city call."""

    autopay: Autopay  # as stored when the batch was prepared (read under the row's lock)
    run: AutopayRun  # STARTED, its key and amount on record
    resident: Resident


@dataclass
class _Paid:
    """A charge the city answered «succeeded», waiting to be recorded with others."""

    autopay: Autopay
    run: AutopayRun
    receipt: str
    claimed_at: datetime  # the batch's lease, ended when the charge is recorded
    now: datetime  # the moment the charge was made: the schedule moves on from it


FRESH_FOR = 0.1  # seconds a prepared autopay may wait for a worker before it is read again
RECORD_AT = TICK_BATCH  # successful charges recorded together, in one transaction …
RECORD_AFTER = 0.05  # … or this many seconds after the first of them, whichever comes first


def _in_doubt(run: AutopayRun) -> bool:
    """The run's key is on record (STARTED, attempts ≥ 1) and its outcome is not: it may have
    reached the city before a crash. `_process` asks the city about it before anything else."""
    return run.status is RunStatus.STARTED and run.attempts >= 1


def _plain(autopay: Autopay) -> bool:
    """A donation of a fixed amount on a schedule: nothing to ask the city before its charge,
    and nothing but the schedule to move on after it. The rest (a bill looked up, a top-up
    checked, a threshold) takes the general path, one autopay at a time (`_charge`)."""
    return autopay.kind is AutopayKind.FIXED and not autopay.on_issue and not autopay.below


class _Run:
    """One run of `tick`: the queue of claimed autopays its workers share.

    Plain autopays (`_plain`) are charged the same way as the rest, with fewer round trips to
    the database:

    - prepare: when a worker needs an autopay and none is prepared, the next ones of the
      claimed batch — one for each worker waiting for one at that moment (`idle`: those that
      came free while the last preparation's statements were under way) — are read again
      under their rows' locks and their runs and keys recorded, in one transaction, before
      any of them is charged (`prepare`); each is charged at once by one of those workers.
      None waits for a busy worker, so what is charged is what was stored a moment before —
      a pause, skip, change or new link made earlier is seen, as on the general path, where
      a row is read under lock just before its charge. (One still ready FRESH_FOR seconds
      after it was read, should that happen, is read again.);
    - record: successful charges are recorded together (`record_paid`): RECORD_AT at once,
      or RECORD_AFTER seconds after the first waiting, and at the end of the run even when
      it is cancelled.

    A crash between the charge and its record leaves the run STARTED with its key and the
    lease held: the key is sent again once the lease expires — never a second charge. Every
    other answer is recorded at once, as on the general path."""

    def __init__(
        self,
        uows: UnitOfWorkFactory,
        city: City,
        clock: Callable[[], datetime],
        limits: AmountLimits,
        batch: int,
        stopping: Callable[[], bool] | None,
        outcomes: list[str] | None,
    ) -> None:
        self.uows, self.city, self.clock, self.limits = uows, city, clock, limits
        self.batch, self.stopping = batch, stopping or (lambda: False)
        self.outcomes = outcomes
        self.waiting: deque[tuple[Autopay, _Batch]] = deque()  # claimed, not yet prepared
        # prepared, not yet started: its run (None: the general path), when it was read
        self.ready: deque[tuple[Autopay, _Batch, _Prepared | None, float]] = deque()
        self.claiming = asyncio.Lock()  # one claim (or preparation) at a time
        self.drained = False  # the last claim came back short: claim no more
        self.halted = False  # the city is down, the scheduler stops, or a charge failed
        self.processed = 0
        self.refreshes = _Refreshes()
        self.paid: list[_Paid] = []  # charged, not yet recorded
        self.recording = asyncio.Lock()  # one record of successes at a time
        self.record_later: asyncio.Task[None] | None = None  # RECORD_AFTER's timer
        self.record_error: BaseException | None = None  # a record that failed
        self.idle = 0  # workers in `next`, waiting for an autopay

    async def next(self) -> tuple[Autopay, _Batch, _Prepared | None] | None:
        """The oldest claimed autopay not yet started; a new batch is claimed (one statement,
        its own unit of work, committed before any is charged: another scheduler skips these)
        when none is waiting, and the next of it prepared, one for each worker waiting here,
        when none is ready; prepared ones that waited too long are read again. None when the
        run is over."""
        self.idle += 1
        try:
            return await self._next()
        finally:
            self.idle -= 1

    async def _next(self) -> tuple[Autopay, _Batch, _Prepared | None] | None:
        async with self.claiming:
            while True:
                if self.halted or self.stopping():
                    self.halted = True
                    return None
                if self.ready:
                    autopay, batch, prepared, read_at = self.ready[0]
                    if prepared is None or time.monotonic() - read_at <= FRESH_FOR:
                        self.ready.popleft()
                        return autopay, batch, prepared
                    # read too long ago: read again, with every ready one of its batch, and
                    # the first of them taken at once (just read: no second look at the clock)
                    stale = [(a, b) for a, b, p, _ in self.ready if b is batch and p]
                    self.ready = deque(e for e in self.ready if e[1] is not batch or not e[2])
                    reading = time.monotonic()
                    await self._prepare([a for a, _ in stale], batch)
                    first = self.ready[0] if self.ready else None
                    if first is not None and first[3] >= reading and not self.halted:
                        self.ready.popleft()
                        return first[0], first[1], first[2]
                    continue
                if not self.waiting:
                    if self.drained:
                        return None
                    claimed_at = self.clock()
                    async with self.uows() as uow:
                        claimed = await uow.autopays.claim_due(claimed_at, self.batch)
                        await uow.commit()
                    self.drained = len(claimed) < self.batch
                    batch = _Batch(len(claimed), claimed_at)
                    self.waiting.extend((autopay, batch) for autopay in claimed)
                    continue
                batch = self.waiting[0][1]
                chunk: list[Autopay] = []
                while self.waiting and self.waiting[0][1] is batch:
                    if len(chunk) >= max(1, self.idle):
                        break
                    chunk.append(self.waiting.popleft()[0])
                await self._prepare(chunk, batch)

    async def _prepare(self, chunk: list[Autopay], batch: _Batch) -> None:
        prepared = await self.prepare(chunk, batch)
        read_at = time.monotonic()
        self.ready.extend(
            (autopay, batch, prepared[autopay.id], read_at)
            for autopay in chunk
            if autopay.id in prepared
        )

    async def prepare(
        self, claimed: list[Autopay], batch: _Batch
    ) -> dict[int | None, _Prepared | None]:
        """In one transaction, the plain ones of these claimed autopays read again under their
        rows' locks (`lock_many`, as `_attempt` does one), their runs created as their first
        attempts with their keys (`runs_for`), or found and, when tried before, given their
        next attempt's key (`save_runs`) — what `_process` does for one before its charge (a
        run already STARTED keeps its key). Those no longer ACTIVE, due
        and leased by this claim are done ("inactive", their leases ended); those whose period
        was done, skipped or whose resident is gone take the general path. Returns, by id,
        each autopay left to charge with its prepared run, or None for the general path."""
        left: dict[int | None, _Prepared | None] = {a.id: None for a in claimed}
        plain = [a.id for a in claimed if a.id is not None and _plain(a)]
        if not plain:
            return left
        now = self.clock()
        _, ceiling = money_ceiling(AutopayKind.FIXED, self.limits)
        async with self.uows() as uow:
            stored = await uow.autopays.lock_many(plain, batch.claimed_at)
            inactive = [
                i
                for i in plain
                if i not in stored
                or stored[i].status is not AutopayStatus.ACTIVE
                or stored[i].next_due_at > now
            ]
            gone = set(inactive)
            ready = [stored[i] for i in plain if i not in gone and _plain(stored[i])]
            residents = await uow.residents.get_many([a.telegram_user_id for a in ready])
            # What the general path decides without the run: left to it.
            ready = [
                autopay
                for autopay in ready
                if residents.get(autopay.telegram_user_id) is not None  # it pauses: link again
                and autopay.skip_period != autopay.period
                and autopay.amount is not None
                and autopay.amount <= ceiling
            ]
            # A run made here is made as its first attempt, key and amount on record: only a
            # run found (tried before) is written again.
            runs, made = await uow.autopays.runs_for(
                [(a.id, a.period, run_key(a.id, a.period, 1)) for a in ready if a.id],
                now,
                first_amounts={a.id: a.amount for a in ready if a.id and a.amount is not None},
            )
            prepared: list[_Prepared] = []
            written: list[AutopayRun] = []
            for autopay in ready:
                run, resident = runs[autopay.id or 0], residents[autopay.telegram_user_id]
                if autopay.id in made:
                    pass  # made here as its first attempt, key and amount on record
                elif run.status in FINISHED_FOR_GOOD or _in_doubt(run):
                    continue  # the general path: done, or its key looked up first
                elif run.attempts == 0 or run.status is not RunStatus.STARTED:
                    run.attempts += 1  # as in `_process`: a new attempt gets a new key
                    run.key = run_key(run.autopay_id, run.period, run.attempts)
                    run.status, run.amount = RunStatus.STARTED, autopay.amount
                    written.append(run)
                # a copy each: a charge's refresh must not change the tokens another one holds
                # (`_RunSession` tells a refresh made meanwhile by the token it was given)
                prepared.append(_Prepared(autopay, run, replace(resident)))
            await uow.autopays.save_runs(written, now)
            await uow.autopays.release(inactive, batch.claimed_at)
            await uow.commit()  # the keys are on record before the platform hears them
        for run in written:
            run.as_stored()  # the version its charge's outcome is written over
        for autopay_id in inactive:
            del left[autopay_id]
            self.done(INACTIVE, batch)
        left.update({p.autopay.id: p for p in prepared})
        return left

    def done(self, outcome: str, batch: _Batch) -> None:
        self.processed += 1
        if self.outcomes is not None:
            self.outcomes.append(outcome)
        batch.finished += 1
        batch.unanswered += outcome == UNAVAILABLE
        if batch.finished == batch.size == batch.unanswered:
            self.halted = True  # not one answer in a whole batch: the city is down

    async def work(self) -> None:
        try:
            while (taken := await self.next()) is not None:
                autopay, batch, prepared = taken
                if prepared is not None:
                    outcome = await self.charge_prepared(prepared, batch)
                else:
                    outcome = await _charge(
                        self.uows,
                        self.city,
                        autopay,
                        batch.claimed_at,
                        self.clock(),
                        self.limits,
                        self.refreshes,
                    )
                self.done(outcome, batch)
        except BaseException:  # a claim or a charge broke: the others finish what they hold
            self.halted = True
            raise

    async def charge_prepared(self, prepared: _Prepared, batch: _Batch) -> str:
        """A prepared plain autopay's charge: the city call with the recorded key. A success
        waits to be recorded with others (`record_paid`); any other answer is recorded now,
        in its own unit of work, as `_process` and `_attempt` record it."""
        autopay, run, now = prepared.autopay, prepared.run, self.clock()
        assert autopay.id is not None and run.amount is not None
        async with self.uows() as uow:
            session = _RunSession(prepared.resident, self.city, uow, self.refreshes)
            try:
                payment = await self.city.create_payment(
                    session,
                    run.key,
                    payable=autopay.payable([]),
                    amount=run.amount,
                    method_id=autopay.method_id,
                )
            except (BillAlreadyPaid, AmountChanged):  # as `_process` for a donation
                outcome = await _finish(uow, autopay, run, RunStatus.SKIPPED, now, notify=None)
            except DomainError as error:
                outcome = await _after_error(uow, autopay, error, now)
            else:
                if payment.status is PaymentStatus.SUCCEEDED:
                    receipt = payment.receipt.number if payment.receipt else ""
                    self.paid.append(_Paid(autopay, run, receipt, batch.claimed_at, now))
                    if len(self.paid) >= RECORD_AT:
                        await self.record_paid()
                    elif self.record_later is None:
                        self.record_later = asyncio.ensure_future(self._record_after())
                    return RunStatus.SUCCEEDED.value
                outcome = await _after_payment(uow, autopay, run, payment, now)
            await uow.autopays.release([autopay.id], batch.claimed_at)
            await uow.commit()
        return outcome

    async def _record_after(self) -> None:
        await asyncio.sleep(RECORD_AFTER)
        self.record_later = None
        await self.record_paid()

    async def record_paid(self, *, final: bool = False) -> None:
        """Record the successful charges waiting (`paid`) in one transaction, what `_finish`
        records for each: the runs SUCCEEDED, the residents' notices, the schedules moved on
        from the rows as stored now (read under lock: a resident's change or pause meanwhile
        stands, an unlinked resident is not told) and the leases ended. One record at a time.
        A record that fails halts the run (`record_error`, raised by `tick`): its charges keep
        their leases and their keys are sent again after them. `final`: the run's end — the
        timer is stopped and whatever waits is recorded."""
        if final and self.record_later is not None:
            self.record_later.cancel()
            self.record_later = None
        async with self.recording:
            paid, self.paid = self.paid, []
            if not paid:
                return
            try:
                await self._record(paid)
            except BaseException as error:
                # Not recorded (the transaction rolled back): they wait again, for the next
                # record — the run's final one even when this one was cancelled.
                self.paid[:0] = paid
                if not isinstance(error, Exception):
                    raise
                self.halted = True
                self.record_error = self.record_error or error

    async def _record(self, paid: list[_Paid]) -> None:
        now = self.clock()
        async with self.uows() as uow:
            # the autopays' rows first, then their runs: the order every transaction here locks
            # them in (a run's row locked first would deadlock with a preparation)
            stored = await uow.autopays.lock_many([each.autopay.id or 0 for each in paid])
            runs = await uow.autopays.lock_runs([each.run.id or 0 for each in paid])
            # a run recorded by another writer while the city answered keeps that record; its
            # charge writes nothing more (as `_settled`), only its lease ends
            settled = [e for e in paid if not _as_read(e.run, runs.get(e.run.id or 0))]
            paid = [e for e in paid if _as_read(e.run, runs.get(e.run.id or 0))]
            for each in paid:
                each.run.status = RunStatus.SUCCEEDED
            await uow.autopays.save_runs([each.run for each in paid], now)
            notices: list[Notification] = []
            moved: list[Autopay] = []
            for each in paid:
                current = stored.get(each.autopay.id or 0)
                forgotten = _forgotten(each.autopay, current)
                if not forgotten:
                    notices.append(
                        _notice(each.autopay, each.run, "autopay_paid", False, receipt=each.receipt)
                    )
                autopay = replace(each.autopay)  # a copy: a record tried again moves it once
                passed = _next(autopay, each.now, current)
                await _passed_over(uow, autopay, passed, now, tell=not forgotten)  # rare
                moved.append(autopay)
            await uow.notifications.add_all_once(notices, now)
            claims = {e.autopay.id: e.claimed_at for e in paid if e.autopay.id is not None}
            # the leases end with the schedules' progress, in the same UPDATE of the rows …
            await uow.autopays.save_progress_many(moved, claims)
            deleted = [
                i for i in claims if i not in stored or stored[i].status is AutopayStatus.DELETED
            ]
            for claimed_at in {claims[i] for i in deleted}:  # … which leaves DELETED ones be
                await uow.autopays.release(
                    [i for i in deleted if claims[i] == claimed_at], claimed_at
                )
            for each in settled:  # rare: one release each
                await uow.autopays.release([each.autopay.id or 0], each.claimed_at)
            await uow.commit()


def _as_read(run: AutopayRun, stored: AutopayRun | None) -> bool:
    """The stored run (`stored`, read under its lock) is still the version `run` was read as
    or last wrote (`AutopayRun.stored`): nobody recorded it meanwhile."""
    return stored is not None and (run.stored is None or stored.stored == run.stored)


async def _charge(
    uows: UnitOfWorkFactory,
    city: City,
    claimed: Autopay,
    claimed_at: datetime,
    now: datetime,
    limits: AmountLimits,
    refreshes: _Refreshes,
) -> str:
    """One claimed autopay (leased by the claim at `claimed_at`), in its own unit of work: at
    most two commits. The first records the run and its key before the city hears it
    (`_process`); the second records the outcome and ends the lease together. Released after
    the work and never in `finally`: if anything breaks in between (the process dies, the
    database goes away), the lease is kept until it expires, and whoever takes over finds the
    run and sends its key again — never a second charge. The claimed copy only names the
    autopay: what is charged is read again under the row's lock (`_attempt`)."""
    assert claimed.id is not None
    async with uows() as uow:
        outcome = await _attempt(uow, city, claimed.id, claimed_at, now, limits, refreshes)
        await uow.autopays.release([claimed.id], claimed_at)
        await uow.commit()
    return outcome


class _Refreshes:
    """A run's token refreshes: one resident's at a time, and the tokens each last got. The
    city rotates refresh tokens, so two charges of one resident that met an expired access
    token at once must not both refresh: the second refresh, with the spent token, would be
    refused and unlink the resident."""

    def __init__(self) -> None:
        self.locks: dict[int, asyncio.Lock] = {}
        self.latest: dict[int, TokenSet] = {}

    def lock(self, telegram_user_id: int) -> asyncio.Lock:
        return self.locks.setdefault(telegram_user_id, asyncio.Lock())


class _RunSession(ResidentSession):
    """A ResidentSession whose refresh is shared by the run's charges of the same resident: the
    first refreshes (saved and committed as usual), the others, waiting meanwhile, take the
    tokens it got instead of refreshing again."""

    def __init__(
        self, resident: Resident, auth: CityAuth, uow: UnitOfWork, refreshes: _Refreshes
    ) -> None:
        super().__init__(resident, auth, uow)
        self._refreshes = refreshes

    async def refresh(self) -> None:
        user = self.resident.telegram_user_id
        async with self._refreshes.lock(user):
            latest = self._refreshes.latest.get(user)
            if latest is not None and latest.access_token != self.access_token:
                self.resident.tokens = latest  # refreshed by another charge while we waited
                return
            await super().refresh()
            self._refreshes.latest[user] = self.resident.tokens


async def _attempt(
    uow: UnitOfWork,
    city: City,
    autopay_id: int,
    claimed_at: datetime,
    now: datetime,
    limits: AmountLimits,
    refreshes: _Refreshes,
) -> str:
    """The autopay as stored now, its row locked (`lock`), charged if it is still ACTIVE, due
    at `now` and leased by this run's claim — with its current amount, limit, card, payer code
    and schedule. Otherwise (the resident paused, deleted or moved it, or unlinked, while it
    waited in the claimed batch; or the lease expired and another run took it) "inactive",
    without a word to the city."""
    autopay = await _lock(uow, autopay_id, claimed_at)
    if autopay is None or autopay.status is not AutopayStatus.ACTIVE or autopay.next_due_at > now:
        return INACTIVE
    try:
        return await _process(uow, city, autopay, now, limits, refreshes)
    except DomainError as error:
        return await _after_error(uow, autopay, error, now)


async def _after_error(uow: UnitOfWork, autopay: Autopay, error: DomainError, now: datetime) -> str:
    """The city did not answer the charge, or refused it (`error`): what is uncommitted is
    dropped, then the period is tried again later (its run STARTED, its key sent again), or
    refused — pausing the autopay for a lasting reason (`_refused`)."""
    await uow.rollback()
    if isinstance(error, CityUnavailable):  # the run stays STARTED: its key is sent again later
        return await _back_off(uow, autopay, now)
    if isinstance(error, RelinkRequired):
        return await _refused(uow, autopay, PauseReason.RELINK, now)
    if isinstance(error, (NotFound, UnknownTopupAccount, TopupRefused)):
        return await _refused(uow, autopay, PauseReason.TARGET_GONE, now)
    if isinstance(error, PaymentRefused) and error.reason == KEY_REUSED:
        # The key was sent before with another body (another scheduler took the run in doubt
        # after this one's lease and charged what is stored now): what it charged is not this
        # answer's to say. The run stays STARTED, in doubt, and is looked up at the next try.
        return await _back_off(uow, autopay, now)
    if isinstance(error, PaymentRefused):
        return await _refused(uow, autopay, LASTING_REFUSALS.get(error.reason), now)
    return await _back_off(uow, autopay, now)  # anything else that may pass: later, behind


KEY_REUSED = "idempotency_key_reused"  # the city's refusal of a key sent with another body


async def _back_off(uow: UnitOfWork, autopay: Autopay, now: datetime) -> str:
    """The period being charged (and its run's key) is tried again later; only the schedule's
    progress is written (`save_progress`): a resident's change or pause meanwhile stands, and
    a bill handed over after a resume (`_moved_on`) is not replaced by the one tried."""
    assert autopay.id is not None
    current = await _lock(uow, autopay.id) if autopay.on_issue else None
    if current is not None and _moved_on(autopay, current):
        _keep_stored(autopay, current)
    else:
        autopay.back_off(now)
    await uow.autopays.save_progress(autopay)
    return UNAVAILABLE


async def _refused(
    uow: UnitOfWork, autopay: Autopay, reason: PauseReason | None, now: datetime
) -> str:
    """The city refused this period's payment (nothing was charged). A lasting `reason` pauses
    the autopay; any other refusal fails this period only (None). Nothing is recorded if the
    resident paused or deleted the autopay meanwhile ("inactive")."""
    assert autopay.id is not None
    current = await _lock(uow, autopay.id)
    if current is None or current.status is not AutopayStatus.ACTIVE:
        return INACTIVE
    period = autopay.period  # the period being charged, whatever the resident changed since
    run = await uow.autopays.run_for(autopay.id, period, run_key(autopay.id, period, 1), now)
    if reason is None:
        run.failure = REFUSED
        return await _finish(
            uow,
            autopay,
            run,
            RunStatus.FAILED,
            now,
            notify="autopay_failed",
            urgent=True,
            held=current,
        )
    return await _pause(uow, autopay, run, reason, now, held=current)


async def _pause(
    uow: UnitOfWork,
    autopay: Autopay,
    run: AutopayRun,
    reason: PauseReason,
    now: datetime,
    *,
    held: Autopay | None = None,
    unasked: bool = False,
    **extra: object,
) -> str:
    """Paused for a lasting reason: the run failed, the resident is told (urgent: it needs
    them) what happened and how to fix it, staff see it on the dashboard — each once, by the
    dedupe keys of the autopay's period — all in one transaction (`_charge` commits it).
    `held`: the autopay as stored, if this transaction already holds its row's lock (else it
    is read again under the lock). Only an autopay still ACTIVE is paused (`save_progress`).
    `unasked`: paused before the city could be asked about the run's key — a run in doubt
    (`_in_doubt`) is then left as it is, STARTED with its key (its charge may have gone
    through: the stranded-run reconciliation or a resume asks about it), and the resident is
    not told that nothing was charged (`in_doubt` in the notice)."""
    assert autopay.id is not None
    doubt = unasked and _in_doubt(run)
    if not doubt:
        run.status, run.failure = RunStatus.FAILED, reason.value
    current = held or await _lock(uow, autopay.id)  # the autopay's row before its run's
    if not doubt and not await uow.autopays.save_run(run, now):
        return await _settled(uow)
    if doubt:
        extra["in_doubt"] = True
    if _forgotten(autopay, current):
        return PAUSED
    await uow.notifications.add_once(
        Notification(
            telegram_user_id=autopay.telegram_user_id,
            kind="autopay_paused",
            dedupe_key=f"autopay:{autopay.id}:{run.period}:paused",
            data=_describe(autopay, reason=reason.value, amount_charged=run.amount, **extra),
            urgent=True,
        ),
        now,
    )
    await support.autopay_failed(uow, autopay, run, now, paused=True)
    if current is not None and _moved_on(autopay, current):
        _keep_stored(autopay, current)
    autopay.pause(reason)
    await uow.autopays.save_progress(autopay, paused=True)
    if autopay.on_issue:  # the bills waiting for it are the resident's to pay now
        await uow.known_bills.drop_queue(autopay.id)
    return PAUSED


async def _process(
    uow: UnitOfWork,
    city: City,
    autopay: Autopay,
    now: datetime,
    limits: AmountLimits,
    refreshes: _Refreshes,
) -> str:
    """Charge `autopay`, read under its row's lock by this transaction (`_attempt`)."""
    assert autopay.id is not None
    held: Autopay | None = autopay  # as stored, while this transaction holds the row's lock
    balance: int | None = None
    if autopay.below:
        checked = await _check_balance(uow, city, autopay, now, refreshes)
        if isinstance(checked, str):
            return checked
        balance, held = checked, None  # committed: the end reads the row again
    period = autopay.period
    run = await uow.autopays.run_for(autopay.id, period, run_key(autopay.id, period, 1), now)
    if run.status in FINISHED_FOR_GOOD:
        passed = _next(autopay, now)  # done earlier (a repeated tick): the schedule moves on
        await _passed_over(uow, autopay, passed, now, tell=True)
        await _take_queued(uow, autopay, held, now)
        await uow.autopays.save_progress(autopay)
        return "already_done"
    resident = await uow.residents.get(autopay.telegram_user_id)
    if resident is None:  # no longer linked: nothing can be charged until they link again
        return await _pause(uow, autopay, run, PauseReason.RELINK, now, held=held, unasked=True)
    session = _RunSession(resident, city, uow, refreshes)
    if _in_doubt(run) and not autopay.below:  # a threshold top-up's: asked by `_check_balance`
        # Its key may have reached the city before a crash (a scheduler died between the charge
        # and its record). What the city and the autopay say now — the bill paid, a skip
        # pressed, a new amount or card — may follow from that very charge, so the key is
        # looked up first, as `domain.autopay_runs` does: a payment found is this period's
        # answer. None found: the key never reached the city, and is sent with what is stored.
        await uow.commit()  # no lock or connection held while the city answers
        held = None  # the end reads the row again
        asked = await _look_up(uow, city, session, autopay, run, now)
        if asked is not None:
            return asked
    if autopay.skip_period == period:
        return await _finish(uow, autopay, run, RunStatus.SKIPPED, now, notify=None, held=held)
    if autopay.on_issue and autopay.bill_id is None and autopay.retry_period is None:
        # Due with no bill handed over (cannot happen by discovery): nothing to pay, ever
        # «the first unpaid bill» — an on-issue autopay pays only the bill it was given.
        return await _finish(uow, autopay, run, RunStatus.SKIPPED, now, notify=None, held=held)
    _, ceiling = money_ceiling(autopay.kind, limits)
    bill_ids: list[str] = []
    amount = autopay.amount
    if autopay.kind is AutopayKind.BILL:
        # Neither the row's lock nor a connection is held while the city answers: a resident's
        # pause meanwhile is not kept waiting (it survives: the end writes only the schedule).
        await uow.commit()
        unpaid = await city.unpaid_bills(session)
        held = None  # the lock ended with the commit: the end reads the row again
        # On issue: only the bill discovery handed over, still of this autopay's service and
        # payer code. A BILL autopay migrated with a period still being tried (no bill handed
        # over: 0012) finishes that period as it began it, with its first matching bill.
        bills = [
            b
            for b in unpaid
            if autopay.matches(b) and (autopay.bill_id is None or b.id == autopay.bill_id)
        ]
        if not bills:
            return await _finish(uow, autopay, run, RunStatus.SKIPPED, now, notify=None)
        bill_ids, amount = [bills[0].id], bills[0].amount
        limit = min(ceiling, autopay.limit if autopay.limit is not None else ceiling)
        if amount > limit:
            run.amount = amount
            return await _finish(
                uow,
                autopay,
                run,
                RunStatus.OVER_LIMIT,
                now,
                notify="autopay_over_limit",
                limit=limit,
            )
    if autopay.kind is AutopayKind.TOPUP:
        if held is not None:  # no lock held while the city answers (see BILL above)
            await uow.commit()
            held = None
        refused = await _topup_refusal(uow, city, autopay, session, run, balance, ceiling, now)
        if refused is not None:
            return refused
    assert amount is not None
    if held is None:  # the row's lock was given up: the resident may have acted meanwhile
        held = await _lock(uow, autopay.id)
        if held is None or held.status is not AutopayStatus.ACTIVE:
            # Paused, deleted or forgotten while the city answered: nothing is charged; the
            # run stays unstarted (no key), so a resume charges what is due then.
            return INACTIVE
        if held.skip_period == period:
            return await _finish(uow, autopay, run, RunStatus.SKIPPED, now, notify=None, held=held)
    if amount > ceiling:  # a donation set up before today's ceiling: never charged as it is
        run.amount = amount
        return await _pause(
            uow, autopay, run, PauseReason.OVER_CEILING, now, held=held, ceiling=ceiling
        )
    if run.status is not RunStatus.STARTED or run.attempts == 0:
        run.attempts += 1  # a new attempt (first, or a retry after a decline) gets a new key
        run.key = run_key(autopay.id, period, run.attempts)
    run.status, run.amount = RunStatus.STARTED, amount
    if not await uow.autopays.save_run(run, now):  # settled while the city was asked above
        return await _settled(uow)
    await uow.commit()  # the key is on record before the platform hears it

    try:
        payment = await city.create_payment(
            session,
            run.key,
            payable=autopay.payable(bill_ids),
            amount=amount,
            method_id=autopay.method_id,
        )
    except BillAlreadyPaid:
        return await _finish(uow, autopay, run, RunStatus.SKIPPED, now, notify=None)
    except AmountChanged:
        if autopay.kind is not AutopayKind.BILL:
            return await _finish(uow, autopay, run, RunStatus.SKIPPED, now, notify=None)
        changed = await _charge_changed(uow, city, session, autopay, run, bill_ids, ceiling, now)
        if isinstance(changed, str):
            return changed
        payment = changed
    return await _after_payment(uow, autopay, run, payment, now)


async def _after_payment(
    uow: UnitOfWork, autopay: Autopay, run: AutopayRun, payment: Payment, now: datetime
) -> str:
    """The city's answer to a period's charge (`run`, its key recorded): paid, paused (3-D
    Secure, an expired card), tried again tomorrow (declined, no funds: up to RETRY_DAYS) or
    failed — recorded in the caller's transaction (`_finish`, `_pause`)."""
    assert autopay.id is not None
    if payment.status is PaymentStatus.SUCCEEDED:
        receipt = payment.receipt.number if payment.receipt else ""
        return await _finish(
            uow, autopay, run, RunStatus.SUCCEEDED, now, notify="autopay_paid", receipt=receipt
        )
    if payment.status is PaymentStatus.PENDING:  # the bank wants 3-D Secure: nobody is there
        return await _pause(uow, autopay, run, PauseReason.NEEDS_CONFIRMATION, now)
    if payment.status is PaymentStatus.EXPIRED_CARD:
        return await _pause(uow, autopay, run, PauseReason.CARD_EXPIRED, now)
    run.failure = payment.status.value
    if payment.status in RETRYABLE and run.attempts <= RETRY_DAYS:
        run.status = RunStatus.RETRYING
        current = await _lock(uow, autopay.id)  # the autopay's row before its run's
        if not await uow.autopays.save_run(run, now):
            return await _settled(uow)
        if current is not None and _moved_on(autopay, current):
            _keep_stored(autopay, current)  # resumed meanwhile: from the next bill on
        else:
            autopay.retry_tomorrow(now)
        await uow.autopays.save_progress(autopay)
        return RunStatus.RETRYING.value
    # Retries used up (declined, insufficient funds) or canceled: the text says which.
    return await _finish(
        uow, autopay, run, RunStatus.FAILED, now, notify="autopay_failed", urgent=True
    )


AMOUNT_CHANGED = "amount_changed"  # a run's failure: the bill changed again at its charge


async def _charge_changed(
    uow: UnitOfWork,
    city: City,
    session: _RunSession,
    autopay: Autopay,
    run: AutopayRun,
    bill_ids: list[str],
    ceiling: int,
    now: datetime,
) -> Payment | str:
    """The city refused a BILL autopay's charge: the bill was corrected since the run's look-up
    (409 amount_changed; nothing charged, the key bound to nothing). An on-issue autopay is
    handed each bill once, so it is settled now, never silently: the bill is looked up again —
    paid or gone meanwhile: SKIPPED; above the limit: OVER_LIMIT, told («Оплатить»); else the
    new amount is charged, with a key of its own for that amount (`…-<amount>`, recorded
    before the city hears it, as every key: a repeat after a crash sends it again with the same
    body). Changed once more: FAILED, told — the resident pays it. Returns the payment, or the
    tick's outcome when nothing more is charged."""
    assert autopay.id is not None
    unpaid = await city.unpaid_bills(session)
    found = [b for b in unpaid if b.id in bill_ids and b.amount >= 1]
    if not found:
        return await _finish(uow, autopay, run, RunStatus.SKIPPED, now, notify=None)
    amount = found[0].amount
    limit = min(ceiling, autopay.limit if autopay.limit is not None else ceiling)
    run.amount = amount
    if amount > limit:
        return await _finish(
            uow, autopay, run, RunStatus.OVER_LIMIT, now, notify="autopay_over_limit", limit=limit
        )
    run.key = f"{run_key(autopay.id, run.period, run.attempts)}-{amount}"
    await _lock(uow, autopay.id)  # the autopay's row before its run's
    if not await uow.autopays.save_run(run, now):  # the first key's answer is on record:
        return await _settled(uow)  # no second key is sent
    await uow.commit()  # the new key is on record before the platform hears it
    try:
        return await city.create_payment(
            session,
            run.key,
            payable=autopay.payable(bill_ids),
            amount=amount,
            method_id=autopay.method_id,
        )
    except BillAlreadyPaid:
        return await _finish(uow, autopay, run, RunStatus.SKIPPED, now, notify=None)
    except AmountChanged:
        run.failure = AMOUNT_CHANGED
        return await _finish(
            uow, autopay, run, RunStatus.FAILED, now, notify="autopay_failed", urgent=True
        )


async def _look_up(
    uow: UnitOfWork,
    city: City,
    session: _RunSession,
    autopay: Autopay,
    run: AutopayRun,
    now: datetime,
) -> str | None:
    """Ask the city about a run in doubt's key: a payment found is recorded as the charge's
    answer (`_after_payment`) and its outcome returned; None when the city has none (the key
    never reached it). The lookup's own failure is never a refusal of a charge: the city not
    answering backs off, the link refused pauses the autopay with the run left in doubt (the
    resident is not told nothing was charged), anything else backs off."""
    try:
        found = await city.find_payment(session, run.key)
    except RelinkRequired:
        return await _pause(uow, autopay, run, PauseReason.RELINK, now, unasked=True)
    except DomainError:
        return await _back_off(uow, autopay, now)
    return None if found is None else await _after_payment(uow, autopay, run, found, now)


async def _check_balance(
    uow: UnitOfWork, city: City, autopay: Autopay, now: datetime, refreshes: _Refreshes
) -> int | str:
    """A threshold top-up's balance check (the row locked by `_attempt`). Returns the balance
    when this drop is to be charged now, else the tick's outcome, the progress written:

    - at or above the threshold: nothing is charged; if the current drop was handled (its run
      is there and not STARTED), the autopay is re-armed (`Autopay.rearm`): the next drop is a
      new period, so it is charged once more — and only then;
    - below it, with the drop's run finished (paid, skipped or failed): nothing (once per drop);
    - below it, no run yet or one STARTED (a charge maybe sent: its key is sent again): the
      balance, and `_process` charges the drop's run like any period.

    The row's lock is given up (commit) before the city is asked; the end re-reads it."""
    assert autopay.id is not None and autopay.threshold is not None
    assert autopay.topup_service and autopay.topup_account
    run = await uow.autopays.run_of(autopay.id, autopay.period)
    resident = await uow.residents.get(autopay.telegram_user_id)
    if resident is None:
        run = await uow.autopays.run_for(
            autopay.id, autopay.period, run_key(autopay.id, autopay.period, 1), now
        )
        return await _pause(uow, autopay, run, PauseReason.RELINK, now, held=autopay, unasked=True)
    await uow.commit()
    session = _RunSession(resident, city, uow, refreshes)
    if run is not None and _in_doubt(run):
        # This drop's top-up may have gone through before a crash: the balance may be its
        # doing. The key is asked about before the balance is read (`_process`'s rule).
        asked = await _look_up(uow, city, session, autopay, run, now)
        if asked is not None:
            return asked
    service = TopupService(autopay.topup_service)
    found = await city.topup_balance(session, service, autopay.topup_account)
    if found.balance is None:  # the platform does not show it: a threshold cannot work
        run = await uow.autopays.run_for(
            autopay.id, autopay.period, run_key(autopay.id, autopay.period, 1), now
        )
        return await _pause(uow, autopay, run, PauseReason.NO_BALANCE, now)
    handled = run is not None and run.status is not RunStatus.STARTED
    if found.balance >= autopay.threshold:
        current = await _lock(uow, autopay.id)
        if current is None or current.status is not AutopayStatus.ACTIVE:
            return INACTIVE
        if handled:
            autopay.rearm()
        _next(autopay, now, current)
        await uow.autopays.save_progress(autopay)
        return BALANCE_OK
    if handled and not (run is not None and run.status is RunStatus.RETRYING):
        _next(autopay, now)  # the drop was handled: wait for the balance to rise
        await uow.autopays.save_progress(autopay)
        return "already_done"
    return found.balance


async def _topup_refusal(
    uow: UnitOfWork,
    city: City,
    autopay: Autopay,
    session: _RunSession,
    run: AutopayRun,
    balance: int | None,
    ceiling: int,
    now: datetime,
) -> str | None:
    """A top-up's amount against the service's limits now (and the room left in the wallet,
    by `balance`, read here for a scheduled one): None when it fits. A full wallet skips this
    period (it passes by itself); a service gone or limits that no longer take the amount
    pause the autopay (each period would be refused the same way)."""
    assert autopay.amount is not None and autopay.topup_service and autopay.topup_account
    service = service_of(await city.topup_services(session), autopay.topup_service)
    if service is None:
        return await _pause(uow, autopay, run, PauseReason.TARGET_GONE, now)
    if balance is None and not autopay.below:
        balance = (await city.topup_balance(session, service.code, autopay.topup_account)).balance
    fits = check_amount(autopay.amount, service.limits, balance, ceiling)
    if fits is AmountProblem.OVER_BALANCE and not autopay.below:
        run.amount, run.failure = autopay.amount, TOPUP_FULL
        return await _finish(uow, autopay, run, RunStatus.SKIPPED, now, notify="autopay_topup_full")
    if isinstance(fits, AmountProblem):
        run.amount = autopay.amount
        return await _pause(uow, autopay, run, PauseReason.TOPUP_LIMITS, now)
    return None


def _next(autopay: Autopay, now: datetime, current: Autopay | None = None) -> list[date]:
    """On to the period after the one charged, by the schedule `current` (the autopay as stored
    now) has: a new day the resident chose while the run charged is followed. Returns the
    scheduled dates passed over on the way (`Autopay.advance`), but one the resident skipped."""
    skipped, autopay.skip_period = autopay.skip_period, None
    if current is not None:
        autopay.schedule = current.schedule
    passed = autopay.advance(now)
    return [day for day in passed if autopay.schedule.period_of(day) != skipped]


async def _passed_over(
    uow: UnitOfWork, autopay: Autopay, passed: list[date], now: datetime, *, tell: bool
) -> None:
    """The periods of `passed` (scheduled dates that came due while an earlier period was
    still being charged) recorded as SKIPPED runs with the failure MISSED — finished for good,
    so never charged late — and, with `tell`, the resident told once, with the next charge's
    date. A period with a run already (one whose key went out) is left as it is."""
    if not passed or autopay.id is None:
        return
    for day in passed:
        period = autopay.schedule.period_of(day)
        run = await uow.autopays.run_for(autopay.id, period, run_key(autopay.id, period, 1), now)
        if run.status is RunStatus.STARTED and run.attempts == 0:  # made here: never sent
            run.status, run.failure = RunStatus.SKIPPED, MISSED
            await uow.autopays.save_run(run, now)
    if tell:
        first = autopay.schedule.period_of(passed[0])
        await uow.notifications.add_once(
            Notification(
                telegram_user_id=autopay.telegram_user_id,
                kind="autopay_missed",
                dedupe_key=f"autopay:{autopay.id}:{first}:{MISSED}",
                data=_describe(autopay, missed=[day.isoformat() for day in passed]),
            ),
            now,
        )


def _moved_on(autopay: Autopay, current: Autopay | None) -> bool:
    """On issue: the autopay as stored now (`current`, read under the row's lock) no longer
    waits on the bill this run charged — the resident paused and resumed meanwhile (the bill
    cleared), and bill discovery may have handed over the next one («Спишем завтра»)."""
    return autopay.on_issue and current is not None and current.bill_id != autopay.bill_id


def _keep_stored(autopay: Autopay, current: Autopay) -> None:
    """The run's end writes back the stored progress (`save_progress`), not its own: a bill
    handed over meanwhile, and its due moment, stand."""
    autopay.bill_id, autopay.next_due_at = current.bill_id, current.next_due_at
    autopay.retry_period, autopay.unanswered = current.retry_period, current.unanswered
    autopay.skip_period = current.skip_period


def _forgotten(autopay: Autopay, current: Autopay | None) -> bool:
    """The resident unlinked while this tick held their autopay (`current`, as stored now, is
    anonymous): nothing more is written about them — no notification, no Dashboard event, no
    support topic; the run, anonymous, still records what was charged. `current` is read
    under the row's lock (`lock`): an unlinking that updated it first is waited for and seen;
    one that comes later waits, and then deletes what this run wrote."""
    return current is None or current.telegram_user_id != autopay.telegram_user_id


async def _finish(
    uow: UnitOfWork,
    autopay: Autopay,
    run: AutopayRun,
    status: RunStatus,
    now: datetime,
    *,
    notify: str | None,
    urgent: bool = False,
    held: Autopay | None = None,
    **extra: object,
) -> str:
    """Record the run, write the notification and move the schedule, in one transaction (the
    caller, `_charge`, commits it). `held`: the autopay as stored, if this transaction already
    holds its row's lock (else it is read again under the lock). Only the schedule's progress
    is written (`save_progress`): what the resident changed meanwhile stands."""
    assert autopay.id is not None
    run.status = status
    current = held or await _lock(uow, autopay.id)  # the autopay's row before its run's
    if not await uow.autopays.save_run(run, now):
        return await _settled(uow)
    forgotten = _forgotten(autopay, current)
    if notify is not None and not forgotten:
        await uow.notifications.add_once(_notice(autopay, run, notify, urgent, **extra), now)
    if status is RunStatus.FAILED and not forgotten:  # retries used up or refused: staff hear
        await support.autopay_failed(uow, autopay, run, now)
    if current is not None and _moved_on(autopay, current):
        _keep_stored(autopay, current)
    else:
        passed = _next(autopay, now, current)
        await _passed_over(uow, autopay, passed, now, tell=not forgotten)
        await _take_queued(uow, autopay, current, now)
    await uow.autopays.save_progress(autopay)
    return status.value


async def _settled(uow: UnitOfWork) -> str:
    """The run was recorded by another writer since this charge read it (`save_run` wrote
    nothing): its record stands, and nothing of this transaction is kept — no notice, no
    schedule moved (that writer did what its record needs)."""
    await uow.rollback()
    return SETTLED


def _notice(
    autopay: Autopay, run: AutopayRun, kind: str, urgent: bool, **extra: object
) -> Notification:
    """The resident's notice of a run's outcome (`run.status`), once per autopay, period and
    outcome (its dedupe key)."""
    return Notification(
        telegram_user_id=autopay.telegram_user_id,
        kind=kind,
        dedupe_key=f"autopay:{autopay.id}:{run.period}:{run.status.value}",
        data=_describe(autopay, amount_charged=run.amount, failure=run.failure, **extra),
        urgent=urgent,
    )


async def _take_queued(
    uow: UnitOfWork, autopay: Autopay, current: Autopay | None, now: datetime
) -> None:
    """On issue, a bill done: the next bill discovery queued for it (if it is still ACTIVE)
    is handed over, due at once. `current` was read under the row's lock in this
    transaction, as discovery reads it before queueing: a bill is queued or handed, once."""
    if not autopay.on_issue or autopay.id is None:
        return
    if current is None or current.status is not AutopayStatus.ACTIVE:
        return
    queued = await uow.known_bills.next_queued(autopay.id)
    if queued is not None:
        autopay.take_bill(queued, now)


async def change(
    uow: UnitOfWork,
    resident: Resident,
    autopay_id: int,
    now: datetime,
    *,
    money: int | None = None,
    schedule: Schedule | None = None,
    limits: AmountLimits = DEFAULT_LIMITS,
) -> Autopay:
    """A new amount (FIXED) or limit (BILL), in kopecks, or a new day: from the next charge
    on. A new allowed amount resumes an autopay paused for being above the ceiling. Raises
    NotFound, AutopayTooSmall, AmountTooLarge."""
    autopay = await _held(uow, resident, autopay_id)
    if money is not None:
        check_money(autopay.kind, money, limits)
        if autopay.kind is AutopayKind.BILL:
            autopay.limit = money
        else:
            autopay.amount = money
        if autopay.status is AutopayStatus.PAUSED and (
            autopay.paused_reason is PauseReason.OVER_CEILING
        ):
            await _resume(uow, autopay, now)
    if schedule is not None:
        if not autopay.schedule.dated or not schedule.dated:
            raise ValueError("an autopay on issue or by threshold has no day to change")
        autopay.schedule = schedule
        if autopay.retry_period is None:
            autopay.next_due_at = next_due(schedule, now)
        # else the period being tried again (declined, or the city silent with its key maybe
        # sent) goes on being tried; the new day counts from the next period (`advance`
        # reads the schedule): cleared, the run was left RETRYING for good, never told.
    await uow.autopays.save(autopay)
    await uow.commit()
    return autopay
