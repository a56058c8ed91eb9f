"""The outbox sender: what is due goes to Telegram within its limits, and no notification can
jam the others.

Guarantees, per notification claimed (`deliver_notifications`):

* Every claimed row leaves `sending` on the same tick, whatever happens to it: sent (or muted),
  due again later, or failed. Only a crashed process leaves rows `sending`, and a shutdown that
  cancels a tick leaves those whose answer was on its way (a sent message, a row never tried
  and every known outcome are recorded first); they are claimed again after
  `storage.notifications.STALE_CLAIM`.
* A chat's notifications go in claim order, one at a time: one whose predecessor in the tick
  was put back is put back with it, never sent ahead of it (`_Pipeline`); and the claim takes
  no row of a chat while an older row of that chat is being sent or was put back to wait
  (`claim_to_send`), so neither a later tick nor a second replica overtakes it.
* A lasting refusal — Bot API 400 (other than the «thread not found» and photo fallbacks
  `_post` handles), 413, a group that became a supergroup, or any unexpected error while
  rendering or sending that one notification — dead-letters that notification alone (failed,
  the `failed` metric, and a `dashboard_dead_letter` event for staff); the rest of the batch
  goes on.
* Waiting is not failing: a chat's turn under the 1 message/s rule, a 429 and a limiter that
  cannot be reached return the row to `pending` and give the claim's attempt back. Only real
  failures (5xx, network errors, other API errors) count toward `MAX_ATTEMPTS`.
* `retry_after` and the backoff count from the moment the failed call's answer arrived (the
  clock is read after the call), never from the start of the tick.
* 403 (the resident blocked the bot) fails that resident's other queued notifications too. A
  403 from the staff supergroup (a row for a forum topic: the bot removed from it, or its
  rights taken away — or a 400 about the chat rather than the message: a closed topic, no
  right to post, a migrated group, review 33a) is not a resident's block: the row and the
  chat's others wait
  `STAFF_CHAT_AWAY` seconds and are tried again, none given up (refunds owed are among them);
  if the operator moved the desk to another chat meanwhile, the dashboard job readdresses them
  there (`domain.support.current_dashboard`).
* Quiet hours are each resident's (`domain.quiet_hours`, set in «Настройки»; 22:00–09:00 until
  they change them): while they last the claim leaves the resident's non-urgent rows waiting;
  urgent ones go at once. The non-urgent rows written in the quiet hours that are claimed
  together after their end (the claim takes a resident's waiting rows together) go out as ONE
  digest message (`handlers.notifications.digest`): up to `DIGEST_ITEMS` whose texts fit in
  one message, each with its own buttons numbered; the rest are put back and make the next
  digest a second later. The digest is one send: its outcome is every folded row's (sent with
  the digest's message id, retried, or failed together — one dead letter per row — in one
  transaction), so a crash can at worst send it again once, like a single message. A lone held
  row goes out as itself. A digest Telegram refuses (a 400, 413) puts its rows back to go one
  by one (never folded again, the attempt given back): only a row refused by itself dies.
  «Held» is by the hours in force when a row was written: a resident changing them marks the
  rows waiting (`SqlNotificationRepository.hold_written_in`). A notice offering to stop a
  charge is claimed even in the quiet hours when they would hold it past the charge
  (`domain.quiet_hours.send_by`), and goes as itself. A meter-window reminder that waited is
  checked with the city again just before it goes (`domain.meter_reminders.refreshed`), and so
  is a bill's day-before reminder, always (`domain.bill_discovery.still_due`: not sent once the
  bill is paid).

Throughput: up to `SEND_CONCURRENCY` (the bot-wide budget, 30) sends are in flight at once,
paced by the limiter (Bot API FAQ: 30 messages a second bot-wide, 1 a second per chat; never two
in flight to one chat); a tick claims batch after batch while they come full (up to
`TICK_BUDGET`), each with one statement, and claims the next batch as soon as the current one's
last send is in flight, so neither the scheduler's 1 s interval nor a batch's slowest answer
idles the sender (bench/delivery.py measures it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import structlog
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import BufferedInputFile, InlineKeyboardMarkup, Message

from bot.app import Application, Clock, utc_now
from bot.charts import payments_chart
from bot.failures import classify
from bot.metrics import NOTIFICATIONS
from bot.ratelimit import CHAT_INTERVAL, GLOBAL_PER_SECOND, SendLimiter
from domain.bill_discovery import is_reminder, sent_today, still_due
from domain.meter_reminders import METER_WINDOW, REFRESH_AFTER, refreshed
from domain.ports import Notification
from domain.quiet_hours import DEFAULT as DEFAULT_QUIET
from domain.support import DASHBOARD_DIGEST, THREAD, dead_lettered
from handlers.digest import DIGEST_ITEMS, digest
from handlers.notifications import render
from storage.notifications import Claimed
from storage.uow import SqlUnitOfWork

log = structlog.get_logger(__name__)

SEND_BATCH = 60  # rows claimed at once: two seconds of sending at Telegram's 30 a second
# Sends in flight at once: as many as the bot-wide budget lets out in a second (a round trip
# to Telegram is ~0.1–0.3 s; 8 could not keep 30 a second going at 0.3 s). The limiter paces
# them; it never lets two to one chat be in flight at once.
SEND_CONCURRENCY = GLOBAL_PER_SECOND
SEND_TIMEOUT = 10  # seconds a Bot API call may take before it counts as a network error
TICK_BUDGET = 10.0  # seconds: a tick stops claiming new batches after this long
MAX_ATTEMPTS = 5  # real failures (5xx, network) before a notification is dead-lettered
LIMITER_UNAVAILABLE = 5.0  # seconds before a row is tried again when the limiter failed
# Seconds before the staff supergroup is tried again after a 403 (the bot removed from it, or
# its rights taken away): staff's events wait for the bot to be back, none is given up.
STAFF_CHAT_AWAY = 300.0
# The default quiet hours (a resident sets their own in «Настройки»: domain.quiet_hours).
QUIET_FROM, QUIET_UNTIL = DEFAULT_QUIET.start // 60, DEFAULT_QUIET.end // 60


def quiet_hours(now: datetime) -> bool:
    """Whether `now` is in the default quiet hours (22:00–09:00 Moscow time)."""
    return DEFAULT_QUIET.covers(now)


class Outcome(StrEnum):
    """What became of one claimed notification; the value is the metric's `outcome`."""

    SENT = "sent"
    MUTED = "muted"  # the resident turned this kind off: marked sent, nothing sent
    OBSOLETE = "obsolete"  # nothing left to say (a reminder's meters read): marked sent
    DEFERRED = "deferred"  # not tried (chat's turn, 429): pending again, attempt given back
    RETRY = "retry"  # tried and failed for now: pending again, the attempt counts
    FAILED = "failed"  # given up: blocked by the resident, dead-lettered


