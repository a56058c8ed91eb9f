"""Report drafts and the reports residents follow."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from domain.ports import TrackedReport
from domain.reports import Draft
from storage.models import OPEN_REPORT, ReportDraftRow, TrackedReportRow

# PostgreSQL's transaction-level advisory lock the status polls claim under, one at a time (an
# arbitrary constant of this application: «POLL» in ASCII).
POLL_CLAIM_LOCK = 0x504F4C4C


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

    async def touch(self, telegram_user_id: int, now: datetime) -> None:
        """`updated_at = now` for the resident's draft; no row, no row (an UPDATE, never an
        insert: a draft settled or deleted meanwhile stays gone)."""
        await self._session.execute(
            update(ReportDraftRow)
            .where(ReportDraftRow.telegram_user_id == telegram_user_id)
            .values(updated_at=now)
            .execution_options(synchronize_session=False)
        )

    async def purge_stale(self, before: datetime) -> int:
        """Retention: drafts not written nor come back to since `before` (abandoned) are
        deleted. Returns how many."""
        result = await self._session.execute(
            delete(ReportDraftRow).where(ReportDraftRow.updated_at < before)
        )
        return int(getattr(result, "rowcount", 0) or 0)


class SqlTrackedReportRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def track(self, report: TrackedReport, now: datetime) -> None:
        """Follow a report once: a row already there (also one another poll or replica wrote a
        moment ago — INSERT … ON CONFLICT) is left as it is, but for the name of the draft
        whose send made it, written when the row has none."""
        dialect = self._session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = insert(TrackedReportRow).values(
            telegram_user_id=report.telegram_user_id,
            report_id=report.report_id,
            last_update_id=report.last_update_id,
            closed=report.closed,
            own=report.own,
            draft_id=report.draft_id,
            created_at=now,
            checked_at=now,  # its state was just read: it joins the back of the poll order
        )
        keys = [TrackedReportRow.telegram_user_id, TrackedReportRow.report_id]
        if report.draft_id is None:
            await self._session.execute(statement.on_conflict_do_nothing(index_elements=keys))
            return
        # A send that made a report already followed (adopted by a poll meanwhile) still
        # names it its draft's, so a screen left on that draft is told its number.
        named = func.coalesce(TrackedReportRow.draft_id, statement.excluded.draft_id)
        await self._session.execute(
            statement.on_conflict_do_update(index_elements=keys, set_={"draft_id": named})
        )

    async def claim_for_poll(self, now: datetime, limit: int) -> list[TrackedReport]:
        """The `limit` open reports least recently checked, stamped `checked_at = now` (each
        returned with its previous `checked_at`); the caller commits at once. On PostgreSQL the
        claims take turns under an advisory lock held until the claim commits, so a second
        poller finds these reports at the back of the order and takes others. Served by the
        partial index `ix_tracked_reports_open_checked`; three statements on PostgreSQL, two
        on SQLite (which writes one transaction at a time anyway)."""
        if self._session.get_bind().dialect.name == "postgresql":
            # Without it, a poller whose SELECT began before another's claim committed locked
            # the rows just released and, PostgreSQL re-checking only the WHERE (not the
            # order) on their new versions, took some of them again. `SKIP LOCKED` stays for
            # any other writer holding a row.
            await self._session.execute(select(func.pg_advisory_xact_lock(POLL_CLAIM_LOCK)))
        rows = (
            (
                await self._session.execute(
                    select(TrackedReportRow)
                    .where(OPEN_REPORT)  # the partial index's own predicate, word for word
                    .order_by(TrackedReportRow.checked_at, TrackedReportRow.id)
                    .limit(limit)
                    .with_for_update(skip_locked=True)  # PostgreSQL; SQLite serialises writers
                )
            )
            .scalars()
            .all()
        )
        claimed = [_domain(row) for row in rows]
        if rows:
            await self._session.execute(
                update(TrackedReportRow)
                .where(TrackedReportRow.id.in_([row.id for row in rows]))
                .values(checked_at=now)
                .execution_options(synchronize_session=False)
            )
        return claimed

    async def give_back(self, reports: list[TrackedReport]) -> None:
        """Claimed reports the poll did not get to ask about (the city stopped answering) get
        their previous `checked_at` back, so they stay at the front of the order."""
        for report in reports:
            await self._session.execute(
                update(TrackedReportRow)
                .where(
                    TrackedReportRow.telegram_user_id == report.telegram_user_id,
                    TrackedReportRow.report_id == report.report_id,
                )
                .values(checked_at=report.checked_at)
                .execution_options(synchronize_session=False)
            )

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

    async def made_by_draft(self, telegram_user_id: int, draft_id: str) -> TrackedReport | None:
        """The followed report the send of draft `draft_id` made (read by the resident's own
        rows: `telegram_user_id` is indexed and a resident follows few reports)."""
        result = await self._session.execute(
            select(TrackedReportRow)
            .where(
                TrackedReportRow.telegram_user_id == telegram_user_id,
                TrackedReportRow.draft_id == draft_id,
            )
            .order_by(TrackedReportRow.id)
            .limit(1)
        )
        row = result.scalar_one_or_none()
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
        checked_at=row.checked_at,
        draft_id=row.draft_id,
    )
