"""A webhook that never loops and never loses (PostgreSQL, Redis, the sandbox, the webhook):

- a failure that would repeat (a bug, a Bot API 400) is told once and answered 200, however
  often Telegram delivers it;
- a failure that passes (Redis, the database or Telegram unreachable) answers 503 and says
  nothing; its redelivery is handled once;
- a replica SIGKILLed while the city charges for «Оплатить» loses nothing: the other replica
  is asked to come back while the dead one's lease lives, takes the update over when it
  lapses, and the city is charged once; the per-chat lock lapses within its short lease;
- a redelivered press whose callback was answered is handled without an error;
- the heartbeat keeps a long handler's marker and lock alive.

Leases are shortened (seconds) for speed; the production defaults are checked separately."""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.methods import AnswerCallbackQuery, SendMessage, TelegramMethod
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from bot import dedup
from bot.app import Application
from bot.dedup import LeasedRedisEventIsolation, RedisDedup
from bot.middlewares import UnitOfWorkMiddleware, UpdateDedupMiddleware
from bot.web import WEBHOOK_PATH
from sandbox import SandboxServer
from sandbox.app import create_app as create_sandbox_app
from sandbox.telegram_double import Fault, LocalTelegram
from tests.conftest import POSTGRES_URL, REDIS_URL, fresh_engine, need_service
from tests.contract.sandbox_client import FakeClock
from tests.flows.conftest import Harness, settings_for
from tests.integration.test_operations import (
    KEY,
    SECRET,
    app_for,
    greetings,
    settings,
    start_update,
)
from tests.proxy import Proxy

ROOT = Path(__file__).resolve().parents[2]
ERROR_TEXT = "Что-то пошло не так"


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    """An empty, migrated PostgreSQL database and an empty Redis db: (database, redis) URLs."""
    redis_url = need_service(REDIS_URL, "TEST_REDIS_URL")
    engine = await fresh_engine("postgres", tmp_path)
    await engine.dispose()
    client = Redis.from_url(redis_url)
    await client.flushdb()
    try:
        yield POSTGRES_URL, redis_url
    finally:
        await client.flushdb()
        await client.aclose()


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    async with SandboxServer() as server:
        yield server


async def deliver(url: str, update: dict[str, Any]) -> tuple[int, str | None]:
    """One delivery as Telegram makes it: the status and the Retry-After header."""
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    async with aiohttp.ClientSession() as http:
        async with http.post(url + WEBHOOK_PATH, json=update, headers=headers) as answer:
            return answer.status, answer.headers.get("Retry-After")


def greeted(telegram: LocalTelegram, chat_id: int = 5001) -> int:
    """Greetings the resident received (refused attempts are not counted)."""
    return sum("Здравствуйте" in m.text for m in telegram.messages(chat_id))


def told_errors(telegram: LocalTelegram) -> int:
    return sum(ERROR_TEXT in str(call.text) for call in telegram.calls_of(SendMessage))


def errors_counted() -> float:
    return REGISTRY.get_sample_value("bot_errors_total") or 0.0


_query_ids = itertools.count(1)


def press(telegram: LocalTelegram, chat_id: int, button: str, update_id: int) -> dict[str, Any]:
    """The update of a press on the newest button starting with `button` in the chat; the
    query is announced to the Bot API double (as Telegram would know it)."""
    for message in reversed(telegram.messages(chat_id)):
        found = [b for b in message.buttons if b.text.startswith(button) and b.callback_data]
        if found:
            query_id = f"q-{chat_id}-{next(_query_ids)}"
            telegram.open_callback_query(query_id)
            user = {"id": chat_id, "is_bot": False, "first_name": "Мария"}
            query = {
                "id": query_id,
                "from": user,
                "message": dict(message.payload),
                "chat_instance": f"local-{chat_id}",
                "data": found[0].callback_data,
            }
            return {"update_id": update_id, "callback_query": query}
    raise AssertionError(f"no button {button!r} in chat {chat_id}")


