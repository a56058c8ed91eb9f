"""top-up autopays: an autopay of kind «topup» names the service code and the account it tops
up (a «Тройка» card number, a parking phone in digits); a threshold one («когда баланс ниже»)
the balance below which it tops up (kopecks) and the drops handled so far (the current drop's
run period is «d-<drops>»: one charge per drop)

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-30 05:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("autopays") as batch:
        batch.add_column(sa.Column("topup_service", sa.String(32), nullable=True))
        batch.add_column(sa.Column("topup_account", sa.Text(), nullable=True))
        batch.add_column(sa.Column("threshold", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("drops", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("autopays") as batch:
        batch.drop_column("drops")
        batch.drop_column("threshold")
        batch.drop_column("topup_account")
        batch.drop_column("topup_service")
