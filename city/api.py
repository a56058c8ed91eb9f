"""The resident's profile and bills (domain.ports.CityApi)."""

from __future__ import annotations

from datetime import date
from typing import Any

from city.transport import Port
from domain.accounts import AccountLevel, CityProfile
from domain.bills import Bill, BillKind
from domain.ports import CityApi, CitySession


class ApiClient(Port):
    """/api/v1/profile and /api/v1/bills on behalf of a resident."""

    async def profile(self, session: CitySession) -> CityProfile:
        body = await self._transport.resident_get("/api/v1/profile", session)
        return CityProfile(
            account_id=body["account_id"],
            full_name=body["full_name"],
            level=AccountLevel.read(body["account_level"]),
        )

    async def unpaid_bills(self, session: CitySession) -> list[Bill]:
        body = await self._transport.resident_get(
            "/api/v1/bills", session, params={"status": "unpaid"}
        )
        return [bill_from(item) for item in body["bills"]]

    async def paid_bills(self, session: CitySession) -> list[Bill]:
        body = await self._transport.resident_get(
            "/api/v1/bills", session, params={"status": "paid"}
        )
        return [bill_from(item) for item in body["bills"]]


def bill_from(item: dict[str, Any]) -> Bill:
    """The contract's Bill (also in bill lookups and fines, city/payments.py) → Bill."""
    return Bill(
        id=item["id"],
        kind=BillKind.read(item["kind"]),
        title=item["title"],
        provider=item["provider"],
        amount=int(item["amount"]),
        due_date=date.fromisoformat(item["due_date"]),
        uin=item.get("uin"),
        payer_code=item.get("payer_code"),
        period=item.get("period"),
        paid=item.get("status") == "paid",
    )


# mypy checks here that ApiClient offers the port (domain.ports.CityApi).
_IMPLEMENTS_API: type[CityApi] = ApiClient
