"""Autopay benchmark: the production autopay job on PostgreSQL against the city sandbox.

One resident (demo-full, linked through the sandbox's OAuth login like the integration tests)
has K due autopays: FIXED donations of 100 ₽ to fund F-101 on card pm-full-4242, monthly on the
same day. Each scheduler calls what `bot.jobs.run_autopays` calls — `domain.autopaying.tick`
with the job's default AUTOPAY_CONCURRENCY, its own engine, units of work and city client —
until a call finds nothing due (one call normally does it all: a run goes on while work is
due). First one scheduler, then — on a fresh database and sandbox — two at once. By default
each scheduler is an OS process (`bench.scheduler_process`) and this process serves the
sandbox, like replicas calling the city platform; `mode="tasks"` runs them as asyncio tasks of
this process instead.

The ceiling is the city: before the job, in the same sandbox and with the same clients (as
many processes, each with AUTOPAY_CONCURRENCY calls in flight), K `create_payment` calls go
straight to the payment endpoint (keys `bench-endpoint-…`); the job's rate is shown against
that endpoint rate.

Then the job's own ceiling (`instant`): the same job, in this process, against a city that
answers at once without HTTP (`InstantCity`) — issue 14's «with a city that answers in under
1 ms it charges ≥ 1,000 autopays/s» — with the job's CPU an autopay.

The sandbox's ledger (`GET /sandbox/ledger`) is the judge: an (autopay, period) charged more than
once is a double charge; an autopay never charged is a missed one (endpoint charges are not
counted there).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
from asyncio.subprocess import PIPE
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import parse_qs, urlsplit

import aiohttp
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.common import NO_POSTGRES, Services, fresh_postgres, heading, table
from bot.config import Settings
from city.client import CityClient
from domain.accounts import AccountLevel, Resident, TokenSet
from domain.autopay import MOSCOW, Autopay, AutopayKind, Frequency, Schedule, next_due
from domain.autopaying import TICK_BATCH, tick
from domain.linking import pkce_challenge
from domain.payable import Payable
from domain.payments import Payment, PaymentStatus, Receipt
from domain.ports import City, CitySession
from domain.sessions import ResidentSession
from sandbox import SandboxServer
from storage.database import create_engine, create_sessionmaker
from storage.models import AutopayRow, AutopayRunRow
from storage.token_cipher import TokenCipher
from storage.uow import UnitOfWorkFactory

Mode = Literal["processes", "tasks"]
Work = Literal["job", "endpoint"]  # the autopay job, or create_payment straight at the sandbox
WHERE: dict[Mode, str] = {
    "processes": "OS processes (the sandbox in this one)",
    "tasks": "asyncio tasks in this process (with the sandbox)",
}
PROJECT = Path(__file__).resolve().parents[1]
SET_UP_AT = datetime(2026, 11, 24, 12, 0, tzinfo=MOSCOW)
DUE = datetime(2026, 11, 25, 10, 0, 1, tzinfo=MOSCOW)  # the charge moment has just passed
RESIDENT = 7
AMOUNT = 10_000  # kopecks: 100 ₽
REDIRECT = "http://127.0.0.1:9/oauth/callback"  # never contacted: the login stops at the redirect
VERIFIER = "v" * 64
RUN_KEY = re.compile(r"^ap-(\d+)-(.+)-(\d+)$")  # ap-<autopay id>-<period>-<attempt>
MAX_ERRORS = 10  # a scheduler gives up after this many failed ticks in a row
# The job's own default (bot/jobs.run_autopays passes Settings.autopay_concurrency).
CONCURRENCY: int = Settings.model_fields["autopay_concurrency"].default


@dataclass
class SchedulerStats:
    ticks: int = 0
    processed: int = 0
    errors: int = 0
    first_error: str | None = None


@dataclass
class AutopayResult:
    schedulers: int
    mode: Mode
    autopays: int
    seconds: float
    charges: int
    double_charged: int  # (autopay, period) pairs charged more than once
    extra_charges: int  # the charges beyond one per (autopay, period)
    missed: int  # autopays never charged
    still_due: int  # autopays still due (or leased) when the schedulers stopped
    runs: Counter[str] = field(default_factory=Counter)
    stats: list[SchedulerStats] = field(default_factory=list)
    endpoint_calls: int = 0  # create_payment calls made straight at the sandbox
    endpoint_seconds: float = 0.0
    endpoint_errors: int = 0

    @property
    def rate(self) -> float:
        return self.autopays / self.seconds if self.seconds else 0.0

    @property
    def endpoint_rate(self) -> float:
        """Charges per second the sandbox's payment endpoint answered, called straight."""
        return self.endpoint_calls / self.endpoint_seconds if self.endpoint_seconds else 0.0

    @property
    def ratio(self) -> float:
        """The job's rate as a share of the endpoint's."""
        return self.rate / self.endpoint_rate if self.endpoint_rate else 0.0


