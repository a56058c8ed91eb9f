"""Outer middlewares: log context, and the resident + unit of work of each update."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update, User

from bot.logs import user_hash
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
