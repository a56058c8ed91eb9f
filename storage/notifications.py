"""The notification outbox: rows written with the events that cause them, claimed by senders.

A claim moves rows from `pending` to `sending` with a conditional update, so two senders (two
replicas) never take the same row; a row left `sending` by a crashed sender is taken again
after `STALE_CLAIM`, which is the only way a notification can reach Telegram twice."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from domain.ports import Notification
from storage.models import NotificationRow

STALE_CLAIM = timedelta(minutes=5)


class SqlNotificationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add_once(self, notification: Notification, now: datetime) -> bool:
        dialect = self._session.bind.dialect.name
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
        due = or_(
            (NotificationRow.status == "pending") & (NotificationRow.due_at <= now),
            (NotificationRow.status == "sending") & (NotificationRow.due_at <= now - STALE_CLAIM),
        )
        if urgent_only:  # quiet hours: the rest waits until morning
            due = due & NotificationRow.urgent.is_(True)
        candidates = await self._session.execute(
            select(NotificationRow.id)
            .where(due)
            .order_by(NotificationRow.urgent.desc(), NotificationRow.id)
            .limit(limit)
        )
        claimed = []
        for notification_id in candidates.scalars():
            # The same condition again, atomically: a row another sender claimed meanwhile
            # no longer matches, so it is not taken twice.
            result = await self._session.execute(
                update(NotificationRow)
                .where(NotificationRow.id == notification_id, due)
                .values(status="sending", due_at=now, attempts=NotificationRow.attempts + 1)
                .returning(NotificationRow)
            )
            row = result.scalar_one_or_none()
            if row is not None:
                claimed.append(_domain(row))
        return claimed

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

    async def retry(self, notification_id: int, at: datetime, failed: bool) -> None:
        await self._session.execute(
            update(NotificationRow)
            .where(NotificationRow.id == notification_id)
            .values(status="failed" if failed else "pending", due_at=at)
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
