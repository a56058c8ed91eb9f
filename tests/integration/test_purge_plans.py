"""The background statements that read by age use an index on PostgreSQL, whatever the tables
hold: the hourly retention purges and the reminder step. (bench/plans.py checks every query at
production size; here the planner is told to avoid sequential scans, so a statement that can
only be served by reading the whole table shows one.)"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.database import create_sessionmaker
from storage.fsm import SqlStorage
from storage.token_cipher import TokenCipher
from storage.uow import SqlUnitOfWork, UnitOfWorkFactory
from tests.conftest import fresh_engine

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.fixture
async def pg_engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = await fresh_engine("postgres", tmp_path)
    yield engine
    await engine.dispose()


async def captured(engine: AsyncEngine, run: Callable[[], Awaitable[Any]]) -> list[tuple[str, Any]]:
    statements: list[tuple[str, Any]] = []

    def keep(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "DELETE", "UPDATE")):
            statements.append((statement, params))

    event.listen(engine.sync_engine, "before_cursor_execute", keep)
    try:
        await run()
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", keep)
    return statements


async def plans(engine: AsyncEngine, statements: list[tuple[str, Any]]) -> list[str]:
    found = []
    async with engine.connect() as connection:
        await connection.exec_driver_sql("SET enable_seqscan = off")
        for statement, params in statements:
            result = await connection.exec_driver_sql("EXPLAIN " + statement, params)
            found.append("\n".join(row[0] for row in result))
        await connection.rollback()
    return found


async def test_the_retention_purges_and_the_reminder_step_read_by_index(
    pg_engine: AsyncEngine,
) -> None:
    factory = UnitOfWorkFactory(
        create_sessionmaker(pg_engine), TokenCipher([TokenCipher.generate_key()])
    )

    async def purge_finished() -> None:
        uow: SqlUnitOfWork
        async with factory() as uow:
            await uow.notifications.purge_finished(NOW - timedelta(days=90))

    async def reminders() -> None:
        async with factory() as uow:
            await uow.autopays.reminders_due(NOW, NOW + timedelta(days=1), 500)

    async def purge_dialogs() -> None:
        await SqlStorage(create_sessionmaker(pg_engine)).purge_stale(NOW - timedelta(days=30))

    statements = [
        *await captured(pg_engine, purge_finished),
        *await captured(pg_engine, reminders),
        *await captured(pg_engine, purge_dialogs),
    ]
    assert len(statements) == 4, statements
    # each is bounded by the index on the column it reads by: not a walk of a whole index
    # filtered row by row (ix_notifications_status alone would read every sent row)
    bounded_by = ["sent_at", "status", "next_due_at", "updated_at"]
    found = await plans(pg_engine, statements)
    for (statement, _), plan, column in zip(statements, found, bounded_by, strict=True):
        conditions = [line for line in plan.splitlines() if "Index Cond" in line]
        assert "Seq Scan" not in plan, f"{statement}\n{plan}"
        assert any(column in line for line in conditions), f"{statement}\n{plan}"
    async with pg_engine.connect() as connection:  # the indexes the plans rely on exist
        names = set((await connection.execute(text("SELECT indexname FROM pg_indexes"))).scalars())
    assert {"ix_notifications_status_sent_at", "ix_fsm_state_updated_at"} <= names
