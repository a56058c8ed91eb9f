"""What the benchmarks share: the services from the environment, a fresh PostgreSQL schema,
quiet logs and a small report printer."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import ResponseError
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
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


async def _sibling_database(test_url: str) -> str | None:
    """`<tests' database>_bench` on the same server, created when missing and marked as the
    tests' (tests/services.py); the tests' own database if it cannot be created (it is then
    wiped like the tests do); None (no PostgreSQL benchmarks) when one of that name exists
    without the mark."""
    url = make_url(test_url)
    name = f"{url.database}_bench"
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
