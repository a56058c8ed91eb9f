"""Prizes for points («Миллион призов») of one sandbox instance: the catalogue with stock, and
exchanges that debit the points book once per `Idempotence-Key`.

The demo catalogue has a few prizes in each category (souvenirs, for home, promo codes,
tickets); one ticket is sold out (stock 0). A promo code or ticket number is made when a prize
is exchanged and kept with the exchange: «Мои призы» is `GET /api/v1/points/my-prizes`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from sandbox.clock import MOSCOW, Clock
from sandbox.common import Refused
from sandbox.idempotency import AnswerMemory, KeyReused
from sandbox.points import PointsBook, PointsKind

VALID_FOR = timedelta(days=90)  # a promo code or ticket is valid this long after the exchange


class PrizeCategory(StrEnum):
    SOUVENIRS = "souvenirs"
    HOME = "home"
    PROMO_CODES = "promo_codes"
    TICKETS = "tickets"


@dataclass(slots=True)
class Prize:
    """One prize of the catalogue; `stock` is how many are left (mutable: exchanges take one)."""

    id: str  # ^[1-9][0-9]{0,17}$, as the contract says (a button carries it)
    name: str
    category: PrizeCategory
    description: str
    price: int  # points
    stock: int


@dataclass(frozen=True, slots=True)
class Exchange:
    """A prize the resident got: what «Мои призы» lists."""

    id: str
    account_id: str
    prize_id: str
    name: str
    category: PrizeCategory
    points: int
    code: str  # the promo code, the ticket's number or the order's number
    valid_until: date
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ExchangeAnswer:
    exchange: Exchange
    balance: int  # right after the exchange


def demo_catalogue() -> list[Prize]:
    """A few prizes per category; «Экскурсия в Музей Москвы» is sold out."""
    return [
        Prize("101", "Кружка «Моя Москва»", PrizeCategory.SOUVENIRS,
              "Керамическая кружка 350 мл с видом на Кремль. Забрать в центре госуслуг.", 300, 50),
        Prize("102", "Значок «Метро Москвы»", PrizeCategory.SOUVENIRS,
              "Эмалированный значок с буквой «М». Забрать в центре госуслуг.", 150, 200),
        Prize("103", "Футболка «Москва — мой город»", PrizeCategory.SOUVENIRS,
              "Хлопковая футболка, размеры S–XL. Забрать в центре госуслуг.", 1_500, 20),
        Prize("201", "Плед «Зарядье»", PrizeCategory.HOME,
              "Флисовый плед 130×170 см. Забрать в центре госуслуг.", 1_200, 10),
        Prize("202", "Набор для рассады", PrizeCategory.HOME,
              "Горшки, грунт и семена для балкона. Забрать в центре госуслуг.", 400, 30),
        Prize("301", "Промокод на кофе в «Кофемании»", PrizeCategory.PROMO_CODES,
              "Скидка 300 ₽ на заказ от 600 ₽. Назовите код на кассе.", 200, 1_000),
        Prize("302", "Промокод на каршеринг", PrizeCategory.PROMO_CODES,
              "30 минут поездки бесплатно. Введите код в приложении.", 500, 500),
        Prize("303", "Промокод в книжный «Москва»", PrizeCategory.PROMO_CODES,
              "Скидка 10% на одну покупку. Назовите код на кассе.", 250, 300),
        Prize("401", "Билет в Театр на Таганке", PrizeCategory.TICKETS,
              "Один билет на спектакль текущего сезона, места в партере.", 1_000, 5),
        Prize("402", "Билет в Третьяковскую галерею", PrizeCategory.TICKETS,
              "Вход на основную экспозицию в Лаврушинском переулке.", 600, 40),
        Prize("403", "Экскурсия в Музей Москвы", PrizeCategory.TICKETS,
              "Обзорная экскурсия по постоянной экспозиции.", 450, 0),
    ]  # fmt: skip


class PrizeShop:
    """The catalogue and every exchange of one sandbox instance."""

    def __init__(self, clock: Clock, points: PointsBook) -> None:
        self.clock = clock
        self.points = points
        self.catalogue: list[Prize] = demo_catalogue()
        self.exchanges: list[Exchange] = []  # in the order they were made
        self._answers: AnswerMemory[ExchangeAnswer] = AnswerMemory()

    def prizes(self, category: PrizeCategory | None) -> list[Prize]:
        """The catalogue (of one category), in its order; sold-out prizes included."""
        return [p for p in self.catalogue if category is None or p.category is category]

    def prize(self, prize_id: str) -> Prize | None:
        return next((p for p in self.catalogue if p.id == prize_id), None)

    def of(self, account_id: str) -> list[Exchange]:
        """The resident's prizes, newest first."""
        return [e for e in reversed(self.exchanges) if e.account_id == account_id]

    def exchange(
        self, account_id: str, key: str, prize_id: str, points: int
    ) -> tuple[ExchangeAnswer, bool]:
        """Points for a prize: (answer, True) when made now, (answer, False) for a replay of
        this key with the same request. Raises Refused (404, 409, 422)."""
        fingerprint = f"{prize_id}\n{points}"
        try:
            known = self._answers.recall(account_id, key, fingerprint)
        except KeyReused as reused:
            original = reused.original
            assert isinstance(original, ExchangeAnswer)
            raise Refused(
                422, "idempotency_key_reused", str(reused), exchange_id=original.exchange.id
            ) from None
        if known is not None:
            return known, False
        prize = self.prize(prize_id)
        if prize is None:
            raise Refused(404, "unknown_prize", f"no prize {prize_id!r}")
        if points != prize.price:
            raise Refused(
                409, "price_changed", f"the price is {prize.price} points", price=prize.price
            )
        if prize.stock <= 0:
            raise Refused(409, "out_of_stock", f"prize {prize_id} is out of stock")
        balance = self.points.balance(account_id)
        if prize.price > balance:
            raise Refused(
                409,
                "insufficient_points",
                f"the balance is {balance} points, fewer than {prize.price}",
                balance=balance,
                price=prize.price,
            )
        entry = self.points.add(account_id, -prize.price, PointsKind.PRIZE, f"Приз: {prize.name}")
        prize.stock -= 1
        number = len(self.exchanges) + 1
        made = Exchange(
            id=f"EX-{number:05d}",
            account_id=account_id,
            prize_id=prize.id,
            name=prize.name,
            category=prize.category,
            points=prize.price,
            code=_code(prize, account_id, number),
            valid_until=(entry.created_at + VALID_FOR).astimezone(MOSCOW).date(),
            created_at=entry.created_at,
        )
        self.exchanges.append(made)
        answer = ExchangeAnswer(made, balance - prize.price)
        self._answers.remember(account_id, key, fingerprint, answer)
        return answer, True


def _code(prize: Prize, account_id: str, number: int) -> str:
    """A code that looks issued: a promo code «MOS-XXXX-XXXX», a ticket «T-…», an order «Z-…».
    Deterministic (a hash of the exchange), so tests and the console can read it back."""
    digest = hashlib.sha256(f"{account_id}:{prize.id}:{number}".encode()).hexdigest().upper()
    if prize.category is PrizeCategory.PROMO_CODES:
        return f"MOS-{digest[:4]}-{digest[4:8]}"
    if prize.category is PrizeCategory.TICKETS:
        return f"T-{int(digest[:10], 16) % 10**8:08d}"
    return f"Z-{number:06d}"