@dataclass(frozen=True, slots=True)
class _Result:
    notification: Notification
    outcome: Outcome
    at: datetime  # when it was sent, or when it is due again
    message_id: int | None = None
    blocked: bool = False  # 403: the resident's other notifications fail too
    dead: bool = False  # given up: staff hear of it on the dashboard
    folded: tuple[Notification, ...] = ()  # a digest's other rows: the same outcome
    alone: bool = False  # a refused digest: its rows go again one by one (DEFERRED)

    @property
    def rows(self) -> tuple[Notification, ...]:
        return (self.notification, *self.folded)


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A rendered notification, ready to post (rendering never touches the network)."""

    text: str
    markup: InlineKeyboardMarkup | None
    photo: str | None
    chart: BufferedInputFile | None
    thread_id: int | None


async def deliver_notifications(
    app: Application, clock: Clock = utc_now, limiter: SendLimiter | None = None
) -> int:
    """Send what is due within Telegram's limits (see the module's guarantees); returns how
    many messages Telegram accepted."""
    limiter = limiter or app.limiter
    started = time.monotonic()
    sender = _Pipeline(app, clock, limiter)
    claimed: list[Claimed] = []
    try:
        while True:
            now = clock()
            async with app.uow_factory() as uow:
                # One statement: the rows and their residents' settings together, so a
                # failed lookup leaves nothing claimed.
                claimed = await uow.notifications.claim_to_send(now, SEND_BATCH)
                await uow.commit()
            if not claimed:
                break
            await sender.start(claimed)
            if len(claimed) < SEND_BATCH or time.monotonic() - started >= TICK_BUDGET:
                break
    except BaseException as error:
        if isinstance(error, asyncio.CancelledError):
            # Shutting down: the sends stop where they are, each recording what is known (see
            # `_Pipeline._one`); only those whose answer was still on its way stay `sending`.
            # Rows claimed but not yet handed to a send go back at once.
            await sender.put_back_now(claimed)
            await sender.cancel()
        # Otherwise (e.g. a claim failed) every notification started runs to its end before
        # anything is raised: none is left half-done.
        await sender.settle()
        raise
    return await sender.finish()


@dataclass(slots=True)
class _Progress:
    """How far one send got, for a cancellation (a shutdown) to record what is known:
    `posting` once the request may have left, `result` once Telegram took the message."""

    posting: bool = False
    result: _Result | None = None


class _Pipeline:
    """The sends of one tick: up to SEND_CONCURRENCY in flight, in claim order (urgent first;
    the gate is fair), batch after batch without a pause between them. `start` returns once
    every notification of the batch has taken its place in flight (its last sends are still
    going), so the next batch is claimed while they finish: the budget is never left idle
    waiting for a batch's slowest answer.

    A chat's notifications go one after another in claim order: each waits for the one before
    it (before taking a place in flight), and one whose predecessor was put back (its turn,
    a 429, a failure, a limiter out of reach) is put back as well, due with it — so nothing
    overtakes a notification that has to wait, however the limiter decides or fails."""

    def __init__(self, app: Application, clock: Clock, limiter: SendLimiter) -> None:
        self._app, self._clock, self._limiter = app, clock, limiter
        self._recorder = _Recorder(app)
        self._gate = asyncio.Semaphore(SEND_CONCURRENCY)
        self._blocked: set[int] = set()  # chats that blocked the bot during this tick
        self._tasks: list[asyncio.Task[_Result]] = []
        self._last: dict[int, asyncio.Task[_Result]] = {}  # each chat's latest send this tick
        self.handed: set[int] = set()  # ids of the rows a task of this tick has taken

    async def put_back_now(self, claimed: Sequence[Claimed]) -> None:
        """Claimed rows no task took (the tick was cancelled before they were handed over:
        during the city check of `_refresh`, or between the claim and `start`): pending again,
        due now, the attempt given back — recorded even while cancelled (`_Recorder`)."""
        now = self._clock()
        for each in claimed:
            if each.notification.id not in self.handed:
                self.handed.add(each.notification.id or 0)
                await self._recorder.record(_deferred(each.notification, now))

    async def start(self, claimed: list[Claimed]) -> None:
        muted = {each.notification.telegram_user_id: each.muted for each in claimed}
        try:
            refreshed, obsolete = await _refresh(self._app, self._clock(), claimed)
        except asyncio.CancelledError:
            await self.put_back_now(claimed)
            raise
        self.handed |= {each.notification.id or 0 for each in claimed}
        claimed = refreshed
        for notification in obsolete:
            result = _Result(notification, Outcome.OBSOLETE, self._clock())
            self._tasks.append(asyncio.create_task(self._recorded(result)))
        sends, put_back = _fold(self._app, claimed)
        for notification in put_back:  # beyond this digest: the next one, a second later
            self._tasks.append(asyncio.create_task(self._put_back(notification)))
        started = [asyncio.Event() for _ in sends]
        for (notification, digested), event in zip(sends, started, strict=True):
            chat = notification.telegram_user_id
            task = asyncio.create_task(
                self._one(notification, muted, event, digested, self._last.get(chat))
            )
            self._last[chat] = task
            self._tasks.append(task)
        if started:
            # the gate is fair: the batch's last one is in flight (or queued behind its chat's
            # previous one)
            await started[-1].wait()

    async def _put_back(self, notification: Notification) -> _Result:
        return await self._recorded(_deferred(notification, self._clock() + timedelta(seconds=1)))

    async def _recorded(self, result: _Result) -> _Result:
        NOTIFICATIONS.labels(outcome=result.outcome.value).inc()
        await self._recorder.record(result)
        return result

    async def _one(
        self,
        notification: Notification,
        muted: Mapping[int, frozenset[str]],
        event: asyncio.Event,
        digested: _Digest | None = None,
        previous: asyncio.Task[_Result] | None = None,
    ) -> _Result:
        progress = _Progress()
        try:
            result = await self._after(previous, notification, event, digested)
            if result is None:
                async with self._gate:
                    event.set()
                    result = await _attempt(
                        self._app,
                        self._clock,
                        self._limiter,
                        notification,
                        muted,
                        self._blocked,
                        digested,
                        progress,
                    )
        except asyncio.CancelledError:
            # Shutting down: what is known is recorded before the task ends (`_Recorder`). A
            # message Telegram took is sent; one never tried is due again at once, its
            # attempt given back. One whose request had left (the answer unknown) stays
            # `sending`, as if the process had died: claimed again after STALE_CLAIM.
            known = progress.result
            if known is None and not progress.posting:
                known = _deferred(notification, self._due_after(previous))
                if digested is not None:
                    known = replace(known, folded=digested.folded)
            if known is not None:
                await self._recorder.record(known)
            raise
        finally:
            event.set()  # cancelled while waiting for the gate: `start` must not hang
        NOTIFICATIONS.labels(outcome=result.outcome.value).inc(len(result.rows))
        await self._recorder.record(result)
        return result

    def _due_after(self, previous: asyncio.Task[_Result] | None) -> datetime:
        """When a row never tried is due again: now, or with its chat's previous send of this
        tick when that one was put back (nothing overtakes it)."""
        now = self._clock()
        if previous is None or not previous.done() or previous.cancelled():
            return now
        if previous.exception() is not None:
            return now
        before = previous.result()
        if before.outcome in (Outcome.DEFERRED, Outcome.RETRY):
            return max(before.at, now)
        return now

    async def _after(
        self,
        previous: asyncio.Task[_Result] | None,
        notification: Notification,
        event: asyncio.Event,
        digested: _Digest | None,
    ) -> _Result | None:
        """Wait for the chat's previous send of this tick; None when this one may be tried,
        else its outcome: put back, due with the previous one, which was put back."""
        if previous is None:
            return None
        event.set()  # queued behind its chat's previous send: `start` need not wait for it
        try:
            before = await asyncio.shield(previous)
        except asyncio.CancelledError:
            raise
        except BaseException:  # the previous one broke (a bug): this one waits a turn
            before = _deferred(notification, self._clock() + timedelta(seconds=CHAT_INTERVAL))
        if before.outcome not in (Outcome.DEFERRED, Outcome.RETRY):
            return None
        result = _deferred(notification, max(before.at, self._clock()))
        return replace(result, folded=digested.folded) if digested is not None else result

    async def cancel(self) -> None:
        await asyncio.sleep(0)  # tasks made a moment ago start first: each records its row
        for task in self._tasks:
            task.cancel()

    async def settle(self) -> list[_Result | BaseException]:
        """Wait for every started send and its record, whatever became of them."""
        return await asyncio.gather(*self._tasks, return_exceptions=True)

    async def finish(self) -> int:
        """Wait for every started send and its record; how many Telegram accepted. Raises the
        first unexpected error of a send, then a failure to record an outcome."""
        results = await self.settle()
        sent = 0
        for result in results:
            if isinstance(result, BaseException):
                raise result
            sent += result.outcome is Outcome.SENT
        self._recorder.raise_if_failed()
        return sent


_REFRESHING = 8  # city calls at once checking waiting meter (and bill due) reminders again


async def _refresh(
    app: Application, now: datetime, claimed: list[Claimed]
) -> tuple[list[Claimed], list[Notification]]:
    """Meter-window reminders that waited (written REFRESH_AFTER or more ago): asked about
    again (`meter_reminders.refreshed`), and a bill's day-before reminder, whenever claimed
    (`bill_discovery.still_due`: the bill still unpaid). Returns the claimed rows, those
    reminders rewritten, and the reminders with nothing left to say. A city that does not
    answer (or any error) leaves the reminder as written: it is sent as it is."""
    gate = asyncio.Semaphore(_REFRESHING)

    async def one(each: Claimed) -> Claimed | Notification:
        notification = each.notification
        if is_reminder(notification) and notification.kind not in each.muted:
            try:
                async with gate, app.uow_factory() as uow:
                    due = await still_due(uow, app.city, notification, now)
                    await uow.commit()
            except Exception as error:
                log.warning("notify.bill_due_unchecked", error=type(error).__name__)
                return replace(each, notification=sent_today(notification, now))
            return notification if due is None else replace(each, notification=due)
        if (
            notification.kind != METER_WINDOW
            or notification.kind in each.muted
            or each.written_at is None
            or now - each.written_at < REFRESH_AFTER
        ):
            return each
        try:
            async with gate, app.uow_factory() as uow:
                fresh = await refreshed(uow, app.city, app.city, notification, now)
                await uow.commit()
        except Exception as error:
            log.warning("notify.meters_unchecked", error=type(error).__name__)
            return each
        return notification if fresh is None else replace(each, notification=fresh)

    outcomes = await asyncio.gather(*(one(each) for each in claimed))
    return (
        [each for each in outcomes if isinstance(each, Claimed)],
        [each for each in outcomes if isinstance(each, Notification)],
    )


@dataclass(frozen=True, slots=True)
class _Digest:
    """Held notifications of one resident, rendered as one message: `prepared` is the digest;
    its first row is the send's own notification, `folded` the others."""

    prepared: _Prepared
    folded: tuple[Notification, ...]


