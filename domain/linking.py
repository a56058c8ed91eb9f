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
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from domain.accounts import Resident, TokenSet, mask_name
from domain.autopay_runs import settle_runs_of
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
from domain.payments import IntentStatus, outcome_of, pay, record, telegram_refund
from domain.ports import CityApi, CityAuth, CityPayments, SupportTopic, UnitOfWork
from domain.sessions import ResidentSession

LINK_TTL = timedelta(minutes=10)
NONCE_PREFIX = "link-"
# The Telegram user of records kept after unlinking (payments, autopay runs' autopays):
# nobody — Telegram user ids start at 1.
ANONYMOUS = 0
# An intent's `failure` for a Telegram charge still unregistered when its resident unlinked.
UNLINKED_UNREGISTERED = "unlinked"


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

    The attempt is claimed (and the claim committed) before the code is exchanged, so a state
    works once even when the exchange fails, and no connection or row lock is held while the
    city answers (two calls, each up to the city's deadline). An authorized attempt is
    committed here, its tokens revoked at the city if it cannot be (the database lost); the
    caller commits a refusal's outcome.
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

    # The claim lives LINK_TTL more (the two city calls take at most two deadlines, far
    # less): the retention purge deletes attempts past their expiry, and one claimed a moment
    # before it was deleted under the exchange, the tokens then refused (review 35a).
    claimed = replace(attempt, status=LinkStatus.FAILED, expires_at=now + LINK_TTL)
    if not await uow.link_attempts.advance(claimed, expected_status=LinkStatus.PENDING):
        raise LinkStateUsed()
    await uow.commit()  # the claim stands; the connection goes back before the city calls
    try:
        tokens = await auth.exchange_code(code=code, code_verifier=attempt.code_verifier)
    except InvalidGrant as exc:
        raise LinkCodeRejected() from exc
    try:
        profile = await city.profile(StaticSession(tokens))
    except BaseException:
        # Nobody will hold these tokens (the attempt is spent): revoked at once, as a link
        # burnt in the wrong hands is, rather than left a live session at the city.
        await _revoke_quietly(auth, tokens)
        raise

    nonce = secrets.token_urlsafe(18)
    claimed.status = LinkStatus.AUTHORIZED
    claimed.nonce_hash = secret_hash(nonce)
    claimed.tokens = tokens
    claimed.profile = profile
    claimed.expires_at = now + LINK_TTL
    try:
        await uow.link_attempts.save(claimed)
        await uow.commit()  # here, not by the caller: the tokens are kept or revoked
    except BaseException:
        # Not kept (the database lost, a cancel): nobody can finish this attempt, so the
        # tokens are revoked like a failed profile's, not left a live session at the city.
        await _revoke_quietly(auth, tokens)
        raise
    return NONCE_PREFIX + nonce


async def confirm_link(
    uow: UnitOfWork,
    auth: CityAuth,
    *,
    nonce: str,
    telegram_user_id: int,
    chat_id: int,
    now: datetime,
    payments: CityPayments | None = None,
) -> Resident:
    """Finish linking from the chat: only the Telegram user who started it may finish it.

    Another city account replacing the linked one (an older login finished with another
    account, or a deliberate switch) is unlinking the old one first: with `payments`, its
    payments and autopay charges the city may still settle are asked about with its tokens,
    before they are revoked (as `unlink` does), then its data is forgotten and its payment
    records made anonymous — else a payment of the old account stayed pending under the new
    one for ever, offered as «Продолжить оплату» and never settled (review 33b)."""
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
    switched = previous is not None and previous.city_account_id != profile.account_id
    if switched and previous is not None and payments is not None:
        await _settle_open(uow, auth, payments, previous, now)  # while its token works
        await settle_runs_of(uow, auth, payments, previous, now)
    if previous is not None and previous.tokens.refresh_token != tokens.refresh_token:
        await _revoke_quietly(auth, previous.tokens)
    if switched:
        await forget_account_data(uow, telegram_user_id)  # the old account's, as `unlink` does
        await uow.payment_intents.anonymise(telegram_user_id)
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


@dataclass(frozen=True, slots=True)
class Unlinked:
    """What unlinking did: whether the city confirmed the revocation, and the support topics
    forgotten (their names in the support chat still carry the masked name: make them neutral)."""

    revoked: bool
    support_topics: list[SupportTopic] = field(default_factory=list)
    refunds_owed: int = 0  # Telegram charges the city did not register: owed back (`_owe_back`)


async def unlink(
    uow: UnitOfWork,
    auth: CityAuth,
    resident: Resident,
    *,
    payments: CityPayments | None = None,
    now: datetime | None = None,
) -> Unlinked:
    """Forget the resident: every row about them is deleted or made anonymous (see README,
    «Personal data»), their tokens (and those of a login never confirmed) are revoked at the
    city, their autopays (held only by the bot) are cancelled for good.

    With `payments` and `now`, payments the city may still settle are first asked about while
    the token still works (what `reconcile` would do later, when nobody is left to ask for):
    a payment that went through is recorded as such, a Telegram charge not yet registered is
    registered — or, refused or unanswered, recorded as owed back and told to support's
    Dashboard (`_owe_back`). Autopay charges whose outcome was never recorded (a run STARTED
    with its key) are settled the same way (`autopay_runs.settle_runs_of`): one that went
    through is recorded SUCCEEDED, one refused FAILED. Whatever else stays open
    keeps its key and the city's payment id on an anonymous record, so it can still be
    matched with the city's ledger. Those answers are committed as they come; the forgetting
    itself is left to the caller's one commit.

    Local data is forgotten even when the city is down: a resident who asks to be forgotten is
    forgotten. Raises nothing of the city's.
    """
    user = resident.telegram_user_id
    owed = 0
    if payments is not None and now is not None:
        owed = await _settle_open(uow, auth, payments, resident, now)
        await settle_runs_of(uow, auth, payments, resident, now)
    revoked = await _revoke_quietly(auth, resident.tokens)
    for tokens in await uow.link_attempts.forget(user):
        await _revoke_quietly(auth, tokens)
    await forget_account_data(uow, user)
    await uow.payment_intents.anonymise(user)
    topics = await uow.support.forget(user)
    await uow.residents.delete(user)
    return Unlinked(revoked=revoked, support_topics=topics, refunds_owed=owed)


async def forget_account_data(uow: UnitOfWork, telegram_user_id: int) -> None:
    """What the bot keeps about the resident's city account (not about the person): autopays
    (cancelled for good), report drafts and followed reports, notifications and their
    settings, known bills, payment templates. `unlink` forgets it, and so does `confirm_link`
    when another city account replaces the linked one — none of it is the new account's (a
    template or an autopay of the old flat would pay nothing, or the wrong thing). One list:
    per-account data added later is forgotten on both roads. The caller commits.

    Known bills first: their baseline mark is what a bill discovery scan recording now holds
    locked, so this waits for it before anything else (the scan's notices are then deleted
    below, and the locks are taken in the scan's order: no deadlock)."""
    await uow.known_bills.forget(telegram_user_id)
    await cancel_all(uow, telegram_user_id)
    await uow.autopays.forget(telegram_user_id)
    await uow.drafts.delete(telegram_user_id)
    await uow.tracked_reports.forget(telegram_user_id)
    await uow.notifications.forget(telegram_user_id)
    await uow.notification_settings.forget(telegram_user_id)
    await uow.templates.forget(telegram_user_id)


async def purge_expired_attempts(uow: UnitOfWork, auth: CityAuth, now: datetime) -> int:
    """Retention: login attempts past their expiry are deleted (commits); tokens an abandoned
    login still held are revoked at the city. Returns how many tokens were held."""
    held = await uow.link_attempts.delete_expired(now)
    await uow.commit()
    for tokens in held:
        await _revoke_quietly(auth, tokens)
    return len(held)


async def _settle_open(
    uow: UnitOfWork, auth: CityAuth, payments: CityPayments, resident: Resident, now: datetime
) -> int:
    """`reconcile` for one resident's open intents, now, while their token still works.
    Returns how many Telegram charges are left owed back (`_owe_back`)."""
    session = ResidentSession(resident, auth, uow)
    owed = 0
    for intent in await uow.payment_intents.open_of(resident.telegram_user_id):
        assert intent.id is not None
        try:
            if intent.status is not IntentStatus.NEW:
                payment = await payments.find_payment(session, intent.key)
                if payment is not None:
                    await record(uow, intent, payment, now)
                    continue
            if intent.external_charge_id is not None:  # Telegram took money: register it
                outcome = await pay(uow, auth, payments, resident, intent.id, now)
                await telegram_refund(uow, outcome, now)
            elif intent.status is IntentStatus.SUBMITTED:  # never reached the city
                intent.status, intent.failure = IntentStatus.FAILED, "not_submitted"
                intent.updated_at = now
                await uow.payment_intents.save(intent)
                await uow.commit()
        except DomainError:
            pass  # left open: anonymous, with its key, for the city's ledger
        if intent.external_charge_id is not None:
            owed += await _owe_back(uow, intent.id, now)
    return owed


async def _owe_back(uow: UnitOfWork, intent_id: int, now: datetime) -> int:
    """A Telegram charge the city has not registered (it did not answer): once unlinked, nobody
    is left to register it for, and `reconcile` never will — so it is money owed back, recorded
    as such (FAILED, `UNLINKED_UNREGISTERED`, the charge id kept) and told to support's
    Dashboard, whose staff check the city's ledger by the key before refunding. Returns 1 when
    owed, else 0 (settled meanwhile)."""
    intent = await uow.payment_intents.get(intent_id)
    if intent is None or intent.status.final:
        return 0
    intent.status, intent.failure = IntentStatus.FAILED, UNLINKED_UNREGISTERED
    intent.updated_at = now
    await uow.payment_intents.save(intent)
    await telegram_refund(uow, outcome_of(intent), now)  # commits
    return 1


async def _revoke_quietly(auth: CityAuth, tokens: TokenSet) -> bool:
    try:
        await auth.revoke(tokens.refresh_token)
    except DomainError:
        return False
    return True
