"""Which failures of an update are worth Telegram's redelivery, and which will only repeat.

The webhook, the de-duplication middleware and the `unexpected` error handler ask `classify`
the same question, so an update is either retried (nothing said, marker released, non-2xx)
or told once and finished (marker done, 2xx) — never a mix."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import asyncpg  # type: ignore[import-untyped]
import redis.exceptions as redis_errors
from aiogram.exceptions import TelegramNetworkError, TelegramRetryAfter, TelegramServerError
from sqlalchemy import exc as sa

from domain.errors import CityUnavailable

# Failures of what the bot depends on, not of the update itself: they pass.
_TRANSIENT: tuple[type[BaseException], ...] = (
    TelegramNetworkError,  # Telegram unreachable (includes our own request timeouts)
    TelegramServerError,  # Telegram's 5xx
    TelegramRetryAfter,  # Telegram's 429 flood control
    redis_errors.ConnectionError,  # Redis down or refusing (also BusyLoadingError)
    redis_errors.TimeoutError,
    sa.OperationalError,  # the database went away, refused, or the server is shutting down
    sa.InterfaceError,  # the driver's connection is closed
    sa.TimeoutError,  # no connection free in the pool in time
    asyncpg.PostgresConnectionError,  # asyncpg without SQLAlchemy's wrapping
    asyncpg.CannotConnectNowError,  # PostgreSQL starting up or shutting down
    asyncpg.TooManyConnectionsError,
    # Concurrency, not the update: a row lock not had within lock_timeout (55P03), a deadlock
    # PostgreSQL broke by aborting this side (40P01), a serialization failure (40001) — the
    # classes PostgreSQL's documentation says to retry (review 35b). SQLAlchemy's asyncpg
    # dialect wraps them in a plain DBAPIError; the cause chain reaches them here.
    asyncpg.LockNotAvailableError,
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    ConnectionError,  # refused, reset, broken pipe (OS level)
    asyncio.TimeoutError,  # a deadline we set ourselves (the same class as TimeoutError)
    CityUnavailable,  # the city platform did not answer (when a handler lets it escape)
)


class UpdateBusy(Exception):
    """Another replica (or task) holds a live lease on this update: it is being handled now.

    Answered non-2xx so that Telegram asks again: if its owner dies, the redelivery after the
    lease expires is handled instead of being lost. `retry_after` is in whole seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"update is being handled elsewhere; retry after {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Verdict:
    transient: bool
    retry_after: int | None = None  # seconds, when the failure says how long to wait

    @property
    def deterministic(self) -> bool:
        return not self.transient


def classify(error: BaseException) -> Verdict:
    """Transient or deterministic: is a redelivery of the same update likely to succeed?

    Transient (Telegram retries; the resident is not told each time): the database, Redis,
    Telegram or the city unreachable or timing out — SQLAlchemy's OperationalError,
    InterfaceError and pool TimeoutError, any DBAPIError whose connection was invalidated or
    that was caused by an OSError, asyncpg's connection errors, redis-py's ConnectionError and
    TimeoutError, aiogram's TelegramNetworkError, TelegramServerError and TelegramRetryAfter
    (with its `retry_after`), `domain.errors.CityUnavailable`, asyncio/OS timeouts and
    connection errors, PostgreSQL's lock-not-available, deadlock and serialization failures,
    and `UpdateBusy` (another owner is handling the update). An explicit
    cause (`raise … from error`) counts as the error itself.

    Deterministic (will fail the same way again): everything else — a Bot API 400
    (TelegramBadRequest), 403 and other refusals, and any other exception, which is a bug.
    Cancellation is neither: it is not an outcome of the update and is not classified here
    (callers release the update as for a transient failure)."""
    seen: set[int] = set()
    current: BaseException | None = error
    database = False  # below a DBAPIError: an OSError there is the connection failing
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, UpdateBusy):
            return Verdict(transient=True, retry_after=current.retry_after)
        if isinstance(current, TelegramRetryAfter):
            return Verdict(transient=True, retry_after=max(1, int(current.retry_after)))
        if isinstance(current, sa.OperationalError) and _sqlite_schema_error(current):
            return Verdict(transient=False)  # a missing table or column fails every time
        if isinstance(current, _TRANSIENT):
            return Verdict(transient=True)
        if isinstance(current, sa.DBAPIError):
            if current.connection_invalidated or isinstance(current.orig, OSError):
                return Verdict(transient=True)
            database = True
        elif database and isinstance(current, OSError):
            return Verdict(transient=True)
        current = current.__cause__
    return Verdict(transient=False)


# SQLite reports its passing troubles (a locked or busy database, I/O) and its lasting ones (a
# schema a migration did not make, a bad statement) with the same OperationalError; only the
# message tells them apart (the sqlite3 module's documentation, SQLite's result codes).
_SQLITE_PASSING = ("locked", "busy", "disk i/o", "unable to open", "out of memory", "interrupted")


def _sqlite_schema_error(error: sa.OperationalError) -> bool:
    """An OperationalError from SQLite that is not about the database being reachable."""
    original = error.orig
    if original is None or type(original).__module__ != "sqlite3":
        return False
    message = str(original).lower()
    return not any(word in message for word in _SQLITE_PASSING)
