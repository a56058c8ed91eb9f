"""Unit of work: one session and its repositories per update or job. Repositories never commit."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.ports import UnitOfWork
from storage.autopays import SqlAutopayRepository, SqlNotificationSettings
from storage.link_attempts import SqlLinkAttemptRepository
from storage.notifications import SqlNotificationRepository
from storage.payment_intents import SqlPaymentIntentRepository
from storage.reports import SqlDraftRepository, SqlTrackedReportRepository
from storage.residents import SqlResidentRepository
from storage.support import SqlSupportRepository
from storage.token_cipher import TokenCipher


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
