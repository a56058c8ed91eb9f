"""Reconciliation of stranded autopay runs: a charge whose key was recorded (the run STARTED,
attempts ≥ 1), maybe sent to the city and charged, whose outcome was never recorded — the
scheduler died between the city's answer and the record — and that the charge run will never
send again: its autopay was paused or deleted (by the resident, or forgotten by unlinking), or
its period moved on (a new schedule). The charge run only ever sends again the key of an
ACTIVE autopay's current period (`autopaying._process`); these would stay STARTED for good, a
charge made and never recorded.

As `payments.reconcile` does for payment intents, the city is asked about the run's key
(`CityPayments.find_payment`; its payments are idempotent by key, so the key names at most one
payment), and the answer is recorded: paid — the run SUCCEEDED and the resident told as the
charge run tells it («autopay_paid», once by its dedupe key); refused — FAILED with the city's
reason (the same key always names the same refused payment, so a later attempt needs and gets a
new key); pending — left. No payment is left too, the run STARTED with its key: «not taken
yet» is not «never taken» — a scheduler stalled past its lease may still be sending that key,
and closing the run would let a resume charge the period again with a new key (two charges);
left STARTED, a resume sends the same key and the city's idempotence keeps it one charge. Such
runs are asked about for ASKED_FOR after their last write, then no more (nothing was charged,
as far as the city knew for that long). The record re-reads the autopay's row and then the
run's under their locks (that order, as every transaction here) and is made only if the run is
still stranded: not leased, still STARTED with the same key, not written since — a scheduler
that took it up meanwhile owns it. A city error leaves that run as it is, for a later run.

Only the run (and the resident's notice) is written: the autopay's schedule is the resident's
now (paused, deleted or moved on), and stays as it is."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from domain import support
from domain.accounts import Resident
from domain.autopay import RETRY_DAYS, Autopay, AutopayRun, AutopayStatus, RunStatus
from domain.autopaying import RETRYABLE, _forgotten, _notice
from domain.errors import CityUnavailable, DomainError
from domain.payments import Payment, PaymentStatus
from domain.ports import CityAuth, CityPayments, UnitOfWork
from domain.sessions import ResidentSession

# How long after its last write a stranded run the city has no payment for is asked about
# again (every reconciliation): far beyond any lease or stall, short enough that a run never
# sent does not cost a city call every few minutes for good.
ASKED_FOR = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class RunReconciled:
    """What became of one stranded run: `recorded` is the status recorded (None: left as it
    was — the city did not answer (`left_because`), the payment is pending, or a scheduler
    took the run up meanwhile)."""

    run: AutopayRun
    recorded: RunStatus | None = None
    left_because: DomainError | None = None
    told: bool = False  # the resident's notice was written


def stranded(autopay: Autopay, run: AutopayRun) -> bool:
    """The charge run will not send `run`'s key again: its autopay is not ACTIVE, or it
    charges another period now."""
    return autopay.status is not AutopayStatus.ACTIVE or autopay.period != run.period


async def reconcile_runs(
    uow: UnitOfWork,
    auth: CityAuth,
    payments: CityPayments,
    now: datetime,
    settled_before: datetime,
) -> list[RunReconciled]:
    """Periodically: every stranded run (`stranded`) last written before `settled_before` —
    older than the charge run's lease, so no live scheduler is sending it — of an autopay
    nobody leases at `now`, settled by asking the city about its key (one SELECT finds them;
    then, each, the city's answer and one transaction). A run whose resident unlinked is
    skipped: nobody to ask for (`unlink` settles them before it forgets). A run the city
    cannot be asked about now (unavailable, the token refused, any domain error) is left as
    it is (`left_because`); the others are still settled, unless the city is unavailable:
    then the rest wait for the next reconciliation too (one city deadline a run, not one for
    each). Runs last written more than ASKED_FOR before `now` are no longer asked about.
    Commits as it goes."""
    outcomes: list[RunReconciled] = []
    found = await uow.autopays.started_runs(now, settled_before, updated_after=now - ASKED_FOR)
    for autopay, run in found:
        if not stranded(autopay, run):
            continue  # ACTIVE and on this period: the charge run sends its key again
        resident = await uow.residents.get(autopay.telegram_user_id)
        if resident is None:
            continue
        outcome = await _settle(uow, auth, payments, resident, autopay, run, now, settled_before)
        outcomes.append(outcome)
        if isinstance(outcome.left_because, CityUnavailable):
            break
    return outcomes


async def settle_runs_of(
    uow: UnitOfWork, auth: CityAuth, payments: CityPayments, resident: Resident, now: datetime
) -> list[RunReconciled]:
    """Unlinking: the resident's runs with a key recorded and no outcome, leased or not,
    settled as `reconcile_runs` settles them — however recent — while the token still works —
    whatever their autopay. A leased one too: the scheduler holding it may have died after
    the city took the charge, and once the resident is forgotten nobody can ask the city
    again (review 27); a live one records the same outcome (the city's answer for the key),
    or finds it recorded, and a charge whose answer is not in yet stays STARTED. Once
    forgotten, none is ever sent again. Nobody is told (the resident is being forgotten); a
    charge that went through is recorded SUCCEEDED. Raises nothing of the city's: a run it
    does not answer about, or has no payment for, stays STARTED, on an anonymous record, with
    its key (to match the city's ledger later)."""
    outcomes = []
    user = resident.telegram_user_id
    for autopay, run in await uow.autopays.started_runs(now, None, user, leased_too=True):
        outcome = await _settle(
            uow, auth, payments, resident, autopay, run, now, None, forgetting=True
        )
        outcomes.append(outcome)
        if isinstance(outcome.left_because, CityUnavailable):
            break  # the unlinking is not kept waiting a city deadline for each
    return outcomes


async def _settle(
    uow: UnitOfWork,
    auth: CityAuth,
    payments: CityPayments,
    resident: Resident,
    autopay: Autopay,
    run: AutopayRun,
    now: datetime,
    settled_before: datetime | None,
    *,
    forgetting: bool = False,
) -> RunReconciled:
    """Ask the city about `run`'s key, then record its answer if the run is still stranded
    (read again under the autopay's lock, then the run's). `forgetting`: unlinking — every
    run of the resident's is stranded, and nobody is told."""
    assert autopay.id is not None and run.id is not None
    await uow.commit()  # nothing held while the city answers
    try:
        payment = await payments.find_payment(ResidentSession(resident, auth, uow), run.key)
    except DomainError as error:
        await uow.rollback()
        return RunReconciled(run, left_because=error)
    if payment is None or payment.status is PaymentStatus.PENDING:
        return RunReconciled(run)  # asked again next time (see the module: never «not taken»)
    locked = await uow.autopays.lock_started(
        autopay.id, run.id, now, settled_before, leased_too=forgetting
    )
    if locked is None:
        await uow.rollback()
        return RunReconciled(run)  # leased or written meanwhile: a scheduler owns it
    current, stored = locked
    if (
        stored.status is not RunStatus.STARTED
        or stored.key != run.key
        or stored.attempts != run.attempts
        or not (forgetting or stranded(current, stored))
    ):
        await uow.rollback()
        return RunReconciled(stored)
    tell = not forgetting and not _forgotten(autopay, current)
    told = await _record(uow, current, stored, payment, now, tell=tell)
    await uow.commit()
    return RunReconciled(stored, recorded=stored.status, told=told)


async def _record(
    uow: UnitOfWork,
    autopay: Autopay,
    run: AutopayRun,
    payment: Payment,
    now: datetime,
    *,
    tell: bool,
) -> bool:
    """The city's final answer about `run`'s key recorded on the
    run, in the caller's transaction, which holds the autopay's and the run's locks. With
    `tell`, the resident is told as the charge run tells them (`autopaying._finish`): a
    payment that went through («autopay_paid», with its receipt), and a failure the charge
    run would not have tried again («autopay_failed», and support's Dashboard) — a decline
    with retries left, or an expired card (which would have paused the autopay), is recorded
    without a word: the autopay is no longer charging this period. Returns whether a notice
    was written."""
    notice = None
    if payment.status is PaymentStatus.SUCCEEDED:
        run.status = RunStatus.SUCCEEDED
        if run.amount is None:
            run.amount = payment.amount
        receipt = payment.receipt.number if payment.receipt else ""
        notice = _notice(autopay, run, "autopay_paid", False, receipt=receipt)
    else:
        run.status, run.failure = RunStatus.FAILED, payment.status.value
        retried = payment.status in RETRYABLE and run.attempts <= RETRY_DAYS
        if payment.status is not PaymentStatus.EXPIRED_CARD and not retried:
            notice = _notice(autopay, run, "autopay_failed", True)
    await uow.autopays.save_run(run, now)
    if notice is None or not tell:
        return False
    notice.data["period"] = run.period  # the run's, not the one the autopay is on now
    written = await uow.notifications.add_once(notice, now)
    if run.status is RunStatus.FAILED:
        await support.autopay_failed(uow, autopay, run, now)
    return written