class InstantCity:
    """A city that answers every charge at once, «succeeded», in this process (no HTTP): what
    the autopay job costs by itself. Only `create_payment` is asked on the plain path."""

    def __init__(self) -> None:
        self.charges = 0

    async def create_payment(
        self, session: CitySession, key: str, *, payable: Payable, amount: int, **_: Any
    ) -> Payment:
        await asyncio.sleep(0)  # a turn of the loop, as an answer would take
        assert session.access_token  # read, as the client reads it for its header
        self.charges += 1
        now = datetime.now(UTC)
        receipt = Receipt(f"R-{self.charges}", now, amount, "4242", ())
        return Payment(
            f"instant-{self.charges}",
            PaymentStatus.SUCCEEDED,
            amount,
            (),
            now,
            receipt=receipt,
            idempotence_key=key,
        )


@dataclass
class InstantResult:
    autopays: int
    processed: int
    charges: int
    seconds: float
    cpu_seconds: float  # this process's, all of it the job's (the city answers in-process)

    @property
    def rate(self) -> float:
        return self.processed / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.cpu_seconds / self.processed if self.processed else 0.0


async def instant(url: str, count: int) -> InstantResult:
    """`count` due autopays charged by the production job (`tick`, the job's concurrency) in
    this process against `InstantCity`, on a fresh database."""
    await fresh_postgres(url)
    engine = create_engine(url)
    factory = UnitOfWorkFactory(
        create_sessionmaker(engine), TokenCipher([TokenCipher.generate_key()])
    )
    try:
        tokens = TokenSet("a" * 40, "r" * 40, datetime(2100, 1, 1, tzinfo=UTC))
        async with factory() as uow:
            await uow.residents.save(
                Resident(RESIDENT, RESIDENT, "C-100003", AccountLevel.FULL, "М.", tokens, SET_UP_AT)
            )
            await uow.commit()
        await add_autopays(factory, count)
        city = InstantCity()
        cpu, started = time.process_time(), time.perf_counter()
        processed = await tick(factory, cast(City, city), DUE, concurrency=CONCURRENCY)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        await engine.dispose()
    return InstantResult(count, processed, city.charges, seconds, cpu)


def city_client(sandbox_url: str) -> CityClient:
    return CityClient(
        sandbox_url,
        client_id="resident-bot",
        client_secret="sandbox-secret",
        redirect_uri=REDIRECT,
        attempt_timeout=10.0,  # a loaded machine must not turn into «city unavailable»
        deadline=20.0,
    )


async def login_code(city: CityClient, login: str) -> str:
    """Log in at the sandbox's page; the redirect to the (unreachable) callback has the code."""
    url = city.authorization_url(state="state-bench01", code_challenge=pkce_challenge(VERIFIER))
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as page:
            page.raise_for_status()
        query = parse_qs(urlsplit(url).query, keep_blank_values=True)
        form = {key: values[0] for key, values in query.items()} | {"login": login}
        async with http.post(url.split("?")[0], data=form, allow_redirects=False) as answer:
            location = answer.headers["Location"]
    return parse_qs(urlsplit(location).query)["code"][0]


