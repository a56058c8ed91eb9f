"""Geo API: `GET /api/v1/geo/search`, `/api/v1/geo/reverse` and `/api/v1/geo/boundary`."""

from __future__ import annotations

import math

from aiohttp import web

from sandbox import gazetteer
from sandbox.common import authenticated_resident, error_response

MAX_QUERY_LENGTH = 200
MAX_RADIUS_M = 5000

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
    radius = _radius(request.query.get("radius"))
    if radius is None:
        return error_response(400, f"radius must be a whole number of metres, 1 to {MAX_RADIUS_M}")
    place = gazetteer.nearest(*point, within_m=radius)
    if place is None:
        return error_response(404, f"no known address within {radius} m of this point")
    return web.json_response({"address": place.address, "lat": place.lat, "long": place.long})


@routes.get("/api/v1/geo/boundary")
async def boundary(request: web.Request) -> web.Response:
    authenticated_resident(request)
    polygons = [[[[long, lat] for long, lat in ring]] for ring in gazetteer.AREAS]
    return web.json_response({"type": "MultiPolygon", "coordinates": polygons})


def _radius(text: str | None) -> int | None:
    """The reverse lookup's radius in metres (300 when not given), None when invalid."""
    if text is None:
        return int(gazetteer.REVERSE_RADIUS_M)
    value = text.strip()
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= MAX_RADIUS_M:
        return None
    return int(value)


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
