"""Test cards and the demo residents' saved payment methods.

A card's behaviour depends on its number only (saved cards behave like their number):

| number           | what happens                                   |
| ---------------- | ---------------------------------------------- |
| 4242424242424242 | succeeds                                       |
| 4000000000000002 | declined                                       |
| 4000000000009995 | insufficient funds                             |
| 4000000000003220 | requires confirmation (3-D Secure), then works |
| 4000000000000069 | expired card                                   |

Any other number that passes the Luhn check succeeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sandbox.data import FULL, STANDARD


class CardBehaviour(StrEnum):
    SUCCEEDS = "succeeds"
    DECLINED = "declined"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    REQUIRES_CONFIRMATION = "requires_confirmation"
    EXPIRED_CARD = "expired_card"


TEST_CARDS: dict[str, CardBehaviour] = {
    "4242424242424242": CardBehaviour.SUCCEEDS,
    "4000000000000002": CardBehaviour.DECLINED,
    "4000000000009995": CardBehaviour.INSUFFICIENT_FUNDS,
    "4000000000003220": CardBehaviour.REQUIRES_CONFIRMATION,
    "4000000000000069": CardBehaviour.EXPIRED_CARD,
}

# What a resident sees on the hosted payment page next to each test card.
TEST_CARD_HINTS: dict[CardBehaviour, str] = {
    CardBehaviour.SUCCEEDS: "оплата пройдёт",
    CardBehaviour.DECLINED: "банк отклонит оплату",
    CardBehaviour.INSUFFICIENT_FUNDS: "недостаточно средств",
    CardBehaviour.REQUIRES_CONFIRMATION: "запросит подтверждение 3-D Secure",
    CardBehaviour.EXPIRED_CARD: "срок действия карты истёк",
}


def normalize_card_number(text: str) -> str | None:
    """Digits of a card number typed with spaces or dashes; None if it is not a card number."""
    digits = "".join(text.split()).replace("-", "")
    if not digits.isascii() or not digits.isdigit() or not 13 <= len(digits) <= 19:
        return None
    return digits if _luhn_ok(digits) else None


def _luhn_ok(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def behaviour_of(number: str) -> CardBehaviour:
    return TEST_CARDS.get(number, CardBehaviour.SUCCEEDS)


def brand_of(number: str) -> str:
    """visa, mastercard or mir by the number's first digits (anything else counts as visa)."""
    if number.startswith(("2200", "2201", "2202", "2203", "2204")):
        return "mir"
    if number[:2] in ("51", "52", "53", "54", "55") or "2221" <= number[:4] <= "2720":
        return "mastercard"
    return "visa"


@dataclass(frozen=True, slots=True)
class SavedCard:
    id: str
    account_id: str
    number: str  # the sandbox knows the whole number; the API shows the last four digits
    expires: str  # MM/YYYY
    is_default: bool = False

    @property
    def last4(self) -> str:
        return self.number[-4:]

    @property
    def brand(self) -> str:
        return brand_of(self.number)

    @property
    def behaviour(self) -> CardBehaviour:
        return behaviour_of(self.number)


SAVED_CARDS: tuple[SavedCard, ...] = (
    SavedCard("pm-full-4242", FULL.account_id, "4242424242424242", "08/2028", is_default=True),
    SavedCard("pm-full-0002", FULL.account_id, "4000000000000002", "11/2027"),
    SavedCard("pm-full-9995", FULL.account_id, "4000000000009995", "03/2029"),
    SavedCard("pm-full-3220", FULL.account_id, "4000000000003220", "06/2028"),
    SavedCard("pm-std-4242", STANDARD.account_id, "4242424242424242", "12/2027", is_default=True),
)


def saved_cards_of(account_id: str) -> list[SavedCard]:
    """The account's saved cards, the default one first."""
    cards = [card for card in SAVED_CARDS if card.account_id == account_id]
    return sorted(cards, key=lambda card: not card.is_default)


def saved_card(account_id: str, method_id: str) -> SavedCard | None:
    """The account's saved card with this id (another resident's card is not found)."""
    return next((card for card in saved_cards_of(account_id) if card.id == method_id), None)
