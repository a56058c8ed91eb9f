"""Top-up services and balances (domain.ports.CityTopups); the top-up itself is a payment
(city/payments.py sends a TOPUP payable as `topup`)."""

from __future__ import annotations

from typing import Any

from city.transport import Port
from domain.errors import CityUnavailable
from domain.ports import CitySession, CityTopups
from domain.topups import (
    AccountBalance,
    ServiceInfo,
    TopupLimits,
    TopupRefused,
    TopupService,
    UnknownTopupAccount,
)


class TopupsClient(Port):
    """/api/v1/topup-services and /api/v1/topup-balance on behalf of a resident."""

    async def topup_services(self, session: CitySession) -> list[ServiceInfo]:
        body = await self._transport.resident_get("/api/v1/topup-services", session)
        known = {s.value for s in TopupService}
        return [_service(item) for item in body["services"] if item["code"] in known]

    async def topup_balance(
        self, session: CitySession, service: TopupService, account: str
    ) -> AccountBalance:
        status, body = await self._transport.resident_call(
            "GET",
            "/api/v1/topup-balance",
            session,
            params={"service": service.value, "account": account},
        )
        if status == 200:
            balance = body["balance"]
            return AccountBalance(service, account, None if balance is None else int(balance))
        if status == 404:
            raise UnknownTopupAccount(service.value)
        if status == 400:
            reason = body.get("reason") if isinstance(body, dict) else None
            raise TopupRefused(str(reason or "invalid_request"))
        raise CityUnavailable(f"topup balance answered {status}")


def _service(item: dict[str, Any]) -> ServiceInfo:
    max_balance = item.get("max_balance")
    return ServiceInfo(
        code=TopupService(item["code"]),
        title=str(item["title"]),
        limits=TopupLimits(
            min_amount=int(item["min_amount"]),
            max_amount=int(item["max_amount"]),
            max_balance=None if max_balance is None else int(max_balance),
        ),
        own_accounts=tuple(str(a) for a in item.get("own_accounts", [])),
        fixed_amount=item.get("fixed_amount") is True,  # absent or not true: it does not
    )


# mypy checks here that TopupsClient offers the port (domain.ports.CityTopups).
_IMPLEMENTS_TOPUPS: type[CityTopups] = TopupsClient
