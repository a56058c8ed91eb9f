"""Updates benchmark: updates a second through the whole bot, with bare aiogram as a yardstick.

N residents (default 50), each a `sandbox.conversation.Conversation` with its own user id, chat with
the real application at the same time (asyncio.gather): `create_application` like the
conversation tests (`tests/flows/conftest.py`), over the in-process Bot API `LocalTelegram`, with
the city sandbox serving over HTTP in this process. Each resident first links the mos.ru account
demo-full through the sandbox's login page (setup, not measured), then for S seconds goes round
journeys in a random order of its own, each starting with /start and the menu:

bills    «Мои счета», the next page, a bill picked, the payment confirmation, «Отмена», back
charity  «Благотворительность», a category, a fund, back to the menu
report   «Сообщить о проблеме», «яма», the theme «Яма на дороге», back to the menu

Nothing is paid: every resident is the same city account, whose 12 bills payments would use up.
The application runs on SQLite (the embedded defaults), then on PostgreSQL + Redis (see
`bench.common`), with the flood limit off. The yardstick is a bare `aiogram.Dispatcher` with one
echo handler over a `LocalTelegram` too, driven the same way (text messages) by as many residents.
A second one, `bare_dialog`, is the floor of the chosen framework: a bare aiogram-dialog bot of two
windows, a button each, on aiogram's RedisStorage; the full stack's CPU over its CPU is what the
bot's own code costs beyond what any aiogram-dialog bot pays.

An update's latency is the time of one `Conversation` call: building the update, the Dispatcher
with everything its handlers await (database, dialog state, the city), the bot's calls to
LocalTelegram — and, N residents sharing one event loop, waiting for the others' turns. Updates
still in flight GRACE seconds after the measured period are cut off and counted, not timed.

What an update costs is counted over the measured period (`bench.common.Meter`): this
process's CPU (the city sandbox's request handlers timed apart and taken out), SQL statements
on the application's engine and its pool's pre-pings, Redis commands of the process's redis-py
clients. The report ends with issue 14's targets (`targets`), met or not.

After the measured period the same residents go on for PACED_SECONDS with THINK_SECONDS between
their updates on average (a paced run): the latency a resident sees when the stack is not
saturated. The first run's p99 is the target's own (everyone as fast as they can); at that load
it is mostly the queue of the other residents' updates.

A journey fails when the bot answers with one of its error texts or shows something else than
the step expects; the resident then starts afresh with /start. At this speed about one journey
in a hundred meets «Эта кнопка устарела»: aiogram-dialog's intent ids are the current second
plus one of 100 random values, and a chat starting dialogs several times a second gets the same
id twice now and then.
"""

from __future__ import annotations

import asyncio
import gc
import math
import os
import random
import re
import tempfile
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from contextlib import AbstractContextManager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from aiogram import Bot, Dispatcher, Router
from aiogram.client.default import DefaultBotProperties
from aiogram.filters import CommandStart
from aiogram.fsm.state import State, StatesGroup
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage, DefaultKeyBuilder
from aiogram.fsm.storage.memory import MemoryStorage, SimpleEventIsolation
from aiogram.fsm.storage.redis import RedisStorage
from aiogram.types import Message
from aiogram_dialog import Dialog, DialogManager, StartMode, Window, setup_dialogs
from aiogram_dialog.widgets.kbd import SwitchTo
from aiogram_dialog.widgets.text import Const, Format
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.lock import Lock as RedisLock
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.common import (
    NO_POSTGRES,
    Costs,
    CpuTimed,
    Meter,
    Services,
    flush_redis,
    fresh_postgres,
    heading,
    table,
    verdict,
)
from bot.app import Application, create_application
from bot.config import Settings
from bot.warmup import lean_heap
from city.transport import CityTransport
from sandbox import SandboxServer, create_app
from sandbox.browser import demo_login
from sandbox.conversation import Conversation, ConversationError, Reply
from sandbox.telegram_double import LOCAL_BOT_TOKEN, LocalTelegram
from storage.token_cipher import TokenCipher

FIRST_USER = 600_000_001
UPDATE_IDS_PER_RESIDENT = 10_000_000  # update ids must not repeat: the dedup drops repeats
START_LINK = re.compile(r"start=(link-[A-Za-z0-9_-]+)")
MENU = "Что сделаем?"  # the linked menu's text
PAGER = {"<", ">", "‹", "›", "‹ Назад"}
BARE_TEXTS = ("/start", "Мои счета", "яма", "Благотворительность", "Отмена", "привет")
BILL = re.compile(r"^✅? ?\d+\. ")  # a bill's button: «6. Кружок … · 4 500,00 ₽»
ERROR_KEYS = (  # the bot's answers that end a journey the resident did not mean to end
    "error-generic",
    "error-city-unavailable",
    "error-relink",
    "error-not-found",
    "error-not-linked",
    "error-stale-button",
    "error-too-fast",
)
KEEP_MESSAGES = 20  # of a chat's messages in LocalTelegram, between journeys (see `trim`)
LINK_AT_ONCE = 5  # residents linking at the same time (setup: kept below the database pool)
GRACE = 5.0  # seconds after the measured period for the updates in flight to finish
# Issue 14's targets for the whole stack against bare aiogram (with 50 residents)
TARGET_CPU_TIMES_BARE = 3.0  # CPU an update (the bot's own, sandbox excluded) ≤ 3 × bare's
TARGET_RATE_SHARE = 0.30  # updates/s ≥ 30 % of bare's
TARGET_P99_MS = 50.0
# The paced run: each resident waits a moment between updates, as a thumb does (exponential,
# this many seconds on average): 50 residents then offer ~50 updates/s, under what the stack
# serves, and the latency is a resident's own update's rather than a queue of everyone's.
THINK_SECONDS = 1.0
PACED_SECONDS = 10.0
TARGET_REDIS = 4.0  # commands an update
TARGET_SQL = 3.0  # statements an update (pre-pings included)
FLOOR = "bare aiogram-dialog"  # the second yardstick (`bare_dialog`)