async def link_resident(factory: UnitOfWorkFactory, city: CityClient) -> None:
    tokens = await city.exchange_code(
        code=await login_code(city, "demo-full"), code_verifier=VERIFIER
    )
    async with factory() as uow:
        await uow.residents.save(
            Resident(
                RESIDENT, RESIDENT, "C-100003", AccountLevel.FULL, "Мария В.", tokens, SET_UP_AT
            )
        )
        await uow.commit()


async def add_autopays(factory: UnitOfWorkFactory, count: int) -> None:
    """What `domain.autopaying.set_up` does for each, in one transaction instead of K."""
    schedule = Schedule(Frequency.MONTHLY, DUE.day)
    async with factory() as uow:
        for _ in range(count):
            autopay = Autopay(
                telegram_user_id=RESIDENT,
                kind=AutopayKind.FIXED,
                schedule=schedule,
                method_id="pm-full-4242",
                next_due_at=next_due(schedule, SET_UP_AT),
                amount=AMOUNT,
                fund_id="F-101",
                fund_name="Фонд",
            )
            await uow.autopays.add(autopay, SET_UP_AT)
        await uow.commit()


async def scheduler(factory: UnitOfWorkFactory, city: CityClient, now: datetime) -> SchedulerStats:
    """The production job's charging, called until a call finds nothing due (what is left is
    leased by another scheduler): `tick` with the job's concurrency, as `run_autopays` calls it."""
    stats = SchedulerStats()
    failures_in_a_row = 0
    while failures_in_a_row < MAX_ERRORS:
        try:
            processed = await tick(factory, city, now, concurrency=CONCURRENCY)
        except Exception as error:  # counted and reported; the loop goes on
            stats.errors += 1
            failures_in_a_row += 1
            stats.first_error = stats.first_error or f"{type(error).__name__}: {error}"[:200]
            continue
        failures_in_a_row = 0
        stats.ticks += 1
        stats.processed += processed
        if processed == 0:
            break
    return stats


async def endpoint(
    factory: UnitOfWorkFactory, city: CityClient, calls: int, tag: str
) -> SchedulerStats:
    """`calls` create_payment calls straight at the sandbox, CONCURRENCY in flight: the same
    charge as an autopay's (100 ₽ to F-101, card pm-full-4242, the resident's session), each
    with its own key. `processed` counts the answered ones."""
    stats = SchedulerStats(ticks=1)
    async with factory() as uow:
        resident = await uow.residents.get(RESIDENT)
        assert resident is not None, "the bench resident is linked first"
        session = ResidentSession(resident, city, uow)
        numbers = iter(range(calls))

        async def worker() -> None:
            for number in numbers:
                try:
                    await city.create_payment(
                        session,
                        f"bench-endpoint-{tag}-{number}",
                        payable=Payable.donation("F-101"),
                        amount=AMOUNT,
                        method_id="pm-full-4242",
                    )
                    stats.processed += 1
                except Exception as error:  # counted and reported
                    stats.errors += 1
                    stats.first_error = stats.first_error or f"{type(error).__name__}: {error}"

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return stats


async def work(
    what: Work, factory: UnitOfWorkFactory, city: CityClient, calls: int, tag: str
) -> SchedulerStats:
    if what == "endpoint":
        return await endpoint(factory, city, calls, tag)
    return await scheduler(factory, city, DUE)


async def in_tasks(
    url: str, sandbox_url: str, key: str, schedulers: int, what: Work = "job", calls: int = 0
) -> tuple[float, list[SchedulerStats]]:
    """Schedulers as asyncio tasks of this process (which also runs the sandbox); for the
    endpoint, `calls` split between them."""
    engines = [create_engine(url) for _ in range(schedulers)]
    cities = [city_client(sandbox_url) for _ in range(schedulers)]
    factories = [UnitOfWorkFactory(create_sessionmaker(e), TokenCipher([key])) for e in engines]
    shares = _split(calls, schedulers)
    try:
        started = time.perf_counter()
        stats = await asyncio.gather(
            *(
                work(what, f, c, share, str(n))
                for n, (f, c, share) in enumerate(zip(factories, cities, shares, strict=True))
            )
        )
        return time.perf_counter() - started, list(stats)
    finally:
        for city in cities:
            await city.close()
        for engine in engines:
            await engine.dispose()


