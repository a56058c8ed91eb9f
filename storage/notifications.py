"""The notification outbox: rows written with the events that cause them, claimed by senders.

A claim moves rows from `pending` to `sending` with a conditional update, so two senders (two
replicas) never take the same row; a row left `sending` by a crashed sender is taken again
after `STALE_CLAIM`. That, and an answer lost on its way back (Telegram took the message, the
sender saw a network error and tries again), are the only ways a notification can reach
Telegram twice. Outcomes of a send are written only to a row still `sending`, so a row failed
meanwhile (the resident blocked the bot) stays failed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import BigInteger, and_, case, delete, literal_column, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from domain.ports import Notification
from storage.models import OPEN_NOTIFICATION, NotificationRow, NotificationSettingsRow

STALE_CLAIM = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Claimed:
    """A claimed notification and the kinds its resident turned off (read with the claim)."""

    notification: Notification
    muted: frozenset[str]


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
        """`claim_to_send` without the residents' muted kinds."""
        claimed = await self.claim_to_send(now, limit, urgent_only)
        return [each.notification for each in claimed]

    async def claim_to_send(
        self, now: datetime, limit: int, urgent_only: bool = False
    ) -> list[Claimed]:
        """Take up to `limit` due rows (urgent first, then oldest), with each resident's muted
        kinds, in ONE statement: `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED LIMIT
        n) RETURNING …` (on PostgreSQL the SELECT is a MATERIALIZED CTE, see below), over the
        partial index of open rows. Each claim counts as an attempt;
        `defer` gives it back when the row was not tried after all."""
        # OPEN_NOTIFICATION itself, and the due time as a term of its own, so both databases
        # read the candidates from `ix_notifications_open_due` (SQLite proves a partial index
        # usable only from the index's own terms).
        due = and_(
            OPEN_NOTIFICATION,
            NotificationRow.due_at <= now,
            or_(
                NotificationRow.status == "pending",
                (NotificationRow.status == "sending")
                & (NotificationRow.due_at <= now - STALE_CLAIM),
            ),
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
        if self._session.get_bind().dialect.name == "postgresql":
            # A MATERIALIZED common table expression, so the LIMIT runs once. As a plain `IN
            # (subquery)` PostgreSQL may run the subquery again for every row the update
            # scans (a plan it picks on small tables), each run locking the next free rows:
            # one claim took 240 rows of a limit of 60 (test_outbox_pipeline.py). Not on
            # SQLite: it runs an IN subquery once, and its driver opens no transaction for a
            # statement starting with WITH (the claim would commit at once).
            claimable = candidates.cte("claimable").prefix_with("MATERIALIZED")
            candidates = select(claimable.c.id)
        # The outer column spelled out: SQLAlchemy renders RETURNING unqualified on SQLite,
        # where `telegram_user_id = telegram_user_id` would compare the settings row to itself.
        claimed_by = literal_column(f"{NotificationRow.__tablename__}.telegram_user_id", BigInteger)
        muted = (
            select(NotificationSettingsRow.muted)
            .where(NotificationSettingsRow.telegram_user_id == claimed_by)
            .scalar_subquery()
        )
        # The same condition again in the update itself: a row another sender claimed
        # meanwhile no longer matches (PostgreSQL re-checks it on the locked row; SQLite
        # writes one transaction at a time), so it is not taken twice.
        result = await self._session.execute(
            update(NotificationRow)
            .where(NotificationRow.id.in_(candidates.scalar_subquery()), due)
            .values(status="sending", due_at=now, attempts=NotificationRow.attempts + 1)
            .returning(NotificationRow, muted)
            .execution_options(synchronize_session=False)
        )
        rows = sorted(result.all(), key=lambda found: (not found[0].urgent, found[0].id))
        return [Claimed(_domain(row), frozenset(kinds or ())) for row, kinds in rows]

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
