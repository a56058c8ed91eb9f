"""`GET /open311/v2/requests.json`: parsing its filters and choosing the requests.

GeoReport v2: `service_request_id` (comma-separated) overrides every other argument;
`service_code` and `status` are comma-separated; `start_date` / `end_date` bound
`requested_datetime` (inclusive) and may not span more than 90 days: without them the window is
the last 90 days, with only one of them the window is the 90 days after `start_date` or before
`end_date`. Extensions: `account_id`, and `lat` + `long` + `radius` (metres). At most 1000
requests, the newest first.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from multidict import MultiMapping

from sandbox import gazetteer
from sandbox.geo_api import parse_point
from sandbox.open311 import ServiceRequest
from sandbox.open311_common import Open311Error, argument

WINDOW = timedelta(days=90)
MAX_RESULTS = 1000
MAX_RADIUS_M = 10_000
STATUSES = frozenset({"open", "closed"})


@dataclass(frozen=True, slots=True)
class Near:
    lat: float
    long: float
    radius_m: float


@dataclass(frozen=True, slots=True)
class RequestQuery:
    ids: tuple[str, ...] | None = None
    codes: frozenset[str] | None = None
    statuses: frozenset[str] | None = None
    start: datetime | None = None
    end: datetime | None = None
    account_id: str | None = None
    near: Near | None = None


def parse_query(params: MultiMapping[str], now: datetime) -> RequestQuery:
    """The query's filters; raises a 400 Open311Error for invalid ones."""
    ids = _listed(params, "service_request_id")
    if ids is not None:
        return RequestQuery(ids=tuple(dict.fromkeys(ids)))
    errors: list[str] = []
    statuses = _listed(params, "status")
    if statuses is not None and not set(statuses) <= STATUSES:
        errors.append("status must be open, closed or both (comma-separated)")
    start = _moment(params, "start_date", errors)
    end = _moment(params, "end_date", errors)
    if start is None and end is None:
        end = now
    if start is None and end is not None:
        start = end - WINDOW
    elif end is None and start is not None:
        end = start + WINDOW
    if start is not None and end is not None:
        if end < start:
            errors.append("end_date is before start_date")
        elif end - start > WINDOW:
            errors.append("start_date and end_date may not span more than 90 days")
    near = _near(params, errors)
    if errors:
        raise Open311Error(400, *errors)
    codes = _listed(params, "service_code")
    return RequestQuery(
        codes=None if codes is None else frozenset(codes),
        statuses=None if statuses is None else frozenset(statuses),
        start=start,
        end=end,
        account_id=argument(params, "account_id"),
        near=near,
    )


def select(requests: Iterable[ServiceRequest], query: RequestQuery) -> list[ServiceRequest]:
    """The requests the query asks for: listed ids in the order given, else newest first."""
    if query.ids is not None:
        by_id = {request.id: request for request in requests}
        return [by_id[i] for i in query.ids if i in by_id][:MAX_RESULTS]
    chosen = [request for request in requests if _matches(request, query)]
    chosen.sort(key=lambda request: (request.requested_at, request.id), reverse=True)
    return chosen[:MAX_RESULTS]


def _matches(request: ServiceRequest, query: RequestQuery) -> bool:
    if query.codes is not None and request.theme.code not in query.codes:
        return False
    if query.statuses is not None and request.extended_status.status not in query.statuses:
        return False
    if query.start is not None and request.requested_at < query.start:
        return False
    if query.end is not None and request.requested_at > query.end:
        return False
    if query.account_id is not None and request.submission.account_id != query.account_id:
        return False
    return query.near is None or _is_near(request, query.near)


def _is_near(request: ServiceRequest, near: Near) -> bool:
    location = request.submission.location
    if location.lat is None or location.long is None:
        return False
    distance = gazetteer.distance_m(near.lat, near.long, location.lat, location.long)
    return distance <= near.radius_m


def _listed(params: MultiMapping[str], name: str) -> list[str] | None:
    """A comma-separated argument (also repeated), without blanks; None when not given."""
    values = [item.strip() for value in params.getall(name, []) for item in value.split(",")]
    values = [value for value in values if value]
    return values or None


def _moment(params: MultiMapping[str], name: str, errors: list[str]) -> datetime | None:
    text = argument(params, name)
    if text is None:
        return None
    # An unencoded '+' of the offset arrives as a space.
    text = text.replace(" ", "+")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        errors.append(f"{name} must be a w3 datetime, e.g. 2026-03-01T00:00:00+03:00")
        return None
    if moment.tzinfo is None:
        errors.append(f"{name} must carry a timezone (Z or ±HH:MM)")
        return None
    return moment


def _near(params: MultiMapping[str], errors: list[str]) -> Near | None:
    lat, long, radius = (argument(params, name) for name in ("lat", "long", "radius"))
    if lat is None and long is None and radius is None:
        return None
    point = parse_point(lat, long)
    radius_m = _radius(radius)
    if point is None or radius_m is None:
        errors.append(f"lat, long and radius (metres, 1 to {MAX_RADIUS_M}) must be given together")
        return None
    return Near(point[0], point[1], radius_m)


def _radius(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if 1 <= value <= MAX_RADIUS_M else None
