"""the platform's ids, names and reasons without a length limit

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 03:20:00.000000

The contract sets no length on a fund's, a card's or a payment's id, a fund's name, an
account's id, a refusal's reason or a resident's first name, but these columns were VARCHAR(32)
or (64) or (255): on PostgreSQL a longer one failed the payment, the autopay set-up or the link
(«value too long for type character varying»). They become TEXT.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

WIDENED = {
    "payment_intents": {"method_id": 64, "payment_id": 64, "failure": 32, "fund_id": 32},
    "autopays": {"method_id": 64, "fund_id": 32, "fund_name": 255},
    "residents": {"city_account_id": 64, "masked_name": 64},
}


def upgrade() -> None:
    for table, columns in WIDENED.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column, length in columns.items():
                batch_op.alter_column(
                    column, existing_type=sa.String(length=length), type_=sa.Text()
                )


def downgrade() -> None:
    for table, columns in WIDENED.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column, length in columns.items():
                batch_op.alter_column(
                    column, existing_type=sa.Text(), type_=sa.String(length=length)
                )
