"""aiogram FSM storage in the SQL database, for the embedded mode without Redis.

aiogram ships Memory, Redis and Mongo storages only; the embedded default must survive a restart
without a server, so this one keeps state and data in the `fsm_state` table.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, DefaultKeyBuilder, KeyBuilder, StorageKey
from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.models import FsmRow

# Dialog state of a chat silent this long is forgotten: purged from SQL by the retention job
# (bot/jobs.py), expired by Redis itself (the storage's state and data TTL, bot/app.py).
DIALOG_STATE_KEPT = timedelta(days=30)

StateType = str | State | None


def dialog_key_builder() -> KeyBuilder:
    """aiogram-dialog keeps its stacks under separate destinies: keys must carry them."""
    return DefaultKeyBuilder(with_bot_id=True, with_destiny=True)


def user_prefix(keys: KeyBuilder, bot_id: int, user_id: int) -> str:
    """The start every key of one user's private chat with the bot has («fsm:<bot>:<chat>:
    <user>:»; in a private chat the chat is the user), whatever the destiny and part."""
    return keys.build(StorageKey(bot_id=bot_id, chat_id=user_id, user_id=user_id, destiny=""))


class SqlStorage(BaseStorage):
    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], key_builder: KeyBuilder | None = None
    ) -> None:
        self._sessionmaker = sessionmaker
        self._keys = key_builder or dialog_key_builder()

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        value = state.state if isinstance(state, State) else state
        await self._upsert(self._keys.build(key), {"state": value})

    async def get_state(self, key: StorageKey) -> str | None:
        row = await self._get(self._keys.build(key))
        return None if row is None else row.state

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        await self._upsert(self._keys.build(key), {"data": dict(data)})

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        row = await self._get(self._keys.build(key))
        return {} if row is None or not row.data else dict(row.data)

    async def close(self) -> None:
        """The engine belongs to the application, which disposes of it."""

    async def forget_user(self, bot_id: int, user_id: int) -> int:
        """Forget every state and dialog of one user in their private chat with this bot
        (unlinking): every destiny — aiogram's own and aiogram-dialog's stacks and contexts.
        Returns how many keys were deleted."""
        prefix = user_prefix(self._keys, bot_id, user_id)
        async with self._sessionmaker() as session:
            result = await session.execute(
                delete(FsmRow).where(FsmRow.key.startswith(prefix, autoescape=True))
            )
            await session.commit()
        return int(getattr(result, "rowcount", 0) or 0)

    async def purge_stale(self, before: datetime) -> int:
        """Retention: keys not written since `before` are deleted. Returns how many."""
        async with self._sessionmaker() as session:
            result = await session.execute(delete(FsmRow).where(FsmRow.updated_at < before))
            await session.commit()
        return int(getattr(result, "rowcount", 0) or 0)

    async def _get(self, key: str) -> FsmRow | None:
        async with self._sessionmaker() as session:
            result = await session.execute(select(FsmRow).where(FsmRow.key == key))
            return result.scalar_one_or_none()

    async def _upsert(self, key: str, values: dict[str, Any]) -> None:
        """Write the state or the data of a key. As in aiogram's RedisStorage, a key left with
        neither (state None and data empty) is deleted, not kept as an empty row."""
        now = datetime.now(UTC)
        async with self._sessionmaker() as session:
            if not any(values.values()):
                row = (
                    await session.execute(select(FsmRow).where(FsmRow.key == key))
                ).scalar_one_or_none()
                if row is None:
                    return
                other_empty = not row.data if "state" in values else row.state is None
                if other_empty:
                    await session.execute(delete(FsmRow).where(FsmRow.key == key))
                    await session.commit()
                    return
            dialect = session.get_bind().dialect.name
            insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            stmt = insert(FsmRow).values(key=key, updated_at=now, **values)
            stmt = stmt.on_conflict_do_update(
                index_elements=[FsmRow.key], set_={**values, "updated_at": now}
            )
            await session.execute(stmt)
            await session.commit()
