"""Ceilings on what one action may move, in kopecks. The city has its own limits; these are the
bot's, set by the operator (settings `MAX_PAYMENT_RUB`, `MAX_DONATION_RUB`, `MAX_AUTOPAY_RUB`),
so a typo such as «1500 50» or 99 999 999 999 ₽ never reaches a card."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from domain.errors import DomainError


class LimitKind(StrEnum):
    PAYMENT = "payment"  # one payment of bills, a UIN or a receipt
    DONATION = "donation"  # one donation to a fund (one-off or the amount of a charity autopay)
    AUTOPAY = "autopay"  # one autopay charge: a bill autopay's limit or a fixed amount


@dataclass(frozen=True, slots=True)
class AmountLimits:
    """The most one action may charge, in kopecks."""

    payment: int = 50_000_000  # 500 000 ₽
    donation: int = 10_000_000  # 100 000 ₽
    autopay: int = 10_000_000  # 100 000 ₽

    def of(self, kind: LimitKind) -> int:
        return int(getattr(self, kind.value))

    def check(self, kind: LimitKind, amount: int) -> int:
        """The amount back, or AmountTooLarge(kind, ceiling) when it is above the ceiling."""
        ceiling = self.of(kind)
        if amount > ceiling:
            raise AmountTooLarge(kind, ceiling)
        return amount


DEFAULT_LIMITS = AmountLimits()


class AmountTooLarge(DomainError):
    """Above the operator's ceiling for this kind of charge (`ceiling` in kopecks)."""

    def __init__(self, kind: LimitKind, ceiling: int) -> None:
        super().__init__(f"{kind.value} above {ceiling} kopecks")
        self.kind = kind
        self.ceiling = ceiling
