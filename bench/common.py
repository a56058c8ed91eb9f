"""What the benchmarks share: the services from the environment, a fresh PostgreSQL schema,
quiet logs and a small report printer."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import ResponseError
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from yarl import URL

from bot.logs import setup_logging
from storage.database import create_engine
from storage.migrate import upgrade
from tests.services import _CLAIM, DATABASE_COMMENT, OWNER_MARK, REDIS_DBS

TEST_POSTGRES_URL = os.environ.get("TEST_DATABASE_URL", "")
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "")
NO_POSTGRES = "neither BENCH_DATABASE_URL nor TEST_DATABASE_URL is set"


@dataclass(frozen=True)
class Services:
    """Where the benchmarks may drop and recreate everything: not the tests' own database and
    Redis database, which a test run going on at the same time would be wiping under us (and
    we under it). BENCH_DATABASE_URL / BENCH_REDIS_URL choose them explicitly."""

    postgres: str | None
    redis: str | None

    def describe(self) -> str:
        postgres = make_url(self.postgres).render_as_string() if self.postgres else None
        redis = str(URL(self.redis).with_password(None)) if self.redis else None
        return f"PostgreSQL: {postgres or 'not set'}; Redis: {redis or 'not set'}"


async def bench_services() -> Services:
    postgres = os.environ.get("BENCH_DATABASE_URL") or None
    if postgres is None and TEST_POSTGRES_URL:
        postgres = await _sibling_database(TEST_POSTGRES_URL)
    redis = os.environ.get("BENCH_REDIS_URL") or None
    if redis is None and TEST_REDIS_URL:
        redis = await _free_redis(TEST_REDIS_URL)
    return Services(postgres, redis)


async def _free_redis(test_url: str, dbs: Sequence[int] = REDIS_DBS) -> str | None:
    """On the tests' Redis server, the first database of `dbs` other than the tests' that is
    empty or holds the tests' mark (tests/services.py), now holding it; None (no Redis
    benchmarks) when each holds other data: the benchmarks flush it."""
    tests_db = _redis_db(test_url)
    for db in dbs:
        if db == tests_db:
            continue
        url = str(URL(test_url).with_path(f"/{db}"))
        client = Redis.from_url(url)
        try:
            if await client.eval(_CLAIM, 1, OWNER_MARK, "1"):  # type: ignore[misc]
                return url
        except ResponseError:  # no such database on this server
            continue
        finally:
            await client.aclose()
    print("note: no Redis database the benchmarks may flush (each holds other data)")
    return None


async def _sibling_database(test_url: str, name: str | None = None) -> str | None:
    """`name` (default `<tests' database>_bench`) on the same server, created when missing and
    marked as the tests' (tests/services.py); the tests' own database if it cannot be created
    (it is then wiped like the tests do); None (no PostgreSQL benchmarks) when one of that name
    exists without the mark."""
    url = make_url(test_url)
    name = name or f"{url.database}_bench"
    admin = create_engine(test_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            found = (
                await connection.execute(
                    text(
                        "SELECT coalesce(shobj_description(oid, 'pg_database'), '') "
                        "FROM pg_database WHERE datname = :name"
                    ),
                    {"name": name},
                )
            ).all()
            if not found:
                await connection.execute(text(f'CREATE DATABASE "{name}"'))
                comment = DATABASE_COMMENT.replace("'", "''")
                await connection.execute(text(f"COMMENT ON DATABASE \"{name}\" IS '{comment}'"))
            elif not found[0][0].startswith(OWNER_MARK):
                print(
                    f"note: database {name} exists without the tests' mark, so the benchmarks "
                    f"leave it alone (drop it, or set BENCH_DATABASE_URL)"
                )
                return None
    except DBAPIError as error:
        print(f"note: cannot create database {name} ({type(error.orig).__name__}); using {url}")
        return test_url
    finally:
        await admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def _redis_db(redis_url: str) -> int:
    path = URL(redis_url).path.strip("/")
    return int(path) if path.isdigit() else 0


def quiet_logs() -> None:
    """Only errors from the application: the report is the output."""
    setup_logging("ERROR")
    logging.getLogger().setLevel(logging.ERROR)  # libraries' warnings too (e.g. aiogram-dialog)


async def fresh_postgres(url: str) -> None:
    """An empty `public` schema with every migration applied (like tests' `fresh_engine`)."""
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("DROP SCHEMA public CASCADE"))
            await connection.execute(text("CREATE SCHEMA public"))
        await upgrade(engine)
    finally:
        await engine.dispose()