class TimedTelegram(LocalTelegram):
    """LocalTelegram with the CPU of its own method handlers (storing, editing and checking
    messages: Telegram's side, which the bot does not pay in production) added up in `spent`
    (seconds). Serialising a call and parsing its answer stay the bot's (aiogram does both
    against the real Bot API too)."""

    def __init__(self) -> None:
        super().__init__()
        self.spent = [0.0]
        # LocalTelegram keeps every call for the tests to look at; thousands of updates' calls
        # (their keyboards' models with them) kept for good made the garbage collector's
        # passes grow with the run, which no bot in production carries: the last few are kept
        self.calls = deque(maxlen=KEEP_MESSAGES)  # type: ignore[assignment]
        for method, handler in list(self._handlers.items()):
            self._handlers[method] = self._timed(handler)

    def _timed(self, handler: Callable[[Any], Awaitable[Any]]) -> Callable[[Any], Awaitable[Any]]:
        async def timed(call: Any) -> Any:
            return await CpuTimed(handler(call), self.spent)

        return timed


# Wall seconds an update spent awaiting each kind of outside party (`Waits`), by kind; set
# by `Resident._step` for the update it feeds (tasks started inside copy it).
_WAITS: ContextVar[dict[str, float] | None] = ContextVar("bench_update_waits", default=None)


def _waited(kind: str, seconds: float) -> None:
    waits = _WAITS.get()
    if waits is not None:
        waits[kind] = waits.get(kind, 0.0) + seconds


