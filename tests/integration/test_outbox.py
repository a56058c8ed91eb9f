"""The outbox on SQLite and PostgreSQL: written once per dedupe key, claimed by one sender."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from domain.ports import Notification
from storage.database import create_sessionmaker
from storage.token_cipher import TokenCipher
from storage.uow import UnitOfWorkFactory

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)


def note(key: str) -> Notification:
    return Notification(7, "report_status", {"report_id": "NG-1"}, dedupe_key=key)


async def test_written_once_and_claimed_once(engine: AsyncEngine) -> None:
    factory = UnitOfWorkFactory(
        create_sessionmaker(engine), TokenCipher([TokenCipher.generate_key()])
    )

    async def write(key: str) -> bool:
        async with factory() as uow:
            added = await uow.notifications.add_once(note(key), NOW)
            await uow.commit()
            return added

    results = await asyncio.gather(write("a"), write("a"), write("b"))
    assert sorted(results) == [False, True, True]

    async def claim() -> list[Notification]:
        async with factory() as uow:
            taken = await uow.notifications.claim(NOW, 10)
            await uow.commit()
            return taken

    first, second = await asyncio.gather(claim(), claim())
    keys = sorted(n.dedupe_key for n in first + second)
    assert keys == ["a", "b"]  # each row went to exactly one sender

    assert await claim() == []  # being sent: not due again...
    async with factory() as uow:  # ...unless its sender died long ago
        stale = await uow.notifications.claim(NOW + timedelta(minutes=6), 10)
    assert sorted(n.dedupe_key for n in stale) == ["a", "b"]


async def test_sent_rows_are_not_sent_again(engine: AsyncEngine) -> None:
    factory = UnitOfWorkFactory(
        create_sessionmaker(engine), TokenCipher([TokenCipher.generate_key()])
    )
    async with factory() as uow:
        await uow.notifications.add_once(note("x"), NOW)
        [taken] = await uow.notifications.claim(NOW, 10)
        assert taken.id is not None
        await uow.notifications.sent(taken.id, 42, NOW)
        await uow.commit()
    async with factory() as uow:
        assert await uow.notifications.claim(NOW + timedelta(hours=1), 10) == []
