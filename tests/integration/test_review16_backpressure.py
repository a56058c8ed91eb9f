"""Review 16: an adversarial look at the backpressure promises (bounded concurrency, nothing
confirmed before it is handled, transient pool failures retried, each update answered once,
memory bounded by nothing a resident controls) — polling, webhook and the in-memory fallbacks.

Telegram is the HTTP fake Bot API of tests/polling_api.py (Telegram's confirmation rule) or
the webhook's own HTTP endpoint; the database, Redis and the city are real."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update

import bot.runners
from bot.album import albums_of, install_first
from bot.app import Application, create_application
from bot.ratelimit import MemoryLimiter
from bot.web import WEBHOOK_PATH
from sandbox import SandboxServer
from tests.flows.conftest import settings_for
from tests.integration.test_polling_confirm import Fed, Gate, answered, start, stop, until
from tests.integration.test_wheel import TOKEN
from tests.polling_api import (
    Handler,
    TelegramQueue,
    polling_application,
    sent_per_chat,
    serve_bot_api,
    start_update,
)

USER = 610_000_000  # as tests/integration/test_polling_confirm.py: update n is from USER + n


# ---- the in-memory send limiter: bounded by nothing a resident controls ----------------------


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def _limiter_entries(limiter: MemoryLimiter) -> int:
    """Every per-chat or per-slot record the limiter keeps."""
    return len(limiter._chats) + len(limiter._in_flight) + len(limiter._window)


# Was (review): MemoryLimiter._chats keeps every chat ever sent to, for good: grows with
# residents
async def test_the_memory_send_limiter_forgets_chats_whose_interval_passed() -> None:
    """The outbox's limiter without Redis (bot/app.py: `MemoryLimiter()`): each chat sent to
    leaves a «last message» stamp. A stamp older than the chat interval says nothing any more
    (the chat may be sent to at once), so keeping it only grows the process with the number of
    distinct residents ever notified."""
    time = FakeTime()
    limiter = MemoryLimiter(clock=time, sleep=time.sleep)
    chats = 5_000
    for chat in range(1, chats + 1):
        assert await limiter.acquire(chat) == 0.0
        await limiter.answered(chat, accepted=True)
        time.now += 0.05  # 20 a second: within the bot-wide budget
    time.now += 3600  # an hour later every chat's interval passed long ago
    for chat in range(chats + 1, chats + 11):  # a few more sends
        assert await limiter.acquire(chat) == 0.0
        await limiter.answered(chat, accepted=True)
    # bounded by the sends of the last interval (and the window), not by every chat ever seen
    assert _limiter_entries(limiter) <= 100, _limiter_entries(limiter)


async def test_the_memory_send_limiter_still_spaces_one_chats_messages() -> None:
    """What the bound must keep: a chat sent to less than the interval ago still waits."""
    time = FakeTime()
    limiter = MemoryLimiter(clock=time, sleep=time.sleep)
    assert await limiter.acquire(1) == 0.0
    await limiter.answered(1, accepted=True)
    time.now += 0.25
    assert await limiter.acquire(1) == pytest.approx(0.75)


# ---- polling without Redis: what finished before a stop is not handled again ----------------


# Was (review): without Redis the done markers live in process memory (MemoryDedup): an update
# finished but unconfirmed (behind a slower one) is handled and answered again after restart
async def test_polling_without_redis_answers_a_finished_update_once_across_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`python -m bot poll` with DATABASE_URL and no REDIS_URL is a supported production set-up
    (README: «REDIS_URL … unset: state in the database»). Polling confirms only the finished
    prefix, so update 3, finished while 2 still runs, stays unconfirmed; a deploy's SIGTERM then
    cancels 2 after the grace. Telegram hands 2 and 3 out again to the next process: 2 must be
    handled, 3 must not be answered a second time (bot/polling.py relies on «the
    de-duplication marker keeps what finished from being handled twice»)."""
    monkeypatch.setattr(bot.runners, "POLL_GRACE", 3.0)  # 3 ends within it under load
    api = TelegramQueue()
    api.updates.extend(start_update(n, USER + n) for n in (1, 2, 3))
    async with serve_bot_api(api) as url:
        async with polling_application(tmp_path, url) as app:
            assert app.settings.redis_url is None
            gate = Gate(closed={2})  # 2 is slow: it never ends in this run
            polling = await start(app, gate)
            await until(lambda: answered(api, 1, 3) and 2 in gate.started, "1, 3 done; 2 runs")
            await stop(app, polling)  # SIGTERM: 2 gets the grace, then is cancelled
            assert api.confirmed == 2  # 3 finished, but sits behind 2: unconfirmed

        async with polling_application(tmp_path, url) as app:
            gate = Gate()
            polling = await start(app, gate)
            await until(lambda: answered(api, 2), "update 2 handled by the next run")
            await until(lambda: api.confirmed == 4, "the next run confirms 2 and 3")
            await stop(app, polling)

    assert sent_per_chat(api) == {USER + 1: 2, USER + 2: 2, USER + 3: 2}


