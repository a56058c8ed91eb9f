"""Burst benchmark: N distinct residents (default 10 000) send /start at the same moment.

The real application (`create_application`, city sandbox in this process) takes the burst
through its real runner:

polling  `bot.runners.run_polling` (aiogram's long polling, `Settings.updates_in_flight` at once)
         against an HTTP fake Bot API (`BurstBotApi`, in this process) whose getUpdates hands
         the waiting burst out like Telegram: the oldest `limit` (100 by default) from `offset`
webhook  Telegram's deliveries as POSTs to the application's own web server
         (`bot.web.telegram_webhook`), at most `updates_in_flight` at once (the webhook's
         max_connections, `bot.runners.webhook`); a 503 is delivered again after its
         Retry-After (capped at RETRY_CAP seconds), as Telegram would

on the embedded defaults (SQLite in a temporary folder, no Redis) and on PostgreSQL + Redis
(`bench.common`). Every /start is due the greeting and the menu, two sendMessage calls to the
resident's chat: a chat with fewer is «not answered», with more «answered twice».

Reported: answered vs due, unhandled errors (aiogram's «Cause exception while process update»
log records, and the `bot_errors_total` counter's growth), updates/s (answered chats over the
seconds from the burst's start to the last answer), this process's RSS (VmRSS) before, at its
peak during (sampled every RSS_EVERY seconds) and after (RSS_SETTLE seconds after the last
answer, the application still running). The process also runs the fake Bot API and the sandbox,
and, the runs being one after another (after the other benchmarks' under `python -m bench all`),
each starts from the previous one's heap: the growth (peak − before) is the burst's own.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import aiohttp
from aiohttp import web
from prometheus_client import REGISTRY

from bench.common import (
    NO_POSTGRES,
    Services,
    flush_redis,
    fresh_postgres,
    heading,
    rss_mb,
    table,
)
from bench.fake_telegram import BENCH_TOKEN, BOT_USER
from bot.app import Application, create_application
from bot.config import Settings
from bot.runners import run_polling
from bot.web import WEBHOOK_PATH
from sandbox import SandboxServer
from storage.token_cipher import TokenCipher

Path_ = Literal["polling", "webhook"]
PATHS: tuple[Path_, ...] = ("polling", "webhook")
FIRST_USER = 700_000_001
DUE_PER_CHAT = 2  # the greeting and the menu
UNHANDLED = "Cause exception while process update"
RSS_EVERY = 0.1  # seconds between RSS samples
RSS_SETTLE = 1.0  # seconds after the last answer before the «after» RSS
RETRY_CAP = 1.0  # seconds: a webhook 503's Retry-After is honoured up to this
WEBHOOK_SECRET = "bench-burst-secret"


@dataclass
class BurstBotApi:
    """The Bot API methods a polling bot answering /start needs, over HTTP; every sendMessage
    is counted by chat. getUpdates answers at once when updates wait, else after a short
    sleep (a long poll cut short)."""

    updates: list[dict[str, Any]] = field(default_factory=list)
    per_chat: Counter[int] = field(default_factory=Counter)
    last_answer: float = 0.0  # time.perf_counter() of the latest sendMessage
    message_id: int = 0
    _runner: web.AppRunner | None = None
    url: str = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def answered(self) -> int:
        return sum(1 for count in self.per_chat.values() if count >= DUE_PER_CHAT)

    async def handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        form: dict[str, Any] = dict(await request.post())
        if not form and request.can_read_body:
            form = await request.json()
        if method == "getMe":
            return _ok(BOT_USER)
        if method == "getUpdates":
            offset = int(form.get("offset") or 0)
            limit = int(form.get("limit") or 100)
            if self.updates and offset > self.updates[0]["update_id"]:
                # confirmed: Telegram forgets them (the burst's ids are ascending)
                first = offset - self.updates[0]["update_id"]
                del self.updates[:first]
            if not self.updates:
                await asyncio.sleep(0.1)
            return _ok(self.updates[:limit])
        if method in ("sendMessage", "sendPhoto"):
            chat_id = int(form["chat_id"])
            self.per_chat[chat_id] += 1
            self.message_id += 1
            self.last_answer = time.perf_counter()
            return _ok(
                {
                    "message_id": self.message_id,
                    "date": 1_700_000_000,
                    "chat": {"id": chat_id, "type": "private"},
                    "text": form.get("text", ""),
                }
            )
        return _ok(True)


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def start_update(number: int) -> dict[str, Any]:
    user_id = FIRST_USER + number
    person = {"id": user_id, "is_bot": False, "first_name": "Житель", "language_code": "ru"}
    return {
        "update_id": number + 1,
        "message": {
            "message_id": 1,
            "date": 1_700_000_000,
            "chat": {"id": user_id, "type": "private", "first_name": "Житель"},
            "from": person,
            "text": "/start",
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
        },
    }


class Unhandled(logging.Handler):
    """Counts aiogram's «Cause exception while process update» records."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0
        self.first: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if UNHANDLED in record.getMessage():
            self.count += 1
            if self.first is None and record.exc_info and record.exc_info[1]:
                self.first = f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}"[:300]


