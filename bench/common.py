"""What the benchmarks share: the services from the environment, a fresh PostgreSQL schema,
quiet logs and a small report printer."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from yarl import URL

from bot.logs import setup_logging
from storage.database import create_engine
from storage.migrate import upgrade

TEST_POSTGRES_URL = os.environ.get("TEST_DATABASE_URL", "")
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "")
NO_POSTGRES = "neither BENCH_DATABASE_URL nor TEST_DATABASE_URL is set"
BENCH_REDIS_DB = 14  # next to the tests' 15 (tests/services.py)


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
        tests_db = _redis_db(TEST_REDIS_URL)
        db = BENCH_REDIS_DB if tests_db != BENCH_REDIS_DB else BENCH_REDIS_DB - 1
        redis = str(URL(TEST_REDIS_URL).with_path(f"/{db}"))
    return Services(postgres, redis)


async def _sibling_database(test_url: str) -> str:
    """`<tests' database>_bench` on the same server, created when missing; the tests' own
    database if it cannot be created (it is then wiped like the tests do)."""
    url = make_url(test_url)
    name = f"{url.database}_bench"
    admin = create_engine(test_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            exists = await connection.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            )
            if not exists:
                await connection.execute(text(f'CREATE DATABASE "{name}"'))
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
