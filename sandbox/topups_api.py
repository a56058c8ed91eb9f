"""The top-up API (`/api/v1/topup-services`, `/api/v1/topup-balance`) and the sandbox control
`PATCH /sandbox/topup-accounts`. The top-up itself is `POST /api/v1/payments` with `topup`."""

from __future__ import annotations

import json

from aiohttp import web

from sandbox.common import authenticated_resident, error_response, problem_response
from sandbox.payments_api import PAYMENTS_KEY
from sandbox.topups import TopupBook, TopupRefused

routes = web.RouteTableDef()


def _book(request: web.Request) -> TopupBook:
    # The payment book holds the balances: a top-up is checked and credited with its charge.
    return request.app[PAYMENTS_KEY].topups


def _refused(refused: TopupRefused) -> web.Response:
    return problem_response(refused.status, refused.description, refused.reason, **refused.details)


@routes.get("/api/v1/topup-services")
async def topup_services(request: web.Request) -> web.Response:
    resident = authenticated_resident(request)
    return web.json_response({"services": _book(request).services_of(resident.account_id)})


@routes.get("/api/v1/topup-balance")
async def topup_balance(request: web.Request) -> web.Response:
    authenticated_resident(request)
    service, account = request.query.get("service"), request.query.get("account")
    if not service or not account:
        return error_response(400, "service and account are required")
    book = _book(request)
    try:
        book.service(service)
        balance = book.balance(service, account)
    except TopupRefused as refused:
        return _refused(refused)
    return web.json_response({"service": service, "account": account, "balance": balance})


@routes.patch("/sandbox/topup-accounts")
async def set_topup_account(request: web.Request) -> web.Response:
    try:
        body = json.loads(await request.text())
    except json.JSONDecodeError:
        return error_response(400, "the body must be a JSON object")
    if not isinstance(body, dict) or set(body) - {"service", "account", "balance", "shows_balance"}:
        return error_response(400, "give service, account, balance and optionally shows_balance")
    service, account, balance = body.get("service"), body.get("account"), body.get("balance")
    shows = body.get("shows_balance", True)
    if type(balance) is not int or balance < 0 or not isinstance(shows, bool):
        return error_response(400, "balance is a non-negative integer (kopecks)")
    if not isinstance(service, str) or not isinstance(account, str):
        return error_response(400, "service and account are strings")
    try:
        _book(request).set_balance(service, account, balance, shows)
    except TopupRefused as refused:
        return _refused(refused)
    return web.json_response(
        {"service": service, "account": account, "balance": balance if shows else None}
    )