@contextmanager
def unhandled_errors() -> Iterator[Unhandled]:
    handler = Unhandled()
    logger = logging.getLogger("aiogram.event")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def errors_counted() -> float:
    return REGISTRY.get_sample_value("bot_errors_total") or 0.0


@dataclass(frozen=True)
class Stack:
    name: str
    database_url: str | None  # None: SQLite in a temporary folder (the embedded default)
    redis_url: str | None


@dataclass
class BurstResult:
    stack: str
    path: Path_
    due: int  # residents, each due DUE_PER_CHAT messages
    answered: int  # chats that got at least DUE_PER_CHAT messages
    twice: int  # chats that got more than DUE_PER_CHAT
    unhandled: int  # aiogram's «Cause exception while process update» records
    errors_total: float  # bot_errors_total's growth
    seconds: float  # from the burst's start to the last answer (or giving up)
    gave_up: bool
    rss_before: float
    rss_peak: float
    rss_after: float
    in_flight: int  # Settings.updates_in_flight
    redelivered: int = 0  # webhook: deliveries answered non-2xx and made again
    first_error: str | None = None

    @property
    def rate(self) -> float:
        return self.answered / self.seconds if self.seconds else 0.0


def stacks(services: Services) -> list[Stack]:
    chosen = [Stack("embedded (SQLite)", None, None)]
    if services.postgres:
        name = "PostgreSQL + Redis" if services.redis else "PostgreSQL"
        chosen.append(Stack(name, services.postgres, services.redis))
    return chosen


async def _peak_rss(peak: list[float]) -> None:
    while True:
        peak[0] = max(peak[0], rss_mb())
        await asyncio.sleep(RSS_EVERY)


async def _until_answered(
    api: BurstBotApi, due: int, give_up: float, stop: asyncio.Task[Any]
) -> bool:
    """Waits until every chat is answered; True when it gave up (time, or the runner ended)."""
    deadline = time.perf_counter() + give_up
    while api.answered() < due:
        if time.perf_counter() > deadline or stop.done():
            return True
        await asyncio.sleep(0.05)
    return False


