"""The payments API (`/api/v1/payment-methods`, `/api/v1/payments`) and `/sandbox/ledger`."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from sandbox.cards import CardBehaviour, saved_cards_of
from sandbox.common import (
    authenticated_resident,
    error_response,
    iso_datetime,
    problem_response,
)
from sandbox.payments import (
    IDEMPOTENCE_KEY,
    BelowMinimum,
    InvalidPaymentRequest,
    Payment,
    PaymentBook,
    PaymentRefused,
    parse_payment_request,
)

PAYMENTS_KEY = web.AppKey("sandbox_payments", PaymentBook)
DEFAULT_HISTORY_LIMIT = 20
MAX_HISTORY_LIMIT = 100

routes = web.RouteTableDef()


@routes.get("/api/v1/payment-methods")
async def payment_methods(request: web.Request) -> web.Response:
    resident = authenticated_resident(request)
    methods = [
        {
            "id": card.id,
            "brand": card.brand,
            "last4": card.last4,
            "expires": card.expires,
            "is_default": card.is_default,
            "requires_confirmation": card.behaviour is CardBehaviour.REQUIRES_CONFIRMATION,
        }
        for card in saved_cards_of(resident.account_id)
    ]
    return web.json_response({"methods": methods})


@routes.post("/api/v1/payments")
async def create_payment(request: web.Request) -> web.Response:
    resident = authenticated_resident(request)
    key = request.headers.get("Idempotence-Key", "")
    if not IDEMPOTENCE_KEY.match(key):
        return error_response(
            400, "the Idempotence-Key header is required: 1 to 64 of A-Z, a-z, 0-9, '_' and '-'"
        )
    try:
        payment_request = parse_payment_request(json.loads(await request.text()))
    except json.JSONDecodeError:
        return error_response(400, "the body must be a JSON object")
    except BelowMinimum as exc:
        return problem_response(400, str(exc), "below_minimum", amount=exc.minimum)
    except InvalidPaymentRequest as exc:
        return error_response(400, str(exc))
    # From here on nothing awaits: the whole payment happens at once (see payments.py).
    try:
        payment, created = request.app[PAYMENTS_KEY].create(
            resident.account_id, key, payment_request, page_base=str(request.url.origin())
        )
    except PaymentRefused as refused:
        return problem_response(
            refused.status, refused.description, refused.reason, **refused.details
        )
    return web.json_response(
        payment_json(payment),
        status=201 if created else 200,
        headers={"Location": f"/api/v1/payments/{payment.id}"},
    )


@routes.get("/api/v1/payments")
async def payment_history(request: web.Request) -> web.Response:
    resident = authenticated_resident(request)
    raw_limit = request.query.get("limit", str(DEFAULT_HISTORY_LIMIT))
    if not (raw_limit.isascii() and raw_limit.isdigit()) or not (
        1 <= int(raw_limit) <= MAX_HISTORY_LIMIT
    ):
        return error_response(400, f"limit must be an integer from 1 to {MAX_HISTORY_LIMIT}")
    key = request.query.get("idempotence_key")
    if key is not None and not IDEMPOTENCE_KEY.match(key):
        return error_response(400, "idempotence_key must be 1 to 64 of A-Z, a-z, 0-9, '_', '-'")
    payments = request.app[PAYMENTS_KEY].history(resident.account_id, limit=int(raw_limit), key=key)
    return web.json_response({"payments": [payment_json(payment) for payment in payments]})


@routes.get("/api/v1/payments/{payment_id}")
async def payment(request: web.Request) -> web.Response:
    resident = authenticated_resident(request)
    payment_id = request.match_info["payment_id"]
    found = request.app[PAYMENTS_KEY].of_account(resident.account_id, payment_id)
    if found is None:
        return error_response(404, f"no payment {payment_id!r}")
    return web.json_response(payment_json(found))


@routes.get("/sandbox/ledger")
async def ledger(request: web.Request) -> web.Response:
    charges = [
        {
            "payment_id": charge.payment_id,
            "account_id": charge.account_id,
            "idempotence_key": charge.idempotence_key,
            "amount": charge.amount,
            "card_last4": charge.card_last4,
            "external_charge_id": charge.external_charge_id,
            "charged_at": iso_datetime(charge.charged_at),
        }
        for charge in request.app[PAYMENTS_KEY].ledger
    ]
    return web.json_response({"charges": charges})


def payment_json(payment: Payment) -> dict[str, Any]:
    """The contract's `Payment`."""
    requisites = payment.request.requisites
    receipt = payment.receipt
    return {
        "id": payment.id,
        "status": payment.status.value,
        "amount": payment.amount,
        "bill_ids": list(payment.request.bill_ids),
        "requisites": None
        if requisites is None
        else {
            "payee_name": requisites.payee_name,
            "payee_inn": requisites.payee_inn,
            "personal_acc": requisites.personal_acc,
            "bic": requisites.bic,
            "purpose": requisites.purpose,
            "pers_acc": requisites.pers_acc,
            "period": requisites.period,
            "uin": requisites.uin,
        },
        "fund_id": payment.request.fund_id,
        "topup": None
        if payment.request.topup is None
        else {"service": payment.request.topup.service, "account": payment.request.topup.account},
        "payment_method_id": payment.request.payment_method_id,
        "card_last4": payment.card_last4,
        "confirmation_url": payment.confirmation_url,
        "created_at": iso_datetime(payment.created_at),
        "updated_at": iso_datetime(payment.updated_at),
        "receipt": None
        if receipt is None
        else {
            "number": receipt.number,
            "issued_at": iso_datetime(receipt.issued_at),
            "total": receipt.total,
            "card_last4": receipt.card_last4,
            "lines": [
                {
                    "title": line.title,
                    "provider": line.provider,
                    "amount": line.amount,
                    "uin": line.uin,
                    "bill_id": line.bill_id,
                }
                for line in receipt.lines
            ],
        },
        "idempotence_key": payment.idempotence_key,
    }
