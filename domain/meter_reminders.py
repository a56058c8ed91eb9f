"""Meter-window reminders: when a submission window is open (domain/meters.py: water 15th–3rd,
electricity 15th–26th), each linked resident with a meter lacking this period's reading gets
ONE reminder naming those meters — the «я напомню, как будет можно» of «Счётчики» kept.

Once per resident and period: the dedupe key `meters:<user>:<period>` (both windows of a month
share its period, so a resident with water and electricity meters to read gets one message,
not two); a second scheduler, a restart or the next day's round writes nothing more. Residents
whose meters all have the period's reading, or who have no meters, get none.

The job goes round the linked residents in batches of METER_BATCH with the report poll's
`DiscoveryCursor`; a round that reaches the end rests until the next Moscow day, and no city
call is made while no window is open or for a resident already reminded for the period (their
keys are looked up for the whole batch first). A city that is down ends the tick; the next
starts again with the resident it failed on.

A reminder written in the resident's quiet hours (the round starts at 00:00) waits for their
end; meanwhile the resident may read the meters (in the bot or on the site). So the outbox asks
again just before it sends a reminder that waited (`refreshed`): it names only the meters still
lacking the period's reading, and is not sent at all when none is.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

from domain.errors import CityUnavailable, DomainError
from domain.meters import Meter, MeterKind, moscow_date, open_window
from domain.ports import CityAuth, CityCharity, Notification, UnitOfWork
from domain.reporting import DiscoveryCursor
from domain.sessions import ResidentSession

METER_WINDOW = "meter_window"  # the notification's kind (a resident may mute it)
METER_BATCH = 100  # residents a tick (each at most one city call)
# Residents in a row the city fails to answer about before a batch takes it for down.
DOWN_AFTER = 3
SHOWN_METERS = 10  # meters named in one reminder; more are counted
# A reminder that waited this long before being sent is checked again (`refreshed`).
REFRESH_AFTER = timedelta(minutes=5)


def reminder_key(telegram_user_id: int, period: str) -> str:
    return f"meters:{telegram_user_id}:{period}"


def open_periods(day: date) -> list[str]:
    """The periods (MM.YYYY) whose window is open on `day`, by the platform's rules."""
    windows = (open_window(kind, day) for kind in MeterKind)
    return sorted({window.period for window in windows if window is not None})


def lacking(meters: list[Meter], day: date) -> dict[str, list[Meter]]:
    """The meters whose window is open on `day` and that have no reading for its period, by
    period."""
    found: dict[str, list[Meter]] = {}
    for meter in meters:
        if meter.window.contains(day) and not meter.submitted_this_period:
            found.setdefault(meter.window.period, []).append(meter)
    return found


def reminder(telegram_user_id: int, period: str, meters: list[Meter]) -> Notification:
    return Notification(
        telegram_user_id,
        METER_WINDOW,
        {
            "period": period,
            "meters": [
                {
                    "kind": meter.kind.value,
                    "serial": meter.serial,
                    "closes_on": meter.window.closes_on.isoformat(),
                }
                for meter in meters
            ],
        },
        dedupe_key=reminder_key(telegram_user_id, period),
    )


@dataclass
class MeterRound:
    """Where the reminders' round of residents is (the poll's cursor), and the Moscow day a
    round last reached the end (the next starts the day after)."""

    cursor: DiscoveryCursor = field(default_factory=DiscoveryCursor)
    finished_on: date | None = None


async def remind_meter_windows(
    uow: UnitOfWork,
    auth: CityAuth,
    city: CityCharity,
    now: datetime,
    round_: MeterRound,
    batch: int = METER_BATCH,
) -> int:
    """One batch of the round: reminders written for the residents with meters to read.
    Returns how many were written. A resident the city fails to answer about alone is skipped
    this round: one account the city keeps failing on must not hold the round at it, every
    tick, for everyone after (review 31b). Raises CityUnavailable once DOWN_AFTER residents in
    a row failed so — the city is down — and the first of them is first in the next tick."""
    today = moscow_date(now)
    periods = open_periods(today)
    if not periods or round_.finished_on == today:
        return 0
    before = round_.cursor.after
    accounts = await round_.cursor.next_batch(uow, batch)
    if not accounts or (before and accounts[0][0] <= before):  # the round is over
        round_.cursor.after, round_.finished_on = 0, today
        return 0
    keys = {user: [reminder_key(user, period) for period in periods] for user, _ in accounts}
    taken = await uow.notifications.existing([key for each in keys.values() for key in each])
    await uow.commit()  # nothing holds a connection while the city answers
    written = 0
    failing: list[int] = []  # indexes of the residents in a row the city failed on
    for index, (user, _) in enumerate(accounts):
        if all(key in taken for key in keys[user]):
            continue  # reminded for this period already: no city call
        resident = await uow.residents.get(user)
        if resident is None:  # unlinked meanwhile
            continue
        try:
            meters = await city.meters(ResidentSession(resident, auth, uow))
        except CityUnavailable:
            await uow.rollback()
            failing.append(index)
            if len(failing) >= DOWN_AFTER:  # the city is down: from the first of them again
                first = failing[0]
                round_.cursor.after = accounts[first - 1][0] if first else before
                raise
            continue
        except DomainError:  # this resident's own refusal (say, linking needed): the next
            await uow.rollback()
            continue
        failing.clear()
        for period, missing in lacking(meters, today).items():
            written += await uow.notifications.add_once(reminder(user, period, missing), now)
        await uow.commit()
    if failing and failing[-1] == len(accounts) - 1:
        # The batch ended on residents the city failed on: the city may be going down, so
        # they are asked again next tick (the round is not ended over them: review 32).
        first = failing[0]
        round_.cursor.after = accounts[first - 1][0] if first else before
        return written
    if len(accounts) < batch:
        round_.cursor.after, round_.finished_on = 0, today
    return written


async def refreshed(
    uow: UnitOfWork, auth: CityAuth, city: CityCharity, notification: Notification, now: datetime
) -> Notification | None:
    """A reminder that waited (quiet hours), just before it is sent: naming the meters that
    still lack the period's reading now, or None when none does (read meanwhile, the window
    closed) or the resident unlinked. Raises CityUnavailable, DomainError (the caller sends
    it as written)."""
    period = str(notification.data.get("period") or "")
    user = notification.telegram_user_id
    resident = await uow.residents.get(user)
    if resident is None:
        return None
    meters = await city.meters(ResidentSession(resident, auth, uow))
    missing = lacking(meters, moscow_date(now)).get(period, [])
    if not missing:
        return None
    return replace(notification, data=reminder(user, period, missing).data)
