"""report drafts, tracked reports, notifications outbox

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 23:52:35.327701
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.types

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("telegram_user_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("dedupe_key", sa.String(length=128), nullable=False),
        sa.Column("urgent", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("due_at", storage.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", storage.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", storage.types.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_notifications_dedupe_key")),
    )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_notifications_due_at"), ["due_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_notifications_status"), ["status"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_notifications_telegram_user_id"), ["telegram_user_id"], unique=False
        )

    op.create_table(
        "report_drafts",
        sa.Column("telegram_user_id", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("updated_at", storage.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("telegram_user_id", name=op.f("pk_report_drafts")),
    )
    op.create_table(
        "tracked_reports",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("telegram_user_id", sa.BigInteger(), nullable=False),
        sa.Column("report_id", sa.String(length=64), nullable=False),
        sa.Column("last_update_id", sa.String(length=64), nullable=True),
        sa.Column("closed", sa.Boolean(), nullable=False),
        sa.Column("own", sa.Boolean(), nullable=False),
        sa.Column("created_at", storage.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracked_reports")),
        sa.UniqueConstraint(
            "telegram_user_id", "report_id", name=op.f("uq_tracked_reports_telegram_user_id")
        ),
    )
    with op.batch_alter_table("tracked_reports", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tracked_reports_closed"), ["closed"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_tracked_reports_report_id"), ["report_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_tracked_reports_telegram_user_id"), ["telegram_user_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("tracked_reports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tracked_reports_telegram_user_id"))
        batch_op.drop_index(batch_op.f("ix_tracked_reports_report_id"))
        batch_op.drop_index(batch_op.f("ix_tracked_reports_closed"))

    op.drop_table("tracked_reports")
    op.drop_table("report_drafts")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notifications_telegram_user_id"))
        batch_op.drop_index(batch_op.f("ix_notifications_status"))
        batch_op.drop_index(batch_op.f("ix_notifications_due_at"))

    op.drop_table("notifications")
