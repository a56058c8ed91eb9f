"""Applying Alembic migrations from code (`python -m bot migrate`, embedded start-up, tests)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"

# Alembic (with mako and pygments) is imported only to migrate: a production replica only checks
# the revision, and importing Alembic for that cost 11.5 MB of RSS and ~90 ms at every start.
_REVISION = re.compile(
    r"""^(down_revision|revision)\s*(?::[^=\n]*)?=\s*(?:["']([^"'\n]*)["']|None)""", re.MULTILINE
)


def alembic_config(url: str = "") -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    from alembic import command

    def run(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with engine.begin() as connection:
        await connection.run_sync(run)


async def downgrade(engine: AsyncEngine, revision: str = "base") -> None:
    from alembic import command

    def run(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, revision)

    async with engine.begin() as connection:
        await connection.run_sync(run)


class NotMigrated(RuntimeError):
    """The database is behind the code: production runs `python -m bot migrate` explicitly."""


def head_revision(versions: Path = MIGRATIONS / "versions") -> str:
    """The one revision no other revision names as its `down_revision`, read from the revision
    files' `revision = "…"` / `down_revision = "…"` lines (what Alembic's ScriptDirectory reads
    by importing them; tests/integration/test_storage.py checks the two agree). Raises
    RuntimeError unless there is exactly one head."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in sorted(versions.glob("*.py")):
        for name, value in _REVISION.findall(path.read_text(encoding="utf-8")):
            (revisions if name == "revision" else parents).add(value)
    heads = revisions - parents - {""}
    if len(heads) != 1:
        raise RuntimeError(f"expected one head revision in {versions}, found {sorted(heads)}")
    return heads.pop()


async def ensure_migrated(engine: AsyncEngine) -> None:
    """Raises NotMigrated unless the database is at the code's head revision."""
    head = head_revision()
    async with engine.connect() as connection:
        try:
            revision = (
                await connection.execute(text("SELECT version_num FROM alembic_version"))
            ).scalar()
        except (OperationalError, ProgrammingError):  # no alembic_version table: never migrated
            revision = None
    if revision != head:
        raise NotMigrated(
            f"the database is at revision {revision or 'none'}, the code needs {head}: "
            "run `python -m bot migrate`"
        )
