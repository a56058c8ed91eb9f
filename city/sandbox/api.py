"""The sandbox's resident API (`/api/v1/...`) and its demo/test controls (`/sandbox/...`)."""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from city.sandbox.data import BillStatus, CityBill, DemoResident
from city.sandbox.oauth import DATA_KEY, TOKENS_KEY

FAULT_STATUSES = (500, 502, 503)
MAX_DELAY_SECONDS = 120

routes = web.RouteTableDef()


@dataclass(frozen=True, slots=True)
class Faults:
    delay_seconds: float | None = None
    status: int | None = None

    def to_json(self) -> dict[str, float | int]:
        body: dict[str, float | int] = {}
        if self.delay_seconds is not None:
            body["delay_seconds"] = self.delay_seconds
        if self.status is not None:
            body["status"] = self.status
        return body


class FaultsHolder:
    """The faults in force for one sandbox instance (replaced as a whole by PUT)."""

    def __init__(self) -> None:
        self.current = Faults()


FAULTS_KEY = web.AppKey("sandbox_faults", FaultsHolder)


def error_response(status: int, description: str) -> web.Response:
    return web.json_response({"code": status, "description": description}, status=status)


# ---------------------------------------------------------------- faults middleware


@web.middleware
async def faults_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Delay or fail `/api/` answers; OAuth and the sandbox controls are never affected."""
    if not request.path.startswith("/api/"):
        return await handler(request)
    faults = request.app[FAULTS_KEY].current
    if faults.delay_seconds:
        await asyncio.sleep(faults.delay_seconds)
    if faults.status is not None:
        return error_response(faults.status, f"sandbox fault: status {faults.status} on /api/")
    return await handler(request)


# ---------------------------------------------------------------- resident API


def _bearer_token(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def _authenticated_resident(request: web.Request) -> DemoResident:
    """The resident behind the request's access token, or a 401 `Error` answer."""
    token = _bearer_token(request)
    if token is None:
        raise _unauthorized("missing bearer access token", error=None)
    account_id = request.app[TOKENS_KEY].account_for_access_token(token)
    resident = None if account_id is None else request.app[DATA_KEY].resident_by_account(account_id)
    if resident is None:
        raise _unauthorized("unknown, revoked or expired access token", error="invalid_token")
    return resident


def _unauthorized(description: str, *, error: str | None) -> web.HTTPUnauthorized:
    challenge = 'Bearer realm="city"' + (f', error="{error}"' if error else "")
    return web.HTTPUnauthorized(
        text=json.dumps({"code": 401, "description": description}),
        content_type="application/json",
        headers={"WWW-Authenticate": challenge},
    )


@routes.get("/api/v1/profile")
async def profile(request: web.Request) -> web.Response:
    resident = _authenticated_resident(request)
    return web.json_response(
        {
            "account_id": resident.account_id,
            "full_name": resident.full_name,
            "account_level": resident.level.value,
        }
    )


@routes.get("/api/v1/bills")
async def bills(request: web.Request) -> web.Response:
    resident = _authenticated_resident(request)
    wanted = request.query.get("status", "unpaid")
    if wanted not in ("unpaid", "paid", "all"):
        return error_response(400, f"unknown status {wanted!r}: use unpaid, paid or all")
    status = None if wanted == "all" else BillStatus(wanted)
    chosen = request.app[DATA_KEY].bills_of(resident.account_id, status)
    return web.json_response({"bills": [_bill_json(bill) for bill in chosen]})


def _bill_json(bill: CityBill) -> dict[str, Any]:
    return {
        "id": bill.id,
        "kind": bill.kind.value,
        "title": bill.title,
        "provider": bill.provider,
        "amount": bill.amount,
        "due_date": bill.due_date.isoformat(),
        "status": bill.status.value,
        "uin": bill.uin,
        "payer_code": bill.payer_code,
        "period": bill.period,
    }


# ---------------------------------------------------------------- sandbox controls


@routes.get("/sandbox/residents")
async def residents(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "residents": [
                {
                    "login": r.login,
                    "full_name": r.full_name,
                    "account_level": r.level.value,
                    "description": r.description,
                }
                for r in request.app[DATA_KEY].residents
            ]
        }
    )


class _InvalidFaults(ValueError):
    pass


def parse_faults(body: object) -> Faults:
    """Validate a `Faults` object (see the contract); raises _InvalidFaults."""
    if not isinstance(body, dict):
        raise _InvalidFaults("faults must be a JSON object")
    unknown = set(body) - {"delay_seconds", "status"}
    if unknown:
        raise _InvalidFaults(f"unknown fields: {', '.join(sorted(unknown))}")
    delay = body.get("delay_seconds")
    if delay is not None and not _is_delay(delay):
        raise _InvalidFaults(f"delay_seconds must be a number from 0 to {MAX_DELAY_SECONDS}")
    status = body.get("status")
    if status is not None and (type(status) is not int or status not in FAULT_STATUSES):
        raise _InvalidFaults("status must be one of 500, 502, 503")
    return Faults(delay_seconds=delay, status=status)


def _is_delay(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0 <= value <= MAX_DELAY_SECONDS
    )


@routes.put("/sandbox/faults")
async def put_faults(request: web.Request) -> web.Response:
    try:
        faults = parse_faults(json.loads(await request.text()))
    except json.JSONDecodeError:
        return error_response(400, "the body must be a JSON object")
    except _InvalidFaults as exc:
        return error_response(400, str(exc))
    request.app[FAULTS_KEY].current = faults
    return web.json_response(faults.to_json())


@routes.post("/sandbox/tokens/expire")
async def expire_tokens(request: web.Request) -> web.Response:
    return web.json_response({"expired": request.app[TOKENS_KEY].expire_access_tokens()})
