"""`make test` never touches data that is not its own (tests/services.py): it creates and marks
its PostgreSQL database, takes only a Redis database that is empty or holds its mark, refuses
a database of its name without the mark, and keeps an explicit TEST_*_URL as given.

The foreign data here lives in a scratch database and Redis databases this test picks, never in
`test` or Redis db 15 (which CI and older checkouts use)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis import Redis

from tests.conftest import RUN_URLS, need_service
from tests.services import OWNER_MARK, POSTGRES, REDIS, answers

ROOT = Path(__file__).resolve().parents[2]
MONEY_TESTS = "tests/unit/test_money.py"  # a small file a refused run would have run
PROBE = os.getpid()


def services(**env: str) -> subprocess.CompletedProcess[str]:
    """`python -m tests.services` with a clean environment plus `env`."""
    clean = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/")}
    return subprocess.run(
        [sys.executable, "-m", "tests.services"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def exports(run: subprocess.CompletedProcess[str]) -> dict[str, str]:
    assert run.returncode == 0, run.stderr
    found = {}
    for line in run.stdout.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        found[name] = value.strip("'")
    return found


async def postgres(sql: str, database: str = "postgres") -> list[tuple[object, ...]]:
    import asyncpg

    host, port, user = POSTGRES
    connection = await asyncpg.connect(host=host, port=port, user=user, database=database)
    try:
        if not sql.startswith("SELECT"):
            await connection.execute(sql)  # several statements may go in one
            return []
        return [tuple(row) for row in await connection.fetch(sql)]
    finally:
        await connection.close()


@dataclass
class Foreign:
    database: str  # holds the table probe with one row, and no mark
    redis_db: int  # holds the key foreign:probe
    free_db: int  # empty: the one the tests may take
    spare_db: int | None  # empty too, when there is a third: a second worker's


@pytest.fixture
async def foreign() -> AsyncIterator[Foreign]:
    """Someone else's data: a PostgreSQL database and a Redis database, both without our mark,
    and an empty Redis database beside them (all dropped or emptied afterwards)."""
    if not answers(*POSTGRES[:2]):
        need_service("", "PostgreSQL on 127.0.0.1:5432")
    if not answers(*REDIS):
        need_service("", "Redis on 127.0.0.1:6379")
    ours = {url.rsplit("/", 1)[-1] for url in RUN_URLS if url.startswith("redis")}
    empty = []
    for db in range(14, 7, -1):  # clear of db 15 and of the databases 1..7 helpers use
        if str(db) in ours:  # a worker of this run uses it (emptied between its tests)
            continue
        client = Redis(host=REDIS[0], port=REDIS[1], db=db)
        if client.dbsize() == 0:
            empty.append(db)
        client.close()
    if len(empty) < 2:
        pytest.skip("no two empty Redis databases among 8..14 to play with")
    name = f"foreign_probe_{PROBE}"
    await postgres(f'DROP DATABASE IF EXISTS "{name}"')
    theirs = Redis(host=REDIS[0], port=REDIS[1], db=empty[0])
    try:
        await postgres(f'CREATE DATABASE "{name}"')
        await postgres("CREATE TABLE probe (note text); INSERT INTO probe VALUES ('theirs')", name)
        theirs.set("foreign:probe", "theirs")
        spare = empty[2] if len(empty) > 2 else None
        yield Foreign(database=name, redis_db=empty[0], free_db=empty[1], spare_db=spare)
    finally:
        theirs.delete("foreign:probe")
        theirs.close()
        for db in empty[1:3]:
            ours = Redis(host=REDIS[0], port=REDIS[1], db=db)
            ours.delete(OWNER_MARK)
            ours.close()
        await postgres(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def owned_name() -> AsyncIterator[str]:
    name = f"owned_probe_{PROBE}"
    yield name
    for each in (name, f"{name}_gw1"):
        await postgres(f'DROP DATABASE IF EXISTS "{each}" WITH (FORCE)')


async def small_run(urls: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A real pytest run of two small tests (SQLite + PostgreSQL, memory + Redis: 4 cases) on
    `urls`, the way `make test` runs the suite on what tests/services.py picked."""
    return await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/integration/test_storage.py::test_resident_round_trip_with_aware_datetimes",
            "tests/integration/test_ratelimit.py::test_a_chat_gets_one_message_a_second",
        ],
        cwd=ROOT,
        env={**os.environ, **urls, "REQUIRE_SERVICES": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )


async def intact(foreign: Foreign) -> None:
    assert await postgres("SELECT note FROM probe", foreign.database) == [("theirs",)]
    theirs = Redis(host=REDIS[0], port=REDIS[1], db=foreign.redis_db)
    assert theirs.get("foreign:probe") == b"theirs"
    assert theirs.dbsize() == 1  # no mark set on it either
    theirs.close()


