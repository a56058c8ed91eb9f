"""Applying Alembic migrations from code (`python -m bot migrate`, embedded start-up, tests)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

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


# One PostgreSQL advisory lock for migrating: replicas that run `migrate` at once take turns
# (the second finds the schema at head and does nothing) instead of racing to create one type.
MIGRATION_LOCK = 0x6D6F7372  # "mosr"


class DatabaseUnreachable(RuntimeError):
    """The database of DATABASE_URL does not answer or refuses us (said without its password)."""


async def reachable(engine: AsyncEngine) -> None:
    """Connect once; raises DatabaseUnreachable, naming the database (no password) and the
    reason in one line, when that fails — the refused port, the unknown host or database."""
    try:
        async with engine.connect():
            pass
    except (OSError, DBAPIError, TimeoutError) as error:
        cause = getattr(error, "orig", None) or error
        reason = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        where = engine.url.render_as_string(hide_password=True)
        raise DatabaseUnreachable(
            f"cannot reach the database {where} (DATABASE_URL): {reason}"
        ) from None


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Migrate to `revision` (in one transaction, under `MIGRATION_LOCK` on PostgreSQL).
    Raises DatabaseUnreachable, or NotMigrated when the database is at a revision this code
    does not know (a newer release migrated it)."""
    from alembic import command

    def run(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    await reachable(engine)
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK}
            )
        _check_known(await _current(connection))
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


def known_revisions(versions: Path = MIGRATIONS / "versions") -> set[str]:
    """Every revision this code's migrations name (their `revision = "…"` lines)."""
    return {
        value
        for path in sorted(versions.glob("*.py"))
        for name, value in _REVISION.findall(path.read_text(encoding="utf-8"))
        if name == "revision"
    }


def _check_known(revision: str | None) -> None:
    if revision is not None and revision not in known_revisions():
        raise NotMigrated(
            f"the database is at revision {revision}, which this release does not know: a newer "
            "release migrated it; run that release (or downgrade the database with it first)"
        )


async def _current(connection: AsyncConnection) -> str | None:
    """The database's revision; None when it was never migrated (no alembic_version)."""
    if not await connection.run_sync(lambda sync: inspect(sync).has_table("alembic_version")):
        return None
    revision: str | None = (
        await connection.execute(text("SELECT version_num FROM alembic_version"))
    ).scalar()
    return revision


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
    """Raises NotMigrated unless the database is at the code's head revision (saying which way
    it differs: `migrate` helps only a database behind the code), DatabaseUnreachable when it
    does not answer."""
    head = head_revision()
    await reachable(engine)
    async with engine.connect() as connection:
        revision = await _current(connection)
    _check_known(revision)
    if revision != head:
        raise NotMigrated(
            f"the database is at revision {revision or 'none'}, the code needs {head}: "
            "run `python -m bot migrate`"
        )
