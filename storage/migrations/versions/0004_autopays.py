"""autopays

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 00:13:30.540588
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.types

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "autopay_runs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("autopay_id", sa.BigInteger(), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=True),
        sa.Column("failure", sa.String(length=32), nullable=True),
        sa.Column("created_at", storage.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", storage.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_autopay_runs")),
        sa.UniqueConstraint("autopay_id", "period", name=op.f("uq_autopay_runs_autopay_id")),
    )
    with op.batch_alter_table("autopay_runs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_autopay_runs_autopay_id"), ["autopay_id"], unique=False
        )

    op.create_table(
        "autopays",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("telegram_user_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("frequency", sa.String(length=16), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("method_id", sa.String(length=64), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=True),
        sa.Column("limit", sa.BigInteger(), nullable=True),
        sa.Column("fund_id", sa.String(length=32), nullable=True),
        sa.Column("fund_name", sa.String(length=255), nullable=True),
        sa.Column("bill_kind", sa.String(length=32), nullable=True),
        sa.Column("payer_code", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("next_due_at", storage.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("skip_period", sa.String(length=16), nullable=True),
        sa.Column("retry_period", sa.String(length=16), nullable=True),
        sa.Column("claimed_until", storage.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("created_at", storage.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_autopays")),
    )
    with op.batch_alter_table("autopays", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_autopays_next_due_at"), ["next_due_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_autopays_status"), ["status"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_autopays_telegram_user_id"), ["telegram_user_id"], unique=False
        )

    op.create_table(
        "notification_settings",
        sa.Column("telegram_user_id", sa.BigInteger(), nullable=False),
        sa.Column("muted", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("telegram_user_id", name=op.f("pk_notification_settings")),
    )


def downgrade() -> None:
    op.drop_table("notification_settings")
    with op.batch_alter_table("autopays", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_autopays_telegram_user_id"))
        batch_op.drop_index(batch_op.f("ix_autopays_status"))
        batch_op.drop_index(batch_op.f("ix_autopays_next_due_at"))

    op.drop_table("autopays")
    with op.batch_alter_table("autopay_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_autopay_runs_autopay_id"))

    op.drop_table("autopay_runs")
