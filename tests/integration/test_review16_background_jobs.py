"""Review 16: the scheduled jobs as an operator sees them in production — the report status
poll's round, the autopay reminder step and the hourly retention purge — attacked with a fake
clock on SQLite and PostgreSQL, against the city sandbox."""

from __future__ import annotations

import asyncio
import contextlib
import math
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiogram.fsm.storage.base import StorageKey
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import _storage
from bot.config import Settings
from bot.dedup import RedisDedup
from bot.jobs import SENT_NOTIFICATIONS_KEPT, purge_retained
from city.client import CityClient
from domain.autopay import (
    MOSCOW,
    Autopay,
    AutopayKind,
    AutopayStatus,
    Frequency,
    RunStatus,
    Schedule,
)
from domain.autopaying import change, send_reminders, set_status, set_up, tick
from domain.errors import DomainError
from domain.ports import TrackedReport
from domain.reporting import POLL_BATCH, poll_statuses
from domain.reports import ReportUpdate
from sandbox import SandboxServer
from storage.fsm import DIALOG_STATE_KEPT, SqlStorage
from storage.models import AutopayRow, NotificationRow, TrackedReportRow
from tests.integration.test_autopay_job import RESIDENT, ledger, uow_factory
from tests.integration.test_background_costs import reminders

START = datetime(2026, 11, 24, 12, 0, tzinfo=MOSCOW)


# --- the report status poll ---------------------------------------------------------------


class AskedCity:
    """The real sandbox client, with every status question recorded in order."""

    def __init__(self, city: CityClient) -> None:
        self._city = city
        self.asked: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._city, name)

    async def report_updates(self, report_id: str) -> list[ReportUpdate]:
        self.asked.append(report_id)
        return await self._city.report_updates(report_id)


async def sandbox_report_ids(sandbox: SandboxServer) -> list[str]:
    async with aiohttp.ClientSession() as http:
        async with http.get(sandbox.url + "/open311/v2/requests.json") as answer:
            return [found["service_request_id"] for found in await answer.json()]


async def poll_tick(factory: Any, city: AskedCity, now: datetime) -> None:
    """What `bot.jobs.poll_reports` does with a tick: a DomainError ends it, logged."""
    try:
        async with factory() as uow:
            await poll_statuses(uow, city, now)  # type: ignore[arg-type]
    except DomainError:
        pass


# Was (review): poll_statuses ends the whole tick at the first report the city answers 404 for
# (NotFound re-raised), so reports the city deleted stretch the cycle past N/200 ticks
async def test_reports_the_city_no_longer_knows_do_not_stretch_the_cycle(
    engine: AsyncEngine, sandbox: SandboxServer, city: CityClient
) -> None:
    """450 followed reports, among them 9 the city answers 404 for (deleted there, or a
    wrong id stored): within ceil(N/POLL_BATCH) ticks every good report is asked about."""
    factory = uow_factory(engine)  # nobody linked: no discovery, only the poll
    ids = await sandbox_report_ids(sandbox)
    good = 441
    gone = [f"GONE-{n}" for n in range(9)]
    async with factory() as uow:
        n = 0
        for index in range(good):
            await uow.tracked_reports.track(
                TrackedReport(1000 + index, ids[index % len(ids)]), START
            )
            if index % 49 == 10 and n < len(gone):  # spread through the poll order
                await uow.tracked_reports.track(TrackedReport(5000 + n, gone[n]), START)
                n += 1
        await uow.commit()
    asked = AskedCity(city)
    total = good + len(gone)
    for tick_number in range(math.ceil(total / POLL_BATCH)):
        await poll_tick(factory, asked, START + timedelta(minutes=1 + tick_number))
    good_asked = [report for report in asked.asked if not report.startswith("GONE-")]
    assert len(good_asked) >= good, (len(good_asked), len(asked.asked))


