"""Background work: APScheduler fires short ticks; the database decides what is due.

Ticks are safe on every replica at once: status polling writes notifications with unique
dedupe keys, and the sender claims outbox rows before sending them.
"""

from __future__ import annotations

from datetime import datetime

import structlog
from aiogram.exceptions import TelegramAPIError
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.album import albums_of
from bot.app import RECONCILE_EVERY, Application, Clock, reconcile_in_background, utc_now
from bot.metrics import AUTOPAY_RUNS

# The outbox sender lives in bot/outbox.py; these names stay importable from here.
from bot.outbox import MAX_ATTEMPTS as MAX_ATTEMPTS
from bot.outbox import QUIET_FROM as QUIET_FROM
from bot.outbox import QUIET_UNTIL as QUIET_UNTIL
from bot.outbox import SEND_BATCH as SEND_BATCH
from bot.outbox import _muted as _muted
from bot.outbox import _send as _send
from bot.outbox import deliver_notifications as deliver_notifications
from bot.outbox import quiet_hours as quiet_hours
from domain.autopay import MOSCOW
from domain.autopaying import send_reminders
from domain.autopaying import tick as autopay_tick
from domain.errors import DomainError
from domain.limits import DEFAULT_LIMITS
from domain.reporting import DiscoveryCursor, poll_statuses
from domain.support import payment_errors_seen, platform_seen, post_digest
from handlers.support import ensure_dashboard

log = structlog.get_logger(__name__)


# This process's place in the round of residents whose reports made elsewhere are looked for
# (one batch a tick; replicas each go round, which only repeats an idempotent lookup).
_DISCOVERY = DiscoveryCursor()


async def poll_reports(app: Application, clock: Clock = utc_now) -> int:
    try:
        async with app.uow_factory() as uow:
            return await poll_statuses(uow, app.city, clock(), _DISCOVERY)
    except DomainError as error:
        log.warning("reports.poll_failed", error=type(error).__name__)
        return 0


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


async def sweep_albums(app: Application) -> int:
    """Albums whose replica died before handling them, found by any replica (bot/album.py)."""
    handled = 0
    for middleware in albums_of(app.dispatcher):
        try:
            handled += await middleware.sweep(app.dispatcher, app.bot)
        except Exception as error:  # Redis away: the next sweep tries again
            log.warning("album.sweep_failed", error=type(error).__name__)
    return handled


def start_scheduler(app: Application) -> AsyncIOScheduler:
    """Started inside the running loop; jobs take only the app (nothing to pickle)."""
    scheduler = AsyncIOScheduler(timezone="Europe/Moscow")
    scheduler.add_job(deliver_notifications, "interval", seconds=1, args=[app], max_instances=1)
    scheduler.add_job(poll_reports, "interval", seconds=60, args=[app], max_instances=1)
    scheduler.add_job(sweep_albums, "interval", seconds=5, args=[app], max_instances=1)
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
