"""The bills bill discovery has seen per resident (`known_bills`), the residents it has
scanned once (`bill_watches`), and the queue of bills waiting for an on-issue autopay that is
paying another one. Every write that decides «new» is INSERT … ON CONFLICT DO NOTHING, so two
schedulers scanning the same resident at once agree on which of them found a bill."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import BillWatchRow, KnownBillRow


class SqlKnownBillRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def _insert(self) -> Any:
        """INSERT with ON CONFLICT for the session's dialect (PostgreSQL, SQLite)."""
        dialect = self._session.get_bind().dialect.name
        return postgresql.insert if dialect == "postgresql" else sqlite.insert

    async def watched(self, telegram_user_id: int, *, lock: bool = False) -> bool:
        """Whether the resident's bills were scanned before (their baseline is taken). With
        `lock`, the mark's row is locked FOR UPDATE (PostgreSQL) until the transaction ends:
        an unlinking (`forget`, which deletes the mark first) waits for it."""
        query = select(BillWatchRow.telegram_user_id).where(
            BillWatchRow.telegram_user_id == telegram_user_id
        )
        if lock:
            query = query.with_for_update()
        return (await self._session.execute(query)).first() is not None

    async def watch(self, telegram_user_id: int, now: datetime) -> None:
        """Mark the resident's baseline taken (once; a second writer does nothing)."""
        insert = self._insert()
        await self._session.execute(
            insert(BillWatchRow)
            .values(telegram_user_id=telegram_user_id, created_at=now)
            .on_conflict_do_nothing(index_elements=[BillWatchRow.telegram_user_id])
        )

    async def add(self, telegram_user_id: int, bill_ids: Sequence[str], now: datetime) -> set[str]:
        """Record these bills as seen (one INSERT … ON CONFLICT DO NOTHING RETURNING): the ids
        returned are those nobody had recorded — this caller found them."""
        if not bill_ids:
            return set()
        insert = self._insert()
        result = await self._session.execute(
            insert(KnownBillRow)
            .values(
                [
                    {"telegram_user_id": telegram_user_id, "bill_id": bill_id, "created_at": now}
                    for bill_id in dict.fromkeys(bill_ids)
                ]
            )
            .on_conflict_do_nothing(
                index_elements=[KnownBillRow.telegram_user_id, KnownBillRow.bill_id]
            )
            .returning(KnownBillRow.bill_id)
        )
        return {bill_id for (bill_id,) in result.all()}

    async def queue(self, telegram_user_id: int, bill_id: str, autopay_id: int) -> None:
        """The bill waits for the on-issue autopay `autopay_id` (paying another bill now)."""
        await self._session.execute(
            update(KnownBillRow)
            .where(
                KnownBillRow.telegram_user_id == telegram_user_id,
                KnownBillRow.bill_id == bill_id,
            )
            .values(autopay_id=autopay_id)
            .execution_options(synchronize_session=False)
        )

    async def next_queued(self, autopay_id: int) -> str | None:
        """The oldest bill waiting for this autopay, taken off the queue; None if none. The
        caller holds the autopay's row lock, so the queue is not taken twice."""
        row = (
            await self._session.execute(
                select(KnownBillRow.id, KnownBillRow.bill_id)
                .where(KnownBillRow.autopay_id == autopay_id)
                .order_by(KnownBillRow.id)
                .limit(1)
            )
        ).first()
        if row is None:
            return None
        await self._session.execute(
            update(KnownBillRow)
            .where(KnownBillRow.id == row.id)
            .values(autopay_id=None)
            .execution_options(synchronize_session=False)
        )
        return str(row.bill_id)

    async def queued(self, autopay_id: int) -> list[str]:
        """The bills waiting for this autopay, oldest first."""
        rows = await self._session.execute(
            select(KnownBillRow.bill_id)
            .where(KnownBillRow.autopay_id == autopay_id)
            .order_by(KnownBillRow.id)
        )
        return [str(bill_id) for bill_id in rows.scalars()]

    async def unqueue(self, autopay_id: int, bill_id: str) -> None:
        """The bill no longer waits for this autopay."""
        await self._session.execute(
            update(KnownBillRow)
            .where(KnownBillRow.autopay_id == autopay_id, KnownBillRow.bill_id == bill_id)
            .values(autopay_id=None)
            .execution_options(synchronize_session=False)
        )

    async def drop_queue(self, autopay_id: int) -> None:
        """No bill waits for this autopay any more (paused, resumed, deleted)."""
        await self._session.execute(
            update(KnownBillRow)
            .where(KnownBillRow.autopay_id == autopay_id)
            .values(autopay_id=None)
            .execution_options(synchronize_session=False)
        )

    async def forget(self, telegram_user_id: int) -> None:
        """Unlinking: the resident's baseline mark and known bills are deleted (a relink
        takes a fresh baseline). The mark first: a scan recording this resident's bills holds
        it locked (`watched(lock=True)`), so this waits for that scan's commit and then deletes
        what it recorded too."""
        await self._session.execute(
            delete(BillWatchRow).where(BillWatchRow.telegram_user_id == telegram_user_id)
        )
        await self._session.execute(
            delete(KnownBillRow).where(KnownBillRow.telegram_user_id == telegram_user_id)
        )