# ---- polling without Redis: an album confirmed to Telegram before it is handled --------------


def album_part(update_id: int, user_id: int, message_id: int, group: str) -> dict[str, Any]:
    """One photo of an album in a resident's private chat."""
    person = {"id": user_id, "is_bot": False, "first_name": "Житель", "language_code": "ru"}
    size = {"file_id": f"photo-{message_id}", "file_unique_id": f"u{message_id}"}
    return {
        "update_id": update_id,
        "message": {
            "message_id": message_id,
            "date": 1_700_000_000,
            "chat": {"id": user_id, "type": "private", "first_name": "Житель"},
            "from": person,
            "media_group_id": group,
            "photo": [{**size, "width": 320, "height": 240}],
        },
    }


# Was (review): an album part is confirmed (offset past it, marker done) once buffered in
# memory; a clean stop neither drains nor keeps the buffer, so the album is never handled
async def test_polling_without_redis_never_confirms_an_album_it_then_drops_on_a_clean_stop(
    tmp_path: Path,
) -> None:
    """Without Redis the album buffer is process memory (bot/album.py). Its parts are answered
    at once and polling confirms them, though only a background task holds them. A deploy's
    SIGTERM a moment later stops polling (the grace covers only the updates in flight, not the
    album tasks) and the process ends: Telegram will not send the parts again and the next
    run never hears of them — the resident's photos got no answer at all."""
    chat = USER + 77
    api = TelegramQueue()
    api.updates.extend(album_part(n, chat, 10 + n, "alb-1") for n in (1, 2))
    seen: list[int] = []
    async with serve_bot_api(api) as url:
        async with polling_application(tmp_path, url) as app:
            for middleware in albums_of(app.dispatcher):
                middleware.debounce = 5.0  # deterministic: the stop comes before the deadline
            gate = Gate()
            polling = await start(app, gate)
            await until(lambda: api.confirmed == 3, "both parts confirmed to Telegram")
            await stop(app, polling)  # SIGTERM: nothing is in flight, polling ends at once
            seen += gate.started
            for middleware in albums_of(app.dispatcher):
                await middleware.abandon()  # asyncio.run cancels what is left as the process ends

        async with polling_application(tmp_path, url) as app:
            gate, asked = Gate(), len(api.offsets)
            polling = await start(app, gate)
            await until(lambda: len(api.offsets) > asked, "the next run polls")
            await stop(app, polling)
            seen += gate.started

    assert seen, "the album was confirmed to Telegram and never handled"


# ---- a dry dialog-state pool when an update arrives: retried, not lost ------------------------


class Attempts(BaseMiddleware):
    """Inner to polling's retry: counts each attempt at an update."""

    def __init__(self) -> None:
        self.count = 0
        self.first = asyncio.Event()

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        self.count += 1
        try:
            return await handler(event, data)
        finally:
            self.first.set()


