"""Albums as one event: Telegram sends an album as one message per photo, with a shared
`media_group_id`; the report flow and receipts want them as a single step (one answer,
all-or-nothing), the same with polling and with a webhook.

aiogram has no built-in for this. With a webhook Telegram delivers one update at a time per
chat: the next part of an album is sent only after the current part's request was answered,
and it may reach another replica. So a part never waits for the others inside its request:

1. A part is put in a short shared buffer — Redis when the FSM storage is Redis (the replicas
   share it), otherwise process memory — keyed by bot, chat and `media_group_id`, and its
   request is answered at once (the middleware returns None; the update's de-duplication
   marker is set as for any handled update, so a redelivered part is dropped, and the buffer
   is keyed by message id as well).
2. Every part pushes the group's deadline to `debounce` seconds after it (Redis's own clock,
   so replicas agree). Each process that buffered a part keeps one background task per group
   that sleeps until the deadline (re-reading it: a later part on another replica moves it).
3. When the deadline passes, the group is claimed with SET NX and its parts are taken in one
   atomic step (a Lua script; in memory, one step of the event loop): one replica handles it,
   the others find nothing. The rest of the middleware chain is called from that task with
   the first part's update and `data["album"]` = all parts sorted by message id, so the FSM
   per-chat lock, the error handlers and the unit of work are taken then, once. Nobody will
   deliver the group again, so the task is its redelivery: a failure that passes (database,
   Redis, Telegram, the city) is tried again after 1, 2 and 4 s, silently; the last try, or a
   failure that would repeat, is told to the resident (handlers/errors.py) and logged.
4. `drain()` waits for this process's album tasks (the flow driver awaits it, so a Reply
   holds the album's answer; tests use it after posting to the webhook).

Edges:

- A part arriving after its group was claimed (the claim is kept for `CLAIMED_TTL`) is
  handled alone, at once, in its own request — a late part is never lost; the receipts and
  report handlers treat it as one more photo. Adding a part and claiming the group are both
  atomic, so a part is either in the group or late, never left behind.
- Another update of the same chat (Telegram's per-chat order: a message after the parts means
  the album is complete) first settles the chat's pending groups: a message (or a part of
  another album) takes them at once; a button press (a separate queue at Telegram, it may
  come between two parts) waits for their deadline. The album is thus answered before what
  the resident did next, in the request of that next update.
- A replica that dies (or restarts) before its debounce fires: the parts were answered 200,
  so Telegram will not send them again, but they are still in Redis (`BUFFER_TTL`, with the
  chat's list of pending groups). The next update of that chat, on any replica, finds the
  overdue group and handles it first (no scheduler job: an album nobody follows up on is
  only found when the chat writes again; a chat that never writes again loses it after the
  TTL). `abandon()` is what a dying replica amounts to.
- Without Redis (memory mode: polling, or a single webhook process) the buffer is the only
  copy of parts Telegram was already told about (polling confirmed the offset past them; the
  webhook answered 200), so a clean stop must not leave it behind: `settle_now()` (called by
  polling's shutdown, `bot.polling`, and by the webhook runner on SIGTERM, `bot.runners`)
  handles every buffered group at once, without waiting out the debounce, within the grace
  the updates in flight get; from then on a new part is handled alone in its own update,
  which that grace covers as well. A crash (SIGKILL, OOM) loses the albums buffered at that
  moment — at most `debounce` seconds of parts; with Redis they survive it.
- The update de-duplication marker (bot/middlewares.py, outside this middleware) of each part
  is set to done when its request returns — when it was buffered, not handled: a redelivery
  of a part is dropped there (and would only overwrite its own entry in the buffer).
- Memory: at most `MAX_PARTS` parts per group (Telegram's albums hold up to 10; more parts are
  handled alone) and at most `MAX_GROUPS` groups pending in memory (beyond that a part is
  handled alone); claim markers expire; Redis keys all carry a TTL.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import structlog
from aiogram import BaseMiddleware, Bot, Dispatcher
from aiogram.dispatcher.event.bases import MiddlewareType
from aiogram.fsm.storage.base import BaseStorage
from aiogram.fsm.storage.redis import RedisStorage
from aiogram.methods import TelegramMethod
from aiogram.types import Message, TelegramObject, Update
from redis.asyncio import Redis

from bot.dedup import ALSO_READ
from bot.failures import classify

log = structlog.get_logger(__name__)

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]

ALBUM_DEBOUNCE = 0.8  # seconds after the last part seen; Telegram sends the next part at once
CLAIMED_TTL = 3600  # seconds a handled group is remembered: its later parts are late parts
BUFFER_TTL = 3600  # seconds a buffered group waits for its replica or the chat's next update
MAX_PARTS = 10  # Telegram's albums hold 2–10 items
MAX_GROUPS = 10_000  # groups pending in one process's memory
ALBUM_RETRIES = (1.0, 2.0, 4.0)  # seconds before each new try after a failure that passes
SWEEP_GRACE = 5.0  # seconds past a group's deadline before a sweep takes it (its replica died)
SWEPT = "album_swept"  # data key: the parts of a group taken by a sweep


class AlbumBuffer(Protocol):
    # True when the parts outlive this process (Redis: another replica, the chat's next
    # update or the sweep handles them); False when a stop must handle them (`settle_now`).
    durable: bool

    async def add(self, chat: str, group: str, update: Update, debounce: float) -> bool:
        """Buffer a part and move the group's deadline; False when the group was claimed
        already (a late part) or is full: then the part is handled alone."""
        ...

    async def remaining(self, group: str) -> float | None:
        """Seconds until the group's deadline (0.0 when due); None when nothing is buffered."""
        ...

    async def take(self, group: str, chat: str, bot: Bot) -> list[Update]:
        """Claim the group and take its parts, atomically; [] when another took them."""
        ...

    async def pending(self, chat: str) -> list[str]:
        """The chat's groups waiting to be handled."""
        ...

    def pending_key(self, chat: str) -> str | None:
        """The Redis set `pending` reads (so the update's claim can read it in its own round
        trip: `UpdateDedupMiddleware`'s `also_read`); None when it is not in Redis."""
        ...

    async def overdue(self, grace: float) -> list[str]:
        """Groups whose deadline passed more than `grace` seconds ago (their replica died)."""
        ...