async def test_a_cycle_with_a_closed_and_an_added_report_asks_each_open_one_once(
    engine: AsyncEngine, sandbox: SandboxServer, city: CityClient
) -> None:
    """A report closed between two ticks is not asked again; one followed mid-cycle joins the
    back of the order and is asked within the cycle; the others are each asked once."""
    factory = uow_factory(engine)
    ids = await sandbox_report_ids(sandbox)
    count = 2 * POLL_BATCH + 50
    async with factory() as uow:
        for index in range(count):
            await uow.tracked_reports.track(
                TrackedReport(1000 + index, ids[index % len(ids)]), START
            )
        await uow.commit()
    asked = AskedCity(city)
    await poll_tick(factory, asked, START + timedelta(minutes=1))
    first = list(asked.asked)
    assert len(first) == POLL_BATCH
    # Meanwhile: one not yet asked is closed (its resident confirmed the fix elsewhere), and a
    # new one is followed.
    async with factory() as uow:
        session = uow.session
        assert session is not None
        rows = (
            (await session.execute(select(TrackedReportRow).order_by(TrackedReportRow.id)))
            .scalars()
            .all()
        )
        closing = rows[POLL_BATCH + 5]
        assert closing.checked_at == START
        closing.closed = True
        await uow.commit()
        await uow.tracked_reports.track(TrackedReport(9999, ids[0]), START + timedelta(minutes=1))
        await uow.commit()
    for minute in (2, 3):
        await poll_tick(factory, asked, START + timedelta(minutes=minute))
    assert len(asked.asked) == 3 * POLL_BATCH  # no tick ended early
    async with factory() as uow:
        session = uow.session
        assert session is not None
        stamps = dict(
            (
                await session.execute(
                    select(TrackedReportRow.telegram_user_id, TrackedReportRow.checked_at)
                )
            ).all()
        )
    assert stamps.pop(closing.telegram_user_id) == START  # closed: never claimed again
    assert stamps.pop(9999) > START + timedelta(minutes=1)  # the added one: asked this cycle
    assert all(moment > START for moment in stamps.values())  # every other one asked


# --- the autopay reminder step ------------------------------------------------------------


def donation(day: int) -> Autopay:
    return Autopay(
        telegram_user_id=RESIDENT,
        kind=AutopayKind.FIXED,
        schedule=Schedule(Frequency.MONTHLY, day),
        method_id="pm-full-4242",
        next_due_at=START,  # set_up computes it
        amount=10_000,
        fund_id="F-101",
        fund_name="Фонд",
    )


# Was (review): send_reminders reminds «Завтра спишем» for a period whose run already SUCCEEDED
# when the day is moved later in the same month (no charge follows)
async def test_no_reminder_for_a_period_already_charged_after_the_day_is_moved(
    factory: Any, city: CityClient, sandbox: SandboxServer
) -> None:
    """Set up on the 5th before 10:00 (no day-before reminder: it is the day), charged at 10:00
    for «2026-11»; on the 6th the resident moves the day to the 20th. The 20th is in the same
    period, already paid: nothing is charged then — so nothing may be announced on the 19th."""
    set_at = datetime(2026, 11, 5, 9, 0, tzinfo=MOSCOW)
    async with factory() as uow:
        autopay = await set_up(uow, donation(5), set_at)
    assert autopay.id is not None
    assert autopay.next_due_at == datetime(2026, 11, 5, 10, 0, tzinfo=MOSCOW)
    charge_at = datetime(2026, 11, 5, 10, 0, 5, tzinfo=MOSCOW)
    async with factory() as uow:
        assert await send_reminders(uow, set_at) == 0  # due today: no «завтра»
    await tick(factory, city, charge_at)
    async with factory() as uow:
        run = await uow.autopays.run_of(autopay.id, "2026-11")
        assert run is not None and run.status is RunStatus.SUCCEEDED
        resident = await uow.residents.get(RESIDENT)
        assert resident is not None
    async with factory() as uow:
        moved = await change(
            uow,
            resident,
            autopay.id,
            datetime(2026, 11, 6, 12, 0, tzinfo=MOSCOW),
            schedule=Schedule(Frequency.MONTHLY, 20),
        )
    charges_before = len(await ledger(sandbox))
    async with factory() as uow:
        written = await send_reminders(uow, datetime(2026, 11, 19, 12, 0, tzinfo=MOSCOW))
    await tick(factory, city, datetime(2026, 11, 20, 10, 0, 5, tzinfo=MOSCOW))
    charged_on_20th = len(await ledger(sandbox)) - charges_before
    assert charged_on_20th == 0  # one period, one charge (this holds)
    # «Завтра спишем 100 ₽» on the 19th, then nothing charged on the 20th: a false promise.
    assert (written, await reminders(factory)) == (0, []), moved.period


