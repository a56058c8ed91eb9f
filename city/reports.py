"""«Наш город» over Open311 GeoReport v2 (+ the platform's extensions) and its gazetteer
(domain.ports.CityReports)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import aiohttp
import structlog

from city.transport import OPEN311, CityTransport, Port
from domain.boundary import Boundary
from domain.boundary import from_geojson as boundary_from_geojson
from domain.errors import CityUnavailable, DomainError, NotFound, ReportRefused
from domain.ports import CityReports, CitySession, Place
from domain.reports import (
    AttributeChoice,
    Draft,
    Point,
    Report,
    ReportStatus,
    ReportUpdate,
    Theme,
    ThemeQuestion,
)

log = structlog.get_logger(__name__)

THEMES_TTL = 600.0
OPEN311_MAX_RESULTS = 1000  # one GET requests.json answers at most this many
REPORTS_WINDOW = timedelta(days=90)  # the widest start_date..end_date the contract allows
REPORTS_LEAD = timedelta(days=7)  # the first window starts this long ago
REPORTS_HISTORY = timedelta(days=360)  # with the lead, «Мои обращения» covers a year


class ReportsClient(Port):
    """Open311 calls are the bot's own (its `open311_key`); the gazetteer's are a resident's.
    The themes and their questions are kept for THEMES_TTL seconds."""

    def __init__(self, transport: CityTransport, *, open311_key: str) -> None:
        Port.__init__(self, transport)
        self._open311_key = open311_key
        self._themes: tuple[float, list[Theme]] | None = None
        self._definitions: dict[str, tuple[float, list[ThemeQuestion]]] = {}

    async def themes(self) -> list[Theme]:
        """The catalogue changes a few times a year: kept for THEMES_TTL seconds."""
        cached = self._themes
        if cached is not None and time.monotonic() - cached[0] < THEMES_TTL:
            return cached[1]
        status, body = await self._transport.request("GET", OPEN311 + "/services.json")
        if status != 200:
            raise CityUnavailable(f"services answered {status}")
        themes = [_theme(item) for item in body]
        self._themes = (time.monotonic(), themes)
        return themes

    async def boundary(self, session: CitySession) -> Boundary:
        """A MultiPolygon (Moscow: the old city, Zelenograd, New Moscow) or, from an older
        platform, a Polygon."""
        body = await self._transport.resident_get("/api/v1/geo/boundary", session)
        try:
            return boundary_from_geojson(body)
        except ValueError as error:
            raise CityUnavailable(f"boundary: {error}") from error

    async def search_address(self, session: CitySession, query: str) -> list[Place]:
        body = await self._transport.resident_get(
            "/api/v1/geo/search", session, params={"q": query}
        )
        return [
            Place(address=r["address"], point=Point(r["lat"], r["long"])) for r in body["results"]
        ]

    async def reverse_geocode(self, session: CitySession, point: Point) -> str | None:
        params = {"lat": str(point.lat), "long": str(point.long)}
        status, body = await self._transport.resident_call(
            "GET", "/api/v1/geo/reverse", session, params=params
        )
        if status == 404:
            return None
        if status != 200:
            raise CityUnavailable(f"reverse geocoding answered {status}")
        return str(body["address"])

    async def nearest_address(
        self, session: CitySession, point: Point, within_m: float
    ) -> Place | None:
        """The gazetteer's address nearest to the point within `within_m` (at most 5 km)."""
        params = {
            "lat": str(point.lat),
            "long": str(point.long),
            "radius": str(int(min(max(within_m, 1), 5000))),
        }
        status, body = await self._transport.resident_call(
            "GET", "/api/v1/geo/reverse", session, params=params
        )
        if status == 404:
            return None
        if status != 200:
            raise CityUnavailable(f"reverse geocoding answered {status}")
        lat, long = body.get("lat"), body.get("long")
        if not isinstance(lat, (int, float)) or not isinstance(long, (int, float)):
            return None  # an older platform: the address without its point
        return Place(address=str(body["address"]), point=Point(float(lat), float(long)))

    async def upload_media(self, data: bytes, content_type: str) -> str:
        form = aiohttp.FormData()
        form.add_field("api_key", self._open311_key)
        form.add_field("media", data, filename="photo.jpg", content_type=content_type)
        status, body = await self._transport.request("POST", OPEN311 + "/media", data=form)
        if status != 201:
            raise _open311_error(status, body)
        return str(body["media_url"])

    async def service_definition(self, theme_code: str) -> list[ThemeQuestion]:
        """The theme's questions (GeoReport v2 service definition), kept for THEMES_TTL."""
        cached = self._definitions.get(theme_code)
        if cached is not None and time.monotonic() - cached[0] < THEMES_TTL:
            return cached[1]
        path = f"{OPEN311}/services/{quote(theme_code, safe='')}.json"
        status, body = await self._transport.request("GET", path)
        if status != 200:
            raise _open311_error(status, body)
        definition = [_question(item) for item in body.get("attributes") or []]
        self._definitions[theme_code] = (time.monotonic(), definition)
        return definition

    async def create_report(
        self,
        account_id: str,
        draft: Draft,
        media_urls: list[str],
        attributes: dict[str, list[str]],
        key: str,
    ) -> str:
        form: list[tuple[str, str]] = [
            ("api_key", self._open311_key),
            ("service_code", draft.theme_code or ""),
            ("account_id", account_id),
            ("description", draft.description),
        ]
        if draft.point is not None:
            form += [("lat", str(draft.point.lat)), ("long", str(draft.point.long))]
        if draft.address:
            form.append(("address_string", draft.address))
        if len(media_urls) == 1:
            form.append(("media_url", media_urls[0]))  # the spec's single photo
        else:
            form += [("media_url[]", url) for url in media_urls]  # the platform's extension
        for code, values in attributes.items():
            if len(values) == 1:
                form.append((f"attribute[{code}]", values[0]))
            else:
                form += [(f"attribute[{code}][]", value) for value in values]  # multivaluelist
        # The Idempotence-Key (the platform's extension) makes the POST safe to repeat: a retry
        # after a lost answer gets the request already made, never a second one.
        status, body = await self._transport.request(
            "POST",
            OPEN311 + "/requests.json",
            data=form,
            key=key,
        )
        if status not in (200, 201):
            raise _open311_error(status, body)
        return str(body[0]["service_request_id"])

    async def report(self, report_id: str) -> Report:
        status, body = await self._transport.request(
            "GET", f"{OPEN311}/requests/{quote(report_id)}.json"
        )
        if status != 200:
            raise _open311_error(status, body)
        return _report(body[0])

    async def reports_of(self, account_id: str, *, recent: bool = False) -> list[Report]:
        """Every request of the account made within `REPORTS_HISTORY`, newest first (with
        `recent`, one request: the platform's default window, its last 90 days).

        The contract bounds one answer to a 90-day window of `requested_datetime` (a lone
        `start_date` means the 90 days after it), so the history is asked window by window:
        the first one starts a week ago (a platform clock ahead of ours is still covered), the
        others go back 90 days each; a full window (1000) is paged on by its oldest moment."""
        if recent:
            return await self._reports_in(account_id, None, None)
        first = datetime.now(UTC) - REPORTS_LEAD
        windows: list[tuple[datetime | None, datetime | None]] = [(first, None)]
        end = first
        while first - end < REPORTS_HISTORY:
            windows.append((end - REPORTS_WINDOW, end))
            end -= REPORTS_WINDOW
        found: dict[str, Report] = {}
        for part in await asyncio.gather(
            *(self._reports_in(account_id, start, end) for start, end in windows)
        ):
            found.update((r.id, r) for r in part)
        return sorted(found.values(), key=lambda r: (r.requested_at, r.id), reverse=True)

    async def _reports_in(
        self, account_id: str, start: datetime | None, end: datetime | None
    ) -> list[Report]:
        found: list[Report] = []
        while True:
            params = {"account_id": account_id}
            if start is not None:
                params["start_date"] = start.isoformat()
            if end is not None:
                params["end_date"] = end.isoformat()
            status, body = await self._transport.request(
                "GET", OPEN311 + "/requests.json", params=params
            )
            if status != 200:
                raise _open311_error(status, body)
            page = [_report(item) for item in body]
            found += page
            oldest = min((r.requested_at for r in page), default=None)
            full = len(page) == OPEN311_MAX_RESULTS and start is not None
            if not full or oldest is None or oldest == end:
                return found
            end = oldest  # inclusive: the oldest ones come again and are deduplicated

    async def nearby_open(self, theme_code: str, point: Point, radius_m: int) -> list[Report]:
        params = {
            "service_code": theme_code,
            "status": "open",
            "lat": str(point.lat),
            "long": str(point.long),
            "radius": str(radius_m),
        }
        status, body = await self._transport.request(
            "GET", OPEN311 + "/requests.json", params=params
        )
        if status != 200:
            raise _open311_error(status, body)
        return [_report(item) for item in body]

    async def report_updates(self, report_id: str) -> list[ReportUpdate]:
        path = f"{OPEN311}/requests/{quote(report_id)}/updates.json"
        status, body = await self._transport.request("GET", path)
        if status != 200:
            raise _open311_error(status, body)
        return [
            ReportUpdate(
                update_id=str(u["update_id"]),
                status=ReportStatus.read(u["extended_status"]),
                description=u.get("description") or "",
                media_url=u.get("media_url"),
                at=datetime.fromisoformat(u["updated_datetime"]),
                by_resident=u.get("author") == "resident",
            )
            for u in body
        ]

    async def confirm_report(self, report_id: str, account_id: str) -> Report:
        form = {"api_key": self._open311_key, "account_id": account_id}
        path = f"{OPEN311}/requests/{quote(report_id)}/confirm"
        status, body = await self._transport.request("POST", path, data=form)
        if status != 200:
            raise _open311_error(status, body)
        points = body[0].get("points_credited")
        return replace(_report(body[0]), points_credited=points if type(points) is int else 0)

    async def refute_report(
        self, report_id: str, account_id: str, description: str, media_url: str | None
    ) -> Report:
        form = {"api_key": self._open311_key, "account_id": account_id, "description": description}
        if media_url:
            form["media_url"] = media_url
        path = f"{OPEN311}/requests/{quote(report_id)}/refute"
        status, body = await self._transport.request("POST", path, data=form)
        if status != 200:
            raise _open311_error(status, body)
        return _report(body[0])


