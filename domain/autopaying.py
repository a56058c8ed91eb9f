"""Autopay use cases: set up, change, pause, skip once, remind, and the tick that charges.

The tick claims due autopays (a lease, `FOR UPDATE SKIP LOCKED` on PostgreSQL), and for each
finds or creates the run of its period — unique per (autopay, period) — then charges with the
run's idempotency key after committing it. A tick that repeats, a second scheduler, or a crash
after the charge all meet the same run and the same key: one charge per period.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from domain import support
from domain.accounts import Resident
from domain.autopay import (
    MOSCOW,
    RETRY_DAYS,
    Autopay,
    AutopayKind,
    AutopayRun,
    AutopayStatus,
    RunStatus,
    Schedule,
    next_due,
    run_key,
)
from domain.charity import MIN_DONATION
from domain.errors import CityUnavailable, DomainError, NotFound, RelinkRequired
from domain.payments import AmountChanged, BillAlreadyPaid, PaymentStatus
from domain.ports import City, Notification, UnitOfWork
from domain.sessions import ResidentSession

TICK_BATCH = 50
RETRYABLE = {PaymentStatus.DECLINED, PaymentStatus.INSUFFICIENT_FUNDS}


class AutopayTooSmall(DomainError):
    """A charity autopay below 50 ₽."""


async def set_up(uow: UnitOfWork, autopay: Autopay, now: datetime) -> Autopay:
    if autopay.kind is AutopayKind.FIXED and (autopay.amount or 0) < MIN_DONATION:
        raise AutopayTooSmall()
    autopay.next_due_at = next_due(autopay.schedule, now)
    await uow.autopays.add(autopay, now)
    await uow.commit()
    return autopay


async def own_autopay(uow: UnitOfWork, resident: Resident, autopay_id: int) -> Autopay:
    autopay = await uow.autopays.get(autopay_id)
    if autopay is None or autopay.telegram_user_id != resident.telegram_user_id:
        raise NotFound(f"autopay {autopay_id}")
    return autopay


async def set_status(
    uow: UnitOfWork, resident: Resident, autopay_id: int, status: AutopayStatus, now: datetime
) -> Autopay:
    autopay = await own_autopay(uow, resident, autopay_id)
    autopay.status = status
    if status is AutopayStatus.ACTIVE:  # resumed: the next date from now, none in the past
        autopay.next_due_at = next_due(autopay.schedule, now)
        autopay.retry_period = None
    await uow.autopays.save(autopay)
    await uow.commit()
    return autopay


async def skip_once(
    uow: UnitOfWork, resident: Resident, autopay_id: int, period: str
) -> Autopay | None:
    """«Пропустить этот раз»: only the period the reminder was about; None if it has passed."""
    autopay = await own_autopay(uow, resident, autopay_id)
    if autopay.period != period:
        return None
    autopay.skip_period = period
    await uow.autopays.save(autopay)
    await uow.commit()
    return autopay


async def send_reminders(uow: UnitOfWork, now: datetime) -> int:
    """«Завтра спишем …»: once per autopay and period (the dedupe key), the day before."""
    tomorrow = now.astimezone(MOSCOW).date() + timedelta(days=1)
    start = datetime.combine(tomorrow, datetime.min.time(), MOSCOW)
    written = 0
    for autopay in await uow.autopays.reminders_due(start, start + timedelta(days=1)):
        if autopay.skip_period == autopay.period or autopay.retry_period is not None:
            continue
        written += await uow.notifications.add_once(
            Notification(
                telegram_user_id=autopay.telegram_user_id,
                kind="autopay_reminder",
                dedupe_key=f"autopay:{autopay.id}:{autopay.period}:reminder",
                data=_describe(autopay),
            ),
            now,
        )
    await uow.commit()
    return written


def _describe(autopay: Autopay, **extra: object) -> dict[str, object]:
    return {
        "autopay_id": autopay.id,
        "period": autopay.period,
        "kind": autopay.kind.value,
        "amount": autopay.amount,
        "limit": autopay.limit,
        "fund_name": autopay.fund_name,
        "bill_kind": autopay.bill_kind.value if autopay.bill_kind else None,
        "due": autopay.next_due_at.astimezone(MOSCOW).date().isoformat(),
        **extra,
    }


async def tick(
    uow: UnitOfWork, city: City, now: datetime, outcomes: list[str] | None = None
) -> int:
    """Charge every due autopay once for its period. Returns how many were processed; each
    one's outcome (a RunStatus value, or "unavailable") is appended to `outcomes`."""
    claimed = await uow.autopays.claim_due(now, TICK_BATCH)
    await uow.commit()  # the lease is taken; another scheduler skips these
    for autopay in claimed:
        assert autopay.id is not None
        try:
            outcome = await _process(uow, city, autopay, now)
        except (CityUnavailable, RelinkRequired, NotFound):
            await uow.rollback()  # the run stays STARTED: the next tick resends its key
            outcome = "unavailable"
        if outcomes is not None:
            outcomes.append(outcome)
        # Released after the work, not in `finally`: a scheduler that dies keeps the lease
        # until it expires, and whoever takes over finds the run and its key.
        await uow.autopays.release(autopay.id)
        await uow.commit()
    return len(claimed)