def _fold(
    app: Application, claimed: Sequence[Claimed]
) -> tuple[list[tuple[Notification, _Digest | None]], list[Notification]]:
    """What to send: each claimed row alone, except a resident's held rows (written in their
    quiet hours, not muted, two or more) — those become one digest of as many as fit, the
    rest are put back (returned second). Claim order is kept."""
    held: dict[int, list[Notification]] = {}
    for each in claimed:
        notification = each.notification
        if (
            each.held
            and notification.kind not in each.muted
            and THREAD not in notification.data  # a forum topic's row is staff's
        ):
            held.setdefault(notification.telegram_user_id, []).append(notification)
    digests: dict[int, _Digest] = {}  # by the id() of the row heading each digest
    put_back: list[Notification] = []
    for rows in held.values():
        if len(rows) < 2:
            continue
        rendered: list[tuple[Notification, tuple[Any, Any]]] = []
        for row in rows:
            try:
                text, markup, _photo = render(row.kind, row.data, app.tr)
            except Exception:  # sent alone, it is dead-lettered as unrenderable
                continue
            rendered.append((row, (text, markup)))
        text, markup, taken = digest(app.tr, [pair for _, pair in rendered[:DIGEST_ITEMS]])
        if taken < 2:  # two do not fit in one message (or one renders): each goes alone
            continue
        included = [row for row, _ in rendered[:taken]]
        prepared = _Prepared(text, markup, None, None, None)
        digests[id(included[0])] = _Digest(prepared, tuple(included[1:]))
        put_back += [row for row, _ in rendered[taken:]]
    skip = {id(row) for each in digests.values() for row in each.folded}
    skip |= {id(row) for row in put_back}
    sends = [
        (each.notification, digests.get(id(each.notification)))
        for each in claimed
        if id(each.notification) not in skip
    ]
    return sends, put_back


