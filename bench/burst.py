"""Burst benchmark: N distinct residents (default 10 000) send /start at the same moment.

The bot runs as its own OS process, like a production replica: `python -m bot poll` or
`python -m bot webhook` (`bot.runners.poll` / `bot.runners.webhook`: settings from the
environment, `serving` with its scheduler and frozen heap), its logs JSON lines on stderr
(LOG_LEVEL=INFO, LOG_FORMAT=json), read by this process. This process serves what stands
around it — and its own memory is not the bot's:

- a fake Bot API (`BurstBotApi`, BOT_API_URL) counting every sendMessage by chat; its getUpdates
  hands the waiting burst out like Telegram: the oldest `limit` (100 by default) from `offset`;
- the city sandbox (`sandbox.SandboxServer`, CITY_API_URL);
- the burst itself:

polling  the burst waits in the fake Bot API's queue for the replica's long polling
         (`bot.runners.run_polling`, `Settings.updates_in_flight` at once)
webhook  Telegram's deliveries as POSTs to the replica's web server (`bot.web.telegram_webhook`),
         at most `updates_in_flight` at once (the webhook's max_connections); a 503 is
         delivered again after its Retry-After (capped at RETRY_CAP seconds), as Telegram would

on the embedded defaults (SQLite in a temporary DATA_DIR, no Redis) and on PostgreSQL + Redis
(`bench.common`). Every /start is due the greeting and the menu, two sendMessage calls to the
resident's chat: a chat with fewer is «not answered», with more «answered twice».

Reported: answered vs due; unhandled errors — the replica's «Cause exception while process update»
log records, its error-level log records, and its `bot_errors_total` (from its /metrics, read
before the burst and after it); updates/s (answered chats over the seconds from the burst's
start to the last answer); the replica's RSS (VmRSS of /proc/<pid>/status): before (idle
IDLE_SECONDS after it is ready: polling, or its webhook set), at its peak during (sampled every
RSS_EVERY seconds from then on) and after (RSS_SETTLE seconds after the last answer, the
replica still running), and its high-water mark over its whole life (VmHWM, start-up included).
Each run is a fresh replica on a fresh database.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import aiohttp
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from bench.common import (
    NO_POSTGRES,
    Services,
    flush_redis,
    fresh_postgres,
    heading,
    table,
)
from bench.fake_telegram import BENCH_TOKEN, BOT_USER
from bot.config import Settings
from bot.web import WEBHOOK_PATH
from sandbox import SandboxServer
from storage.token_cipher import TokenCipher

Path_ = Literal["polling", "webhook"]
PATHS: tuple[Path_, ...] = ("polling", "webhook")
ROOT = Path(__file__).resolve().parents[1]
FIRST_USER = 700_000_001
DUE_PER_CHAT = 2  # the greeting and the menu
UNHANDLED = "Cause exception while process update"
RSS_EVERY = 0.1  # seconds between RSS samples
RSS_SETTLE = 1.0  # seconds after the last answer before the «after» RSS
IDLE_SECONDS = 1.0  # seconds the replica idles after it is ready, before the «before» RSS
READY_WITHIN = 120.0  # seconds the replica gets to start
STOP_WITHIN = 45.0  # seconds it gets to stop after SIGTERM (polling's grace is 30)
RETRY_CAP = 1.0  # seconds: a webhook 503's Retry-After is honoured up to this
WEBHOOK_SECRET = "bench-burst-secret"
RSS_TARGET = 250.0  # MB, the ceiling for the bot process during and after a burst


@dataclass
class BurstBotApi:
    """The Bot API methods a bot answering /start needs, over HTTP; every sendMessage is
    counted by chat. getUpdates answers at once when updates wait, else after a short sleep
    (a long poll cut short). `polled` is set on the first getUpdates: the replica polls."""

    updates: list[dict[str, Any]] = field(default_factory=list)
    per_chat: Counter[int] = field(default_factory=Counter)
    # chat → (seconds since the API started, text's start) of each message, for the report
    sent: dict[int, list[tuple[float, str]]] = field(default_factory=dict)
    offsets: list[tuple[float, int, int]] = field(default_factory=list)  # (at, offset, first)
    started: float = field(default_factory=time.perf_counter)
    last_answer: float = 0.0  # time.perf_counter() of the latest sendMessage
    message_id: int = 0
    polled: asyncio.Event = field(default_factory=asyncio.Event)
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
            self.polled.set()
            offset = int(form.get("offset") or 0)
            limit = int(form.get("limit") or 100)
            first = self.updates[0]["update_id"] if self.updates else 0
            self.offsets.append((time.perf_counter() - self.started, offset, first))
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
            text = str(form.get("text", ""))[:24]
            at = time.perf_counter() - self.started
            self.sent.setdefault(chat_id, []).append((at, text))
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
        return _ok(True)  # deleteWebhook, setWebhook, setMyCommands…


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


@dataclass
class ReplicaLog:
    """Reads the replica's stderr (one JSON object a line, `bot.logs` with LOG_FORMAT=json):
    counts aiogram's «Cause exception while process update» records and the error-level ones,
    keeps the first error, and notes where the web server listens («bot.started») and when the
    webhook is set («webhook.ready»). Lines that are not JSON (a crash before logging is set up)
    are kept, the last ones, for the report."""

    unhandled: int = 0
    errors: int = 0  # records at level error or critical
    first_error: str | None = None
    web_url: str | None = None
    webhook_ready: asyncio.Event = field(default_factory=asyncio.Event)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    raw: deque[str] = field(default_factory=lambda: deque(maxlen=40))
    # update_id → its records («level event [error]»), to explain a chat answered twice
    by_update: dict[int, list[str]] = field(default_factory=dict)
    warnings: Counter[str] = field(default_factory=Counter)  # warning+ records by event

    async def read(self, stream: asyncio.StreamReader) -> None:
        async for line in stream:
            self.take(line.decode(errors="replace").rstrip("\n"))

    def take(self, line: str) -> None:
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            self.raw.append(line)
            return
        event = str(record.get("event", ""))
        if event == "bot.started":
            self.web_url = str(record.get("web"))
            self.started.set()
        elif event == "webhook.ready":
            self.webhook_ready.set()
        error = record.get("level") in ("error", "critical")
        level = str(record.get("level", ""))
        if level in ("warning", "error", "critical"):
            self.warnings[event.splitlines()[0][:60]] += 1
        update_id = record.get("update_id")
        if isinstance(update_id, int):
            detail = " ".join(
                f"{name}={record[name]}"
                for name in ("error", "after", "attempt", "locks", "what")
                if name in record
            )
            self.by_update.setdefault(update_id, []).append(
                f"{record.get('timestamp', '')} {level} {event.splitlines()[0][:80]} {detail}"
            )
        if UNHANDLED in event:
            self.unhandled += 1
        if error:
            self.errors += 1
            if self.first_error is None:
                cause = event.splitlines()[-1] if UNHANDLED in event else event
                exception = str(record.get("exception", "")).strip().splitlines()
                detail = exception[-1] if exception and UNHANDLED not in event else ""
                self.first_error = f"{cause} {detail}".strip()[:300]

    def tail(self) -> str:
        return "\n".join(self.raw)


def proc_status_mb(pid: int, field_name: str = "VmRSS") -> float:
    """A field of /proc/<pid>/status in MB (VmRSS: resident now; VmHWM: its high-water mark);
    0 once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0.0