async def _deliver_all(url: str, updates: list[dict[str, Any]], connections: int) -> int:
    """POSTs every update to the webhook, `connections` at once; a non-2xx answer is delivered
    again after its Retry-After (at most RETRY_CAP s). Returns how many were redelivered."""
    redelivered = 0
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for update in updates:
        queue.put_nowait(update)
    headers = {"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def deliverer() -> None:
            nonlocal redelivered
            while not queue.empty():
                update = queue.get_nowait()
                while True:
                    async with http.post(url + WEBHOOK_PATH, json=update, headers=headers) as r:
                        if r.status < 300:
                            break
                        retry_after = float(r.headers.get("Retry-After") or 1)
                    redelivered += 1
                    await asyncio.sleep(min(retry_after, RETRY_CAP))

        await asyncio.gather(*(deliverer() for _ in range(connections)))
    return redelivered


async def burst_once(stack: Stack, path: Path_, residents: int, give_up: float) -> BurstResult:
    if stack.database_url:
        await fresh_postgres(stack.database_url)
    if stack.redis_url:
        await flush_redis(stack.redis_url)
    api = BurstBotApi()
    await api.start()
    updates = [start_update(n) for n in range(residents)]
    errors_before = errors_counted()
    gc.collect()
    with tempfile.TemporaryDirectory(prefix="bench-burst-") as folder:
        values: dict[str, Any] = {
            "bot_token": BENCH_TOKEN,
            "bot_api_url": api.url,
            "data_dir": Path(folder),
            "web_port": 0,
            "sandbox_port": 0,
            "token_encryption_keys": TokenCipher.generate_key(),
            "webhook_secret": WEBHOOK_SECRET,
            "_env_file": None,
        }
        if stack.database_url:
            values["database_url"] = stack.database_url
        if stack.redis_url:
            values["redis_url"] = stack.redis_url
        try:
            async with SandboxServer() as city:
                app: Application = await create_application(Settings(**values), sandbox=city)
                try:
                    result = await _run(app, api, stack, path, updates, give_up, errors_before)
                finally:
                    await app.stop()
        finally:
            await api.stop()
    return result


async def _run(
    app: Application,
    api: BurstBotApi,
    stack: Stack,
    path: Path_,
    updates: list[dict[str, Any]],
    give_up: float,
    errors_before: float,
) -> BurstResult:
    due = len(updates)
    in_flight = app.settings.updates_in_flight
    rss_before = rss_mb()
    peak = [rss_before]
    sampler = asyncio.create_task(_peak_rss(peak))
    redelivered = 0
    with unhandled_errors() as unhandled:
        started = time.perf_counter()
        runner: asyncio.Task[Any]
        if path == "polling":
            api.updates.extend(updates)
            runner = asyncio.create_task(run_polling(app))
        else:
            runner = asyncio.create_task(_deliver_all(app.web_url, updates, in_flight))
        gave_up = await _until_answered(api, due, give_up, runner)
        seconds = (api.last_answer or time.perf_counter()) - started
        if path == "polling":
            await app.dispatcher.stop_polling()
        if gave_up and not runner.done():
            runner.cancel()
        with suppress(asyncio.CancelledError):
            await runner
        if path == "webhook" and not runner.cancelled():
            redelivered = runner.result()
        await asyncio.sleep(RSS_SETTLE)  # anything sent twice would show now
    sampler.cancel()
    with suppress(asyncio.CancelledError):
        await sampler
    return BurstResult(
        stack=stack.name,
        path=path,
        due=due,
        answered=api.answered(),
        twice=sum(1 for count in api.per_chat.values() if count > DUE_PER_CHAT),
        unhandled=unhandled.count,
        errors_total=errors_counted() - errors_before,
        seconds=seconds,
        gave_up=gave_up,
        rss_before=rss_before,
        rss_peak=peak[0],
        rss_after=rss_mb(),
        in_flight=in_flight,
        redelivered=redelivered,
        first_error=unhandled.first,
    )


async def run(
    services: Services, residents: int = 10_000, paths: tuple[Path_, ...] = PATHS
) -> list[BurstResult]:
    give_up = max(60.0, residents / 20)
    heading(f"Burst: {residents:,} residents' /start at once")
    print(
        f"each due the greeting and the menu; polling (getUpdates hands out 100 at a time) and "
        f"webhook (POSTs to the bot's web server, updates_in_flight at once); gives up after "
        f"{give_up:.0f} s"
    )
    if not services.postgres:
        print(f"PostgreSQL skipped: {NO_POSTGRES}")
    results = []
    for stack in stacks(services):
        for path in paths:
            print(f"… {stack.name}, {path}", flush=True)
            results.append(await burst_once(stack, path, residents, give_up))
    report(results)
    return results


def report(results: list[BurstResult]) -> None:
    print()
    table(
        ["", *(f"{r.stack}, {r.path}" for r in results)],
        [
            ["updates in flight at most", *(r.in_flight for r in results)],
            ["residents (/start due)", *(r.due for r in results)],
            ["answered (greeting + menu)", *(r.answered for r in results)],
            ["not answered", *(r.due - r.answered for r in results)],
            ["answered more than once", *(r.twice for r in results)],
            ["unhandled («Cause exception…»)", *(r.unhandled for r in results)],
            ["bot_errors_total growth", *(int(r.errors_total) for r in results)],
            ["webhook redeliveries (503)", *(_webhook(r, r.redelivered) for r in results)],
            ["seconds to the last answer", *(r.seconds for r in results)],
            ["updates/s", *(r.rate for r in results)],
            ["RSS MB before", *(r.rss_before for r in results)],
            ["RSS MB peak during", *(r.rss_peak for r in results)],
            [f"RSS MB after (+{RSS_SETTLE:g} s)", *(r.rss_after for r in results)],
            ["RSS MB growth, peak − before", *(r.rss_peak - r.rss_before for r in results)],
            ["gave up", *("yes" if r.gave_up else "no" for r in results)],
        ],
    )
    for result in results:
        if result.first_error:
            print(f"{result.stack}, {result.path}, first unhandled error: {result.first_error}")


def _webhook(result: BurstResult, value: int) -> object:
    return value if result.path == "webhook" else "-"