async def _attempt(
    app: Application,
    clock: Clock,
    limiter: SendLimiter,
    notification: Notification,
    muted: Mapping[int, frozenset[str]],
    blocked: set[int],
    digested: _Digest | None = None,
    progress: _Progress | None = None,
) -> _Result:
    """One notification's fate (or one digest's: the same outcome for all its rows). Never
    raises (but for cancellation): whatever goes wrong is this send's outcome, never the
    batch's. `progress` is kept up to date for a cancellation."""
    progress = progress if progress is not None else _Progress()
    result = await _attempt_one(
        app, clock, limiter, notification, muted, blocked, digested, progress
    )
    if digested is not None:
        result = replace(result, folded=digested.folded)
    return result


async def _attempt_one(
    app: Application,
    clock: Clock,
    limiter: SendLimiter,
    notification: Notification,
    muted: Mapping[int, frozenset[str]],
    blocked: set[int],
    digested: _Digest | None,
    progress: _Progress,
) -> _Result:
    chat = notification.telegram_user_id
    if chat in blocked:  # blocked the bot earlier in this batch
        return _Result(notification, Outcome.FAILED, clock())
    if digested is None and not notification.urgent and notification.kind in muted.get(chat, ()):
        return _Result(notification, Outcome.MUTED, clock())
    try:
        prepared = digested.prepared if digested is not None else _prepare(app, notification)
    except Exception:  # a notification that cannot be rendered never will be
        log.exception("notify.unrenderable", notification=notification.id, kind=notification.kind)
        return _dead(notification, clock())
    try:
        wait = await limiter.acquire(chat)
    except Exception as error:  # e.g. Redis is down: without the limiter, nothing is sent
        _limiter_trouble(error)
        return _deferred(notification, clock() + timedelta(seconds=LIMITER_UNAVAILABLE))
    if wait > 0:
        return _deferred(notification, clock() + timedelta(seconds=wait))  # the chat's turn
    try:
        progress.posting = True
        message = await _post(app, chat, prepared)
    except TelegramRetryAfter as error:
        answered = clock()  # retry_after counts from the answer, not from the tick
        await _answered(limiter, chat, accepted=False)
        wait = max(error.retry_after, 1)
        await _hold(limiter, chat, wait)  # the chat's other messages wait as well
        return _deferred(notification, answered + timedelta(seconds=wait))
    except TelegramForbiddenError as error:
        answered = clock()
        await _answered(limiter, chat, accepted=False)
        if THREAD in notification.data:  # the staff supergroup: wait for the bot to be back
            log.error("notify.staff_chat_refused", chat=chat, error=error.message)
            await _hold(limiter, chat, STAFF_CHAT_AWAY)  # its other rows wait as well
            return _deferred(notification, answered + timedelta(seconds=STAFF_CHAT_AWAY))
        blocked.add(chat)  # the resident blocked the bot: their other messages stop too
        return _Result(notification, Outcome.FAILED, answered, blocked=True)
    except (TelegramBadRequest, TelegramEntityTooLarge, TelegramMigrateToChat) as error:
        answered = clock()  # refused for what it is: sending it again would be refused again
        await _answered(limiter, chat, accepted=False)
        if THREAD in notification.data and _staff_chat_condition(error):  # review 33a
            log.error(
                "notify.staff_chat_refused",
                chat=chat,
                error=error.message,
                migrate_to_chat_id=getattr(error, "migrate_to_chat_id", None),
            )
            await _hold(limiter, chat, STAFF_CHAT_AWAY)  # as for its 403: nothing given up
            return _deferred(notification, answered + timedelta(seconds=STAFF_CHAT_AWAY))
        log.error("notify.refused", notification=notification.id, error=error.message)
        if digested is not None:  # one item may be to blame: each goes again by itself
            return _Result(notification, Outcome.DEFERRED, answered, alone=True)
        return _dead(notification, answered)
    except TelegramNetworkError:
        answered = clock()
        await _answered(limiter, chat, accepted=True)  # it may have arrived
        return await _backoff_in_order(limiter, notification, answered)
    except TelegramAPIError as error:  # 5xx, and 401/404/409: the API's trouble, not the row's
        answered = clock()
        await _answered(limiter, chat, accepted=False)
        if not isinstance(error, TelegramServerError):
            log.error("notify.api_error", error=type(error).__name__, message=error.message)
        return await _backoff_in_order(limiter, notification, answered)
    except Exception:  # a bug or an unexpected answer: whether it arrived is unknown
        answered = clock()
        await _answered(limiter, chat, accepted=True)
        log.exception("notify.unexpected", notification=notification.id, kind=notification.kind)
        return _dead(notification, answered)  # not sent again: no duplicate from a bug
    sent = _Result(notification, Outcome.SENT, clock(), message_id=message.message_id)
    if digested is not None:
        sent = replace(sent, folded=digested.folded)
    progress.result = sent  # Telegram took it: a cancellation from here on records it sent
    await _answered(limiter, chat, accepted=True)
    return sent


