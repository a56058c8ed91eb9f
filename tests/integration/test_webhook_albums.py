"""Albums through the webhook as Telegram delivers them: one part per request, each answered
before the next is sent, possibly to different replicas — still one step, as with polling."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from bot.album import DUE_KEY, albums_of, drain
from bot.app import Application, create_application
from bot.jobs import sweep_albums
from bot.web import WEBHOOK_PATH
from sandbox import SandboxServer
from sandbox.conversation import Conversation
from tests.conftest import REDIS_URL, need_service
from tests.contract.sandbox_client import FakeClock
from tests.flows.conftest import Harness, settings_for
from tests.flows.test_receipt_photo import epd_qr, receipt_photo
from tests.flows.test_reports import ARBAT_10, photo, start_pothole
from tests.money_text import nb

SECRET = "album-secret"
DEBOUNCE = 0.3  # seconds: short for tests; correctness never depends on it being short
LONG = 60.0  # seconds: a debounce that never fires within a test
_update_ids = itertools.count(700_000)


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    async with SandboxServer() as server:
        yield server


@pytest.fixture
def clock() -> FakeClock:
    moscow = timezone(timedelta(hours=3))
    return FakeClock(datetime.now(moscow).replace(hour=12, minute=0, second=0, microsecond=0))


async def fresh_redis() -> str:
    url = need_service(REDIS_URL, "TEST_REDIS_URL")
    client = Redis.from_url(url)
    await client.flushdb()
    await client.aclose()
    return url


@pytest.fixture
async def harness(
    tmp_path: Path, sandbox: SandboxServer, clock: FakeClock
) -> AsyncIterator[Harness]:
    h = Harness(
        settings=settings_for(tmp_path, webhook_secret=SECRET), sandbox=sandbox, clock=clock
    )
    await h.start()
    try:
        yield h
    finally:
        if h.app is not None:
            await h.app.stop()


@pytest.fixture
async def replicas(
    tmp_path: Path, sandbox: SandboxServer, clock: FakeClock
) -> AsyncIterator[tuple[Harness, Application]]:
    """Two replicas sharing Redis, the database and Telegram: a harness and a second app."""
    settings = settings_for(tmp_path, webhook_secret=SECRET, redis_url=await fresh_redis())
    first = Harness(settings=settings, sandbox=sandbox, clock=clock)
    await first.start()
    assert first.app is not None
    second = await create_application(
        settings, bot_session=first.telegram, clock=clock, sandbox=sandbox
    )
    try:
        yield first, second
    finally:
        await second.stop()
        await first.app.stop()


def set_debounce(app: Application, seconds: float) -> None:
    for middleware in albums_of(app.dispatcher):
        middleware.debounce = seconds


def part(chat: Conversation, content: dict[str, Any]) -> dict[str, Any]:
    """A resident's message as Telegram would POST it."""
    message = chat.telegram.incoming_message(chat.chat_id, chat.user, content)
    return {"update_id": next(_update_ids), "message": message}


def album_parts(chat: Conversation, pictures: list[bytes], group: str) -> list[dict[str, Any]]:
    return [
        part(chat, {"photo": chat.telegram.register_photo(data), "media_group_id": group})
        for data in pictures
    ]


async def post(app: Application, update: dict[str, Any]) -> int:
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    async with aiohttp.ClientSession() as http:
        async with http.post(app.web_url + WEBHOOK_PATH, json=update, headers=headers) as answer:
            return answer.status


async def deliver(apps: list[Application], updates: list[dict[str, Any]]) -> None:
    """Telegram's way: one update at a time, each answered before the next is sent; the
    replicas take turns."""
    for app, update in zip(itertools.cycle(apps), updates, strict=False):
        assert await post(app, update) == 200


async def at_photo_step(harness: Harness) -> Conversation:
    chat = await start_pothole(harness)
    await chat.send_location(*ARBAT_10)
    assert "Пришлите фото" in chat.last_text
    return chat


def photo_answers(texts: list[str]) -> list[str]:
    return [text for text in texts if "Фото добавлено" in text or "не больше" in text]


async def photos_in_draft(chat: Conversation) -> str:
    await chat.press("Дальше")
    await chat.press("Пропустить")
    return chat.last_text


async def test_three_parts_posted_one_after_another_are_one_step(harness: Harness) -> None:
    assert harness.app is not None
    set_debounce(harness.app, DEBOUNCE)
    chat = await at_photo_step(harness)
    await deliver([harness.app], album_parts(chat, [photo(10), photo(80), photo(160)], "g1"))
    await drain(harness.app.dispatcher)
    answers = photo_answers(chat.inbox().texts)
    assert len(answers) == 1 and "Фото добавлено: 3 из 5" in answers[0]
    assert "Фото: 3" in await photos_in_draft(chat)


