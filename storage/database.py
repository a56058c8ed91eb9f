"""Engine and session factory for SQLite (embedded) and PostgreSQL (production)."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

from sqlalchemy import event, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

DEFAULT_POOL_SIZE = 10  # connections kept open (Settings.database_pool_size)
DEFAULT_POOL_TIMEOUT = 30.0  # seconds a checkout waits for a free connection
POOL_RECYCLE = 1800  # seconds a PostgreSQL connection is used before it is replaced


def create_engine(
    url: str,
    *,
    pool_size: int = DEFAULT_POOL_SIZE,
    pool_timeout: float = DEFAULT_POOL_TIMEOUT,
    **kwargs: Any,
) -> AsyncEngine:
    """An async engine; for SQLite the file's folder is created and sane pragmas are set.

    The pool (PostgreSQL and an SQLite file alike) keeps `pool_size` connections and opens as
    many again when they are all taken (overflow: background jobs, the web app and an update's
    second session beside the updates in flight, which `Settings.updates_in_flight` bounds to
    `pool_size`); a checkout beyond that waits up to `pool_timeout` seconds for one to come
    back, then raises SQLAlchemy's `TimeoutError` (transient: `bot.failures.classify`).
    Errors never carry the statement's parameters (`hide_parameters`)."""
    parsed = make_url(url)
    memory = parsed.database in (None, "", ":memory:")
    # A statement's error names the statement, never its values: they may be a resident's
    # (a report's text, payment requisites, tokens) and errors reach the logs.
    kwargs.setdefault("hide_parameters", True)
    if not (parsed.get_backend_name() == "sqlite" and memory):  # in-memory: one static conn
        kwargs = {
            "pool_size": pool_size,
            "max_overflow": pool_size,
            "pool_timeout": pool_timeout,
            **kwargs,
        }
    if parsed.get_backend_name() == "sqlite":
        if not memory:
            Path(str(parsed.database)).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    # No pre-ping: it costs every checkout a round trip. A connection the server closed fails
    # its first statement instead, and the failure is transient (`bot.failures.classify`):
    # the update is handled again (polling's retry, the webhook's 503) on a fresh connection,
    # SQLAlchemy having dropped the pool's connections when it saw the disconnect. Idle
    # connections are renewed after POOL_RECYCLE seconds, before a firewall or the server's
    # idle timeout closes them.
    return create_async_engine(url, pool_recycle=POOL_RECYCLE, **kwargs)


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[Any]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def lock_on_sqlite(session: AsyncSession, column: Any, values: Collection[Any]) -> None:
    """Before a `SELECT … FOR UPDATE` of the rows whose `column` is in `values`: on SQLite, a
    no-op UPDATE of those rows. SQLite has no row locks (FOR UPDATE is not rendered) and its
    driver begins a transaction only at the first write, so the SELECT alone reads outside any
    transaction and another connection may commit between it and the caller's first write —
    the caller would write from a stale read. The UPDATE begins the transaction and takes
    SQLite's write lock (one writer at a time) first: what the SELECT then reads stays until
    the commit, as FOR UPDATE keeps it on PostgreSQL. Nothing elsewhere. `column` is an ORM
    column attribute (`AutopayRow.id`)."""
    if session.get_bind().dialect.name != "sqlite" or not values:
        return
    table = column.class_.__table__
    same = table.c[column.key]
    await session.execute(update(table).where(same.in_(list(values))).values({same: same}))
