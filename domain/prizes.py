"""Prizes for points («Миллион призов»): the catalogue by category, a prize's card, the exchange
(debited once) and «Мои призы», all kept by the platform (domain.ports.CityPrizes).

An exchange is not stored by the bot: like a points transfer (domain/points.py) it is sent with
an idempotency key made when the confirmation is shown, so a double press of «Подтвердить» or
a retried call after a lost answer gets the same prize and debits once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from domain.accounts import Resident
from domain.errors import DomainError
from domain.ports import CityAuth, CityPrizes, UnitOfWork
from domain.sessions import ResidentSession


class PrizeCategory(StrEnum):
    SOUVENIRS = "souvenirs"
    HOME = "home"
    PROMO_CODES = "promo_codes"
    TICKETS = "tickets"  # theatres and museums
    OTHER = "other"  # a category the platform started after this bot (read, never asked for)

    @classmethod
    def read(cls, value: object) -> PrizeCategory:
        """The platform's category; one this bot does not know yet is OTHER, never an error."""
        try:
            return cls(str(value))
        except ValueError:
            return cls.OTHER


# The categories the catalogue is asked by (OTHER is only what an unknown one is read as).
CATALOGUE_CATEGORIES = (
    PrizeCategory.SOUVENIRS,
    PrizeCategory.HOME,
    PrizeCategory.PROMO_CODES,
    PrizeCategory.TICKETS,
)


@dataclass(frozen=True, slots=True)
class Prize:
    id: str  # ASCII digits (the contract's pattern), so it fits a button's ButtonId
    name: str
    category: PrizeCategory
    description: str
    price: int  # points
    in_stock: int  # 0: sold out

    @property
    def available(self) -> bool:
        return self.in_stock > 0


@dataclass(frozen=True, slots=True)
class OwnedPrize:
    """A row of «Мои призы»."""

    id: str
    prize_id: str
    name: str
    category: PrizeCategory
    points: int
    code: str  # the promo code, the ticket's number or the order's number
    valid_until: date
    created_at: datetime


@dataclass(frozen=True, slots=True)
class PrizeExchange:
    prize: OwnedPrize
    balance: int  # points right after the exchange


class PrizeOutOfStock(DomainError):
    def __init__(self, prize_id: str) -> None:
        super().__init__(f"prize {prize_id} is out of stock")
        self.prize_id = prize_id


class PriceChanged(DomainError):
    """The price is not the one the resident confirmed; nothing was debited."""

    def __init__(self, price: int) -> None:
        super().__init__(f"the price is now {price}")
        self.price = price


def shortfall(balance: int, price: int) -> int:
    """Points missing for a prize of `price` with `balance` (0: enough)."""
    return max(0, price - balance)


async def prizes(
    uow: UnitOfWork,
    auth: CityAuth,
    city: CityPrizes,
    resident: Resident,
    category: PrizeCategory | None,
) -> list[Prize]:
    """The catalogue (of one category), sold-out prizes included."""
    return await city.prizes(ResidentSession(resident, auth, uow), category)


async def prize(
    uow: UnitOfWork, auth: CityAuth, city: CityPrizes, resident: Resident, prize_id: str
) -> Prize:
    """Raises NotFound."""
    return await city.prize(ResidentSession(resident, auth, uow), prize_id)


async def exchange_prize(
    uow: UnitOfWork,
    auth: CityAuth,
    city: CityPrizes,
    resident: Resident,
    key: str,
    prize_id: str,
    price: int,
) -> PrizeExchange:
    """`price` points (the price the resident confirmed) for the prize, once per `key` — made
    when the confirmation is shown. Raises InsufficientPoints, PrizeOutOfStock, PriceChanged,
    NotFound, CityUnavailable (no answer: pressing again sends the same key)."""
    return await city.exchange_prize(ResidentSession(resident, auth, uow), key, prize_id, price)


async def my_prizes(
    uow: UnitOfWork, auth: CityAuth, city: CityPrizes, resident: Resident
) -> list[OwnedPrize]:
    """«Мои призы»: newest first."""
    return await city.my_prizes(ResidentSession(resident, auth, uow))