class Waits:
    """While the block runs, the wall time of every Redis command or pipeline, SQL statement
    (cursor execute; BEGIN and COMMIT are not among them), city call, Bot API call and wait
    for a taken Redis lock is added to the update it belongs to (`_WAITS`): where the
    slowest updates' time went. Patches the classes, restored on the way out."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine.sync_engine

    def __enter__(self) -> Waits:
        self._patched: list[tuple[Any, str, Any]] = []
        self._patch(Redis, "execute_command", "Redis")
        self._patch(Pipeline, "execute", "Redis")
        self._patch(RedisLock, "acquire", "chat lock taken: waiting")
        self._patch(CityTransport, "request", "city")
        self._patch(LocalTelegram, "make_request", "Bot API (double)")
        event.listen(self.engine, "before_cursor_execute", self._sql_started)
        event.listen(self.engine, "after_cursor_execute", self._sql_ended)
        return self

    def __exit__(self, *_exc: object) -> None:
        for owner, name, original in reversed(self._patched):
            setattr(owner, name, original)
        event.remove(self.engine, "before_cursor_execute", self._sql_started)
        event.remove(self.engine, "after_cursor_execute", self._sql_ended)

    def _patch(self, owner: Any, name: str, kind: str) -> None:
        original = getattr(owner, name)
        self._patched.append((owner, name, original))

        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await original(*args, **kwargs)
            finally:
                _waited(kind, time.perf_counter() - started)

        setattr(owner, name, timed)

    @staticmethod
    def _sql_started(conn: Any, *_args: Any) -> None:
        conn.info["bench_sql_started"] = time.perf_counter()

    @staticmethod
    def _sql_ended(conn: Any, *_args: Any) -> None:
        started = conn.info.pop("bench_sql_started", None)
        if started is not None:
            _waited("SQL", time.perf_counter() - started)


class TimeUp(Exception):
    """The measured period is over: the resident stops where it is."""


class Unexpected(Exception):
    """The bot did not show what the journey expected (the journey is counted as failed)."""


class UpdateFailed(Exception):
    """Feeding the update raised: the bot's error handler let the error go on (it does so for
    the unexpected ones, so that Telegram would deliver the update again)."""


@dataclass(frozen=True)
class Stack:
    name: str
    database_url: str | None  # None: SQLite in a temporary folder
    redis_url: str | None


@dataclass
class Tally:
    """What the residents of one run did (they share it: one event loop, no locks needed)."""

    latencies: list[float] = field(default_factory=list)  # seconds, one per update
    steps: dict[str, list[float]] = field(default_factory=dict)  # the same, by journey step
    # CPU seconds of each update's own steps (`CpuTimed`; the same order as `latencies` for
    # the updates that did not raise): the rest of its latency it waited — for the database,
    # Redis, the city, or the event loop busy with the other residents' updates
    own_cpu: list[float] = field(default_factory=list)
    waits: list[dict[str, float]] = field(default_factory=list)  # `Waits`, the same order
    step_waits: dict[str, list[dict[str, float]]] = field(default_factory=dict)  # by step
    raised: int = 0  # updates whose feeding raised (counted in `latencies` too)
    unfinished: int = 0  # updates still in flight GRACE seconds after the end: cut off
    journeys: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    first_failure: str | None = None

    def record(self, seconds: float, raised: bool = False, step: str = "") -> None:
        self.latencies.append(seconds)
        self.steps.setdefault(step, []).append(seconds)
        self.raised += raised

    def fail(self, journey: str, error: Exception) -> None:
        self.failed[journey] += 1
        self.first_failure = self.first_failure or f"{journey}: {error}"[:300]


@dataclass
class GcPauses:
    """The garbage collector's collections during a measured period, by generation: how many
    and their pauses in seconds (`gc.callbacks`; the loop stands still while one runs)."""

    pauses: dict[int, list[float]] = field(default_factory=dict)
    _started: float = 0.0

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self._seen)
        return self

    def __exit__(self, *_exc: object) -> None:
        gc.callbacks.remove(self._seen)

    def _seen(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            spent = time.perf_counter() - self._started
            self.pauses.setdefault(info["generation"], []).append(spent)


@dataclass
class LoopStalls:
    """Moments the event loop did not come back to a task that slept `TICK` seconds for more
    than `STALL` seconds late, each as (wall seconds late, CPU seconds this process spent
    meanwhile): a stall with CPU near its wall time is work of this process (a long step, a
    garbage collection), one with much less CPU is the process waiting for a core (another
    process ran: the machine is shared)."""

    TICK: ClassVar[float] = 0.005
    STALL: ClassVar[float] = 0.020
    stalls: list[tuple[float, float]] = field(default_factory=list)

    async def watch(self) -> None:
        while True:
            wall, cpu = time.perf_counter(), time.process_time()
            await asyncio.sleep(self.TICK)
            late = time.perf_counter() - wall - self.TICK
            if late > self.STALL:
                self.stalls.append((late, time.process_time() - cpu))

    def describe(self) -> str:
        if not self.stalls:
            return f"no event-loop stall over {self.STALL * 1000:g} ms"
        waiting = [s for s in self.stalls if s[1] < 0.5 * s[0]]
        return (
            f"event-loop stalls over {self.STALL * 1000:g} ms: {len(self.stalls)}, longest "
            f"{max(s[0] for s in self.stalls) * 1000:.0f} ms; {len(waiting)} of them waiting "
            f"for a core (this process's CPU under half the stall: other processes ran), "
            f"{len(self.stalls) - len(waiting)} this process's own work"
        )


@dataclass
class UpdatesResult:
    name: str
    residents: int
    seconds: float
    tally: Tally
    costs: Costs = field(default_factory=Costs)
    stuck: str | None = None  # what the database pool looked like when updates were cut off
    paced: UpdatesResult | None = None  # the same residents, THINK_SECONDS between updates
    gc: GcPauses = field(default_factory=GcPauses)
    telegram_cpu: float = 0.0  # seconds in the Bot API double's handlers (`TimedTelegram`)
    stalls: LoopStalls = field(default_factory=LoopStalls)

    @property
    def updates(self) -> int:
        return len(self.tally.latencies)

    @property
    def rate(self) -> float:
        return self.updates / self.seconds if self.seconds else 0.0

    def per_update(self, total: float) -> float:
        return total / self.updates if self.updates else 0.0

    @property
    def cpu_ms(self) -> float:
        """CPU ms an update, the in-process sandbox's handlers excluded."""
        return self.per_update(self.costs.cpu - self.costs.sandbox_cpu) * 1000

    def latency_ms(self, share: float) -> float | str:
        """The latency percentile in ms ("-" without updates)."""
        latencies = self.tally.latencies
        return percentile(latencies, share) * 1000 if latencies else "-"


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile of a non-empty sequence."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


