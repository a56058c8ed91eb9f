"""Operations: the webhook (secret, answered after handling, de-duplicated across replicas,
503 for a failure that passes), readiness that follows PostgreSQL and Redis, metrics that
move, and flood protection. Delivery under faults and kills: test_webhook_delivery.py."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiogram.methods import SendMessage
from redis.asyncio import Redis
from sqlalchemy.exc import OperationalError

from bot.app import Application, create_application
from bot.config import Settings
from bot.web import WEBHOOK_PATH
from sandbox import SandboxServer
from sandbox.telegram_double import LocalTelegram
from storage.token_cipher import TokenCipher
from tests.conftest import POSTGRES_URL, REDIS_URL, fresh_engine, need_service
from tests.proxy import Proxy

SECRET = "s3cret-for-tests"
KEY = TokenCipher.generate_key()


def settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}",
        "bot_token": "123456:TEST-TOKEN",
        "webhook_secret": SECRET,
        "web_port": 0,
        "data_dir": tmp_path,
        "token_encryption_keys": KEY,
        "flood_limit": 0,
        "_env_file": None,
        **overrides,
    }
    return Settings(**values)


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    async with SandboxServer() as server:
        yield server


async def app_for(s: Settings, sandbox: SandboxServer, telegram: LocalTelegram) -> Application:
    return await create_application(s, bot_session=telegram, sandbox=sandbox)


def start_update(update_id: int, user_id: int = 5001) -> dict[str, Any]:
    chat = {"id": user_id, "type": "private", "first_name": "Анна"}
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": 0,
            "chat": chat,
            "from": {"id": user_id, "is_bot": False, "first_name": "Анна"},
            "text": "/start",
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
        },
    }


async def post(app: Application, update: dict[str, Any], secret: str | None = SECRET) -> int:
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
    async with aiohttp.ClientSession() as http:
        async with http.post(app.web_url + WEBHOOK_PATH, json=update, headers=headers) as answer:
            return answer.status


def greetings(telegram: LocalTelegram) -> int:
    return sum(
        1
        for call in telegram.calls
        if isinstance(call, SendMessage) and "Здравствуйте" in str(call.text)
    )


async def test_the_secret_is_checked_before_anything_runs(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    telegram = LocalTelegram()
    app = await app_for(settings(tmp_path), sandbox, telegram)
    try:
        assert await post(app, start_update(1), secret=None) == 401
        assert await post(app, start_update(2), secret="wrong") == 401
        assert greetings(telegram) == 0
        assert await post(app, start_update(3)) == 200
        assert greetings(telegram) == 1
    finally:
        await app.stop()


async def test_a_repeated_update_is_handled_once(tmp_path: Path, sandbox: SandboxServer) -> None:
    telegram = LocalTelegram()
    app = await app_for(settings(tmp_path), sandbox, telegram)
    try:
        assert await post(app, start_update(10)) == 200
        assert await post(app, start_update(10)) == 200
        assert greetings(telegram) == 1
    finally:
        await app.stop()


async def test_two_replicas_sharing_redis_handle_an_update_once(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    url = need_service(REDIS_URL, "TEST_REDIS_URL")
    client = Redis.from_url(url)
    await client.flushdb()
    await client.aclose()
    telegram = LocalTelegram()  # one Telegram, two replicas
    first = await app_for(settings(tmp_path, redis_url=url), sandbox, telegram)
    second = await app_for(settings(tmp_path, redis_url=url), sandbox, telegram)
    try:
        statuses = await asyncio.gather(
            post(first, start_update(20)), post(second, start_update(20))
        )
        # One handles it; the other finds it done (200) or still being handled (503: asked to
        # come back, in case its owner dies) — never handled twice.
        assert sorted(statuses) in ([200, 200], [200, 503])
        assert greetings(telegram) == 1
        assert await post(second, start_update(20)) == 200  # Telegram's redelivery
        assert await post(first, start_update(20)) == 200
        assert greetings(telegram) == 1
    finally:
        await first.stop()
        await second.stop()


async def test_a_transient_failure_answers_503_and_its_redelivery_is_handled(
    tmp_path: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    telegram = LocalTelegram()
    app = await app_for(settings(tmp_path), sandbox, telegram)
    real = type(app.uow_factory).__call__
    failures = iter([OperationalError("SELECT 1", {}, Exception("the database is restarting"))])

    def flaky(self: Any) -> Any:
        error = next(failures, None)
        if error is not None:
            raise error
        return real(self)

    monkeypatch.setattr(type(app.uow_factory), "__call__", flaky)
    try:
        assert await post(app, start_update(30)) == 503
        assert greetings(telegram) == 0
        assert not telegram.calls_of(SendMessage)  # nothing said: Telegram will deliver again
        assert await post(app, start_update(30)) == 200  # Telegram delivers it again
        assert greetings(telegram) == 1
    finally:
        await app.stop()


async def ready(app: Application) -> tuple[int, dict[str, str]]:
    async with aiohttp.ClientSession() as http:
        async with http.get(app.web_url + "/readyz") as answer:
            return answer.status, await answer.json()


async def test_readyz_follows_postgres_and_redis(tmp_path: Path, sandbox: SandboxServer) -> None:
    engine = await fresh_engine("postgres", tmp_path)  # migrated, as production requires
    await engine.dispose()
    pg, rd = urlsplit(POSTGRES_URL), urlsplit(need_service(REDIS_URL, "TEST_REDIS_URL"))
    pg_proxy, redis_proxy = (
        Proxy(pg.hostname or "", pg.port or 5432),
        Proxy(rd.hostname or "", rd.port or 6379),
    )
    await pg_proxy.start()
    await redis_proxy.start()
    database_url = POSTGRES_URL.replace(f":{pg.port}/", f":{pg_proxy.port}/")
    redis_url = REDIS_URL.replace(f":{rd.port}/", f":{redis_proxy.port}/")
    app = await app_for(
        settings(tmp_path, database_url=database_url, redis_url=redis_url), sandbox, LocalTelegram()
    )
    try:
        assert await ready(app) == (200, {"database": "ok", "city": "ok", "redis": "ok"})
        pg_proxy.down()
        status, body = await ready(app)
        assert status == 503 and body["database"] == "failing" and body["redis"] == "ok"
        pg_proxy.restore()
        assert (await ready(app))[0] == 200
        redis_proxy.down()
        status, body = await ready(app)
        assert status == 503 and body["redis"] == "failing" and body["database"] == "ok"
        redis_proxy.restore()
        assert (await ready(app))[0] == 200
    finally:
        await app.stop()
        await pg_proxy.stop()
        await redis_proxy.stop()


def metric(text: str, name: str) -> float:
    return sum(
        float(v) for v in re.findall(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, re.M)
    )


async def scrape(app: Application) -> str:
    async with aiohttp.ClientSession() as http:
        async with http.get(app.web_url + "/metrics") as answer:
            assert answer.status == 200
            return await answer.text()


async def test_metrics_move_with_updates_and_city_calls(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    app = await app_for(settings(tmp_path), sandbox, LocalTelegram())
    try:
        before = await scrape(app)
        assert await post(app, start_update(40)) == 200
        await app.city.ping()
        after = await scrape(app)
        assert metric(after, "bot_updates_total") == metric(before, "bot_updates_total") + 1
        assert metric(after, "bot_handler_seconds_count") > metric(
            before, "bot_handler_seconds_count"
        )
        assert metric(after, "city_request_seconds_count") > metric(
            before, "city_request_seconds_count"
        )
    finally:
        await app.stop()


async def test_flood_protection_slows_one_resident_not_others(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    telegram = LocalTelegram()
    app = await app_for(settings(tmp_path, flood_limit=3), sandbox, telegram)
    try:
        for n in range(6):
            await post(app, start_update(100 + n, user_id=7001))
        await post(app, start_update(200, user_id=7002))
        to_first = [c for c in telegram.calls if isinstance(c, SendMessage) and c.chat_id == 7001]
        slow = [c for c in to_first if "Не так быстро" in str(c.text)]
        assert len(slow) == 1  # said once, not for every extra tap
        assert sum("Здравствуйте" in str(c.text) for c in to_first) == 3
        to_second = [c for c in telegram.calls if isinstance(c, SendMessage) and c.chat_id == 7002]
        assert any("Здравствуйте" in str(c.text) for c in to_second)
    finally:
        await app.stop()
