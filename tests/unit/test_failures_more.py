"""More cases of classify, the de-duplication middleware and the heartbeat (found by a reviewer
breaking the work)."""

from __future__ import annotations

import asyncio
import gc
import sqlite3
import warnings
from typing import Any

import pytest
from aiogram.exceptions import TelegramForbiddenError
from aiogram.methods import SendMessage
from aiogram.types import Update
from sqlalchemy import exc as sa

from bot import dedup
from bot.dedup import MemoryDedup
from bot.failures import classify
from bot.metrics import LEASES_LOST
from bot.middlewares import UpdateDedupMiddleware


def test_a_missing_table_on_sqlite_is_not_transient() -> None:
    """SQLite reports a schema bug (a missing table or column, a migration not
    run) as OperationalError; it will fail the same way on every redelivery, so a webhook on
    SQLite answers 503 for it forever and holds the chat."""
    error = sa.OperationalError(
        "SELECT * FROM residents", {}, sqlite3.OperationalError("no such table: residents")
    )
    assert classify(error).deterministic


def test_a_postgres_statement_timeout_is_classified() -> None:
    """what a QueryCanceled (statement_timeout) becomes."""
    import asyncpg  # type: ignore[import-untyped]

    error = asyncpg.exceptions.QueryCanceledError("canceling statement due to statement timeout")
    assert classify(error).deterministic  # not in _TRANSIENT, not a DBAPIError


def _update(update_id: int = 1) -> Update:
    return Update.model_validate({"update_id": update_id})


async def test_forbidden_marks_the_update_done_in_memory() -> None:
    store = MemoryDedup()
    middleware = UpdateDedupMiddleware(store, lease=1, heartbeat=0.1)
    calls = 0

    async def handler(_event: Any, _data: dict[str, Any]) -> Any:
        nonlocal calls
        calls += 1
        raise TelegramForbiddenError(SendMessage(chat_id=1, text="x"), "Forbidden: blocked")

    with pytest.raises(TelegramForbiddenError):
        await middleware(handler, _update(), {})
    assert await middleware(handler, _update(), {}) is None
    assert calls == 1


async def test_a_redis_blip_during_renew_does_not_crash_and_leaks_nothing() -> None:
    failures = 0

    async def renew() -> bool:
        nonlocal failures
        failures += 1
        raise ConnectionError("redis blip")

    before = {t for t in asyncio.all_tasks()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        async with dedup.heartbeat(renew, 0.01, "test"):
            await asyncio.sleep(0.1)
    assert failures >= 3
    gc.collect()
    leaked = [t for t in asyncio.all_tasks() if t not in before and not t.done()]
    assert leaked == []


async def test_a_hanging_renew_is_cancelled_with_the_block() -> None:
    async def renew() -> bool:
        await asyncio.sleep(3600)
        return True

    before = {t for t in asyncio.all_tasks()}
    async with dedup.heartbeat(renew, 0.01, "test"):
        await asyncio.sleep(0.05)
    leaked = [t for t in asyncio.all_tasks() if t not in before and not t.done()]
    assert leaked == []


async def test_memory_dedup_busy_then_takeover_after_lease() -> None:
    now = [0.0]
    store = MemoryDedup(clock=lambda: now[0])
    first = await store.claim("k", "a", 10)
    second = await store.claim("k", "b", 10)
    assert (first.state, second.state) == (dedup.ClaimState.ACQUIRED, dedup.ClaimState.BUSY)
    assert second.retry_after() == 5
    now[0] = 10.0
    assert (await store.claim("k", "b", 10)).state is dedup.ClaimState.ACQUIRED
    assert await store.renew("k", "a", 10) is False
    await store.release("k", "a")  # not a's any more: b keeps it
    assert (await store.claim("k", "c", 10)).state is dedup.ClaimState.BUSY


async def test_a_lost_lease_is_counted() -> None:
    """A holder that finds its lease taken over (it stalled longer than the lease) may run the
    handler twice with the new owner: operators see it in `bot_leases_lost_total`."""
    before = LEASES_LOST.labels(what="test-lost")._value.get()

    async def renew() -> bool:
        return False  # another owner holds it now

    async with dedup.heartbeat(renew, 0.01, "test-lost"):
        await asyncio.sleep(0.05)
    assert LEASES_LOST.labels(what="test-lost")._value.get() == before + 1
