"""On SQLite the autopay run's reads «under lock» hold: SQLite has no row locks and its driver
begins a transaction only at the first write, so a SELECT … FOR UPDATE (rendered without FOR
UPDATE) read outside any transaction, and another connection could commit between it and the
run's first write — an autopay's record wrote the notice of a resident who had just unlinked.
The run's locks (`lock_many`, `domain.autopaying._lock`) take SQLite's write lock first
(`storage.database.lock_on_sqlite`): a writer on another connection waits until the run's
transaction ends."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from domain.accounts import AccountLevel, Resident, TokenSet
from domain.autopay import Autopay, AutopayKind, Frequency, Schedule
from domain.autopaying import _lock
from storage.database import create_engine, create_sessionmaker
from storage.migrate import upgrade
from storage.token_cipher import TokenCipher
from storage.uow import SqlUnitOfWork, UnitOfWorkFactory

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
USER = 7


@pytest.fixture
async def factory(tmp_path: Path) -> UnitOfWorkFactory:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    await upgrade(engine)
    cipher = TokenCipher([TokenCipher.generate_key()])
    factory = UnitOfWorkFactory(create_sessionmaker(engine), cipher)
    async with factory() as uow:
        tokens = TokenSet("access", "refresh", NOW)
        await uow.residents.save(Resident(USER, USER, "C-1", AccountLevel.FULL, "М.", tokens, NOW))
        await uow.autopays.add(
            Autopay(
                telegram_user_id=USER,
                kind=AutopayKind.FIXED,
                schedule=Schedule(Frequency.MONTHLY, 25),
                method_id="pm-full-4242",
                next_due_at=NOW,
                amount=10_000,
                fund_id="F-101",
                fund_name="Фонд",
            ),
            NOW,
        )
        await uow.known_bills.watch(USER, NOW)
        await uow.commit()
    return factory


async def anonymise(factory: UnitOfWorkFactory) -> None:
    """What unlinking does to the rows a lock reads (another connection)."""
    async with factory() as uow:
        await uow.session.execute(text("UPDATE autopays SET telegram_user_id = 0"))
        await uow.session.execute(text("DELETE FROM bill_watches"))
        await uow.session.execute(text("UPDATE residents SET masked_name = 'gone'"))
        await uow.commit()


LOCKS: dict[str, Callable[[SqlUnitOfWork], Awaitable[object]]] = {
    "autopays.lock_many": lambda uow: uow.autopays.lock_many([1]),
    "the charge run's read of one": lambda uow: _lock(uow, 1),
}


@pytest.mark.parametrize("lock", list(LOCKS))
async def test_a_writer_waits_for_a_read_under_lock_to_end(
    factory: UnitOfWorkFactory, lock: str
) -> None:
    async with factory() as holder:
        await LOCKS[lock](holder)
        other = asyncio.ensure_future(anonymise(factory))
        await asyncio.sleep(0.3)
        assert not other.done()  # the other connection's write waits for this transaction
        stored = await holder.autopays.get(1)
        assert stored is not None and stored.telegram_user_id == USER  # as read, still
        await holder.commit()
    await asyncio.wait_for(other, 30)  # and goes on once it ended
    async with factory() as uow:
        stored = await uow.autopays.get(1)
    assert stored is not None and stored.telegram_user_id == 0