# A 400 about the chat, not the message (Bot API descriptions, lower-cased): staff closed the
# topic, the bot's right to post was taken, the chat is gone or was never the bot's.
_CHAT_CONDITIONS = (
    "topic_closed",
    "chat_write_forbidden",
    "not enough rights",
    "have no rights",
    "need administrator rights",
    "chat_admin_required",
    "chat_restricted",
    "chat not found",
    "bot is not a member",
)


def _staff_chat_condition(error: TelegramAPIError) -> bool:
    """Whether a 400 from the staff supergroup is about the chat, not the message: the group
    became a supergroup, staff closed the «Dashboard» topic, the bot's right to post was taken,
    the chat is gone. Those pass when the operator acts, so the row waits like a staff 403 (a
    refund owed may be in it). Any other 400 is the message's own (a chart Telegram refuses,
    PHOTO_INVALID_DIMENSIONS): dead-lettered alone as ever — holding the chat for it would hold
    the refunds behind it for ever (review 33c)."""
    if isinstance(error, TelegramMigrateToChat):
        return True
    message = error.message.lower()
    return any(condition in message for condition in _CHAT_CONDITIONS)


def _deferred(notification: Notification, at: datetime) -> _Result:
    return _Result(notification, Outcome.DEFERRED, at)


def _backoff(notification: Notification, answered: datetime) -> _Result:
    """2, 4, 8, 16 s after the answer; given up (dead-lettered) after MAX_ATTEMPTS."""
    if notification.attempts >= MAX_ATTEMPTS:
        return _dead(notification, answered)
    retry_at = answered + timedelta(seconds=2**notification.attempts)
    return _Result(notification, Outcome.RETRY, retry_at)