async def flush_redis(url: str) -> None:
    client = Redis.from_url(url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


def heading(title: str) -> None:
    print()
    print(title)
    print("=" * len(title))


def table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain table: the first column left-aligned, the figures right-aligned."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max(len(column), *(len(row[i]) for row in cells)) for i, column in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        first, *rest = values
        parts = [first.ljust(widths[0])]
        parts += [value.rjust(width) for value, width in zip(rest, widths[1:], strict=True)]
        return "  ".join(parts).rstrip()

    print(line(list(columns)))
    print(line(["-" * width for width in widths]))
    for row in cells:
        print(line(row))


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


# ------------------------------------------------------------------ what an update costs


@dataclass
class Costs:
    """What a measured period cost this process: CPU seconds (`time.process_time`, every
    thread: aiosqlite's too), the share of it in the in-process city sandbox's request
    handlers, and the database and Redis round trips the application made."""

    cpu: float = 0.0
    sandbox_cpu: float = 0.0
    sql: int = 0  # statements through the engine's cursors (`before_cursor_execute`)
    pings: int = 0  # pool pre-ping round trips (`Dialect.do_ping`)
    redis: int = 0  # commands (a pipeline's count one each)
    redis_trips: int = 0  # round trips (a pipeline is one)


class Meter:
    """Counts the costs of a period: `start()`, then `stop()` returns the `Costs` since.

    `watch_engine` hooks an engine's statements and pre-pings; `sandbox_middleware` goes on a
    sandbox app (before it starts) to time its handlers' CPU. Redis commands are counted for
    every redis-py asyncio client of this process (`count_redis`, a context manager patching
    the client classes): a benchmark's own Redis calls must happen outside `start()`/`stop()`.
    The database and Redis servers' own CPU is not in `cpu` (other processes)."""

    def __init__(self, clock: Callable[[], float] = time.process_time) -> None:
        self.costs = Costs()
        self.on = False
        self._clock = clock  # CPU seconds; a test gives its own
        self._cpu_started = 0.0

    def start(self) -> None:
        self.costs = Costs()
        self.on = True
        self._cpu_started = self._clock()

    def stop(self) -> Costs:
        self.costs.cpu = self._clock() - self._cpu_started
        self.on = False
        return self.costs

    def watch_engine(self, engine: AsyncEngine) -> None:
        def statement(*_args: Any) -> None:
            if self.on:
                self.costs.sql += 1

        event.listen(engine.sync_engine, "before_cursor_execute", statement)
        dialect = engine.sync_engine.dialect
        ping = dialect.do_ping

        def counted_ping(dbapi_connection: Any) -> bool:
            if self.on:
                self.costs.pings += 1
            return ping(dbapi_connection)

        dialect.do_ping = counted_ping  # type: ignore[method-assign]

    @property
    def sandbox_middleware(self) -> Any:
        @web.middleware
        async def timed(request: web.Request, handler: Handler) -> web.StreamResponse:
            if not self.on:
                return await handler(request)
            spent = [0.0]
            try:
                response: web.StreamResponse = await CpuTimed(handler(request), spent, self._clock)
                return response
            finally:
                self.costs.sandbox_cpu += spent[0]

        return timed

    @contextmanager
    def count_redis(self) -> Iterator[None]:
        """Patches redis-py's asyncio `Redis.execute_command` and `Pipeline.execute` (the
        commands a pipeline queues go through neither) while the block runs."""
        execute_command = Redis.execute_command
        pipeline_execute = Pipeline.execute
        meter = self

        async def counted_command(self: Redis, *args: Any, **options: Any) -> Any:
            if meter.on and not isinstance(self, Pipeline):
                meter.costs.redis += 1
                meter.costs.redis_trips += 1
            return await execute_command(self, *args, **options)  # type: ignore[no-untyped-call]

        async def counted_execute(self: Pipeline, raise_on_error: bool = True) -> Any:
            if meter.on and self.command_stack:
                meter.costs.redis += len(self.command_stack)
                meter.costs.redis_trips += 1
            return await pipeline_execute(self, raise_on_error)

        Redis.execute_command = counted_command  # type: ignore[method-assign]
        Pipeline.execute = counted_execute  # type: ignore[method-assign]
        try:
            yield
        finally:
            Redis.execute_command = execute_command  # type: ignore[method-assign]
            Pipeline.execute = pipeline_execute  # type: ignore[method-assign]


class CpuTimed:
    """Awaits an awaitable, adding to `spent[0]` the `clock` time (CPU seconds) of its own steps
    only: a plain process_time() difference around `await` would also take in whatever other
    tasks ran while it waited. (No library times a coroutine's steps; hence by hand.)"""

    def __init__(
        self,
        coroutine: Awaitable[Any],
        spent: list[float],
        clock: Callable[[], float] = time.process_time,
    ) -> None:
        self._coroutine = coroutine
        self._spent = spent
        self._clock = clock

    def __await__(self) -> Generator[Any, Any, Any]:
        steps = self._coroutine.__await__()
        value: Any = None
        error: BaseException | None = None
        while True:
            started = self._clock()
            try:
                yielded = steps.throw(error) if error is not None else steps.send(value)
            except StopIteration as done:
                return done.value
            finally:
                self._spent[0] += self._clock() - started
            try:
                value, error = (yield yielded), None
            except BaseException as thrown:  # cancellation included: handed on to the step
                value, error = None, thrown


def rss_mb() -> float:
    """This process's resident memory now (VmRSS of /proc/self/status), in MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def verdict(met: bool) -> str:
    return "met" if met else "NOT MET"