class Resident:
    """One resident's chat, timing every update it sends and checking what the bot shows."""

    def __init__(
        self,
        chat: Conversation,
        tally: Tally,
        deadline: float,
        errors: Sequence[str] = (),
        think: float = 0.0,
    ) -> None:
        self.chat = chat
        self.tally = tally
        self.deadline = deadline
        self.errors = errors  # texts of the bot's error answers
        self.think = think  # seconds between updates on average (0: none)
        self.rng = random.Random(chat.chat_id)

    async def send(self, text: str, expect: str | None = None, action: str | None = None) -> None:
        await self._step(action or text, lambda: self.chat.send(text), expect)

    async def press(
        self, button: str | int, expect: str | None = None, action: str | None = None
    ) -> None:
        await self._step(action or str(button), lambda: self.chat.press(button), expect)

    async def _step(
        self, action: str, call: Callable[[], Awaitable[Reply]], expect: str | None
    ) -> None:
        if self.think:
            await asyncio.sleep(self.rng.expovariate(1 / self.think))
        if time.perf_counter() >= self.deadline:
            raise TimeUp
        started = time.perf_counter()
        own = [0.0]  # CPU seconds of the update's own steps (its task: the whole dispatch)
        waits: dict[str, float] = {}
        token = _WAITS.set(waits)
        try:
            # timed in the paced run only: in the measured one it would add to the CPU counted
            reply = await (CpuTimed(call(), own) if self.think else call())
        except ConversationError:  # no such button: nothing was fed
            raise
        except Exception as error:
            self.tally.record(
                time.perf_counter() - started, raised=True, step=self._step_name(action)
            )
            raise UpdateFailed(f"{action!r} raised {type(error).__name__}: {error}") from error
        finally:
            _WAITS.reset(token)
        self.tally.waits.append({"own CPU": own[0], **waits})
        self.tally.step_waits.setdefault(self._step_name(action), []).append(self.tally.waits[-1])
        self.tally.record(time.perf_counter() - started, step=self._step_name(action))
        self.tally.own_cpu.append(own[0])
        said = [error for error in self.errors for text in reply.texts if error in text]
        if said:
            raise Unexpected(f"after {action!r} the bot said {said[0]!r}")
        if expect is not None and expect not in self.chat.last_text:
            shown = self.chat.last_text[:120].replace("\n", " ")
            raise Unexpected(f"after {action!r} expected {expect!r}, the bot shows {shown!r}")

    @staticmethod
    def _step_name(action: str) -> str:
        """The step's name for the table by step: a bill's or a fund's button is its kind."""
        return "a bill's button" if action.isdigit() else action

    def buttons(self, keep: Callable[[str], bool]) -> list[int]:
        """1-based indexes of the latest keyboard's buttons that `keep` accepts."""
        return [index for index, text in enumerate(self.chat.buttons, 1) if keep(text)]

    def trim(self) -> None:
        """Forget all but the chat's latest messages in LocalTelegram (outside the timing).

        `Conversation.press` looks for the latest keyboard among all of the chat's messages,
        which LocalTelegram keeps forever: after 1,000 updates of one resident (600 messages)
        that search alone took 3.4 ms a press, as long as the bot's own work on the update.
        Old messages are never touched again: every journey starts anew with /start."""
        stored = self.chat.telegram._messages[self.chat.chat_id]
        for message_id in sorted(stored)[:-KEEP_MESSAGES]:
            del stored[message_id]


async def bills(resident: Resident) -> None:
    await resident.press("Мои счета", expect="неоплаченных счетов")
    await resident.press("›", expect="неоплаченных счетов", action="next page")
    picks = resident.buttons(lambda text: BILL.match(text) is not None)
    if not picks:
        raise Unexpected("no bills on the second page")
    await resident.press(resident.rng.choice(picks), action="pick a bill")
    await resident.press("Оплатить выбранные", expect="К оплате", action="payment confirmation")
    await resident.press("Отмена", expect="неоплаченных счетов")
    await resident.press("‹ Назад", expect=MENU)


async def charity(resident: Resident) -> None:
    await resident.press("Благотворительность", expect="Кому помочь?")
    categories = resident.buttons(lambda text: text.endswith(")"))
    await resident.press(resident.rng.choice(categories), expect="Фонды", action="a category")
    funds = resident.buttons(lambda text: not text.isdigit() and text not in PAGER)
    await resident.press(resident.rng.choice(funds), expect="Программы:", action="a fund")
    await resident.press("‹ Назад", expect="Фонды")
    await resident.press("‹ Назад", expect="Кому помочь?")
    await resident.press("‹ Назад", expect=MENU)


async def report_problem(resident: Resident) -> None:
    await resident.press("Сообщить о проблеме")
    if "Удалить черновик" in resident.chat.buttons:  # a draft left by an earlier journey
        await resident.press("Удалить черновик")
    if "Что случилось?" not in resident.chat.last_text:
        raise Unexpected(f"«Сообщить о проблеме» shows {resident.chat.last_text[:120]!r}")
    await resident.send("яма", expect="Выберите тему")
    await resident.press("Яма на дороге", expect="Где это?")
    await resident.press("‹ Назад", expect=MENU)


JOURNEYS: dict[str, Callable[[Resident], Awaitable[None]]] = {
    "bills": bills,
    "charity": charity,
    "report": report_problem,
}


async def go_round(resident: Resident) -> None:
    """Journeys until the time is up; a failed one is counted and the next starts afresh."""
    names = list(JOURNEYS)
    while True:
        journey = resident.rng.choice(names)
        resident.trim()
        try:
            await resident.send("/start", expect=MENU)
            await JOURNEYS[journey](resident)
        except TimeUp:
            return
        except (Unexpected, UpdateFailed, ConversationError) as error:
            resident.tally.fail(journey, error)
            continue
        resident.tally.journeys[journey] += 1


async def echo_round(resident: Resident) -> None:
    while True:
        resident.trim()
        text = resident.rng.choice(BARE_TEXTS)
        try:
            await resident.send(text, expect=text, action="echo")
        except TimeUp:
            return


def conversation(dispatcher: Dispatcher, bot: Bot, number: int) -> Conversation:
    return Conversation(
        dispatcher,
        bot,
        user_id=FIRST_USER + number,
        first_name=f"Житель {number + 1}",
        first_update_id=number * UPDATE_IDS_PER_RESIDENT + 1,
    )