async def _backoff_in_order(
    limiter: SendLimiter, notification: Notification, answered: datetime
) -> _Result:
    """The backoff, and the chat held until then: the chat's later notifications must not
    overtake this one (a report's statuses would arrive out of order)."""
    result = _backoff(notification, answered)
    if result.outcome is Outcome.RETRY:
        await _hold(limiter, notification.telegram_user_id, (result.at - answered).total_seconds())
    return result


async def _hold(limiter: SendLimiter, chat: int, seconds: float) -> None:
    try:
        await limiter.hold(chat, seconds)
    except Exception as error:  # the limiter's trouble must not decide the notification's
        _limiter_trouble(error)


def _limiter_trouble(error: Exception) -> None:
    """Redis away for a moment is waiting, not failing: a warning (the rows wait their turn).
    Anything else is a bug in the limiter: an error, with its traceback."""
    if classify(error).transient:
        log.warning("notify.limiter_unavailable", error=type(error).__name__)
    else:
        log.error("notify.limiter_failed", error=type(error).__name__, exc_info=error)


def _dead(notification: Notification, at: datetime) -> _Result:
    return _Result(notification, Outcome.FAILED, at, dead=True)


async def _answered(limiter: SendLimiter, chat: int, *, accepted: bool) -> None:
    try:
        await limiter.answered(chat, accepted)
    except Exception as error:  # the limiter's trouble must not decide the notification's
        _limiter_trouble(error)


