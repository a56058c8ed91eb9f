"""Report drafts and the reports residents follow."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from domain.ports import TrackedReport
from domain.reports import Draft
from storage.models import ReportDraftRow, TrackedReportRow


class SqlDraftRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, telegram_user_id: int) -> Draft | None:
        row = await self._session.get(ReportDraftRow, telegram_user_id, populate_existing=True)
        return None if row is None else Draft.from_json(row.data)

    async def save(self, telegram_user_id: int, draft: Draft, now: datetime) -> None:
        row = await self._session.get(ReportDraftRow, telegram_user_id)
        if row is None:
            self._session.add(
                ReportDraftRow(
                    telegram_user_id=telegram_user_id, data=draft.to_json(), updated_at=now
                )
            )
        else:
            row.data = draft.to_json()
            row.updated_at = now
        await self._session.flush()

    async def delete(self, telegram_user_id: int) -> None:
        await self._session.execute(
            delete(ReportDraftRow).where(ReportDraftRow.telegram_user_id == telegram_user_id)
        )


class SqlTrackedReportRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def track(self, report: TrackedReport, now: datetime) -> None:
        """Follow a report once: a row already there (also one another poll or replica wrote a
        moment ago — INSERT … ON CONFLICT DO NOTHING) is left as it is."""
        dialect = self._session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        await self._session.execute(
            insert(TrackedReportRow)
            .values(
                telegram_user_id=report.telegram_user_id,
                report_id=report.report_id,
                last_update_id=report.last_update_id,
                closed=report.closed,
                own=report.own,
                created_at=now,
            )
            .on_conflict_do_nothing(
                index_elements=[TrackedReportRow.telegram_user_id, TrackedReportRow.report_id]
            )
        )

    async def open_ones(self, limit: int) -> list[TrackedReport]:
        result = await self._session.execute(
            select(TrackedReportRow)
            .where(TrackedReportRow.closed.is_(False))
            .order_by(TrackedReportRow.id)
            .limit(limit)
        )
        return [_domain(row) for row in result.scalars()]

    async def of_resident(self, telegram_user_id: int) -> list[TrackedReport]:
        result = await self._session.execute(
            select(TrackedReportRow)
            .where(TrackedReportRow.telegram_user_id == telegram_user_id)
            .order_by(TrackedReportRow.id.desc())
        )
        return [_domain(row) for row in result.scalars()]

    async def get(self, telegram_user_id: int, report_id: str) -> TrackedReport | None:
        row = await self._row(telegram_user_id, report_id)
        return None if row is None else _domain(row)

    async def save(self, report: TrackedReport) -> None:
        row = await self._row(report.telegram_user_id, report.report_id)
        if row is None:
            raise LookupError(report.report_id)
        row.last_update_id = report.last_update_id
        row.closed = report.closed
        await self._session.flush()

    async def forget(self, telegram_user_id: int) -> None:
        """Unlinking: the resident follows nothing any more (the reports stay at the city)."""
        await self._session.execute(
            delete(TrackedReportRow).where(TrackedReportRow.telegram_user_id == telegram_user_id)
        )

    async def _row(self, telegram_user_id: int, report_id: str) -> TrackedReportRow | None:
        result = await self._session.execute(
            select(TrackedReportRow).where(
                TrackedReportRow.telegram_user_id == telegram_user_id,
                TrackedReportRow.report_id == report_id,
            )
        )
        return result.scalar_one_or_none()


def _domain(row: TrackedReportRow) -> TrackedReport:
    return TrackedReport(
        telegram_user_id=row.telegram_user_id,
        report_id=row.report_id,
        last_update_id=row.last_update_id,
        closed=row.closed,
        own=row.own,
    )
