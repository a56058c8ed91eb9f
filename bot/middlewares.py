"""Outer middlewares: de-duplication, flood protection, metrics, log context, and the
resident + unit of work of each update."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import structlog
from aiogram import BaseMiddleware, Bot
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.dispatcher.middlewares.user_context import UserContextMiddleware
from aiogram.exceptions import TelegramBadRequest
from aiogram.methods import AnswerCallbackQuery, Response, TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    TelegramObject,
    Update,
    User,
)
from aiogram_dialog.api.entities import Stack
from aiogram_dialog.api.internal import STACK_KEY
from aiogram_dialog.utils import remove_intent_id

from bot import dedup
from bot.album import SWEPT
from bot.dedup import ALSO_READ, ClaimState, DedupStore, Ended, LeaseLost, RedisDedup
from bot.failures import UpdateBusy, classify
from bot.logs import user_hash
from bot.metrics import DUPLICATES, HANDLER_SECONDS, RETRIED, THROTTLED, UPDATES
from city.transport import before_call
from domain.limits import DEFAULT_LIMITS
from domain.typed_text import visible
from handlers.context import CONTEXT_KEY, ResidentContext
from storage.fsm import UpdateBatch, update_batch
from storage.uow import SqlUnitOfWork, UnitOfWorkFactory

log = structlog.get_logger(__name__)

# The Bot API's description of a callback query that can no longer be answered.
STALE_QUERY = "query is too old and response timeout expired or query ID is invalid"

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


# data key: the update's flood count, taken by UpdateDedupMiddleware with its claim.
FLOOD_COUNT = "flood_count"


def _flood_key(event: Update) -> str | None:
    """ThrottlingMiddleware's counter for the update's sender: residents in private chats
    only (None for anything else: nothing is counted)."""
    context = UserContextMiddleware.resolve_event_context(event)
    user, chat = context.user, context.chat
    if user is None or (chat is not None and chat.type != "private"):
        return None
    return f"flood:{user.id}"


class LogContextMiddleware(BaseMiddleware):
    """Every log line of an update carries its id and a hash of the user id, nothing more."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        update_id = event.update_id if isinstance(event, Update) else None
        with structlog.contextvars.bound_contextvars(
            update_id=update_id, user=user_hash(user.id if user else None)
        ):
            return await handler(event, data)


@contextmanager
def _releasing_before_city_calls(uow: SqlUnitOfWork) -> Iterator[None]:
    token = before_call.set(uow.release_idle)
    try:
        yield
    finally:
        before_call.reset(token)


class UnitOfWorkMiddleware(BaseMiddleware):
    """Opens a unit of work for the update and loads the resident who sent it (None if not
    linked). Handlers commit what they change; whatever they leave uncommitted is rolled back.

    With the dispatcher's workflow data (city, tr, clock, limits: `build_dispatcher`) it also
    builds the update's `handlers.context.ResidentContext` once, under `CONTEXT_KEY`.

    While the update is handled, every call to the city first ends the unit of work's
    transaction if it only read (`city.transport.before_call` → `release_idle`), so an update
    waiting on the city holds no database connection."""

    def __init__(self, factory: UnitOfWorkFactory) -> None:
        self._factory = factory

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        async with self._factory() as uow:
            with _releasing_before_city_calls(uow):
                data["uow"] = uow
                # outside the transaction: an update that never touches the database again
                # costs one round trip (`SqlResidentRepository.peek`)
                data["resident"] = await uow.residents.peek(user.id) if user else None
                if "city" in data and "clock" in data:
                    data[CONTEXT_KEY] = ResidentContext(
                        uow=uow,
                        city=data["city"],
                        tr=data["tr"],
                        resident=data["resident"],
                        now=data["clock"](),
                        limits=data.get("limits") or DEFAULT_LIMITS,
                    )
                return await handler(event, data)


def forget_cached_updates() -> None:
    """Let go of the updates aiogram keeps for `Update.event_type` (an `lru_cache` of 128 on
    the property, keyed by the update): the last 128 updates — texts, contacts, photos —
    stayed alive for the process's life, and at interpreter exit their datetimes' tzinfo
    (pydantic-core's `TzInfo`) was freed after CPython 3.11's datetime C API: a use-after-free
    that crashed the exit (pydantic#12867, PyO3#6110; seen once zxing-cpp's exit hook ran).
    Called at each update's end (UpdateDedupMiddleware) and at exit (`bot.__main__`); the
    updates still in flight recompute it, a few attribute reads."""
    clear = getattr(vars(Update)["event_type"].fget, "cache_clear", None)
    if clear is not None:
        clear()