class _Recorder:
    """Writes outcomes as they come, several to a transaction (group commit): while one
    transaction is being written, the outcomes arriving meanwhile queue up and the next one
    takes them all. So a database round trip is shared by the messages sent during the
    previous one, and a sent message is recorded within about one commit of its answer.

    The crash window this leaves: a process that dies between Telegram's answer and that
    commit leaves those few rows `sending`; they are claimed again after STALE_CLAIM and sent a
    second time. One transaction per batch would widen that window to the whole batch (two
    seconds of sending), one per message would double the database's work per message."""

    def __init__(self, app: Application) -> None:
        self._app = app
        self._queue: list[_Result] = []
        self._lock = asyncio.Lock()
        self._error: BaseException | None = None

    async def record(self, result: _Result) -> None:
        """Queue `result` and see it written. A known outcome is written even when the caller
        is cancelled meanwhile (a shutdown): the write runs as a task of its own, and the
        cancelled caller waits for it before it ends — an outcome thrown away would leave a
        sent row `sending`, to be sent again after STALE_CLAIM."""
        self._queue.append(result)
        flushing = asyncio.ensure_future(self._flush())
        try:
            await asyncio.shield(flushing)
        except asyncio.CancelledError:
            await flushing
            raise

    async def _flush(self) -> None:
        async with self._lock:
            if not self._queue:  # the transaction before took ours too
                return
            results, self._queue = self._queue, []
            try:
                await self._write(results)
            except Exception as error:
                log.warning("notify.group_record_failed", error=type(error).__name__)
                # One outcome that cannot be written must not undo the others (a sent row left
                # `sending` goes out again): each is written alone.
                for each in results:
                    try:
                        await self._write([each])
                    except Exception as alone:  # the database: the row is claimed again later
                        log.error("notify.record_failed", error=type(alone).__name__)
                        self._error = self._error or alone

    async def _write(self, results: list[_Result]) -> None:
        async with self._app.uow_factory() as uow:
            for each in results:
                await _write(uow, each)
            await uow.commit()

    def raise_if_failed(self) -> None:
        """After the batch: a tick whose outcomes could not be written fails loudly."""
        if self._error is not None:
            raise self._error


