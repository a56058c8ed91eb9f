"""Payments, bill lookups by UIN and fines (domain.ports.CityPayments)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

import structlog

from city.api import bill_from
from city.transport import Port
from domain.bills import Bill
from domain.errors import CityUnavailable, NotFound
from domain.payable import Payable, PayableKind, Requisites
from domain.payments import (
    AmountChanged,
    BillAlreadyPaid,
    ExternalCharge,
    Payment,
    PaymentMethod,
    PaymentRefused,
    PaymentStatus,
    Receipt,
    ReceiptLine,
)
from domain.ports import CityPayments, CitySession

log = structlog.get_logger(__name__)


class PaymentsClient(Port):
    """/api/v1/payments, /api/v1/payment-methods, /api/v1/bills/lookup and /api/v1/fines."""

    async def payment_methods(self, session: CitySession) -> list[PaymentMethod]:
        body = await self._transport.resident_get("/api/v1/payment-methods", session)
        return [
            PaymentMethod(
                id=m["id"],
                brand=m["brand"],
                last4=m["last4"],
                expires=m["expires"],
                is_default=m["is_default"],
                requires_confirmation=bool(m.get("requires_confirmation", False)),
            )
            for m in body["methods"]
        ]

    async def create_payment(
        self,
        session: CitySession,
        key: str,
        *,
        payable: Payable,
        amount: int,
        method_id: str | None,
        external: ExternalCharge | None = None,
    ) -> Payment:
        body: dict[str, Any] = {
            "amount": amount,
            "payment_method_id": method_id,
            "external_charge": (
                None
                if external is None
                else {"provider": external.provider, "charge_id": external.charge_id}
            ),
        }
        # Exactly one target, the one the resident confirmed (Payable cannot hold two).
        if payable.kind is PayableKind.DONATION:
            body["fund_id"] = payable.fund_id
        elif payable.kind is PayableKind.REQUISITES:
            assert payable.requisites is not None
            body["requisites"] = asdict(payable.requisites)
        elif payable.kind is PayableKind.TOPUP:
            assert payable.topup is not None
            body["topup"] = asdict(payable.topup)
        else:
            body["bill_ids"] = list(payable.bill_ids)
        # The Idempotence-Key makes this POST safe to repeat: a retry after a timeout gets the
        # same payment back, never a second charge.
        status, answer = await self._transport.resident_call(
            "POST", "/api/v1/payments", session, json=body, key=key
        )
        if status in (200, 201):
            return _decided(_payment(answer))
        reason = answer.get("reason") if isinstance(answer, dict) else None
        if status == 409 and reason == "amount_changed":
            raise AmountChanged(int(answer["amount"]))
        if status == 409:
            raise BillAlreadyPaid(answer.get("bill_ids", []))
        if 400 <= status < 500:
            # A refusal of the request itself: nothing was charged, and sending the same body
            # again would be refused again — never «the bank has not answered».
            log.warning("city.payment_refused", status=status, reason=reason)
            raise PaymentRefused(str(reason or "invalid_request"))
        raise CityUnavailable(f"payments answered {status}")

    async def find_payment(self, session: CitySession, key: str) -> Payment | None:
        body = await self._transport.resident_get(
            "/api/v1/payments", session, params={"idempotence_key": key, "limit": "1"}
        )
        return _decided(_payment(body["payments"][0])) if body["payments"] else None

    async def payment_history(self, session: CitySession, limit: int) -> list[Payment]:
        body = await self._transport.resident_get(
            "/api/v1/payments", session, params={"limit": str(limit)}
        )
        return [_payment(item) for item in body["payments"]]

    async def lookup_bill(self, session: CitySession, uin: str) -> Bill:
        status, body = await self._transport.resident_call(
            "GET", "/api/v1/bills/lookup", session, params={"uin": uin}
        )
        if status == 200:
            return bill_from(body["bill"])
        if status == 409:
            raise BillAlreadyPaid(body.get("bill_ids", []))
        if status in (400, 404):
            raise NotFound(uin)
        raise CityUnavailable(f"bill lookup answered {status}")

    async def find_fines(
        self, session: CitySession, *, sts: str | None = None, driver_license: str | None = None
    ) -> list[Bill]:
        params = {"sts": sts} if sts else {"driver_license": driver_license or ""}
        status, body = await self._transport.resident_call(
            "GET", "/api/v1/fines", session, params=params
        )
        if status == 200:
            return [bill_from(item) for item in body["fines"]]
        if status == 400:
            raise NotFound("document")
        raise CityUnavailable(f"fines answered {status}")


def _decided(payment: Payment) -> Payment:
    """A payment a use case decides about (a charge made or looked up): one whose status the
    contract does not list is an answer not understood — raised as the city not answering,
    so the charge stays in doubt under its key and is asked about again, never called failed,
    paid or waiting for the bank. Raises CityUnavailable."""
    if payment.status is PaymentStatus.UNKNOWN:
        log.warning("city.payment_status_unknown", payment=payment.id)
        raise CityUnavailable("a payment status the contract does not list")
    return payment


def _payment(item: dict[str, Any]) -> Payment:
    receipt = item.get("receipt")
    return Payment(
        id=item["id"],
        status=PaymentStatus.read(item["status"]),
        amount=int(item["amount"]),
        bill_ids=tuple(item["bill_ids"]),
        created_at=datetime.fromisoformat(item["created_at"]),
        card_last4=item.get("card_last4"),
        confirmation_url=item.get("confirmation_url"),
        idempotence_key=item.get("idempotence_key", ""),
        payable=_paid_target(item),
        receipt=None
        if receipt is None
        else Receipt(
            number=receipt["number"],
            issued_at=datetime.fromisoformat(receipt["issued_at"]),
            total=int(receipt["total"]),
            card_last4=receipt.get("card_last4"),
            lines=tuple(
                ReceiptLine(
                    title=line["title"],
                    provider=line["provider"],
                    amount=int(line["amount"]),
                    uin=line.get("uin"),
                    bill_id=line.get("bill_id"),
                )
                for line in receipt["lines"]
            ),
        ),
    )


def _paid_target(item: dict[str, Any]) -> Payable | None:
    """What a payment paid, as the city reports it: its bills, requisites, fund or top-up."""
    try:
        if item.get("fund_id"):
            return Payable.donation(item["fund_id"])
        if item.get("topup"):
            return Payable.top_up(str(item["topup"]["service"]), str(item["topup"]["account"]))
        if item.get("requisites"):
            return Payable.by_requisites(Requisites(**item["requisites"]))
        if item.get("bill_ids"):
            return Payable.bills(item["bill_ids"])
    except (TypeError, ValueError, KeyError):  # a shape this client does not know
        return None
    return None


# mypy checks here that PaymentsClient offers the port (domain.ports.CityPayments).
_IMPLEMENTS_PAYMENTS: type[CityPayments] = PaymentsClient
