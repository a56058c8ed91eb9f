"""Prizes API: `GET /api/v1/points/prizes`, `GET /api/v1/points/prizes/{prize_id}`,
`POST /api/v1/points/prizes/{prize_id}/exchange` and `GET /api/v1/points/my-prizes`."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from sandbox.common import Refused, authenticated_resident, error_response, iso_datetime
from sandbox.points_api import keyed_json
from sandbox.prizes import Exchange, ExchangeAnswer, Prize, PrizeCategory, PrizeShop

PRIZES_KEY = web.AppKey("sandbox_prizes", PrizeShop)
CATEGORIES = ", ".join(c.value for c in PrizeCategory)

routes = web.RouteTableDef()


@routes.get("/api/v1/points/prizes")
async def prizes(request: web.Request) -> web.Response:
    authenticated_resident(request)
    raw = request.query.get("category")
    category = None
    if raw is not None:
        if raw not in set(PrizeCategory):
            return error_response(400, f"category must be one of: {CATEGORIES}")
        category = PrizeCategory(raw)
    shop = request.app[PRIZES_KEY]
    return web.json_response({"prizes": [prize_json(p) for p in shop.prizes(category)]})


@routes.get("/api/v1/points/prizes/{prize_id}")
async def prize(request: web.Request) -> web.Response:
    authenticated_resident(request)
    found = request.app[PRIZES_KEY].prize(request.match_info["prize_id"])
    if found is None:
        return Refused(404, "unknown_prize", "no such prize").response()
    return web.json_response(prize_json(found))


@routes.post("/api/v1/points/prizes/{prize_id}/exchange")
async def exchange(request: web.Request) -> web.Response:
    resident = authenticated_resident(request)
    keyed = await keyed_json(request)
    if isinstance(keyed, web.Response):
        return keyed
    key, body = keyed
    if not isinstance(body, dict) or set(body) != {"points"}:
        return error_response(400, 'the body must be {"points": N}')
    points = body["points"]
    if type(points) is not int or points < 1:
        return error_response(400, "points must be a positive integer")
    try:
        answer, created = request.app[PRIZES_KEY].exchange(
            resident.account_id, key, request.match_info["prize_id"], points
        )
    except Refused as refused:
        return refused.response()
    return web.json_response(exchange_json(answer), status=201 if created else 200)


@routes.get("/api/v1/points/my-prizes")
async def my_prizes(request: web.Request) -> web.Response:
    resident = authenticated_resident(request)
    owned = request.app[PRIZES_KEY].of(resident.account_id)
    return web.json_response({"prizes": [owned_json(e) for e in owned]})


def prize_json(prize: Prize) -> dict[str, Any]:
    """The contract's `Prize`."""
    return {
        "id": prize.id,
        "name": prize.name,
        "category": prize.category.value,
        "description": prize.description,
        "price": prize.price,
        "in_stock": prize.stock,
    }


def owned_json(exchange: Exchange) -> dict[str, Any]:
    """The contract's `OwnedPrize`."""
    return {
        "id": exchange.id,
        "prize_id": exchange.prize_id,
        "name": exchange.name,
        "category": exchange.category.value,
        "points": exchange.points,
        "code": exchange.code,
        "valid_until": exchange.valid_until.isoformat(),
        "created_at": iso_datetime(exchange.created_at),
    }


def exchange_json(answer: ExchangeAnswer) -> dict[str, Any]:
    """The contract's `PrizeExchangeResult`."""
    return {"prize": owned_json(answer.exchange), "balance": answer.balance}