# Open311 error descriptions the bot recognises (English ones are the platform's technical
# wording): the first matching fragment names the kind; the handlers say it in Russian.
REFUSAL_KINDS: tuple[tuple[str, str], ...] = (
    ("idempotence-key was used", "key_reused"),
    ("jpeg or png", "photo_format"),
    ("media must be at most", "photo_size"),
    ("multipart", "photo_format"),
    ("media url", "photo_link"),
    ("media_url", "photo_link"),
    ("location parameter", "place"),
    ("lat & long", "place"),
    ("address_id", "place"),
    ("за пределами города", "place"),
    ("фотограф", "photo_required"),
    ("доступна только", "season"),
    ("не заполнено поле", "answer_missing"),
    ("поле «", "answer_bad"),
    ("описание", "description"),
    ("only the author", "not_author"),
    ("only an answered request", "not_answered"),
    ("cannot be moved", "not_answered"),
)


def refusal_kind(description: str) -> str:
    lowered = description.lower()
    return next((kind for fragment, kind in REFUSAL_KINDS if fragment in lowered), "other")


def _open311_error(status: int, body: Any) -> DomainError:
    """Open311 answers errors as [{"code", "description"}]."""
    descriptions: list[str] = []
    if isinstance(body, list):
        descriptions = [str(e.get("description", "")) for e in body if isinstance(e, dict)]
    description = "; ".join(descriptions)
    if status == 404:
        return NotFound(description)
    if status in (400, 409, 422):
        kinds = tuple(dict.fromkeys(refusal_kind(d) for d in descriptions)) or ("other",)
        return ReportRefused(description, kinds)
    log.error("city.open311_failed", status=status)
    return CityUnavailable(f"open311 answered {status}")


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _theme(item: dict[str, Any]) -> Theme:
    season = item.get("seasonal")
    return Theme(
        code=str(item["service_code"]),
        name=item["service_name"],
        group=item.get("group") or "",
        keywords=tuple(k.strip() for k in (item.get("keywords") or "").split(",") if k.strip()),
        description=item.get("description") or "",
        photo_required=bool(item.get("photo_required")),
        season=(season["from"], season["to"]) if season else None,
    )


