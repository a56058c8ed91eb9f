"""The per-chat lock as each update holds it: re-entered by the update itself, released at its
end whatever failed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from aiogram import BaseMiddleware
from aiogram.fsm.storage.base import BaseEventIsolation, StorageKey
from aiogram.types import TelegramObject


class UpdateScopedIsolation(BaseEventIsolation):
    """An event isolation (aiogram's per-chat lock) around another, whose locks belong to the
    update (the task) that took them.

    aiogram-dialog takes the dialog stack's lock and then reads the stack
    (`StorageProxy.load_stack`); when that read fails (a database connection cut, SQLite
    busy), nothing releases the lock, and its error path then asks for the same lock again:
    the update waited on itself for ever and every later update of that chat behind it, until
    a restart (review 35b). Here a lock the update already holds is entered again at once, and
    `release_update` (by `IsolationReleaseMiddleware`, around the whole update) releases what
    the update still holds when it ends. Locks of other updates wait as before."""

    def __init__(self, inner: BaseEventIsolation) -> None:
        self.inner = inner
        self._held: dict[asyncio.Task[Any] | None, dict[StorageKey, AsyncExitStack]] = {}

    @asynccontextmanager
    async def lock(self, key: StorageKey) -> AsyncIterator[None]:
        task = asyncio.current_task()
        held = self._held.setdefault(task, {})
        if key in held:  # the same update again (aiogram-dialog's error path)
            yield
            return
        stack = AsyncExitStack()
        try:
            await stack.enter_async_context(self.inner.lock(key))
        except BaseException:
            if not held:
                self._held.pop(task, None)
            raise
        held[key] = stack
        try:
            yield
        finally:
            # this very acquisition only: one left open and released by `release_update` may
            # be closed later by the garbage collector, when the same task (a test feeding
            # updates one after another) holds the key again
            await self._release(task, key, stack)

    async def _release(
        self, task: asyncio.Task[Any] | None, key: StorageKey, stack: AsyncExitStack | None
    ) -> None:
        held = self._held.get(task)
        if held is None or key not in held or (stack is not None and held[key] is not stack):
            return
        taken = held.pop(key)
        if not held:
            del self._held[task]
        await taken.aclose()

    async def release_update(self) -> None:
        """Release every lock the current update (task) still holds."""
        task = asyncio.current_task()
        for key in list(self._held.get(task, ())):
            await self._release(task, key, None)

    async def close(self) -> None:
        await self.inner.close()


class IsolationReleaseMiddleware(BaseMiddleware):
    """The outermost update middleware: whatever the update did or raised, the per-chat locks
    it still holds are released when it ends (`UpdateScopedIsolation.release_update`)."""

    def __init__(self, isolation: UpdateScopedIsolation) -> None:
        self.isolation = isolation

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        try:
            return await handler(event, data)
        finally:
            await self.isolation.release_update()