async def _process(uow: UnitOfWork, city: City, autopay: Autopay, now: datetime) -> str:
    assert autopay.id is not None
    period = autopay.period
    run = await uow.autopays.run_for(autopay.id, period, run_key(autopay.id, period, 1), now)
    if run.status in (RunStatus.SUCCEEDED, RunStatus.SKIPPED, RunStatus.OVER_LIMIT):
        _next(autopay, now)  # done earlier (a repeated tick): only the schedule moves on
        await uow.autopays.save(autopay)
        return "already_done"
    resident = await uow.residents.get(autopay.telegram_user_id)
    if resident is None:  # unlinked: nothing can be charged any more
        autopay.status = AutopayStatus.PAUSED
        await uow.autopays.save(autopay)
        return "paused"
    if autopay.skip_period == period:
        return await _finish(uow, autopay, run, RunStatus.SKIPPED, now, notify=None)
    session = ResidentSession(resident, city, uow.residents)
    bill_ids: list[str] = []
    amount = autopay.amount
    if autopay.kind is AutopayKind.BILL:
        bills = [
            b
            for b in await city.unpaid_bills(session)
            if b.kind == autopay.bill_kind
            and (not autopay.payer_code or b.payer_code == autopay.payer_code)
        ]
        if not bills:
            return await _finish(uow, autopay, run, RunStatus.SKIPPED, now, notify=None)
        bill_ids, amount = [bills[0].id], bills[0].amount
        if autopay.limit is not None and amount > autopay.limit:
            run.amount = amount
            return await _finish(
                uow, autopay, run, RunStatus.OVER_LIMIT, now, notify="autopay_over_limit"
            )
    assert amount is not None
    if run.status is not RunStatus.STARTED or run.attempts == 0:
        run.attempts += 1  # a new attempt (first, or a retry after a decline) gets a new key
        run.key = run_key(autopay.id, period, run.attempts)
    run.status, run.amount = RunStatus.STARTED, amount
    await uow.autopays.save_run(run, now)
    await uow.commit()  # the key is on record before the platform hears it

    try:
        payment = await city.create_payment(
            session,
            run.key,
            bill_ids=bill_ids,
            requisites=None,
            amount=amount,
            method_id=autopay.method_id,
            fund_id=autopay.fund_id,
        )
    except (BillAlreadyPaid, AmountChanged):
        return await _finish(uow, autopay, run, RunStatus.SKIPPED, now, notify=None)
    if payment.status is PaymentStatus.SUCCEEDED:
        receipt = payment.receipt.number if payment.receipt else ""
        return await _finish(
            uow, autopay, run, RunStatus.SUCCEEDED, now, notify="autopay_paid", receipt=receipt
        )
    elif payment.status in RETRYABLE and run.attempts <= RETRY_DAYS:
        run.status, run.failure = RunStatus.RETRYING, payment.status.value
        await uow.autopays.save_run(run, now)
        autopay.retry_tomorrow(now)
        await uow.autopays.save(autopay)
        await uow.commit()
        return RunStatus.RETRYING.value
    else:
        run.failure = payment.status.value
        kind = (
            "autopay_card_expired"
            if payment.status is PaymentStatus.EXPIRED_CARD
            else "autopay_failed"
        )
        return await _finish(uow, autopay, run, RunStatus.FAILED, now, notify=kind, urgent=True)


def _next(autopay: Autopay, now: datetime) -> None:
    autopay.skip_period = None
    autopay.advance(now)


async def _finish(
    uow: UnitOfWork,
    autopay: Autopay,
    run: AutopayRun,
    status: RunStatus,
    now: datetime,
    *,
    notify: str | None,
    urgent: bool = False,
    **extra: object,
) -> str:
    """Record the run, write the notification and move the schedule, in one transaction."""
    run.status = status
    await uow.autopays.save_run(run, now)
    if notify is not None:
        await uow.notifications.add_once(
            Notification(
                telegram_user_id=autopay.telegram_user_id,
                kind=notify,
                dedupe_key=f"autopay:{autopay.id}:{run.period}:{status.value}",
                data=_describe(autopay, amount_charged=run.amount, failure=run.failure, **extra),
                urgent=urgent,
            ),
            now,
        )
    if status is RunStatus.FAILED:  # retries used up or the card expired: staff hear of it
        await support.autopay_failed(uow, autopay, run, now)
    _next(autopay, now)
    await uow.autopays.save(autopay)
    await uow.commit()
    return status.value


async def change(
    uow: UnitOfWork,
    resident: Resident,
    autopay_id: int,
    now: datetime,
    *,
    money: int | None = None,
    schedule: Schedule | None = None,
) -> Autopay:
    """A new amount (FIXED) or limit (BILL), or a new day: from the next charge on."""
    autopay = await own_autopay(uow, resident, autopay_id)
    if money is not None:
        if autopay.kind is AutopayKind.FIXED:
            if money < MIN_DONATION:
                raise AutopayTooSmall()
            autopay.amount = money
        else:
            autopay.limit = money
    if schedule is not None:
        autopay.schedule = schedule
        autopay.next_due_at = next_due(schedule, now)
        autopay.retry_period = None
    await uow.autopays.save(autopay)
    await uow.commit()
    return autopay
