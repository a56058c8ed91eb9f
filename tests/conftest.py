"""Shared fixtures: databases (SQLite always; PostgreSQL and Redis when their URLs are set).

With REQUIRE_SERVICES=1 (CI) a missing TEST_DATABASE_URL or TEST_REDIS_URL fails the tests that
need it instead of skipping them. `make test` gives databases the tests own (tests/services.py);
an explicit TEST_DATABASE_URL / TEST_REDIS_URL is wiped as given.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

import bot  # noqa: F401  # first, as in production: aiogram's types built on first use
from storage.database import create_engine
from storage.migrate import upgrade
from tests.services import OWNER_MARK, Refused, hold_exclusively


def _worker_databases() -> list[str]:
    """Under pytest-xdist, worker gwK (K ≥ 1) takes TEST_DATABASE_URL_GWK and
    TEST_REDIS_URL_GWK (tests/services.py made them) as its TEST_DATABASE_URL / TEST_REDIS_URL,
    in os.environ too, so what the tests start (the bot, a nested pytest) uses them; in a worker
    the _GW names are then removed, so a nested run does not map again. Answers every URL of
    the run, the other workers' too (the controller locks them all; a test looking for a
    database nobody uses must skip them)."""
    prefixes = ("TEST_DATABASE_URL_GW", "TEST_REDIS_URL_GW")
    extra = {name: value for name, value in os.environ.items() if name.startswith(prefixes)}
    run = [os.environ.get("TEST_DATABASE_URL", ""), os.environ.get("TEST_REDIS_URL", "")]
    run += [value for _, value in sorted(extra.items())]
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    index = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
    for setting in ("TEST_DATABASE_URL", "TEST_REDIS_URL"):
        mine = extra.get(f"{setting}_GW{index}") if index else None
        if mine:
            os.environ[setting] = mine
    if worker:
        for name in extra:
            del os.environ[name]
    return [url for url in run if url]


RUN_URLS = _worker_databases()  # this run's databases, every worker's
REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"
POSTGRES_URL = os.environ.get("TEST_DATABASE_URL", "")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "")
_HELD: list[Any] = []  # the locks of this run's databases, open until the process ends


def pytest_sessionstart(session: pytest.Session) -> None:
    """One run at a time on a database: a second run given the same one stops at once, exit
    code 2, before wiping anything (tests/services.py, hold_exclusively). Under pytest-xdist
    the controller holds the locks of every worker's databases, the workers none."""
    if hasattr(session.config, "workerinput"):  # an xdist worker: its controller holds them
        return
    held = [("TEST_DATABASE_URL", POSTGRES_URL), ("TEST_REDIS_URL", REDIS_URL)]
    workers = getattr(session.config.option, "numprocesses", None)
    shared = [
        f"{setting}_GW{worker}"
        for worker in range(1, workers if isinstance(workers, int) else 0)
        for setting, url in held
        if url and not os.environ.get(f"{setting}_GW{worker}")
    ]
    if shared:  # two workers would wipe each other's database mid-run
        pytest.exit(
            f"pytest -n {workers} needs databases of its own for each worker ({', '.join(shared)} "
            "unset): run `make test`, which makes them, or run without -n",
            returncode=2,
        )
    if workers:
        held += [
            ("a worker's database", url) for url in RUN_URLS if url not in (POSTGRES_URL, REDIS_URL)
        ]
    try:
        for setting, url in held:
            if url:
                _HELD.append(hold_exclusively(setting, url))
    except Refused as refused:
        pytest.exit(str(refused), returncode=2)


def need_service(url: str, name: str) -> str:
    if url:
        return url
    message = f"{name} is not set"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message}, and REQUIRE_SERVICES=1 demands it")
    pytest.skip(message)


async def fresh_engine(backend: str, tmp_path: Path) -> AsyncEngine:
    """An engine on an empty database with every migration applied.

    Migrating from nothing costs 0.2–0.5 s, paid by hundreds of tests: SQLite copies a file
    migrated once per process, PostgreSQL empties its tables (TRUNCATE … RESTART IDENTITY)
    when the schema is exactly what the migrations made — compared by a fingerprint of
    columns, indexes and constraints — and is dropped and migrated again otherwise (a test
    that migrated down or altered a table leaves another fingerprint)."""
    if backend == "sqlite":
        path = tmp_path / "test.sqlite3"
        await migrated_sqlite_file(path)
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
    else:
        engine = create_engine(need_service(POSTGRES_URL, "TEST_DATABASE_URL"))
        if not await _emptied_at_head(engine):
            async with engine.begin() as connection:
                await connection.execute(text("DROP SCHEMA public CASCADE"))
                await connection.execute(text("CREATE SCHEMA public"))
            await upgrade(engine)
            async with engine.connect() as connection:
                _PG_FINGERPRINT[:] = [await _fingerprint(connection)]
    return engine