async def test_paused_and_deleted_autopays_are_not_reminded_and_a_resume_is_not_twice(
    factory: Any,
) -> None:
    set_at = datetime(2026, 11, 20, 12, 0, tzinfo=MOSCOW)
    async with factory() as uow:
        kept = await set_up(uow, donation(25), set_at)
    async with factory() as uow:
        resident = await uow.residents.get(RESIDENT)
        assert resident is not None and kept.id is not None
    day_before = datetime(2026, 11, 24, 9, 0, tzinfo=MOSCOW)
    async with factory() as uow:
        await set_status(uow, resident, kept.id, AutopayStatus.PAUSED, day_before)
    async with factory() as uow:
        assert await send_reminders(uow, day_before + timedelta(minutes=1)) == 0
    async with factory() as uow:  # resumed the same day: due tomorrow, reminded once
        await set_status(uow, resident, kept.id, AutopayStatus.ACTIVE, day_before)
    for minutes in (2, 3):
        async with factory() as uow:
            await send_reminders(uow, day_before + timedelta(minutes=minutes))
    assert await reminders(factory) == [f"autopay:{kept.id}:2026-11:reminder"]
    async with factory() as uow:  # paused and resumed again after the reminder: not twice
        await set_status(uow, resident, kept.id, AutopayStatus.PAUSED, day_before)
    async with factory() as uow:
        await set_status(uow, resident, kept.id, AutopayStatus.ACTIVE, day_before)
    async with factory() as uow:
        assert await send_reminders(uow, day_before + timedelta(minutes=10)) == 0
    async with factory() as uow:
        await set_status(uow, resident, kept.id, AutopayStatus.DELETED, day_before)
    async with factory() as uow:
        session = uow.session
        assert session is not None
        await session.execute(  # as if never reminded: still nothing for a deleted one
            update(AutopayRow).where(AutopayRow.id == kept.id).values(reminded_due_at=None)
        )
        await uow.commit()
    async with factory() as uow:
        assert await send_reminders(uow, day_before + timedelta(minutes=20)) == 0


@pytest.mark.parametrize("engine", ["postgres"], indirect=True)
async def test_two_replicas_reminding_at_once_write_each_reminder_once(
    engine: AsyncEngine, factory: Any
) -> None:
    due = datetime(2026, 11, 25, 10, 0, tzinfo=MOSCOW)
    async with factory() as uow:
        ids = []
        for _ in range(1200):  # more than one batch each
            autopay = donation(25)
            autopay.next_due_at = due
            await uow.autopays.add(autopay, START)
            ids.append(autopay.id)
        await uow.commit()

    async def replica() -> int:
        async with factory() as uow:
            return await send_reminders(uow, START)

    first, second = await asyncio.gather(replica(), replica())
    assert first + second == len(ids)
    assert await reminders(factory) == sorted(f"autopay:{i}:2026-11:reminder" for i in ids)


# --- the retention purge ------------------------------------------------------------------


async def outbox_row(
    engine: AsyncEngine, key: str, status: str, at: datetime, sent_at: datetime | None
) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            insert(NotificationRow).values(
                telegram_user_id=1,
                kind="report_status",
                data={},
                dedupe_key=key,
                urgent=False,
                status=status,
                attempts=1,
                due_at=at,
                created_at=at,
                sent_at=sent_at,
            )
        )


