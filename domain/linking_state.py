"""A link attempt: the short-lived record that ties an OAuth login to one Telegram user."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from domain.accounts import CityProfile, TokenSet


class LinkStatus(StrEnum):
    PENDING = "pending"  # login link sent, waiting for the city's callback
    AUTHORIZED = "authorized"  # the city said yes; waiting for the same Telegram user to confirm
    COMPLETED = "completed"
    FAILED = "failed"


def secret_hash(secret: str) -> str:
    """States and nonces are bearer secrets: only their hashes are stored."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(slots=True)
class LinkAttempt:
    state_hash: str
    telegram_user_id: int
    chat_id: int
    code_verifier: str
    created_at: datetime
    expires_at: datetime
    status: LinkStatus = LinkStatus.PENDING
    nonce_hash: str | None = None
    tokens: TokenSet | None = None
    profile: CityProfile | None = None
    id: int | None = None
