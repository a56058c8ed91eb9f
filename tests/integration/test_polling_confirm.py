"""Long polling confirms to Telegram only what was handled (`bot.polling`): the offset sent to
getUpdates never passes an update still being handled, so an update in flight when the
process dies comes back after the restart, and one that finished does not. The real
application and `bot.runners.run_polling` against an HTTP fake Bot API that confirms updates
as Telegram does (tests/polling_api.py)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update
from structlog.testing import capture_logs

import bot.polling
import bot.runners
from bot.album import install_first
from bot.app import Application
from bot.runners import run_polling
from tests.polling_api import (
    Handler,
    InFlight,
    TelegramQueue,
    polling_application,
    sent_per_chat,
    serve_bot_api,
    start_update,
)

USER = 610_000_000  # update n comes from resident USER + n


class Gate(BaseMiddleware):
    """Inside the unit of work: the updates in `closed` wait until `open(n)`; `started` and
    `finished` are update ids in the order they got there."""

    def __init__(self, closed: Iterable[int] = ()) -> None:
        self.gates = {number: asyncio.Event() for number in closed}
        self.started: list[int] = []
        self.finished: list[int] = []

    def open(self, number: int) -> None:
        self.gates[number].set()

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        self.started.append(event.update_id)
        gate = self.gates.get(event.update_id)
        if gate is not None:
            await gate.wait()
        result = await handler(event, data)
        self.finished.append(event.update_id)
        return result


class Fed(BaseMiddleware):
    """Outermost: how many times each update was fed to the dispatcher, and the ones whose
    handling ended (the de-duplication middleware had marked them done)."""

    def __init__(self) -> None:
        self.times: Counter[int] = Counter()
        self.ended: list[int] = []

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        self.times[event.update_id] += 1
        result = await handler(event, data)
        self.ended.append(event.update_id)
        return result


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait for `condition` (checked every 20 ms, 30 s at most)."""
    for _ in range(1500):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"never happened: {what}")


def answered(api: TelegramQueue, *numbers: int) -> bool:
    """Each of the updates got its two messages (a /start: greeting and menu)."""
    sent = sent_per_chat(api)
    return all(sent[USER + number] == 2 for number in numbers)


async def start(app: Application, gate: Gate) -> asyncio.Task[None]:
    app.dispatcher.update.outer_middleware(gate)
    return asyncio.create_task(run_polling(app, retry_delays=(0.05,)))


async def stop(app: Application, polling: asyncio.Task[None]) -> None:
    await app.dispatcher.stop_polling()
    await polling


async def test_an_update_in_flight_when_the_process_dies_comes_back_after_the_restart(
    tmp_path: Path, clean_redis: str
) -> None:
    api = TelegramQueue()
    api.updates.extend(start_update(n, USER + n) for n in (1, 2, 3))
    async with serve_bot_api(api) as url:
        async with polling_application(tmp_path, url, redis_url=clean_redis) as app:
            gate, fed = Gate(closed={2}), Fed()
            install_first(app.dispatcher, fed)
            polling = await start(app, gate)
            await until(
                lambda: {1, 3} <= set(fed.ended) and 2 in gate.started and api.confirmed == 2,
                "1 and 3 handled and 1 confirmed while 2 runs",
            )
            polling.cancel()  # the process dies with update 2 in its handler
            await asyncio.wait({polling})
        assert api.confirmed == 2  # 3 finished too, but not 2: nothing past 2 is confirmed
        assert sent_per_chat(api)[USER + 2] == 0

        before = len(api.answers)
        async with polling_application(tmp_path, url, redis_url=clean_redis) as app:
            gate = Gate()
            polling = await start(app, gate)
            await until(lambda: answered(api, 2), "update 2 handled after the restart")
            await stop(app, polling)

    after_restart = api.delivered(since=before)
    assert after_restart[2] >= 1 and after_restart[1] == 0  # 2 came back, 1 did not
    assert gate.finished == [2]  # 3 came back too (after 2), found done in Redis: not again
    assert sent_per_chat(api) == {USER + 1: 2, USER + 2: 2, USER + 3: 2}
    assert api.confirmed == 4  # the clean stop confirmed the whole prefix