_SQLITE_TEMPLATE: list[Path] = []  # this process's migrated SQLite file, made on first use
_PG_FINGERPRINT: list[Any] = []  # the schema right after a full migration, on first use

_FINGERPRINT_SQL = """
SELECT 'c', table_name, column_name || ' ' || data_type || ' ' || is_nullable || ' '
       || coalesce(column_default, '')
  FROM information_schema.columns WHERE table_schema = 'public'
UNION ALL SELECT 'i', tablename, indexdef FROM pg_indexes WHERE schemaname = 'public'
UNION ALL SELECT 'k', conrelid::regclass::text, conname || ' ' || pg_get_constraintdef(oid)
  FROM pg_constraint WHERE connamespace = 'public'::regnamespace
UNION ALL SELECT 'v', 'alembic_version', version_num FROM alembic_version
ORDER BY 1, 2, 3
"""


async def migrated_sqlite_file(path: Path) -> None:
    """Puts an SQLite database with every migration applied at `path` (a copy of one made
    once per process; the template is remade when the migration files change)."""
    import shutil
    import tempfile

    from storage.migrate import head_revision

    head = head_revision()
    if not _SQLITE_TEMPLATE or _SQLITE_TEMPLATE[0].stem != head:
        template = Path(tempfile.mkdtemp(prefix="resident-bot-template-")) / f"{head}.sqlite3"
        engine = create_engine(f"sqlite+aiosqlite:///{template}")
        await upgrade(engine)
        await engine.dispose()
        _SQLITE_TEMPLATE[:] = [template]
    shutil.copyfile(_SQLITE_TEMPLATE[0], path)


async def _fingerprint(connection: Any) -> list[tuple[str, ...]]:
    return [tuple(row) for row in (await connection.execute(text(_FINGERPRINT_SQL))).all()]


async def _emptied_at_head(engine: AsyncEngine) -> bool:
    """Empties every table but alembic_version when the schema is the migrated one."""
    if not _PG_FINGERPRINT:
        return False
    from sqlalchemy.exc import DBAPIError

    try:
        async with engine.begin() as connection:
            if await _fingerprint(connection) != _PG_FINGERPRINT[0]:
                return False
            tables = sorted(
                {row[1] for row in _PG_FINGERPRINT[0] if row[0] == "c"} - {"alembic_version"}
            )
            quoted = ", ".join(f'"{table}"' for table in tables)
            await connection.execute(text(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE"))
    except DBAPIError:  # alembic_version gone, say: migrate from nothing
        return False
    return True


@pytest.fixture(params=["sqlite", "postgres"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """The same test on SQLite and on PostgreSQL."""
    engine = await fresh_engine(request.param, tmp_path)
    yield engine
    await engine.dispose()


@pytest.fixture
async def sqlite_engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = await fresh_engine("sqlite", tmp_path)
    yield engine
    await engine.dispose()


@pytest.fixture
def redis_url() -> str:
    return need_service(REDIS_URL, "TEST_REDIS_URL")


@pytest.fixture
async def clean_redis(redis_url: str) -> AsyncIterator[str]:
    from redis.asyncio import Redis

    client = Redis.from_url(redis_url)
    await client.flushdb()
    yield redis_url
    await client.flushdb()
    await client.aclose()


@pytest.fixture(scope="session")
def _owned_redis() -> Iterator[Any]:
    """A client of the Redis database `make test` picked (tests/services.py: it holds
    OWNER_MARK when the session starts), else None: an explicit TEST_REDIS_URL is used as
    given, never marked."""
    if not REDIS_URL:
        yield None
        return
    from redis import Redis
    from redis.exceptions import RedisError

    client = Redis.from_url(REDIS_URL)
    try:
        owned = bool(client.exists(OWNER_MARK))
    except RedisError:  # not answering: the tests that need it say so
        owned = False
    yield client if owned else None
    client.close()


@pytest.fixture(autouse=True)
def _keep_redis_owner_mark(_owned_redis: Any) -> Iterator[None]:
    """Tests FLUSHDB their Redis database, the owner mark with it: it is set again after each
    test, so the next `make test` still knows the database as its own (and never takes one
    holding other data)."""
    yield
    if _owned_redis is not None:
        _owned_redis.set(OWNER_MARK, "1")


# ---- texts: a missing key or a Fluent format error fails the test ----------------------------

from bot.i18n import Translator  # noqa: E402

Translator.strict = True  # raise instead of logging (production logs and says something)


@pytest.fixture(autouse=True)
def _no_translation_failures() -> Iterator[None]:
    """Raised inside a handler, a translation error could be caught and shown as «Что-то пошло
    не так»; every failure is also recorded, and any recorded one fails the test."""
    Translator.failures.clear()
    yield
    failures, Translator.failures[:] = list(Translator.failures), []
    assert failures == [], failures