async def link(chat: Conversation) -> None:
    """What `tests.flows.conftest.Harness.link` does: /start, «Привязать», the login page,
    then /start with the code from the page the login lands on."""
    await chat.send("/start")
    await chat.press("Привязать")
    page = (await demo_login(chat.url_of("mos.ru"), "demo-full")).text
    match = START_LINK.search(page)
    if match is None:
        raise RuntimeError(f"the login did not land on a page with a link: {page[:300]}")
    said = (await chat.send(f"/start {match.group(1)}")).text
    if "Аккаунт привязан" not in said:
        raise RuntimeError(f"linking failed: {said[:300]}")


async def measure(
    name: str,
    chats: list[Conversation],
    seconds: float,
    loop: Callable[[Resident], Coroutine[Any, Any, None]],
    errors: Sequence[str] = (),
    diagnose: Callable[[], str] | None = None,
    meter: Meter | None = None,
    think: float = 0.0,
    telegram: TimedTelegram | None = None,
) -> UpdatesResult:
    """All residents at once for `seconds`; updates still in flight GRACE seconds later are
    cut off (cancelled) and counted, so that a stuck bot cannot stall the benchmark. The
    `meter` counts from the start to when the last resident stopped (or was cut off)."""
    tally = Tally()
    meter = meter or Meter()
    meter.start()
    telegram_before = telegram.spent[0] if telegram else 0.0
    started = time.perf_counter()
    residents = [Resident(chat, tally, started + seconds, errors, think) for chat in chats]
    tasks = [asyncio.create_task(loop(resident)) for resident in residents]
    stalls = LoopStalls()
    watcher = asyncio.create_task(stalls.watch())
    with GcPauses() as pauses:
        done, pending = await asyncio.wait(tasks, timeout=seconds + GRACE)
    watcher.cancel()
    elapsed = time.perf_counter() - started
    stuck = diagnose() if pending and diagnose else None
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    costs = meter.stop()
    for task in done:
        task.result()  # a mistake of the benchmark's own is not to pass unnoticed
    tally.unfinished = len(pending)
    spent = telegram.spent[0] - telegram_before if telegram else 0.0
    return UpdatesResult(
        name,
        len(chats),
        elapsed,
        tally,
        costs,
        stuck,
        gc=pauses,
        telegram_cpu=spent,
        stalls=stalls,
    )


async def full_stack(stack: Stack, residents: int, seconds: float) -> UpdatesResult:
    if stack.database_url:
        await fresh_postgres(stack.database_url)
    if stack.redis_url:
        await flush_redis(stack.redis_url)
    with tempfile.TemporaryDirectory(prefix="bench-updates-") as folder:
        data_dir = Path(folder)
        values: dict[str, Any] = {
            "database_url": stack.database_url or f"sqlite+aiosqlite:///{data_dir / 'bot.db'}",
            "redis_url": stack.redis_url,
            "web_port": 0,
            "sandbox_port": 0,
            "data_dir": data_dir,
            "token_encryption_keys": TokenCipher.generate_key(),
            "city_timeout": 10.0,  # a busy event loop must not turn into «city unavailable»
            "city_deadline": 20.0,
            "flood_limit": 0,  # the residents here are faster than any thumb
            "_env_file": None,
        }
        meter = Meter()
        city = create_app()
        city.middlewares.append(meter.sandbox_middleware)
        telegram = TimedTelegram()
        async with SandboxServer(city) as sandbox:
            app: Application = await create_application(
                Settings(**values), bot_session=telegram, sandbox=sandbox
            )
            meter.watch_engine(app.engine)
            if app.state_engine is not None:  # dialog state in SQL: a pool of its own
                meter.watch_engine(app.state_engine)
            try:
                chats = [conversation(app.dispatcher, app.bot, n) for n in range(residents)]
                at_once = asyncio.Semaphore(LINK_AT_ONCE)

                async def link_one(chat: Conversation) -> None:
                    async with at_once:
                        await link(chat)

                await asyncio.gather(*(link_one(chat) for chat in chats))
                errors = [app.tr(key) for key in ERROR_KEYS]
                pool = app.engine.pool
                # the measured run without `Waits` (its wrappers would add to the CPU counted)
                with _heap():
                    with meter.count_redis():
                        result = await measure(
                            stack.name,
                            chats,
                            seconds,
                            go_round,
                            errors,
                            pool.status,
                            meter,
                            telegram=telegram,
                        )
                    with Waits(app.engine):
                        result.paced = await measure(
                            f"{stack.name}, paced",
                            chats,
                            PACED_SECONDS,
                            go_round,
                            errors,
                            pool.status,
                            think=THINK_SECONDS,
                        )
                return result
            finally:
                await app.stop()


def _heap() -> AbstractContextManager[Any]:
    """As `bot.runners.serving` runs every replica: the start-up heap frozen out of the garbage
    collector's way (`bot.warmup.lean_heap`). BENCH_GC=default leaves CPython's collector as it
    is; BENCH_GC=700,10,10 (three numbers) freezes with those thresholds instead."""
    chosen = os.environ.get("BENCH_GC", "")
    if chosen == "default":
        return nullcontext()
    if chosen:
        first, second, third = (int(part) for part in chosen.split(","))
        return lean_heap((first, second, third))
    return lean_heap()


