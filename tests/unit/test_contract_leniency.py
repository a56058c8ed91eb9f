"""A value the city's contract does not list (one the platform added after this bot) is read
leniently, never as an error that hides the resident's other bills, payments, reports or
meters (review 27): each enum the client reads from an answer has its safe reading."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from city.api import bill_from
from city.charity import CharityClient
from city.payments import _decided, _payment
from city.reports import _report
from domain.accounts import AccountLevel
from domain.bills import BillKind
from domain.errors import CityUnavailable
from domain.payments import PaymentStatus
from domain.reports import ReportStatus

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC).isoformat()


def test_a_payment_of_an_unknown_status_is_listed_as_unknown_and_decided_about_never() -> None:
    item = {"id": "p1", "status": "refunded", "amount": 100, "bill_ids": [], "created_at": NOW}
    payment = _payment(item)
    assert payment.status is PaymentStatus.UNKNOWN and not payment.status.final
    with pytest.raises(CityUnavailable):  # a charge made or looked up: in doubt, key kept
        _decided(payment)
    assert PaymentStatus.read("succeeded") is PaymentStatus.SUCCEEDED
    assert PaymentStatus.read("unknown") is PaymentStatus.UNKNOWN


def test_a_bill_of_an_unknown_kind_is_other() -> None:
    item = {
        "id": "b1",
        "kind": "gas",
        "title": "Газ",
        "provider": "Мосгаз",
        "amount": 100,
        "due_date": "2026-12-10",
    }
    assert bill_from(item).kind is BillKind.OTHER
    assert BillKind.read("epd") is BillKind.EPD


def test_a_report_of_an_unknown_status_is_still_followed() -> None:
    item: dict[str, Any] = {
        "service_request_id": 7,
        "status": "open",
        "extended_status": "planned",
        "requested_datetime": NOW,
    }
    report = _report(item)
    assert report.status is ReportStatus.IN_WORK and not report.status.final


@pytest.mark.parametrize(
    ("raw", "level"), [("full", AccountLevel.FULL), ("gold", AccountLevel.SIMPLE)]
)
def test_an_unknown_account_level_allows_least(raw: str, level: AccountLevel) -> None:
    assert AccountLevel.read(raw) is level


async def test_a_meter_of_an_unknown_kind_leaves_the_others_listed() -> None:
    def meter(meter_id: str, kind: str) -> dict[str, Any]:
        return {
            "id": meter_id,
            "kind": kind,
            "serial": "1",
            "unit": "m3",
            "last_reading": None,
            "current_period": "11.2026",
            "submitted_this_period": False,
            "window": {"opens_on": "2026-11-15", "closes_on": "2026-12-03", "open": True},
        }

    class Transport:
        async def resident_get(self, path: str, session: object, **_: Any) -> dict[str, Any]:
            assert path == "/api/v1/meters"
            return {"meters": [meter("m1", "gas"), meter("m2", "cold_water")]}

    client = CharityClient(Transport())  # type: ignore[arg-type]
    meters = await client.meters(object())  # type: ignore[arg-type]
    assert [m.id for m in meters] == ["m2"]
