"""Bill discovery: «Пришёл счёт» when the city issues a bill, and autopay «по выставленному
счёту» made due by it.

A scheduled tick takes one batch of linked residents (`DiscoveryCursor`, the same round the
report poll goes: the next batch each tick, from the top once the round is over) and asks the
city for each one's unpaid bills, `concurrency` residents at once, each in its own unit of work.
Every bill seen is recorded (`known_bills`, INSERT … ON CONFLICT DO NOTHING): the bills a
resident had when first scanned are the baseline (no notice); a bill recorded later by this
tick is new, and gets one `bill_issued` notification (dedupe key per resident and bill), in
the same transaction — two schedulers at once write it once.

A new bill that an ACTIVE on-issue autopay pays (the same service, and payer code unless it
covers any) within its limit is handed to that autopay (`Autopay.take_bill`: due at 10:00
Moscow time the next day, its run's period is the bill) under the autopay's row lock; one
already busy with another bill gets it queued (`known_bills.autopay_id`), handed over when
the first is done. The charge itself is the autopay run's (domain/autopaying.py), with its
exactly-once run and key. Above the limit nothing is handed over: the notice says so, with
the amount, the limit and «Оплатить». The notice that promises a charge (WILL_PAY) is written
urgent: it is the only warning before it (with «Пропустить этот раз»), so muting «Новые
счета» does not drop it (urgent notices also pass the quiet hours). A bill of less than one
kopeck (the contract forbids it) is neither recorded, told nor handed over.

A bill above the limit (asked, not handed over) gets one more notice, written with the first
and due at 10:00 Moscow the day before its due date (`due_reminder`; none when that moment is
not later than now): «Напоминаем: завтра срок оплаты …» with «Оплатить», the same kind (muting
«Новые счета» mutes it), not urgent (quiet hours and the digest treat it as a notice written
when it comes due), its own dedupe key per resident and bill. Just before it goes, the outbox
asks the city again (`still_due`): a bill paid meanwhile (or no longer issued, or a resident
who unlinked) drops it; a city that does not answer sends it as written.

The city not answering for one resident (CityUnavailable) skips that resident this round and
the tick goes on. Only when nobody in the batch was answered (the first DOWN_AFTER residents
asked, or the whole batch if smaller) does the tick stop starting residents and put the
cursor back to the batch's start (the city is down: the batch is asked again next tick) — at
most DISCOVERY_STALLS ticks in a row, then the round goes on (a batch of residents each the
city fails for must not stop it). A resident whose link no longer works (RelinkRequired) or
whose bills the city refuses is skipped.

The city call holds nothing; the answer is recorded in a second transaction that first locks
the resident's baseline mark (`known_bills.watched(lock=True)`) and reads the resident again:
one who unlinked (or relinked another account) meanwhile is dropped, nothing written.
Unlinking deletes that mark first (`forget_account_data`), so it waits for a scan recording
now and then deletes what it wrote.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta

from domain.accounts import Resident
from domain.autopay import (
    MOSCOW,
    Autopay,
    AutopayKind,
    AutopayStatus,
    on_issue_due,
)
from domain.autopaying import money_ceiling
from domain.bills import Bill, by_due_date
from domain.errors import CityUnavailable, DomainError
from domain.limits import DEFAULT_LIMITS, AmountLimits
from domain.ports import City, Notification, UnitOfWork, UnitOfWorkFactory
from domain.reporting import DiscoveryCursor
from domain.sessions import ResidentSession

DISCOVERY_BATCH = 100  # residents asked about in one tick
DISCOVERY_CONCURRENCY = 4  # city calls in flight at once in one tick
KIND = "bill_issued"  # the outbox kind (a resident may mute it in «Настройки»)
DOWN_AFTER = 4  # residents in a row unanswered, none answered: the city is down, stop the tick
DISCOVERY_STALLS = 2  # ticks in a row a batch the city is down for is asked again
REMINDER_AT = time(10, 0)  # Moscow time, the day before the due date: an over-limit bill's reminder


class AutopayPlan:
    """What a new bill's notice says about the resident's on-issue autopay for it."""

    NONE = "none"  # no active on-issue autopay pays it
    WILL_PAY = "will_pay"  # handed to the autopay: charged at `charge_at`, can be skipped
    QUEUED = "queued"  # the autopay pays it after the bill it is paying now
    OVER_LIMIT = "over_limit"  # above the autopay's limit: the resident is asked


@dataclass
class DiscoveryResult:
    residents: int = 0  # residents whose bills were asked for and recorded
    notices: int = 0  # «Пришёл счёт» notifications written
    handed: int = 0  # bills handed (or queued) to an on-issue autopay
    halted: bool = False  # nobody answered: the city is down, the batch may come again
    skipped: list[int] = field(default_factory=list)  # residents the city refused
    unanswered: list[int] = field(default_factory=list)  # residents the city did not answer


def notice_key(telegram_user_id: int, bill_id: str) -> str:
    """The outbox dedupe key of a bill's «Пришёл счёт»: one per resident and bill."""
    return f"bill:{telegram_user_id}:{hashlib.sha256(bill_id.encode()).hexdigest()[:32]}"


