"""The notification outbox: rows written with the events that cause them, claimed by senders.

A claim moves rows from `pending` to `sending` with a conditional update, so two senders (two
replicas) never take the same row; a row left `sending` by a crashed sender is taken again
after `STALE_CLAIM`. That, and an answer lost on its way back (Telegram took the message, the
sender saw a network error and tries again), are the only ways a notification can reach
Telegram twice. Outcomes of a send are written only to a row still `sending`, so a row failed
meanwhile (the resident blocked the bot) stays failed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Select,
    Table,
    and_,
    case,
    cast,
    delete,
    exists,
    func,
    literal,
    literal_column,
    not_,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from domain.ports import Notification
from domain.quiet_hours import DEFAULT as DEFAULT_QUIET
from domain.quiet_hours import MOSCOW, QuietHours, minute_of_day, send_by
from domain.support import KEPT_FOR_GOOD, THREAD
from storage.models import OPEN_NOTIFICATION, NotificationRow, NotificationSettingsRow

STALE_CLAIM = timedelta(minutes=5)
# PostgreSQL's transaction-level advisory lock the outbox claims take one at a time (an
# arbitrary constant of this application: «OUTB» in ASCII).
CLAIM_LOCK = 0x4F555442


@dataclass(frozen=True, slots=True)
class Claimed:
    """A claimed notification with what its resident set (read with the claim): the kinds
    they turned off and their quiet hours; and when the notification was written (a
    non-urgent one written in the quiet hours goes into the digest at their end)."""

    notification: Notification
    muted: frozenset[str]
    quiet: QuietHours = DEFAULT_QUIET
    written_at: datetime | None = None
    mark: bool | None = None  # NotificationRow.held
    claimed_at: datetime | None = None

    @property
    def held(self) -> bool:
        """Not urgent, and waited for the end of the resident's quiet hours: written in them
        (in the hours in force then, when the resident changed them since: `mark`), and
        claimed after their end (one claimed in them offers to stop a charge that comes
        first: it goes at once, as itself). A row a refused digest put back (`mark` False)
        is never held again."""
        if self.notification.urgent or self.mark is False:
            return False
        if self.claimed_at is not None and self.quiet.covers(self.claimed_at):
            return False
        if self.mark:
            return True
        return self.written_at is not None and self.quiet.covers(self.written_at)


def _quiet_start_end() -> tuple[Any, Any]:
    """The resident's quiet hours in SQL (no settings row: the defaults), over notifications
    LEFT JOIN notification_settings."""
    return (
        func.coalesce(NotificationSettingsRow.quiet_start, DEFAULT_QUIET.start),
        func.coalesce(NotificationSettingsRow.quiet_end, DEFAULT_QUIET.end),
    )


def _quiet_at(minute: Any, hours: QuietHours | None = None) -> ColumnElement[bool]:
    """Whether `minute` (of the day, Moscow time: a number or an SQL expression) is in the
    quiet hours of the notification's resident (or in `hours`), in SQL — the rule of
    `QuietHours.covers_minute`. Used over notifications LEFT JOIN notification_settings."""
    start, end = _quiet_start_end() if hours is None else (literal(hours.start), literal(hours.end))
    return or_(
        and_(start < end, start <= minute, end > minute),
        and_(start > end, or_(start <= minute, end > minute)),
    )


def _epoch(dialect: str, column: Any) -> Any:
    """Seconds since 1970 of a UtcDateTime column, in SQL."""
    if dialect == "postgresql":
        return func.extract("epoch", column)
    return cast(func.strftime("%s", column), Integer)


def _written_minute(dialect: str, now: datetime) -> Any:
    """The Moscow minute of the day a notification was written, in SQL (Moscow's offset at
    `now`: the rows waiting are hours old at most)."""
    offset = int((now.astimezone(MOSCOW).utcoffset() or timedelta()).total_seconds())
    epoch = _epoch(dialect, NotificationRow.created_at)
    if dialect == "postgresql":
        return func.mod(cast(func.floor((epoch + offset) / 60), Integer), 24 * 60)
    return ((epoch + offset) // 60) % (24 * 60)


def _pressing(dialect: str, now: datetime) -> ColumnElement[bool]:
    """A notice offering to stop a charge that the resident's quiet hours (in force at `now`)
    would hold past its `send_by`: the hours end (`now`'s minute plus the minutes to their
    end) after it. In SQL, over notifications LEFT JOIN notification_settings."""
    _start, end = _quiet_start_end()
    minute = minute_of_day(now)
    this_minute = int(now.timestamp()) // 60 * 60
    to_end = (end - minute + 24 * 60) % (24 * 60)  # minutes; meaningful while quiet
    return and_(
        NotificationRow.send_by.is_not(None),
        _epoch(dialect, NotificationRow.send_by) - this_minute < to_end * 60,
    )


def _with_settings(*columns: Any) -> Select[Any]:
    return select(*columns).outerjoin(
        NotificationSettingsRow,
        NotificationSettingsRow.telegram_user_id == NotificationRow.telegram_user_id,
    )


def _row_values(notification: Notification, now: datetime) -> dict[str, Any]:
    """The outbox row of a notification written at `now`. A row written to go out later counts
    as written when it comes due: the quiet hours and the digest see it as any row written
    then (not in the hours it was written in)."""
    due = max(now, notification.due_at) if notification.due_at is not None else now
    return {
        "telegram_user_id": notification.telegram_user_id,
        "kind": notification.kind,
        "data": notification.data,
        "dedupe_key": notification.dedupe_key,
        "urgent": notification.urgent,
        "status": "pending",
        "attempts": 0,
        "due_at": due,
        "created_at": due,
        "send_by": send_by(notification.kind, notification.data),
    }


class SqlNotificationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add_once(self, notification: Notification, now: datetime) -> bool:
        dialect = self._session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        stmt = (
            insert(NotificationRow)
            .values(**_row_values(notification, now))
            .on_conflict_do_nothing(index_elements=[NotificationRow.dedupe_key])
        )
        result = await self._session.execute(stmt)
        return bool(getattr(result, "rowcount", 0) == 1)

    async def add_all_once(self, notifications: Sequence[Notification], now: datetime) -> int:
        """`add_once` for many in ONE statement (INSERT … VALUES …, … ON CONFLICT DO NOTHING);
        a dedupe key already there, or twice in `notifications`, is written once. Returns how
        many rows were new."""
        if not notifications:
            return 0
        dialect = self._session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        # An executemany with RETURNING (SQLAlchemy's «insertmanyvalues» pages it into INSERT …
        # VALUES statements): compiled once and cached, unlike a VALUES list of each length.
        table: Table = NotificationRow.__table__  # type: ignore[assignment]
        result = await self._session.execute(
            insert(table)
            .on_conflict_do_nothing(index_elements=[table.c.dedupe_key])
            .returning(table.c.id),
            [_row_values(note, now) for note in notifications],
        )
        return len(result.all())

    async def claim(
        self, now: datetime, limit: int, urgent_only: bool = False
    ) -> list[Notification]:
        """`claim_to_send` without the residents' muted kinds."""
        claimed = await self.claim_to_send(now, limit, urgent_only)
        return [each.notification for each in claimed]

    async def claim_to_send(
        self, now: datetime, limit: int, urgent_only: bool = False
    ) -> list[Claimed]:
        """Take up to `limit` due rows (urgent first, then oldest) — leaving out the non-urgent
        rows of residents in their quiet hours — and then the other rows the quiet hours held
        for the residents taken (non-urgent, written in those hours; up to `limit` more: they
        go out together, as one digest), with each resident's settings, in ONE statement:
        `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED LIMIT n) RETURNING …` (on
        PostgreSQL the SELECTs are MATERIALIZED CTEs, see below, and claims take turns under
        an advisory lock), over the partial index of open rows. No row is taken while an
        older row of its chat is being sent or was put back to wait (a chat's notifications
        go in order, also with two replicas). Each claim counts as an attempt; `defer` gives
        it back when the row was not tried after all. `urgent_only` takes urgent rows alone."""
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
        dialect = self._session.get_bind().dialect.name
        quiet = _quiet_at(minute_of_day(now))
        # Urgent, and a notice offering to stop a charge the quiet hours would hold it past.
        allowed: ColumnElement[bool] = or_(
            NotificationRow.urgent.is_(True), _pressing(dialect, now)
        )
        if not urgent_only:  # the resident's quiet hours: the rest waits until their end
            allowed = or_(allowed, not_(quiet))
        # A chat's rows go in order: none is taken while an older row of its chat is being
        # sent (by another replica), or was tried and put back to wait its turn (a 5xx's
        # backoff, a 429, the chat's second: its due time moved past the one it was written
        # with — a row written to go out later has the two equal). Urgent rows do not wait for
        # older non-urgent ones put back. Rows of a chat taken together are sent one after
        # another by the sender. From `ix_notifications_open_chat`.
        older = aliased(NotificationRow, name="older")
        fresh_claim = now - STALE_CLAIM

        def older_row(*terms: ColumnElement[bool]) -> ColumnElement[bool]:
            return (
                exists()
                .where(
                    OPEN_NOTIFICATION,  # unqualified: the subquery's own rows (`older`)
                    older.telegram_user_id == NotificationRow.telegram_user_id,
                    older.id < NotificationRow.id,
                    *terms,
                )
                .correlate(NotificationRow, NotificationSettingsRow)
            )

        ahead = or_(
            older_row(older.status == "sending", older.due_at > fresh_claim),
            older_row(
                older.status == "pending",
                older.due_at > older.created_at,  # put back after a claim
                or_(older.urgent.is_(True), NotificationRow.urgent.is_(False)),
            ),
        )

        def first(*columns: Any) -> Select[Any]:
            return (
                _with_settings(*columns)
                .where(due, allowed, not_(ahead))
                .order_by(NotificationRow.urgent.desc(), NotificationRow.id)
                .limit(limit)
                # PostgreSQL: other senders take other rows (the settings are only read)
                .with_for_update(of=NotificationRow, skip_locked=True)
            )

        def rest(chats: Any, picked_ids: Any) -> Select[Any]:
            return (
                _with_settings(NotificationRow.id)
                .where(
                    due,
                    NotificationRow.urgent.is_(False),
                    not_(quiet),
                    or_(  # held by the quiet hours (those in force when it was written)
                        NotificationRow.held.is_(True),
                        and_(
                            NotificationRow.held.is_(None),
                            _quiet_at(_written_minute(dialect, now)),
                        ),
                    ),
                    NotificationRow.telegram_user_id.in_(chats),
                    NotificationRow.id.not_in(picked_ids),
                )
                .order_by(NotificationRow.id)
                .limit(0 if urgent_only else limit)
                .with_for_update(of=NotificationRow, skip_locked=True)
            )

        taken: ColumnElement[bool]
        if dialect == "postgresql":
            # MATERIALIZED common table expressions, so each LIMIT runs once. As a plain `IN
            # (subquery)` PostgreSQL may run the subquery again for every row the update
            # scans (a plan it picks on small tables), each run locking the next free rows:
            # one claim took 240 rows of a limit of 60 (test_outbox_pipeline.py). Not on
            # SQLite: it runs an IN subquery once, and its driver opens no transaction for a
            # statement starting with WITH (the claim would commit at once).
            picked = first(NotificationRow.id, NotificationRow.telegram_user_id).cte("picked")
            picked = picked.prefix_with("MATERIALIZED")
            more = rest(select(picked.c.telegram_user_id), select(picked.c.id)).cte("more")
            more = more.prefix_with("MATERIALIZED")
            taken = NotificationRow.id.in_(union_all(select(picked.c.id), select(more.c.id)))
        else:
            # One IN over a UNION: SQLite computes it once, before the first row is changed
            # (two IN terms joined by OR: the second was computed only after rows were).
            picked_rows = first(NotificationRow.id, NotificationRow.telegram_user_id).subquery()
            more_rows = rest(
                select(picked_rows.c.telegram_user_id), select(picked_rows.c.id)
            ).subquery()
            taken = NotificationRow.id.in_(
                union_all(select(picked_rows.c.id), select(more_rows.c.id))
            )
        # The outer column spelled out: SQLAlchemy renders RETURNING unqualified on SQLite,
        # where `telegram_user_id = telegram_user_id` would compare the settings row to itself.
        claimed_by = literal_column(f"{NotificationRow.__tablename__}.telegram_user_id", BigInteger)

        def setting(column: Any) -> Any:
            return (
                select(column)
                .where(NotificationSettingsRow.telegram_user_id == claimed_by)
                .scalar_subquery()
            )

        if dialect == "postgresql":
            # Claims one at a time (each a few milliseconds; held until the claim commits): a
            # claim then sees the rows the one before took as `sending`, and leaves out their
            # chats' later rows (`ahead`) — without it two claims at once each saw the other's
            # first row still `pending` and took the chat's next one. SQLite writes one
            # transaction at a time anyway.
            await self._session.execute(select(func.pg_advisory_xact_lock(CLAIM_LOCK)))
        # The same condition again in the update itself: a row another sender claimed
        # meanwhile no longer matches (PostgreSQL re-checks it on the locked row; SQLite
        # writes one transaction at a time), so it is not taken twice.
        result = await self._session.execute(
            update(NotificationRow)
            .where(taken, due)
            .values(status="sending", due_at=now, attempts=NotificationRow.attempts + 1)
            .returning(
                NotificationRow,
                setting(NotificationSettingsRow.muted),
                setting(NotificationSettingsRow.quiet_start),
                setting(NotificationSettingsRow.quiet_end),
            )
            .execution_options(synchronize_session=False)
        )
        rows = sorted(result.all(), key=lambda found: (not found[0].urgent, found[0].id))
        return [
            Claimed(
                _domain(row),
                frozenset(kinds or ()),
                DEFAULT_QUIET if start is None else QuietHours(start, end),
                row.created_at,
                row.held,
                now,
            )
            for row, kinds, start, end in rows
        ]

    async def hold_written_in(
        self, telegram_user_id: int, quiet: QuietHours, now: datetime
    ) -> None:
        """The resident is changing their quiet hours from `quiet`: their waiting non-urgent
        rows written in `quiet` stay held (they go in the digest at the end of whichever hours
        come next, not one by one because the new hours would not have held them)."""
        if quiet.off:
            return
        dialect = self._session.get_bind().dialect.name
        await self._session.execute(
            update(NotificationRow)
            .where(
                NotificationRow.telegram_user_id == telegram_user_id,
                NotificationRow.status.in_(["pending", "sending"]),
                NotificationRow.urgent.is_(False),
                NotificationRow.held.is_(None),
                _quiet_at(_written_minute(dialect, now), quiet),
            )
            .values(held=True)
            .execution_options(synchronize_session=False)
        )

    async def alone(self, notification_id: int, at: datetime) -> None:
        """A digest with this row was refused: it goes again at `at`, as itself (never folded
        again), and the claim's attempt is given back (the digest failed, not the row)."""
        await self._session.execute(
            update(NotificationRow)
            .where(NotificationRow.id == notification_id, NotificationRow.status == "sending")
            .values(
                status="pending",
                due_at=at,
                held=False,
                attempts=case(
                    (NotificationRow.attempts > 0, NotificationRow.attempts - 1), else_=0
                ),
            )
        )

    async def existing(self, dedupe_keys: list[str]) -> set[str]:
        """Which of these dedupe keys the outbox holds (a job asks before calling the city)."""
        if not dedupe_keys:
            return set()
        result = await self._session.execute(
            select(NotificationRow.dedupe_key).where(NotificationRow.dedupe_key.in_(dedupe_keys))
        )
        return set(result.scalars())

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

    async def fail_waiting(self, kinds: frozenset[str]) -> int:
        """Waiting rows of `kinds` fail for good: the operator turned support off, and the
        dashboard events still waiting have no chat to go to (they stay for the record). Rows
        being sent are left to their sender (a refusal puts them back; the next call fails
        them). Returns how many."""
        result = await self._session.execute(
            update(NotificationRow)
            .where(
                OPEN_NOTIFICATION,
                NotificationRow.status == "pending",
                NotificationRow.kind.in_(sorted(kinds)),
            )
            .values(status="failed")
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def readdress(self, kinds: frozenset[str], chat_id: int, thread_id: int) -> int:
        """Waiting rows of `kinds` (the support dashboard's events) addressed to another chat
        go to forum topic `thread_id` of `chat_id`: the operator moved SUPPORT_CHAT_ID, and the
        old chat may no longer take the bot's messages (a refund owed is among them). Rows
        being sent are left to their sender (a refusal puts them back, and the next call moves
        them). The old topic's id means nothing in the new chat, so it is replaced in `data`
        row by row: a handful of rows, once per move. Returns how many were moved."""
        rows = (
            await self._session.execute(
                select(NotificationRow.id, NotificationRow.data).where(
                    OPEN_NOTIFICATION,
                    NotificationRow.status == "pending",
                    NotificationRow.kind.in_(sorted(kinds)),
                    NotificationRow.telegram_user_id != chat_id,
                )
            )
        ).all()
        for row_id, data in rows:
            await self._session.execute(
                update(NotificationRow)
                .where(NotificationRow.id == row_id, NotificationRow.status == "pending")
                .values(telegram_user_id=chat_id, data={**data, THREAD: thread_id})
            )
        return len(rows)

    async def forget(self, telegram_user_id: int) -> None:
        """Unlinking: every notification to the resident (waiting or sent) is deleted."""
        await self._session.execute(
            delete(NotificationRow).where(NotificationRow.telegram_user_id == telegram_user_id)
        )

    async def purge_finished(self, before: datetime) -> int:
        """Retention: notifications sent before `before`, and those given up (failed: the
        resident blocked the bot, a send dead-lettered) last due before it, are deleted — two
        statements, each read from an index (the sent ones `ix_notifications_status_sent_at`,
        the failed ones by their status or due time: bench/plans.py). The kinds in
        `domain.support.KEPT_FOR_GOOD` (the only record of money owed back) stay. Returns how
        many."""
        kept = NotificationRow.kind.not_in(sorted(KEPT_FOR_GOOD))
        sent = await self._session.execute(
            delete(NotificationRow).where(
                NotificationRow.status == "sent", NotificationRow.sent_at < before, kept
            )
        )
        failed = await self._session.execute(
            delete(NotificationRow).where(
                NotificationRow.status == "failed", NotificationRow.due_at < before, kept
            )
        )
        return sum(int(getattr(result, "rowcount", 0) or 0) for result in (sent, failed))

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
