"""Prizes for points: the catalogue, a prize, the exchange, «Мои призы» (ports.CityPrizes)."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any
from urllib.parse import quote

import structlog

from city.transport import Port
from domain.errors import CityUnavailable, NotFound
from domain.points import InsufficientPoints
from domain.ports import CityPrizes, CitySession
from domain.prizes import (
    OwnedPrize,
    PriceChanged,
    Prize,
    PrizeCategory,
    PrizeExchange,
    PrizeOutOfStock,
)

log = structlog.get_logger(__name__)

# The contract's prize id (openapi.yaml `Prize.id`): what a button's ButtonId takes, 1..10**18-1.
PRIZE_ID = re.compile(r"[1-9][0-9]{0,17}")


class PrizesClient(Port):
    """/api/v1/points/prizes…, /api/v1/points/my-prizes on behalf of a resident."""

    async def prizes(self, session: CitySession, category: PrizeCategory | None) -> list[Prize]:
        params = {"category": category.value} if category else None
        body = await self._transport.resident_get("/api/v1/points/prizes", session, params=params)
        found = []
        for item in body["prizes"]:
            try:
                found.append(_prize(item))
            except CityUnavailable:  # one odd prize never hides the rest of its category
                log.warning("prize_skipped", prize_id=str(item.get("id"))[:40])
        return found

    async def prize(self, session: CitySession, prize_id: str) -> Prize:
        path = f"/api/v1/points/prizes/{quote(prize_id, safe='')}"
        return _prize(await self._transport.resident_get(path, session))

    async def exchange_prize(
        self, session: CitySession, key: str, prize_id: str, price: int
    ) -> PrizeExchange:
        status, body = await self._transport.resident_call(
            "POST",
            f"/api/v1/points/prizes/{quote(prize_id, safe='')}/exchange",
            session,
            json={"points": price},
            key=key,  # the key makes a retry harmless
        )
        if status in (200, 201):
            return PrizeExchange(prize=_owned(body["prize"]), balance=int(body["balance"]))
        reason = body.get("reason") if isinstance(body, dict) else None
        if status == 409 and reason == "insufficient_points":
            raise InsufficientPoints(int(body.get("balance", 0)))
        if status == 409 and reason == "out_of_stock":
            raise PrizeOutOfStock(prize_id)
        if status == 409 and reason == "price_changed":
            raise PriceChanged(int(body["price"]))
        if status == 404:
            raise NotFound(prize_id)
        raise CityUnavailable(f"prize exchange answered {status}")

    async def my_prizes(self, session: CitySession) -> list[OwnedPrize]:
        body = await self._transport.resident_get("/api/v1/points/my-prizes", session)
        return [_owned(item) for item in body["prizes"]]


def _prize(item: dict[str, Any]) -> Prize:
    """Raises CityUnavailable for an id outside the contract's pattern (a button could not
    carry it)."""
    prize_id = item["id"]
    if not (isinstance(prize_id, str) and PRIZE_ID.fullmatch(prize_id)):
        raise CityUnavailable("the platform sent a prize id outside the contract's pattern")
    return Prize(
        id=prize_id,
        name=item["name"],
        category=PrizeCategory.read(item["category"]),
        description=item["description"],
        price=int(item["price"]),
        in_stock=int(item["in_stock"]),
    )


def _owned(item: dict[str, Any]) -> OwnedPrize:
    return OwnedPrize(
        id=item["id"],
        prize_id=item["prize_id"],
        name=item["name"],
        category=PrizeCategory.read(item["category"]),
        points=int(item["points"]),
        code=item["code"],
        valid_until=date.fromisoformat(item["valid_until"]),
        created_at=datetime.fromisoformat(item["created_at"]),
    )


# mypy checks here that PrizesClient offers the port (domain.ports.CityPrizes).
_IMPLEMENTS_PRIZES: type[CityPrizes] = PrizesClient