def reminder_key(telegram_user_id: int, bill_id: str) -> str:
    """The outbox dedupe key of a bill's day-before reminder: one per resident and bill."""
    return f"bill-due:{telegram_user_id}:{hashlib.sha256(bill_id.encode()).hexdigest()[:32]}"


def reminder_at(due: date) -> datetime:
    """When a bill due on `due` is reminded of: 10:00 Moscow time the day before."""
    return datetime.combine(due - timedelta(days=1), REMINDER_AT, MOSCOW)


def is_reminder(notification: Notification) -> bool:
    return notification.kind == KIND and notification.data.get("reminder") is True


def due_reminder(
    telegram_user_id: int, bill: Bill, extra: dict[str, object], now: datetime
) -> Notification | None:
    """The day-before reminder of a bill above its autopay's limit, due at `reminder_at`; None
    when that moment is not later than `now` (the first notice is the only one)."""
    at = reminder_at(bill.due_date)
    if at <= now:
        return None
    data = describe_bill(bill, AutopayPlan.OVER_LIMIT, **extra)
    data.update(reminder=True, sent_on=at.date().isoformat())
    return Notification(
        telegram_user_id=telegram_user_id,
        kind=KIND,
        dedupe_key=reminder_key(telegram_user_id, bill.id),
        data=data,
        due_at=at,
    )


async def still_due(
    uow: UnitOfWork, city: City, notification: Notification, now: datetime
) -> Notification | None:
    """A bill's day-before reminder just before it goes: None when the bill is no longer among
    the resident's unpaid bills at the city (paid meanwhile, withdrawn) or the resident
    unlinked; else the reminder with the bill's amount as the city has it now and the day it
    goes (`sent_on`: the text says «завтра» only on the day before). Raises CityUnavailable,
    DomainError (the caller sends it as written: `sent_today`)."""
    resident = await uow.residents.get(notification.telegram_user_id)
    if resident is None:
        return None
    bills = await city.unpaid_bills(ResidentSession(resident, city, uow))
    bill_id = str(notification.data.get("bill_id") or "")
    bill = next((b for b in bills if b.id == bill_id and b.amount >= 1), None)
    if bill is None:
        return None
    fresh = sent_today(notification, now)
    return replace(fresh, data={**fresh.data, "amount": bill.amount})


def sent_today(notification: Notification, now: datetime) -> Notification:
    """The reminder with the Moscow day it goes (`sent_on`)."""
    day = now.astimezone(MOSCOW).date().isoformat()
    return replace(notification, data={**notification.data, "sent_on": day})


async def discover_bills(
    uows: UnitOfWorkFactory,
    city: City,
    now: datetime,
    cursor: DiscoveryCursor | None = None,
    limits: AmountLimits = DEFAULT_LIMITS,
    *,
    batch: int = DISCOVERY_BATCH,
    concurrency: int = DISCOVERY_CONCURRENCY,
) -> DiscoveryResult:
    """One tick: the next `batch` residents of `cursor`'s round (a fresh cursor: the first
    batch), `concurrency` at a time; a resident the city does not answer is skipped, a batch
    nobody in was answered is asked again (see the module). Raises ValueError for a batch or
    concurrency below 1; an error other than the city's stops the tick (the workers under way
    finish) and is raised."""
    if batch < 1 or concurrency < 1:
        raise ValueError("batch and concurrency are at least 1")
    cursor = cursor if cursor is not None else DiscoveryCursor()
    start = cursor.after
    async with uows() as uow:
        accounts = await cursor.next_batch(uow, batch)
    result = DiscoveryResult()
    waiting = [user for user, _account in accounts]
    waiting.reverse()  # popped from the end: in the round's order
    down_after = min(DOWN_AFTER, len(accounts))
    broken = False

    async def work() -> None:
        nonlocal broken
        while waiting and not result.halted and not broken:
            user = waiting.pop()
            try:
                await _scan(uows, city, user, now, limits, result)
            except CityUnavailable:  # this resident is skipped this round
                result.unanswered.append(user)
                answered = result.residents + len(result.skipped)
                if not answered and len(result.unanswered) >= down_after:
                    result.halted = True  # nobody answered: the city is down
            except DomainError:  # this resident's: link gone, or the city refused them
                result.skipped.append(user)
            except BaseException:
                broken = True
                raise

    outcomes = await asyncio.gather(
        *(work() for _ in range(min(concurrency, len(accounts)) or 1)), return_exceptions=True
    )
    if result.halted and cursor.stalls < DISCOVERY_STALLS:
        cursor.after = start  # the whole batch again next tick: recorded bills stay recorded
        cursor.stalls += 1
    else:
        cursor.stalls = 0
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return result