async def test_make_test_picks_its_own_databases_and_keeps_foreign_data(
    foreign: Foreign, owned_name: str
) -> None:
    knobs = {
        "TEST_DATABASE_NAME": owned_name,
        "TEST_REDIS_DBS": f"{foreign.redis_db},{foreign.free_db}",
    }
    picked = []
    for _ in range(2):  # services, then the fixtures wiping what was picked; twice
        urls = exports(services(**knobs))
        picked.append(urls)
        assert urls["TEST_DATABASE_URL"].endswith(f"/{owned_name}")
        assert urls["TEST_REDIS_URL"].endswith(f":{REDIS[1]}/{foreign.free_db}")
        for url in urls.values():
            assert not url.endswith(("/test", "/15", f"/{foreign.database}"))
        run = await small_run(urls)
        assert run.returncode == 0, run.stdout[-2000:]
        assert "4 passed" in run.stdout  # sqlite+postgres, memory+redis: nothing skipped
        await intact(foreign)
        ours = Redis(host=REDIS[0], port=REDIS[1], db=foreign.free_db)
        assert ours.exists(OWNER_MARK)  # set again after the tests' FLUSHDB: still ours
        ours.close()
    assert picked[0] == picked[1]
    [(mark,)] = await postgres(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database "
        f"WHERE datname = '{owned_name}'"
    )
    assert str(mark).startswith(OWNER_MARK)


async def test_a_second_worker_gets_databases_of_its_own(foreign: Foreign, owned_name: str) -> None:
    """`make test` asks for two processes (TEST_WORKERS=2): the second gets its own marked
    PostgreSQL database and the next free Redis database — never the foreign one, never the
    first worker's — and TEST_PROCESSES says how many to run."""
    if foreign.spare_db is None:
        pytest.skip("no third empty Redis database among 8..14")
    knobs = {
        "TEST_DATABASE_NAME": owned_name,
        "TEST_REDIS_DBS": f"{foreign.redis_db},{foreign.free_db},{foreign.spare_db}",
        "TEST_WORKERS": "2",
    }
    urls = exports(services(**knobs))
    assert urls["TEST_PROCESSES"] == "2"
    assert urls["TEST_DATABASE_URL"].endswith(f"/{owned_name}")
    assert urls["TEST_DATABASE_URL_GW1"].endswith(f"/{owned_name}_gw1")
    assert urls["TEST_REDIS_URL"].endswith(f"/{foreign.free_db}")
    assert urls["TEST_REDIS_URL_GW1"].endswith(f"/{foreign.spare_db}")
    [(mark,)] = await postgres(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database "
        f"WHERE datname = '{owned_name}_gw1'"
    )
    assert str(mark).startswith(OWNER_MARK)
    await intact(foreign)
    # Without a free Redis database for the second, the run is one process: nothing extra.
    knobs["TEST_REDIS_DBS"] = f"{foreign.redis_db},{foreign.free_db}"
    alone = exports(services(**knobs))
    assert set(alone) == {"TEST_DATABASE_URL", "TEST_REDIS_URL"}
    await intact(foreign)


async def test_a_database_of_our_name_without_the_mark_is_refused(foreign: Foreign) -> None:
    run = services(TEST_DATABASE_NAME=foreign.database, TEST_REDIS_URL="redis://unused/1")
    assert run.returncode == 2
    assert run.stdout == ""
    assert run.stderr.splitlines() == [
        f"Refusing PostgreSQL database {foreign.database} on {POSTGRES[0]}:{POSTGRES[1]}: it "
        "exists without the mark of this project's tests, which would wipe it; rename it or "
        "set TEST_DATABASE_URL"
    ]
    await intact(foreign)


async def test_a_redis_database_with_other_data_is_never_taken(foreign: Foreign) -> None:
    knobs = {"TEST_DATABASE_URL": "postgresql+asyncpg://unused/x"}
    only_foreign = str(foreign.redis_db)
    skipped = services(**knobs, TEST_REDIS_DBS=only_foreign)
    assert skipped.returncode == 0 and skipped.stdout == ""  # the Redis tests skip
    assert len(skipped.stderr.splitlines()) == 1 and "set TEST_REDIS_URL" in skipped.stderr
    required = services(**knobs, TEST_REDIS_DBS=only_foreign, REQUIRE_SERVICES="1")
    assert required.returncode == 2 and required.stdout == ""
    assert len(required.stderr.splitlines()) == 1
    await intact(foreign)


def test_explicit_urls_are_kept_as_given() -> None:
    run = services(TEST_DATABASE_URL="postgresql+asyncpg://x/y", TEST_REDIS_URL="redis://x/3")
    assert (run.returncode, run.stdout, run.stderr) == (0, "", "")


def test_two_workers_on_one_database_are_refused_before_anything_is_wiped() -> None:
    """`pytest -n 2` given only TEST_DATABASE_URL / TEST_REDIS_URL would have both workers
    wipe the same databases mid-run: it stops at once with one line saying what is missing,
    exit code 2 (make test gives each worker its own)."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("TEST_DATABASE_URL_GW", "TEST_REDIS_URL_GW", "PYTEST_XDIST"))
    }
    env |= {"TEST_DATABASE_URL": "postgresql+asyncpg://x/y", "TEST_REDIS_URL": "redis://x/3"}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2", MONEY_TESTS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2, run.stdout[-2000:]
    assert "TEST_DATABASE_URL_GW1, TEST_REDIS_URL_GW1 unset" in run.stdout + run.stderr
    assert "passed" not in run.stdout
