"""An update's filters run on the event loop: aiogram sends every synchronous callable to a
worker thread (`asyncio.to_thread`, ~90 µs a hop) and magic filters such as `F.text` are
synchronous, so `bot.warmup.inline_sync_filters` makes them run inline at start-up."""

from __future__ import annotations

import asyncio
import sys
import traceback
from collections.abc import Iterator
from typing import Any

import pytest
from aiogram import Router
from aiogram.filters.base import Filter

from bot.warmup import inline_sync_filters
from tests.flows.conftest import Harness

HANDLER_MODULE = "aiogram/dispatcher/event/handler.py"


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Where aiogram sent a callable to a thread (the stack), while the test runs."""
    seen: list[str] = []
    original = asyncio.to_thread

    async def counting(func: Any, /, *args: Any, **kwargs: Any) -> Any:
        if sys._getframe(1).f_code.co_filename.endswith(HANDLER_MODULE):
            seen.append("".join(traceback.format_stack(limit=5)))
        return await original(func, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", counting)
    yield seen


async def test_a_conversation_sends_nothing_to_a_thread(harness: Harness, hops: list[str]) -> None:
    chat = harness.chat()
    await harness.link(chat)
    await chat.send("/start")
    await chat.press("Баллы")
    await chat.press("Назад")
    await chat.send("что-нибудь непонятное")
    reply = await chat.press("Мои счета")
    assert reply.text  # the bot answered every step
    assert hops == [], "\n".join(hops)


async def test_every_filter_of_the_application_is_awaitable(harness: Harness) -> None:
    dispatcher = harness.app.dispatcher  # type: ignore[union-attr]
    sync = [
        repr(check.callback)[:120]
        for router in dispatcher.chain_tail
        for observer in router.observers.values()
        for handler in [*observer.handlers, observer._handler]
        for check in handler.filters or ()
        if not check.awaitable
    ]
    assert sync == []


async def test_inlined_filters_still_decide() -> None:
    """A magic filter and a plain function filter keep their answers inline; a handler that is
    synchronous is left to its thread."""
    from aiogram import F

    router = Router()
    calls: list[str] = []

    def long_text(message: Any) -> bool:
        return len(message.text) > 3

    class AsyncFilter(Filter):
        async def __call__(self, message: Any) -> bool:
            return True

    def sync_handler(message: Any) -> None:
        calls.append(message.text)

    router.message.register(sync_handler, F.text.startswith("a"), long_text, AsyncFilter())
    changed = inline_sync_filters(router)
    assert changed == 2
    [handler] = router.message.handlers
    assert all(check.awaitable for check in handler.filters or ())
    assert handler.awaitable is False  # a handler keeps its thread

    class Message:
        def __init__(self, text: str) -> None:
            self.text = text

    assert (await handler.check(Message("abcd")))[0] is True
    assert (await handler.check(Message("abc")))[0] is False  # too short
    assert (await handler.check(Message("bcde")))[0] is False  # wrong start
    assert inline_sync_filters(router) == 0  # idempotent