class UpdateDedupMiddleware(BaseMiddleware):
    """An update delivered twice (webhook retries, two replicas) is handled once, and an update
    whose handler died with its replica is handled by the next delivery.

    Before handling, the update is claimed with a lease of `lease` seconds (PROCESSING_LEASE)
    and an owner token; a heartbeat renews it and the update's chat locks every `heartbeat`
    seconds (a third of the shorter of the two leases) while the handler runs. A delivery that
    finds:
    - no marker, or one whose lease lapsed (a dead owner): takes the update and handles it;
    - a live lease: raises `UpdateBusy` (the webhook answers 503 with Retry-After) — never a
      quiet success, or the update would be lost if its owner died;
    - `done`: nothing to do.
    When the handler ends the marker becomes `done` (24 h) if it succeeded or failed in a way
    that will only repeat (deterministic: the resident was told once); after a transient
    failure or a cancellation it is released so that the redelivery is handled.

    With Redis (`RedisDedup`) an update costs two round trips here: the claim, which also
    counts the update for flood protection (`flood_window`: ThrottlingMiddleware's window, or
    None without it; the count is left in `data[FLOOD_COUNT]`), and the end, which also sends
    the update's dialog state (`storage.fsm.UpdateBatch`, opened here) and lets its per-chat
    locks go — if the marker and the locks are all still its own, or lapsed with nobody taking
    them or writing what the update read (else nothing is written and the update fails with
    `dedup.LeaseLost`, transient). The heartbeat (marker and locks, one
    round trip) runs only for a handler slower than a third of the shorter lease."""

    def __init__(
        self,
        store: DedupStore,
        *,
        lease: float | None = None,
        heartbeat: float | None = None,
        flood_window: int | None = None,
        also_read: Callable[[Update, Bot | None], str | None] | None = None,
    ) -> None:
        self._store = store
        # The update's set read with its claim, one round trip for both (with Redis): the
        # chat's pending album groups (`AlbumMiddleware.pending_key`), left in data[ALSO_READ].
        self._also_read = also_read
        self.lease = dedup.PROCESSING_LEASE if lease is None else lease
        # A third of the shortest lease it renews: the chat locks' (LOCK_LEASE, 5 s) too. A
        # third of the marker's 10 s left those locks 1.7 s of slack: a loop stalled that long
        # (a saturated machine) let them lapse, and the update was handled — answered — twice.
        shortest = min(self.lease, dedup.LOCK_LEASE)
        self.heartbeat = shortest / 3 if heartbeat is None else heartbeat
        self.flood_window = flood_window

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        if not isinstance(event, Update):
            return await handler(event, data)
        if SWEPT in data:  # an album's parts taken by a sweep, handled long after their update
            return await handler(event, data)
        # the marker's and the leases' records carry the update (LogContextMiddleware is inner)
        try:
            with structlog.contextvars.bound_contextvars(update_id=event.update_id):
                return await self._claimed(handler, event, data)
        finally:
            forget_cached_updates()

    async def _claimed(self, handler: Handler, event: Update, data: dict[str, Any]) -> Any:
        bot = data.get("bot")
        key = f"dedup:{bot.id if bot else 0}:{event.update_id}"
        # Polling's retries of one update share an owner (`TransientRetryMiddleware`): a
        # marker an earlier attempt could not end (Redis away at its end) is taken back, not
        # waited out as another's for the whole lease while the retries run out.
        owner = data.get(UPDATE_OWNER) or uuid.uuid4().hex
        store = self._store
        window = self.flood_window
        flood = _flood_key(event) if window and isinstance(store, RedisDedup) else None
        also = self._also_read(event, bot) if self._also_read is not None else None
        if isinstance(store, RedisDedup) and flood is not None and window:
            claim, data[FLOOD_COUNT] = await store.claim_counted(
                key, owner, self.lease, flood, window, also
            )
        elif isinstance(store, RedisDedup):
            claim = await store.claim(key, owner, self.lease, also)
        else:
            claim = await store.claim(key, owner, self.lease)
        if also is not None and claim.also_read is not None:
            data[ALSO_READ] = (also, claim.also_read)
        if claim.state is ClaimState.DONE:
            DUPLICATES.inc()
            return None
        if claim.state is ClaimState.BUSY:
            DUPLICATES.inc()
            raise UpdateBusy(claim.retry_after())
        if isinstance(store, RedisDedup):
            return await self._handle_batched(store, handler, event, data, key, owner)

        async def renew() -> bool:
            return await store.renew(key, owner, self.lease)

        try:
            async with dedup.heartbeat(renew, self.heartbeat, "update"):
                result = await handler(event, data)
        except Exception as error:
            if classify(error).transient:
                await self._release(key, owner)
            else:
                await self._done(key)  # told once; a redelivery must not tell again
            raise
        except BaseException:  # cancelled: not handled, give it back
            await self._release(key, owner)
            raise
        await self._done(key)
        return result

    async def _handle_batched(
        self,
        store: RedisDedup,
        handler: Handler,
        event: Update,
        data: dict[str, Any],
        key: str,
        owner: str,
    ) -> Any:
        """The same outcomes, with the update's dialog state written at its end together with
        the marker: a success or a deterministic failure → done, a transient failure or a
        cancellation → released. What the handler changed in the dialog state before it
        failed is written either way, as it was when each write went out at once — unless a
        lease lapsed meanwhile (the update stalled past it) and another update took the chat
        or wrote what this one read: then nothing is written and a handled update fails with
        `LeaseLost` (transient), to be handled again with the state as it is now. A lapse
        nobody used (a stalled loop, the usual cause) is written as usual: handling the update
        again would answer the resident a second time. Redis unreachable at the end is tried
        again a few times (`RedisDedup.finish`); if it stays away, that is the update's
        failure: not marked done, its lease lapses, Telegram (or polling's retry) delivers it
        again."""

        with update_batch() as batch:

            async def renew() -> bool:  # the marker and the chat's locks held by the update
                return await store.renew_update(key, owner, self.lease, batch)

            try:
                async with dedup.heartbeat(renew, self.heartbeat, "update"):
                    result = await handler(event, data)
            except Exception as error:
                done = not classify(error).transient  # told once: a redelivery must not tell
                await self._finish(store, key, owner, done, batch, error)
                raise
            except BaseException as error:  # cancelled: not handled, give it back, at once
                await self._finish(store, key, owner, False, batch, error, retries=())
                raise
            # Redis unreachable for a moment is waited for here (a few tries, the leases kept),
            # not by handling the whole update again; if it stays away, the error is raised.
            ended = await store.finish(key, owner, done=True, batch=batch, lease=self.lease)
            if ended is Ended.LOST:  # its state is stale (another wrote it): handle it again
                raise LeaseLost(f"update {event.update_id}: a lease lapsed before its end")
        return result

    async def _finish(
        self,
        store: RedisDedup,
        key: str,
        owner: str,
        done: bool,
        batch: UpdateBatch,
        failure: BaseException,
        retries: tuple[float, ...] | None = None,
    ) -> None:
        """The end of a failed update: its own failure is what the caller sees, not this."""
        try:
            await store.finish(
                key, owner, done=done, batch=batch, lease=self.lease, retries=retries
            )
        except Exception as error:  # the lease and the locks lapse by themselves; logged
            log.warning(
                "dedup.finish_failed", error=type(error).__name__, after=type(failure).__name__
            )

    async def _done(self, key: str) -> None:
        try:
            await self._store.done(key)
        except Exception as error:  # the lease lapses by itself; logged
            log.warning("dedup.done_failed", error=type(error).__name__)

    async def _release(self, key: str, owner: str) -> None:
        try:
            await self._store.release(key, owner)
        except Exception as error:  # the lease lapses by itself; logged
            log.warning("dedup.release_failed", error=type(error).__name__)


