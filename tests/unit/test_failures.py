"""Delivery rules without services: which failures are retried (`bot.failures.classify`),
the de-duplication leases in memory, the de-duplication middleware's verdicts, and the Bot
session middleware that lets a redelivered press through its already-answered callback."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
import redis.exceptions as redis_errors
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import AnswerCallbackQuery, SendMessage
from aiogram.types import Update
from sqlalchemy import exc as sa

from bot import dedup
from bot.dedup import ClaimState, MemoryDedup
from bot.failures import UpdateBusy, classify
from bot.middlewares import (
    STALE_QUERY,
    StaleCallbackAnswerMiddleware,
    UpdateDedupMiddleware,
    install_session_middlewares,
)
from domain.errors import CityUnavailable, NotFound
from sandbox.telegram_double import LocalTelegram, make_local_bot

METHOD = SendMessage(chat_id=1, text="x")


def _db_error(orig: BaseException, *, invalidated: bool = False) -> sa.DBAPIError:
    return sa.DBAPIError("SELECT 1", {}, orig, connection_invalidated=invalidated)


def _caused(error: BaseException, cause: BaseException) -> BaseException:
    error.__cause__ = cause
    return error


TRANSIENT = [
    sa.OperationalError("SELECT 1", {}, Exception("server closed the connection")),
    sa.InterfaceError("SELECT 1", {}, Exception("connection is closed")),
    sa.TimeoutError("QueuePool limit reached"),
    _db_error(Exception("terminating connection"), invalidated=True),
    _db_error(ConnectionResetError()),
    _caused(_db_error(Exception("adapted")), OSError("network is unreachable")),
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.CannotConnectNowError("the database system is starting up"),
    redis_errors.ConnectionError("Connection refused"),
    redis_errors.TimeoutError("Timeout reading from socket"),
    redis_errors.BusyLoadingError("Redis is loading the dataset in memory"),
    TelegramNetworkError(METHOD, "ClientConnectorError"),
    TelegramServerError(METHOD, "Bad Gateway"),
    CityUnavailable(),
    TimeoutError(),
    ConnectionRefusedError(),
    _caused(RuntimeError("wrapped"), redis_errors.ConnectionError("down")),
]

DETERMINISTIC = [
    TelegramBadRequest(METHOD, "Bad Request: can't parse entities"),
    TelegramForbiddenError(METHOD, "Forbidden: bot was blocked by the user"),
    RuntimeError("a bug"),
    KeyError("intent_id"),
    sa.IntegrityError("INSERT", {}, Exception("duplicate key")),
    _db_error(Exception("syntax error")),
    NotFound(),
    redis_errors.ResponseError("WRONGTYPE"),
    FileNotFoundError("not a connection"),
]


@pytest.mark.parametrize("error", TRANSIENT, ids=lambda e: type(e).__name__)
def test_transient_failures_are_retried(error: BaseException) -> None:
    verdict = classify(error)
    assert verdict.transient and not verdict.deterministic


@pytest.mark.parametrize("error", DETERMINISTIC, ids=lambda e: type(e).__name__)
def test_failures_that_would_repeat_are_not_retried(error: BaseException) -> None:
    assert classify(error).deterministic


def test_retry_after_is_taken_from_the_failure() -> None:
    assert classify(TelegramRetryAfter(METHOD, "Too Many Requests", 7)).retry_after == 7
    assert classify(UpdateBusy(3)) == classify(UpdateBusy(3))
    assert classify(UpdateBusy(3)).retry_after == 3
    assert classify(RuntimeError()).retry_after is None


def test_a_context_is_not_a_cause() -> None:
    """A bug raised while handling a database error is still a bug."""
    try:
        try:
            raise redis_errors.ConnectionError("down")
        except redis_errors.ConnectionError:
            raise ValueError("bug in the except block")  # noqa: B904 - the point of the test
    except ValueError as error:
        assert classify(error).deterministic


# ---- leases in memory --------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_memory_leases_lapse_and_are_taken_over() -> None:
    clock = Clock()
    store = MemoryDedup(clock)
    assert (await store.claim("k", "a", 10)).state is ClaimState.ACQUIRED
    busy = await store.claim("k", "b", 10)
    assert busy.state is ClaimState.BUSY and busy.retry_after() == 5  # capped at 5 s
    clock.now += 8
    assert (await store.claim("k", "b", 10)).retry_after() == 2
    assert await store.renew("k", "a", 10)  # the owner's heartbeat
    assert not await store.renew("k", "b", 10)  # not b's
    clock.now += 9.9
    assert (await store.claim("k", "b", 10)).state is ClaimState.BUSY  # renewed: still a's
    clock.now += 0.2  # a died: no heartbeat for longer than the lease
    assert (await store.claim("k", "b", 10)).state is ClaimState.ACQUIRED
    assert not await store.renew("k", "a", 10)  # a's stale heartbeat does not steal it back
    await store.release("k", "a")  # nor does its late cleanup
    assert (await store.claim("k", "c", 10)).state is ClaimState.BUSY
    await store.release("k", "b")
    assert (await store.claim("k", "c", 10)).state is ClaimState.ACQUIRED
    await store.done("k")
    clock.now += 3600
    assert (await store.claim("k", "d", 10)).state is ClaimState.DONE


# ---- the de-duplication middleware --------------------------------------------------------


def _update(update_id: int = 1) -> Update:
    return Update.model_validate({"update_id": update_id})


async def _run(middleware: UpdateDedupMiddleware, error: BaseException | None) -> Any:
    async def handler(_event: Any, _data: dict[str, Any]) -> str:
        if error is not None:
            raise error
        return "handled"

    return await middleware(handler, _update(), {})


async def test_a_deterministic_failure_finishes_the_update() -> None:
    store = MemoryDedup()
    middleware = UpdateDedupMiddleware(store)
    with pytest.raises(RuntimeError):
        await _run(middleware, RuntimeError("a bug"))
    assert await _run(middleware, None) is None  # the redelivery is not handled again
    assert (await store.claim("dedup:0:1", "x", 10)).state is ClaimState.DONE


async def test_a_transient_failure_releases_the_update() -> None:
    middleware = UpdateDedupMiddleware(MemoryDedup())
    with pytest.raises(redis_errors.ConnectionError):
        await _run(middleware, redis_errors.ConnectionError("down"))
    assert await _run(middleware, None) == "handled"  # the redelivery is handled
    assert await _run(middleware, None) is None


async def test_a_redelivery_during_handling_is_asked_to_come_back() -> None:
    store = MemoryDedup()
    middleware = UpdateDedupMiddleware(store, lease=10, heartbeat=5)
    entered, leave = asyncio.Event(), asyncio.Event()

    async def slow(_event: Any, _data: dict[str, Any]) -> str:
        entered.set()
        await leave.wait()
        return "handled"

    first = asyncio.create_task(middleware(slow, _update(), {}))
    await entered.wait()
    with pytest.raises(UpdateBusy) as busy:
        await _run(middleware, None)
    assert 1 <= busy.value.retry_after <= 5
    leave.set()
    assert await first == "handled"
    assert await _run(middleware, None) is None


async def test_a_cancelled_update_is_given_back() -> None:
    middleware = UpdateDedupMiddleware(MemoryDedup())
    with pytest.raises(asyncio.CancelledError):
        await _run(middleware, asyncio.CancelledError())
    assert await _run(middleware, None) == "handled"


def test_defaults_are_short() -> None:
    """A dead replica holds an update for at most PROCESSING_LEASE seconds and a chat for at
    most LOCK_LEASE seconds (aiogram's lock would hold it 60 s)."""
    assert dedup.PROCESSING_LEASE <= 10
    assert dedup.LOCK_LEASE <= 5
    middleware = UpdateDedupMiddleware(MemoryDedup())
    assert middleware.heartbeat < middleware.lease


def test_the_heartbeat_leaves_the_chat_locks_two_thirds_of_their_lease() -> None:
    """The heartbeat renews the update's marker and its chat locks together; at a third of the
    marker's lease it left the locks (5 s) 1.7 s of slack, and a loop stalled that long on a
    saturated machine let them lapse: the update was handled, and answered, twice (seen in a
    10 000-resident burst with both cores busy). A third of the shorter lease leaves 3.3 s."""
    middleware = UpdateDedupMiddleware(MemoryDedup())
    assert middleware.heartbeat <= dedup.LOCK_LEASE / 3
    assert dedup.LOCK_LEASE - middleware.heartbeat > 3.3  # seconds of slack (was 1.7)


# ---- answering a callback query that was answered already ---------------------------------


async def test_an_answered_callback_is_answered_again_quietly() -> None:
    telegram = LocalTelegram()
    async with make_local_bot(telegram) as bot:
        telegram.open_callback_query("q1")
        assert await bot.answer_callback_query("q1")
        with pytest.raises(TelegramBadRequest, match="query is too old"):
            await bot.answer_callback_query("q1")  # what Telegram does

        install_session_middlewares(bot)
        install_session_middlewares(bot)  # once per session, however many replicas share it
        assert (
            sum(isinstance(m, StaleCallbackAnswerMiddleware) for m in bot.session.middleware) == 1
        )
        assert await bot.answer_callback_query("q1") is True
        assert len(telegram.calls_of(AnswerCallbackQuery)) == 3  # it was asked, and refused

        with pytest.raises(TelegramBadRequest, match="message to edit not found"):
            await bot.edit_message_text("other 400s are not hidden", chat_id=42, message_id=7)


def test_the_description_is_telegrams() -> None:
    from sandbox.telegram_double import _QUERY_TOO_OLD

    assert STALE_QUERY in _QUERY_TOO_OLD
