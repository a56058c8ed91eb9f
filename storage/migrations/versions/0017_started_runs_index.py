"""autopay runs: a partial index over the runs whose outcome is not recorded yet

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-30 10:30:00.000000

`ix_autopay_runs_started` indexes the STARTED runs (a charge maybe sent, its outcome not
recorded) by when they were last written: the reconciliation of stranded runs
(`domain.autopay_runs`, every few minutes) reads its candidates from it instead of from the
whole table, whose bulk is finished runs.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

STARTED = "status = 'started'"


def upgrade() -> None:
    with op.batch_alter_table("autopay_runs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_autopay_runs_started",
            ["updated_at"],
            unique=False,
            postgresql_where=sa.text(STARTED),
            sqlite_where=sa.text(STARTED),
        )


def downgrade() -> None:
    with op.batch_alter_table("autopay_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_autopay_runs_started")
