"""Background work costs what the due work costs, not what the tables hold (issue 14, point 3):
every open report is polled in turn (the least recently checked first), and the reminder step
writes each reminder once, in one statement per batch. On SQLite and PostgreSQL, against the
sandbox city."""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.jobs import DRAFTS_KEPT
from city.client import CityClient
from domain.autopay import MOSCOW, Autopay, AutopayKind, Frequency, Schedule
from domain.autopaying import send_reminders
from domain.errors import CityUnavailable
from domain.ports import TrackedReport
from domain.reporting import POLL_BATCH, poll_statuses
from domain.reports import Draft, ReportUpdate
from sandbox import SandboxServer
from storage.database import create_sessionmaker
from storage.models import NotificationRow, TrackedReportRow
from storage.token_cipher import TokenCipher
from storage.uow import UnitOfWorkFactory
from tests.contract.test_city_client import REDIRECT

START = datetime(2026, 11, 24, 12, 0, tzinfo=MOSCOW)
OPEN_REPORTS = 450


@pytest.fixture
async def city() -> AsyncIterator[tuple[SandboxServer, CityClient]]:
    async with SandboxServer() as sandbox:
        client = CityClient(
            sandbox.url,
            client_id="resident-bot",
            client_secret="sandbox-secret",
            redirect_uri=REDIRECT,
        )
        yield sandbox, client
        await client.close()


@pytest.fixture
def factory(engine: AsyncEngine) -> UnitOfWorkFactory:
    return UnitOfWorkFactory(create_sessionmaker(engine), TokenCipher([TokenCipher.generate_key()]))


class CountingCity:
    """The real city client, with every status question counted (and, if told, the city
    going down after `fail_after` questions)."""

    def __init__(self, city: CityClient, fail_after: int | None = None) -> None:
        self._city = city
        self.asked: list[str] = []  # in the order asked
        self.fail_after = fail_after

    def __getattr__(self, name: str) -> Any:
        return getattr(self._city, name)

    async def report_updates(self, report_id: str) -> list[ReportUpdate]:
        if self.fail_after is not None and len(self.asked) >= self.fail_after:
            raise CityUnavailable()
        self.asked.append(report_id)
        return await self._city.report_updates(report_id)


