"""Geo API: `GET /api/v1/geo/search`, `/api/v1/geo/reverse` and `/api/v1/geo/boundary`."""

from __future__ import annotations

import math

from aiohttp import web

from city.sandbox import gazetteer
from city.sandbox.common import authenticated_resident, error_response

MAX_QUERY_LENGTH = 200

routes = web.RouteTableDef()


@routes.get("/api/v1/geo/search")
async def search(request: web.Request) -> web.Response:
    authenticated_resident(request)
    query = request.query.get("q", "").strip()
    if not query or len(query) > MAX_QUERY_LENGTH:
        return error_response(400, f"q must be 1 to {MAX_QUERY_LENGTH} characters")
    places = gazetteer.search(query)
    return web.json_response(
        {
            "results": [
                {"address": place.address, "lat": place.lat, "long": place.long} for place in places
            ]
        }
    )


@routes.get("/api/v1/geo/reverse")
async def reverse(request: web.Request) -> web.Response:
    authenticated_resident(request)
    point = parse_point(request.query.get("lat"), request.query.get("long"))
    if point is None:
        return error_response(400, "lat and long must be decimal degrees (WGS84)")
    place = gazetteer.nearest(*point)
    if place is None:
        radius = int(gazetteer.REVERSE_RADIUS_M)
        return error_response(404, f"no known address within {radius} m of this point")
    return web.json_response({"address": place.address})


@routes.get("/api/v1/geo/boundary")
async def boundary(request: web.Request) -> web.Response:
    authenticated_resident(request)
    ring = [[long, lat] for long, lat in gazetteer.BOUNDARY]
    return web.json_response({"type": "Polygon", "coordinates": [ring]})


def parse_point(lat_text: str | None, long_text: str | None) -> tuple[float, float] | None:
    """(lat, long) from two decimal strings, or None when either is missing or out of range."""
    lat, long = _degrees(lat_text), _degrees(long_text)
    if lat is None or long is None or not (-90 <= lat <= 90 and -180 <= long <= 180):
        return None
    return lat, long


def _degrees(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None