@dataclass
class _Group:
    chat: str
    due: float
    parts: dict[int, Update] = field(default_factory=dict)


class MemoryAlbumBuffer:
    """One process's buffer (polling, the console, a single webhook process without Redis).
    Each method is one step of the event loop, so adding and taking never interleave."""

    durable = False

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._groups: dict[str, _Group] = {}
        self._claimed: dict[str, float] = {}  # group → when its claim is forgotten
        self._chats: dict[str, set[str]] = {}

    def _is_claimed(self, group: str) -> bool:
        until = self._claimed.get(group)
        if until is None:
            return False
        if until < self._clock():
            del self._claimed[group]
            return False
        return True

    async def add(self, chat: str, group: str, update: Update, debounce: float) -> bool:
        if self._is_claimed(group):
            return False
        pending = self._groups.get(group)
        if pending is None:
            if len(self._groups) >= MAX_GROUPS:
                return False
            pending = self._groups[group] = _Group(chat=chat, due=0.0)
            self._chats.setdefault(chat, set()).add(group)
        message_id = update.message.message_id if update.message else 0
        if len(pending.parts) >= MAX_PARTS and message_id not in pending.parts:
            return False
        pending.parts[message_id] = update
        pending.due = self._clock() + debounce
        return True

    async def remaining(self, group: str) -> float | None:
        pending = self._groups.get(group)
        return None if pending is None else max(0.0, pending.due - self._clock())

    async def take(self, group: str, chat: str, bot: Bot) -> list[Update]:
        now = self._clock()
        self._claimed[group] = now + CLAIMED_TTL
        if len(self._claimed) > MAX_GROUPS:
            self._claimed = {key: until for key, until in self._claimed.items() if until >= now}
        pending = self._groups.pop(group, None)
        groups = self._chats.get(chat)
        if groups is not None:
            groups.discard(group)
            if not groups:
                del self._chats[chat]
        return [] if pending is None else list(pending.parts.values())

    async def pending(self, chat: str) -> list[str]:
        return list(self._chats.get(chat, ()))

    def pending_key(self, chat: str) -> str | None:
        return None

    async def overdue(self, grace: float) -> list[str]:
        late = self._clock() - grace
        return [group for group, pending in self._groups.items() if pending.due < late]


# KEYS: parts (hash message id → update JSON), due, claimed, the chat's pending set, all
# groups' deadlines (a sorted set, for the sweep).
# ARGV: message id, update JSON, debounce ms, buffer TTL, group, max parts.
# 0: claimed already (a late part); -1: full; 1: buffered.
_ADD = """
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[6])
   and redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return -1 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('SET', KEYS[2], now + tonumber(ARGV[3]), 'EX', ARGV[4])
redis.call('ZADD', KEYS[5], now + tonumber(ARGV[3]), ARGV[5])
redis.call('EXPIRE', KEYS[5], ARGV[4])
redis.call('SADD', KEYS[4], ARGV[5])
redis.call('EXPIRE', KEYS[4], ARGV[4])
return 1
"""

