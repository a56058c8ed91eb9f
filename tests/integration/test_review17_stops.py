"""Review 17: an adversarial look at what the last commits promise about stops and restarts
without Redis — the polling ledger of finished-but-unconfirmed updates (`bot.polling.
StorageLedger`), albums buffered in memory handled on a clean stop (`bot.album.settle_now`) —
and at the OAuth callback's claim committed before the city calls.

Telegram is the HTTP fake Bot API of tests/polling_api.py (Telegram's confirmation rule); the
database, Redis and the city sandbox are real."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.methods import SendMessage
from aiogram.types import TelegramObject, Update
from redis.asyncio import Redis

import bot.runners
from bot.album import AlbumMiddleware, MemoryAlbumBuffer
from bot.polling import LEDGER_KEPT, StorageLedger
from domain.errors import CityUnavailable
from tests.conftest import REDIS_URL, need_service
from tests.integration.test_polling_confirm import Gate, answered, start, stop, until
from tests.integration.test_review16_backpressure import album_part
from tests.integration.test_wheel import TOKEN
from tests.polling_api import TelegramQueue, polling_application, sent_per_chat, serve_bot_api
from tests.polling_api import start_update as _start

USER = 610_000_000  # as tests/integration/test_polling_confirm.py: update n is from USER + n


class Clock:
    """The ledger's clock (unix seconds), moved by hand."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _ledger_with(monkeypatch: pytest.MonkeyPatch, clock: Clock) -> None:
    """`run_polling` builds its StorageLedger with this clock (and a short grace)."""
    # Long enough for update 3, answered, to finish its end (its ledger entry) on a loaded
    # machine — 0.2 s cut it off under the full suite now and then; update 2, held by its
    # gate, is cancelled after it either way.
    monkeypatch.setattr(bot.runners, "POLL_GRACE", 3.0)
    monkeypatch.setattr(
        bot.runners,
        "StorageLedger",
        lambda storage, bot_id: StorageLedger(storage, bot_id, clock),
    )


async def _run_one_finished_behind_a_slow_one(tmp_path: Path, url: str, api: TelegramQueue) -> None:
    """Updates 1, 2, 3: 2 never ends in this run, 3 finishes behind it; a clean stop keeps
    3 in the ledger (Telegram's offset stays at 2)."""
    async with polling_application(tmp_path, url) as app:
        assert app.settings.redis_url is None
        gate = Gate(closed={2})
        polling = await start(app, gate)
        await until(lambda: answered(api, 1, 3) and 2 in gate.started, "1, 3 done; 2 runs")
        await stop(app, polling)
        assert api.confirmed == 2
        assert await StorageLedger(app.storage, app.bot.id).recall() == {3}


# ---- the ledger: trusted for 24 hours, not renewed by runs that never saw its ids -------------