async def errors_counted(http: aiohttp.ClientSession, web_url: str) -> float | None:
    """The replica's `bot_errors_total` from its /metrics; None when it does not answer."""
    try:
        async with http.get(web_url + "/metrics") as response:
            exposition = await response.text()
    except (aiohttp.ClientError, TimeoutError):
        return None
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == "bot_errors_total":
                return float(sample.value)
    return None


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
    unhandled: int  # the replica's «Cause exception while process update» records
    errors_total: float  # growth of the replica's bot_errors_total (NaN: /metrics unread)
    seconds: float  # from the burst's start to the last answer (or giving up)
    gave_up: bool
    rss_before: float  # MB, the replica's VmRSS idle before the burst
    rss_peak: float  # MB, its highest VmRSS sampled during the burst and the settle after it
    rss_after: float  # MB, RSS_SETTLE seconds after the last answer
    in_flight: int  # Settings.updates_in_flight
    redelivered: int = 0  # webhook: deliveries answered non-2xx and made again
    first_error: str | None = None
    rss_hwm: float = 0.0  # MB, the replica's VmHWM at the end: its whole life's peak
    errors_logged: int = 0  # the replica's error-level log records
    exit_code: int | None = None  # the replica's, after SIGTERM (None: had to be killed)
    twice_detail: list[str] = field(default_factory=list)  # the chats answered twice, explained
    warnings: dict[str, int] = field(default_factory=dict)  # the replica's warning+ records

    @property
    def rate(self) -> float:
        return self.answered / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        """The figures for `python -m bench all`'s summary, the replica's RSS absolute."""
        return (
            f"{self.answered:,}/{self.due:,} answered, {self.unhandled} unhandled, "
            f"{self.rate:,.0f}/s; bot RSS {self.rss_before:,.0f} → peak {self.rss_peak:,.0f} → "
            f"after {self.rss_after:,.0f} MB"
        )


