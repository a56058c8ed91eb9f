"""The per-update resident context: built once by the unit-of-work middleware, following the
resident a handler links or unlinks during the update, refusing the unlinked."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

import pytest
from aiogram.types import Chat, Message, Update, User

from bot.middlewares import UnitOfWorkMiddleware
from domain.errors import NotLinked
from domain.limits import DEFAULT_LIMITS, AmountLimits
from handlers.context import CONTEXT_KEY, ResidentContext, context_of

NOW = datetime(2026, 3, 20, 9, 30, tzinfo=UTC)


class _Residents:
    def __init__(self, known: dict[int, object]) -> None:
        self.known = known

    async def get(self, user_id: int) -> object | None:
        return self.known.get(user_id)

    async def peek(self, user_id: int) -> object | None:  # the middleware's, at the start
        return self.known.get(user_id)


class _Uow:
    def __init__(self, known: dict[int, object]) -> None:
        self.residents = _Residents(known)

    async def __aenter__(self) -> _Uow:
        return self

    async def __aexit__(self, *_: object) -> None:
        return None

    async def release_idle(self) -> bool:  # before a city call (bot.middlewares)
        return False


def _update() -> Update:
    user = User(id=7, is_bot=False, first_name="A")
    message = Message(message_id=1, date=NOW, chat=Chat(id=7, type="private"), from_user=user)
    return Update(update_id=1, message=message)


async def _context(data: dict[str, Any], known: dict[int, object]) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def handler(_event: Any, handler_data: dict[str, Any]) -> None:
        seen.update(handler_data)

    middleware = UnitOfWorkMiddleware(cast(Any, lambda: _Uow(known)))
    await middleware(handler, _update(), {"event_from_user": _update().message.from_user, **data})
    return seen


async def test_the_middleware_builds_one_context_from_the_workflow_data() -> None:
    resident = SimpleNamespace(telegram_user_id=7)
    limits = AmountLimits(payment=100_00, donation=50_00, autopay=10_00)
    ticks: list[datetime] = []

    def clock() -> datetime:
        ticks.append(NOW)
        return NOW

    data = await _context(
        {"city": "the city", "tr": "the texts", "clock": clock, "limits": limits}, {7: resident}
    )
    ctx = data[CONTEXT_KEY]
    assert isinstance(ctx, ResidentContext)
    assert (ctx.uow, ctx.city, ctx.tr, ctx.resident, ctx.now, ctx.limits) == (
        data["uow"],
        "the city",
        "the texts",
        resident,
        NOW,
        limits,
    )
    assert ctx.acting == (data["uow"], "the city", "the city", resident)
    assert len(ticks) == 1  # the clock is read once per update


async def test_without_the_workflow_data_there_is_no_context() -> None:
    data = await _context({}, {})
    assert CONTEXT_KEY not in data and data["resident"] is None


def test_the_context_follows_a_resident_changed_during_the_update() -> None:
    before, after = SimpleNamespace(telegram_user_id=7), SimpleNamespace(telegram_user_id=7)
    ctx = ResidentContext(
        uow=cast(Any, None), city=cast(Any, None), tr=cast(Any, None),
        resident=cast(Any, before), now=NOW,
    )  # fmt: skip
    data: dict[str, Any] = {CONTEXT_KEY: ctx, "resident": before}
    manager = cast(Any, SimpleNamespace(middleware_data=data))
    assert context_of(manager) is ctx  # unchanged: the same object
    data["resident"] = after  # linked again during this update
    assert context_of(manager).resident is after and data[CONTEXT_KEY].resident is after
    data["resident"] = None  # unlinked (handlers/account.py)
    with pytest.raises(NotLinked):
        context_of(manager).acting  # noqa: B018 - the property raises
    assert context_of(manager).limits == DEFAULT_LIMITS
