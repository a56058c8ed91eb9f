"""`bot.isolation.UpdateScopedIsolation`: an update's per-chat locks are its own — entered
again by it at once, released at its end whatever was left open, and never released for
another acquisition (review 35b: a failed dialog-stack read left the lock taken and the
error path waited on it for ever)."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

from aiogram.fsm.storage.base import StorageKey
from aiogram.fsm.storage.memory import SimpleEventIsolation

from bot.isolation import UpdateScopedIsolation

KEY = StorageKey(bot_id=1, chat_id=2, user_id=2)


async def test_the_same_update_enters_its_own_lock_again() -> None:
    isolation = UpdateScopedIsolation(SimpleEventIsolation())
    async with isolation.lock(KEY):
        async with asyncio.timeout(1):  # was: waited on itself for ever
            async with isolation.lock(KEY):
                pass


async def test_a_lock_left_open_is_released_at_the_updates_end() -> None:
    isolation = UpdateScopedIsolation(SimpleEventIsolation())
    leaked = AsyncExitStack()  # what aiogram-dialog's StorageProxy keeps when its read fails

    async def failing_update() -> None:
        await leaked.enter_async_context(isolation.lock(KEY))
        await isolation.release_update()  # `IsolationReleaseMiddleware`'s finally

    await asyncio.create_task(failing_update())

    async def next_update() -> bool:
        async with isolation.lock(KEY):
            return True

    assert await asyncio.wait_for(asyncio.create_task(next_update()), 1)
    await leaked.aclose()  # closed late (the garbage collector): nothing of others released


async def test_a_late_close_of_an_old_acquisition_leaves_a_new_one_held() -> None:
    inner = SimpleEventIsolation()
    isolation = UpdateScopedIsolation(inner)
    old = AsyncExitStack()
    await old.enter_async_context(isolation.lock(KEY))
    await isolation.release_update()
    async with isolation.lock(KEY):  # the same task, the next update
        await old.aclose()  # the first update's context finalized only now
        other = asyncio.create_task(_take(isolation))
        await asyncio.sleep(0.05)
        assert not other.done(), "the newer acquisition was released by the old one's close"
    await asyncio.wait_for(other, 1)


async def test_other_updates_wait_for_the_lock() -> None:
    isolation = UpdateScopedIsolation(SimpleEventIsolation())
    async with isolation.lock(KEY):
        other = asyncio.create_task(_take(isolation))
        await asyncio.sleep(0.05)
        assert not other.done()
    await asyncio.wait_for(other, 1)


async def _take(isolation: UpdateScopedIsolation) -> None:
    async with isolation.lock(KEY):
        pass
