"""Support repository: residents' topics, the dashboard topic, and the figures staff ask for."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from domain.payments import IntentStatus
from domain.ports import Dashboard, DayFigures, SupportStats, SupportTopic
from storage.models import (
    AutopayRow,
    AutopayRunRow,
    NotificationRow,
    PaymentIntentRow,
    PlatformHealthRow,
    ResidentRow,
    SupportDashboardRow,
    SupportTopicRow,
    TrackedReportRow,
)


class SqlSupportRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def topic_of(self, chat_id: int, telegram_user_id: int, now: datetime) -> SupportTopic:
        existing = await self._topic_row(chat_id, telegram_user_id)
        if existing is None:
            # Two first messages at once (two replicas) make one row: the other insert is void.
            stmt = (
                _insert(self._session)(SupportTopicRow)
                .values(
                    chat_id=chat_id,
                    telegram_user_id=telegram_user_id,
                    created_at=now,
                    updated_at=now,
                )
                .on_conflict_do_nothing()
            )
            await self._session.execute(stmt)
            existing = await self._topic_row(chat_id, telegram_user_id)
        assert existing is not None
        return _topic(existing)

    async def by_thread(self, chat_id: int, thread_id: int) -> SupportTopic | None:
        result = await self._session.execute(
            select(SupportTopicRow).where(
                SupportTopicRow.chat_id == chat_id, SupportTopicRow.thread_id == thread_id
            )
        )
        row = result.scalar_one_or_none()
        return None if row is None else _topic(row)

    async def get(self, topic_id: int) -> SupportTopic | None:
        row = await self._session.get(SupportTopicRow, topic_id)
        return None if row is None else _topic(row)

    async def set_thread(self, topic_id: int, thread_id: int, name: str, now: datetime) -> None:
        await self._session.execute(
            update(SupportTopicRow)
            .where(SupportTopicRow.id == topic_id)
            .values(thread_id=thread_id, name=name, updated_at=now)
        )

    async def forget(self, telegram_user_id: int) -> list[SupportTopic]:
        """Unlinking: the resident's topics are forgotten (staff replies there reach nobody,
        `/resident <number>` knows no one); returns them, so their names can be made neutral."""
        result = await self._session.execute(
            select(SupportTopicRow).where(SupportTopicRow.telegram_user_id == telegram_user_id)
        )
        topics = [_topic(row) for row in result.scalars()]
        await self._session.execute(
            delete(SupportTopicRow)
            .where(SupportTopicRow.telegram_user_id == telegram_user_id)
            .execution_options(synchronize_session=False)
        )
        return topics

    async def dashboard(self) -> Dashboard | None:
        result = await self._session.execute(
            select(SupportDashboardRow).order_by(SupportDashboardRow.created_at.desc()).limit(1)
        )
        row = result.scalar_one_or_none()
        return None if row is None else Dashboard(row.chat_id, row.thread_id)

    async def keep_dashboard(self, chat_id: int | None) -> None:
        stmt = delete(SupportDashboardRow)
        if chat_id is not None:
            stmt = stmt.where(SupportDashboardRow.chat_id != chat_id)
        await self._session.execute(stmt)

    async def add_dashboard(self, dashboard: Dashboard, now: datetime) -> Dashboard:
        await self._session.execute(
            _insert(self._session)(SupportDashboardRow)
            .values(chat_id=dashboard.chat_id, thread_id=dashboard.thread_id, created_at=now)
            .on_conflict_do_nothing()
        )
        row = await self._session.get(
            SupportDashboardRow, dashboard.chat_id, populate_existing=True
        )
        assert row is not None
        return Dashboard(row.chat_id, row.thread_id)

    async def stats(self, since: datetime) -> SupportStats:
        residents = await self._scalar(select(func.count(ResidentRow.id)))
        paid = (
            await self._session.execute(
                select(func.count(PaymentIntentRow.id), func.sum(PaymentIntentRow.amount)).where(
                    PaymentIntentRow.status == IntentStatus.SUCCEEDED.value,
                    PaymentIntentRow.updated_at >= since,
                )
            )
        ).one()
        reports = await self._scalar(
            select(func.count(TrackedReportRow.id)).where(
                TrackedReportRow.own.is_(True), TrackedReportRow.created_at >= since
            )
        )
        failed = await self._scalar(
            select(func.count(NotificationRow.id)).where(NotificationRow.status == "failed")
        )
        return SupportStats(
            linked_residents=residents,
            payments_today=int(paid[0] or 0),
            paid_today=int(paid[1] or 0),
            reports_today=reports,
            failed_notifications=failed,
        )

    async def day_figures(self, start: datetime, end: datetime) -> DayFigures:
        links = await self._scalar(
            select(func.count(ResidentRow.id)).where(
                ResidentRow.linked_at >= start, ResidentRow.linked_at < end
            )
        )
        succeeded = (
            PaymentIntentRow.status == IntentStatus.SUCCEEDED.value,
            PaymentIntentRow.updated_at >= start,
            PaymentIntentRow.updated_at < end,
        )
        bills = (
            await self._session.execute(
                select(func.count(PaymentIntentRow.id), func.sum(PaymentIntentRow.amount)).where(
                    *succeeded, PaymentIntentRow.fund_id.is_(None)
                )
            )
        ).one()
        gifts = (
            await self._session.execute(
                select(func.count(PaymentIntentRow.id), func.sum(PaymentIntentRow.amount)).where(
                    *succeeded, PaymentIntentRow.fund_id.is_not(None)
                )
            )
        ).one()
        reports = await self._scalar(
            select(func.count(TrackedReportRow.id)).where(
                TrackedReportRow.own.is_(True),
                TrackedReportRow.created_at >= start,
                TrackedReportRow.created_at < end,
            )
        )
        failures = await self._scalar(
            select(func.count(NotificationRow.id)).where(
                NotificationRow.status == "failed",
                NotificationRow.created_at >= start,
                NotificationRow.created_at < end,
            )
        ) + await self._scalar(
            select(func.count(AutopayRunRow.id)).where(
                AutopayRunRow.status == "failed",
                AutopayRunRow.updated_at >= start,
                AutopayRunRow.updated_at < end,
            )
        )
        return DayFigures(
            links=links,
            payments=int(bills[0] or 0),
            paid=int(bills[1] or 0),
            donations=int(gifts[0] or 0),
            donated=int(gifts[1] or 0),
            reports=reports,
            failures=failures,
        )

    async def platform_changed(self, reachable: bool, now: datetime) -> bool:
        dialect = self._session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        await self._session.execute(  # the first sighting is "reachable": nothing to report
            insert(PlatformHealthRow)
            .values(id=1, reachable=True, changed_at=now)
            .on_conflict_do_nothing(index_elements=["id"])
        )
        result = await self._session.execute(
            update(PlatformHealthRow)
            .where(PlatformHealthRow.id == 1, PlatformHealthRow.reachable.is_not(reachable))
            .values(reachable=reachable, changed_at=now)
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    async def unanswered_payments(self, since: datetime) -> int:
        return await self._scalar(
            select(func.count(PaymentIntentRow.id)).where(
                PaymentIntentRow.updated_at >= since,
                (PaymentIntentRow.status == IntentStatus.SUBMITTED.value)
                | (PaymentIntentRow.failure == "not_submitted"),
            )
        )

    async def counts(self, telegram_user_id: int) -> tuple[int, int]:
        reports = await self._scalar(
            select(func.count(TrackedReportRow.id)).where(
                TrackedReportRow.telegram_user_id == telegram_user_id,
                TrackedReportRow.own.is_(True),
            )
        )
        autopays = await self._scalar(
            select(func.count(AutopayRow.id)).where(AutopayRow.telegram_user_id == telegram_user_id)
        )
        return reports, autopays

    async def _scalar(self, stmt: Select[Any]) -> int:
        """One count or sum (`Any`: a one-column Select is typed differently in SQLAlchemy
        2.0 and 2.1)."""
        return int((await self._session.execute(stmt)).scalar_one() or 0)

    async def _topic_row(self, chat_id: int, telegram_user_id: int) -> SupportTopicRow | None:
        result = await self._session.execute(
            select(SupportTopicRow).where(
                SupportTopicRow.chat_id == chat_id,
                SupportTopicRow.telegram_user_id == telegram_user_id,
            )
        )
        return result.scalar_one_or_none()


def _insert(session: AsyncSession) -> Any:
    """INSERT … ON CONFLICT DO NOTHING is dialect-specific in SQLAlchemy."""
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def _topic(row: SupportTopicRow) -> SupportTopic:
    return SupportTopic(
        id=row.id,
        chat_id=row.chat_id,
        telegram_user_id=row.telegram_user_id,
        thread_id=row.thread_id,
        name=row.name,
    )
