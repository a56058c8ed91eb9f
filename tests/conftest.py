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

from storage.database import create_engine
from storage.migrate import upgrade
from tests.services import OWNER_MARK, Refused, hold_exclusively

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"
POSTGRES_URL = os.environ.get("TEST_DATABASE_URL", "")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "")
_HELD: list[Any] = []  # the locks of this run's databases, open until the process ends


def pytest_sessionstart(session: pytest.Session) -> None:
    """One run at a time on a database: a second run given the same one stops at once, exit
    code 2, before wiping anything (tests/services.py, hold_exclusively)."""
    try:
        for setting, url in (("TEST_DATABASE_URL", POSTGRES_URL), ("TEST_REDIS_URL", REDIS_URL)):
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
    """An engine on an empty database with every migration applied."""
    if backend == "sqlite":
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'test.sqlite3'}")
    else:
        engine = create_engine(need_service(POSTGRES_URL, "TEST_DATABASE_URL"))
        async with engine.begin() as connection:
            await connection.execute(text("DROP SCHEMA public CASCADE"))
            await connection.execute(text("CREATE SCHEMA public"))
    await upgrade(engine)
    return engine


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
