"""Review of 4f44165: `ResidentSession.refresh` re-reads the resident row under its lock before
saving refreshed tokens (domain/sessions.py).

Interleavings are forced with a fake `CityAuth` whose `refresh` runs a hook (another unit of
work: an update, a job or a replica linking again, unlinking or refreshing) before it answers;
never with sleeps. Real PostgreSQL (TEST_DATABASE_URL) and SQLite.

Tests marked «FINDING N» showed a broken invariant on 4f44165 (fixed since: the refresh takes
SQLite's write lock before its re-read); the others («held») probe attacks that held and must
keep passing.

Invariants: a refreshed token set is saved only over the link it was made for; a resident who
linked again keeps the new link's tokens; a resident who refreshed meanwhile is not unlinked;
the live link's refresh token is never revoked."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.accounts import AccountLevel, Resident, TokenSet
from domain.errors import InvalidGrant, RelinkRequired
from domain.sessions import ResidentSession
from storage.database import create_sessionmaker
from storage.token_cipher import TokenCipher
from storage.uow import UnitOfWorkFactory
from tests.conftest import fresh_engine

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
USER = 7


def _tokens(name: str) -> TokenSet:
    return TokenSet(f"access-{name}", f"refresh-{name}", NOW + timedelta(hours=1))


def _resident(tokens: TokenSet) -> Resident:
    return Resident(
        telegram_user_id=USER,
        chat_id=USER,
        city_account_id=f"C-{USER}",
        account_level=AccountLevel.FULL,
        masked_name="M.",
        tokens=tokens,
        linked_at=NOW,
    )


class FakeAuth:
    """A city's OAuth: `refresh` runs `meanwhile` (what another party does while the city
    answers), then answers `answer` (or refuses, InvalidGrant). `revoked` records revocations."""

    def __init__(
        self,
        answer: TokenSet | None,
        meanwhile: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.answer = answer
        self.meanwhile = meanwhile
        self.revoked: list[str] = []
        self.refreshed: list[str] = []

    def authorization_url(self, *, state: str, code_challenge: str) -> str:
        raise NotImplementedError

    async def exchange_code(self, *, code: str, code_verifier: str) -> TokenSet:
        raise NotImplementedError

    async def refresh(self, refresh_token: str) -> TokenSet:
        self.refreshed.append(refresh_token)
        if self.meanwhile is not None:
            hook, self.meanwhile = self.meanwhile, None
            await hook()
        if self.answer is None:
            raise InvalidGrant()
        return self.answer

    async def revoke(self, token: str) -> None:
        self.revoked.append(token)


@pytest.fixture(params=["postgres", "sqlite"])
async def factory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[UnitOfWorkFactory]:
    engine: AsyncEngine = await fresh_engine(request.param, tmp_path)
    made = UnitOfWorkFactory(create_sessionmaker(engine), TokenCipher([TokenCipher.generate_key()]))
    async with made() as uow:
        await uow.residents.save(_resident(_tokens("1")))
        await uow.commit()
    yield made
    await engine.dispose()


async def _stored(factory: UnitOfWorkFactory) -> Resident | None:
    async with factory() as uow:
        return await uow.residents.get(USER)


async def _relink_in(other: Any, name: str) -> None:
    resident = await other.residents.get(USER)
    assert resident is not None
    resident.tokens = _tokens(name)
    await other.residents.save(resident)
    await other.commit()


def _relink(factory: UnitOfWorkFactory, name: str) -> Callable[[], Awaitable[None]]:
    """The resident links again (or another replica refreshes: the city rotated the token):
    the stored row gets new tokens, committed."""

    async def hook() -> None:
        async with factory() as other:
            resident = await other.residents.get(USER)
            assert resident is not None
            resident.tokens = _tokens(name)
            await other.residents.save(resident)
            await other.commit()

    return hook


# ---- attacks that held -------------------------------------------------------------------


async def test_held_a_job_that_loaded_the_resident_keeps_a_relink_made_meanwhile(
    factory: UnitOfWorkFactory,
) -> None:
    """Held (suspected, did not reproduce). A job (autopay's `get_many`, autopay_runs, bill
    discovery, payments: they all load the resident with `uow.residents.get` in their own
    session) refreshes; while the city answers, the resident links again (new tokens
    committed). Suspicion: the re-read under the lock (`residents.lock`, `residents.get`)
    goes through the same session (expire_on_commit=False, no populate_existing in
    `SqlResidentRepository._row`) and would answer a cached ResidentRow with the spent
    token, saving the old link's tokens over the new link. It holds because the identity map
    is weak: `get` keeps no reference to the row (the Resident holds the sealed bytes), so
    the row is freed and the re-read loads it anew. A caller keeping an ORM row alive (none
    does today) would break it; populate_existing=True in `_row` would remove the doubt."""
    auth = FakeAuth(_tokens("fresh"), meanwhile=_relink(factory, "relinked"))
    async with factory() as uow:
        resident = await uow.residents.get(USER)  # what the jobs do
        assert resident is not None
        session = ResidentSession(resident, auth, uow)
        await session.refresh()
    stored = await _stored(factory)
    assert stored is not None
    assert stored.tokens.refresh_token == "refresh-relinked", (
        f"the new link's tokens were overwritten by the old link's: {stored.tokens}"
    )
    assert session.resident.tokens.refresh_token == "refresh-relinked"
    assert "refresh-fresh" in auth.revoked


async def test_a_job_whose_refresh_is_refused_after_another_refreshed_does_not_unlink(
    factory: UnitOfWorkFactory,
) -> None:
    """Held (same suspicion as above, the InvalidGrant path). The city rotates refresh
    tokens: an update on another replica refreshed first (refresh-1 → refresh-2, committed);
    this job's refresh with refresh-1 is refused. `refresh` re-reads the row to take the
    other's tokens — through the job's session, whose identity map still has refresh-1 — so
    would find «the same tokens», delete the resident and raise RelinkRequired, were the row
    still cached: it is not (weak identity map), the other's tokens are taken."""
    auth = FakeAuth(None, meanwhile=_relink(factory, "2"))
    async with factory() as uow:
        resident = await uow.residents.get(USER)
        assert resident is not None
        session = ResidentSession(resident, auth, uow)
        try:
            await session.refresh()
        except RelinkRequired:
            pass
    stored = await _stored(factory)
    assert stored is not None, "the resident was unlinked because two refreshes crossed"
    assert stored.tokens.refresh_token == "refresh-2"


