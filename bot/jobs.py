"""Background work: APScheduler fires short ticks; the database decides what is due.

Ticks are safe on every replica at once: status polling writes notifications with unique
dedupe keys, and the sender claims outbox rows before sending them.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import BufferedInputFile, Message
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.app import RECONCILE_EVERY, Application, Clock, reconcile_in_background, utc_now
from bot.charts import payments_chart
from bot.metrics import AUTOPAY_RUNS, NOTIFICATIONS
from bot.ratelimit import SendLimiter
from domain.autopay import MOSCOW
from domain.autopaying import send_reminders
from domain.autopaying import tick as autopay_tick
from domain.errors import DomainError
from domain.limits import DEFAULT_LIMITS
from domain.ports import Notification
from domain.reporting import poll_statuses
from domain.support import (
    DASHBOARD_DIGEST,
    THREAD,
    dead_lettered,
    payment_errors_seen,
    platform_seen,
    post_digest,
)
from handlers.notifications import render
from handlers.support import ensure_dashboard

log = structlog.get_logger(__name__)

SEND_BATCH = 60  # per tick (a tick a second); the limiter keeps within Telegram's limits
MAX_ATTEMPTS = 5
QUIET_FROM, QUIET_UNTIL = 22, 9


async def poll_reports(app: Application, clock: Clock = utc_now) -> int:
    try:
        async with app.uow_factory() as uow:
            return await poll_statuses(uow, app.city, clock())
    except DomainError as error:
        log.warning("reports.poll_failed", error=type(error).__name__)
        return 0


def quiet_hours(now: datetime) -> bool:
    """22:00–09:00 Moscow time: only urgent notifications go out."""
    hour = now.astimezone(MOSCOW).hour
    return hour >= QUIET_FROM or hour < QUIET_UNTIL


async def deliver_notifications(
    app: Application, clock: Clock = utc_now, limiter: SendLimiter | None = None
) -> int:
    """Send what is due within Telegram's limits; 429 waits its retry_after, 403 stops
    sending to that resident, network errors back off and are dead-lettered in the end."""
    now = clock()
    limiter = limiter or app.limiter
    async with app.uow_factory() as uow:
        batch = await uow.notifications.claim(now, SEND_BATCH, urgent_only=quiet_hours(now))
        await uow.commit()
    delivered = 0
    blocked: set[int] = set()
    for notification in batch:
        assert notification.id is not None
        retry_at, failed, message, skipped = None, False, None, False
        dead = False  # given up after MAX_ATTEMPTS: staff hear of it on the dashboard
        try:
            if notification.telegram_user_id in blocked:
                failed = True  # blocked the bot earlier in this batch
            elif not notification.urgent and await _muted(app, notification):
                skipped = True
            elif (wait := await limiter.acquire(notification.telegram_user_id)) > 0:
                retry_at = now + timedelta(seconds=wait)  # that chat's turn comes later
            else:
                message = await _send(app, notification)
        except TelegramRetryAfter as error:
            retry_at = now + timedelta(seconds=error.retry_after)
        except TelegramForbiddenError:
            failed = True  # the resident blocked the bot: their other messages stop too
            blocked.add(notification.telegram_user_id)
            async with app.uow_factory() as uow:
                await uow.notifications.fail_all(notification.telegram_user_id)
                await uow.commit()
        except (TelegramNetworkError, TelegramServerError):
            failed = dead = notification.attempts >= MAX_ATTEMPTS
            retry_at = now + timedelta(seconds=2**notification.attempts)
        NOTIFICATIONS.labels(
            outcome="sent" if message else "muted" if skipped else "failed" if failed else "retry"
        ).inc()
        async with app.uow_factory() as uow:
            if message is not None or skipped:
                message_id = message.message_id if message is not None else None
                await uow.notifications.sent(notification.id, message_id, clock())
                delivered += message is not None
            else:
                await uow.notifications.retry(notification.id, retry_at or now, failed)
                if dead:
                    await dead_lettered(uow, notification, now)
            await uow.commit()
    return delivered


async def _muted(app: Application, notification: Notification) -> bool:
    async with app.uow_factory() as uow:
        return notification.kind in await uow.notification_settings.muted(
            notification.telegram_user_id
        )


async def support_dashboard(app: Application, clock: Clock = utc_now) -> None:
    """The support supergroup's «Dashboard» topic exists (made once, its thread stored) — or,
    with SUPPORT_CHAT_ID unset, no dashboard is kept and no dashboard event is written."""
    try:
        async with app.uow_factory() as uow:
            await ensure_dashboard(app.bot, uow, app.settings.support_chat_id, app.tr, clock())
    except TelegramAPIError as error:  # e.g. the bot is not an administrator there yet
        log.error("support.dashboard_unavailable", error=type(error).__name__)


async def run_autopays(app: Application, clock: Clock = utc_now) -> int:
    """Reminders, then the due charges. The operator's ceilings are the handlers' own (the
    dispatcher's `limits`, else the defaults), so a charge above them is never made."""
    outcomes: list[str] = []
    limits = app.dispatcher.workflow_data.get("limits", DEFAULT_LIMITS)
    async with app.uow_factory() as uow:
        await send_reminders(uow, clock())
        processed = await autopay_tick(uow, app.city, clock(), outcomes, limits)
    for outcome in outcomes:
        AUTOPAY_RUNS.labels(outcome=outcome).inc()
    return processed


async def _send(app: Application, notification: Notification) -> Message:
    text, markup, photo = render(notification.kind, notification.data, app.tr)
    chat_id = notification.telegram_user_id  # private chats: the chat id is the user id
    thread = notification.data.get(THREAD)  # a forum topic (the support dashboard)
    thread_id = thread if isinstance(thread, int) else None
    if notification.kind == DASHBOARD_DIGEST:  # the chart is drawn when it is sent
        series = notification.data.get("series")
        chart = BufferedInputFile(
            payments_chart(series if isinstance(series, list) else []), "7days.png"
        )
        return await app.bot.send_photo(chat_id, chart, caption=text, message_thread_id=thread_id)
    if photo:
        try:
            return await app.bot.send_photo(
                chat_id, photo, caption=text, reply_markup=markup, message_thread_id=thread_id
            )
        except TelegramBadRequest:
            log.info("notify.photo_unavailable")  # e.g. a URL Telegram cannot fetch
    try:
        return await app.bot.send_message(
            chat_id, text, reply_markup=markup, message_thread_id=thread_id
        )
    except TelegramBadRequest as error:
        if thread_id is None or "thread not found" not in error.message.lower():
            raise
        log.warning("notify.topic_gone")  # staff deleted the topic: «General» still shows it
        return await app.bot.send_message(chat_id, text, reply_markup=markup)


async def watch_platform(app: Application, clock: Clock = utc_now) -> None:
    """Every minute: is the city platform there, and are payments going unanswered?"""
    try:
        await app.city.ping()
        reachable = True
    except DomainError:
        reachable = False
    async with app.uow_factory() as uow:
        await platform_seen(uow, reachable, clock())
        await payment_errors_seen(uow, clock())


async def post_daily_digest(app: Application, clock: Clock = utc_now) -> bool:
    async with app.uow_factory() as uow:
        return await post_digest(uow, clock())


def start_scheduler(app: Application) -> AsyncIOScheduler:
    """Started inside the running loop; jobs take only the app (nothing to pickle)."""
    scheduler = AsyncIOScheduler(timezone="Europe/Moscow")
    scheduler.add_job(deliver_notifications, "interval", seconds=1, args=[app], max_instances=1)
    scheduler.add_job(poll_reports, "interval", seconds=60, args=[app], max_instances=1)
    # Starts a background run (with its own backoff while the city is down) unless one is under
    # way; the first run is started by the runners at start-up, without waiting for it.
    scheduler.add_job(
        reconcile_in_background, "interval", seconds=RECONCILE_EVERY, args=[app], max_instances=1
    )
    scheduler.add_job(run_autopays, "interval", seconds=30, args=[app], max_instances=1)
    # Every 10 minutes: written once a day after 09:00 Moscow time (its dedupe key), so a
    # restart or a replica that was down at nine still gets the digest out.
    scheduler.add_job(post_daily_digest, "interval", minutes=10, args=[app], max_instances=1)
    scheduler.add_job(watch_platform, "interval", minutes=1, args=[app], max_instances=1)
    scheduler.add_job(  # at once, then again in case the bot was made an admin only later
        support_dashboard,
        "interval",
        minutes=10,
        args=[app],
        max_instances=1,
        next_run_time=datetime.now(MOSCOW),
    )
    scheduler.start()
    return scheduler
