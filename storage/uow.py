"""Unit of work: one session and its repositories per update or job. Repositories never commit."""

from __future__ import annotations

import re
from functools import cached_property
from types import TracebackType
from typing import Any, Self

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from domain.ports import UnitOfWork
from storage.autopays import SqlAutopayRepository, SqlNotificationSettings
from storage.known_bills import SqlKnownBillRepository
from storage.link_attempts import SqlLinkAttemptRepository
from storage.notifications import SqlNotificationRepository
from storage.payment_intents import SqlPaymentIntentRepository
from storage.reports import SqlDraftRepository, SqlTrackedReportRepository
from storage.residents import SqlResidentRepository
from storage.support import SqlSupportRepository
from storage.templates import SqlTemplateRepository
from storage.token_cipher import TokenCipher

# `Connection.info` key: this transaction wrote (or locked) something, so it must not be ended
# early (`SqlUnitOfWork.release_idle`).
WROTE = "resident_bot.wrote"
# A statement that only reads: a SELECT (or a CTE ending in one) taking no row lock and calling
# no lock function. Anything else — DML, DDL, SELECT … FOR UPDATE/SHARE, pg_advisory_xact_lock,
# a statement we cannot classify — counts as a write.
_PLAIN_READ = re.compile(r"\s*(SELECT|WITH)\b", re.IGNORECASE)
_LOCKS_OR_WRITES = re.compile(
    r"\bFOR\s+(NO\s+KEY\s+)?(UPDATE|SHARE|KEY\s+SHARE)\b|\bpg_advisory|\bpg_try_advisory"
    r"|\b(INSERT|UPDATE|DELETE|MERGE)\b",
    re.IGNORECASE,
)


def _only_reads(statement: str) -> bool:
    return bool(_PLAIN_READ.match(statement)) and not _LOCKS_OR_WRITES.search(statement)


# Seen where every statement passes — the ORM, Core on `session.connection()`, text() — rather
# than at the ORM's execute, which a statement sent on the session's connection would bypass.
@event.listens_for(Engine, "before_cursor_execute")
def _executing(
    conn: Connection, _cursor: Any, statement: str, _params: Any, _context: Any, _many: bool
) -> None:
    if WROTE not in conn.info and not _only_reads(statement):
        conn.info[WROTE] = True


@event.listens_for(Engine, "commit")
@event.listens_for(Engine, "rollback")
def _ended(conn: Connection) -> None:
    if not conn.invalidated:  # `info` of an invalidated connection would reconnect (and fail)
        conn.info.pop(WROTE, None)


class SqlUnitOfWork:
    """One session and its repositories. Both are made at first use, not on entering: a unit
    of work that never reaches the database (an update answered from its dialog state, an
    autopay charge that succeeded and is recorded with others) costs no session, and leaving
    it costs no rollback (`bench/autopay.py`: a session and eleven repositories made and closed
    for nothing were about a twentieth of the job's CPU per autopay)."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[Any],
        cipher: TokenCipher,
        reader: AsyncEngine | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._cipher = cipher
        self._reader = reader  # autocommit reads outside the transaction (`residents.peek`)
        self._session: AsyncSession | None = None
        self._entered = False

    async def __aenter__(self) -> Self:
        if self._entered:  # the inner exit would close the outer's session under it
            raise RuntimeError("a unit of work is entered once at a time")
        self._entered = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._entered = False
        for name in _REPOSITORIES:  # made again, on a new session, if entered again
            self.__dict__.pop(name, None)
        session, self._session = self._session, None
        if session is None:
            return
        try:
            await session.rollback()  # whatever was not committed is dropped
        finally:
            await session.close()

    @cached_property
    def residents(self) -> SqlResidentRepository:
        return SqlResidentRepository(self.session, self._cipher, self._reader)

    @cached_property
    def link_attempts(self) -> SqlLinkAttemptRepository:
        return SqlLinkAttemptRepository(self.session, self._cipher)

    @cached_property
    def payment_intents(self) -> SqlPaymentIntentRepository:
        return SqlPaymentIntentRepository(self.session)

    @cached_property
    def drafts(self) -> SqlDraftRepository:
        return SqlDraftRepository(self.session)

    @cached_property
    def tracked_reports(self) -> SqlTrackedReportRepository:
        return SqlTrackedReportRepository(self.session)

    @cached_property
    def notifications(self) -> SqlNotificationRepository:
        return SqlNotificationRepository(self.session)

    @cached_property
    def autopays(self) -> SqlAutopayRepository:
        return SqlAutopayRepository(self.session)

    @cached_property
    def notification_settings(self) -> SqlNotificationSettings:
        return SqlNotificationSettings(self.session)

    @cached_property
    def known_bills(self) -> SqlKnownBillRepository:
        return SqlKnownBillRepository(self.session)

    @cached_property
    def support(self) -> SqlSupportRepository:
        return SqlSupportRepository(self.session)

    @cached_property
    def templates(self) -> SqlTemplateRepository:
        return SqlTemplateRepository(self.session)

    @property
    def session(self) -> AsyncSession:
        """The unit of work's session, made at the first use within `async with`."""
        assert self._entered, "unit of work used outside `async with`"
        if self._session is None:
            self._session = self._sessionmaker()
        return self._session

    async def commit(self) -> None:
        assert self._entered, "unit of work used outside `async with`"
        if self._session is not None:  # nothing was read or written: nothing to commit
            await self._session.commit()

    async def release_idle(self) -> bool:
        """Ends the transaction if it only read (no write, flush or row lock since it began),
        so its connection goes back to the pool — called before a city call, which may take
        seconds (`city.transport.before_call`). Nothing is lost: the next statement begins a
        new transaction. Returns whether a transaction was ended."""
        session = self._session
        if session is None or not session.in_transaction():
            return False
        transaction = session.sync_session.get_transaction()
        if transaction is None or not transaction.is_active:  # failed: the caller rolls back
            return False
        if session.new or session.dirty or session.deleted:  # not flushed yet
            return False
        connection = await session.connection()  # the transaction's own, already open
        if connection.sync_connection is None or WROTE in connection.sync_connection.info:
            return False
        await session.commit()  # nothing to write: only ends the transaction, keeps the objects
        return True

    async def rollback(self) -> None:
        assert self._entered, "unit of work used outside `async with`"
        if self._session is not None:
            await self._session.rollback()


_REPOSITORIES = [
    name for name, value in vars(SqlUnitOfWork).items() if isinstance(value, cached_property)
]


class UnitOfWorkFactory:
    """Makes a fresh unit of work; handed to middlewares, the web app and jobs.

    On PostgreSQL its units of work also get an autocommit view of the engine (the same pool)
    for `SqlResidentRepository.peek`; on SQLite none (aiosqlite would hop to its thread to
    switch a connection's isolation level on every checkout and return)."""

    def __init__(self, sessionmaker: async_sessionmaker[Any], cipher: TokenCipher) -> None:
        self.sessionmaker = sessionmaker
        self.cipher = cipher
        bind = sessionmaker.kw.get("bind")
        self.reader: AsyncEngine | None = (
            bind.execution_options(isolation_level="AUTOCOMMIT")
            if isinstance(bind, AsyncEngine) and bind.dialect.name == "postgresql"
            else None
        )

    def __call__(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.sessionmaker, self.cipher, self.reader)


# mypy checks here that SqlUnitOfWork (and so every repository in it) fits domain.ports.
_IMPLEMENTS: type[UnitOfWork] = SqlUnitOfWork