async def _hold_pool(app: Application, taken: asyncio.Event, until_: asyncio.Event) -> None:
    """Every connection of the dialog-state pool (size 1 + overflow 1) taken, as a burst of
    other updates would, and given back once the first attempt at the update ended."""
    assert app.state_engine is not None
    held = [await app.state_engine.connect() for _ in range(2)]
    taken.set()
    try:
        await asyncio.wait_for(until_.wait(), 10)
    finally:
        for connection in held:
            await connection.close()


# Was (review): aiogram-dialog's error middleware reloads the stack from the dry pool and ends
# in KeyError('aiogd_context'): classified deterministic, marked done, never retried — lost
async def test_a_dialog_state_pool_timeout_is_retried_and_the_update_answered(
    tmp_path: Path,
) -> None:
    """DATABASE_POOL_SIZE=1, a short POOL_TIMEOUT, no Redis (dialog state in the database, in
    a pool of its own). The state pool is dry when /start arrives and free again a moment
    later. The promise: a pool timeout is a transient failure that is retried (polling's
    TransientRetryMiddleware), never a lost update."""
    api = TelegramQueue()
    api.updates.append(start_update(1, USER + 1))
    async with serve_bot_api(api) as url:
        async with polling_application(
            tmp_path, url, database_pool_size=1, pool_timeout=0.2
        ) as app:
            attempts = Attempts()
            install_first(app.dispatcher, attempts)
            taken = asyncio.Event()
            holder = asyncio.create_task(_hold_pool(app, taken, attempts.first))
            await taken.wait()
            polling = await start(app, Gate())
            await until(lambda: api.confirmed == 2, "update 1 finished and confirmed")
            await stop(app, polling)
            await asyncio.gather(holder, return_exceptions=True)
    assert attempts.count >= 2  # the timeout was retried
    assert sent_per_chat(api) == {USER + 1: 2}  # greeting and menu, once each


# ---- the webhook: the same update delivered to two replicas at once --------------------------


class Hold(BaseMiddleware):
    """Inner to de-duplication: each update handled waits for `release`; `entered` counts."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.entered: list[int] = []

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        self.entered.append(event.update_id)
        await self.release.wait()
        return await handler(event, data)


SECRET = "review16-secret"


async def _post(http: aiohttp.ClientSession, app: Application, body: dict[str, Any]) -> int:
    async with http.post(
        app.web_url + WEBHOOK_PATH,
        json=body,
        headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
    ) as response:
        return response.status


async def test_one_update_posted_to_two_replicas_at_once_is_handled_once_and_the_other_retried(
    tmp_path: Path, clean_redis: str
) -> None:
    api = TelegramQueue()
    async with serve_bot_api(api) as url, SandboxServer() as city:
        values = settings_for(
            tmp_path,
            bot_token=TOKEN,
            bot_api_url=url,
            redis_url=clean_redis,
            webhook_secret=SECRET,
            max_concurrent_updates=2,
        )
        first = await create_application(values, sandbox=city)
        second = await create_application(values, sandbox=city)
        try:
            holds = Hold(), Hold()
            fed = Fed(), Fed()
            for app, hold, outer in zip((first, second), holds, fed, strict=True):
                install_first(app.dispatcher, outer)
                app.dispatcher.update.outer_middleware(hold)
            body = start_update(41, USER + 41)
            async with aiohttp.ClientSession() as http:
                one = asyncio.create_task(_post(http, first, body))
                await until(lambda: holds[0].entered == [41], "the first replica handles it")
                other = await _post(http, second, body)  # a parallel redelivery
                assert other == 503  # busy elsewhere: Telegram must ask again, not forget it
                assert holds[1].entered == []
                holds[0].release.set()
                assert await one == 200
                holds[1].release.set()
                assert await _post(http, second, body) == 200  # done: nothing handled again
            assert holds[1].entered == []
            assert sent_per_chat(api) == {USER + 41: 2}
        finally:
            await first.stop()
            await second.stop()
