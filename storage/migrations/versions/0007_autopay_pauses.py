"""autopay pauses and back-off

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 12:00:00.000000

`autopays.paused_reason` says why an autopay is paused (by the resident, or by a refusal that
will not pass by itself); `autopays.unanswered` counts charges in a row the city did not answer
(the exponent of the back-off that keeps a failing autopay from the head of the queue).

Data put right on the way:
- bill autopays set up after a donation in the same visit carried the donation's fund and
  amount (only the bill is ever paid, but the fields contradicted the kind): cleared; fixed
  ones carry no service or limit;
- fixed autopays without a fund or an amount could never be charged and no screen can show
  them: removed;
- autopays of residents no longer linked (unlinked before unlinking cancelled them, or the city
  refused our tokens) must not resume by themselves on relinking: paused (`relink`);
- autopays paused before reasons existed were paused by the resident.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("autopays", schema=None) as batch_op:
        batch_op.add_column(sa.Column("paused_reason", sa.String(length=32), nullable=True))
        batch_op.add_column(
            sa.Column("unanswered", sa.Integer(), server_default="0", nullable=False)
        )
    op.execute(
        "UPDATE autopays SET fund_id = NULL, fund_name = NULL, amount = NULL WHERE kind = 'bill'"
    )
    op.execute(
        'UPDATE autopays SET bill_kind = NULL, "limit" = NULL, payer_code = NULL'
        " WHERE kind = 'fixed'"
    )
    op.execute("DELETE FROM autopays WHERE kind = 'fixed' AND (fund_id IS NULL OR amount IS NULL)")
    op.execute(
        "UPDATE autopays SET status = 'paused', paused_reason = 'relink'"
        " WHERE status IN ('active', 'paused') AND telegram_user_id NOT IN"
        " (SELECT telegram_user_id FROM residents)"
    )
    op.execute(
        "UPDATE autopays SET paused_reason = 'resident'"
        " WHERE status = 'paused' AND paused_reason IS NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("autopays", schema=None) as batch_op:
        batch_op.drop_column("unanswered")
        batch_op.drop_column("paused_reason")
