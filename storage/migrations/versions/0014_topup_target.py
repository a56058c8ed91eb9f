"""a payment intent may top up an account at a city service

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30 05:00:00.000000

«Пополнить «Тройку»» and «Пополнить парковочный счёт» are payments whose target is an account
at a city service (`domain.payable.TopupTarget`: the service's code and the account). An intent
keeps its target in one of its target columns; `topup` is the new one, JSON
`{"service": ..., "account": ...}`, NULL for bills, requisites and donations.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("payment_intents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("topup", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("payment_intents", schema=None) as batch_op:
        batch_op.drop_column("topup")
