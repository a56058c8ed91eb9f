"""Residents and their link to a city account."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class AccountLevel(StrEnum):
    """mos.ru account levels: упрощённая, стандартная, полная."""

    SIMPLE = "simple"
    STANDARD = "standard"
    FULL = "full"


@dataclass(frozen=True, slots=True)
class TokenSet:
    access_token: str
    refresh_token: str
    expires_at: datetime


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
