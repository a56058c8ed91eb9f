"""Repositories against real SQLite and PostgreSQL: tokens at rest, rotation, atomic claims."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.accounts import AccountLevel, CityProfile, Resident, TokenSet
from domain.linking_state import LinkAttempt, LinkStatus
from storage.database import create_sessionmaker
from storage.token_cipher import TokenCipher
from storage.uow import UnitOfWorkFactory

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]
ACCESS = "access-token-SECRET-abcdef0123456789"
REFRESH = "refresh-token-SECRET-abcdef0123456789"


def resident(user_id: int = 501) -> Resident:
    return Resident(
        telegram_user_id=user_id,
        chat_id=user_id,
        city_account_id="C-100003",
        account_level=AccountLevel.FULL,
        masked_name="Мария И.",
        tokens=TokenSet(ACCESS, REFRESH, NOW + timedelta(hours=1)),
        linked_at=NOW,
    )


def factory(engine: AsyncEngine, *keys: str) -> UnitOfWorkFactory:
    return UnitOfWorkFactory(create_sessionmaker(engine), TokenCipher(list(keys)))


async def test_resident_round_trip_with_aware_datetimes(engine: AsyncEngine) -> None:
    uow_factory = factory(engine, TokenCipher.generate_key())
    async with uow_factory() as uow:
        await uow.residents.save(resident())
        await uow.commit()
    async with uow_factory() as uow:
        loaded = await uow.residents.get(501)
    assert loaded == resident()
    assert loaded is not None and loaded.linked_at.tzinfo is not None


async def test_tokens_are_encrypted_at_rest(engine: AsyncEngine) -> None:
    async with factory(engine, TokenCipher.generate_key())() as uow:
        await uow.residents.save(resident())
        await uow.commit()
    async with engine.connect() as connection:
        row = (await connection.execute(text("SELECT * FROM residents"))).mappings().one()
    raw = " ".join(
        value.decode("latin-1") if isinstance(value, bytes) else str(value)
        for value in row.values()
    )
    assert "SECRET" not in raw
    assert ACCESS not in raw and REFRESH not in raw
    assert row["access_token_enc"]  # but something is stored


async def test_rotation_with_two_keys_reads_old_rows(engine: AsyncEngine) -> None:
    old, new = TokenCipher.generate_key(), TokenCipher.generate_key()
    async with factory(engine, old)() as uow:
        await uow.residents.save(resident())
        await uow.commit()
    async with factory(engine, new, old)() as uow:  # new key first, old still readable
        loaded = await uow.residents.get(501)
        assert loaded is not None and loaded.tokens.refresh_token == REFRESH
        await uow.residents.save(loaded)  # written again: now under the new key
        await uow.commit()
    async with factory(engine, new)() as uow:  # the old key can be dropped
        again = await uow.residents.get(501)
    assert again is not None and again.tokens.access_token == ACCESS
    with pytest.raises(ValueError, match="not configured"):
        async with factory(engine, TokenCipher.generate_key())() as uow:
            unreadable = await uow.residents.get(501)  # tokens decrypted when first read
            assert unreadable is not None
            unreadable.tokens.access_token  # noqa: B018 - the read is the point


async def test_delete_forgets_the_resident(engine: AsyncEngine) -> None:
    uow_factory = factory(engine, TokenCipher.generate_key())
    async with uow_factory() as uow:
        await uow.residents.save(resident())
        await uow.commit()
    async with uow_factory() as uow:
        await uow.residents.delete(501)
        await uow.commit()
    async with engine.connect() as connection:
        count = (await connection.execute(text("SELECT count(*) FROM residents"))).scalar()
    assert count == 0


async def test_uncommitted_work_is_rolled_back(engine: AsyncEngine) -> None:
    uow_factory = factory(engine, TokenCipher.generate_key())
    async with uow_factory() as uow:
        await uow.residents.save(resident())
    async with uow_factory() as uow:
        assert await uow.residents.get(501) is None


async def test_link_attempt_is_claimed_once_and_keeps_secrets_encrypted(
    engine: AsyncEngine,
) -> None:
    uow_factory = factory(engine, TokenCipher.generate_key())
    attempt = LinkAttempt(
        state_hash="a" * 64,
        telegram_user_id=7,
        chat_id=7,
        code_verifier="v" * 64,
        created_at=NOW,
        expires_at=NOW + timedelta(minutes=10),
    )
    async with uow_factory() as uow:
        await uow.link_attempts.add(attempt)
        await uow.commit()

    async with uow_factory() as first, uow_factory() as second:
        one = await first.link_attempts.by_state("a" * 64)
        two = await second.link_attempts.by_state("a" * 64)
        assert one is not None and two is not None
        one.status = LinkStatus.AUTHORIZED
        one.tokens = TokenSet(ACCESS, REFRESH, NOW)
        one.profile = CityProfile("C-1", "Иванова Мария Петровна", AccountLevel.FULL)
        one.nonce_hash = "n" * 64
        assert await first.link_attempts.advance(one, expected_status=LinkStatus.PENDING)
        await first.commit()
        two.status = LinkStatus.FAILED
        assert not await second.link_attempts.advance(two, expected_status=LinkStatus.PENDING)

    async with uow_factory() as uow:
        loaded = await uow.link_attempts.by_nonce("n" * 64)
    assert loaded is not None and loaded.status is LinkStatus.AUTHORIZED
    assert loaded.tokens == TokenSet(ACCESS, REFRESH, NOW)
    assert loaded.profile is not None and loaded.profile.full_name == "Иванова Мария Петровна"
    async with engine.connect() as connection:
        blob = (await connection.execute(text("SELECT secret_enc FROM link_attempts"))).scalar()
    assert blob is not None and b"SECRET" not in bytes(blob) and "Иванова".encode() not in blob


async def test_production_refuses_an_unmigrated_database(engine: AsyncEngine) -> None:
    from storage.migrate import NotMigrated, downgrade, ensure_migrated

    await ensure_migrated(engine)  # at head: fine
    await downgrade(engine, "base")
    with pytest.raises(NotMigrated, match="python -m bot migrate"):
        await ensure_migrated(engine)
    async with engine.begin() as connection:
        await connection.execute(text("DROP TABLE alembic_version"))
    with pytest.raises(NotMigrated, match="at revision none"):  # never migrated at all
        await ensure_migrated(engine)


def test_the_head_read_from_the_revision_files_is_alembics() -> None:
    from alembic.script import ScriptDirectory

    from storage.migrate import alembic_config, head_revision

    assert head_revision() == ScriptDirectory.from_config(alembic_config()).get_current_head()


def test_two_heads_are_refused(tmp_path: Path) -> None:
    from storage.migrate import head_revision

    (tmp_path / "a.py").write_text('revision = "a"\ndown_revision = None\n')
    (tmp_path / "b.py").write_text('revision = "b"\ndown_revision = "a"\n')
    assert head_revision(tmp_path) == "b"
    (tmp_path / "c.py").write_text('revision = "c"\ndown_revision = "a"\n')
    with pytest.raises(RuntimeError, match="one head"):
        head_revision(tmp_path)


def test_checking_the_revision_does_not_import_alembic(tmp_path: Path) -> None:
    """A production replica checks its database's revision without loading Alembic, mako and
    pygments (11.5 MB and ~90 ms at every start)."""
    database = tmp_path / "bot.db"
    script = (
        "import asyncio, sys\n"
        "from storage.database import create_engine\n"
        "from storage.migrate import ensure_migrated\n"
        "async def main():\n"
        f"    engine = create_engine('sqlite+aiosqlite:///{database}')\n"
        "    try:\n"
        "        await ensure_migrated(engine)\n"
        "    finally:\n"
        "        await engine.dispose()\n"
        "asyncio.run(main())\n"
        "heavy = ('alembic', 'mako', 'pygments')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    asyncio.run(_migrated(database))
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


async def _migrated(database: Path) -> None:
    from storage.database import create_engine
    from storage.migrate import upgrade

    engine = create_engine(f"sqlite+aiosqlite:///{database}")
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()
