"""Unit of work: one session and its repositories per update or job. Repositories never commit."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction

from domain.ports import UnitOfWork
from storage.autopays import SqlAutopayRepository, SqlNotificationSettings
from storage.link_attempts import SqlLinkAttemptRepository
from storage.notifications import SqlNotificationRepository
from storage.payment_intents import SqlPaymentIntentRepository
from storage.reports import SqlDraftRepository, SqlTrackedReportRepository
from storage.residents import SqlResidentRepository
from storage.support import SqlSupportRepository
from storage.token_cipher import TokenCipher

# `Session.info` key: this transaction wrote (or locked) something, so it must not be ended early.
WROTE = "resident_bot.wrote"


@event.listens_for(Session, "do_orm_execute")
def _executed(state: ORMExecuteState) -> None:
    # Anything but a plain SELECT counts: DML, text(), and SELECT … FOR UPDATE (its locks).
    if not state.is_select or getattr(state.statement, "_for_update_arg", None) is not None:
        state.session.info[WROTE] = True


@event.listens_for(Session, "after_flush")
def _flushed(session: Session, _context: object) -> None:
    session.info[WROTE] = True


@event.listens_for(Session, "after_transaction_end")
def _ended(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the outermost transaction: committed or rolled back
        session.info.pop(WROTE, None)


class SqlUnitOfWork:
    residents: SqlResidentRepository
    link_attempts: SqlLinkAttemptRepository
    payment_intents: SqlPaymentIntentRepository
    drafts: SqlDraftRepository
    tracked_reports: SqlTrackedReportRepository
    notifications: SqlNotificationRepository
    autopays: SqlAutopayRepository
    notification_settings: SqlNotificationSettings
    support: SqlSupportRepository

    def __init__(self, sessionmaker: async_sessionmaker[Any], cipher: TokenCipher) -> None:
        self._sessionmaker = sessionmaker
        self._cipher = cipher
        self._session: AsyncSession | None = None

    async def __aenter__(self) -> Self:
        self._session = self._sessionmaker()
        self.residents = SqlResidentRepository(self._session, self._cipher)
        self.link_attempts = SqlLinkAttemptRepository(self._session, self._cipher)
        self.payment_intents = SqlPaymentIntentRepository(self._session)
        self.drafts = SqlDraftRepository(self._session)
        self.tracked_reports = SqlTrackedReportRepository(self._session)
        self.notifications = SqlNotificationRepository(self._session)
        self.autopays = SqlAutopayRepository(self._session)
        self.notification_settings = SqlNotificationSettings(self._session)
        self.support = SqlSupportRepository(self._session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._session is not None
        try:
            await self._session.rollback()  # whatever was not committed is dropped
        finally:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> AsyncSession:
        assert self._session is not None, "unit of work used outside `async with`"
        return self._session

    async def commit(self) -> None:
        await self.session.commit()

    async def release_idle(self) -> bool:
        """Ends the transaction if it only read (no write, flush or row lock since it began),
        so its connection goes back to the pool — called before a city call, which may take
        seconds (`city.transport.before_call`). Nothing is lost: the next statement begins a
        new transaction. Returns whether a transaction was ended."""
        session = self._session
        if session is None or not session.in_transaction():
            return False
        if session.info.get(WROTE) or session.new or session.dirty or session.deleted:
            return False
        await session.commit()  # nothing to write: only ends the transaction, keeps the objects
        return True

    async def rollback(self) -> None:
        await self.session.rollback()


class UnitOfWorkFactory:
    """Makes a fresh unit of work; handed to middlewares, the web app and jobs."""

    def __init__(self, sessionmaker: async_sessionmaker[Any], cipher: TokenCipher) -> None:
        self.sessionmaker = sessionmaker
        self.cipher = cipher

    def __call__(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.sessionmaker, self.cipher)


# mypy checks here that SqlUnitOfWork (and so every repository in it) fits domain.ports.
_IMPLEMENTS: type[UnitOfWork] = SqlUnitOfWork
