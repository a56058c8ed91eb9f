"""Migration 0019 on SQLite and PostgreSQL: a support number (the topic row's id) is never
given to a second resident — on SQLite the table is made again with AUTOINCREMENT, keeping its
rows; PostgreSQL's sequence never reused an id. Down and up again works."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.migrate import downgrade, upgrade

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
INSERT = text(
    "INSERT INTO support_topics (chat_id, telegram_user_id, thread_id, name, created_at,"
    " updated_at) VALUES (-100, :user, :thread, 'Житель', :now, :now)"
)


async def _new_topic(engine: AsyncEngine, user: int) -> int:
    async with engine.begin() as connection:
        await connection.execute(INSERT, {"user": user, "thread": user, "now": NOW})
        found = await connection.execute(
            text("SELECT id FROM support_topics WHERE telegram_user_id = :user"), {"user": user}
        )
        return int(found.scalar_one())


async def _forget(engine: AsyncEngine, number: int) -> None:
    async with engine.begin() as connection:
        await connection.execute(text("DELETE FROM support_topics WHERE id = :id"), {"id": number})


async def test_a_number_of_a_topic_deleted_is_never_given_again(engine: AsyncEngine) -> None:
    await downgrade(engine, "0018")
    first, second = await _new_topic(engine, 1), await _new_topic(engine, 2)
    await upgrade(engine)
    async with engine.connect() as connection:  # the rows are kept
        kept = await connection.execute(text("SELECT id, telegram_user_id FROM support_topics"))
        assert sorted(map(tuple, kept)) == [(first, 1), (second, 2)]

    await _forget(engine, second)  # the newest resident unlinked
    third = await _new_topic(engine, 3)
    assert third > second, "a support number was given to a second resident"
    await _forget(engine, third)
    assert await _new_topic(engine, 4) > third

    await downgrade(engine, "0018")  # and back again
    await upgrade(engine)
    assert await _new_topic(engine, 5) > third
