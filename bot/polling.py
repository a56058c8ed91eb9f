"""Long polling that confirms to Telegram only what was handled.

aiogram's `Dispatcher.start_polling` moves getUpdates' offset past an update as soon as it hands
the update to a task, so the updates in flight when the process dies (kill -9, out of memory, a
replica stopped) are confirmed and lost. This loop is aiogram's (`Dispatcher._polling` and
`_listen_updates`: the same getUpdates, allowed updates, long-poll timeout, backoff, start-up
and shutdown events, `stop_polling` and signals) with one difference, which is why it is
written here rather than borrowed: the offset it sends is the lowest update_id not finished
yet, so Telegram forgets an update only once it and every update before it were handled (or
failed and the resident was told: the error handlers ran). What was not finished when the
process went away comes back after a restart, and the de-duplication middleware
(`bot.middlewares.UpdateDedupMiddleware`) keeps what did finish from being handled twice.

Two more rules keep one update or one chat from stopping the bot for everyone: an update gets
UPDATE_DEADLINE seconds, then it is cancelled and counted as finished (so the offset moves on
and Telegram does not send it again), and a chat's updates run one at a time, in order, while
other chats' updates start past them (aiogram takes the chat's FSM lock only inside the
dispatcher: without this a chat's later updates would each take a slot to wait for it).
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import suppress
from functools import partial
from typing import Any, Protocol

import structlog
from aiogram import Bot, Dispatcher, loggers
from aiogram.dispatcher.dispatcher import DEFAULT_BACKOFF_CONFIG
from aiogram.dispatcher.middlewares.user_context import UserContextMiddleware
from aiogram.fsm.storage.base import BaseStorage, StorageKey
from aiogram.methods import GetUpdates, TelegramMethod
from aiogram.types import Update
from aiogram.utils.backoff import Backoff, BackoffConfig

from bot.album import settle_now as settle_albums

log = structlog.get_logger(__name__)

POLLING_TIMEOUT = 10  # seconds getUpdates waits for updates (aiogram's start_polling default)
BATCH = 100  # getUpdates' largest `limit`, and the most updates held before they start
IDLE_REFETCH = 1.0  # seconds before asking again when a batch brought only known updates
CONFIRM_TIMEOUT = 5  # seconds the last confirmation on the way out may take
# Seconds one update may run before it is cancelled and counted as finished. Above what a slow
# but live update takes: Settings.city_deadline (6 s by default) for each of the one or two
# city calls of each of the 4 attempts TransientRetryMiddleware makes, and its 7.5 s of delays
# (about 55 s); below the minutes a hung one would otherwise stop the offset for.
UPDATE_DEADLINE = 120.0


class FinishedLedger(Protocol):
    """Where the updates finished but not yet confirmed outlive the process, when nothing else
    keeps them (without Redis the de-duplication markers live in the process's memory): an
    update that finished behind a slower one is not confirmed (the offset never passes an
    unfinished one), so Telegram hands it out again after a restart — and without this it
    would be handled, and answered, twice."""

    async def recall(self) -> set[int]:
        """The update_ids the last run finished and could not confirm (empty when none)."""
        ...

    async def keep(self, finished: set[int]) -> None:
        """Remember `finished` for the next run (replacing what was kept)."""
        ...


# Telegram keeps an update it handed out for 24 hours (the Bot API's getUpdates): finished ids
# kept longer than that are stale, and after a week without updates its ids may start afresh.
LEDGER_KEPT = 24 * 60 * 60  # seconds


class StorageLedger:
    """`FinishedLedger` in the bot's FSM storage (the database's `fsm_state` without Redis),
    under a key of no chat: `{"ids": [...], "at": <unix seconds>}`; what is older than
    LEDGER_KEPT is not recalled. Without Redis this is the only record a restart finds."""

    def __init__(
        self, storage: BaseStorage, bot_id: int, clock: Callable[[], float] = time.time
    ) -> None:
        self._storage = storage
        self._key = StorageKey(bot_id=bot_id, chat_id=0, user_id=0, destiny="polling:finished")
        self._clock = clock
        self._recalled: set[int] = set()
        self._recalled_at = 0.0

    async def recall(self) -> set[int]:
        data = await self._storage.get_data(self._key)
        ids, at = data.get("ids"), data.get("at")
        if not isinstance(ids, list) or not isinstance(at, int | float):
            return set()
        if self._clock() - at > LEDGER_KEPT:
            return set()
        self._recalled = {number for number in ids if isinstance(number, int)}
        self._recalled_at = float(at)
        return set(self._recalled)

    async def keep(self, finished: set[int]) -> None:
        if not finished:  # nothing left to skip: the key goes (an empty one is deleted)
            await self._storage.set_data(self._key, {})
            return
        # Ids carried over from the last run keep that run's moment: a quiet bot restarted
        # daily must not trust them for ever (after a quiet week Telegram's ids may restart
        # and a new update take an old id). Kept with them, this run's expire a little early
        # (at worst answered again, never skipped).
        at = self._recalled_at if finished & self._recalled else self._clock()
        await self._storage.set_data(self._key, {"ids": sorted(finished), "at": at})


class ConfirmingPoller:
    """One bot's polling loop. `run()` until the dispatcher's stop signal (`stop_polling`, or
    SIGTERM/SIGINT through aiogram's handler) or cancellation.

    - Updates are fetched in update_id order and started in that order, at most `in_flight`
      at once (0: no bound); while they run, the next batch is fetched.
    - Never two updates of one chat at once (of one user for an update without a chat;
      aiogram's `UserContextMiddleware.resolve_event_context` tells which; an update with
      neither runs freely): while one runs, the chat's later updates wait in the held queue
      in order, and other chats' updates start past them.
    - What waits is bounded by the offset rule itself: Telegram answers only the first 100
      unconfirmed updates and the offset never passes an unfinished one, so at most one
      batch (100) is ever held or running. Fetching also pauses while more than half of
      `hold` held updates could start (not waiting for their chat). When all 100 are one
      slow chat's, nothing later can be fetched before one of them ends: Telegram will not
      hand out update 101 before 1 is confirmed, and the poller does not drop a chat's
      updates unhandled (flood protection decides that, inside handling). No deadlock: each
      update ends within `deadline`, and the chat's next one starts then.
    - An update still running after `deadline` seconds (UPDATE_DEADLINE) is cancelled,
      logged as an error with its update_id (`polling.update_deadline`) and counted as
      finished: the offset moves past it and Telegram forgets it, so an update that hangs
      every time is not handled again and again, after a restart either (the
      de-duplication middleware released it; only a process that dies before the offset
      moved gets it once more). A handler that swallows the cancellation keeps running.
    - Each getUpdates sends the lowest update_id still waiting or running as its offset (or
      one past the last update seen when none is), so only a contiguous prefix of finished
      updates is ever confirmed. Telegram sends unconfirmed updates again with every answer;
      those already held, running or finished are skipped by update_id. Any other id is
      taken, even one below the last offset: Telegram starts ids afresh at random after a
      week without updates.
    - getUpdates failures (network, Telegram's 5xx, 409 Conflict, 401) are logged and retried
      after aiogram's backoff, as aiogram does; polling does not end on them.
    - On stop: nothing new is fetched or started; the updates in flight get `grace` seconds
      to finish, the rest are cancelled (the de-duplication middleware releases them); then
      one last getUpdates confirms the finished prefix. Within the same `grace` the albums
      buffered in memory (no Redis) are handled at once (`bot.album.settle_now`): their
      parts finished when they were buffered and may be confirmed already. Cancelled from
      outside (a crash in tests), it cancels its updates and confirms nothing more."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        bot: Bot,
        *,
        in_flight: int,
        grace: float,
        hold: int = BATCH,
        polling_timeout: int = POLLING_TIMEOUT,
        backoff_config: BackoffConfig = DEFAULT_BACKOFF_CONFIG,
        allowed_updates: Sequence[str] | None = None,
        deadline: float | None = None,
        ledger: FinishedLedger | None = None,
        **kwargs: Any,
    ) -> None:
        self.dispatcher = dispatcher
        self.ledger = ledger
        self.bot = bot
        self.in_flight = in_flight
        self.grace = grace
        self.hold = max(1, hold)
        self.polling_timeout = polling_timeout
        self.backoff_config = backoff_config
        self.allowed_updates = list(allowed_updates) if allowed_updates is not None else None
        self.deadline = UPDATE_DEADLINE if deadline is None else deadline  # seconds
        self.kwargs = kwargs  # handed to every feed_update, as aiogram's _process_update does
        # fetched, not started, in update_id order, with their chat (user) id or None
        self._held: deque[tuple[int | None, Update]] = deque()
        self._running: dict[int, asyncio.Task[None]] = {}
        self._busy: set[int] = set()  # chats (users) with an update running
        self._stopping = False  # the updates cancelled from now on stay unconfirmed
        self._unfinished: set[int] = set()  # held or running: the offset never passes them
        self._finished: set[int] = set()  # finished, maybe not confirmed yet
        self._last_seen: int | None = None  # the newest update_id fetched
        self._confirmed: int | None = None  # the last offset Telegram accepted
        self._wake = asyncio.Event()

    def offset(self) -> int | None:
        """What getUpdates sends now: the lowest unfinished update_id, or one past the newest
        update seen when all finished; None before the first update (Telegram's own start)."""
        if self._unfinished:
            return min(self._unfinished)
        return None if self._last_seen is None else self._last_seen + 1

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until `stop` is set; see the class. Raises what cancels it."""
        user = await self.bot.me()
        loggers.dispatcher.info(
            "Run polling for bot @%s id=%d - %r", user.username, self.bot.id, user.full_name
        )
        await self._recall_finished()
        stopper = asyncio.create_task(stop.wait(), name="polling-stop")
        stopper.add_done_callback(lambda _: self._wake.set())
        fetch: asyncio.Task[tuple[int | None, list[Update]]] | None = None
        # A batch that brought nothing new was asked with this offset: ask again once the
        # offset moves (a full batch: nothing new can come before), or at `refetch_at`.
        wait_for_offset: int | None = None
        refetch_at = 0.0
        loop = asyncio.get_running_loop()
        clean = False
        try:
            while not stop.is_set():
                self._start_held()
                if fetch is not None and fetch.done():
                    asked, batch = fetch.result()  # _fetch retries every Exception itself
                    fetch = None
                    if not self._take(batch):
                        wait_for_offset = asked
                        full = len(batch) >= BATCH  # nothing new can come before it moves
                        refetch_at = float("inf") if full else loop.time() + IDLE_REFETCH
                    self._start_held()
                may_fetch = wait_for_offset is None or (
                    self.offset() != wait_for_offset or loop.time() >= refetch_at
                )
                # below half the bound: each batch then brings about half a batch of new
                # updates, not one new among a hundred parsed again
                if fetch is None and self._ready() <= self.hold // 2 and may_fetch:
                    wait_for_offset = None
                    fetch = asyncio.create_task(self._fetch(), name="polling-get-updates")
                    fetch.add_done_callback(lambda _: self._wake.set())
                self._wake.clear()
                if fetch is None and wait_for_offset is not None and refetch_at != float("inf"):
                    with suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), refetch_at - loop.time())
                else:
                    await self._wake.wait()
            clean = True
        finally:
            self._stopping = True
            stopper.cancel()
            if fetch is not None:
                fetch.cancel()
                await asyncio.gather(fetch, return_exceptions=True)
            self._held.clear()  # never started: not confirmed, Telegram keeps them
            if clean:
                await self._finish_in_flight()
                await self._confirm_finished()
                await self._keep_finished()
            else:
                await self._cancel_in_flight()
            loggers.dispatcher.info(
                "Polling stopped for bot @%s id=%d - %r", user.username, self.bot.id, user.full_name
            )

    def _take(self, batch: list[Update]) -> bool:
        """Hold the batch's new updates in order; False when every one was known already."""
        fresh = False
        for update in batch:
            number = update.update_id
            if number in self._finished:  # Telegram repeats what is not confirmed yet
                self._last_seen = max(number, self._last_seen or number)  # the offset passes it
                continue
            if number in self._unfinished:
                continue
            self._held.append((self._chat(update), update))
            self._unfinished.add(number)
            self._last_seen = number
            fresh = True
        return fresh

    @staticmethod
    def _chat(update: Update) -> int | None:
        """The id whose updates run one at a time: the chat's, else the user's, else None.
        (A private chat's id is its user's: the two are one queue, as they should be.)"""
        context = UserContextMiddleware.resolve_event_context(update)
        return context.chat_id if context.chat_id is not None else context.user_id

    def _ready(self) -> int:
        """How many held updates are not waiting for their chat's running update."""
        return sum(1 for chat, _ in self._held if chat is None or chat not in self._busy)

    def _start_held(self) -> None:
        """Start held updates in order while slots are free, skipping (and keeping, in order)
        those whose chat has an update running or an earlier one still held."""
        waiting: deque[tuple[int | None, Update]] = deque()
        passed: set[int] = set()  # chats with an earlier update kept waiting in this pass
        while self._held:
            if self.in_flight and len(self._running) >= self.in_flight:
                break
            chat, update = self._held.popleft()
            if chat is not None and (chat in self._busy or chat in passed):
                passed.add(chat)
                waiting.append((chat, update))
                continue
            number = update.update_id
            task = asyncio.create_task(self._handle(update), name=f"update-{number}")
            self._running[number] = task
            if chat is not None:
                self._busy.add(chat)
            task.add_done_callback(partial(self._ended, number, chat))
        waiting.extend(self._held)
        self._held = waiting

    def _ended(self, number: int, chat: int | None, task: asyncio.Task[None]) -> None:
        self._running.pop(number, None)
        if chat is not None:
            self._busy.discard(chat)
        if task.cancelled() and self._stopping:
            pass  # cancelled by the stop: not handled, it stays unconfirmed for the next run
        else:
            if task.cancelled():  # by its own handler: counted as finished, or it pins the offset
                log.error("polling.update_cancelled", update_id=number)
            self._unfinished.discard(number)
            self._finished.add(number)
        self._wake.set()

    async def _handle(self, update: Update) -> None:
        """aiogram's `Dispatcher._process_update`: feed the update; a Telegram method returned
        by a handler is called; an error is logged the same way (aiogram.event) — the error
        handlers and `TransientRetryMiddleware` already had their say, so it is finished.
        Cancelled after `deadline` seconds (logged, then finished as well)."""
        deadline = asyncio.timeout(self.deadline)
        try:
            async with deadline:
                response = await self.dispatcher.feed_update(self.bot, update, **self.kwargs)
                if isinstance(response, TelegramMethod):
                    await self.dispatcher.silent_call_request(bot=self.bot, result=response)
        except Exception as error:
            if isinstance(error, TimeoutError) and deadline.expired():
                log.error(
                    "polling.update_deadline", update_id=update.update_id, seconds=self.deadline
                )
                return
            # logged as aiogram logs it
            loggers.event.exception(
                "Cause exception while process update id=%d by bot id=%d\n%s: %s",
                update.update_id,
                self.bot.id,
                type(error).__name__,
                error,
            )

    async def _fetch(self) -> tuple[int | None, list[Update]]:
        """aiogram's `_listen_updates` for one batch: getUpdates with the offset of this moment,
        retried after a backoff on any failure until it answers. Returns the offset sent and
        the updates."""
        backoff = Backoff(config=self.backoff_config)
        extra: dict[str, Any] = {}
        if self.bot.session.timeout:  # wait longer than the long poll itself
            extra["request_timeout"] = int(self.bot.session.timeout + self.polling_timeout)
        failed = False
        while True:
            offset = self.offset()
            method = GetUpdates(
                offset=offset,
                limit=BATCH,
                timeout=self.polling_timeout,
                allowed_updates=self.allowed_updates,
            )
            try:
                batch = await self.bot(method, **extra)
            except Exception as error:  # aiogram retries every failure too
                failed = True
                loggers.dispatcher.error(
                    "Failed to fetch updates - %s: %s", type(error).__name__, error
                )
                loggers.dispatcher.warning(
                    "Sleep for %f seconds and try again... (tryings = %d, bot id = %d)",
                    backoff.next_delay,
                    backoff.counter,
                    self.bot.id,
                )
                await backoff.asleep()
                continue
            if failed:
                loggers.dispatcher.info(
                    "Connection established (tryings = %d, bot id = %d)",
                    backoff.counter,
                    self.bot.id,
                )
            self._accepted(offset)
            return offset, batch

    def _accepted(self, offset: int | None) -> None:
        """Telegram took `offset`: the updates below it are gone for good."""
        if offset is None:
            return
        self._confirmed = offset
        self._finished = {number for number in self._finished if number >= offset}

    async def _finish_in_flight(self) -> None:
        """The updates in flight get `grace` seconds; so do the albums buffered in memory.
        An album part finished (and so may be confirmed) once it was buffered, and without
        Redis only this process holds it: the albums are handled now, not left to a debounce
        the process will not live through (`bot.album.settle_now`, which explains why this
        rather than keeping their parts unconfirmed). Both run at once: an update in flight
        may wait for its chat's album, or buffer one more part."""
        running = set(self._running.values())
        if running:
            log.info("polling.finishing", in_flight=len(running), grace=self.grace)
        await asyncio.gather(
            asyncio.wait(running, timeout=self.grace) if running else asyncio.sleep(0),
            settle_albums(self.dispatcher, self.grace),
        )
        await self._cancel_in_flight()

    async def _cancel_in_flight(self) -> None:
        running = set(self._running.values())
        if not running:
            return
        log.warning("polling.unfinished", updates=sorted(self._running))
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)

    async def _recall_finished(self) -> None:
        """What the last run finished behind one it did not (the ledger): skipped when Telegram
        hands it out again. A ledger out of reach costs at worst those answers again (logged),
        never the start."""
        if self.ledger is None:
            return
        try:
            self._finished |= await self.ledger.recall()
        except Exception as error:
            log.error("polling.ledger_failed", error=type(error).__name__, kept=None)

    async def _keep_finished(self) -> None:
        """Hand the ledger what finished above the last confirmed offset (nothing when all
        was confirmed): the next run skips those when Telegram hands them out again."""
        if self.ledger is None:
            return
        confirmed = self._confirmed
        left = {n for n in self._finished if confirmed is None or n >= confirmed}
        try:
            await self.ledger.keep(left)
        except Exception as error:  # the next run may answer those again; logged
            log.error("polling.ledger_failed", error=type(error).__name__, kept=len(left))

    async def _confirm_finished(self) -> None:
        """One getUpdates, not waiting, that confirms the finished prefix (what it returns is
        left for the next run)."""
        offset = self.offset()
        if offset is None or offset == self._confirmed:
            return
        try:
            await self.bot(
                GetUpdates(offset=offset, limit=1, timeout=0, allowed_updates=self.allowed_updates),
                request_timeout=CONFIRM_TIMEOUT,
            )
        except Exception as error:  # the next run gets them again; dedup holds
            log.warning("polling.confirm_failed", error=type(error).__name__)
        else:
            self._accepted(offset)


