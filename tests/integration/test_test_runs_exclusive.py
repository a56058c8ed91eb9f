"""Two test runs at once on the same databases (two checkouts' `make test` pick the same owned
ones) would wipe each other mid-run: the second stops before touching anything, exit code 2,
one line naming the other run (tests/conftest.py pytest_sessionstart, tests/services.py
hold_exclusively)."""

from __future__ import annotations

import os

from tests.integration.test_test_services import Foreign, foreign, intact, small_run
from tests.services import POSTGRES, REDIS, Refused, hold_exclusively

__all__ = ["foreign"]  # the fixture, shared with test_test_services


async def test_a_second_run_on_the_same_databases_stops_before_wiping(foreign: Foreign) -> None:
    host, port, user = POSTGRES
    urls = {
        "TEST_DATABASE_URL": f"postgresql+asyncpg://{user}@{host}:{port}/{foreign.database}",
        "TEST_REDIS_URL": f"redis://{REDIS[0]}:{REDIS[1]}/{foreign.redis_db}",
    }
    held = [hold_exclusively(setting, url) for setting, url in urls.items()]  # the first run
    try:
        run = await small_run(urls)
        assert run.returncode == 2, run.stdout[-2000:]
        assert (
            f"Another test run (pid {os.getpid()}) is using TEST_DATABASE_URL="
            f"{urls['TEST_DATABASE_URL']}, which each run wipes" in run.stdout + run.stderr
        )
        assert "passed" not in run.stdout
        await intact(foreign)  # neither wiped nor marked

        try:  # a third, in this very process, is refused alike
            hold_exclusively("TEST_REDIS_URL", urls["TEST_REDIS_URL"])
            raise AssertionError("the lock was taken twice")
        except Refused as refused:
            assert f"(pid {os.getpid()}) is using TEST_REDIS_URL=" in str(refused)
    finally:
        for lock in held:
            lock.close()
    hold_exclusively("TEST_REDIS_URL", urls["TEST_REDIS_URL"]).close()  # free once it ended


async def test_make_bench_takes_only_databases_the_tests_may_wipe(foreign: Foreign) -> None:
    """`make bench` flushes a Redis database beside the tests' and drops the schema of
    `<tests' database>_bench`: never one holding other data (it took Redis db 14 blindly)."""
    from bench.common import _free_redis, _sibling_database
    from tests.integration.test_test_services import postgres

    tests_redis = f"redis://{REDIS[0]}:{REDIS[1]}/{foreign.free_db}"
    dbs = (foreign.free_db, foreign.redis_db)  # the tests' own, then one with other data
    assert await _free_redis(tests_redis, dbs) is None
    other = f"redis://{REDIS[0]}:{REDIS[1]}/{foreign.redis_db}"
    assert await _free_redis(other, dbs) == tests_redis  # empty, so taken (and marked)

    host, port, user = POSTGRES
    sibling = f"{foreign.database}_bench"
    await postgres(f'CREATE DATABASE "{sibling}"')
    try:
        await postgres("CREATE TABLE probe (note text); INSERT INTO probe VALUES ('x')", sibling)
        test_url = f"postgresql+asyncpg://{user}@{host}:{port}/{foreign.database}"
        assert await _sibling_database(test_url) is None
        assert await postgres("SELECT note FROM probe", sibling) == [("x",)]
    finally:
        await postgres(f'DROP DATABASE IF EXISTS "{sibling}" WITH (FORCE)')
    await intact(foreign)
