"""The migrations build exactly the schema storage/models.py describes, on both databases.

A fresh database is upgraded with Alembic (the `engine` fixture runs `storage.migrate.upgrade`)
and Alembic's autogenerate comparison is run against `storage.models.Base.metadata`: any
table, column, type, nullability, index, unique or foreign key that differs is drift, and is
fixed with a NEW revision (a committed one is never edited: test_migration_checksums.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.models import Base

# Types and server defaults are compared too. No filter is needed: on SQLite, UtcDateTime
# (DateTime with time zone) and JSON reflect as types Alembic counts as the same.
COMPARE = {"compare_type": True, "compare_server_default": True}


def _differences(metadata: MetaData) -> Callable[[Connection], list[Any]]:
    def compare(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts=COMPARE)
        return list(compare_metadata(context, metadata))  # alembic_version is left out

    return compare


async def test_migrations_build_the_models_schema(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        differences = await connection.run_sync(_differences(Base.metadata))
    assert differences == [], (
        f"{engine.dialect.name}: the migrations and storage/models.py disagree — add a NEW "
        f"revision (never edit a committed one) that brings the schema to the models: "
        f"{differences}"
    )


async def test_the_comparison_sees_drift(engine: AsyncEngine) -> None:
    """The comparison is not blind: a column the models have and the database lacks, and a
    column whose type differs, both show."""
    metadata = MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(metadata)
    fsm = metadata.tables["fsm_state"]
    fsm.append_column(Column("drift_probe", Integer, nullable=True))
    fsm.c.state.type = Integer()

    async with engine.connect() as connection:
        found = await connection.run_sync(_differences(metadata))
    flat = [item for diff in found for item in (diff if isinstance(diff, list) else [diff])]
    kinds = sorted(
        (item[0], item[2], item[3] if isinstance(item[3], str) else item[3].name) for item in flat
    )
    assert kinds == [
        ("add_column", "fsm_state", "drift_probe"),
        ("modify_type", "fsm_state", "state"),
    ]
