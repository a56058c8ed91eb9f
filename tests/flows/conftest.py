"""A whole bot for conversation tests: the real application (Dispatcher, handlers, storage,
web callback) over the in-process Bot API, talking to a real sandbox over HTTP."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.app import Application, create_application
from bot.config import Settings
from domain.accounts import Resident
from sandbox import SandboxServer
from sandbox.browser import demo_login
from sandbox.conversation import Conversation
from sandbox.telegram_double import EventKind, LocalTelegram
from storage.token_cipher import TokenCipher
from tests.conftest import (
    POSTGRES_URL,
    REDIS_URL,
    fresh_engine,
    migrated_sqlite_file,
    need_service,
)
from tests.contract.sandbox_client import FakeClock

START_LINK = re.compile(r"start=(link-[A-Za-z0-9_-]+)")
LINKED_MENU = [
    "🧾 Мои счета",
    "➕ Добавить счёт по УИН",
    "🚗 Штрафы по СТС",
    "💳 Пополнить «Тройку» или парковку",
    "📜 История платежей",
    "📌 Шаблоны",
    "💛 Благотворительность",
    "⭐ Баллы",
    "🔢 Показания счётчиков",
    "📣 Сообщить о проблеме",
    "🗂 Мои обращения",
    "🔁 Автоплатежи",
    "⚙️ Настройки",
    "Отвязать аккаунт",
]

# A dialog button pressed on a message that is no longer the dialog's current one (review 33b).
STALE = "Этот экран устарел — продолжайте в последнем сообщении."


@dataclass
class Harness:
    settings: Settings
    sandbox: SandboxServer
    clock: FakeClock
    telegram: LocalTelegram = field(default_factory=LocalTelegram)
    app: Application | None = None
    _next_update_id: int = 1

    async def start(self) -> Application:
        self.app = await create_application(
            self.settings, bot_session=self.telegram, clock=self.clock, sandbox=self.sandbox
        )
        return self.app

    async def restart(self) -> Application:
        """A new process: new Dispatcher, bot and web server over the same database, state
        storage, sandbox and Telegram."""
        assert self.app is not None
        await self.app.stop()
        return await self.start()

    def chat(self, user_id: int = 100001, first_name: str = "Мария") -> Conversation:
        assert self.app is not None
        first, self._next_update_id = self._next_update_id, self._next_update_id + 100_000
        return Conversation(
            self.app.dispatcher,
            self.app.bot,
            user_id=user_id,
            first_name=first_name,
            first_update_id=first,
        )

    async def stored_resident(self, chat: Conversation) -> Resident | None:
        assert self.app is not None
        async with self.app.uow_factory() as uow:
            return await uow.residents.get(chat.chat_id)

    async def sandbox_call(self, method: str, path: str, **kwargs: Any) -> Any:
        async with aiohttp.ClientSession() as http:
            async with http.request(method, self.sandbox.url + path, **kwargs) as answer:
                assert answer.status == 200, await answer.text()
                return await answer.json()

    async def login_page(self, chat: Conversation, login: str = "demo-full") -> str:
        """Press «Войти через mos.ru» in a browser: log in at the sandbox and land on our
        callback page; returns the page's HTML."""
        url = chat.url_of("mos.ru")
        result = await demo_login(url, login)
        return result.text

    async def link(self, chat: Conversation, login: str = "demo-full") -> str:
        """The whole linking journey; returns what the chat said at the end."""
        await chat.send("/start")
        await chat.press("Привязать")
        page = await self.login_page(chat, login)
        match = START_LINK.search(page)
        assert match, page
        reply = await chat.send(f"/start {match.group(1)}")
        return reply.text


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}",
        "web_port": 0,
        "sandbox_port": 0,
        "data_dir": tmp_path,
        "token_encryption_keys": TokenCipher.generate_key(),
        "city_timeout": 2.0,  # generous: a loaded CI machine must not turn into «city down»
        "city_deadline": 3.0,
        "flood_limit": 0,  # conversations in tests are faster than any thumb
        "_env_file": None,
        **overrides,
    }
    return Settings(**values)


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    async with SandboxServer() as server:
        yield server


