"""quiet hours a resident sets in «Настройки»

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 05:00:00.000000

Quiet hours were global (22:00–09:00 Moscow time) and invisible. Each resident's settings row
gets them as two minutes-of-the-day columns (equal ends: off); existing rows, and residents
without a row, keep 22:00–09:00.

The outbox's rows get `held` (NULL: judged by the resident's hours; true: held by the hours in
force when written, which the resident changed since; false: sent alone, a digest with it was
refused) and `send_by` (a notice offering to stop a charge is never held past it). Both are
nullable without a default: adding them rewrites nothing.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.types

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notification_settings", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("quiet_start", sa.Integer(), server_default="1320", nullable=False)
        )
        batch_op.add_column(
            sa.Column("quiet_end", sa.Integer(), server_default="540", nullable=False)
        )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("held", sa.Boolean(), nullable=True))
        batch_op.add_column(
            sa.Column("send_by", storage.types.UtcDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_column("send_by")
        batch_op.drop_column("held")
    with op.batch_alter_table("notification_settings", schema=None) as batch_op:
        batch_op.drop_column("quiet_end")
        batch_op.drop_column("quiet_start")