async def test_the_offset_waits_for_an_earlier_update_that_is_still_running(
    tmp_path: Path,
) -> None:
    api = TelegramQueue()
    api.updates.extend(start_update(n, USER + n) for n in range(1, 6))
    async with serve_bot_api(api) as url:
        async with polling_application(tmp_path, url, max_concurrent_updates=5) as app:
            gate = Gate(closed={1})
            polling = await start(app, gate)
            await until(lambda: answered(api, 2, 3, 4, 5), "2..5 handled while 1 runs")
            asked = len(api.offsets)
            await until(lambda: len(api.offsets) >= asked + 2, "two more getUpdates")
            assert set(api.offsets) <= {None, 1}  # 2..5 finished; 1 did not: stays at 1
            assert api.delivered()[3] >= 2  # Telegram repeats 2..5 with every answer…
            assert Counter(gate.started) == {1: 1, 2: 1, 3: 1, 4: 1, 5: 1}  # …started once

            gate.open(1)
            await until(lambda: api.confirmed == 6, "the offset jumps past 5")
            await stop(app, polling)

    sent = [offset for offset in api.offsets if offset is not None]
    assert sent == sorted(sent) and set(sent) == {1, 6}  # from 1 straight to 6
    assert sent_per_chat(api) == {USER + n: 2 for n in range(1, 6)}


async def test_an_update_that_takes_long_holds_back_at_most_a_batch_without_polling_in_a_loop(
    tmp_path: Path,
) -> None:
    """Telegram answers the earliest 100 unconfirmed updates, and 1 cannot be confirmed while
    it runs: 2..100 are handled, 101..120 wait for it, and polling waits for the offset to
    move instead of asking for the same hundred again and again."""
    api = TelegramQueue()
    api.updates.extend(start_update(n, USER + n) for n in range(1, 121))
    async with serve_bot_api(api) as url:
        async with polling_application(tmp_path, url, max_concurrent_updates=10) as app:
            gate = Gate(closed={1})
            polling = await start(app, gate)
            await until(lambda: answered(api, *range(2, 101)), "2..100 handled while 1 runs")
            asked = len(api.offsets)
            await asyncio.sleep(0.5)  # long enough for a loop to ask many times
            assert len(api.offsets) == asked  # a full batch of known updates: wait
            assert max(api.delivered()) == 100 and set(gate.started) == set(range(1, 101))

            gate.open(1)
            await until(lambda: answered(api, *range(1, 121)), "1 and then 101..120 handled")
            await stop(app, polling)

    assert sent_per_chat(api) == {USER + n: 2 for n in range(1, 121)}
    assert api.confirmed == 121


async def test_a_burst_is_handled_four_at_a_time_each_update_once(tmp_path: Path) -> None:
    residents = 300
    api = TelegramQueue()
    api.updates.extend(start_update(n, USER + n) for n in range(1, residents + 1))
    async with serve_bot_api(api) as url:
        async with polling_application(tmp_path, url, max_concurrent_updates=4) as app:
            counter, fed = InFlight(), Fed()
            install_first(app.dispatcher, counter, fed)
            polling = await start(app, Gate())
            await until(lambda: answered(api, *range(1, residents + 1)), "all answered")
            await stop(app, polling)

    assert app.settings.updates_in_flight == 4
    assert counter.most == 4  # bounded, and the bound was used
    assert fed.times == {n: 1 for n in range(1, residents + 1)}  # each fed once
    assert sent_per_chat(api) == {USER + n: 2 for n in range(1, residents + 1)}
    assert api.confirmed == residents + 1
    assert max(len(answer) for answer in api.answers) <= 100


async def test_a_clean_stop_lets_updates_finish_and_leaves_the_rest_to_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bot.runners, "POLL_GRACE", 1.0)
    api = TelegramQueue()
    api.updates.extend(start_update(n, USER + n) for n in (1, 2, 3))
    async with serve_bot_api(api) as url:
        async with polling_application(tmp_path, url) as app:
            gate = Gate(closed={2, 3})
            polling = await start(app, gate)
            await until(lambda: answered(api, 1) and {2, 3} <= set(gate.started), "2, 3 run")
            stopping = asyncio.create_task(app.dispatcher.stop_polling())
            stop_signal = app.dispatcher._stop_signal
            await until(lambda: stop_signal is not None and stop_signal.is_set(), "stopping")
            gate.open(2)  # finishes within the grace; 3 never does
            await stopping
            await polling
            assert answered(api, 2)
            assert api.confirmed == 3  # 1 and 2, confirmed on the way out; 3 is not

        before = len(api.answers)
        async with polling_application(tmp_path, url) as app:
            polling = await start(app, Gate())
            await until(lambda: answered(api, 3), "update 3 handled by the next run")
            await stop(app, polling)

    assert api.delivered(since=before).keys() == {3}
    assert sent_per_chat(api) == {USER + 1: 2, USER + 2: 2, USER + 3: 2}