async def outbox_keys(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return set((await connection.execute(select(NotificationRow.dedupe_key))).scalars())


def purge_app(engine: AsyncEngine, now: datetime, storage: Any = None) -> Any:
    """What `purge_retained` reads of the Application."""
    return SimpleNamespace(
        clock=lambda: now, uow_factory=uow_factory(engine), city=None, storage=storage
    )


async def test_the_purge_keeps_what_is_open_and_cuts_sent_rows_at_the_boundary(
    engine: AsyncEngine,
) -> None:
    """Now is 02:30 Moscow (23:30 UTC the day before): the boundary is 90 days before the
    moment, not before a calendar day in either zone."""
    now = datetime(2026, 11, 25, 2, 30, tzinfo=MOSCOW)
    edge = now - SENT_NOTIFICATIONS_KEPT
    old = now - timedelta(days=400)
    await outbox_row(engine, "sent-just-older", "sent", old, edge - timedelta(microseconds=1))
    await outbox_row(engine, "sent-at-edge", "sent", old, edge)
    await outbox_row(engine, "sent-newer", "sent", old, edge + timedelta(seconds=1))
    await outbox_row(engine, "sent-3h-newer", "sent", old, edge + timedelta(hours=3))
    await outbox_row(engine, "pending-old", "pending", old, None)
    await outbox_row(engine, "sending-old", "sending", old, None)
    counts = await purge_retained(purge_app(engine, now))
    assert counts["notifications"] == 1
    assert await outbox_keys(engine) == {
        "sent-at-edge",
        "sent-newer",
        "sent-3h-newer",
        "pending-old",
        "sending-old",
    }


# Was (review): purge_sent deletes only status='sent': failed outbox rows (blocked residents,
# given-up sends) are kept for ever, with their personal data and dedupe keys
async def test_failed_outbox_rows_are_purged_like_sent_ones(engine: AsyncEngine) -> None:
    now = datetime(2026, 11, 25, 12, 0, tzinfo=MOSCOW)
    year_ago = now - timedelta(days=365)
    for n in range(3):
        await outbox_row(engine, f"failed-{n}", "failed", year_ago, None)
    await purge_retained(purge_app(engine, now))
    assert await outbox_keys(engine) == set()


# Was (review): SqlStorage stamps dialog state with the real time (datetime.now), the purge cuts
# by the app's clock: a console clock moved 30+ days ahead wipes dialogs written just now
async def test_dialog_state_written_after_the_clock_moved_survives_the_purge(
    engine: AsyncEngine,
) -> None:
    """The console's clock is the app's clock (`:time`); a dialog written at that clock's
    «now» is seconds old for the purge, whatever the real date."""
    moved = datetime.now(UTC) + DIALOG_STATE_KEPT + timedelta(days=1)
    # the storage the application builds without Redis, given the application's clock
    url = engine.url.render_as_string(hide_password=False)
    storage, _isolation, state_engine = _storage(Settings(database_url=url), lambda: moved)
    assert isinstance(storage, SqlStorage) and state_engine is not None
    try:
        key = StorageKey(bot_id=1, chat_id=RESIDENT, user_id=RESIDENT)
        await storage.set_data(key, {"exchange_key": "kept until answered"})
        await purge_retained(purge_app(engine, moved, storage))
        assert await storage.get_data(key) == {"exchange_key": "kept until answered"}
    finally:
        await state_engine.dispose()


# --- per-update markers -------------------------------------------------------------------


class ExpireLost:
    """A Redis client whose first EXPIRE never arrives (the connection dropped, or the
    replica was killed, between the two round trips of `RedisDedup.hit`)."""

    def __init__(self, redis: Any) -> None:
        self._redis = redis
        self.lost = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._redis, name)

    async def expire(self, *args: Any, **kwargs: Any) -> Any:
        if not self.lost:
            self.lost = True
            raise RedisConnectionError("connection lost")
        return await self._redis.expire(*args, **kwargs)


# Was (review): RedisDedup.hit sends INCR and EXPIRE in two round trips and sets the TTL only at
# count 1: a failure between them leaves a flood counter with no TTL for ever
async def test_a_flood_counter_expires_even_if_its_first_expire_was_lost(
    clean_redis: str,
) -> None:
    redis = Redis.from_url(clean_redis)
    try:
        store = RedisDedup(ExpireLost(redis))  # type: ignore[arg-type]
        with contextlib.suppress(RedisConnectionError):
            await store.hit("flood:42", 3600)
        assert await store.hit("flood:42", 3600) == 2  # the same window, counted on
        keys = [key async for key in redis.scan_iter("flood:42:*")]
        assert keys
        ttls = [await redis.ttl(key) for key in keys]
        assert all(ttl > 0 for ttl in ttls), ttls  # -1: kept for ever
    finally:
        await redis.aclose()