# Was (review): ConfirmingPoller._keep_finished re-stamps recalled ids a run never saw again
# (confirmed is None): a chain of quiet restarts keeps them trusted past 24 h
async def test_recalled_ids_a_run_never_saw_are_not_trusted_again_for_another_day(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run 1 keeps update 3 (finished behind the slow 2). Then the bot is quiet: Telegram
    dropped 2 and 3 (it keeps an update 24 h) and no new update comes. A deploy restarts the
    bot every 20 hours; each run sees no update at all, so it never learns an offset
    (`_confirmed` stays None) and its clean stop writes the recalled {3} back with a fresh
    stamp. After a quiet week Telegram starts its ids afresh at random (Bot API getUpdates)
    — the ledger's «trusted 24 h» is what keeps a stale id from swallowing a new update, and
    the chain of quiet runs has renewed it for days. A new update that happens to get id 3 is
    then skipped and the resident's /start is never answered."""
    clock = Clock()
    _ledger_with(monkeypatch, clock)
    api = TelegramQueue()
    api.updates.extend(_start(n, USER + n) for n in (1, 2, 3))
    async with serve_bot_api(api) as url:
        await _run_one_finished_behind_a_slow_one(tmp_path, url, api)
        api.updates.clear()  # a day later Telegram dropped what was never confirmed
        for _ in range(9):  # nine quiet deploys, 20 hours apart: 180 hours
            clock.now += 20 * 3600
            async with polling_application(tmp_path, url) as app:
                asked = len(api.offsets)
                polling = await start(app, Gate())
                await until(lambda n=asked: len(api.offsets) > n, "the quiet run polls")
                await stop(app, polling)
        assert clock.now - 1_800_000_000.0 > 7 * LEDGER_KEPT  # over a week since 3 finished
        # Telegram's ids start afresh: the first new update happens to be number 3
        fresh = _start(3, USER + 33)
        api.updates.append(fresh)
        async with polling_application(tmp_path, url) as app:
            polling = await start(app, Gate())
            await until(lambda: api.confirmed == 4, "the new update 3 is confirmed")
            await stop(app, polling)
    assert sent_per_chat(api)[USER + 33] == 2, "a new update was skipped by a week-old ledger"


async def test_a_crash_after_a_kept_ledger_skips_nothing_the_next_run_should_handle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run 1 keeps {3}. Run 2 handles 2 (skips 3), then 4; 5 is running when it crashes (no
    clean stop: the ledger is not rewritten). Run 3 recalls the old {3} again: it must still
    handle 5 — and 4 only once more at most (no Redis: a crash loses the done markers)."""
    clock = Clock()
    _ledger_with(monkeypatch, clock)
    api = TelegramQueue()
    api.updates.extend(_start(n, USER + n) for n in (1, 2, 3))
    async with serve_bot_api(api) as url:
        await _run_one_finished_behind_a_slow_one(tmp_path, url, api)
        clock.now += 60
        async with polling_application(tmp_path, url) as app:
            gate = Gate(closed={5})
            polling = await start(app, gate)
            await until(lambda: answered(api, 2), "2 handled by run 2")
            api.updates.extend(_start(n, USER + n) for n in (4, 5))
            await until(lambda: answered(api, 4) and 5 in gate.started, "4 done, 5 runs")
            polling.cancel()  # a crash: nothing clean on the way out
            await asyncio.gather(polling, return_exceptions=True)
            # the dispatcher's own lock is left as a dead process would leave it: a new app
        clock.now += 60
        async with polling_application(tmp_path, url) as app:
            polling = await start(app, Gate())
            await until(lambda: answered(api, 5), "5 handled by run 3")
            await until(lambda: api.confirmed == 6, "everything confirmed")
            await stop(app, polling)
            assert await StorageLedger(app.storage, app.bot.id, clock).recall() == set()
    sent = sent_per_chat(api)
    assert sent[USER + 3] == 2  # never twice
    assert sent[USER + 5] == 2
    assert sent[USER + 4] in (2, 4)


async def test_a_ledger_of_another_bot_token_skips_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The operator gives the process another bot's token: the older bot's ledger (the same
    update ids, fresh) must not make the new bot skip its own updates."""
    clock = Clock()
    _ledger_with(monkeypatch, clock)
    api = TelegramQueue()
    api.updates.extend(_start(n, USER + n) for n in (1, 2))
    async with serve_bot_api(api) as url:
        async with polling_application(tmp_path, url) as app:
            other = Bot("123456:" + "B" * 35)
            try:
                await StorageLedger(app.storage, other.id, clock).keep({1, 2})
            finally:
                await other.session.close()
            polling = await start(app, Gate())
            await until(lambda: answered(api, 1, 2), "both handled")
            await stop(app, polling)


async def test_with_redis_the_database_ledger_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With REDIS_URL the done markers outlive the process in Redis: no ledger is written
    (in Redis or elsewhere), and a ledger left in the database by an earlier run without
    Redis is not read — the update it names is handled as Redis decides."""
    monkeypatch.setattr(bot.runners, "POLL_GRACE", 3.0)  # as `_ledger_with`: 3 ends within it
    redis_url = need_service(REDIS_URL, "TEST_REDIS_URL")
    redis = Redis.from_url(redis_url)
    await redis.flushdb()
    api = TelegramQueue()
    api.updates.extend(_start(n, USER + n) for n in (1, 2, 3))
    try:
        async with serve_bot_api(api) as url:
            async with polling_application(tmp_path, url, redis_url=redis_url) as app:
                gate = Gate(closed={2})
                polling = await start(app, gate)
                await until(lambda: answered(api, 1, 3) and 2 in gate.started, "1, 3; 2 runs")
                await stop(app, polling)
                assert api.confirmed == 2
            assert [key async for key in redis.scan_iter("*polling*")] == []
            async with polling_application(tmp_path, url, redis_url=redis_url) as app:
                polling = await start(app, Gate())
                await until(lambda: answered(api, 2) and api.confirmed == 4, "2 handled")
                await stop(app, polling)
            assert [key async for key in redis.scan_iter("*polling*")] == []
    finally:
        await redis.flushdb()
        await redis.aclose()
    assert sent_per_chat(api) == {USER + 1: 2, USER + 2: 2, USER + 3: 2}


# ---- settle_now: an album whose handling fails on the stop ------------------------------------


def _part(update_id: int, message_id: int, group: str, chat: int = 620_000_178) -> Update:
    return Update.model_validate(album_part(update_id, chat, message_id, group))


async def test_an_album_failing_transiently_on_the_stop_is_retried_within_the_grace() -> None:
    """The city is away for the first try of the album settled on the stop: its retry (the
    album task is its own redelivery) runs within the grace and the album is handled once."""
    middleware = AlbumMiddleware(MemoryAlbumBuffer(), debounce=60.0)
    middleware.retries = (0.01, 0.01)
    tries: list[int] = []

    async def flaky(event: TelegramObject, data: dict[str, Any]) -> Any:
        tries.append(len(data["album"]))
        if len(tries) == 1:
            raise CityUnavailable()
        return None

    bot_ = Bot(TOKEN)
    try:
        for n in (1, 2):
            assert await middleware(flaky, _part(n, 10 + n, "t"), {"bot": bot_}) is None
        await middleware.settle_now(grace=5.0)
    finally:
        await bot_.session.close()
    assert tries == [2, 2]
    assert middleware._waiters == {}


async def test_an_album_failing_for_good_on_the_stop_is_tried_once_and_the_stop_goes_on() -> None:
    """A bug in the album's handling on the stop: tried once (not the retries), logged, the
    stop goes on; a part arriving after the stop is handled alone, and the failed album is not
    handled a second time with it."""
    middleware = AlbumMiddleware(MemoryAlbumBuffer(), debounce=60.0)
    middleware.retries = (0.01, 0.01)
    seen: list[tuple[int, int]] = []

    async def buggy(event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        album = data.get("album") or ()
        seen.append((event.update_id, len(album)))
        if album:
            raise TelegramBadRequest(SendMessage(chat_id=1, text="x"), "Bad Request: broken")
        return None

    bot_ = Bot(TOKEN)
    try:
        for n in (1, 2):
            assert await middleware(buggy, _part(n, 10 + n, "d"), {"bot": bot_}) is None
        await middleware.settle_now(grace=5.0)
        await middleware(buggy, _part(3, 13, "d"), {"bot": bot_})  # the album's late part
    finally:
        await bot_.session.close()
    assert seen == [(1, 2), (3, 0)]


async def test_a_part_in_flight_behind_an_earlier_album_is_neither_lost_nor_doubled() -> None:
    """Chat's album A is being handled (slow); B's first part arrives and waits for A (a
    message proves A complete); the stop begins meanwhile. A is handled once with its parts,
    B's part once, alone (nothing would handle it after the stop), and B's second part, which
    arrives after the stop, once and alone too."""
    middleware = AlbumMiddleware(MemoryAlbumBuffer(), debounce=60.0)
    release = asyncio.Event()
    seen: list[tuple[int, int]] = []

    async def record(event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        album = data.get("album") or ()
        seen.append((event.update_id, len(album)))
        if album:
            await release.wait()
        return None

    bot_ = Bot(TOKEN)
    try:
        for n in (1, 2):
            assert await middleware(record, _part(n, 10 + n, "A"), {"bot": bot_}) is None
        b1 = asyncio.create_task(middleware(record, _part(3, 13, "B"), {"bot": bot_}))
        await until(lambda: seen == [(1, 2)], "A handled (hurried by B's part)")
        stopping = asyncio.create_task(middleware.settle_now(grace=5.0))
        await asyncio.sleep(0.05)
        release.set()
        await b1
        await stopping
        await middleware(record, _part(4, 14, "B"), {"bot": bot_})
    finally:
        await bot_.session.close()
    assert sorted(seen) == [(1, 2), (3, 0), (4, 0)]
    assert middleware._waiters == {}
