"""Linking a city account: OAuth 2.0 authorization code with PKCE, bound to one Telegram user.

The flow has three steps so that a login link forwarded to someone else cannot link their city
account to the sender's Telegram:

1. `start_link` — the resident asks to link; we make `state` and a PKCE verifier, keep their
   hashes/values bound to the resident's Telegram user, and return the city's login URL.
2. `authorize_link` — the city redirects the browser to our callback with `code` and `state`;
   we claim the attempt (single use), exchange the code with the verifier and keep the tokens
   with a fresh one-time `nonce` that the callback page hands back to Telegram as a deep link.
3. `confirm_link` — the deep link (/start link-<nonce>) arrives in the chat; only the Telegram
   user who started the attempt can finish it. Then the resident is stored.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import replace
from datetime import datetime, timedelta

from domain.accounts import Resident, TokenSet, mask_name
from domain.autopaying import cancel_all
from domain.errors import (
    DomainError,
    InvalidGrant,
    LinkCodeRejected,
    LinkStateExpired,
    LinkStateInvalid,
    LinkStateUsed,
    LinkWrongUser,
)
from domain.linking_state import LinkAttempt, LinkStatus, secret_hash
from domain.ports import CityApi, CityAuth, UnitOfWork

LINK_TTL = timedelta(minutes=10)
NONCE_PREFIX = "link-"


class StaticSession:
    """A city session with tokens that are not (yet) stored anywhere: used while linking."""

    def __init__(self, tokens: TokenSet) -> None:
        self._tokens = tokens

    @property
    def access_token(self) -> str:
        return self._tokens.access_token

    async def refresh(self) -> None:
        raise InvalidGrant("fresh tokens were refused")


def pkce_challenge(verifier: str) -> str:
    """RFC 7636 S256: BASE64URL(SHA256(verifier)) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


async def start_link(
    uow: UnitOfWork, auth: CityAuth, *, telegram_user_id: int, chat_id: int, now: datetime
) -> str:
    """Record a new attempt and return the city's login URL for it."""
    state = secrets.token_urlsafe(24)
    verifier = secrets.token_urlsafe(64)  # 86 characters: within RFC 7636's 43..128
    await uow.link_attempts.add(
        LinkAttempt(
            state_hash=secret_hash(state),
            telegram_user_id=telegram_user_id,
            chat_id=chat_id,
            code_verifier=verifier,
            created_at=now,
            expires_at=now + LINK_TTL,
        )
    )
    return auth.authorization_url(state=state, code_challenge=pkce_challenge(verifier))


async def authorize_link(
    uow: UnitOfWork, auth: CityAuth, city: CityApi, *, state: str, code: str, now: datetime
) -> str:
    """Handle the city's callback. Returns the one-time nonce for the Telegram deep link.

    The attempt is claimed before the code is exchanged, so a state works once even when the
    exchange fails; the caller commits in both cases.
    """
    attempt = await uow.link_attempts.by_state(secret_hash(state))
    if attempt is None:
        raise LinkStateInvalid()
    if attempt.status is not LinkStatus.PENDING:
        raise LinkStateUsed()
    if now >= attempt.expires_at:
        attempt.status = LinkStatus.FAILED
        await uow.link_attempts.save(attempt)
        raise LinkStateExpired()

    claimed = replace(attempt, status=LinkStatus.FAILED)
    if not await uow.link_attempts.advance(claimed, expected_status=LinkStatus.PENDING):
        raise LinkStateUsed()
    try:
        tokens = await auth.exchange_code(code=code, code_verifier=attempt.code_verifier)
    except InvalidGrant as exc:
        raise LinkCodeRejected() from exc
    profile = await city.profile(StaticSession(tokens))

    nonce = secrets.token_urlsafe(18)
    claimed.status = LinkStatus.AUTHORIZED
    claimed.nonce_hash = secret_hash(nonce)
    claimed.tokens = tokens
    claimed.profile = profile
    claimed.expires_at = now + LINK_TTL
    await uow.link_attempts.save(claimed)
    return NONCE_PREFIX + nonce


async def confirm_link(
    uow: UnitOfWork,
    auth: CityAuth,
    *,
    nonce: str,
    telegram_user_id: int,
    chat_id: int,
    now: datetime,
) -> Resident:
    """Finish linking from the chat: only the Telegram user who started it may finish it."""
    raw = nonce.removeprefix(NONCE_PREFIX)
    attempt = await uow.link_attempts.by_nonce(secret_hash(raw))
    if attempt is None:
        raise LinkStateInvalid()
    if attempt.status is not LinkStatus.AUTHORIZED:
        raise LinkStateUsed()
    tokens, profile = attempt.tokens, attempt.profile
    if tokens is None or profile is None:  # cannot happen for an authorized attempt
        raise LinkStateInvalid()
    if now >= attempt.expires_at or attempt.telegram_user_id != telegram_user_id:
        # A link in the wrong hands is burnt: the tokens are revoked and forgotten.
        attempt.status = LinkStatus.FAILED
        attempt.tokens = None
        await uow.link_attempts.save(attempt)
        await _revoke_quietly(auth, tokens)
        if attempt.telegram_user_id != telegram_user_id:
            raise LinkWrongUser()
        raise LinkStateExpired()

    attempt.status = LinkStatus.COMPLETED
    attempt.tokens = None
    await uow.link_attempts.save(attempt)
    previous = await uow.residents.get(telegram_user_id)
    if previous is not None and previous.tokens.refresh_token != tokens.refresh_token:
        await _revoke_quietly(auth, previous.tokens)
    resident = Resident(
        telegram_user_id=telegram_user_id,
        chat_id=chat_id,
        city_account_id=profile.account_id,
        account_level=profile.level,
        masked_name=mask_name(profile.full_name),
        tokens=tokens,
        linked_at=now,
    )
    await uow.residents.save(resident)
    return resident


async def unlink(uow: UnitOfWork, auth: CityAuth, resident: Resident) -> bool:
    """Revoke the tokens at the city and delete everything stored about the resident; their
    autopays are cancelled (DELETED), so linking again never resumes an old charge.

    Returns whether the city confirmed the revocation; the local data is deleted either way,
    because a resident who asks to be forgotten must be forgotten even when the city is down.
    The caller commits.
    """
    revoked = await _revoke_quietly(auth, resident.tokens)
    await cancel_all(uow, resident.telegram_user_id)
    await uow.residents.delete(resident.telegram_user_id)
    return revoked


async def _revoke_quietly(auth: CityAuth, tokens: TokenSet) -> bool:
    try:
        await auth.revoke(tokens.refresh_token)
    except DomainError:
        return False
    return True
