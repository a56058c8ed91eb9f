"""Background work: APScheduler fires short ticks; the database decides what is due.

Ticks are safe on every replica at once: status polling writes notifications with unique
dedupe keys, and the sender claims outbox rows before sending them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

import structlog
from aiogram.exceptions import TelegramAPIError
from apscheduler.executors.base import run_coroutine_job
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import STATE_RUNNING

from bot.album import albums_of
from bot.app import RECONCILE_EVERY, Application, Clock, reconcile_in_background
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
from bot.ratelimit import SendLimiter
from domain.autopay import MOSCOW
from domain.autopay_runs import reconcile_runs
from domain.autopaying import send_reminders
from domain.autopaying import tick as autopay_tick
from domain.bill_discovery import discover_bills
from domain.errors import DomainError
from domain.limits import DEFAULT_LIMITS
from domain.linking import purge_expired_attempts
from domain.meter_reminders import MeterRound, remind_meter_windows
from domain.reporting import DiscoveryCursor, poll_statuses
from domain.support import payment_errors_seen, platform_seen, post_digest
from handlers.support import ensure_dashboard
from storage.autopays import LEASE
from storage.fsm import DIALOG_STATE_KEPT

log = structlog.get_logger(__name__)

AUTOPAY_EVERY = 5  # seconds between autopay runs (a run lasts while work is due; never two)


# This process's place in the round of residents whose reports made elsewhere are looked for
# (one batch a tick; replicas each go round, which only repeats an idempotent lookup).
_DISCOVERY = DiscoveryCursor()


async def poll_reports(app: Application, clock: Clock | None = None) -> int:
    clock = clock or app.clock  # every job reads the app's clock (the console can move it)
    try:
        async with app.uow_factory() as uow:
            return await poll_statuses(uow, app.city, clock(), _DISCOVERY)
    except DomainError as error:
        log.warning("reports.poll_failed", error=type(error).__name__)
        return 0


# This process's place in the round of residents whose new bills are looked for (one batch a
# tick; replicas each go round: the known-bills table and dedupe keys keep it to one notice).
_BILLS = DiscoveryCursor()
BILL_DISCOVERY_EVERY = 60  # seconds between bill discovery ticks


async def find_new_bills(app: Application, clock: Clock | None = None) -> int:
    """One batch of residents asked for new bills (`bill_discovery.discover_bills`): a
    «Пришёл счёт» for each new one, and on-issue autopays made due. The city failing stops
    the tick (logged; the batch comes again next time). Returns the notices written."""
    clock = clock or app.clock
    limits = app.dispatcher.workflow_data.get("limits", DEFAULT_LIMITS)
    result = await discover_bills(app.uow_factory, app.city, clock(), _BILLS, limits)
    if result.halted:
        log.warning("bills.discovery_halted", residents=result.residents)
    return result.notices


# This process's round of residents for the meter-window reminders (one batch a minute, one
# round a day while a window is open; replicas each go round: the dedupe key writes it once).
_METERS = MeterRound()


async def remind_meters(app: Application, clock: Clock | None = None) -> int:
    """One batch of residents: a reminder to each whose meters lack the open window's reading
    (`meter_reminders.remind_meter_windows`). Returns the reminders written."""
    clock = clock or app.clock
    try:
        async with app.uow_factory() as uow:
            return await remind_meter_windows(uow, app.city, app.city, clock(), _METERS)
    except DomainError as error:
        log.warning("meters.remind_failed", error=type(error).__name__)
        return 0


async def support_dashboard(app: Application, clock: Clock | None = None) -> None:
    """The support supergroup's «Dashboard» topic exists (made once, its thread stored) — or,
    with SUPPORT_CHAT_ID unset, no dashboard is kept and no dashboard event is written."""
    clock = clock or app.clock
    try:
        async with app.uow_factory() as uow:
            await ensure_dashboard(app.bot, uow, app.settings.support_chat_id, app.tr, clock())
    except TelegramAPIError as error:  # e.g. the bot is not an administrator there yet
        log.error("support.dashboard_unavailable", error=type(error).__name__)


async def run_autopays(
    app: Application, clock: Clock | None = None, stopping: Callable[[], bool] | None = None
) -> int:
    """Reminders, then the due charges, continuously until none is due (`autopaying.tick`):
    AUTOPAY_CONCURRENCY charges in flight at once, each in its own unit of work, read at
    `clock`'s time as it goes. `stopping()` true ends the run early (no new autopay is
    started; see `stop_scheduler`). The operator's ceilings are the handlers' own (the
    dispatcher's `limits`, else the defaults), so a charge above them is never made. Returns
    how many autopays were processed."""
    clock = clock or app.clock
    outcomes: list[str] = []
    limits = app.dispatcher.workflow_data.get("limits", DEFAULT_LIMITS)
    async with app.uow_factory() as uow:
        await send_reminders(uow, clock())
    try:
        return await autopay_tick(
            app.uow_factory,
            app.city,
            clock,
            outcomes,
            limits,
            concurrency=app.settings.autopay_concurrency,
            stopping=stopping,
        )
    finally:  # counted even when a charge broke the run
        for outcome in outcomes:
            AUTOPAY_RUNS.labels(outcome=outcome).inc()


async def reconcile_autopay_runs(app: Application, clock: Clock | None = None) -> int:
    """Every RECONCILE_EVERY seconds: autopay charges whose outcome a dead scheduler never
    recorded, and that the charge run will not send again (their autopay paused, deleted or
    moved to another period), settled by asking the city about their keys
    (`autopay_runs.reconcile_runs`). Only runs last written more than a lease ago
    (`storage.autopays.LEASE`), of autopays nobody leases, are taken: no live scheduler is
    sending them. Safe on every replica at once (each record re-checks under the autopay's
    lock). A run the city did not answer about is logged (its id and the reason, nothing
    personal) and asked about next time. Returns how many runs were recorded."""
    now = (clock or app.clock)()
    async with app.uow_factory() as uow:
        outcomes = await reconcile_runs(uow, app.city, app.city, now, now - LEASE)
    for outcome in outcomes:
        if outcome.left_because is not None:
            log.warning(
                "autopay.run_reconcile_left",
                run_id=outcome.run.id,
                reason=type(outcome.left_because).__name__,
            )
    recorded = [o for o in outcomes if o.recorded is not None]
    if outcomes:
        log.info(
            "autopay.runs_reconciled",
            recorded=len(recorded),
            told=sum(o.told for o in recorded),
            left=len(outcomes) - len(recorded),
        )
    return len(recorded)


async def watch_platform(app: Application, clock: Clock | None = None) -> None:
    """Every minute: is the city platform there, and are payments going unanswered?"""
    clock = clock or app.clock
    try:
        await app.city.ping()
        reachable = True
    except DomainError:
        reachable = False
    async with app.uow_factory() as uow:
        await platform_seen(uow, reachable, clock())
        await payment_errors_seen(uow, clock())


async def post_daily_digest(app: Application, clock: Clock | None = None) -> bool:
    clock = clock or app.clock
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


# Retention (README, «Personal data»): how long what is no longer needed is kept.
SENT_NOTIFICATIONS_KEPT = timedelta(days=90)  # the outbox's sent rows (dedupe keys live as long)
# Report drafts abandoned as long as their dialog (its state is gone by then too). Payments,
# autopays and their runs are accounting records: never purged here.
DRAFTS_KEPT = DIALOG_STATE_KEPT


async def purge_retained(app: Application, clock: Clock | None = None) -> dict[str, int]:
    """Hourly: login attempts past their expiry (tokens an abandoned login held are revoked),
    sent and failed notifications older than SENT_NOTIFICATIONS_KEPT, report drafts not written for
    DRAFTS_KEPT and SQL dialog state not written for DIALOG_STATE_KEPT are deleted (Redis
    expires its own: the storage's TTL). Returns how many of each."""
    now = (clock or app.clock)()
    async with app.uow_factory() as uow:
        tokens = await purge_expired_attempts(uow, app.city, now)
        sent = await uow.notifications.purge_finished(now - SENT_NOTIFICATIONS_KEPT)
        drafts = await uow.drafts.purge_stale(now - DRAFTS_KEPT)
        await uow.commit()
    purge_stale = getattr(app.storage, "purge_stale", None)  # storage.fsm.SqlStorage
    dialogs = await purge_stale(now - DIALOG_STATE_KEPT) if purge_stale is not None else 0
    counts = {"attempt_tokens": tokens, "notifications": sent, "drafts": drafts, "dialogs": dialogs}
    log.info("retention.purged", **counts)
    return counts


async def run_due_now(app: Application, limiter: SendLimiter | None = None) -> int:
    """The scheduler's clock-driven work once, now, at `app.clock`'s moment (the console's
    `:time` after moving the clock): bill discovery, autopay reminders and charges, the report
    status poll, then the outbox sender until nothing more is due (meter-window reminders are
    left to the scheduler). Returns the messages sent."""
    await find_new_bills(app)
    await run_autopays(app)
    await poll_reports(app)
    sent = 0
    while delivered := await deliver_notifications(app, app.clock, limiter):
        sent += delivered
    return sent


def start_scheduler(app: Application) -> AsyncIOScheduler:
    """Started inside the running loop; jobs take only the app (nothing to pickle)."""
    scheduler = AsyncIOScheduler(timezone="Europe/Moscow")
    scheduler.add_job(
        deliver_notifications, "interval", seconds=1, args=[app, app.clock], max_instances=1
    )
    scheduler.add_job(poll_reports, "interval", seconds=60, args=[app], max_instances=1)
    scheduler.add_job(
        find_new_bills, "interval", seconds=BILL_DISCOVERY_EVERY, args=[app], max_instances=1
    )
    scheduler.add_job(remind_meters, "interval", minutes=1, args=[app], max_instances=1)
    scheduler.add_job(sweep_albums, "interval", seconds=5, args=[app], max_instances=1)
    scheduler.add_job(purge_retained, "interval", hours=1, args=[app], max_instances=1)
    # Starts a background run (with its own backoff while the city is down) unless one is under
    # way; the first run is started by the runners at start-up, without waiting for it.
    scheduler.add_job(
        reconcile_in_background, "interval", seconds=RECONCILE_EVERY, args=[app], max_instances=1
    )
    # Autopay charges a dead scheduler left unrecorded and the charge run will not take up again.
    scheduler.add_job(
        reconcile_autopay_runs, "interval", seconds=RECONCILE_EVERY, args=[app], max_instances=1
    )
    # A run charges until nothing is due, so it is started often: due work begins within
    # AUTOPAY_EVERY seconds; it stops taking autopays once the scheduler is paused or stopped.
    scheduler.add_job(
        run_autopays,
        "interval",
        seconds=AUTOPAY_EVERY,
        args=[app],
        kwargs={"stopping": lambda: scheduler.state != STATE_RUNNING},
        max_instances=1,
    )
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


# How long the runs under way get to finish when the bot stops (a send, a charge, a poll).
STOP_GRACE = 10.0


async def stop_scheduler(scheduler: AsyncIOScheduler, grace: float = STOP_GRACE) -> int:
    """Stops the ticks without cutting a run short: no run starts any more, the runs under way
    get `grace` seconds to finish, then the scheduler shuts down (which cancels what is still
    running, logged by APScheduler as an error). Returns how many were cut short."""
    scheduler.pause()
    running = {
        task
        for task in asyncio.all_tasks()
        if getattr(task.get_coro(), "cr_code", None) is run_coroutine_job.__code__
    }
    late: set[asyncio.Task[object]] = set()
    if running:
        _, late = await asyncio.wait(running, timeout=grace)
    if late:
        log.warning("scheduler.runs_cut_short", runs=len(late), grace=grace)
    scheduler.shutdown(wait=False)
    return len(late)
