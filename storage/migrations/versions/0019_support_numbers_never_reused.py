"""support_topics: on SQLite, AUTOINCREMENT, so a support number is never given again

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-30 22:10:00.000000

A resident's support number («Мария В. · #42», /resident 42, «Житель #42» in a refund event)
is the topic row's id. On SQLite an INTEGER PRIMARY KEY without AUTOINCREMENT takes the
highest id plus one, so the number of the newest topic, deleted when its resident unlinked,
went to the next resident who wrote: two «#1» topics, and /resident 1 naming another person
(review 27). The table is made again with AUTOINCREMENT (SQLite keeps the highest id ever
used in `sqlite_sequence`). PostgreSQL's sequence never gives an id twice: nothing changes
there.
"""

from __future__ import annotations

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table(
        "support_topics", recreate="always", table_kwargs={"sqlite_autoincrement": True}
    ):
        pass


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("support_topics", recreate="always"):
        pass