def last_text(telegram: LocalTelegram, chat_id: int) -> str:
    return telegram.messages(chat_id)[-1].text


# ---- (a) told once ------------------------------------------------------------------------


class RefuseGreeting:
    """A Bot session middleware: the Bot API refuses the greeting with a 400, every time."""

    def __init__(self) -> None:
        self.refused = 0

    async def __call__(self, make_request: Any, bot: Bot, method: TelegramMethod[Any]) -> Any:
        if isinstance(method, SendMessage) and "Здравствуйте" in str(method.text):
            self.refused += 1
            raise TelegramBadRequest(method, "Bad Request: can't parse entities")
        return await make_request(bot, method)


@pytest.mark.parametrize("failure", ["bug", "bot_api_400"])
async def test_a_failure_that_would_repeat_is_told_once(
    tmp_path: Path,
    sandbox: SandboxServer,
    services: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
    failure: str,
) -> None:
    database_url, redis_url = services
    telegram = LocalTelegram()
    app = await app_for(
        settings(tmp_path, database_url=database_url, redis_url=redis_url), sandbox, telegram
    )
    if failure == "bug":

        async def broken(*_args: Any) -> Any:
            raise RuntimeError("a bug in a handler")

        monkeypatch.setattr(UnitOfWorkMiddleware, "__call__", broken)
    else:
        refuse = RefuseGreeting()
        app.bot.session.middleware(refuse)
    before = errors_counted()
    try:
        statuses = [await deliver(app.web_url, start_update(50)) for _ in range(5)]
        assert statuses == [(200, None)] * 5  # nothing for Telegram to retry
        assert told_errors(telegram) == 1  # not once per delivery
        assert errors_counted() == before + 1  # logged and counted once
        if failure == "bot_api_400":
            assert refuse.refused == 1  # handled once, not five times
    finally:
        await app.stop()


# ---- (b) retried, handled once ------------------------------------------------------------


async def test_a_passing_outage_is_retried_and_handled_once(
    tmp_path: Path, sandbox: SandboxServer, services: tuple[str, str]
) -> None:
    database_url, redis_url = services
    pg_host, pg_port = database_url.split("@", 1)[1].split("/", 1)[0].split(":")
    rd_host, rd_port = redis_url.split("//", 1)[1].split("/", 1)[0].split(":")
    pg_proxy, redis_proxy = Proxy(pg_host, int(pg_port)), Proxy(rd_host, int(rd_port))
    await pg_proxy.start()
    await redis_proxy.start()
    telegram = LocalTelegram()
    app = await app_for(
        settings(
            tmp_path,
            database_url=database_url.replace(f":{pg_port}/", f":{pg_proxy.port}/"),
            redis_url=redis_url.replace(f":{rd_port}/", f":{redis_proxy.port}/"),
        ),
        sandbox,
        telegram,
    )
    try:
        redis_proxy.down()  # Redis unreachable for one delivery
        assert (await deliver(app.web_url, start_update(60)))[0] == 503
        redis_proxy.restore()
        assert await deliver(app.web_url, start_update(60)) == (200, None)
        assert greeted(telegram) == 1

        pg_proxy.down()  # the database unreachable for one delivery
        assert (await deliver(app.web_url, start_update(61)))[0] == 503
        pg_proxy.restore()
        assert await deliver(app.web_url, start_update(61)) == (200, None)
        assert greeted(telegram) == 2

        telegram.fail_next(SendMessage, Fault.SERVER_ERROR)  # Telegram's 5xx on the answer
        assert (await deliver(app.web_url, start_update(62)))[0] == 503
        telegram.fail_next(SendMessage, Fault.RETRY_AFTER, retry_after=4)  # flood control
        assert await deliver(app.web_url, start_update(62)) == (503, "4")
        assert await deliver(app.web_url, start_update(62)) == (200, None)
        assert await deliver(app.web_url, start_update(62)) == (200, None)
        assert greeted(telegram) == 3  # each update greeted once, after its outage

        assert told_errors(telegram) == 0  # no «что-то пошло не так» for a passing outage
    finally:
        await app.stop()
        await pg_proxy.stop()
        await redis_proxy.stop()


