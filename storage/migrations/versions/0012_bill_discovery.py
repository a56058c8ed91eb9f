"""bill discovery and autopay «по выставленному счёту»

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 05:00:00.000000

- `bill_watches`: residents whose bills were scanned once (the bills found then are the
  baseline: no «Пришёл счёт» for them);
- `known_bills`: every bill discovery has seen per resident (unique resident + bill: two
  schedulers write it once), with the on-issue autopay it is queued for;
- `autopays.bill_id`: the discovered bill an on-issue autopay is to pay now.

Data: every BILL autopay becomes «по выставленному счёту» (frequency `on_issue`, day 0). One
with a period still being tried keeps it and its due moment, so that period's run is
finished with its own key: `retry_period` set (declined yesterday, or the city did not
answer), or a run of its current period STARTED (a charge in flight when the old bot
stopped: its key may be at the city; `retry_period` is set to that period). The others wait
for the next bill discovered (`next_due_at` 2100-01-01, the domain's IDLE).
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

import storage.types

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

IDLE = datetime(2100, 1, 1, tzinfo=UTC)
MOSCOW = ZoneInfo("Europe/Moscow")


def _period_of(frequency: str, due: datetime) -> str:
    """The period a scheduled charge due at `due` pays (domain.autopay.Schedule.period_of as
    of 0011): '2026-W48' weekly, '2026-11' otherwise."""
    day = due.astimezone(MOSCOW).date()
    if frequency == "weekly":
        iso = day.isocalendar()
        return f"{iso.year}-W{iso.week:02d}"
    return f"{day.year}-{day.month:02d}"


def upgrade() -> None:
    op.create_table(
        "bill_watches",
        sa.Column("telegram_user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("created_at", storage.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("telegram_user_id", name=op.f("pk_bill_watches")),
    )
    op.create_table(
        "known_bills",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("telegram_user_id", sa.BigInteger(), nullable=False),
        sa.Column("bill_id", sa.Text(), nullable=False),
        sa.Column("autopay_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", storage.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_known_bills")),
        sa.UniqueConstraint(
            "telegram_user_id", "bill_id", name=op.f("uq_known_bills_telegram_user_id")
        ),
    )
    op.create_index(op.f("ix_known_bills_autopay_id"), "known_bills", ["autopay_id"], unique=False)
    with op.batch_alter_table("autopays", schema=None) as batch_op:
        batch_op.add_column(sa.Column("bill_id", sa.Text(), nullable=True))

    autopays = sa.table(
        "autopays",
        sa.column("id", sa.BigInteger()),
        sa.column("kind", sa.String()),
        sa.column("frequency", sa.String()),
        sa.column("day", sa.Integer()),
        sa.column("retry_period", sa.String()),
        sa.column("skip_period", sa.String()),
        sa.column("next_due_at", storage.types.UtcDateTime(timezone=True)),
    )
    runs = sa.table(
        "autopay_runs",
        sa.column("autopay_id", sa.BigInteger()),
        sa.column("period", sa.String()),
        sa.column("status", sa.String()),
    )
    bind = op.get_bind()
    in_flight = bind.execute(
        sa.select(autopays.c.id, autopays.c.frequency, autopays.c.next_due_at, runs.c.period)
        .select_from(autopays.join(runs, runs.c.autopay_id == autopays.c.id))
        .where(
            autopays.c.kind == "bill",
            autopays.c.retry_period.is_(None),
            runs.c.status == "started",
        )
    ).all()
    for autopay_id, frequency, due, period in in_flight:
        if period == _period_of(frequency, due):  # its current period's charge, in flight
            bind.execute(
                autopays.update().where(autopays.c.id == autopay_id).values(retry_period=period)
            )
    op.execute(
        autopays.update()
        .where(autopays.c.kind == "bill", autopays.c.retry_period.is_(None))
        .values(next_due_at=IDLE, skip_period=None)
    )
    op.execute(
        autopays.update().where(autopays.c.kind == "bill").values(frequency="on_issue", day=0)
    )


def downgrade() -> None:
    # On-issue autopays go back to a schedule: monthly on the 1st, from their next due moment.
    autopays = sa.table(
        "autopays",
        sa.column("frequency", sa.String()),
        sa.column("day", sa.Integer()),
    )
    op.execute(
        autopays.update()
        .where(autopays.c.frequency == "on_issue")
        .values(frequency="monthly", day=1)
    )
    with op.batch_alter_table("autopays", schema=None) as batch_op:
        batch_op.drop_column("bill_id")
    op.drop_index(op.f("ix_known_bills_autopay_id"), table_name="known_bills")
    op.drop_table("known_bills")
    op.drop_table("bill_watches")
