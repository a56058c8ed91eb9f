"""Delivery benchmark: the outbox sender (`bot.jobs.deliver_notifications`) against a fake Bot API
that enforces Telegram's limits (30 messages in any rolling second, 1 a second per chat) and
injects 500s and 429s.

N notifications for M chats are written with `add_once`, then the sender is called in a tight
loop, on the real clock (shifted to noon in Moscow, outside quiet hours), until every row is
sent or dead-lettered (or `Plan.deadline` passes). The real application is used:
`create_application` with a real aiogram `Bot` whose session points at the fake server; SQLite
with the in-memory limiter and, when PostgreSQL / Redis are available (see `bench.common`),
PostgreSQL with the Redis limiter — both at once by default, each bot with its own fake server.
"""

from __future__ import annotations

import asyncio
import math
import re
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import func, select

from bench.common import NO_POSTGRES, Services, flush_redis, fresh_postgres, heading, table
from bench.fake_telegram import BENCH_TOKEN, FakeBotApi, Faults, Refusals
from bot.app import Application, Clock, create_application
from bot.config import Settings
from bot.jobs import deliver_notifications
from domain.autopay import MOSCOW
from domain.ports import Notification
from storage.models import NotificationRow
from storage.token_cipher import TokenCipher

Order = Literal["interleaved", "grouped"]
FIRST_CHAT = 500_000_001
TAG = re.compile(r"bench-(\d+)")
IDLE_PAUSE = 0.05  # seconds between calls while every open row waits for its retry time
LIMIT = 30
MAX_SECONDS = 200  # of sending per backend, unless asked otherwise: the run must end by itself


@dataclass(frozen=True)
class Backend:
    name: str
    database_url: str | None  # None: SQLite in a temporary folder
    redis_url: str | None


@dataclass(frozen=True)
class Plan:
    count: int = 3_000
    chats: int = 1_000
    order: Order = "interleaved"
    faults: Faults = field(default_factory=Faults)
    give_up_after: float | None = None  # seconds of sending; None: min(60 + count / 15, 200)

    @property
    def deadline(self) -> float:
        if self.give_up_after is not None:
            return self.give_up_after
        return min(60 + 2 * self.count / LIMIT, MAX_SECONDS)

    def chat_of(self, index: int) -> int:
        if self.order == "interleaved":  # every chat's first message, then every second, ...
            return FIRST_CHAT + index % self.chats
        per_chat = math.ceil(self.count / self.chats)  # a chat's messages one after another
        return FIRST_CHAT + index // per_chat


@dataclass
class DeliveryResult:
    backend: str
    limiter: str
    written: int
    chats: int
    seconds: float
    delivered: int  # what the sender reported as sent
    accepted: int  # what the fake Bot API accepted
    refusals: Refusals
    never_accepted: int  # written, never accepted by the API
    silently_lost: int  # never accepted, yet marked sent
    duplicated: int  # accepted more than once (the extra copies)
    misdirected: int  # accepted in another chat than the notification's
    dead_lettered: int  # rows the sender gave up on (status failed)
    unfinished: int  # rows still pending or sending when the time ran out
    steady: float  # messages/s between the 5th and the 95th percentile of arrivals
    peak: int  # the most accepted within a rolling second (server-side)
    calls: int  # deliver_notifications calls
    latency_ms: float  # how long every Bot API answer took
    faults: str  # the injected faults, e.g. «2% HTTP 500, 1% HTTP 429»; "" when none

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds if self.seconds else 0.0


def backends(services: Services) -> list[Backend]:
    chosen = [Backend("SQLite", None, None)]
    if services.postgres:
        name = "PostgreSQL + Redis" if services.redis else "PostgreSQL"
        chosen.append(Backend(name, services.postgres, services.redis))
    return chosen