async def poll_confirming(
    dispatcher: Dispatcher,
    bot: Bot,
    *,
    in_flight: int,
    grace: float,
    handle_signals: bool = False,
    hold: int = BATCH,
    polling_timeout: int = POLLING_TIMEOUT,
    backoff_config: BackoffConfig = DEFAULT_BACKOFF_CONFIG,
    deadline: float | None = None,
    ledger: FinishedLedger | None = None,
    **kwargs: Any,
) -> None:
    """`Dispatcher.start_polling` for one bot with `ConfirmingPoller`: the same start-up and
    shutdown events (with the same data), the same lock (so polling runs once), and the same
    stop: `Dispatcher.stop_polling()` returns once the updates in flight finished (or `grace`
    seconds passed) and the shutdown ran; with `handle_signals`, SIGTERM and SIGINT stop it
    the same way. The bot's session is left open (its owner closes it).

    Touches the dispatcher's private `_running_lock`, `_stop_signal` and `_stopped_signal`:
    they are what `stop_polling` and aiogram's signal handler act on. Raises RuntimeError when
    this dispatcher is polling already."""
    if dispatcher._running_lock.locked():
        raise RuntimeError("the dispatcher is polling already")
    async with dispatcher._running_lock:
        stop = dispatcher._stop_signal = dispatcher._stop_signal or asyncio.Event()
        stopped = dispatcher._stopped_signal = dispatcher._stopped_signal or asyncio.Event()
        stop.clear()
        stopped.clear()
        if handle_signals:
            loop = asyncio.get_running_loop()
            with suppress(NotImplementedError):  # no signal handlers on Windows
                for number in (signal.SIGTERM, signal.SIGINT):
                    loop.add_signal_handler(number, dispatcher._signal_stop_polling, number)
        allowed_updates = dispatcher.resolve_used_update_types()  # before start-up, as aiogram
        workflow_data: dict[str, Any] = {
            "dispatcher": dispatcher,
            "bots": (bot,),
            **dispatcher.workflow_data,
            **kwargs,
        }
        workflow_data.pop("bot", None)
        await dispatcher.emit_startup(bot=bot, **workflow_data)
        loggers.dispatcher.info("Start polling")
        try:
            poller = ConfirmingPoller(
                dispatcher,
                bot,
                in_flight=in_flight,
                grace=grace,
                hold=hold,
                polling_timeout=polling_timeout,
                backoff_config=backoff_config,
                allowed_updates=allowed_updates,
                deadline=deadline,
                ledger=ledger,
                bots=(bot,),
                **kwargs,
            )
            await poller.run(stop)
        finally:
            loggers.dispatcher.info("Polling stopped")
            try:
                await dispatcher.emit_shutdown(bot=bot, **workflow_data)
            finally:
                stopped.set()