async def bare_aiogram(residents: int, seconds: float) -> UpdatesResult:
    router = Router()

    @router.message()
    async def echo(message: Message) -> None:
        await message.answer(message.text or "")

    dispatcher = Dispatcher()
    dispatcher.include_router(router)
    telegram = TimedTelegram()
    bot = Bot(LOCAL_BOT_TOKEN, session=telegram, default=DefaultBotProperties(parse_mode="HTML"))
    try:
        chats = [conversation(dispatcher, bot, n) for n in range(residents)]
        for chat in chats:  # like linking on the full stack: everything imported and warm
            await chat.send("/start")
        return await measure("bare aiogram (echo)", chats, seconds, echo_round, telegram=telegram)
    finally:
        await bot.session.close()


class FloorStates(StatesGroup):
    menu = State()
    page = State()


async def _floor_page(**_: Any) -> dict[str, Any]:
    return {"n": 2}


async def bare_dialog(residents: int, seconds: float, redis_url: str | None) -> UpdatesResult:
    """The floor the chosen framework sets: a bare aiogram-dialog bot (one dialog of two
    windows, a button each, a getter on one; aiogram's RedisStorage and Redis event isolation
    when Redis is set, as aiogram-dialog's own setup asks for) over a `LocalTelegram` too,
    driven like the full stack: /start, «Дальше», «‹ Назад». No database, no middleware of
    ours: what any bot on aiogram-dialog pays an update before doing anything of its own."""
    storage: BaseStorage
    isolation: BaseEventIsolation
    if redis_url:
        await flush_redis(redis_url)
        storage = RedisStorage(
            Redis.from_url(redis_url), key_builder=DefaultKeyBuilder(with_destiny=True)
        )
        isolation = storage.create_isolation()
    else:
        storage, isolation = MemoryStorage(), SimpleEventIsolation()
    router = Router()

    @router.message(CommandStart())
    async def start(message: Message, dialog_manager: DialogManager) -> None:
        await dialog_manager.start(FloorStates.menu, mode=StartMode.RESET_STACK)

    dialog = Dialog(
        Window(
            Const("Меню"),
            SwitchTo(Const("Дальше"), id="next", state=FloorStates.page),
            state=FloorStates.menu,
        ),
        Window(
            Format("Страница {n}"),
            SwitchTo(Const("‹ Назад"), id="back", state=FloorStates.menu),
            getter=_floor_page,
            state=FloorStates.page,
        ),
    )
    dispatcher = Dispatcher(storage=storage, events_isolation=isolation)
    dispatcher.include_router(router)
    dispatcher.include_router(dialog)
    setup_dialogs(dispatcher)
    telegram = TimedTelegram()
    bot = Bot(LOCAL_BOT_TOKEN, session=telegram, default=DefaultBotProperties(parse_mode="HTML"))

    async def rounds(resident: Resident) -> None:
        while True:
            resident.trim()
            try:
                await resident.send("/start", expect="Меню")
                await resident.press("Дальше", expect="Страница")
                await resident.press("‹ Назад", expect="Меню")
            except TimeUp:
                return

    try:
        chats = [conversation(dispatcher, bot, n) for n in range(residents)]
        for chat in chats:  # everything imported and warm, as on the full stack
            await chat.send("/start")
        with _heap():
            meter = Meter()
            with meter.count_redis():
                result = await measure(
                    FLOOR, chats, seconds, rounds, meter=meter, telegram=telegram
                )
        result.paced = await measure(
            f"{FLOOR}, paced", chats, PACED_SECONDS, rounds, think=THINK_SECONDS
        )
        return result
    finally:
        await bot.session.close()
        await storage.close()


def stacks(services: Services) -> list[Stack]:
    """SQLite, then PostgreSQL (+ Redis) when set; BENCH_UPDATES_STACKS=postgres leaves SQLite
    out (a quicker run when only the production stack is being measured)."""
    only_postgres = os.environ.get("BENCH_UPDATES_STACKS", "").strip().lower() == "postgres"
    chosen = [] if only_postgres else [Stack("SQLite", None, None)]
    if services.postgres:
        name = "PostgreSQL + Redis" if services.redis else "PostgreSQL"
        chosen.append(Stack(name, services.postgres, services.redis))
    return chosen


async def run(
    services: Services, residents: int = 50, seconds: float = 20.0
) -> list[UpdatesResult]:
    heading(
        "Updates: residents chatting through the whole bot, through bare aiogram-dialog and "
        "through bare aiogram"
    )
    print(
        f"{residents:,} residents at once (asyncio.gather), {seconds:g} s each; the journeys "
        f"{', '.join(JOURNEYS)} in a random order, nothing paid; flood limit off; in-process "
        "Bot API (LocalTelegram) and city sandbox"
    )
    if not services.postgres:
        print(f"PostgreSQL skipped: {NO_POSTGRES}")
    results = []
    for stack in stacks(services):
        print(f"… {stack.name}: linking {residents:,} residents, then {seconds:g} s", flush=True)
        results.append(await full_stack(stack, residents, seconds))
    print(f"… {FLOOR}: {seconds:g} s", flush=True)
    results.append(await bare_dialog(residents, seconds, services.redis))
    print(f"… bare aiogram: {seconds:g} s", flush=True)
    results.append(await bare_aiogram(residents, seconds))
    report(results)
    return results