async def follow(sandbox: SandboxServer, factory: UnitOfWorkFactory, count: int) -> Counter[str]:
    """`count` followed reports: the sandbox's reports, each followed by a block of residents
    (in the order followed: so «the oldest `POLL_BATCH` again» asks other reports than «each
    once»). Returns how many residents follow each report."""
    async with aiohttp.ClientSession() as http:
        async with http.get(sandbox.url + "/open311/v2/requests.json") as answer:
            ids = [found["service_request_id"] for found in await answer.json()]
    assert ids
    followed: Counter[str] = Counter()
    async with factory() as uow:
        for n in range(count):
            report_id = ids[n * len(ids) // count]
            await uow.tracked_reports.track(TrackedReport(1000 + n, report_id), START)
            followed[report_id] += 1
        await uow.commit()
    return followed


async def test_every_open_report_is_asked_about_once_a_cycle(
    city: tuple[SandboxServer, CityClient], factory: UnitOfWorkFactory
) -> None:
    sandbox, client = city
    followed = await follow(sandbox, factory, OPEN_REPORTS)
    counting = CountingCity(client)
    ticks = math.ceil(OPEN_REPORTS / POLL_BATCH)
    for tick in range(ticks):
        async with factory() as uow:
            await poll_statuses(uow, counting, START + timedelta(minutes=1 + tick))  # type: ignore[arg-type]
    # In the cycle's first N questions each followed report is asked about exactly once (not
    # the oldest POLL_BATCH again and again); the rest of the last tick starts the next cycle.
    assert len(counting.asked) == ticks * POLL_BATCH
    assert Counter(counting.asked[:OPEN_REPORTS]) == followed
    async with factory() as uow:
        session = uow.session
        assert session is not None
        checked = (await session.execute(select(TrackedReportRow.checked_at))).scalars().all()
    assert all(moment > START for moment in checked)


async def test_reports_not_asked_when_the_city_fell_keep_their_place(
    city: tuple[SandboxServer, CityClient], factory: UnitOfWorkFactory
) -> None:
    sandbox, client = city
    followed = await follow(sandbox, factory, OPEN_REPORTS)
    counting = CountingCity(client, fail_after=50)
    async with factory() as uow:
        with pytest.raises(CityUnavailable):
            await poll_statuses(uow, counting, START + timedelta(minutes=1))  # type: ignore[arg-type]
    counting.fail_after = None
    for tick in range(math.ceil((OPEN_REPORTS - 50) / POLL_BATCH)):
        async with factory() as uow:
            await poll_statuses(uow, counting, START + timedelta(minutes=2 + tick))  # type: ignore[arg-type]
    assert Counter(counting.asked) == followed  # 50, then the 150 given back first, then the rest


@pytest.mark.parametrize("engine", ["postgres"], indirect=True)  # SQLite: one process, one poller
async def test_two_pollers_at_once_take_different_reports(
    engine: AsyncEngine, city: tuple[SandboxServer, CityClient], factory: UnitOfWorkFactory
) -> None:
    assert engine.dialect.name == "postgresql"
    sandbox, client = city
    await follow(sandbox, factory, OPEN_REPORTS)
    counting = CountingCity(client)
    moment = START + timedelta(minutes=1)

    async def poll() -> None:
        async with factory() as uow:
            await poll_statuses(uow, counting, moment)  # type: ignore[arg-type]

    await asyncio.gather(poll(), poll())
    assert len(counting.asked) == 2 * POLL_BATCH
    async with factory() as uow:
        session = uow.session
        assert session is not None
        stamped = await session.scalar(
            select(func.count()).where(TrackedReportRow.checked_at == moment)
        )
    assert stamped == 2 * POLL_BATCH  # no report taken by both


async def test_the_poll_order_is_served_by_the_partial_index(
    engine: AsyncEngine, factory: UnitOfWorkFactory
) -> None:
    async with factory() as uow:
        for n in range(50):
            await uow.tracked_reports.track(TrackedReport(n, f"R-{n}"), START)
        await uow.commit()
    with statements(engine) as seen:
        async with factory() as uow:
            await uow.tracked_reports.claim_for_poll(START, 10)
            await uow.rollback()
    query, parameters = next(
        (sql, params)
        for sql, params in seen
        if sql.lstrip().upper().startswith("SELECT") and "tracked_reports" in sql
    )
    async with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            await connection.exec_driver_sql("SET enable_seqscan = off")
            prefix = "EXPLAIN "
        else:
            prefix = "EXPLAIN QUERY PLAN "
        plan = (await connection.exec_driver_sql(prefix + query, parameters)).all()
    assert "ix_tracked_reports_open_checked" in " ".join(str(row) for row in plan), plan


@contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


def monthly(day: int, due: datetime, **extra: Any) -> Autopay:
    return Autopay(
        telegram_user_id=7,
        kind=AutopayKind.FIXED,
        schedule=Schedule(Frequency.MONTHLY, day),
        method_id="pm-full-4242",
        next_due_at=due,
        amount=10_000,
        fund_id="F-101",
        fund_name="Фонд",
        **extra,
    )


def inserts(seen: list[tuple[str, Any]]) -> list[str]:
    return [sql for sql, _ in seen if sql.lstrip().upper().startswith("INSERT")]


async def reminders(factory: UnitOfWorkFactory) -> list[str]:
    async with factory() as uow:
        session = uow.session
        assert session is not None
        keys = await session.scalars(
            select(NotificationRow.dedupe_key).where(NotificationRow.kind == "autopay_reminder")
        )
        return sorted(keys)


async def test_reminders_are_written_once(engine: AsyncEngine, factory: UnitOfWorkFactory) -> None:
    tomorrow = datetime(2026, 11, 25, 9, 0, tzinfo=MOSCOW)
    async with factory() as uow:
        due = [monthly(25, tomorrow) for _ in range(5)]
        for autopay in due:
            await uow.autopays.add(autopay, START)
        skipped = monthly(25, tomorrow, skip_period="2026-11")
        later = monthly(27, tomorrow + timedelta(days=2))
        for autopay in (skipped, later):
            await uow.autopays.add(autopay, START)
        await uow.commit()

    with statements(engine) as first:
        async with factory() as uow:
            assert await send_reminders(uow, START) == 5
    assert len(inserts(first)) == 1  # one statement for the batch, not one per autopay
    expected = sorted(f"autopay:{autopay.id}:2026-11:reminder" for autopay in due)
    assert await reminders(factory) == expected

    with statements(engine) as second:  # the next tick, the same day
        async with factory() as uow:
            assert await send_reminders(uow, START + timedelta(seconds=30)) == 0
    assert inserts(second) == []
    assert not [sql for sql, _ in second if sql.lstrip().upper().startswith("UPDATE")]
    assert await reminders(factory) == expected  # still one each

    # A month on: the new period gets its reminder (once).
    async with factory() as uow:
        moved = await uow.autopays.get(due[0].id or 0)
        assert moved is not None
        moved.next_due_at = datetime(2026, 12, 25, 9, 0, tzinfo=MOSCOW)
        await uow.autopays.save(moved)
        await uow.commit()
    for seconds in (0, 30):
        async with factory() as uow:
            written = await send_reminders(
                uow, datetime(2026, 12, 24, 12, 0, tzinfo=MOSCOW) + timedelta(seconds=seconds)
            )
        assert written == (1 if seconds == 0 else 0)
    assert await reminders(factory) == sorted([*expected, f"autopay:{due[0].id}:2026-12:reminder"])


async def test_abandoned_report_drafts_are_purged(factory: UnitOfWorkFactory) -> None:
    """Retention (bot/jobs.py::purge_retained): a draft not written for DRAFTS_KEPT goes; one
    written since stays."""
    async with factory() as uow:
        await uow.drafts.save(1, Draft(description="old"), START - DRAFTS_KEPT - timedelta(hours=1))
        await uow.drafts.save(2, Draft(description="new"), START - DRAFTS_KEPT + timedelta(hours=1))
        await uow.commit()
    async with factory() as uow:
        assert await uow.drafts.purge_stale(START - DRAFTS_KEPT) == 1
        await uow.commit()
    async with factory() as uow:
        assert await uow.drafts.get(1) is None
        kept = await uow.drafts.get(2)
        assert kept is not None and kept.description == "new"
