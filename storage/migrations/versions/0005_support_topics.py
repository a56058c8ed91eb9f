"""support topics

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 00:26:15.260268
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.types

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "support_dashboards",
        sa.Column("chat_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("thread_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", storage.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("chat_id", name=op.f("pk_support_dashboards")),
    )
    op.create_table(
        "support_topics",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("telegram_user_id", sa.BigInteger(), nullable=False),
        sa.Column("thread_id", sa.BigInteger(), nullable=True),
        sa.Column("name", sa.String(length=128), nullable=True),
        sa.Column("created_at", storage.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", storage.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_support_topics")),
        sa.UniqueConstraint("chat_id", "thread_id", name=op.f("uq_support_topics_chat_id")),
        sa.UniqueConstraint(
            "telegram_user_id", "chat_id", name=op.f("uq_support_topics_telegram_user_id")
        ),
    )


def downgrade() -> None:
    op.drop_table("support_topics")
    op.drop_table("support_dashboards")
