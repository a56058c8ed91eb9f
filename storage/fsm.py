"""aiogram FSM storage in the SQL database, for the embedded mode without Redis.

aiogram ships Memory, Redis and Mongo storages only; the embedded default must survive a restart
without a server, so this one keeps state and data in the `fsm_state` table.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, DefaultKeyBuilder, KeyBuilder, StorageKey
from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import async_sessionmaker

from storage.models import FsmRow

StateType = str | State | None


def dialog_key_builder() -> KeyBuilder:
    """aiogram-dialog keeps its stacks under separate destinies: keys must carry them."""
    return DefaultKeyBuilder(with_bot_id=True, with_destiny=True)


class SqlStorage(BaseStorage):
    def __init__(
        self, sessionmaker: async_sessionmaker[Any], key_builder: KeyBuilder | None = None
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

    async def clear_chat(self, prefix_key: StorageKey) -> None:
        """Forget every state and dialog of one user in one chat (used when unlinking)."""
        prefix = self._keys.build(prefix_key).rsplit(":", 1)[0]
        async with self._sessionmaker() as session:
            await session.execute(delete(FsmRow).where(FsmRow.key.startswith(prefix + ":")))
            await session.commit()

    async def _get(self, key: str) -> FsmRow | None:
        async with self._sessionmaker() as session:
            result = await session.execute(select(FsmRow).where(FsmRow.key == key))
            return result.scalar_one_or_none()

    async def _upsert(self, key: str, values: dict[str, Any]) -> None:
        now = datetime.now(UTC)
        async with self._sessionmaker() as session:
            dialect = session.bind.dialect.name
            insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            stmt = insert(FsmRow).values(key=key, updated_at=now, **values)
            stmt = stmt.on_conflict_do_update(
                index_elements=[FsmRow.key], set_={**values, "updated_at": now}
            )
            await session.execute(stmt)
            await session.commit()
