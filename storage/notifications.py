"""The notification outbox: rows written with the events that cause them, claimed by senders.

A claim moves rows from `pending` to `sending` with a conditional update, so two senders (two
replicas) never take the same row; a row left `sending` by a crashed sender is taken again
after `STALE_CLAIM`. That, and an answer lost on its way back (Telegram took the message, the
sender saw a network error and tries again), are the only ways a notification can reach
Telegram twice. Outcomes of a send are written only to a row still `sending`, so a row failed
meanwhile (the resident blocked the bot) stays failed."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import case, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from domain.ports import Notification
from storage.models import NotificationRow

STALE_CLAIM = timedelta(minutes=5)


class SqlNotificationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add_once(self, notification: Notification, now: datetime) -> bool:
        dialect = self._session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        stmt = (
            insert(NotificationRow)
            .values(
                telegram_user_id=notification.telegram_user_id,
                kind=notification.kind,
                data=notification.data,
                dedupe_key=notification.dedupe_key,
                urgent=notification.urgent,
                status="pending",
                attempts=0,
                due_at=now,
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=[NotificationRow.dedupe_key])
        )
        result = await self._session.execute(stmt)
        return bool(getattr(result, "rowcount", 0) == 1)

    async def claim(
        self, now: datetime, limit: int, urgent_only: bool = False
    ) -> list[Notification]:
        """Take up to `limit` due rows (urgent first, then oldest) in one statement. Each claim
        counts as an attempt; `defer` gives it back when the row was not tried after all."""
        due = or_(
            (NotificationRow.status == "pending") & (NotificationRow.due_at <= now),
            (NotificationRow.status == "sending") & (NotificationRow.due_at <= now - STALE_CLAIM),
        )
        if urgent_only:  # quiet hours: the rest waits until morning
            due = due & NotificationRow.urgent.is_(True)
        candidates = (
            select(NotificationRow.id)
            .where(due)
            .order_by(NotificationRow.urgent.desc(), NotificationRow.id)
            .limit(limit)
            .with_for_update(skip_locked=True)  # PostgreSQL: other senders take other rows
        )
        # The same condition again in the update itself: a row another sender claimed
        # meanwhile no longer matches (PostgreSQL re-checks it on the locked row; SQLite
        # writes one transaction at a time), so it is not taken twice.
        result = await self._session.execute(
            update(NotificationRow)
            .where(NotificationRow.id.in_(candidates.scalar_subquery()), due)
            .values(status="sending", due_at=now, attempts=NotificationRow.attempts + 1)
            .returning(NotificationRow)
            .execution_options(synchronize_session=False)
        )
        rows = sorted(result.scalars(), key=lambda row: (not row.urgent, row.id))
        return [_domain(row) for row in rows]

    async def sent(self, notification_id: int, message_id: int | None, now: datetime) -> None:
        await self._session.execute(
            update(NotificationRow)
            .where(NotificationRow.id == notification_id)
            .values(status="sent", message_id=message_id, sent_at=now)
        )

    async def fail_all(self, telegram_user_id: int) -> None:
        """The resident blocked the bot: nothing more is sent to them."""
        await self._session.execute(
            update(NotificationRow)
            .where(
                NotificationRow.telegram_user_id == telegram_user_id,
                NotificationRow.status.in_(["pending", "sending"]),
            )
            .values(status="failed")
        )

    async def forget(self, telegram_user_id: int) -> None:
        """Unlinking: every notification to the resident (waiting or sent) is deleted."""
        await self._session.execute(
            delete(NotificationRow).where(NotificationRow.telegram_user_id == telegram_user_id)
        )

    async def purge_sent(self, before: datetime) -> int:
        """Retention: notifications sent before `before` are deleted. Returns how many."""
        result = await self._session.execute(
            delete(NotificationRow).where(
                NotificationRow.status == "sent", NotificationRow.sent_at < before
            )
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def retry(self, notification_id: int, at: datetime, failed: bool) -> None:
        """Tried and not delivered: due again at `at`, or given up (`failed`). A row that is
        no longer being sent (e.g. failed meanwhile because the resident blocked the bot) is
        left as it is."""
        await self._session.execute(
            update(NotificationRow)
            .where(NotificationRow.id == notification_id, NotificationRow.status == "sending")
            .values(status="failed" if failed else "pending", due_at=at)
        )

    async def defer(self, notification_id: int, at: datetime) -> None:
        """Claimed but not tried (the chat's turn or Telegram's 429 comes later): due again at
        `at`, and the claim's attempt is given back, so waiting never counts toward giving
        the notification up."""
        await self._session.execute(
            update(NotificationRow)
            .where(NotificationRow.id == notification_id, NotificationRow.status == "sending")
            .values(
                status="pending",
                due_at=at,
                attempts=case(
                    (NotificationRow.attempts > 0, NotificationRow.attempts - 1), else_=0
                ),
            )
        )


def _domain(row: NotificationRow) -> Notification:
    return Notification(
        id=row.id,
        telegram_user_id=row.telegram_user_id,
        kind=row.kind,
        data=dict(row.data),
        dedupe_key=row.dedupe_key,
        urgent=row.urgent,
        attempts=row.attempts,
    )