async def test_parts_alternating_between_two_replicas_are_one_step(
    replicas: tuple[Harness, Application],
) -> None:
    first, second = replicas
    assert first.app is not None
    for app in (first.app, second):
        set_debounce(app, DEBOUNCE)
    chat = await at_photo_step(first)
    parts = album_parts(chat, [photo(10), photo(80), photo(160)], "g2")
    await deliver([first.app, second], parts)
    await drain(first.app.dispatcher)
    await drain(second.dispatcher)
    answers = photo_answers(chat.inbox().texts)
    assert len(answers) == 1 and "Фото добавлено: 3 из 5" in answers[0]
    assert "Фото: 3" in await photos_in_draft(chat)


async def test_six_photos_posted_part_by_part_are_refused_together(harness: Harness) -> None:
    assert harness.app is not None
    set_debounce(harness.app, DEBOUNCE)
    chat = await at_photo_step(harness)
    pictures = [photo(n) for n in range(10, 70, 10)]
    await deliver([harness.app], album_parts(chat, pictures, "g3"))
    await drain(harness.app.dispatcher)
    answers = photo_answers(chat.inbox().texts)
    assert len(answers) == 1 and "не больше 5 фото" in answers[0]
    await chat.press("Пропустить")
    await chat.press("Пропустить")
    assert "Фото: 0" in chat.last_text


async def test_two_receipts_posted_part_by_part_are_both_answered(harness: Harness) -> None:
    assert harness.app is not None
    set_debounce(harness.app, DEBOUNCE)
    chat = harness.chat()
    await harness.link(chat)
    receipts = [receipt_photo(epd_qr()), receipt_photo(epd_qr(Sum="100000"))]
    await deliver([harness.app], album_parts(chat, receipts, "g4"))
    await drain(harness.app.dispatcher)
    text = chat.inbox().text
    assert nb("8 124,50 ₽") in text and nb("1 000,00 ₽") in text
    assert {nb("Оплатить № 1 — 8 124,50 ₽"), nb("Оплатить № 2 — 1 000,00 ₽")} <= set(chat.buttons)


async def test_the_next_message_of_the_chat_comes_after_the_album(harness: Harness) -> None:
    """Telegram's per-chat order: a message after the parts means the album is complete, so
    it is answered first, without waiting for the debounce."""
    assert harness.app is not None
    set_debounce(harness.app, LONG)
    chat = await at_photo_step(harness)
    parts = album_parts(chat, [photo(10), photo(80)], "g5")
    await deliver([harness.app], [*parts, part(chat, {"text": "вот"})])
    texts = chat.inbox().texts
    added = next(i for i, t in enumerate(texts) if "Фото добавлено: 2 из 5" in t)
    asked = next(i for i, t in enumerate(texts) if "Здесь нужны фото" in t)
    assert added < asked


async def test_a_group_left_by_a_dead_replica_is_handled_on_the_next_update(
    replicas: tuple[Harness, Application],
) -> None:
    first, second = replicas
    assert first.app is not None
    set_debounce(first.app, LONG)
    chat = await at_photo_step(first)
    await deliver([first.app], album_parts(chat, [photo(10), photo(80), photo(160)], "g6"))
    for middleware in albums_of(first.app.dispatcher):  # the first replica dies
        await middleware.abandon()
    assert photo_answers(chat.inbox().texts) == []
    await deliver([second], [part(chat, {"text": "ну что?"})])
    texts = chat.inbox().texts
    assert "Фото добавлено: 3 из 5" in texts[0]  # the album first, then the message
    assert any("Здесь нужны фото" in text for text in texts[1:])
    assert "Фото: 3" in await photos_in_draft(chat)


async def test_a_group_left_by_a_dead_replica_is_swept_without_another_update(
    replicas: tuple[Harness, Application],
) -> None:
    """The parts were answered 200, so Telegram never sends them again, and the resident waits
    for an answer instead of writing: the other replica's sweep job finds the overdue group
    and handles it — once, however many replicas sweep."""
    first, second = replicas
    assert first.app is not None
    set_debounce(first.app, LONG)  # the replica dies before its debounce fires
    chat = await at_photo_step(first)
    await deliver([first.app], album_parts(chat, [photo(10), photo(80)], "g7"))
    for middleware in albums_of(first.app.dispatcher):
        await middleware.abandon()
    assert await sweep_albums(second) == 0  # not overdue yet: a live replica may take it
    redis = Redis.from_url(first.settings.redis_url or "")
    try:  # its deadline long past (as after LONG + SWEEP_GRACE seconds)
        [group] = await redis.zrange(DUE_KEY, 0, -1)
        await redis.zadd(DUE_KEY, {group: 0})
    finally:
        await redis.aclose()
    assert await sweep_albums(second) == 1
    assert await sweep_albums(second) == 0  # taken once
    answers = photo_answers(chat.inbox().texts)
    assert len(answers) == 1 and "Фото добавлено: 2 из 5" in answers[0], answers
    assert "Фото: 2" in await photos_in_draft(chat)
