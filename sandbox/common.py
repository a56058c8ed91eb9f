"""Helpers shared by the sandbox's API modules: auth, error bodies, bill JSON, HTML answers."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from aiohttp import web

from sandbox.data import CityBill, DemoResident
from sandbox.oauth import DATA_KEY, TOKENS_KEY
from sandbox.pages import render_page

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def error_response(status: int, description: str) -> web.Response:
    """The contract's `Error` body."""
    return web.json_response({"code": status, "description": description}, status=status)


def problem_response(status: int, description: str, reason: str, **details: object) -> web.Response:
    """The contract's `PaymentProblem` body: an `Error` with a machine-readable reason."""
    body: dict[str, object] = {"code": status, "description": description, "reason": reason}
    body.update(details)
    return web.json_response(body, status=status)


def bearer_token(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def authenticated_resident(request: web.Request) -> DemoResident:
    """The resident behind the request's access token, or a 401 `Error` answer."""
    token = bearer_token(request)
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


def bill_json(bill: CityBill) -> dict[str, Any]:
    """The contract's `Bill`."""
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


def html_response(status: int, title: str, body_html: str) -> web.Response:
    return web.Response(
        status=status,
        text=render_page(title, body_html),
        content_type="text/html",
        headers=NO_STORE,
    )


def iso_datetime(moment: datetime) -> str:
    """ISO 8601 with the timezone (the sandbox's clock is always timezone-aware)."""
    if moment.tzinfo is None:
        raise ValueError("the sandbox clock must be timezone-aware")
    return moment.isoformat()


def query_limit(request: web.Request, default: int, maximum: int) -> int | None:
    """The `limit` query parameter (1..maximum, `default` when absent); None when invalid."""
    raw = request.query.get("limit", str(default))
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= maximum:
        return None
    return int(raw)


class Refused(Exception):
    """A request refused with a problem body: an `Error` with a `reason` and its details."""

    def __init__(self, status: int, reason: str, description: str, **details: object) -> None:
        super().__init__(description)
        self.status = status
        self.reason = reason
        self.description = description
        self.details = details

    def response(self) -> web.Response:
        return problem_response(self.status, self.description, self.reason, **self.details)