async def _scan(
    uows: UnitOfWorkFactory,
    city: City,
    telegram_user_id: int,
    now: datetime,
    limits: AmountLimits,
    result: DiscoveryResult,
) -> None:
    """One resident, in one unit of work: the city's unpaid bills recorded; the new ones told
    and handed to an autopay, committed together."""
    async with uows() as uow:
        resident = await uow.residents.get(telegram_user_id)
        if resident is None:  # unlinked meanwhile
            return
        first = not await uow.known_bills.watched(telegram_user_id)
        await uow.commit()  # nothing held while the city answers
        answer = await city.unpaid_bills(ResidentSession(resident, city, uow))
        await uow.commit()  # a token refresh meanwhile is kept, whatever follows
        bills = by_due_date([b for b in answer if b.amount >= 1])  # never a 0 ₽ bill
        # Still linked to the same account, still watched as before: an unlinking meanwhile
        # deleted the mark (and waits for this lock if it comes now).
        watched = await uow.known_bills.watched(telegram_user_id, lock=True)
        again = await uow.residents.get(telegram_user_id)
        if watched == first or again is None or again.city_account_id != resident.city_account_id:
            await uow.rollback()
            return
        new = await uow.known_bills.add(telegram_user_id, [b.id for b in bills], now)
        if first:
            await uow.known_bills.watch(telegram_user_id, now)  # the baseline: no notices
        else:
            autopays = await uow.autopays.of_resident(telegram_user_id)
            for bill in (b for b in bills if b.id in new):
                plan, extra = await _hand_over(uow, resident, bill, autopays, now, limits)
                result.handed += plan in (AutopayPlan.WILL_PAY, AutopayPlan.QUEUED)
                written = await uow.notifications.add_once(
                    Notification(
                        telegram_user_id=telegram_user_id,
                        kind=KIND,
                        dedupe_key=notice_key(telegram_user_id, bill.id),
                        data=describe_bill(bill, plan, **extra),
                        # The only warning before the charge: muting «Новые счета» keeps it.
                        urgent=plan == AutopayPlan.WILL_PAY,
                    ),
                    now,
                )
                result.notices += written
                if plan == AutopayPlan.OVER_LIMIT:  # asked: reminded the day before the due date
                    later = due_reminder(telegram_user_id, bill, extra, now)
                    if later is not None:
                        await uow.notifications.add_once(later, now)
        await uow.commit()
        result.residents += 1


def describe_bill(bill: Bill, plan: str, **extra: object) -> dict[str, object]:
    """The notice's data: what the bill is (the platform's words, escaped when shown), and
    what the resident's autopay does with it."""
    return {
        "bill_id": bill.id,
        "bill_kind": bill.kind.value,
        "title": bill.title,
        "amount": bill.amount,
        "due": bill.due_date.isoformat(),
        "autopay": plan,
        **extra,
    }


async def _hand_over(
    uow: UnitOfWork,
    resident: Resident,
    bill: Bill,
    autopays: list[Autopay],
    now: datetime,
    limits: AmountLimits,
) -> tuple[str, dict[str, object]]:
    """A new bill and the resident's on-issue autopay for it, if any: handed over (or queued)
    within its limit, else the resident is asked. Returns (AutopayPlan, the notice's extra
    data)."""
    autopay = next(
        (
            a
            for a in autopays
            if a.status is AutopayStatus.ACTIVE and a.on_issue and a.matches(bill)
        ),
        None,
    )
    if autopay is None or autopay.id is None:
        return AutopayPlan.NONE, {}
    _, ceiling = money_ceiling(AutopayKind.BILL, limits)
    limit = min(ceiling, autopay.limit if autopay.limit is not None else ceiling)
    if bill.amount > limit:
        return AutopayPlan.OVER_LIMIT, {"limit": limit, "autopay_id": autopay.id}
    # Under the row's lock: the autopay run finishing a bill (which takes the next queued one
    # under the same lock) and a resident's pause or deletion are seen, never overwritten.
    current = await uow.autopays.lock(autopay.id)
    if (
        current is None
        or current.status is not AutopayStatus.ACTIVE
        or current.telegram_user_id != resident.telegram_user_id
        or not current.on_issue
        or not current.matches(bill)
    ):
        return AutopayPlan.NONE, {}
    if current.bill_id is not None or current.retry_period is not None:
        await uow.known_bills.queue(resident.telegram_user_id, bill.id, autopay.id)
        # Charged the moment the bill in hand is done, so no earlier than that one's charge:
        # quiet hours hold its «Не оплачивать автоплатежом» no later than that (review 33).
        behind = current.next_due_at.astimezone(MOSCOW)
        return AutopayPlan.QUEUED, {
            "autopay_id": autopay.id,
            "limit": limit,
            "charge_at": behind.isoformat(),
        }
    current.take_bill(bill.id, on_issue_due(now))
    await uow.autopays.save_progress(current)
    charge_at = current.next_due_at.astimezone(MOSCOW)
    return AutopayPlan.WILL_PAY, {
        "autopay_id": autopay.id,
        "period": current.period,
        "limit": limit,
        "charge_at": charge_at.isoformat(),
    }
