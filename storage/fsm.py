"""aiogram FSM storages: in the SQL database, for the embedded mode without Redis; and Redis
with one update's reads and writes batched.

aiogram ships Memory, Redis and Mongo storages only; the embedded default must survive a restart
without a server, so `SqlStorage` keeps state and data in the `fsm_state` table.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, DefaultKeyBuilder, KeyBuilder, StorageKey
from aiogram.fsm.storage.redis import RedisStorage
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
    """aiogram's storage in the database (no Redis). Each key is stamped with `clock()` (UTC,
    timezone-aware) when written: the application's clock, the one `purge_stale`'s cut is
    taken from (the console's `:time` moves both)."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        key_builder: KeyBuilder | None = None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessionmaker = sessionmaker
        self._keys = key_builder or dialog_key_builder()
        self._clock = clock

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
        now = self._clock()
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


# ---- Redis: one update's dialog state read once and written once ----------------------------


@dataclass(eq=False)
class UpdateBatch:
    """What one update read from and will write to Redis's dialog state, and the per-chat locks
    it holds until those writes are sent (bot/dedup.py: `LeasedRedisEventIsolation` takes the
    chat's locks and reads its state in one script, `RedisDedup.finish` sends the writes, lets
    the locks go and marks the update in one more).

    Only the update's own task uses it (`current_batch`): a task started during the update
    (an album's debounce) reads and writes Redis directly. Never kept across updates: another
    replica handles the chat's next update."""

    task: asyncio.Task[Any] | None = field(default_factory=asyncio.current_task)
    known: dict[str, str | None] = field(default_factory=dict)  # Redis key → value (None: none)
    # Redis key → the value first read from Redis (None: none): the update's end checks that
    # nobody wrote them meanwhile when one of its leases lapsed (`RedisDedup.finish`)
    read: dict[str, str | None] = field(default_factory=dict)
    lapsed: bool = False  # a heartbeat took back a lease that had lapsed: the end checks `read`
    writes: dict[str, tuple[str | None, int | None]] = field(default_factory=dict)
    # ↑ Redis key → (value, None: delete; seconds to live, None: no expiry), the last one wins
    locks: dict[str, str] = field(default_factory=dict)  # lock key → our token
    renewed: set[str] = field(default_factory=set)  # locks a heartbeat renews now
    lock_lease: float = 0.0  # seconds: the locks' lease (set by the isolation that takes them)
    open: bool = True


_BATCH: ContextVar[UpdateBatch | None] = ContextVar("fsm_update_batch", default=None)


def current_batch() -> UpdateBatch | None:
    """The batch of the update this task is handling, if it is still open."""
    batch = _BATCH.get()
    if batch is None or not batch.open or batch.task is not asyncio.current_task():
        return None
    return batch


@contextmanager
def update_batch() -> Iterator[UpdateBatch]:
    """Open a batch for the update handled in this task; closed (later calls go to Redis
    directly) when the block ends — its writes must have been sent by then."""
    batch = UpdateBatch()
    token = _BATCH.set(batch)
    try:
        yield batch
    finally:
        batch.open = False
        _BATCH.reset(token)


def _seconds(ttl: Any) -> int | None:
    if ttl is None:
        return None
    return int(ttl.total_seconds()) if isinstance(ttl, timedelta) else int(ttl)


class BatchedRedisStorage(RedisStorage):
    """aiogram's RedisStorage, same keys and values, with an update's reads and writes batched.

    aiogram-dialog reads a chat's stack and context, and writes them, several times per
    update (and aiogram reads the state once); each was a round trip. Inside an update (an
    open `UpdateBatch` of this task): a key is read from Redis once (or not at all: the
    per-chat lock's script brought it), later reads are answered from the batch, and writes
    are kept — the last one per key — to be sent with the update's end, while the chat's
    lock is still held. Outside an update (jobs, background managers) it is RedisStorage.

    aiogram-dialog 2.x has no caching layer of its own to use instead (its StorageProxy
    calls the storage for every load and save)."""

    async def get_state(self, key: StorageKey) -> str | None:
        batch = current_batch()
        if batch is None:
            return await super().get_state(key)
        return await self._read(batch, self.key_builder.build(key, "state"))

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        batch = current_batch()
        if batch is None:
            return await super().get_data(key)
        raw = await self._read(batch, self.key_builder.build(key, "data"))
        return {} if raw is None else dict(self.json_loads(raw))

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        batch = current_batch()
        if batch is None:
            return await super().set_state(key, state)
        value = state.state if isinstance(state, State) else state
        self._write(batch, self.key_builder.build(key, "state"), value, self.state_ttl)

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        batch = current_batch()
        if batch is None or not isinstance(data, dict):  # RedisStorage refuses a non-dict
            return await super().set_data(key, data)
        value = self.json_dumps(data) if data else None
        self._write(batch, self.key_builder.build(key, "data"), value, self.data_ttl)

    async def forget_user(self, bot_id: int, user_id: int) -> int:
        """Forget every state and dialog of one user in their private chat with this bot
        (unlinking), as `SqlStorage.forget_user`: every key under the user's prefix but a held
        lock. Returns how many keys in Redis.

        In an update (a batch open) the keys are deleted at its end, with its other writes
        (`RedisDedup.finish`), and a write the update kept from before is dropped (it would
        bring a forgotten key back): an end that is refused — a lease another update took
        meanwhile — then deletes nothing either, and the update handled again reads what is
        there. Their values are recorded as read (one MGET), so the end sees a write another
        update made to them during a lapsed lease. Without a batch they go at once."""
        prefix = user_prefix(self.key_builder, bot_id, user_id)
        names = [
            text
            async for name in self.redis.scan_iter(match=prefix + "*", count=500)
            if not (text := name.decode() if isinstance(name, bytes) else name).endswith(":lock")
        ]
        batch = current_batch()
        if batch is None:
            return int(await self.redis.delete(*names)) if names else 0
        values = await self.redis.mget(names) if names else []
        for name, value in zip(names, values, strict=True):
            batch.read.setdefault(name, value.decode() if isinstance(value, bytes) else value)
        for name in {*names, *(n for n in batch.known if n.startswith(prefix))}:
            batch.known[name] = None
            batch.writes[name] = (None, None)  # deleted at the end
        return len(names)

    async def _read(self, batch: UpdateBatch, name: str) -> str | None:
        if name not in batch.known:
            value = await self.redis.get(name)
            batch.known[name] = value.decode() if isinstance(value, bytes) else value
            batch.read.setdefault(name, batch.known[name])
        return batch.known[name]

    @staticmethod
    def _write(batch: UpdateBatch, name: str, value: str | None, ttl: Any) -> None:
        batch.known[name] = value
        batch.writes[name] = (value, _seconds(ttl))