# ---- (d) a press whose callback was answered ----------------------------------------------


async def test_a_redelivered_press_whose_callback_was_answered_is_handled(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    """A press our own code answers (here the fallback's «кнопка устарела» toast; also the
    error handlers and the report buttons) — aiogram-dialog's renders tolerate a stale query
    by themselves, these did not."""
    telegram = LocalTelegram()
    app = await app_for(settings(tmp_path), sandbox, telegram)
    try:
        telegram.register_user({"id": 5001, "is_bot": False, "first_name": "Анна"})
        old = InlineKeyboardButton(text="Старая кнопка", callback_data="from-an-old-version")
        keyboard = InlineKeyboardMarkup(inline_keyboard=[[old]])
        await app.bot.send_message(5001, "Меню прошлой версии", reply_markup=keyboard)
        stale = press(telegram, 5001, "Старая кнопка", update_id=71)  # nobody knows it
        shown = len(telegram.messages(5001))
        # The first delivery answered the query, then its replica died before it finished
        # (its marker lapsed): the redelivery's own answer is refused as «query is too old».
        assert await app.bot.answer_callback_query(stale["callback_query"]["id"])
        assert await deliver(app.web_url, stale) == (200, None)
        assert len(telegram.calls_of(AnswerCallbackQuery)) == 2  # asked again, and refused
        assert len(telegram.messages(5001)) == shown + 1  # handled: the menu is brought back
        assert told_errors(telegram) == 0
    finally:
        await app.stop()


# ---- (e) the heartbeat ---------------------------------------------------------------------


async def test_the_heartbeat_keeps_a_long_handlers_marker_and_lock(
    tmp_path: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    redis_url = need_service(REDIS_URL, "TEST_REDIS_URL")
    redis = Redis.from_url(redis_url, decode_responses=True)
    await redis.flushdb()
    lease = 0.4  # seconds: the handler below runs for several leases
    monkeypatch.setattr(dedup, "PROCESSING_LEASE", lease)
    monkeypatch.setattr(dedup, "LOCK_LEASE", lease)
    entered, leave = asyncio.Event(), asyncio.Event()
    real = UnitOfWorkMiddleware.__call__

    async def long_handler(self: Any, handler: Any, event: Any, data: Any) -> Any:
        entered.set()
        await leave.wait()  # a city call near CITY_DEADLINE
        return await real(self, handler, event, data)

    monkeypatch.setattr(UnitOfWorkMiddleware, "__call__", long_handler)
    telegram = LocalTelegram()
    app = await app_for(settings(tmp_path, redis_url=redis_url), sandbox, telegram)
    try:
        delivery = asyncio.create_task(deliver(app.web_url, start_update(80)))
        await entered.wait()
        marker = f"dedup:{app.bot.id}:80"
        owner = await redis.get(marker)
        assert str(owner).startswith("processing:")  # decode_responses: str
        locks = [key async for key in redis.scan_iter(match="*:lock")]
        assert locks  # aiogram's per-chat lock
        renewed = dict.fromkeys([marker, *locks], 0)
        last = {key: await redis.pttl(key) for key in renewed}
        for _ in range(500):  # until each was renewed often enough to outlive its lease
            if min(renewed.values()) >= 5:
                break
            await asyncio.sleep(lease / 8)
            for key in renewed:
                ttl = await redis.pttl(key)
                assert ttl > 0, f"{key!r} lapsed while its handler was running"
                renewed[key] += ttl > last[key]
                last[key] = ttl
            assert await redis.get(marker) == owner  # the same owner throughout
        assert min(renewed.values()) >= 5
        leave.set()
        assert await delivery == (200, None)
        assert greetings(telegram) == 1
        assert await redis.get(marker) == "done"
        assert not await redis.exists(*locks)  # released at the end, not left to lapse
    finally:
        leave.set()
        await app.stop()
        await redis.flushdb()
        await redis.aclose()


async def test_the_default_leases_in_redis_are_short(redis_url: str) -> None:
    """Production leases as Redis holds them: an update ≤ 10 s, a chat ≤ 5 s (PTTL)."""
    redis = Redis.from_url(redis_url)
    await redis.flushdb()
    isolation = LeasedRedisEventIsolation(redis)
    middleware = UpdateDedupMiddleware(RedisDedup(redis))
    seen: dict[str, int] = {}

    async def handler(_event: Any, _data: dict[str, Any]) -> None:
        from aiogram.fsm.storage.base import StorageKey

        async with isolation.lock(StorageKey(bot_id=1, chat_id=2, user_id=2)):
            (lock,) = [key async for key in redis.scan_iter(match="*:lock")]
            seen["lock"] = await redis.pttl(lock)
            seen["marker"] = await redis.pttl("dedup:0:1")

    from aiogram.types import Update

    await middleware(handler, Update.model_validate({"update_id": 1}), {})
    assert 0 < seen["lock"] <= 5000
    assert 0 < seen["marker"] <= 10_000
    await redis.flushdb()
    await redis.aclose()


# ---- (c) a replica killed while the city charges (last: its process starts early) -----


class PaymentGate:
    """A sandbox middleware: once armed, a payment is charged and then its answer is held
    until the caller is gone — the replica dies after the city charged, before it knew."""

    def __init__(self) -> None:
        self.armed = False
        self.charged = asyncio.Event()
        self.release = asyncio.Event()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not (self.armed and request.method == "POST" and request.path == "/api/v1/payments"):
            return await handler(request)
        self.armed = False
        response = await handler(request)
        self.charged.set()
        await self.release.wait()
        return response


@pytest.fixture(scope="module", autouse=True)
def replica_process() -> Iterator[subprocess.Popen[bytes]]:
    """The replica to be killed, started with the module so that its slow import (aiogram's
    models) overlaps the tests before the kill test; configured by `configure_replica`."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.replica_process"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    yield process
    if process.poll() is None:
        process.kill()
    process.wait()


async def configure_replica(
    process: subprocess.Popen[bytes], tmp_path: Path, values: dict[str, Any], leases: str
) -> str:
    """Hand the replica its settings; its webhook's URL once it serves."""
    assert process.stdin is not None and process.stdout is not None
    config = {
        "settings": {**values, "data_dir": str(tmp_path / "replica")},
        "leases": leases.split(","),
    }
    process.stdin.write(json.dumps(config).encode() + b"\n")
    process.stdin.flush()
    async with asyncio.timeout(60):
        while True:
            line = (await asyncio.to_thread(process.stdout.readline)).decode()
            assert line, "the replica process ended before it was ready"
            if line.startswith("ready "):
                return line.split()[1]


async def wait_until_gone(redis: Redis, key: str) -> None:
    """Poll Redis (the key's owner is another process: there is nothing to wait on)."""
    for _ in range(300):
        if not await redis.exists(key):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{key!r} never lapsed")


async def test_a_replica_killed_while_paying_loses_nothing_and_charges_once(
    tmp_path: Path,
    services: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
    replica_process: subprocess.Popen[bytes],
) -> None:
    database_url, redis_url = services
    marker_lease, lock_lease = 2.0, 1.5  # seconds, short for the test
    monkeypatch.setattr(dedup, "PROCESSING_LEASE", marker_lease)
    monkeypatch.setattr(dedup, "LOCK_LEASE", lock_lease)
    gate = PaymentGate()
    sandbox_app = create_sandbox_app()
    sandbox_app.middlewares.append(gate.middleware)
    redis = Redis.from_url(redis_url, decode_responses=True)
    async with SandboxServer(sandbox_app) as sandbox:
        values = {
            "database_url": database_url,
            "redis_url": redis_url,
            "city_api_url": sandbox.url,
            "token_encryption_keys": KEY,
            "webhook_secret": SECRET,
            "web_port": 0,
            "flood_limit": 0,
            "city_timeout": 2.0,
            "city_deadline": 3.0,
        }
        leases = f"{marker_lease},{lock_lease}"
        starting = asyncio.create_task(configure_replica(replica_process, tmp_path, values, leases))
        other = Harness(
            settings=settings_for(
                tmp_path,
                database_url=database_url,
                redis_url=redis_url,
                webhook_secret=SECRET,
                token_encryption_keys=KEY,
            ),
            sandbox=sandbox,
            clock=FakeClock(datetime.now(UTC)),
        )
        app: Application = await other.start()
        try:
            telegram = other.telegram
            chat = other.chat()
            await other.link(chat)
            await chat.press("Мои счета")
            await chat.press("Оплатить все")
            assert "К оплате" in chat.last_text
            doomed_url = await starting

            # «Оплатить» reaches the doomed replica; the city charges; the replica is killed
            # before it hears back (and before its marker or its lock could be cleaned up).
            pay = press(telegram, chat.chat_id, "Оплатить", update_id=900_001)
            gate.armed = True
            first = asyncio.create_task(deliver(doomed_url, pay))
            async with asyncio.timeout(15):
                await gate.charged.wait()
            marker = f"dedup:{app.bot.id}:900001"
            assert str(await redis.get(marker)).startswith("processing:")
            assert 0 < await redis.pttl(marker) <= marker_lease * 1000
            # The resident's chat, held by the doomed replica: aiogram's FSM lock and
            # aiogram-dialog's stack lock, both through the same leased isolation.
            locks = [key async for key in redis.scan_iter(match="*:lock")]
            assert len(locks) == 2
            for lock in locks:
                assert 0 < await redis.pttl(lock) <= lock_lease * 1000 <= 5000
            replica_process.send_signal(signal.SIGKILL)
            await asyncio.to_thread(replica_process.wait)
            with pytest.raises(aiohttp.ClientError):
                await first  # what Telegram saw: no answer
            gate.release.set()
            assert len((await other.sandbox_call("GET", "/sandbox/ledger"))["charges"]) == 1

            # Telegram redelivers to the other replica: while the dead one's lease lives it
            # is asked to come back — not told «done», which would lose the payment.
            status, retry_after = await deliver(app.web_url, pay)
            assert status == 503 and retry_after is not None and 1 <= int(retry_after) <= 5
            assert "Оплачено" not in last_text(telegram, chat.chat_id)

            # Nobody renews the dead replica's lease or lock: both lapse, and the next
            # redelivery is handled.
            await wait_until_gone(redis, marker)
            for lock in locks:
                await wait_until_gone(redis, lock)
            assert await deliver(app.web_url, pay) == (200, None)
            assert "✅ Оплачено" in last_text(telegram, chat.chat_id)
            charges = (await other.sandbox_call("GET", "/sandbox/ledger"))["charges"]
            assert len(charges) == 1  # the same idempotency key: charged once
            assert await redis.get(marker) == "done"
            assert await deliver(app.web_url, pay) == (200, None)  # a late copy: nothing

            # The resident's next press is handled at once.
            done = press(telegram, chat.chat_id, "Готово", update_id=900_002)
            assert await deliver(app.web_url, done) == (200, None)
            assert "еоплаченн" in last_text(telegram, chat.chat_id)  # the bills again
            assert told_errors(telegram) == 0
        finally:
            if not starting.done():
                starting.cancel()
            await app.stop()
            await redis.aclose()
