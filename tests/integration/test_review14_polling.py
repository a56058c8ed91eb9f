"""Review of issue 14's confirming poller (bot/polling.py) under operator faults: one update
whose handler never ends, and Telegram's update ids starting afresh after a silent week."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update
from structlog.testing import capture_logs

import bot.polling
from bot.polling import ConfirmingPoller
from tests.integration.test_polling_confirm import USER, Gate, answered, start, stop, until
from tests.polling_api import (
    Handler,
    TelegramQueue,
    polling_application,
    sent_per_chat,
    serve_bot_api,
    start_update,
)


async def test_one_update_that_never_ends_does_not_stop_the_bot_for_everyone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Update 1 hangs (a handler waiting on something that never answers). Telegram answers the
    earliest 100 unconfirmed updates; the offset never passes 1, so 101.. are never fetched:
    every other resident is ignored until the process restarts (and then again, as 1 hangs
    again). A per-update deadline (then confirm it) bounds this: 1 is cancelled, logged and
    confirmed, so Telegram does not send it again, after a restart either."""
    monkeypatch.setattr(bot.polling, "UPDATE_DEADLINE", 5.0)  # 120 s in production
    structlog.configure(cache_logger_on_first_use=False)
    api = TelegramQueue()
    api.updates.extend(start_update(n, USER + n) for n in range(1, 131))
    async with serve_bot_api(api) as url:
        async with polling_application(tmp_path, url, max_concurrent_updates=10) as app:
            gate = Gate(closed={1})  # never opened
            with capture_logs() as events:
                polling = await start(app, gate)
                try:
                    await until(lambda: answered(api, *range(2, 101)), "2..100 handled")
                    await until(lambda: answered(api, *range(101, 131)), "101..130 handled")
                finally:
                    await stop(app, polling)

    deadline = [e for e in events if e["event"] == "polling.update_deadline"]
    assert [(e["update_id"], e["log_level"]) for e in deadline] == [(1, "error")]
    assert api.confirmed == 131  # 1 included: Telegram will not hand it out again
    assert sent_per_chat(api)[USER + 1] == 0 and gate.started.count(1) == 1


def update(number: int) -> Update:
    return Update.model_validate({"update_id": number})


def test_update_ids_that_start_afresh_below_the_last_confirmed_one_are_taken() -> None:
    """Bot API: «If there are no new updates for at least a week, then identifier of the next
    update will be chosen randomly instead of sequentially». A long-running poller that
    confirmed up to 1_000_001 then meets update 5_000 skips it as «confirmed already», and
    every later one (5_001, …) too: the bot goes deaf after a quiet week."""
    poller = ConfirmingPoller(None, None, in_flight=1, grace=1.0)  # type: ignore[arg-type]
    poller._accepted(1_000_001)  # what the last getUpdates confirmed, a week ago
    assert poller._take([update(5_000), update(5_001)])  # fresh updates, to be handled


class LockedGate(BaseMiddleware):
    """A message middleware: runs inside the chat's lock (aiogram's FSM middleware took it);
    the updates in `closed` wait there until `opened` is set."""

    def __init__(self, closed: set[int]) -> None:
        self.closed, self.opened, self.entered = closed, asyncio.Event(), asyncio.Event()

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        if data["event_update"].update_id in self.closed:
            self.entered.set()
            await self.opened.wait()
        return await handler(event, data)


async def test_one_residents_taps_behind_their_slow_update_do_not_take_every_slot(
    tmp_path: Path,
) -> None:
    """Resident A's update 1 is slow inside the chat's lock (a city call, up to the city's
    deadline and its retries). A taps four more times: each of those is started, takes one of
    the `updates_in_flight` slots and waits for A's chat lock there (the flood protection runs
    inside the lock, so it does not help). Resident B's update 6 then waits for a slot until
    A's first update ends: one resident (or one attacker) holds up everybody."""
    api = TelegramQueue()
    a, b = USER + 1, USER + 2
    api.updates.extend(start_update(n, a) for n in range(1, 6))
    api.updates.append(start_update(6, b))
    async with serve_bot_api(api) as url:
        async with polling_application(tmp_path, url, max_concurrent_updates=4) as app:
            gate = LockedGate(closed={1})
            app.dispatcher.message.middleware(gate)
            polling = await start(app, Gate())
            try:
                await until(gate.entered.is_set, "A's first update inside its lock")
                await until(lambda: sent_per_chat(api)[b] == 2, "B answered while A's 1 runs")
            finally:
                gate.opened.set()
                await stop(app, polling)