def stacks(services: Services) -> list[Stack]:
    chosen = [Stack("embedded (SQLite)", None, None)]
    if services.postgres:
        name = "PostgreSQL + Redis" if services.redis else "PostgreSQL"
        chosen.append(Stack(name, services.postgres, services.redis))
    return chosen


def replica_env(stack: Stack, api_url: str, city_url: str, data_dir: str) -> dict[str, str]:
    """The replica's settings, as an operator would set them (README's table)."""
    return {
        "BOT_TOKEN": BENCH_TOKEN,
        "BOT_API_URL": api_url,
        "CITY_API_URL": city_url,
        "TOKEN_ENCRYPTION_KEYS": TokenCipher.generate_key(),
        "DATA_DIR": data_dir,
        "DATABASE_URL": stack.database_url or "",
        "REDIS_URL": stack.redis_url or "",
        "WEB_HOST": "127.0.0.1",
        "WEB_PORT": "0",
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "LOG_LEVEL": "INFO",
        "LOG_FORMAT": "json",
    }


@dataclass
class Replica:
    process: asyncio.subprocess.Process
    log: ReplicaLog
    reader: asyncio.Task[None]

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss(self) -> float:
        return proc_status_mb(self.pid)

    async def stop(self) -> int | None:
        """SIGTERM, as an orchestrator stops a replica; killed when it does not stop in time.
        Returns its exit code (None when it had to be killed)."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), STOP_WITHIN)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
                await self.reader
                return None
        await self.reader
        return self.process.returncode


async def start_replica(path: Path_, env: dict[str, str], data_dir: str) -> Replica:
    """`python -m bot poll|webhook` in DATA_DIR (so no .env of the checkout is read), the
    checkout on PYTHONPATH."""
    python_path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "poll" if path == "polling" else "webhook",
        cwd=data_dir,
        env={**os.environ, **env, "PYTHONPATH": python_path},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        limit=1 << 20,  # a log line with a traceback
    )
    assert process.stderr is not None
    log = ReplicaLog()
    return Replica(process, log, asyncio.create_task(log.read(process.stderr)))


async def _ready(replica: Replica, api: BurstBotApi, path: Path_) -> None:
    """Until the replica takes updates: polling, or its webhook set (and its web server known)."""
    ready = replica.log.webhook_ready if path == "webhook" else api.polled
    deadline = time.perf_counter() + READY_WITHIN
    while not (ready.is_set() and replica.log.started.is_set()):
        if replica.process.returncode is not None or time.perf_counter() > deadline:
            break
        await asyncio.sleep(0.05)
    if not ready.is_set() or replica.log.web_url is None:
        await replica.stop()
        raise RuntimeError(
            f"burst replica ({path}) did not get ready (exit code "
            f"{replica.process.returncode}):\n{replica.log.tail()[-3000:]}"
        )


async def _peak_rss(replica: Replica, peak: list[float]) -> None:
    while True:
        peak[0] = max(peak[0], replica.rss())
        await asyncio.sleep(RSS_EVERY)


async def _until_answered(api: BurstBotApi, due: int, give_up: float, replica: Replica) -> bool:
    """Waits until every chat is answered; True when it gave up (time, or the replica died)."""
    deadline = time.perf_counter() + give_up
    while api.answered() < due:
        if time.perf_counter() > deadline or replica.process.returncode is not None:
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


@dataclass(frozen=True)
class Stalls:
    """Fault injection: the replica frozen (SIGSTOP, then SIGCONT) `times` times for `seconds`
    each, `every` seconds apart, from `after` seconds into the burst — its event loop stalled
    longer than the chat locks' lease (dedup.LOCK_LEASE, 5 s) or the update's marker
    (PROCESSING_LEASE, 10 s), as on a machine whose cores are saturated, on demand."""

    times: int = 4
    seconds: float = 7.0
    every: float = 3.0
    after: float = 2.0


async def _stall(replica: Replica, stalls: Stalls) -> None:
    await asyncio.sleep(stalls.after)
    for _ in range(stalls.times):
        if replica.process.returncode is not None:
            return
        replica.process.send_signal(signal.SIGSTOP)
        try:
            await asyncio.sleep(stalls.seconds)
        finally:
            replica.process.send_signal(signal.SIGCONT)
        await asyncio.sleep(stalls.every)


async def burst_once(
    stack: Stack, path: Path_, residents: int, give_up: float, stalls: Stalls | None = None
) -> BurstResult:
    if stack.database_url:
        await fresh_postgres(stack.database_url)
    if stack.redis_url:
        await flush_redis(stack.redis_url)
    api = BurstBotApi()
    await api.start()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-burst-") as folder:
            async with SandboxServer() as city:
                env = replica_env(stack, api.url, city.url, folder)
                # the replica's own reading of the same environment (no .env: it runs in folder)
                in_flight = Settings(**_fields(env)).updates_in_flight
                replica = await start_replica(path, env, folder)
                try:
                    await _ready(replica, api, path)
                    return await _run(
                        replica, api, stack, path, residents, give_up, in_flight, stalls
                    )
                finally:
                    await replica.stop()
    finally:
        await api.stop()


def _fields(env: dict[str, str]) -> dict[str, Any]:
    return {"_env_file": None, **{name.lower(): value for name, value in env.items()}}


async def _run(
    replica: Replica,
    api: BurstBotApi,
    stack: Stack,
    path: Path_,
    residents: int,
    give_up: float,
    in_flight: int,
    stalls: Stalls | None = None,
) -> BurstResult:
    assert replica.log.web_url is not None
    web_url = replica.log.web_url
    updates = [start_update(n) for n in range(residents)]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        await asyncio.sleep(IDLE_SECONDS)
        errors_before = await errors_counted(http, web_url)
        rss_before = replica.rss()
        peak = [rss_before]
        sampler = asyncio.create_task(_peak_rss(replica, peak))
        redelivered = 0
        started = time.perf_counter()
        delivery: asyncio.Task[int] | None = None
        if path == "polling":
            api.updates.extend(updates)
        else:
            delivery = asyncio.create_task(_deliver_all(web_url, updates, in_flight))
        del updates
        staller = asyncio.create_task(_stall(replica, stalls)) if stalls else None
        gave_up = await _until_answered(api, residents, give_up, replica)
        if staller is not None:
            staller.cancel()  # its `finally` lets the replica go on
            await asyncio.gather(staller, return_exceptions=True)
        seconds = (api.last_answer or time.perf_counter()) - started
        if delivery is not None:
            if gave_up:
                delivery.cancel()
            try:
                redelivered = await delivery
            except (asyncio.CancelledError, aiohttp.ClientError):
                pass
        await asyncio.sleep(RSS_SETTLE)  # anything sent twice would show now
        rss_after = replica.rss()
        sampler.cancel()
        await asyncio.gather(sampler, return_exceptions=True)
        peak[0] = max(peak[0], rss_after)
        rss_hwm = proc_status_mb(replica.pid, "VmHWM")
        errors_after = await errors_counted(http, web_url)
    exit_code = await replica.stop()
    twice_detail = _explain_twice(api, replica.log)
    errors_total = (
        errors_after - errors_before
        if errors_after is not None and errors_before is not None
        else float("nan")
    )
    return BurstResult(
        stack=stack.name,
        path=path,
        due=residents,
        answered=api.answered(),
        twice=sum(1 for count in api.per_chat.values() if count > DUE_PER_CHAT),
        unhandled=replica.log.unhandled,
        errors_total=errors_total,
        seconds=seconds,
        gave_up=gave_up,
        rss_before=rss_before,
        rss_peak=peak[0],
        rss_after=rss_after,
        in_flight=in_flight,
        redelivered=redelivered,
        first_error=replica.log.first_error,
        rss_hwm=rss_hwm,
        errors_logged=replica.log.errors,
        exit_code=exit_code,
        twice_detail=twice_detail,
        warnings=dict(replica.log.warnings.most_common(12)),
    )


TWICE_SHOWN = 20  # chats answered twice explained in the report, at most


def _explain_twice(api: BurstBotApi, log: ReplicaLog) -> list[str]:
    """For each chat answered more than DUE_PER_CHAT times (the first TWICE_SHOWN): its
    update_id, the messages it got (seconds since the fake API started, the text's start) and
    the replica's log records of that update."""
    lines = []
    twice = sorted(chat for chat, count in api.per_chat.items() if count > DUE_PER_CHAT)
    for chat in twice[:TWICE_SHOWN]:
        update_id = chat - FIRST_USER + 1  # start_update's numbering
        sent = ", ".join(f"{at:.2f}s {text!r}" for at, text in api.sent.get(chat, []))
        lines.append(f"chat {chat} (update {update_id}): {sent}")
        lines.extend(f"    {record}" for record in log.by_update.get(update_id, []))
    return lines


async def run(
    services: Services, residents: int = 10_000, paths: tuple[Path_, ...] = PATHS
) -> list[BurstResult]:
    give_up = max(60.0, residents / 20)
    heading(f"Burst: {residents:,} residents' /start at once")
    print(
        f"the bot a replica process of its own (`python -m bot poll|webhook`); each resident due "
        f"the greeting and the menu; polling (getUpdates hands out 100 at a time) and webhook "
        f"(POSTs to the replica's web server, updates_in_flight at once); gives up after "
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
            ["error log records", *(r.errors_logged for r in results)],
            ["bot_errors_total growth", *(_count(r.errors_total) for r in results)],
            ["webhook redeliveries (503)", *(_webhook(r, r.redelivered) for r in results)],
            ["seconds to the last answer", *(r.seconds for r in results)],
            ["updates/s", *(r.rate for r in results)],
            ["bot RSS MB before (idle)", *(r.rss_before for r in results)],
            ["bot RSS MB peak during", *(r.rss_peak for r in results)],
            [f"bot RSS MB after (+{RSS_SETTLE:g} s)", *(r.rss_after for r in results)],
            ["bot RSS MB growth, peak − before", *(r.rss_peak - r.rss_before for r in results)],
            ["bot RSS MB high-water (VmHWM)", *(r.rss_hwm for r in results)],
            [
                f"bot RSS ≤ {RSS_TARGET:g} MB during and after",
                *("yes" if max(r.rss_peak, r.rss_after) <= RSS_TARGET else "NO" for r in results),
            ],
            ["gave up", *("yes" if r.gave_up else "no" for r in results)],
            ["replica's exit code (SIGTERM)", *(_exit(r.exit_code) for r in results)],
        ],
    )
    for result in results:
        if result.first_error:
            print(f"{result.stack}, {result.path}, first error: {result.first_error}")
        if result.warnings:
            print(f"{result.stack}, {result.path}, warning+ records: {result.warnings}")
        if result.twice_detail:
            print(f"{result.stack}, {result.path}, answered more than once:")
            print("\n".join(result.twice_detail))


