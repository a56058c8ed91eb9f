"""outbox: a partial index over the open notifications

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 02:00:00.000000

`ix_notifications_open_due` indexes the rows a sender may claim (status pending or sending) by
their due time: the claim (`UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED LIMIT n)`)
reads its candidates from it instead of from the whole table, whose bulk is sent rows.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

OPEN = "status IN ('pending', 'sending')"


def upgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index(
            "ix_notifications_open_due",
            ["due_at"],
            unique=False,
            postgresql_where=sa.text(OPEN),
            sqlite_where=sa.text(OPEN),
        )


def downgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_notifications_open_due")
