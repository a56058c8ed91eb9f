"""`bot.polling.StorageLedger`: what a polling run finished but could not confirm outlives the
process in the bot's FSM storage, for at most the 24 hours Telegram keeps an update."""

from __future__ import annotations

from aiogram.fsm.storage.memory import MemoryStorage

from bot.polling import LEDGER_KEPT, StorageLedger


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_the_next_run_recalls_what_was_kept() -> None:
    storage, clock = MemoryStorage(), Clock()
    await StorageLedger(storage, 42, clock).keep({7, 5})
    assert await StorageLedger(storage, 42, clock).recall() == {5, 7}
    assert await StorageLedger(storage, 43, clock).recall() == set()  # another bot's


async def test_nothing_left_to_skip_clears_the_key() -> None:
    storage, clock = MemoryStorage(), Clock()
    ledger = StorageLedger(storage, 42, clock)
    await ledger.keep({5})
    await ledger.keep(set())
    assert await ledger.recall() == set()


async def test_ids_older_than_telegram_keeps_updates_are_not_recalled() -> None:
    """After 24 hours Telegram has dropped those updates, and after a quiet week its ids may
    start afresh: a stale id must not make a new update be skipped."""
    storage, clock = MemoryStorage(), Clock()
    ledger = StorageLedger(storage, 42, clock)
    await ledger.keep({5})
    clock.now += LEDGER_KEPT - 1
    assert await ledger.recall() == {5}
    clock.now += 2
    assert await ledger.recall() == set()