# KEYS: due. Milliseconds until the deadline (0 when due), -1 when nothing is buffered.
_REMAINING = """
local due = redis.call('GET', KEYS[1])
if not due then return -1 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return math.max(0, tonumber(due) - now)
"""

# KEYS: parts, due, claimed, the chat's pending set, all deadlines. ARGV: group, claimed TTL.
# The claim and the taking of the parts in one step (a script runs alone): the parts go to one
# caller; a later caller finds them gone.
_TAKE = """
redis.call('SET', KEYS[3], '1', 'EX', ARGV[2])
local parts = redis.call('HVALS', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('SREM', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
return parts
"""

# KEYS: all deadlines. ARGV: grace ms, limit. Groups overdue by more than the grace.
_OVERDUE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]), 'LIMIT', 0,
                  tonumber(ARGV[2]))
"""
DUE_KEY = "album:due"
SWEEP_LIMIT = 100  # groups settled by one sweep


class RedisAlbumBuffer:
    """The buffer shared by replicas."""

    durable = True

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._add = redis.register_script(_ADD)
        self._remaining = redis.register_script(_REMAINING)
        self._take = redis.register_script(_TAKE)
        self._overdue = redis.register_script(_OVERDUE)

    @staticmethod
    def _keys(group: str, chat: str) -> list[str]:
        base = f"album:{group}"
        return [
            f"{base}:parts",
            f"{base}:due",
            f"{base}:claimed",
            f"album:chat:{chat}",
            DUE_KEY,
        ]

    async def add(self, chat: str, group: str, update: Update, debounce: float) -> bool:
        message_id = update.message.message_id if update.message else 0
        raw = update.model_dump_json(exclude_unset=True, by_alias=True)
        args: list[str | int] = [
            message_id,
            raw,
            int(debounce * 1000),
            BUFFER_TTL,
            group,
            MAX_PARTS,
        ]
        return int(await self._add(keys=self._keys(group, chat), args=args)) == 1

    async def remaining(self, group: str) -> float | None:
        left = int(await self._remaining(keys=[f"album:{group}:due"]))
        return None if left < 0 else left / 1000

    async def take(self, group: str, chat: str, bot: Bot) -> list[Update]:
        parts = await self._take(keys=self._keys(group, chat), args=[group, CLAIMED_TTL])
        return [Update.model_validate_json(raw, context={"bot": bot}) for raw in parts]

    async def pending(self, chat: str) -> list[str]:
        members = await self._redis.smembers(self.pending_key(chat))  # type: ignore[misc]
        return [m.decode() if isinstance(m, bytes) else str(m) for m in members]

    def pending_key(self, chat: str) -> str:
        return f"album:chat:{chat}"

    async def overdue(self, grace: float) -> list[str]:
        groups = await self._overdue(keys=[DUE_KEY], args=[int(grace * 1000), SWEEP_LIMIT])
        return [g.decode() if isinstance(g, bytes) else str(g) for g in groups]


@dataclass
class _Waiter:
    task: asyncio.Task[None]
    hurry: asyncio.Event


class AlbumMiddleware(BaseMiddleware):
    """An update outer middleware placed before aiogram's (errors, user context, FSM lock)."""

    def __init__(self, buffer: AlbumBuffer | None = None, debounce: float = ALBUM_DEBOUNCE):
        self.buffer: AlbumBuffer = buffer or MemoryAlbumBuffer()
        self.debounce = debounce
        self.retries: tuple[float, ...] = ALBUM_RETRIES  # a test may shorten them
        self._waiters: dict[str, _Waiter] = {}
        self._stopping = False  # `settle_now` ran: a new part is handled alone, at once

    @classmethod
    def for_storage(cls, storage: BaseStorage, debounce: float = ALBUM_DEBOUNCE) -> AlbumMiddleware:
        """Shared through Redis when the FSM storage is Redis, in memory otherwise."""
        if isinstance(storage, RedisStorage):
            return cls(RedisAlbumBuffer(storage.redis), debounce)
        return cls(MemoryAlbumBuffer(), debounce)

    def pending_key(self, event: Update, bot: Bot | None) -> str | None:
        """The Redis set of the update's chat's pending groups, for the update's claim to read
        in its own round trip (`UpdateDedupMiddleware`, `bot.dedup.ALSO_READ`); None without
        Redis or a chat."""
        chat_id = _chat_id(event)
        if bot is None or chat_id is None:
            return None
        return self.buffer.pending_key(f"{bot.id}:{chat_id}")

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        if not isinstance(event, Update):
            return await handler(event, data)
        bot: Bot = data["bot"]
        chat_id = _chat_id(event)
        if chat_id is None:
            return await handler(event, data)
        chat = f"{bot.id}:{chat_id}"
        # the chat's pending groups, read with the update's claim (None: read them here)
        prefetched: tuple[str, tuple[str, ...]] | None = data.pop(ALSO_READ, None)
        pending = (
            list(prefetched[1])
            if prefetched is not None and prefetched[0] == self.buffer.pending_key(chat)
            else None
        )
        swept: list[Update] | None = data.pop(SWEPT, None)
        if swept is not None:  # a group taken by `sweep`: its parts were answered long ago
            await self._handle(swept, handler, data)
            return None
        message = event.message
        if message is None or message.media_group_id is None:
            await self._settle_chat(chat, handler, data, hurry=message is not None, known=pending)
            return await handler(event, data)
        group = f"{chat}:{message.media_group_id}"
        # an earlier album
        await self._settle_chat(chat, handler, data, hurry=True, besides=group, known=pending)
        if self._stopping:  # nothing would handle it after the stop: handle it now, alone
            log.info("album.part_while_stopping", message_id=message.message_id)
            return await handler(event, data)
        if not await self.buffer.add(chat, group, event, self.debounce):
            log.info("album.late_part", message_id=message.message_id)
            return await handler(event, data)  # late (the group was handled) or over the bound
        if group not in self._waiters:
            hurry = asyncio.Event()
            task = asyncio.create_task(
                self._settle(group, chat, handler, dict(data), hurry), name=f"album-{group}"
            )
            self._waiters[group] = _Waiter(task, hurry)
            task.add_done_callback(partial(self._forget, group))
        return None  # answered now; the group is handled when its deadline passes

    async def sweep(self, dispatcher: Dispatcher, bot: Bot, grace: float = SWEEP_GRACE) -> int:
        """Handle the groups whose deadline passed `grace` seconds ago and that nobody took —
        their replica died before its debounce fired and the chat has not written since. Run
        by a scheduler job on every replica (`bot/jobs.py`); the take is atomic, so each group
        is handled once. Returns the number of groups handled."""
        handled = 0
        for group in await self.buffer.overdue(grace):
            if group in self._waiters:
                continue  # ours, still waiting (a slow event loop): our task takes it
            chat = group.rsplit(":", 1)[0]
            updates = await self.buffer.take(group, chat, bot)
            if not updates:
                continue
            log.warning("album.swept", parts=len(updates))
            await dispatcher.feed_update(bot, updates[0], **{SWEPT: updates})
            handled += 1
        return handled

    def _forget(self, group: str, _task: asyncio.Task[None]) -> None:
        self._waiters.pop(group, None)

    async def drain(self) -> None:
        """Wait until every album this process is waiting for has been handled."""
        while self._waiters:
            await asyncio.wait({waiter.task for waiter in self._waiters.values()})

    async def settle_now(self, grace: float) -> None:
        """A clean stop without Redis: handle every buffered group at once (not waiting out
        its debounce) and wait up to `grace` seconds for them; from now on a new part is
        handled alone in its own update. Their parts were confirmed to Telegram (polling) or
        answered 200 (webhook), so Telegram will not send them again and the buffer dies with
        the process: handling them now is the only way they are handled at all. (The other
        way — not confirming a part until its album is handled — would pin polling's offset
        behind every album for its debounce and needs a second, "buffered but unfinished"
        state in the poller; the webhook cannot take back a 200 at all.) A group still being
        handled after `grace` is cancelled and logged as lost. With Redis nothing is done:
        the parts outlive the process (see the module's docstring)."""
        if self.buffer.durable:
            return
        self._stopping = True  # set before the first wait: every later part is seen alone
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while self._waiters:  # an update in flight may have buffered a part a moment ago
            left = deadline - loop.time()
            if left <= 0:
                break
            for waiter in self._waiters.values():
                waiter.hurry.set()
            log.info("album.settle_on_stop", groups=len(self._waiters))
            await asyncio.wait({waiter.task for waiter in self._waiters.values()}, timeout=left)
        if self._waiters:
            log.error("album.lost_on_stop", groups=sorted(self._waiters), grace=grace)
            await self.abandon()

    async def abandon(self) -> None:
        """Stop waiting without handling (shutdown; a test's dying replica): with Redis the
        parts stay buffered for the chat's next update on any replica."""
        waiters = [waiter.task for waiter in self._waiters.values()]
        for task in waiters:
            task.cancel()
        if waiters:
            await asyncio.wait(waiters)

    async def _settle_chat(
        self,
        chat: str,
        handler: Handler,
        data: dict[str, Any],
        *,
        hurry: bool,
        besides: str | None = None,
        known: list[str] | None = None,
    ) -> None:
        """Handle the chat's pending groups before another update of the chat: a message
        (the same queue at Telegram) proves the album complete; a press waits for the
        deadline. A group whose replica died is picked up here. `known`: the groups as read
        with the update's claim a moment ago (`bot.dedup.ALSO_READ`); None: read now."""
        for group in await self.buffer.pending(chat) if known is None else known:
            if group == besides:
                continue
            waiter = self._waiters.get(group)
            if waiter is not None:  # ours: let our task do it, and wait for it
                if hurry:
                    waiter.hurry.set()
                await asyncio.wait({waiter.task})
                continue
            hurried = asyncio.Event()
            if hurry:
                hurried.set()
            await self._settle(group, chat, handler, dict(data), hurried)

    async def _settle(
        self,
        group: str,
        chat: str,
        handler: Handler,
        data: dict[str, Any],
        hurry: asyncio.Event,
    ) -> None:
        """Wait for the group's deadline (or to be hurried), then handle it if it is ours."""
        bot: Bot = data["bot"]
        try:
            while not hurry.is_set():
                left = await self.buffer.remaining(group)
                if left is None:
                    break  # taken by another replica (or expired)
                if left <= 0:
                    break
                try:
                    await asyncio.wait_for(hurry.wait(), timeout=left)
                except TimeoutError:
                    pass
            updates = await self.buffer.take(group, chat, bot)
            if updates:
                await self._handle(updates, handler, data)
        except Exception:  # the parts were answered 200: nobody else would see this
            log.exception("album.failed")

    async def _handle(self, updates: list[Update], handler: Handler, data: dict[str, Any]) -> None:
        """Run the chain once for the group. Nobody delivers a group again (its parts were
        answered 200), so this task is its redelivery: a failure that passes (the database,
        Redis, Telegram or the city away — `bot.failures.classify`) is tried again after
        `self.retries` pauses, silently; the last try, or a failure that would repeat, is told
        to the resident (handlers/errors.py) and logged."""
        updates.sort(key=lambda update: update.message.message_id if update.message else 0)
        album: list[Message] = [update.message for update in updates if update.message]
        log.info("album.handled", parts=len(album))
        pauses: list[float | None] = [*self.retries, None]
        for pause in pauses:
            attempt = dict(data, album=album, telegram_retries=pause is not None)
            try:
                result = await handler(updates[0], attempt)
            except Exception as error:
                if pause is None or not classify(error).transient:
                    raise
                log.warning("album.retry", error=type(error).__name__, pause=pause)
                await asyncio.sleep(pause)
                continue
            if isinstance(result, TelegramMethod):  # a handler answered "webhook style"
                await data["bot"](result)
            return