async def in_processes(
    url: str, sandbox_url: str, key: str, schedulers: int, what: Work = "job", calls: int = 0
) -> tuple[float, list[SchedulerStats]]:
    """Schedulers as OS processes (`bench.scheduler_process`), started together once each has
    imported everything and said it is ready; the sandbox stays in this process."""
    environment = {**os.environ, "BENCH_CIPHER_KEY": key}
    command = [sys.executable, "-m", "bench.scheduler_process", url, sandbox_url, what]
    workers = [
        await asyncio.create_subprocess_exec(
            *command, str(share), str(n), stdin=PIPE, stdout=PIPE, env=environment, cwd=PROJECT
        )
        for n, share in enumerate(_split(calls, schedulers))
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None
            if (await worker.stdout.readline()).strip() != b"ready":
                raise RuntimeError("a scheduler process did not start")
        started = time.perf_counter()
        outputs = await asyncio.gather(*(worker.communicate(b"go\n") for worker in workers))
        seconds = time.perf_counter() - started
    finally:
        for worker in workers:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()
    return seconds, [SchedulerStats(**json.loads(out.splitlines()[-1])) for out, _ in outputs]


async def ledger(sandbox: SandboxServer) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as http:
        async with http.get(sandbox.url + "/sandbox/ledger") as answer:
            charges: list[dict[str, Any]] = (await answer.json())["charges"]
            return charges


async def database_figures(engine: AsyncEngine) -> tuple[list[int], int, Counter[str]]:
    """(autopay ids, autopays still due, runs by status)."""
    async with engine.connect() as connection:
        ids = list((await connection.execute(select(AutopayRow.id))).scalars())
        due = (
            await connection.execute(
                select(func.count()).select_from(AutopayRow).where(AutopayRow.next_due_at <= DUE)
            )
        ).scalar_one()
        runs = await connection.execute(
            select(AutopayRunRow.status, func.count()).group_by(AutopayRunRow.status)
        )
        return ids, due, Counter({str(status): count for status, count in runs.tuples()})


async def run_once(url: str, count: int, schedulers: int, mode: Mode) -> AutopayResult:
    await fresh_postgres(url)
    key = TokenCipher.generate_key()  # every scheduler must read the same stored tokens
    engine = create_engine(url)
    factory = UnitOfWorkFactory(create_sessionmaker(engine), TokenCipher([key]))
    try:
        async with SandboxServer() as sandbox:
            city = city_client(sandbox.url)
            try:
                await link_resident(factory, city)
                await add_autopays(factory, count)
            finally:
                await city.close()
            run = in_processes if mode == "processes" else in_tasks
            # The city's own ceiling first, in the same sandbox and with the same clients.
            endpoint_seconds, endpoint_stats = await run(
                url, sandbox.url, key, schedulers, "endpoint", count
            )
            seconds, stats = await run(url, sandbox.url, key, schedulers)
            charges = [
                charge
                for charge in await ledger(sandbox)
                if not charge["idempotence_key"].startswith("bench-endpoint-")
            ]
        ids, still_due, runs = await database_figures(engine)
    finally:
        await engine.dispose()

    per_period: Counter[tuple[int, str]] = Counter()
    for charge in charges:
        match = RUN_KEY.match(charge["idempotence_key"])
        if match is not None:
            per_period[(int(match.group(1)), match.group(2))] += 1
    charged = {autopay_id for autopay_id, _ in per_period}
    return AutopayResult(
        schedulers=schedulers,
        mode=mode,
        autopays=count,
        seconds=seconds,
        charges=len(charges),
        double_charged=sum(1 for n in per_period.values() if n > 1),
        extra_charges=sum(n - 1 for n in per_period.values() if n > 1),
        missed=sum(1 for autopay_id in ids if autopay_id not in charged),
        still_due=still_due,
        runs=runs,
        stats=list(stats),
        endpoint_calls=sum(s.processed for s in endpoint_stats),
        endpoint_seconds=endpoint_seconds,
        endpoint_errors=sum(s.errors for s in endpoint_stats),
    )


async def run(
    services: Services, count: int = 10_000, mode: Mode = "processes"
) -> tuple[list[AutopayResult], InstantResult | None]:
    heading("Autopay: the production job on PostgreSQL against the city sandbox")
    if not services.postgres:
        print(f"skipped: {NO_POSTGRES} (this benchmark needs PostgreSQL)")
        return [], None
    print(
        f"{count:,} due FIXED donations of 100 ₽ (one resident, card pm-full-4242, fund F-101); "
        f"claim batch {TICK_BATCH}, {CONCURRENCY} charges in flight per scheduler "
        f"(AUTOPAY_CONCURRENCY); schedulers as {WHERE[mode]}"
    )
    results = []
    for schedulers in (1, 2):
        print(f"… {schedulers} scheduler{'s' if schedulers > 1 else ''}", flush=True)
        results.append(await run_once(services.postgres, count, schedulers, mode))
    report(results)
    print(f"… 1 scheduler, a city that answers at once ({count:,} autopays, this process)")
    alone = await instant(services.postgres, count)
    print(
        f"job alone: {alone.rate:,.0f} autopays/s, CPU {alone.cpu_ms:.2f} ms an autopay; "
        f"{alone.charges:,} charges for {alone.processed:,} processed (target ≥ 1,000/s)"
    )
    return results, alone


def report(results: list[AutopayResult]) -> None:
    print()
    columns = ["", *(f"{r.schedulers} scheduler{'s' if r.schedulers > 1 else ''}" for r in results)]
    statuses = sorted({status for r in results for status in r.runs})
    table(
        columns,
        [
            ["autopays due", *(r.autopays for r in results)],
            ["seconds", *(r.seconds for r in results)],
            ["autopays/s (job)", *(r.rate for r in results)],
            ["endpoint calls/s (create_payment straight)", *(r.endpoint_rate for r in results)],
            ["job / endpoint", *(f"{r.ratio:.0%}" for r in results)],
            [
                "endpoint calls (errors)",
                *(f"{r.endpoint_calls:,} ({r.endpoint_errors})" for r in results),
            ],
            ["charges in the ledger", *(r.charges for r in results)],
            ["double charges (autopay+period)", *(r.double_charged for r in results)],
            ["  extra charges", *(r.extra_charges for r in results)],
            ["missed (never charged)", *(r.missed for r in results)],
            ["still due at the end", *(r.still_due for r in results)],
            *([f"runs {status}", *(r.runs[status] for r in results)] for status in statuses),
            ["job calls per scheduler", *(_each(r, "ticks") for r in results)],
            ["processed per scheduler", *(_each(r, "processed") for r in results)],
            ["tick errors", *(sum(s.errors for s in r.stats) for r in results)],
        ],
    )
    for result in results:
        for number, stats in enumerate(result.stats, 1):
            if stats.first_error:
                print(
                    f"{result.schedulers} schedulers, #{number}, first error: {stats.first_error}"
                )


def _calls(result: AutopayResult) -> str:
    return f"{result.endpoint_calls:,} ({result.endpoint_errors})"


def _split(calls: int, parts: int) -> list[int]:
    """`calls` shared as evenly as can be between `parts`."""
    return [calls // parts + (n < calls % parts) for n in range(parts)]


def _each(result: AutopayResult, name: str) -> str:
    return " / ".join(f"{getattr(stats, name):,}" for stats in result.stats)
