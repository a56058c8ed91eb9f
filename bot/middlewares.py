"""Outer middlewares: de-duplication, flood protection, metrics, log context, and the
resident + unit of work of each update."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update, User

from bot.dedup import DedupStore
from bot.logs import user_hash
from bot.metrics import DUPLICATES, HANDLER_SECONDS, THROTTLED, UPDATES
from storage.uow import UnitOfWorkFactory

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class LogContextMiddleware(BaseMiddleware):
    """Every log line of an update carries its id and a hash of the user id, nothing more."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        update_id = event.update_id if isinstance(event, Update) else None
        with structlog.contextvars.bound_contextvars(
            update_id=update_id, user=user_hash(user.id if user else None)
        ):
            return await handler(event, data)


class UnitOfWorkMiddleware(BaseMiddleware):
    """Opens a unit of work for the update and loads the resident who sent it (None if not
    linked). Handlers commit what they change; whatever they leave uncommitted is rolled back."""

    def __init__(self, factory: UnitOfWorkFactory) -> None:
        self._factory = factory

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        async with self._factory() as uow:
            data["uow"] = uow
            data["resident"] = await uow.residents.get(user.id) if user else None
            return await handler(event, data)


class UpdateDedupMiddleware(BaseMiddleware):
    """An update delivered twice (webhook retries, two replicas) is handled once.

    A marker is set before handling ("processing", short-lived) and kept 24 h after success;
    a failed update drops its marker so that Telegram's redelivery is handled again."""

    def __init__(self, store: DedupStore) -> None:
        self._store = store

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        if not isinstance(event, Update):
            return await handler(event, data)
        bot = data.get("bot")
        key = f"dedup:{bot.id if bot else 0}:{event.update_id}"
        if not await self._store.begin(key):
            DUPLICATES.inc()
            return None
        try:
            result = await handler(event, data)
        except BaseException:
            await self._store.forget(key)
            raise
        await self._store.done(key)
        return result


class ThrottlingMiddleware(BaseMiddleware):
    """Flood protection: a resident hammering buttons gets a gentle «не так быстро» and the
    extra events are dropped; everyone else is served as usual."""

    def __init__(self, store: DedupStore, tr: Any, limit: int = 8, window: int = 2) -> None:
        self._store = store
        self._tr = tr
        self._limit = limit
        self._window = window

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        chat = data.get("event_chat")
        if user is None or not isinstance(event, Update) or (chat and chat.type != "private"):
            return await handler(event, data)  # residents in private chats only; staff are not
        count = await self._store.hit(f"flood:{user.id}", self._window)
        if count <= self._limit:
            return await handler(event, data)
        THROTTLED.inc()
        if count == self._limit + 1:  # said once per window, not for every extra tap
            text = self._tr("error-too-fast")
            if event.callback_query is not None:
                await event.callback_query.answer(text)
            elif event.message is not None:
                await event.message.answer(text)
        elif event.callback_query is not None:
            await event.callback_query.answer()
        return None


class MetricsMiddleware(BaseMiddleware):
    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        if isinstance(event, Update):
            UPDATES.labels(type=event.event_type).inc()
        with HANDLER_SECONDS.time():
            return await handler(event, data)
