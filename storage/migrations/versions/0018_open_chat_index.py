"""notifications: a partial index over the open rows by chat and id

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-30 13:20:00.000000

`ix_notifications_open_chat` indexes the waiting and sending rows by chat and id: the outbox
claim leaves out a row while an older row of its chat is being sent or is due first (a chat's
notifications arrive in order, also with two replicas), asking this index for each candidate
instead of the chat's whole history, whose bulk is sent rows.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

OPEN = "status IN ('pending', 'sending')"


def upgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index(
            "ix_notifications_open_chat",
            ["telegram_user_id", "id"],
            unique=False,
            postgresql_where=sa.text(OPEN),
            sqlite_where=sa.text(OPEN),
        )


def downgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_notifications_open_chat")