async def test_held_an_update_that_peeked_keeps_a_relink_made_while_the_city_answered(
    factory: UnitOfWorkFactory,
) -> None:
    """Held (on PostgreSQL; on SQLite `peek` is `get`: the case above). The update's resident is
    read outside the session (`peek`), so the re-read under the lock is a real read: the
    new link's tokens are kept, the fresh ones revoked."""
    auth = FakeAuth(_tokens("fresh"), meanwhile=_relink(factory, "relinked"))
    async with factory() as uow:
        if factory.reader is None:
            pytest.skip("SQLite: peek is get (the job case above covers it)")
        resident = await uow.residents.peek(USER)
        assert resident is not None
        session = ResidentSession(resident, auth, uow)
        await session.refresh()
    stored = await _stored(factory)
    assert stored is not None and stored.tokens.refresh_token == "refresh-relinked"
    assert auth.revoked == ["refresh-fresh"]


async def test_held_unlinked_while_the_city_answered_stays_unlinked(
    factory: UnitOfWorkFactory,
) -> None:
    """Held, even with the row cached in the session: a deleted row is not found by the
    re-read, the fresh tokens are revoked and RelinkRequired raised."""

    async def unlink() -> None:
        async with factory() as other:
            await other.residents.delete(USER)
            await other.commit()

    auth = FakeAuth(_tokens("fresh"), meanwhile=unlink)
    async with factory() as uow:
        resident = await uow.residents.get(USER)
        assert resident is not None
        with pytest.raises(RelinkRequired):
            await ResidentSession(resident, auth, uow).refresh()
    assert await _stored(factory) is None
    assert auth.revoked == ["refresh-fresh"]


async def test_held_a_non_rotating_city_never_revokes_the_live_refresh_token(
    factory: UnitOfWorkFactory,
) -> None:
    """Held: a city that does not rotate (answers an empty refresh token: the spent one is
    kept) while another update refreshed meanwhile (same refresh token, new access token):
    the stored refresh token equals the spent one, the tokens are saved, nothing revoked."""

    async def other_refresh() -> None:
        async with factory() as other:
            resident = await other.residents.get(USER)
            assert resident is not None
            resident.tokens = TokenSet("access-other", "refresh-1", NOW + timedelta(hours=1))
            await other.residents.save(resident)
            await other.commit()

    answer = TokenSet("access-fresh", "", NOW + timedelta(hours=1))
    auth = FakeAuth(answer, meanwhile=other_refresh)
    async with factory() as uow:
        resident = await uow.residents.peek(USER)
        assert resident is not None
        session = ResidentSession(resident, auth, uow)
        await session.refresh()
    assert auth.revoked == []
    stored = await _stored(factory)
    assert stored is not None and stored.tokens.refresh_token == "refresh-1"
    assert session.access_token == "access-fresh"