def _webhook(result: BurstResult, value: int) -> object:
    return value if result.path == "webhook" else "-"


def _count(value: float) -> object:
    return "unread" if value != value else int(value)  # NaN: /metrics did not answer


def _exit(code: int | None) -> object:
    return "killed" if code is None else code


async def _stalled(residents: int, paths: tuple[Path_, ...], stalls: Stalls) -> None:
    from bench.common import bench_services

    services = await bench_services()
    chosen = [stack for stack in stacks(services) if stack.redis_url]
    if not chosen:
        raise SystemExit(f"no PostgreSQL + Redis to run on ({services.describe()})")
    heading(
        f"Burst with stalls: {residents:,} residents' /start, the replica frozen {stalls.times}× "
        f"for {stalls.seconds:g} s"
    )
    results = []
    for path in paths:
        print(f"… {chosen[0].name}, {path}", flush=True)
        give_up = max(60.0, residents / 20) + stalls.times * stalls.seconds
        results.append(await burst_once(chosen[0], path, residents, give_up, stalls))
    report(results)


def main(argv: list[str]) -> None:
    """python -m bench.burst [residents] [polling|webhook|both] [stalls] [seconds]: the burst
    on PostgreSQL + Redis with the replica frozen now and then (`Stalls`)."""
    count = int(argv[0]) if argv else 3000
    which = argv[1] if len(argv) > 1 else "both"
    chosen = tuple(path for path in PATHS if which in (path, "both"))
    injected = Stalls(
        times=int(argv[2]) if len(argv) > 2 else Stalls.times,
        seconds=float(argv[3]) if len(argv) > 3 else Stalls.seconds,
    )
    asyncio.run(_stalled(count, chosen, injected))


if __name__ == "__main__":
    main(sys.argv[1:])
