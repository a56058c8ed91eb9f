"""indexes for the retention purges

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 03:00:00.000000

The hourly retention purge deleted sent notifications older than 90 days and dialog state not
written for 30 days by reading the whole `notifications` and `fsm_state` tables (bench/plans.py
at production size: a sequential scan of 1M notifications). `ix_notifications_status_sent_at`
and `ix_fsm_state_updated_at` let each read only what it deletes.
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index(
            "ix_notifications_status_sent_at", ["status", "sent_at"], unique=False
        )
    with op.batch_alter_table("fsm_state", schema=None) as batch_op:
        batch_op.create_index("ix_fsm_state_updated_at", ["updated_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("fsm_state", schema=None) as batch_op:
        batch_op.drop_index("ix_fsm_state_updated_at")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_notifications_status_sent_at")
