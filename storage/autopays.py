"""Autopays and their runs. Due autopays are claimed a batch at a time with one statement
(`UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING`) that sets a lease
(`claimed_until`), which also works on SQLite and expires if a scheduler dies, so two
schedulers never work on the same autopay at once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Row, Table, bindparam, case, delete, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from domain.autopay import (
    FINISHED_FOR_GOOD,
    Autopay,
    AutopayKind,
    AutopayRun,
    AutopayStatus,
    Frequency,
    PauseReason,
    RunStatus,
    Schedule,
)
from domain.bills import BillKind
from domain.linking import ANONYMOUS
from domain.ports import Notification
from domain.quiet_hours import DEFAULT as DEFAULT_QUIET
from domain.quiet_hours import QuietHours
from storage.database import lock_on_sqlite
from storage.models import STARTED_RUN, AutopayRow, AutopayRunRow, NotificationSettingsRow
from storage.notifications import SqlNotificationRepository
from storage.types import UtcDateTime

LEASE = timedelta(minutes=5)
_AUTOPAYS = cast(Table, AutopayRow.__table__)
_RUNS = cast(Table, AutopayRunRow.__table__)
# STARTED_RUN where autopays (which have a status too) are joined: the same term, named.
STARTED_RUN_OF_JOIN = text(f"{AutopayRunRow.__tablename__}.{STARTED_RUN.text}")


class SqlAutopayRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, autopay: Autopay, now: datetime) -> None:
        row = AutopayRow(telegram_user_id=autopay.telegram_user_id, created_at=now)
        _fill(row, autopay)
        self._session.add(row)
        await self._session.flush()
        autopay.id = row.id

    async def get(self, autopay_id: int) -> Autopay | None:
        row = await self._session.get(AutopayRow, autopay_id, populate_existing=True)
        return None if row is None else _domain(row)

    async def of_resident(self, telegram_user_id: int) -> list[Autopay]:
        result = await self._session.execute(
            select(AutopayRow)
            .where(
                AutopayRow.telegram_user_id == telegram_user_id,
                AutopayRow.status != AutopayStatus.DELETED,
            )
            .order_by(AutopayRow.id)
        )
        return [_domain(row) for row in result.scalars()]

    async def save(self, autopay: Autopay) -> None:
        """Write the autopay back. A DELETED autopay stays deleted: a tick that loaded it
        before the resident deleted it or unlinked cannot bring it back. Raises LookupError."""
        row = await self._session.get(AutopayRow, autopay.id, populate_existing=True)
        if row is None:
            raise LookupError(autopay.id)
        if row.status == AutopayStatus.DELETED:
            return
        _fill(row, autopay)
        await self._session.flush()

    async def claim_due(self, now: datetime, limit: int) -> list[Autopay]:
        """Lease up to `limit` due active autopays, oldest due first (next_due_at, id), in one
        statement: `UPDATE … SET claimed_until = now + LEASE WHERE id IN (SELECT id … ORDER BY
        next_due_at, id LIMIT n FOR UPDATE SKIP LOCKED) RETURNING …`. On PostgreSQL a row
        another scheduler is claiming is skipped, and one it has just leased is re-checked
        after its commit (READ COMMITTED) and left out; SQLite (3.35+ for RETURNING) has no row
        locks and serialises writers anyway. The caller commits at once."""
        free = or_(_AUTOPAYS.c.claimed_until.is_(None), _AUTOPAYS.c.claimed_until < now)
        due = (
            select(_AUTOPAYS.c.id)
            .where(
                _AUTOPAYS.c.status == AutopayStatus.ACTIVE,
                _AUTOPAYS.c.next_due_at <= now,
                free,
            )
            .order_by(_AUTOPAYS.c.next_due_at, _AUTOPAYS.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)  # rendered on PostgreSQL only
        )
        result = await self._session.execute(
            update(_AUTOPAYS)
            .where(_AUTOPAYS.c.id.in_(due.scalar_subquery()), free)
            .values(claimed_until=now + LEASE)
            .returning(*_AUTOPAYS.c)  # Core rows: no ORM object is made for a job's read
        )
        rows = result.all()
        # RETURNING keeps no order: the run takes them oldest due first.
        return [_domain(row) for row in sorted(rows, key=lambda r: (r.next_due_at, r.id))]

    async def release(self, autopay_ids: Sequence[int], claimed_at: datetime | None = None) -> None:
        """End the lease of these autopays in the caller's transaction (one UPDATE). With
        `claimed_at` (the `now` the caller gave `claim_due`), only the leases that claim took:
        one that expired and was claimed again by someone else is left to them."""
        if autopay_ids:
            ours = [] if claimed_at is None else [AutopayRow.claimed_until == claimed_at + LEASE]
            await self._session.execute(
                update(AutopayRow)
                .where(AutopayRow.id.in_(list(autopay_ids)), *ours)
                .values(claimed_until=None)
                .execution_options(synchronize_session=False)
            )

    async def lock(self, autopay_id: int, claimed_at: datetime | None = None) -> Autopay | None:
        """The autopay as stored now, its row locked FOR UPDATE on PostgreSQL until the
        transaction ends (one SELECT; on SQLite nothing: `lock_many` for a job's read that its
        writes follow). None if there is no
        such autopay — or, with `claimed_at` (the `now` the caller gave `claim_due`), if its
        lease is no longer the one that claim took (it expired and someone else claimed it)."""
        row = (
            await self._session.execute(
                select(AutopayRow)
                .where(AutopayRow.id == autopay_id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        ).scalar_one_or_none()
        if row is None or (claimed_at is not None and row.claimed_until != claimed_at + LEASE):
            return None
        return _domain(row)

    async def lock_many(
        self, autopay_ids: Sequence[int], claimed_at: datetime | None = None
    ) -> dict[int, Autopay]:
        """`lock` for many in ONE SELECT … FOR UPDATE (rows locked in id order, as every
        transaction here that locks more than one: no deadlock between two of them): the
        autopays as stored now, by id; one missing — or, with `claimed_at`, leased by another
        claim since — is left out. On SQLite the database's write lock is taken first
        (`lock_on_sqlite`): the charge run's transactions write what they read. Not for an
        update's transaction: its dialog state is written on another connection before it
        commits, and would wait for that lock."""
        if not autopay_ids:
            return {}
        await lock_on_sqlite(self._session, AutopayRow.id, sorted(set(autopay_ids)))
        rows = await self._session.execute(
            select(_AUTOPAYS)  # Core rows: no ORM object is made for a job's read
            .where(_AUTOPAYS.c.id.in_(sorted(set(autopay_ids))))
            .order_by(_AUTOPAYS.c.id)
            .with_for_update()
        )
        return {
            row.id: _domain(row)
            for row in rows
            if claimed_at is None or row.claimed_until == claimed_at + LEASE
        }

    async def save_progress(self, autopay: Autopay, *, paused: bool = False) -> None:
        """Write what a charge run decided, and nothing else, in one UPDATE: `next_due_at`,
        `skip_period`, `retry_period`, `unanswered`, `bill_id` (on issue), `drops` (by
        threshold) — and with `paused`, `status` and `paused_reason`, only if the stored
        autopay is still ACTIVE (a resident's pause or deletion stands). A DELETED autopay (by
        the resident, or forgotten by unlinking) is left as it is. The amount, limit, card,
        payer code and schedule stay as stored: a resident's change made while the run
        charged is kept."""
        values: dict[str, object] = {
            "next_due_at": autopay.next_due_at,
            "skip_period": autopay.skip_period,
            "retry_period": autopay.retry_period,
            "unanswered": autopay.unanswered,
            "bill_id": autopay.bill_id,
            "drops": autopay.drops,
        }
        if paused:
            active = AutopayRow.status == AutopayStatus.ACTIVE
            reason = autopay.paused_reason.value if autopay.paused_reason else None
            values["status"] = case((active, autopay.status.value), else_=AutopayRow.status)
            values["paused_reason"] = case((active, reason), else_=AutopayRow.paused_reason)
        await self._session.execute(
            update(AutopayRow)
            .where(AutopayRow.id == autopay.id, AutopayRow.status != AutopayStatus.DELETED)
            .values(values)
            .execution_options(synchronize_session=False)
        )

    async def save_progress_many(
        self, autopays: Sequence[Autopay], claims: Mapping[int, datetime] | None = None
    ) -> None:
        """`save_progress` (not paused) for many: one UPDATE sent once with every row's values
        (executemany: one round trip on asyncpg). With `claims` (by autopay id, the `now` given
        to `claim_due`), the lease that claim took is ended in the same UPDATE, as `release`
        would — on the rows written: a DELETED autopay's lease is `release`d by the caller."""
        if not autopays:
            return
        table = _AUTOPAYS  # Core: an executemany, not the ORM's bulk update
        leases = {i: at + LEASE for i, at in (claims or {}).items()}
        await self._session.execute(
            update(table)
            .where(table.c.id == bindparam("b_id"), table.c.status != AutopayStatus.DELETED)
            .values(
                next_due_at=bindparam("b_next_due_at"),
                skip_period=bindparam("b_skip_period"),
                retry_period=bindparam("b_retry_period"),
                unanswered=bindparam("b_unanswered"),
                bill_id=bindparam("b_bill_id"),
                drops=bindparam("b_drops"),
                # NULL never equals: a row without a claim here keeps its lease
                claimed_until=case(
                    (table.c.claimed_until == bindparam("b_lease", type_=UtcDateTime), None),
                    else_=table.c.claimed_until,
                ),
            ),
            [
                {
                    "b_id": autopay.id,
                    "b_next_due_at": autopay.next_due_at,
                    "b_skip_period": autopay.skip_period,
                    "b_retry_period": autopay.retry_period,
                    "b_unanswered": autopay.unanswered,
                    "b_bill_id": autopay.bill_id,
                    "b_drops": autopay.drops,
                    "b_lease": leases.get(autopay.id or 0),
                }
                for autopay in autopays
            ],
        )

    async def reminders_due(self, start: datetime, end: datetime, limit: int) -> list[Autopay]:
        """Up to `limit` active autopays due in [start, end) not yet reminded for that due
        moment and not being tried again (one SELECT; on PostgreSQL `SKIP LOCKED`, so two
        replicas take different ones)."""
        result = await self._session.execute(
            select(AutopayRow)
            .where(
                AutopayRow.status == AutopayStatus.ACTIVE,
                AutopayRow.next_due_at >= start,
                AutopayRow.next_due_at < end,
                AutopayRow.retry_period.is_(None),
                # On issue: the «Пришёл счёт» notice was the day-before reminder; by
                # threshold: no date to remind of.
                AutopayRow.frequency.notin_([Frequency.ON_ISSUE.value, Frequency.BELOW.value]),
                or_(
                    AutopayRow.reminded_due_at.is_(None),
                    AutopayRow.reminded_due_at != AutopayRow.next_due_at,
                ),
            )
            # By due moment: the range is read from the next_due_at index (ordered by id, the
            # planner walked the whole primary key filtering: bench/plans.py at 100k autopays).
            .order_by(AutopayRow.next_due_at, AutopayRow.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [_domain(row) for row in result.scalars()]

    async def finished_periods(self, periods: Sequence[tuple[int, str]]) -> set[tuple[int, str]]:
        """Which of these (autopay id, period) pairs have a run done for good (SUCCEEDED,
        SKIPPED, OVER_LIMIT), in one SELECT over the runs' (autopay_id, period) key."""
        if not periods:
            return set()
        rows = await self._session.execute(
            select(AutopayRunRow.autopay_id, AutopayRunRow.period).where(
                AutopayRunRow.autopay_id.in_({autopay_id for autopay_id, _ in periods}),
                AutopayRunRow.status.in_(list(FINISHED_FOR_GOOD)),
            )
        )
        wanted = set(periods)
        return {
            (row.autopay_id, row.period) for row in rows if (row.autopay_id, row.period) in wanted
        }

    async def remind(
        self, autopays: list[Autopay], reminders: list[Notification], now: datetime
    ) -> int:
        """Write `reminders` to the outbox (one INSERT … ON CONFLICT DO NOTHING: a dedupe key
        already there is skipped) and mark `autopays` reminded for their due moment (one
        UPDATE). Returns how many reminders were new."""
        # the outbox's own insert: one statement, a dedupe key already there skipped
        written = await SqlNotificationRepository(self._session).add_all_once(reminders, now)
        if autopays:
            await self._session.execute(
                update(AutopayRow)
                .where(AutopayRow.id.in_([autopay.id for autopay in autopays]))
                .values(reminded_due_at=AutopayRow.next_due_at)
                .execution_options(synchronize_session=False)
            )
        return written

    # --- runs ---------------------------------------------------------------------------

    async def run_for(self, autopay_id: int, period: str, key: str, now: datetime) -> AutopayRun:
        """The run of this period: created once (unique autopay + period), then found."""
        dialect = self._session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        await self._session.execute(
            insert(AutopayRunRow)
            .values(
                autopay_id=autopay_id,
                period=period,
                key=key,
                status=RunStatus.STARTED,
                attempts=0,
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["autopay_id", "period"])
        )
        row = (
            await self._session.execute(
                select(AutopayRunRow)
                .where(AutopayRunRow.autopay_id == autopay_id, AutopayRunRow.period == period)
                .execution_options(populate_existing=True)
            )
        ).scalar_one()
        return _run(row)

    async def runs_for(
        self,
        periods: Sequence[tuple[int, str, str]],
        now: datetime,
        *,
        first_amounts: Mapping[int, int] | None = None,
    ) -> tuple[dict[int, AutopayRun], set[int]]:
        """`run_for` for many (autopay id, period, first key): the runs by autopay id (an
        autopay appears once), and the ids of those made here. One INSERT … ON CONFLICT
        (autopay_id, period) DO NOTHING RETURNING, which returns the runs it made; the runs
        already there (tried before: rare) are read with one SELECT more. With `first_amounts`
        (kopecks, by autopay id) a run made here is made as its first attempt of that amount
        (attempts 1, the key on record): the charge that follows needs no second write of the
        row. Sent as an executemany (SQLAlchemy pages it into INSERT … VALUES … RETURNING):
        compiled once and cached, where a VALUES list built here would be compiled anew for
        each length."""
        if not periods:
            return {}, set()
        dialect = self._session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        table = _RUNS
        amounts = first_amounts or {}
        values: list[dict[str, Any]] = [
            {
                "autopay_id": autopay_id,
                "period": period,
                "key": key,
                "status": RunStatus.STARTED,
                "attempts": 0 if amounts.get(autopay_id) is None else 1,
                "amount": amounts.get(autopay_id),
                "created_at": now,
                "updated_at": now,
            }
            for autopay_id, period, key in periods
        ]
        made = await self._session.execute(
            insert(table)
            .on_conflict_do_nothing(index_elements=["autopay_id", "period"])
            .returning(table.c.id, table.c.autopay_id),
            values,
        )
        ids: dict[int, int] = {row.autopay_id: row.id for row in made}
        runs = {
            autopay_id: AutopayRun(
                id=ids[autopay_id],
                autopay_id=autopay_id,
                period=period,
                key=key,
                status=RunStatus.STARTED,
                attempts=0 if amounts.get(autopay_id) is None else 1,
                amount=amounts.get(autopay_id),
                stored=(
                    RunStatus.STARTED,
                    key,
                    0 if amounts.get(autopay_id) is None else 1,
                ),
            )
            for autopay_id, period, key in periods
            if autopay_id in ids
        }
        found = [(autopay_id, period) for autopay_id, period, _ in periods if autopay_id not in ids]
        if found:
            rows = await self._session.execute(
                select(table).where(table.c.autopay_id.in_([autopay_id for autopay_id, _ in found]))
            )
            wanted = set(found)
            runs.update(
                (row.autopay_id, _run(row))
                for row in rows
                if (row.autopay_id, row.period) in wanted
            )
        return runs, set(ids)

    async def save_runs(self, runs: Sequence[AutopayRun], now: datetime) -> None:
        """`save_run` for many: one UPDATE sent once with every run's values (executemany)."""
        if not runs:
            return
        table = cast(Table, AutopayRunRow.__table__)  # Core: an executemany, not the ORM's
        await self._session.execute(
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .values(
                key=bindparam("b_key"),
                status=bindparam("b_status"),
                attempts=bindparam("b_attempts"),
                amount=bindparam("b_amount"),
                failure=bindparam("b_failure"),
                updated_at=now,
            ),
            [
                {
                    "b_id": run.id,
                    "b_key": run.key,
                    "b_status": run.status,
                    "b_attempts": run.attempts,
                    "b_amount": run.amount,
                    "b_failure": run.failure,
                }
                for run in runs
            ],
        )

    async def run_of(self, autopay_id: int, period: str) -> AutopayRun | None:
        """The run of this period if there is one (nothing is created)."""
        row = (
            await self._session.execute(
                select(AutopayRunRow)
                .where(AutopayRunRow.autopay_id == autopay_id, AutopayRunRow.period == period)
                .execution_options(populate_existing=True)
            )
        ).scalar_one_or_none()
        return None if row is None else _run(row)

    async def save_run(self, run: AutopayRun, now: datetime) -> bool:
        """The run's values written over the version it was read as (`AutopayRun.stored`:
        status, key and attempts; None: whatever is stored). One UPDATE. Returns whether it
        was written: False when another writer recorded the run meanwhile."""
        statement = update(AutopayRunRow).where(AutopayRunRow.id == run.id)
        if run.stored is not None:
            status, key, attempts = run.stored
            statement = statement.where(
                AutopayRunRow.status == status,
                AutopayRunRow.key == key,
                AutopayRunRow.attempts == attempts,
            )
        result = await self._session.execute(
            statement.values(
                key=run.key,
                status=run.status,
                attempts=run.attempts,
                amount=run.amount,
                failure=run.failure,
                updated_at=now,
            ).execution_options(synchronize_session=False)
        )
        written = getattr(result, "rowcount", 0) == 1
        if written:
            run.as_stored()
        return written

    async def lock_runs(self, run_ids: Sequence[int]) -> dict[int, AutopayRun]:
        """The runs as stored now, by id, their rows locked FOR UPDATE in id order until the
        transaction ends (one SELECT; on SQLite the caller holds the write lock already:
        `lock_many`). For a job that holds their autopays' locks (taken first, the order
        every transaction here locks them in)."""
        if not run_ids:
            return {}
        rows = await self._session.execute(
            select(_RUNS)
            .where(_RUNS.c.id.in_(sorted(set(run_ids))))
            .order_by(_RUNS.c.id)
            .with_for_update()
        )
        return {row.id: _run(row) for row in rows}

    async def runs(self, autopay_id: int) -> list[AutopayRun]:
        result = await self._session.execute(
            select(AutopayRunRow)
            .where(AutopayRunRow.autopay_id == autopay_id)
            .order_by(AutopayRunRow.id)
        )
        return [_run(row) for row in result.scalars()]

    async def started_runs(
        self,
        now: datetime,
        updated_before: datetime | None,
        telegram_user_id: int | None = None,
        *,
        updated_after: datetime | None = None,
        leased_too: bool = False,
    ) -> list[tuple[Autopay, AutopayRun]]:
        """Runs whose key was recorded (STARTED, attempts ≥ 1) and whose outcome was not, last
        written before `updated_before` (None: whenever) and after `updated_after` (None:
        whenever), of autopays nobody leases at `now` (`leased_too`: leased or not)
        (no scheduler is sending them), with their autopays as stored — of one resident
        (`telegram_user_id`), else of every linked one (anonymous autopays left out: nobody to
        ask the city for).
        One SELECT, oldest run first; the runs are read from the partial index over STARTED
        ones (`ix_autopay_runs_started`, 0017), the autopays by primary key. Nothing locked."""
        user = (
            AutopayRow.telegram_user_id == telegram_user_id
            if telegram_user_id is not None
            else AutopayRow.telegram_user_id != ANONYMOUS
        )
        result = await self._session.execute(
            select(AutopayRow, AutopayRunRow)
            .join(AutopayRow, AutopayRow.id == AutopayRunRow.autopay_id)
            .where(
                STARTED_RUN_OF_JOIN,  # the partial index's predicate (`STARTED_RUN`), qualified
                AutopayRunRow.attempts >= 1,
                *([] if updated_before is None else [AutopayRunRow.updated_at < updated_before]),
                *([] if updated_after is None else [AutopayRunRow.updated_at > updated_after]),
                *(
                    []
                    if leased_too
                    else [or_(AutopayRow.claimed_until.is_(None), AutopayRow.claimed_until < now)]
                ),
                user,
            )
            .order_by(AutopayRunRow.id)
            .execution_options(populate_existing=True)
        )
        return [(_domain(autopay), _run(run)) for autopay, run in result.all()]

    async def lock_started(
        self,
        autopay_id: int,
        run_id: int,
        now: datetime,
        updated_before: datetime | None,
        *,
        leased_too: bool = False,
    ) -> tuple[Autopay, AutopayRun] | None:
        """The autopay's row locked first, then its run's (the order every transaction here
        takes them in), both as stored now, until the transaction ends (on SQLite the
        database's write lock is taken first, `lock_on_sqlite`). None if either is gone, the
        autopay is leased at `now` (a scheduler has claimed it; `leased_too`: asked anyway),
        or the run was written since `updated_before` (a scheduler took it up meanwhile; None:
        not asked)."""
        await lock_on_sqlite(self._session, AutopayRow.id, [autopay_id])
        stored = (
            await self._session.execute(
                select(AutopayRow)
                .where(AutopayRow.id == autopay_id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        ).scalar_one_or_none()
        if stored is None:
            return None
        if not leased_too and stored.claimed_until is not None and stored.claimed_until >= now:
            return None
        row = (
            await self._session.execute(
                select(AutopayRunRow)
                .where(AutopayRunRow.id == run_id, AutopayRunRow.autopay_id == autopay_id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        ).scalar_one_or_none()
        if row is None or (updated_before is not None and row.updated_at >= updated_before):
            return None
        return _domain(stored), _run(row)

    async def forget(self, telegram_user_id: int) -> None:
        """Unlinking: every autopay of the resident becomes an anonymous DELETED record (so a
        tick that loaded one earlier cannot bring it back, and its runs — period, key, amount:
        what was charged — keep their autopay's kind, fund or service); the Telegram user, the
        card id and the payer code are gone."""
        await self._session.execute(
            update(AutopayRow)
            .where(AutopayRow.telegram_user_id == telegram_user_id)
            .values(
                telegram_user_id=ANONYMOUS,
                status=AutopayStatus.DELETED,
                method_id="",
                payer_code=None,
                bill_id=None,
                topup_account=None,
                claimed_until=None,
            )
            .execution_options(synchronize_session=False)
        )


class SqlNotificationSettings:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def muted(self, telegram_user_id: int) -> set[str]:
        row = await self._session.get(NotificationSettingsRow, telegram_user_id)
        return set(row.muted) if row else set()

    async def set_muted(self, telegram_user_id: int, kinds: set[str]) -> None:
        row = await self._session.get(NotificationSettingsRow, telegram_user_id)
        if row is None:
            self._session.add(
                NotificationSettingsRow(telegram_user_id=telegram_user_id, muted=sorted(kinds))
            )
        else:
            row.muted = sorted(kinds)
        await self._session.flush()

    async def quiet_hours(self, telegram_user_id: int) -> QuietHours:
        row = await self._session.get(NotificationSettingsRow, telegram_user_id)
        return QuietHours(row.quiet_start, row.quiet_end) if row else DEFAULT_QUIET

    async def set_quiet_hours(self, telegram_user_id: int, quiet: QuietHours) -> None:
        row = await self._session.get(NotificationSettingsRow, telegram_user_id)
        if row is None:
            row = NotificationSettingsRow(telegram_user_id=telegram_user_id, muted=[])
            self._session.add(row)
        row.quiet_start, row.quiet_end = quiet.start, quiet.end
        await self._session.flush()

    async def forget(self, telegram_user_id: int) -> None:
        await self._session.execute(
            delete(NotificationSettingsRow).where(
                NotificationSettingsRow.telegram_user_id == telegram_user_id
            )
        )


def _fill(row: AutopayRow, autopay: Autopay) -> None:
    row.kind = autopay.kind.value
    row.frequency = autopay.schedule.frequency.value
    row.day = autopay.schedule.day
    row.method_id = autopay.method_id
    row.amount = autopay.amount
    row.limit = autopay.limit
    row.fund_id = autopay.fund_id
    row.fund_name = autopay.fund_name
    row.bill_kind = autopay.bill_kind.value if autopay.bill_kind else None
    row.payer_code = autopay.payer_code
    row.status = autopay.status.value
    row.next_due_at = autopay.next_due_at
    row.skip_period = autopay.skip_period
    row.retry_period = autopay.retry_period
    row.paused_reason = autopay.paused_reason.value if autopay.paused_reason else None
    row.unanswered = autopay.unanswered
    row.bill_id = autopay.bill_id
    row.topup_service = autopay.topup_service
    row.topup_account = autopay.topup_account
    row.threshold = autopay.threshold
    row.drops = autopay.drops


def _domain(row: AutopayRow | Row[Any]) -> Autopay:
    # By key from a Core row's mapping: a Row's attribute access was 8× slower (30 µs an
    # autopay, read three times a charge: `bench/autopay.py`).
    m = row._mapping if isinstance(row, Row) else {c: getattr(row, c) for c in _COLUMNS}
    return Autopay(
        id=m["id"],
        telegram_user_id=m["telegram_user_id"],
        kind=AutopayKind(m["kind"]),
        schedule=Schedule(Frequency(m["frequency"]), m["day"]),
        method_id=m["method_id"],
        next_due_at=m["next_due_at"],
        amount=m["amount"],
        limit=m["limit"],
        fund_id=m["fund_id"],
        fund_name=m["fund_name"],
        bill_kind=BillKind(m["bill_kind"]) if m["bill_kind"] else None,
        payer_code=m["payer_code"],
        status=AutopayStatus(m["status"]),
        skip_period=m["skip_period"],
        retry_period=m["retry_period"],
        paused_reason=PauseReason(m["paused_reason"]) if m["paused_reason"] else None,
        unanswered=m["unanswered"] or 0,
        bill_id=m["bill_id"],
        topup_service=m["topup_service"],
        topup_account=m["topup_account"],
        threshold=m["threshold"],
        drops=m["drops"] or 0,
    )


_COLUMNS = [column.key for column in _AUTOPAYS.c]


def _run(row: AutopayRunRow | Row[Any]) -> AutopayRun:
    m = row._mapping if isinstance(row, Row) else {c: getattr(row, c) for c in _RUN_COLUMNS}
    return AutopayRun(
        id=m["id"],
        autopay_id=m["autopay_id"],
        period=m["period"],
        key=m["key"],
        status=RunStatus(m["status"]),
        attempts=m["attempts"],
        amount=m["amount"],
        failure=m["failure"],
        stored=(RunStatus(m["status"]), m["key"], m["attempts"]),
    )


_RUN_COLUMNS = [column.key for column in cast(Table, AutopayRunRow.__table__).c]