def report(results: list[UpdatesResult]) -> None:
    *stacks_run, floor, bare = results
    print()
    table(
        ["", *(r.name for r in results)],
        [
            ["residents", *(r.residents for r in results)],
            ["updates", *(r.updates for r in results)],
            ["seconds", *(r.seconds for r in results)],
            ["updates/s", *(r.rate for r in results)],
            ["latency p50, ms", *(r.latency_ms(0.50) for r in results)],
            ["latency p99, ms", *(r.latency_ms(0.99) for r in results)],
            [
                f"paced ({THINK_SECONDS:g} s between a resident's updates): updates/s",
                *(r.paced.rate if r.paced else "-" for r in results),
            ],
            ["  latency p50, ms", *(r.paced.latency_ms(0.50) if r.paced else "-" for r in results)],
            ["  latency p99, ms", *(r.paced.latency_ms(0.99) if r.paced else "-" for r in results)],
            ["CPU an update, ms (this process)", *(_ms(r, r.costs.cpu) for r in results)],
            ["  of it in the city sandbox", *(_ms(r, r.costs.sandbox_cpu) for r in results)],
            ["  the bot's own (sandbox excluded)", *(f"{r.cpu_ms:.2f}" for r in results)],
            [
                "  of the bot's own: the Bot API double's handlers",
                *(_ms(r, r.telegram_cpu) for r in results),
            ],
            [
                "  the bot's own without them, ms",
                *(f"{r.cpu_ms - r.per_update(r.telegram_cpu) * 1000:.2f}" for r in results),
            ],
            [
                "  CPU an update without them, full stack / bare",
                *(_cpu_ratio_without_telegram(r, bare) for r in results),
            ],
            ["SQL statements an update", *(_each(r, r.costs.sql) for r in stacks_run), "-", "-"],
            [
                "  + pool pre-pings an update",
                *(_each(r, r.costs.pings) for r in stacks_run),
                "-",
                "-",
            ],
            [
                "Redis commands an update",
                *(_each(r, r.costs.redis) for r in [*stacks_run, floor]),
                "-",
            ],
            [
                "  Redis round trips an update",
                *(_trips(r) for r in stacks_run),
                _each(floor, floor.costs.redis_trips),
                "-",
            ],
            ["updates/s, full stack / bare", *(_ratio(r, bare) for r in results)],
            ["CPU an update, full stack / bare", *(_cpu_ratio(r, bare) for r in results)],
            [
                f"CPU an update, full stack / {FLOOR}",
                *(_cpu_ratio(r, floor) for r in [*stacks_run, floor]),
                "-",
            ],
            ["updates that raised", *(r.tally.raised for r in results)],
            [f"cut off (in flight {GRACE:g} s after)", *(r.tally.unfinished for r in results)],
            ["journeys done", *(r.tally.journeys.total() for r in stacks_run), "-", "-"],
            ["journeys failed", *(r.tally.failed.total() for r in stacks_run), "-", "-"],
        ],
    )
    print(
        "(CPU: time.process_time() of this process over the measured period, all threads; the "
        "city sandbox runs in this process and its request handlers' CPU is measured and taken "
        "out of «the bot's own» (its HTTP server's parsing is not); the PostgreSQL and Redis "
        "servers' CPU is not in it; the residents' driver and the in-process Bot API are in it, "
        "as in bare's)"
    )
    for result in stacks_run:
        if result.tally.first_failure:
            print(f"{result.name}, first failed journey: {result.tally.first_failure}")
        if result.stuck:
            print(
                f"{result.name}: {result.tally.unfinished} updates stuck; the database pool "
                f"then: {result.stuck}"
            )
    print()
    for result in stacks_run:
        for run in (result, result.paced):
            if run is not None:
                by_step(run)
    print(
        f"({FLOOR}: the least any bot on the chosen dialog framework pays an update — the "
        "share of the full stack's CPU above it is ours; bare aiogram's ratio is the issue's "
        "target)"
    )
    print()
    targets(stacks_run, bare)


def _first(row: tuple[float, float, dict[str, float]]) -> float:
    return row[0]