def noon_clock() -> Clock:
    """The real clock, moved so that it is 12:00 in Moscow now: quiet hours never apply."""
    noon = datetime.now(MOSCOW).replace(hour=12, minute=0, second=0, microsecond=0)
    offset = noon - datetime.now(UTC)
    return lambda: datetime.now(UTC) + offset


async def write_outbox(app: Application, plan: Plan, clock: Clock) -> None:
    now = clock()
    async with app.uow_factory() as uow:
        for index in range(plan.count):
            await uow.notifications.add_once(
                Notification(
                    telegram_user_id=plan.chat_of(index),
                    kind="autopay_paid",
                    dedupe_key=f"bench:{index}",
                    data={
                        "kind": "fixed",
                        "amount": 10_000,
                        "amount_charged": 10_000,
                        "fund_name": "Бенчмарк",
                        "receipt": f"bench-{index}",  # makes every text unique
                    },
                ),
                now,
            )
        await uow.commit()


async def status_counts(app: Application) -> Counter[str]:
    async with app.engine.connect() as connection:
        rows = await connection.execute(
            select(NotificationRow.status, func.count()).group_by(NotificationRow.status)
        )
        return Counter({status: count for status, count in rows.tuples()})


async def statuses(app: Application) -> dict[int, str]:
    """Each notification's status, by its index in the outbox."""
    async with app.engine.connect() as connection:
        rows = await connection.execute(select(NotificationRow.dedupe_key, NotificationRow.status))
        return {int(key.removeprefix("bench:")): status for key, status in rows.tuples()}


async def drain(app: Application, clock: Clock, give_up_after: float) -> tuple[int, int, bool]:
    """Call the sender until nothing is pending or sending; (delivered, calls, timed out)."""
    delivered = calls = 0
    started = time.perf_counter()
    while True:
        sent = await deliver_notifications(app, clock, app.limiter)
        delivered, calls = delivered + sent, calls + 1
        counts = await status_counts(app)
        if counts["pending"] + counts["sending"] == 0:
            return delivered, calls, False
        if time.perf_counter() - started > give_up_after:
            return delivered, calls, True
        if sent == 0:
            await asyncio.sleep(IDLE_PAUSE)


@dataclass
class Prepared:
    """A backend ready to drain: its fake Bot API, application and temporary folder."""

    backend: Backend
    telegram: FakeBotApi
    app: Application
    clock: Clock
    folder: tempfile.TemporaryDirectory[str]


async def prepare(backend: Backend, plan: Plan) -> Prepared:
    if backend.database_url:
        await fresh_postgres(backend.database_url)
    if backend.redis_url:
        await flush_redis(backend.redis_url)
    folder = tempfile.TemporaryDirectory(prefix="bench-delivery-")
    data_dir = Path(folder.name)
    telegram = FakeBotApi(faults=plan.faults)
    await telegram.start()
    clock = noon_clock()
    values: dict[str, Any] = {
        "database_url": backend.database_url or f"sqlite+aiosqlite:///{data_dir / 'bot.db'}",
        "redis_url": backend.redis_url,
        "web_port": 0,
        "sandbox_port": 0,
        "data_dir": data_dir,
        "token_encryption_keys": TokenCipher.generate_key(),
        "bot_token": BENCH_TOKEN,
        "bot_api_url": telegram.url,
        "_env_file": None,
    }
    settings = Settings(**values)
    app = await create_application(settings, clock=clock)
    await write_outbox(app, plan, clock)
    return Prepared(backend, telegram, app, clock, folder)


