"""payment intents

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 23:20:45.540423
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.types

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payment_intents",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("telegram_user_id", sa.BigInteger(), nullable=False),
        sa.Column("bill_ids", sa.JSON(), nullable=False),
        sa.Column("requisites", sa.JSON(), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("method_id", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("payment_id", sa.String(length=64), nullable=True),
        sa.Column("failure", sa.String(length=32), nullable=True),
        sa.Column("confirmation_url", sa.String(length=512), nullable=True),
        sa.Column("card_last4", sa.String(length=4), nullable=True),
        sa.Column("external_charge_id", sa.String(length=128), nullable=True),
        sa.Column("fund_id", sa.String(length=32), nullable=True),
        sa.Column("receipt", sa.JSON(), nullable=True),
        sa.Column("created_at", storage.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", storage.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_intents")),
        sa.UniqueConstraint("key", name=op.f("uq_payment_intents_key")),
    )
    with op.batch_alter_table("payment_intents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payment_intents_status"), ["status"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_payment_intents_telegram_user_id"), ["telegram_user_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_payment_intents_updated_at"), ["updated_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("payment_intents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payment_intents_updated_at"))
        batch_op.drop_index(batch_op.f("ix_payment_intents_telegram_user_id"))
        batch_op.drop_index(batch_op.f("ix_payment_intents_status"))

    op.drop_table("payment_intents")
