"""Residents repository: maps rows to domain residents, encrypting tokens on the way in."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from domain.accounts import AccountLevel, Resident, TokenSet
from storage.database import lock_on_sqlite
from storage.models import ResidentRow
from storage.token_cipher import TokenCipher

# `peek`'s statement, built once (building it per call, an ORM comparison and a select, was
# a fifth of the lookup's CPU in the updates benchmark's profile)
_PEEK = select(*ResidentRow.__table__.c).where(
    ResidentRow.__table__.c.telegram_user_id == bindparam("telegram_user_id")
)


class SqlResidentRepository:
    def __init__(
        self, session: AsyncSession, cipher: TokenCipher, reader: AsyncEngine | None = None
    ) -> None:
        self._session = session
        self._cipher = cipher
        self._reader = reader  # an autocommit view of the session's engine (`peek`), or None

    async def get(self, telegram_user_id: int) -> Resident | None:
        row = await self._row(telegram_user_id)
        return None if row is None else self._to_domain(row)

    async def peek(self, telegram_user_id: int) -> Resident | None:
        """The resident as committed now, read outside the unit of work's transaction: one
        SELECT on a pooled connection in autocommit (`reader`), so an update whose handler
        never touches the database costs one round trip, not BEGIN, SELECT and the end of
        the transaction (three). Under READ COMMITTED (PostgreSQL's default, ours) every
        statement sees what was committed when it began, so this reads what the first
        statement of the transaction would have. Without a reader (SQLite) it is `get`.

        For the update's start only (the middleware): a read that must stay in the
        transaction — after a lock, before a write — is `get`."""
        if self._reader is None:
            return await self.get(telegram_user_id)
        async with self._reader.connect() as connection:
            result = await connection.execute(_PEEK, {"telegram_user_id": telegram_user_id})
            row = result.first()
        return None if row is None else self._to_domain(row)

    async def get_many(self, telegram_user_ids: Sequence[int]) -> dict[int, Resident]:
        """The linked residents among these users, by user id (one SELECT)."""
        if not telegram_user_ids:
            return {}
        result = await self._session.execute(
            select(ResidentRow).where(ResidentRow.telegram_user_id.in_(set(telegram_user_ids)))
        )
        return {row.telegram_user_id: self._to_domain(row) for row in result.scalars()}

    async def save(self, resident: Resident) -> None:
        now = datetime.now(UTC)
        row = await self._row(resident.telegram_user_id)
        if row is None:
            row = ResidentRow(telegram_user_id=resident.telegram_user_id, created_at=now)
            self._session.add(row)
        row.chat_id = resident.chat_id
        row.city_account_id = resident.city_account_id
        row.account_level = resident.account_level.value
        row.masked_name = resident.masked_name
        row.access_token_enc = self._cipher.encrypt(resident.tokens.access_token)
        row.refresh_token_enc = self._cipher.encrypt(resident.tokens.refresh_token)
        row.token_expires_at = resident.tokens.expires_at
        row.locale = resident.locale
        row.linked_at = resident.linked_at
        row.updated_at = now
        await self._session.flush()

    async def accounts(self, after: int, limit: int) -> list[tuple[int, str]]:
        result = await self._session.execute(
            select(ResidentRow.telegram_user_id, ResidentRow.city_account_id)
            .where(ResidentRow.telegram_user_id > after)
            .order_by(ResidentRow.telegram_user_id)
            .limit(limit)
        )
        return [(user_id, account_id) for user_id, account_id in result.all()]

    async def delete(self, telegram_user_id: int) -> None:
        await self._session.execute(
            delete(ResidentRow).where(ResidentRow.telegram_user_id == telegram_user_id)
        )

    async def lock(self, telegram_user_id: int, *, writing: bool = False) -> None:
        """Lock the resident's row until the transaction ends (one SELECT … FOR UPDATE on
        PostgreSQL). On SQLite, which has no row locks and begins a transaction only at the
        first write, nothing — unless `writing`: then the database's write lock is taken first
        (`lock_on_sqlite`), so what is read next stays until the commit. Only for a caller that
        writes and commits at once (a token refresh): an update's dialog state is written on
        another connection before the update commits, and would wait for that lock."""
        if writing:
            await lock_on_sqlite(self._session, ResidentRow.telegram_user_id, [telegram_user_id])
        await self._session.execute(
            select(ResidentRow.telegram_user_id)
            .where(ResidentRow.telegram_user_id == telegram_user_id)
            .with_for_update()
        )

    async def _row(self, telegram_user_id: int) -> ResidentRow | None:
        # As stored now, even if the session still holds the row from an earlier read (its
        # objects outlive commits: expire_on_commit=False): a re-read under a lock must not
        # see a relink or a refresh made meanwhile as it was before them.
        result = await self._session.execute(
            select(ResidentRow)
            .where(ResidentRow.telegram_user_id == telegram_user_id)
            .execution_options(populate_existing=True)
        )
        return result.scalar_one_or_none()

    def _to_domain(self, row: Any) -> Resident:
        """From a `ResidentRow` or a Core row of its columns (`peek`): the same names."""
        return Resident(
            telegram_user_id=row.telegram_user_id,
            chat_id=row.chat_id,
            city_account_id=row.city_account_id,
            account_level=AccountLevel(row.account_level),
            masked_name=row.masked_name,
            # Decrypted when read (a city call), not with every update's resident. Never kept
            # across updates: another replica may rotate the refresh token meanwhile, and a
            # stale one would be spent (the city refuses a refresh token used twice).
            tokens=TokenSet.sealed(
                row.access_token_enc,
                row.refresh_token_enc,
                row.token_expires_at,
                self._cipher.decrypt,
            ),
            linked_at=row.linked_at,
            locale=row.locale,
        )