async def test_held_a_non_rotating_city_after_a_relink_revokes_only_the_old_links_token(
    factory: UnitOfWorkFactory,
) -> None:
    """Held: the same non-rotating answer (empty refresh token) after the resident linked
    again: what is revoked is the spent refresh token of the replaced link, never the new
    link's (the check compares with the stored one)."""
    answer = TokenSet("access-fresh", "", NOW + timedelta(hours=1))
    auth = FakeAuth(answer, meanwhile=_relink(factory, "relinked"))
    async with factory() as uow:
        resident = await uow.residents.peek(USER)
        assert resident is not None
        session = ResidentSession(resident, auth, uow)
        await session.refresh()
    assert "refresh-relinked" not in auth.revoked
    assert session.resident.tokens.refresh_token == "refresh-relinked"


async def test_sqlite_a_relink_between_the_re_read_and_the_save_is_kept(
    factory: UnitOfWorkFactory,
) -> None:
    """FINDING 1 (SQLite; fixed). `SqlResidentRepository.lock` is a plain SELECT there (its
    docstring: «SQLite serialises writers anyway»), and aiosqlite begins a transaction only at
    the first write: the re-read reads outside any transaction. The resident links again
    (another connection — the OAuth callback — commits) right after the re-read and before
    the save: the save then writes the OLD link's fresh tokens over the new link; the new
    link's tokens are lost (never revoked either) and the resident runs on the link they
    replaced. `storage.database.lock_on_sqlite` (used by autopays' locks) is the project's
    own cure: a no-op UPDATE first takes SQLite's write lock. (On PostgreSQL the relink waits
    for the row lock: skipped there.)"""
    if factory.reader is not None:
        pytest.skip("PostgreSQL: the row lock makes the relink wait")
    auth = FakeAuth(_tokens("fresh"))
    waited: list[bool] = []

    async def relink_now_or_after() -> None:
        """The relink, at once if SQLite lets it write now (busy_timeout 0), else after the
        refresh ends (what a connection waiting for the write lock would do)."""
        async with factory() as other:
            await other.session.execute(text("PRAGMA busy_timeout = 0"))
            try:
                await _relink_in(other, "relinked")
            except OperationalError:
                waited.append(True)

    async with factory() as uow:
        resident = await uow.residents.get(USER)
        assert resident is not None
        real_get = uow.residents.get
        calls = 0

        async def get_then_relink(user: int) -> Resident | None:
            nonlocal calls
            calls += 1
            found = await real_get(user)
            if calls == 1:  # the re-read under the lock: another connection relinks now
                await relink_now_or_after()
            return found

        uow.residents.get = get_then_relink  # type: ignore[method-assign,assignment]
        session = ResidentSession(resident, auth, uow)
        await session.refresh()
    outcome = "the relink waited" if waited else "the relink ran in between"
    if waited:
        async with factory() as other:
            await _relink_in(other, "relinked")
    stored = await _stored(factory)
    assert stored is not None
    assert stored.tokens.refresh_token == "refresh-relinked", (
        f"the relink was overwritten by the old link's fresh tokens ({outcome})"
    )


async def test_held_the_callers_writes_are_committed_on_the_unlinked_path(
    factory: UnitOfWorkFactory,
) -> None:
    """Held as documented (domain/sessions.py's docstring): what the caller wrote before the
    city call is committed with the refresh's end, also when the resident unlinked meanwhile
    and RelinkRequired is raised — the caller's rollback then drops nothing. Probed with a
    write the unlinking does not touch (a second resident). PostgreSQL only: on SQLite the
    caller's write holds the database's write lock, so the unlinking waits (locked)."""
    if factory.reader is None:
        pytest.skip("SQLite: the caller's write blocks the other connection's unlinking")

    async def unlink() -> None:
        async with factory() as other:
            await other.residents.delete(USER)
            await other.commit()

    auth = FakeAuth(_tokens("fresh"), meanwhile=unlink)
    async with factory() as uow:
        written = _resident(_tokens("x"))
        written.telegram_user_id = written.chat_id = 8
        await uow.residents.save(written)  # the caller's write before the city call
        resident = await uow.residents.peek(USER)
        assert resident is not None
        with pytest.raises(RelinkRequired):
            await ResidentSession(resident, auth, uow).refresh()
        await uow.rollback()  # what a job's error path does
    async with factory() as uow:
        assert await uow.residents.get(8) is not None
