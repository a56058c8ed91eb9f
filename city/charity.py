"""Funds, «Вы помогали», points and meters (domain.ports.CityCharity)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from city.transport import Port
from domain.charity import Fund, FundCategory, PastDonation
from domain.errors import CityUnavailable, NotFound
from domain.meters import (
    LastReading,
    Meter,
    MeterKind,
    NothingToCorrect,
    ReadingAlreadySubmitted,
    ReadingBelowPrevious,
    SubmittedReading,
    Window,
    WindowClosed,
)
from domain.points import InsufficientPoints, PointsAccount, PointsEntry, Transfer
from domain.ports import CityCharity, CitySession


class CharityClient(Port):
    """/api/v1/fund-categories, funds, donations, points and meters on behalf of a resident."""

    async def fund_categories(self, session: CitySession) -> list[FundCategory]:
        body = await self._transport.resident_get("/api/v1/fund-categories", session)
        return [FundCategory(c["id"], c["title"], int(c["count"])) for c in body["categories"]]

    async def funds(self, session: CitySession, category: str | None) -> list[Fund]:
        params = {"category": category} if category else None
        body = await self._transport.resident_get("/api/v1/funds", session, params=params)
        return [_fund(item) for item in body["funds"]]

    async def fund(self, session: CitySession, fund_id: str) -> Fund:
        return _fund(await self._transport.resident_get(f"/api/v1/funds/{quote(fund_id)}", session))

    async def donations(self, session: CitySession) -> list[PastDonation]:
        body = await self._transport.resident_get("/api/v1/donations", session)
        return [
            PastDonation(
                fund_id=d["fund_id"],
                fund_name=d["fund_name"],
                last_amount=int(d["last_amount"]),
                last_donated_at=datetime.fromisoformat(d["last_donated_at"]),
                total=int(d["total"]),
                count=int(d["count"]),
            )
            for d in body["donations"]
        ]

    async def points(self, session: CitySession, limit: int) -> PointsAccount:
        body = await self._transport.resident_get(
            "/api/v1/points", session, params={"limit": str(limit)}
        )
        return PointsAccount(
            balance=int(body["balance"]),
            pending=tuple(_points_entry(e) for e in body["pending"]),
            entries=tuple(_points_entry(e) for e in body["entries"]),
        )

    async def transfer_points(
        self, session: CitySession, key: str, fund_id: str, points: int
    ) -> Transfer:
        status, body = await self._transport.resident_call(
            "POST",
            "/api/v1/points/transfers",
            session,
            json={"fund_id": fund_id, "points": points},
            key=key,  # the key makes a retry harmless
        )
        if status in (200, 201):
            transfer = body["transfer"]
            return Transfer(
                id=transfer["id"],
                fund_id=transfer["fund_id"],
                fund_name=transfer["fund_name"],
                points=int(transfer["points"]),
                balance=int(body["balance"]),
            )
        if status == 409:
            raise InsufficientPoints(int(body.get("balance", 0)))
        if status == 404:
            raise NotFound(fund_id)
        raise CityUnavailable(f"points transfer answered {status}")

    async def meters(self, session: CitySession) -> list[Meter]:
        body = await self._transport.resident_get("/api/v1/meters", session)
        # A meter of a kind this bot has no rules for (its window, its decimals) is left out,
        # not an error that hides the others (review 27).
        known = {kind.value for kind in MeterKind}
        return [_meter(item) for item in body["meters"] if item.get("kind") in known]

    async def submit_reading(
        self, session: CitySession, key: str, meter_id: str, value: str
    ) -> SubmittedReading:
        """The period's first reading. Raises WindowClosed, ReadingAlreadySubmitted,
        ReadingBelowPrevious, NotFound."""
        return await self._send_reading(session, key, meter_id, {"value": value})

    async def correct_reading(
        self, session: CitySession, key: str, meter_id: str, value: str
    ) -> SubmittedReading:
        """Replace this period's reading (`"correction": true`; no points). Raises
        WindowClosed, NothingToCorrect, ReadingBelowPrevious, NotFound."""
        body = {"value": value, "correction": True}
        return await self._send_reading(session, key, meter_id, body)

    async def _send_reading(
        self, session: CitySession, key: str, meter_id: str, request: dict[str, Any]
    ) -> SubmittedReading:
        status, body = await self._transport.resident_call(
            "POST",
            f"/api/v1/meters/{quote(meter_id)}/readings",
            session,
            json=request,
            key=key,  # the key makes a retry harmless
        )
        if status in (200, 201):
            reading = body["reading"]
            return SubmittedReading(
                value=_meter_value(reading["value"]),
                period=reading["period"],
                points_credited=int(body["points_credited"]),
            )
        reason = body.get("reason") if isinstance(body, dict) else None
        if status == 409 and reason == "window_closed":
            raise WindowClosed(date.fromisoformat(body["opens_on"]))
        if status == 409 and reason == "below_previous":
            raise ReadingBelowPrevious(_meter_value(body["last_value"]))
        if status == 409 and reason == "already_submitted":
            raise ReadingAlreadySubmitted(body["period"], _meter_value(body["value"]))
        if status == 409 and reason == "nothing_to_correct":
            raise NothingToCorrect(body["period"])
        if status in (400, 404):
            raise NotFound(meter_id)
        raise CityUnavailable(f"meter reading answered {status}")


def _fund(item: dict[str, Any]) -> Fund:
    return Fund(
        id=item["id"],
        name=item["name"],
        category=item["category"],
        summary=item["summary"],
        description=item["description"],
        programs=tuple(item["programs"]),
        report_url=item["report_url"],
        report_period=item["report_period"],
    )


def _points_entry(item: dict[str, Any]) -> PointsEntry:
    return PointsEntry(
        id=item["id"],
        amount=int(item["amount"]),
        kind=item["kind"],
        reason=item["reason"],
        created_at=datetime.fromisoformat(item["created_at"]),
        available_at=datetime.fromisoformat(item["available_at"]),
    )


def _meter_value(raw: object) -> Decimal:
    """The contract's MeterValue («123.456», «15234») → Decimal. Anything else is a broken
    answer (CityUnavailable), never Decimal() of whatever came: «1e999999999» would pass it."""
    digits = "0123456789"
    whole, dot, fraction = raw.partition(".") if isinstance(raw, str) else ("", "", "")
    if (
        not 1 <= len(whole) <= 9
        or any(ch not in digits for ch in whole + fraction)
        or (dot and not 1 <= len(fraction) <= 3)
    ):
        raise CityUnavailable("the platform sent a malformed meter value")
    return Decimal(whole + dot + fraction)


def _meter(item: dict[str, Any]) -> Meter:
    last = item.get("last_reading")
    window = item["window"]
    return Meter(
        id=item["id"],
        kind=MeterKind(item["kind"]),
        serial=item["serial"],
        unit=item["unit"],
        last_reading=None
        if last is None
        else LastReading(
            value=_meter_value(last["value"]),
            period=last["period"],
            submitted_at=datetime.fromisoformat(last["submitted_at"]),
        ),
        current_period=item["current_period"],
        submitted_this_period=bool(item["submitted_this_period"]),
        window=Window(
            opens_on=date.fromisoformat(window["opens_on"]),
            closes_on=date.fromisoformat(window["closes_on"]),
        ),
    )


# mypy checks here that CharityClient offers the port (domain.ports.CityCharity).
_IMPLEMENTS_CHARITY: type[CityCharity] = CharityClient
