"""Points API: `GET /api/v1/points` and `POST /api/v1/points/transfers`."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from sandbox.common import (
    Refused,
    authenticated_resident,
    error_response,
    iso_datetime,
    query_limit,
)
from sandbox.payments import IDEMPOTENCE_KEY
from sandbox.points import PointsBook, PointsEntry, TransferAnswer

POINTS_KEY = web.AppKey("sandbox_points", PointsBook)
DEFAULT_ENTRIES_LIMIT = 20
MAX_ENTRIES_LIMIT = 100
KEY_REQUIRED = "the Idempotence-Key header is required: 1 to 64 of A-Z, a-z, 0-9, '_' and '-'"

routes = web.RouteTableDef()


async def keyed_json(request: web.Request) -> tuple[str, Any] | web.Response:
    """A keyed POST's `Idempotence-Key` header and its body parsed as JSON (any JSON value: the
    caller checks its shape), or the 400 answer when the key is missing or malformed or the body
    is not JSON. Shared by the points, prizes and meters endpoints."""
    key = request.headers.get("Idempotence-Key", "")
    if not IDEMPOTENCE_KEY.match(key):
        return error_response(400, KEY_REQUIRED)
    try:
        return key, json.loads(await request.text())
    except json.JSONDecodeError:
        return error_response(400, "the body must be a JSON object")


@routes.get("/api/v1/points")
async def points(request: web.Request) -> web.Response:
    resident = authenticated_resident(request)
    limit = query_limit(request, DEFAULT_ENTRIES_LIMIT, MAX_ENTRIES_LIMIT)
    if limit is None:
        return error_response(400, f"limit must be an integer from 1 to {MAX_ENTRIES_LIMIT}")
    book = request.app[POINTS_KEY]
    account_id = resident.account_id
    return web.json_response(
        {
            "balance": book.balance(account_id),
            "pending": [entry_json(e) for e in book.pending(account_id)],
            "entries": [entry_json(e) for e in book.available(account_id, limit=limit)],
        }
    )


@routes.post("/api/v1/points/transfers")
async def transfer(request: web.Request) -> web.Response:
    resident = authenticated_resident(request)
    keyed = await keyed_json(request)
    if isinstance(keyed, web.Response):
        return keyed
    key, body = keyed
    if not isinstance(body, dict) or set(body) != {"fund_id", "points"}:
        return error_response(400, 'the body must be {"fund_id": "...", "points": N}')
    fund_id, amount = body["fund_id"], body["points"]
    if not isinstance(fund_id, str) or not fund_id:
        return error_response(400, "fund_id must be a non-empty string")
    if type(amount) is not int or amount < 1:
        return error_response(400, "points must be a positive integer")
    try:
        answer, created = request.app[POINTS_KEY].transfer(
            resident.account_id, key, fund_id, amount
        )
    except Refused as refused:
        return refused.response()
    return web.json_response(transfer_json(answer), status=201 if created else 200)


def entry_json(entry: PointsEntry) -> dict[str, Any]:
    """The contract's `PointsEntry`."""
    return {
        "id": entry.id,
        "amount": entry.amount,
        "kind": entry.kind.value,
        "reason": entry.reason,
        "created_at": iso_datetime(entry.created_at),
        "available_at": iso_datetime(entry.available_at),
    }


def transfer_json(answer: TransferAnswer) -> dict[str, Any]:
    """The contract's `PointsTransferResult`."""
    transfer = answer.transfer
    return {
        "transfer": {
            "id": transfer.id,
            "fund_id": transfer.fund_id,
            "fund_name": transfer.fund_name,
            "points": transfer.points,
            "created_at": iso_datetime(transfer.created_at),
        },
        "balance": answer.balance,
    }
