"""Meters API: `GET /api/v1/meters` and `POST /api/v1/meters/{meter_id}/readings` (a reading,
or with `"correction": true` a correction of this period's reading)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from sandbox.common import Refused, authenticated_resident, error_response, iso_datetime
from sandbox.meters import (
    MAX_VALUE,
    CityMeter,
    MeterBook,
    Reading,
    format_value,
    parse_value,
)
from sandbox.points_api import keyed_json

METERS_KEY = web.AppKey("sandbox_meters", MeterBook)

routes = web.RouteTableDef()


@routes.get("/api/v1/meters")
async def meters(request: web.Request) -> web.Response:
    resident = authenticated_resident(request)
    book = request.app[METERS_KEY]
    found = book.meters_of(resident.account_id)
    return web.json_response({"meters": [meter_json(book, meter) for meter in found]})


@routes.post("/api/v1/meters/{meter_id}/readings")
async def submit_reading(request: web.Request) -> web.Response:
    resident = authenticated_resident(request)
    keyed = await keyed_json(request)
    if isinstance(keyed, web.Response):
        return keyed
    key, body = keyed
    if (
        not isinstance(body, dict)
        or "value" not in body
        or not set(body) <= {"value", "correction"}
        or not isinstance(body["value"], str)
        or not isinstance(body.get("correction", False), bool)
    ):
        return error_response(
            400, 'the body must be {"value": "<decimal as a string>", "correction": <bool>}'
        )
    book = request.app[METERS_KEY]
    meter = book.meter_of(resident.account_id, request.match_info["meter_id"])
    if meter is None:
        return error_response(404, f"no meter {request.match_info['meter_id']!r}")
    value = parse_value(meter.kind, body["value"])
    if value is None:
        wanted = (
            "a non-negative decimal with at most 3 decimals, e.g. 123.456"
            if meter.kind.is_water
            else "a non-negative integer, e.g. 15234"
        )
        most = format_value(meter.kind, MAX_VALUE[meter.kind])
        return error_response(400, f"value must be {wanted}, at most {most}")
    try:
        answer, created = book.submit(
            resident, key, meter, value, correction=body.get("correction", False)
        )
    except Refused as refused:
        return refused.response()
    return web.json_response(
        {
            "reading": reading_json(meter, answer.reading),
            "points_credited": answer.points_credited,
        },
        status=201 if created else 200,
    )


def meter_json(book: MeterBook, meter: CityMeter) -> dict[str, Any]:
    """The contract's `Meter`."""
    window, is_open = book.window(meter)
    last = meter.last_reading
    return {
        "id": meter.id,
        "kind": meter.kind.value,
        "serial": meter.serial,
        "unit": meter.kind.unit,
        "last_reading": None if last is None else reading_json(meter, last),
        "current_period": str(window.period),
        "submitted_this_period": window.period in meter.readings,
        "window": {
            "opens_on": window.opens_on.isoformat(),
            "closes_on": window.closes_on.isoformat(),
            "open": is_open,
        },
    }


def reading_json(meter: CityMeter, reading: Reading) -> dict[str, Any]:
    return {
        "value": format_value(meter.kind, reading.value),
        "period": str(reading.period),
        "submitted_at": iso_datetime(reading.submitted_at),
    }
