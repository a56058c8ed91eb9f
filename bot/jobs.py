"""Background work: APScheduler fires short ticks; the database decides what is due.

Ticks are safe on every replica at once: status polling writes notifications with unique
dedupe keys, and the sender claims outbox rows before sending them.
"""

from __future__ import annotations

from datetime import timedelta

import structlog
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import Message
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.app import Application, Clock, reconcile_payments, utc_now
from domain.errors import DomainError
from domain.ports import Notification
from domain.reporting import poll_statuses
from handlers.notifications import render

log = structlog.get_logger(__name__)

SEND_BATCH = 25  # per tick; a tick a second keeps the bot under Telegram's ~30 messages/s
MAX_ATTEMPTS = 5


async def poll_reports(app: Application, clock: Clock = utc_now) -> int:
    try:
        async with app.uow_factory() as uow:
            return await poll_statuses(uow, app.city, clock())
    except DomainError as error:
        log.warning("reports.poll_failed", error=type(error).__name__)
        return 0


async def deliver_notifications(app: Application, clock: Clock = utc_now) -> int:
    """Send what is due; 429 waits its retry_after, 403 stops, network errors back off."""
    now = clock()
    async with app.uow_factory() as uow:
        batch = await uow.notifications.claim(now, SEND_BATCH)
        await uow.commit()
    delivered = 0
    for notification in batch:
        assert notification.id is not None
        retry_at, failed, message = None, False, None
        try:
            message = await _send(app, notification)
        except TelegramRetryAfter as error:
            retry_at = now + timedelta(seconds=error.retry_after)
        except TelegramForbiddenError:
            failed = True  # the resident blocked the bot
        except (TelegramNetworkError, TelegramServerError):
            failed = notification.attempts >= MAX_ATTEMPTS
            retry_at = now + timedelta(seconds=2**notification.attempts)
        async with app.uow_factory() as uow:
            if message is not None:
                await uow.notifications.sent(notification.id, message.message_id, clock())
                delivered += 1
            else:
                await uow.notifications.retry(notification.id, retry_at or now, failed)
            await uow.commit()
    return delivered


async def _send(app: Application, notification: Notification) -> Message:
    text, markup, photo = render(notification.kind, notification.data, app.tr)
    chat_id = notification.telegram_user_id  # private chats: the chat id is the user id
    if photo:
        try:
            return await app.bot.send_photo(chat_id, photo, caption=text, reply_markup=markup)
        except TelegramBadRequest:
            log.info("notify.photo_unavailable")  # e.g. a URL Telegram cannot fetch
    return await app.bot.send_message(chat_id, text, reply_markup=markup)


def start_scheduler(app: Application) -> AsyncIOScheduler:
    """Started inside the running loop; jobs take only the app (nothing to pickle)."""
    scheduler = AsyncIOScheduler(timezone="Europe/Moscow")
    scheduler.add_job(deliver_notifications, "interval", seconds=1, args=[app], max_instances=1)
    scheduler.add_job(poll_reports, "interval", seconds=60, args=[app], max_instances=1)
    scheduler.add_job(reconcile_payments, "interval", minutes=5, args=[app], max_instances=1)
    scheduler.start()
    return scheduler