UPDATE_OWNER = "update_owner"  # middleware data: the de-duplication owner of an update's attempts


class TransientRetryMiddleware(BaseMiddleware):
    """Polling's stand-in for Telegram's redelivery: long polling hands an unconfirmed update
    back only with a later getUpdates (and `bot.polling` confirms only finished updates, so it
    would wait behind the failed one until a restart), so an update that failed in a way that
    passes (`bot.failures.classify`: a pool timeout, Redis or the database unreachable, …) is
    handled again here, after `delays` seconds (one retry per entry; Retry-After when the
    failure says more), rather than lost or left to the next start.

    Installed in front of every other update middleware (`bot.runners.run_polling`), so each
    attempt claims the update afresh (the de-duplication middleware released it) with fresh
    middleware data — as one owner (`UPDATE_OWNER`): an attempt whose end could not release
    its marker (Redis away then) leaves it to the next attempt, not to the lease's lapse.
    Every attempt but the last runs with `telegram_retries=True`, so the last error handler
    (`bot.unexpected`) stays silent; the last one tells the resident once.
    A deterministic failure (told once, marked done) is never retried."""

    def __init__(
        self,
        delays: tuple[float, ...] = (0.5, 2.0, 5.0),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.delays = delays
        self._sleep = sleep

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        if not isinstance(event, Update):
            return await handler(event, data)
        with structlog.contextvars.bound_contextvars(update_id=event.update_id):
            return await self._attempts(handler, event, data)

    async def _attempts(self, handler: Handler, event: Update, data: dict[str, Any]) -> Any:
        owner = uuid.uuid4().hex  # every attempt claims the update as this one owner
        for attempt, delay in enumerate((*self.delays, None), start=1):
            try:
                return await handler(
                    event, {**data, "telegram_retries": delay is not None, UPDATE_OWNER: owner}
                )
            except Exception as error:
                verdict = classify(error)
                if delay is None or verdict.deterministic:
                    raise
                wait = max(delay, verdict.retry_after or 0)
                log.warning(
                    "update.retry", attempt=attempt, error=type(error).__name__, in_seconds=wait
                )
                RETRIED.labels(reason="polling").inc()
                await self._sleep(wait)
        raise AssertionError("unreachable: the last attempt returns or raises")


class StaleCallbackAnswerMiddleware(BaseRequestMiddleware):
    """A Bot session middleware: answering a callback query that was already answered (or is
    too old) is a logged no-op instead of a 400 — but for its words.

    A press whose handling failed after the query was answered comes back as a redelivery; its
    answerCallbackQuery is then refused with 400 «query is too old and response timeout
    expired or query ID is invalid» every time, and without this the press could never be
    handled. The answer only stops the button's spinner; nothing is lost by skipping it. (A
    toast's words refused so are lost too: Telegram says the same for a query answered before
    — a redelivery, whose toast was shown — as for one too old, so they cannot be sent as a
    message without doubling the first; review 36b, left open.)"""

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        try:
            return await make_request(bot, method)
        except TelegramBadRequest as error:
            if not isinstance(method, AnswerCallbackQuery) or STALE_QUERY not in error.message:
                raise
            log.info("callback.already_answered")
            # Sessions hand back the method's result (aiogram annotates it as a Response).
            return True  # type: ignore[return-value]


# Schemes Telegram takes in an inline button's URL (Bot API InlineKeyboardButton.url:
# «HTTP or tg:// URL»; tdlib also refuses everything else with BUTTON_URL_INVALID).
BUTTON_URL_SCHEMES = ("http://", "https://", "tg://")


class KeyboardGuardMiddleware(BaseRequestMiddleware):
    """A Bot session middleware: an inline keyboard going out keeps only what Telegram takes.

    A button's text from outside (a fund's or a theme's name, a place the geocoder named) can
    be empty, or show nothing: Telegram refuses the whole message (BUTTON_TEXT_INVALID) and a
    list of funds could not be opened for one nameless fund (review 35c). Such a button gets
    `untitled` («Без названия») instead. A URL button whose address is not http(s) or tg (a
    `javascript:` link, a relative path, an empty string from the city) is left out rather than
    lose the screen, and logged. Every keyboard of every method passes here: the whole kind,
    whichever screen or notice draws it."""

    def __init__(self, untitled: str) -> None:
        self.untitled = untitled

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        markup = getattr(method, "reply_markup", None)
        if isinstance(markup, InlineKeyboardMarkup):
            kept = self._kept(markup)
            if kept is not markup:
                method.reply_markup = kept  # type: ignore[attr-defined]  # has the field
        return await make_request(bot, method)

    def _kept(self, markup: InlineKeyboardMarkup) -> InlineKeyboardMarkup:
        """`markup` itself when every button passes (almost always: nothing is copied), else a
        copy with each fixed or left out."""
        if all(self._passes(button) for row in markup.inline_keyboard for button in row):
            return markup
        rows = []
        for row in markup.inline_keyboard:
            kept = []
            for button in row:
                if button.url is not None and not button.url.startswith(BUTTON_URL_SCHEMES):
                    log.warning("keyboard.url_dropped", scheme=button.url.partition(":")[0][:16])
                    continue
                if not visible(button.text):
                    button = button.model_copy(update={"text": self.untitled})
                kept.append(button)
            if kept:
                rows.append(kept)
        return InlineKeyboardMarkup(inline_keyboard=rows)

    @staticmethod
    def _passes(button: InlineKeyboardButton) -> bool:
        return bool(visible(button.text)) and (
            button.url is None or button.url.startswith(BUTTON_URL_SCHEMES)
        )


def install_session_middlewares(bot: Bot, untitled: str = "…") -> None:
    """Install the Bot session middlewares once per session (replicas in tests share one);
    `untitled`: the text of a button whose own shows nothing (`KeyboardGuardMiddleware`)."""
    if not any(isinstance(m, StaleCallbackAnswerMiddleware) for m in bot.session.middleware):
        bot.session.middleware(StaleCallbackAnswerMiddleware())
        bot.session.middleware(KeyboardGuardMiddleware(untitled))


class StaleScreenMiddleware(BaseMiddleware):
    """A press on a dialog screen that is no longer the dialog's current message is refused
    with a short answer, and nothing runs.

    aiogram-dialog keeps one current message per stack (`Stack.last_message_id`) and takes the
    keyboard off an older one when it sends a window anew; a client that still shows the old
    keyboard (an answer lost, a second device) can press it, and aiogram-dialog would then run
    that button against the dialog's data *now* — a «Подтвердить» of «100 баллов фонду А»
    sending what the resident set up since, 500 to fund Б (review 33b). Telegram says which
    message a press came from, so every dialog button is checked here at once rather than
    each confirmation carrying a tag of its own. Buttons of our own (notifications, support)
    carry no intent id and pass; so does a stack with no message yet."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        if isinstance(event, CallbackQuery) and _stale_screen(event, data.get(STACK_KEY)):
            tr = data.get("tr")
            await event.answer(tr.label("error-stale-screen") if tr is not None else None)
            log.info("update.stale_screen")
            return None
        return await handler(event, data)


def _stale_screen(event: CallbackQuery, stack: Stack | None) -> bool:
    """A dialog's button not on the stack's current message. A press under a message older
    than 48 hours comes as an InaccessibleMessage (its id and chat only): compared all the
    same (review 33c). A dialog's button with no message at all (an inline message: this bot
    sends none) is refused too."""
    if stack is None or stack.last_message_id is None or not event.data:
        return False
    if remove_intent_id(event.data)[0] is None:  # not a dialog's button
        return False
    message = event.message
    return message is None or message.message_id != stack.last_message_id


class ThrottlingMiddleware(BaseMiddleware):
    """Flood protection: a resident hammering buttons gets a gentle «не так быстро» and the
    extra events are dropped; everyone else is served as usual."""

    def __init__(self, store: DedupStore, tr: Any, limit: int = 8, window: int = 2) -> None:
        self._store = store
        self._tr = tr
        self._limit = limit
        self._window = window

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        chat = data.get("event_chat")
        if user is None or not isinstance(event, Update) or (chat and chat.type != "private"):
            return await handler(event, data)  # residents in private chats only; staff are not
        counted: int | None = data.pop(FLOOD_COUNT, None)  # with the claim (UpdateDedup…)
        count = counted or await self._store.hit(f"flood:{user.id}", self._window)
        if count <= self._limit:
            return await handler(event, data)
        THROTTLED.inc()
        if count == self._limit + 1:  # said once per window, not for every extra tap
            text = self._tr("error-too-fast")
            if event.callback_query is not None:
                await event.callback_query.answer(text)
            elif event.message is not None:
                await event.message.answer(text)
        elif event.callback_query is not None:
            await event.callback_query.answer()
        return None


class MetricsMiddleware(BaseMiddleware):
    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        if isinstance(event, Update):
            UPDATES.labels(type=event.event_type).inc()
        with HANDLER_SECONDS.time():
            return await handler(event, data)
