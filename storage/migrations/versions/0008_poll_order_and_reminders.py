"""report poll order and reminders written once

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 23:50:00.000000

`tracked_reports.checked_at` is when the status poll last asked the city about a report (until
then, when following began; existing rows start from `created_at`); a partial index over the
open reports serves the poll's order (least recently checked first), so every open report
comes round in turn however many there are.

`autopays.reminded_due_at` is the due moment the «tomorrow» reminder was written for: the
reminder step takes only autopays not yet reminded for their due moment, so a tick writes
only the new reminders (their dedupe keys still guard against a second one).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.types

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tracked_reports", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("checked_at", storage.types.UtcDateTime(timezone=True), nullable=True)
        )
    op.execute("UPDATE tracked_reports SET checked_at = created_at")
    with op.batch_alter_table("tracked_reports", schema=None) as batch_op:
        batch_op.alter_column(
            "checked_at", existing_type=storage.types.UtcDateTime(timezone=True), nullable=False
        )
        batch_op.create_index(
            "ix_tracked_reports_open_checked",
            ["checked_at", "id"],
            unique=False,
            postgresql_where=sa.text("NOT closed"),
            sqlite_where=sa.text("NOT closed"),
        )
    with op.batch_alter_table("autopays", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("reminded_due_at", storage.types.UtcDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("autopays", schema=None) as batch_op:
        batch_op.drop_column("reminded_due_at")
    with op.batch_alter_table("tracked_reports", schema=None) as batch_op:
        batch_op.drop_index("ix_tracked_reports_open_checked")
        batch_op.drop_column("checked_at")