class Timeline(BaseMiddleware):
    """Outside the gate: ("start", n) and ("end", n) as each update enters and leaves."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        self.events.append(("start", event.update_id))
        try:
            return await handler(event, data)
        finally:
            self.events.append(("end", event.update_id))

    def started(self) -> list[int]:
        return [number for what, number in self.events if what == "start"]

    def most_at_once(self, numbers: set[int]) -> int:
        """The most of `numbers` running at the same time."""
        now = most = 0
        for what, number in self.events:
            if number in numbers:
                now += 1 if what == "start" else -1
                most = max(most, now)
        return most


async def test_a_chats_updates_run_one_at_a_time_in_order_while_other_chats_pass(
    tmp_path: Path,
) -> None:
    """Chat A's first update is slow: A's later ones wait for it without taking a slot, in
    order; B's and C's, fetched after them, are handled meanwhile."""
    a, b, c = USER + 1, USER + 2, USER + 3
    chats = {1: a, 2: a, 3: b, 4: a, 5: c, 6: b, 7: a, 8: c}
    api = TelegramQueue()
    api.updates.extend(start_update(n, chat) for n, chat in chats.items())
    async with serve_bot_api(api) as url:
        async with polling_application(tmp_path, url, max_concurrent_updates=2) as app:
            timeline, gate = Timeline(), Gate(closed={1})
            app.dispatcher.update.outer_middleware(timeline)
            polling = await start(app, gate)
            await until(lambda: {3, 5, 6, 8} <= set(gate.finished), "B and C handled")
            assert set(timeline.started()) == {1, 3, 5, 6, 8}  # A's 2, 4, 7 wait for 1
            gate.open(1)
            await until(lambda: {1, 2, 4, 7} <= set(gate.finished), "A's handled after 1")
            await stop(app, polling)

    a_updates = {n for n, chat in chats.items() if chat == a}
    assert [n for n in timeline.started() if n in a_updates] == [1, 2, 4, 7]
    assert timeline.most_at_once(a_updates) == 1
    assert Counter(timeline.started()) == {n: 1 for n in chats}
    assert sent_per_chat(api)[b] >= 2 and sent_per_chat(api)[c] >= 2
    assert api.confirmed == 9


async def test_a_batch_of_one_chats_updates_behind_a_hung_one_does_not_stop_the_bot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """All 100 updates Telegram hands out are chat A's and A's first never ends: nothing else
    can be fetched before the offset passes it. The deadline ends it, A's others run one by
    one, and resident B's update 101 is fetched and answered: no deadlock."""
    monkeypatch.setattr(bot.polling, "UPDATE_DEADLINE", 5.0)  # far above a /start
    a, b = USER + 1, USER + 2
    api = TelegramQueue()
    api.updates.extend(start_update(n, a) for n in range(1, 101))
    api.updates.append(start_update(101, b))
    async with serve_bot_api(api) as url:
        async with polling_application(tmp_path, url, max_concurrent_updates=4) as app:
            timeline, gate = Timeline(), Gate(closed={1})  # 1 is never opened
            app.dispatcher.update.outer_middleware(timeline)
            polling = await start(app, gate)
            await until(lambda: sent_per_chat(api)[b] == 2, "B answered")
            await until(lambda: api.confirmed == 102, "everything confirmed")
            await stop(app, polling)

    started = timeline.started()
    assert [n for n in started if n != 101] == list(range(1, 101))  # A's in order…
    assert Counter(started) == {n: 1 for n in range(1, 102)}  # …each once, and B's once
    assert timeline.most_at_once(set(range(1, 101))) == 1


class CancelsItself(BaseMiddleware):
    """Update `number` ends with CancelledError raised inside its handling (a handler awaiting
    a task someone cancelled), though nobody cancelled the update's own task."""

    def __init__(self, number: int) -> None:
        self.number = number

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        if event.update_id == self.number:
            raise asyncio.CancelledError
        return await handler(event, data)


async def test_an_update_that_ends_cancelled_does_not_pin_the_offset(tmp_path: Path) -> None:
    structlog.configure(cache_logger_on_first_use=False)
    api = TelegramQueue()
    api.updates.extend(start_update(n, USER + n) for n in (1, 2))
    async with serve_bot_api(api) as url:
        async with polling_application(tmp_path, url) as app:
            app.dispatcher.update.outer_middleware(CancelsItself(1))
            with capture_logs() as events:
                polling = await start(app, Gate())
                await until(lambda: answered(api, 2) and api.confirmed == 3, "past 1 and 2")
                await stop(app, polling)

    cancelled = [e for e in events if e["event"] == "polling.update_cancelled"]
    assert [(e["update_id"], e["log_level"]) for e in cancelled] == [(1, "error")]