def _chat_id(update: Update) -> int | None:
    try:
        event = update.event
    except Exception:  # an update type this aiogram does not know
        return None
    chat = getattr(event, "chat", None)
    if chat is None:
        message = getattr(event, "message", None)  # a callback query's message
        chat = getattr(message, "chat", None)
    if chat is None:
        user = getattr(event, "from_user", None)
        return getattr(user, "id", None)
    return getattr(chat, "id", None)


def albums_of(dispatcher: Dispatcher) -> list[AlbumMiddleware]:
    return [m for m in dispatcher.update.outer_middleware if isinstance(m, AlbumMiddleware)]


async def drain(dispatcher: Dispatcher) -> None:
    """Wait for the albums the dispatcher's album middleware is still collecting or handling."""
    for middleware in albums_of(dispatcher):
        await middleware.drain()


async def settle_now(dispatcher: Dispatcher, grace: float) -> None:
    """A clean stop: the albums buffered in this process's memory handled at once, within
    `grace` seconds (`AlbumMiddleware.settle_now`)."""
    await asyncio.gather(*(m.settle_now(grace) for m in albums_of(dispatcher)))


def install_first(dispatcher: Dispatcher, *middlewares: BaseMiddleware) -> None:
    """Put middlewares in front of the update middlewares the Dispatcher registered (its FSM
    middleware, which takes the per-chat lock); aiogram only appends, so re-register."""
    registered = list(dispatcher.update.outer_middleware)
    for existing in registered:
        dispatcher.update.outer_middleware.unregister(existing)
    chain: list[MiddlewareType[TelegramObject]] = [*middlewares, *registered]
    for middleware in chain:
        dispatcher.update.outer_middleware(middleware)