async def _write(uow: SqlUnitOfWork, result: _Result) -> None:
    """The outcome of one send: of its notification and, for a digest, of every row folded
    into it (one transaction: the digest's rows never part ways)."""
    notification = result.notification
    notifications = uow.notifications
    for row in result.rows:
        assert row.id is not None
        if result.outcome in (Outcome.SENT, Outcome.MUTED, Outcome.OBSOLETE):
            await notifications.sent(row.id, result.message_id, result.at)
        elif result.alone:
            await notifications.alone(row.id, result.at)
        elif result.outcome is Outcome.DEFERRED:
            await notifications.defer(row.id, result.at)
        else:
            await notifications.retry(row.id, result.at, result.outcome is Outcome.FAILED)
        if result.dead:  # staff hear of every row given up, a digest's too
            await dead_lettered(uow, row, result.at)
    if result.blocked:
        await notifications.fail_all(notification.telegram_user_id)


def _prepare(app: Application, notification: Notification) -> _Prepared:
    text, markup, photo = render(notification.kind, notification.data, app.tr)
    thread = notification.data.get(THREAD)  # a forum topic (the support dashboard)
    chart = None
    if notification.kind == DASHBOARD_DIGEST:  # the chart is drawn when it is sent
        series = notification.data.get("series")
        chart = BufferedInputFile(
            payments_chart(series if isinstance(series, list) else []), "7days.png"
        )
    thread_id = thread if isinstance(thread, int) else None
    return _Prepared(text, markup, photo, chart, thread_id)


async def _post(app: Application, chat_id: int, prepared: _Prepared) -> Message:
    """Private chats: the chat id is the user id. A photo Telegram cannot take falls back to
    text, a forum topic staff deleted to «General»."""
    text, markup, thread_id = prepared.text, prepared.markup, prepared.thread_id
    if prepared.chart is not None:
        return await app.bot.send_photo(
            chat_id,
            prepared.chart,
            caption=text,
            message_thread_id=thread_id,
            request_timeout=SEND_TIMEOUT,
        )
    if prepared.photo:
        try:
            return await app.bot.send_photo(
                chat_id,
                prepared.photo,
                caption=text,
                reply_markup=markup,
                message_thread_id=thread_id,
                request_timeout=SEND_TIMEOUT,
            )
        except TelegramBadRequest as error:
            # e.g. a URL Telegram cannot fetch; its words say which
            log.info("notify.photo_unavailable", error=error.message)
    try:
        return await app.bot.send_message(
            chat_id,
            text,
            reply_markup=markup,
            message_thread_id=thread_id,
            request_timeout=SEND_TIMEOUT,
        )
    except TelegramBadRequest as error:
        if thread_id is None or "thread not found" not in error.message.lower():
            raise
        log.warning("notify.topic_gone")  # staff deleted the topic: «General» still shows it
        return await app.bot.send_message(
            chat_id, text, reply_markup=markup, request_timeout=SEND_TIMEOUT
        )


async def _send(app: Application, notification: Notification) -> Message:
    """Render and post one notification, limits aside (kept for callers of the old name)."""
    return await _post(app, notification.telegram_user_id, _prepare(app, notification))


async def _muted(app: Application, notification: Notification) -> bool:
    """Whether the resident turned this notification's kind off."""
    async with app.uow_factory() as uow:
        return notification.kind in await uow.notification_settings.muted(
            notification.telegram_user_id
        )