async def measure(prepared: Prepared, plan: Plan) -> DeliveryResult:
    app, telegram = prepared.app, prepared.telegram
    try:
        started = time.perf_counter()
        delivered, calls, _ = await drain(app, prepared.clock, plan.deadline)
        seconds = time.perf_counter() - started
        status_of = await statuses(app)
    finally:
        await app.stop()
        await telegram.stop()
        prepared.folder.cleanup()

    copies: Counter[int] = Counter()
    misdirected = 0
    for message in telegram.accepted:
        match = TAG.search(message.text)
        if match is None:
            continue
        index = int(match.group(1))
        copies[index] += 1
        misdirected += message.chat_id != plan.chat_of(index)
    never = Counter(status_of[index] for index in range(plan.count) if copies[index] == 0)
    return DeliveryResult(
        backend=prepared.backend.name,
        limiter=type(app.limiter).__name__,
        written=plan.count,
        chats=plan.chats,
        seconds=seconds,
        delivered=delivered,
        accepted=len(telegram.accepted),
        refusals=telegram.refusals,
        never_accepted=never.total(),
        silently_lost=never["sent"],
        duplicated=sum(n - 1 for n in copies.values() if n > 1),
        misdirected=misdirected,
        dead_lettered=sum(1 for status in status_of.values() if status == "failed"),
        unfinished=never["pending"] + never["sending"],
        steady=telegram.steady_rate(),
        peak=telegram.peak_per_second(),
        calls=calls,
        latency_ms=plan.faults.latency * 1000,
        faults=plan.faults.describe(),
    )


async def run(services: Services, plan: Plan, sequential: bool = False) -> list[DeliveryResult]:
    """Every backend; at once (separate bots, separate fake servers) unless `sequential`:
    each needs count / 30 seconds at best, and one after another they would take too long."""
    chosen = backends(services)
    faults = plan.faults
    heading("Delivery: outbox → fake Bot API (limits 30/s bot-wide, 1/s per chat)")
    print(
        f"{plan.count:,} notifications for {plan.chats:,} chats ({plan.order}); Bot API answers "
        f"after {faults.latency * 1000:g} ms; injected: {faults.describe() or 'nothing'}; "
        f"real clock; gives up after {plan.deadline:.0f} s"
    )
    if not services.postgres:
        print(f"PostgreSQL skipped: {NO_POSTGRES}")
    results = []
    if sequential or len(chosen) == 1:
        for backend in chosen:
            print(f"… {backend.name}", flush=True)
            results.append(await measure(await prepare(backend, plan), plan))
    else:
        print(f"… {' and '.join(b.name for b in chosen)} at once", flush=True)
        ready = [await prepare(backend, plan) for backend in chosen]
        results = list(await asyncio.gather(*(measure(p, plan) for p in ready)))
    report(results)
    return results


def report(results: list[DeliveryResult]) -> None:
    print()
    table(
        ["", *(r.backend for r in results)],
        [
            ["limiter", *(r.limiter for r in results)],
            ["written", *(r.written for r in results)],
            ["delivered (accepted by the API)", *(r.accepted for r in results)],
            ["sender reported sent", *(r.delivered for r in results)],
            ["seconds", *(r.seconds for r in results)],
            [f"messages/s (limit {LIMIT})", *(r.rate for r in results)],
            ["  while the outbox was full (5–95%)", *(r.steady for r in results)],
            ["busiest rolling second", *(r.peak for r in results)],
            ["429 received", *(r.refusals.too_many for r in results)],
            ["  over the bot-wide limit", *(r.refusals.global_limit for r in results)],
            ["  over the per-chat limit", *(r.refusals.chat_limit for r in results)],
            ["  injected", *(r.refusals.injected_429 for r in results)],
            ["500 received (injected)", *(r.refusals.injected_500 for r in results)],
            ["not delivered (never accepted)", *(r.never_accepted for r in results)],
            ["  dead-lettered (failed)", *(r.dead_lettered for r in results)],
            ["  still queued (time ran out)", *(r.unfinished for r in results)],
            ["  silently lost (marked sent)", *(r.silently_lost for r in results)],
            ["duplicated (accepted twice+)", *(r.duplicated for r in results)],
            ["misdirected (wrong chat)", *(r.misdirected for r in results)],
            ["sender calls", *(r.calls for r in results)],
        ],
    )
