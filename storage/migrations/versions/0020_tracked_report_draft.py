"""tracked_reports: the draft whose send made the report

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-01 07:30:00.000000

`draft_id` names the report draft (`Draft.draft_id`, kept in the draft's JSON) whose send
made the followed report. When the screen that showed a send's result was lost (a 429, a
dropped connection, the bot blocked), the review left on screen finds its draft gone; the
report its send made is found by this name and its number told (review 35e). Rows followed
before are left NULL: they are told as before, without the number.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tracked_reports", schema=None) as batch_op:
        batch_op.add_column(sa.Column("draft_id", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tracked_reports", schema=None) as batch_op:
        batch_op.drop_column("draft_id")
