"""The benchmarks' cost meter (`bench.common.Meter`) counts what it claims: SQL statements
on an engine, Redis commands (a pipeline's one each, one round trip), only while on; and the
sandbox's CPU is its handlers' own steps, not the time other tasks ran while they waited."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from sqlalchemy import text

from bench.common import CpuTimed, Meter
from storage.database import create_engine
from tests.conftest import REDIS_URL, need_service


async def test_counts_the_statements_run_while_on(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'meter.sqlite3'}")
    meter = Meter()
    meter.watch_engine(engine)
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))  # off: not counted
            meter.start()
            for _ in range(3):
                await connection.execute(text("SELECT 1"))
            costs = meter.stop()
            await connection.execute(text("SELECT 1"))  # off again
    finally:
        await engine.dispose()
    assert costs.sql == 3
    assert meter.costs.sql == 3


async def test_counts_redis_commands_and_round_trips_only_while_on() -> None:
    client = Redis.from_url(need_service(REDIS_URL, "TEST_REDIS_URL"))
    key = f"bench-meter-{uuid.uuid4().hex}"
    meter = Meter()
    originals = (Redis.execute_command, Pipeline.execute)
    try:
        with meter.count_redis():
            await client.set(key, "1")  # off: not counted
            meter.start()
            await client.get(key)
            await client.incr(key)
            async with client.pipeline(transaction=False) as pipeline:
                for command in (pipeline.get, pipeline.incr, pipeline.get):
                    command(key)
                await pipeline.execute()
            costs = meter.stop()
            await client.get(key)  # off again
        assert (Redis.execute_command, Pipeline.execute) == originals  # put back
    finally:
        await client.delete(key)
        await client.aclose()
    assert costs.redis == 5
    assert costs.redis_trips == 3


async def test_the_timed_coroutine_is_charged_only_its_own_steps() -> None:
    """A clock that only the tasks move: the timed coroutine spends 1 a step (two steps),
    another task spends 100 while the timed one waits."""
    now = [0.0]
    waiting = asyncio.Event()
    go_on = asyncio.Event()

    async def timed_work() -> str:
        now[0] += 1
        waiting.set()
        await go_on.wait()
        now[0] += 1
        return "done"

    async def other_work() -> None:
        await waiting.wait()
        now[0] += 100
        go_on.set()

    spent = [0.0]
    result, _ = await asyncio.gather(CpuTimed(timed_work(), spent, lambda: now[0]), other_work())
    assert result == "done"
    assert spent == [2.0]
    assert now[0] == 102.0


async def test_a_timed_coroutine_s_error_and_cancellation_go_through() -> None:
    async def fails() -> None:
        await asyncio.sleep(0)
        raise LookupError("from the handler")

    spent = [0.0]
    try:
        await CpuTimed(fails(), spent)
    except LookupError as error:
        assert str(error) == "from the handler"
    else:
        raise AssertionError("the error was swallowed")

    task = asyncio.ensure_future(CpuTimed(asyncio.sleep(10), spent))
    await asyncio.sleep(0)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    assert task.cancelled()
