"""Residents and their link to a city account."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class AccountLevel(StrEnum):
    """mos.ru account levels: упрощённая, стандартная, полная."""

    SIMPLE = "simple"
    STANDARD = "standard"
    FULL = "full"

    @classmethod
    def read(cls, value: object) -> AccountLevel:
        """The platform's level of an account; one this bot does not know is SIMPLE, the
        level that allows least — never a failed link (review 27)."""
        try:
            return cls(str(value))
        except ValueError:
            return cls.SIMPLE


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    refresh_token: str
    expires_at: datetime

    @staticmethod
    def sealed(
        access_token: bytes,
        refresh_token: bytes,
        expires_at: datetime,
        reveal: Callable[[bytes], str],
    ) -> TokenSet:
        """Tokens kept sealed (encrypted, as stored) until one is read: `reveal` turns a sealed
        token into the token, once per token, on its first read (what `reveal` raises, that
        read raises). An update that makes no city call never pays for it. Such a TokenSet
        equals a plain one with the same values; `dataclasses.replace` is for plain ones."""
        return _SealedTokenSet(access_token, refresh_token, expires_at, reveal)


class _SealedTokenSet(TokenSet):
    """A TokenSet whose two tokens are revealed on first read and then kept on the object.

    Not a dataclass of its own: its fields are not set by `__init__` but found by
    `__getattr__` (called only while the instance has no such attribute yet). Equal to a
    TokenSet with the same values, either way round."""

    def __init__(
        self,
        access_token: bytes,
        refresh_token: bytes,
        expires_at: datetime,
        reveal: Callable[[bytes], str],
    ) -> None:
        object.__setattr__(self, "expires_at", expires_at)
        object.__setattr__(
            self, "_sealed", {"access_token": access_token, "refresh_token": refresh_token}
        )
        object.__setattr__(self, "_reveal", reveal)

    def __getattr__(self, name: str) -> str:
        sealed: dict[str, bytes] = object.__getattribute__(self, "_sealed")
        if name not in sealed:
            raise AttributeError(name)
        reveal: Callable[[bytes], str] = object.__getattribute__(self, "_reveal")
        value = reveal(sealed[name])
        object.__setattr__(self, name, value)
        return value

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TokenSet):
            return NotImplemented
        mine = (self.access_token, self.refresh_token, self.expires_at)
        return mine == (other.access_token, other.refresh_token, other.expires_at)

    def __hash__(self) -> int:
        return hash((self.access_token, self.refresh_token, self.expires_at))

    def __repr__(self) -> str:
        return f"TokenSet(sealed, expires_at={self.expires_at!r})"


@dataclass(frozen=True, slots=True)
class CityProfile:
    account_id: str
    full_name: str
    level: AccountLevel


@dataclass(slots=True)
class Resident:
    """A Telegram user linked to a city account. Only linked residents are stored."""

    telegram_user_id: int
    chat_id: int
    city_account_id: str
    account_level: AccountLevel
    masked_name: str
    tokens: TokenSet
    linked_at: datetime
    locale: str = "ru"


def mask_name(full_name: str) -> str:
    """'Иванова Мария Петровна' → 'Мария И.': enough to recognise yourself, no more.

    Russian full names are written surname first; a single word is shortened to its initial.
    """
    parts = full_name.split()
    if not parts:
        return "—"
    if len(parts) == 1:
        return f"{parts[0][0]}."
    return f"{parts[1]} {parts[0][0]}."