def _question(item: dict[str, Any]) -> ThemeQuestion:
    return ThemeQuestion(
        code=str(item["code"]),
        datatype=str(item.get("datatype") or "string"),
        required=bool(item.get("required")),
        description=str(item.get("description") or item["code"]),
        order=int(item.get("order") or 0),
        hint=str(item.get("datatype_description") or ""),
        choices=tuple(
            AttributeChoice(key=str(v["key"]), name=str(v.get("name") or v["key"]))
            for v in item.get("values") or []
        ),
        variable=item.get("variable", True) is not False,
    )


def _report(item: dict[str, Any]) -> Report:
    status = item.get("extended_status") or ("closed" if item["status"] == "closed" else "in_work")
    has_point = item.get("lat") is not None and item.get("long") is not None
    return Report(
        id=str(item["service_request_id"]),
        theme_code=str(item.get("service_code") or ""),
        theme_name=item.get("service_name") or "",
        status=ReportStatus.read(status),
        address=item.get("address") or "",
        point=Point(float(item["lat"]), float(item["long"])) if has_point else None,
        requested_at=datetime.fromisoformat(item["requested_datetime"]),
        expected_at=_when(item.get("expected_datetime")),
        status_notes=item.get("status_notes") or "",
        answer_media_url=item.get("answer_media_url"),
        confirm_until=_when(item.get("confirm_until")),
        account_id=item.get("account_id"),
        description=item.get("description") or "",
        media_url=item.get("media_url"),
    )


# mypy checks here that ReportsClient offers the port (domain.ports.CityReports).
_IMPLEMENTS_REPORTS: type[CityReports] = ReportsClient
