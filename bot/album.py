"""Albums as one event: Telegram sends an album as one message per photo, with a shared
`media_group_id`; the report flow wants them as a single step (one answer, all-or-nothing).

aiogram has no built-in for this. The first message of an album waits briefly while the others
arrive and are collected, then it alone goes on with `data["album"]`. It must run before
aiogram's FSM middleware, which holds a per-chat lock for the whole handling: behind that lock
the other photos could not arrive until the first was done. One process sees one album (with
webhook replicas Telegram may spread an album over replicas; then each part is its own step).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Dispatcher
from aiogram.types import Message, TelegramObject, Update

ALBUM_WAIT = 0.4  # seconds; Telegram delivers an album's parts back to back


class AlbumMiddleware(BaseMiddleware):
    def __init__(self, wait: float = ALBUM_WAIT) -> None:
        self._wait = wait
        self._albums: dict[str, list[Message]] = {}

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        message = event.message if isinstance(event, Update) else None
        if message is None or message.media_group_id is None:
            return await handler(event, data)
        key = f"{message.chat.id}:{message.media_group_id}"
        if key in self._albums:
            self._albums[key].append(message)
            return None
        self._albums[key] = [message]
        try:
            await asyncio.sleep(self._wait)
        finally:
            album = self._albums.pop(key)
        data["album"] = sorted(album, key=lambda m: m.message_id)
        return await handler(event, data)


def install_first(dispatcher: Dispatcher, *middlewares: BaseMiddleware) -> None:
    """Put middlewares in front of the update middlewares the Dispatcher registered (its FSM
    middleware, which takes the per-chat lock); aiogram only appends, so re-register."""
    registered = list(dispatcher.update.outer_middleware)
    for existing in registered:
        dispatcher.update.outer_middleware.unregister(existing)
    for middleware in (*middlewares, *registered):
        dispatcher.update.outer_middleware(middleware)
