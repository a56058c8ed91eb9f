"""Link attempts repository; the tokens and profile an attempt holds are stored encrypted."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import ColumnElement, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.accounts import AccountLevel, CityProfile, TokenSet
from domain.linking_state import LinkAttempt, LinkStatus
from storage.models import LinkAttemptRow
from storage.token_cipher import TokenCipher


class SqlLinkAttemptRepository:
    def __init__(self, session: AsyncSession, cipher: TokenCipher) -> None:
        self._session = session
        self._cipher = cipher

    async def add(self, attempt: LinkAttempt) -> None:
        row = LinkAttemptRow(
            state_hash=attempt.state_hash,
            telegram_user_id=attempt.telegram_user_id,
            chat_id=attempt.chat_id,
            code_verifier=attempt.code_verifier,
            created_at=attempt.created_at,
        )
        self._fill(row, attempt)
        self._session.add(row)
        await self._session.flush()
        attempt.id = row.id

    async def by_state(self, state_hash: str) -> LinkAttempt | None:
        return await self._one(LinkAttemptRow.state_hash == state_hash)

    async def by_nonce(self, nonce_hash: str) -> LinkAttempt | None:
        return await self._one(LinkAttemptRow.nonce_hash == nonce_hash)

    async def save(self, attempt: LinkAttempt) -> None:
        row = await self._session.get(LinkAttemptRow, attempt.id)
        if row is None:
            raise LookupError(f"link attempt {attempt.id} is gone")
        self._fill(row, attempt)
        await self._session.flush()

    async def advance(self, attempt: LinkAttempt, expected_status: str) -> bool:
        values = self._values(attempt)
        result = await self._session.execute(
            update(LinkAttemptRow)
            .where(LinkAttemptRow.id == attempt.id, LinkAttemptRow.status == expected_status)
            .values(**values)
            .execution_options(synchronize_session="fetch")
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    async def delete_expired(self, before: datetime) -> list[TokenSet]:
        """Delete attempts that expired before `before`; returns the tokens the deleted ones
        still held (an authorized login never confirmed), for the caller to revoke."""
        return await self._delete(LinkAttemptRow.expires_at < before)

    async def forget(self, telegram_user_id: int) -> list[TokenSet]:
        """Delete every attempt of this Telegram user (unlinking); returns the tokens the
        deleted ones still held, for the caller to revoke."""
        return await self._delete(LinkAttemptRow.telegram_user_id == telegram_user_id)

    async def _delete(self, condition: ColumnElement[bool]) -> list[TokenSet]:
        result = await self._session.execute(
            select(LinkAttemptRow).where(condition, LinkAttemptRow.secret_enc.is_not(None))
        )
        tokens = [
            attempt.tokens
            for attempt in map(self._to_domain, result.scalars())
            if attempt.tokens is not None
        ]
        await self._session.execute(
            delete(LinkAttemptRow).where(condition).execution_options(synchronize_session=False)
        )
        return tokens

    async def _one(self, condition: ColumnElement[bool]) -> LinkAttempt | None:
        result = await self._session.execute(select(LinkAttemptRow).where(condition))
        row = result.scalar_one_or_none()
        return None if row is None else self._to_domain(row)

    def _values(self, attempt: LinkAttempt) -> dict[str, object]:
        secret = None
        if attempt.tokens is not None and attempt.profile is not None:
            secret = self._cipher.encrypt(
                json.dumps(
                    {
                        "access_token": attempt.tokens.access_token,
                        "refresh_token": attempt.tokens.refresh_token,
                        "expires_at": attempt.tokens.expires_at.isoformat(),
                        "account_id": attempt.profile.account_id,
                        "full_name": attempt.profile.full_name,
                        "level": attempt.profile.level.value,
                    }
                )
            )
        return {
            "status": attempt.status.value,
            "nonce_hash": attempt.nonce_hash,
            "expires_at": attempt.expires_at,
            "secret_enc": secret,
        }

    def _fill(self, row: LinkAttemptRow, attempt: LinkAttempt) -> None:
        for name, value in self._values(attempt).items():
            setattr(row, name, value)

    def _to_domain(self, row: LinkAttemptRow) -> LinkAttempt:
        tokens = profile = None
        if row.secret_enc is not None:
            secret = json.loads(self._cipher.decrypt(row.secret_enc))
            tokens = TokenSet(
                access_token=secret["access_token"],
                refresh_token=secret["refresh_token"],
                expires_at=datetime.fromisoformat(secret["expires_at"]),
            )
            profile = CityProfile(
                account_id=secret["account_id"],
                full_name=secret["full_name"],
                level=AccountLevel(secret["level"]),
            )
        return LinkAttempt(
            id=row.id,
            state_hash=row.state_hash,
            nonce_hash=row.nonce_hash,
            telegram_user_id=row.telegram_user_id,
            chat_id=row.chat_id,
            code_verifier=row.code_verifier,
            status=LinkStatus(row.status),
            tokens=tokens,
            profile=profile,
            created_at=row.created_at,
            expires_at=row.expires_at,
        )