@pytest.fixture
def clock() -> FakeClock:
    """Today at noon in Moscow: the sandbox's dates are today's, and noon is outside the
    quiet hours in which only urgent notifications go out."""
    moscow = timezone(timedelta(hours=3))
    return FakeClock(datetime.now(moscow).replace(hour=12, minute=0, second=0, microsecond=0))


# What a resident must never read: an HTML entity shown as text means a value was escaped
# twice; a tag shown as text means markup went out as plain text (a button, an alert) — unless
# the test's own values hold tags on purpose (marker `markup_in_values`).
_ENTITY_SHOWN = re.compile(r"&(?:lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);")
_TAG_SHOWN = re.compile(r"</?(?:b|i|u|s|a|code|pre|blockquote)\b")


def markup_shown(telegram: LocalTelegram, *, tags: bool = True) -> list[str]:
    """Every text, button label or callback alert the bot showed with an HTML entity (or a tag)
    in it."""
    patterns = [_ENTITY_SHOWN, _TAG_SHOWN] if tags else [_ENTITY_SHOWN]
    found: list[str] = []
    for event in telegram.events:
        if event.answer is not None:  # a callback's toast or alert: plain text
            shown = [event.answer.text or ""]
        elif event.message is not None and event.kind in (EventKind.SENT, EventKind.EDITED):
            message = event.message
            shown = [message.text, *(button.text for row in message.keyboard for button in row)]
        else:
            continue
        for text in shown:
            for pattern in patterns:
                found += [f"{hit!r} in {text[:200]!r}" for hit in pattern.findall(text or "")]
    return found


async def _harness(
    settings: Settings, sandbox: SandboxServer, clock: FakeClock, request: pytest.FixtureRequest
):
    harness = Harness(settings=settings, sandbox=sandbox, clock=clock)
    await harness.start()
    try:
        yield harness
    finally:
        if harness.app is not None:
            await harness.app.stop()
    tags = request.node.get_closest_marker("markup_in_values") is None
    assert markup_shown(harness.telegram, tags=tags) == [], "a resident was shown markup as text"


@pytest.fixture
async def harness(
    request: pytest.FixtureRequest, tmp_path: Path, sandbox: SandboxServer, clock: FakeClock
) -> AsyncIterator[Harness]:
    """The embedded defaults: SQLite for data and dialog state (a migrated copy: the start's
    own migration is tested where a test starts on an empty file)."""
    await migrated_sqlite_file(tmp_path / "bot.sqlite3")
    async for h in _harness(settings_for(tmp_path), sandbox, clock, request):
        yield h


@pytest.fixture
async def pg_harness(
    request: pytest.FixtureRequest, tmp_path: Path, sandbox: SandboxServer, clock: FakeClock
) -> AsyncIterator[Harness]:
    """Data in PostgreSQL: transactions that really run side by side (row locks, SKIP LOCKED)."""
    engine = await fresh_engine("postgres", tmp_path)  # production migrates explicitly
    await engine.dispose()
    async for h in _harness(
        settings_for(tmp_path, database_url=POSTGRES_URL), sandbox, clock, request
    ):
        yield h


@pytest.fixture(params=["sqlite", "postgres", "redis"])
async def any_state_harness(
    request: pytest.FixtureRequest, tmp_path: Path, sandbox: SandboxServer, clock: FakeClock
) -> AsyncIterator[Harness]:
    """Data and dialog state in SQLite (embedded), in PostgreSQL, and state in Redis."""
    overrides: dict[str, Any] = {}
    if request.param == "postgres":
        engine = await fresh_engine("postgres", tmp_path)  # production migrates explicitly
        await engine.dispose()
        overrides["database_url"] = POSTGRES_URL
    if request.param == "redis":
        from redis.asyncio import Redis

        url = need_service(REDIS_URL, "TEST_REDIS_URL")
        client = Redis.from_url(url)
        await client.flushdb()
        await client.aclose()
        overrides["redis_url"] = url
    if request.param != "postgres":
        await migrated_sqlite_file(tmp_path / "bot.sqlite3")
    async for h in _harness(settings_for(tmp_path, **overrides), sandbox, clock, request):
        yield h
