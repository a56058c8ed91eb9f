"""A resident's tokens are decrypted when a city call reads them, not with every update."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from domain.accounts import AccountLevel, Resident, TokenSet
from storage.database import create_sessionmaker
from storage.token_cipher import TokenCipher
from storage.uow import UnitOfWorkFactory

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TOKENS = TokenSet("access-1", "refresh-1", NOW + timedelta(hours=1))


class CountingCipher(TokenCipher):
    def __init__(self, keys: list[str]) -> None:
        super().__init__(keys)
        self.decrypted = 0

    def decrypt(self, blob: bytes) -> str:
        self.decrypted += 1
        return super().decrypt(blob)


def test_sealed_tokens_are_revealed_once_each_on_first_read() -> None:
    revealed: list[bytes] = []

    def reveal(sealed: bytes) -> str:
        revealed.append(sealed)
        return sealed.decode().upper()

    tokens = TokenSet.sealed(b"access", b"refresh", NOW, reveal)
    assert revealed == [] and tokens.expires_at == NOW
    assert tokens.access_token == "ACCESS"
    assert tokens.access_token == "ACCESS"
    assert revealed == [b"access"]
    assert tokens.refresh_token == "REFRESH"
    assert revealed == [b"access", b"refresh"]
    assert tokens == TokenSet("ACCESS", "REFRESH", NOW) == tokens
    assert tokens != TokenSet("ACCESS", "other", NOW)
    assert "ACCESS" not in repr(tokens)
    assert replace(TokenSet("a", "r", NOW), refresh_token="x").refresh_token == "x"


async def test_a_loaded_resident_decrypts_nothing_until_its_tokens_are_read(
    engine: AsyncEngine,
) -> None:
    cipher = CountingCipher([TokenCipher.generate_key()])
    factory = UnitOfWorkFactory(create_sessionmaker(engine), cipher)
    resident = Resident(
        telegram_user_id=7,
        chat_id=7,
        city_account_id="C-7",
        account_level=AccountLevel.FULL,
        masked_name="Мария И.",
        tokens=TOKENS,
        linked_at=NOW,
    )
    async with factory() as uow:
        await uow.residents.save(resident)
        await uow.commit()
    async with factory() as uow:
        loaded = await uow.residents.get(7)
    assert loaded is not None and loaded.city_account_id == "C-7"
    assert cipher.decrypted == 0
    assert loaded.tokens.access_token == "access-1"
    assert cipher.decrypted == 1
    assert loaded.tokens.refresh_token == "refresh-1" and cipher.decrypted == 2
    assert loaded == resident  # equal to what was saved, tokens and all
