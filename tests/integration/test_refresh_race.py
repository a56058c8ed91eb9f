"""A refused token refresh unlinks the resident only when the refused tokens are still the
stored ones. Two holders of the same resident's tokens — an update and the autopay job, two
replicas, a charge under way while the resident links again — meet an expired access token;
a city that rotates refresh tokens refuses the second refresh (its refresh token is spent).
That second holder takes the tokens the first one stored instead of forgetting the link.
Real databases (SQLite and PostgreSQL); the city's OAuth is a stand-in that rotates."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.accounts import AccountLevel, Resident, TokenSet
from domain.errors import InvalidGrant, RelinkRequired
from domain.sessions import ResidentSession
from storage.database import create_sessionmaker
from storage.token_cipher import TokenCipher
from storage.uow import UnitOfWorkFactory

USER = 42
LATER = datetime(2026, 12, 1, tzinfo=UTC)


class RotatingAuth:
    """The city's token endpoint as OAuth 2.0 Security BCP has it: every refresh returns a
    new refresh token and spends the one given; a spent or revoked one is refused for good."""

    def __init__(self, valid: set[str]) -> None:
        self.valid = set(valid)
        self.issued = 0

    def authorization_url(self, *, state: str, code_challenge: str) -> str:
        raise AssertionError("not used")

    async def exchange_code(self, *, code: str, code_verifier: str) -> TokenSet:
        raise AssertionError("not used")

    async def refresh(self, refresh_token: str) -> TokenSet:
        if refresh_token not in self.valid:
            raise InvalidGrant("refresh token spent or revoked")
        self.valid.discard(refresh_token)
        self.issued += 1
        fresh = TokenSet(f"access-{self.issued}", f"refresh-{self.issued}", LATER)
        self.valid.add(fresh.refresh_token)
        return fresh

    async def revoke(self, token: str) -> None:
        self.valid.discard(token)


def resident(tokens: TokenSet) -> Resident:
    return Resident(USER, USER, "C-100003", AccountLevel.FULL, "Мария В.", tokens, LATER)


async def stored(factory: UnitOfWorkFactory) -> Resident | None:
    async with factory() as uow:
        return await uow.residents.get(USER)


@pytest.fixture
async def factory(engine: AsyncEngine) -> UnitOfWorkFactory:
    factory = UnitOfWorkFactory(
        create_sessionmaker(engine), TokenCipher([TokenCipher.generate_key()])
    )
    async with factory() as uow:
        await uow.residents.save(resident(TokenSet("stale", "refresh-0", LATER)))
        await uow.commit()
    return factory


async def test_the_second_of_two_refreshes_takes_the_first_ones_tokens(
    factory: UnitOfWorkFactory,
) -> None:
    auth = RotatingAuth({"refresh-0"})
    async with factory() as first_uow, factory() as second_uow:
        first_resident, second_resident = await stored(factory), await stored(factory)
        assert first_resident is not None and second_resident is not None
        first = ResidentSession(first_resident, auth, first_uow)
        second = ResidentSession(second_resident, auth, second_uow)
        await first.refresh()  # rotates: refresh-0 is spent, refresh-1 stored and committed
        await second.refresh()  # refresh-0 refused: takes refresh-1 instead of unlinking
        assert second.access_token == first.access_token == "access-1"
    kept = await stored(factory)
    assert kept is not None and kept.tokens.refresh_token == "refresh-1"  # still linked
    assert auth.issued == 1


async def test_a_charge_under_way_while_the_resident_links_again_keeps_the_new_link(
    factory: UnitOfWorkFactory,
) -> None:
    auth = RotatingAuth({"refresh-0"})
    async with factory() as uow:
        old = await stored(factory)
        assert old is not None
        session = ResidentSession(old, auth, uow)  # holds refresh-0
        # the resident links again: the old tokens revoked, the new link stored
        await auth.revoke("refresh-0")
        auth.valid.add("refresh-new")
        async with factory() as link:
            await link.residents.save(resident(TokenSet("access-new", "refresh-new", LATER)))
            await link.commit()
        await session.refresh()  # refresh-0 refused: the new link's tokens are taken
        assert session.access_token == "access-new"
    kept = await stored(factory)
    assert kept is not None and kept.tokens.refresh_token == "refresh-new"


async def test_tokens_refused_for_good_still_unlink(factory: UnitOfWorkFactory) -> None:
    auth = RotatingAuth(set())  # consent withdrawn: nothing is accepted
    async with factory() as uow:
        current = await stored(factory)
        assert current is not None
        with pytest.raises(RelinkRequired):
            await ResidentSession(current, auth, uow).refresh()
    assert await stored(factory) is None  # forgotten: every screen offers linking again


async def test_a_resident_unlinked_meanwhile_is_not_brought_back(
    factory: UnitOfWorkFactory,
) -> None:
    auth = RotatingAuth(set())
    async with factory() as uow:
        current = await stored(factory)
        assert current is not None
        session = ResidentSession(current, auth, uow)
        async with factory() as unlink:
            await unlink.residents.delete(USER)
            await unlink.commit()
        with pytest.raises(RelinkRequired):
            await session.refresh()
    assert await stored(factory) is None