def by_step(result: UpdatesResult) -> None:
    """Latency by journey step (where the tail is), and the garbage collector's pauses."""
    rows: list[list[object]] = []
    # the waits are measured in the paced run only (`Waits`, `Resident._step`)
    kinds = ("own CPU", "Redis", "SQL", "city") if any(result.tally.own_cpu) else ()
    for step, latencies in sorted(result.tally.steps.items(), key=lambda item: -len(item[1])):
        waits = result.tally.step_waits.get(step, [])
        rows.append(
            [
                step,
                len(latencies),
                percentile(latencies, 0.50) * 1000,
                percentile(latencies, 0.99) * 1000,
                max(latencies) * 1000,
                *(
                    sum(w.get(kind, 0.0) for w in waits) / len(waits) * 1000 if waits else "-"
                    for kind in kinds
                ),
            ]
        )
    print()
    table(
        [
            f"{result.name}: by step",
            "updates",
            "p50, ms",
            "p99, ms",
            "max, ms",
            *(f"{kind}, ms (mean)" for kind in kinds),
        ],
        rows,
    )
    pauses = result.gc.pauses
    print(
        "garbage collections (generation: count, total ms, longest ms): "
        + "; ".join(
            f"{generation}: {len(each)}, {sum(each) * 1000:.1f}, {max(each) * 1000:.1f}"
            for generation, each in sorted(pauses.items())
        )
        if pauses
        else "no garbage collection"
    )
    print(result.stalls.describe())
    tally = result.tally
    if any(tally.own_cpu) and not tally.raised:
        rows = sorted(zip(tally.latencies, tally.own_cpu, tally.waits, strict=True), key=_first)
        for share, label in ((0.5, "all updates"), (0.01, "the slowest 1 %")):
            chosen = rows if share == 0.5 else rows[-max(1, len(rows) // 100) :]
            kinds = sorted({kind for _, _, waits in chosen for kind in waits})
            mean = {
                kind: sum(w.get(kind, 0.0) for _, _, w in chosen) / len(chosen) for kind in kinds
            }
            print(
                f"{label} ({len(chosen)}), ms on average: latency "
                f"{sum(r[0] for r in chosen) / len(chosen) * 1000:.1f}, its own CPU "
                f"{sum(r[1] for r in chosen) / len(chosen) * 1000:.1f}; awaiting "
                + ", ".join(f"{k} {mean[k] * 1000:.1f}" for k in kinds if k != "own CPU")
            )


def targets(stacks_run: Sequence[UpdatesResult], bare: UpdatesResult) -> None:
    """Issue 14's targets beside each stack's figures, met or not."""
    rows: list[list[object]] = []
    for r in stacks_run:
        sql = r.per_update(r.costs.sql + r.costs.pings)
        p99 = r.latency_ms(0.99)
        checks: list[tuple[str, str, bool]] = [
            (
                f"CPU/update ≤ {TARGET_CPU_TIMES_BARE:g}× bare",
                f"{r.cpu_ms / bare.cpu_ms:.2f}×" if bare.cpu_ms else "-",
                bool(bare.cpu_ms) and r.cpu_ms <= TARGET_CPU_TIMES_BARE * bare.cpu_ms,
            ),
            (
                f"updates/s ≥ {TARGET_RATE_SHARE:.0%} of bare",
                f"{r.rate / bare.rate:.0%}" if bare.rate else "-",
                bool(bare.rate) and r.rate >= TARGET_RATE_SHARE * bare.rate,
            ),
            (
                f"p99 ≤ {TARGET_P99_MS:g} ms ({r.residents} residents; the target: 50)",
                f"{p99:.1f} ms" if isinstance(p99, float) else p99,
                isinstance(p99, float) and p99 <= TARGET_P99_MS,
            ),
            *(
                [
                    (
                        f"  paced, {THINK_SECONDS:g} s between updates: p99 ≤ {TARGET_P99_MS:g} ms",
                        f"{paced_p99:.1f} ms" if isinstance(paced_p99, float) else paced_p99,
                        isinstance(paced_p99, float) and paced_p99 <= TARGET_P99_MS,
                    )
                ]
                if r.paced is not None and (paced_p99 := r.paced.latency_ms(0.99))
                else []
            ),
            (
                f"SQL/update ≤ {TARGET_SQL:g} (pre-pings included)",
                f"{sql:.2f}",
                bool(r.updates) and sql <= TARGET_SQL,
            ),
        ]
        if "Redis" in r.name:
            redis = r.per_update(r.costs.redis)
            checks.append(
                (
                    f"Redis commands/update ≤ {TARGET_REDIS:g}",
                    f"{redis:.2f}",
                    bool(r.updates) and redis <= TARGET_REDIS,
                )
            )
        rows += [[r.name, target, figure, verdict(met)] for target, figure, met in checks]
    table(["targets (issue 14)", "target", "figure", ""], rows)


def _ms(result: UpdatesResult, seconds: float) -> str:
    return f"{result.per_update(seconds) * 1000:.2f}"


def _each(result: UpdatesResult, count: int) -> str:
    return f"{result.per_update(count):.2f}"


def _trips(result: UpdatesResult) -> str:
    return _each(result, result.costs.redis_trips) if "Redis" in result.name else "-"


def _cpu_ratio(result: UpdatesResult, bare: UpdatesResult) -> str:
    return f"{result.cpu_ms / bare.cpu_ms:.2f}" if bare.cpu_ms else "-"


def _cpu_ratio_without_telegram(result: UpdatesResult, bare: UpdatesResult) -> str:
    """The CPU ratio with the Bot API double's handlers taken out of both (Telegram's side)."""
    mine = result.cpu_ms - result.per_update(result.telegram_cpu) * 1000
    theirs = bare.cpu_ms - bare.per_update(bare.telegram_cpu) * 1000
    return f"{mine / theirs:.2f}" if theirs > 0 else "-"


def _ratio(result: UpdatesResult, bare: UpdatesResult) -> str:
    return f"{result.rate / bare.rate:.3f}" if bare.rate else "-"
