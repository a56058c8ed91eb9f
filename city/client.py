"""The bot's client for the city platform (REST + OAuth), as described in city/openapi.yaml.

Every call has a deadline; idempotent reads are retried with backoff inside it; a 401 on a
resident's call refreshes the token once. Failures become domain errors, so the rest of the bot
never sees aiohttp.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import structlog

from domain.accounts import AccountLevel, CityProfile, TokenSet
from domain.bills import Bill, BillKind
from domain.boundary import Boundary
from domain.boundary import from_geojson as boundary_from_geojson
from domain.charity import Fund, FundCategory, PastDonation
from domain.errors import (
    CityUnavailable,
    DomainError,
    InvalidGrant,
    NotFound,
    RelinkRequired,
    ReportRefused,
)
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
from domain.points import InsufficientPoints, PointsAccount, PointsEntry, Transfer
from domain.ports import CitySession, Place
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

RETRYABLE_STATUSES = frozenset({500, 502, 503, 504})
# method, path, status (0: no answer), seconds, failure or None — for metrics
Observer = Callable[[str, str, int, float, str | None], None]
OPEN311 = "/open311/v2"
THEMES_TTL = 600.0
OPEN311_MAX_RESULTS = 1000  # one GET requests.json answers at most this many
REPORTS_WINDOW = timedelta(days=90)  # the widest start_date..end_date the contract allows
REPORTS_LEAD = timedelta(days=7)  # the first window starts this long ago
REPORTS_HISTORY = timedelta(days=360)  # with the lead, «Мои обращения» covers a year


class _Unauthorized(Exception):
    pass


class CityClient:
    """Implements the city ports (domain.ports.City) over HTTP."""

    def __init__(
        self,
        base_url: str,
        *,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        attempt_timeout: float = 3.0,
        deadline: float = 6.0,
        read_retries: int = 2,
        backoff: float = 0.2,
        open311_key: str = "sandbox-open311-key",
        observe: Observer | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._client_id = client_id
        self._client_secret = client_secret
        self.redirect_uri = redirect_uri
        self._attempt_timeout = attempt_timeout
        self._deadline = deadline
        self._read_retries = read_retries
        self._backoff = backoff
        self._open311_key = open311_key
        self._themes: tuple[float, list[Theme]] | None = None
        self._definitions: dict[str, tuple[float, list[ThemeQuestion]]] = {}
        self._observe = observe
        self._http: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(headers={"Accept": "application/json"})
        return self._http

    # --- OAuth (CityAuth) ---------------------------------------------------------------

    def authorization_url(self, *, state: str, code_challenge: str) -> str:
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self._client_id,
                "redirect_uri": self.redirect_uri,
                "state": state,
                "code_challenge": code_challenge,
                "code_challenge_method": "S256",
            }
        )
        return f"{self.base_url}/oauth/authorize?{query}"

    async def exchange_code(self, *, code: str, code_verifier: str) -> TokenSet:
        return await self._token_request(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": self.redirect_uri,
                "code_verifier": code_verifier,
            }
        )

    async def refresh(self, refresh_token: str) -> TokenSet:
        return await self._token_request(
            {"grant_type": "refresh_token", "refresh_token": refresh_token}
        )

    async def revoke(self, token: str) -> None:
        form = {"token": token, "token_type_hint": "refresh_token", **self._client_form()}
        status, _ = await self._request("POST", "/oauth/revoke", data=form, retries=0)
        if status != 200:
            raise CityUnavailable(f"revoke answered {status}")

    # --- resident API (CityApi) -----------------------------------------------------------

    async def profile(self, session: CitySession) -> CityProfile:
        body = await self._resident_get("/api/v1/profile", session)
        return CityProfile(
            account_id=body["account_id"],
            full_name=body["full_name"],
            level=AccountLevel(body["account_level"]),
        )

    async def unpaid_bills(self, session: CitySession) -> list[Bill]:
        body = await self._resident_get("/api/v1/bills", session, params={"status": "unpaid"})
        return [_bill(item) for item in body["bills"]]

    async def paid_bills(self, session: CitySession) -> list[Bill]:
        body = await self._resident_get("/api/v1/bills", session, params={"status": "paid"})
        return [_bill(item) for item in body["bills"]]

    # --- charity, points, meters (CityCharity) -------------------------------------------

    async def fund_categories(self, session: CitySession) -> list[FundCategory]:
        body = await self._resident_get("/api/v1/fund-categories", session)
        return [FundCategory(c["id"], c["title"], int(c["count"])) for c in body["categories"]]

    async def funds(self, session: CitySession, category: str | None) -> list[Fund]:
        params = {"category": category} if category else None
        body = await self._resident_get("/api/v1/funds", session, params=params)
        return [_fund(item) for item in body["funds"]]

    async def fund(self, session: CitySession, fund_id: str) -> Fund:
        return _fund(await self._resident_get(f"/api/v1/funds/{quote(fund_id)}", session))

    async def donations(self, session: CitySession) -> list[PastDonation]:
        body = await self._resident_get("/api/v1/donations", session)
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
        body = await self._resident_get("/api/v1/points", session, params={"limit": str(limit)})
        return PointsAccount(
            balance=int(body["balance"]),
            pending=tuple(_points_entry(e) for e in body["pending"]),
            entries=tuple(_points_entry(e) for e in body["entries"]),
        )

    async def transfer_points(
        self, session: CitySession, key: str, fund_id: str, points: int
    ) -> Transfer:
        status, body = await self._resident_call(
            "POST",
            "/api/v1/points/transfers",
            session,
            json={"fund_id": fund_id, "points": points},
            headers={"Idempotence-Key": key},
            retries=self._read_retries,  # the key makes a retry harmless
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
        body = await self._resident_get("/api/v1/meters", session)
        return [_meter(item) for item in body["meters"]]

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
        status, body = await self._resident_call(
            "POST",
            f"/api/v1/meters/{quote(meter_id)}/readings",
            session,
            json=request,
            headers={"Idempotence-Key": key},
            retries=self._read_retries,  # the key makes a retry harmless
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

    # --- «Наш город»: Open311 GeoReport v2 and the gazetteer (CityReports) ---------------

    async def themes(self) -> list[Theme]:
        """The catalogue changes a few times a year: kept for THEMES_TTL seconds."""
        cached = self._themes
        if cached is not None and time.monotonic() - cached[0] < THEMES_TTL:
            return cached[1]
        status, body = await self._request("GET", OPEN311 + "/services.json")
        if status != 200:
            raise CityUnavailable(f"services answered {status}")
        themes = [_theme(item) for item in body]
        self._themes = (time.monotonic(), themes)
        return themes

    async def boundary(self, session: CitySession) -> Boundary:
        """A MultiPolygon (Moscow: the old city, Zelenograd, New Moscow) or, from an older
        platform, a Polygon."""
        body = await self._resident_get("/api/v1/geo/boundary", session)
        try:
            return boundary_from_geojson(body)
        except ValueError as error:
            raise CityUnavailable(f"boundary: {error}") from error

    async def search_address(self, session: CitySession, query: str) -> list[Place]:
        body = await self._resident_get("/api/v1/geo/search", session, params={"q": query})
        return [
            Place(address=r["address"], point=Point(r["lat"], r["long"])) for r in body["results"]
        ]

    async def reverse_geocode(self, session: CitySession, point: Point) -> str | None:
        params = {"lat": str(point.lat), "long": str(point.long)}
        status, body = await self._resident_call(
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
        status, body = await self._resident_call(
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
        status, body = await self._request("POST", OPEN311 + "/media", data=form)
        if status != 201:
            raise _open311_error(status, body)
        return str(body["media_url"])

    async def service_definition(self, theme_code: str) -> list[ThemeQuestion]:
        """The theme's questions (GeoReport v2 service definition), kept for THEMES_TTL."""
        cached = self._definitions.get(theme_code)
        if cached is not None and time.monotonic() - cached[0] < THEMES_TTL:
            return cached[1]
        path = f"{OPEN311}/services/{quote(theme_code, safe='')}.json"
        status, body = await self._request("GET", path)
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
        status, body = await self._request(
            "POST",
            OPEN311 + "/requests.json",
            data=form,
            headers={"Idempotence-Key": key},
            retries=self._read_retries,
        )
        if status not in (200, 201):
            raise _open311_error(status, body)
        return str(body[0]["service_request_id"])

    async def report(self, report_id: str) -> Report:
        status, body = await self._request("GET", f"{OPEN311}/requests/{quote(report_id)}.json")
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
            status, body = await self._request("GET", OPEN311 + "/requests.json", params=params)
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
        status, body = await self._request("GET", OPEN311 + "/requests.json", params=params)
        if status != 200:
            raise _open311_error(status, body)
        return [_report(item) for item in body]

    async def report_updates(self, report_id: str) -> list[ReportUpdate]:
        path = f"{OPEN311}/requests/{quote(report_id)}/updates.json"
        status, body = await self._request("GET", path)
        if status != 200:
            raise _open311_error(status, body)
        return [
            ReportUpdate(
                update_id=str(u["update_id"]),
                status=ReportStatus(u["extended_status"]),
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
        status, body = await self._request("POST", path, data=form)
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
        status, body = await self._request("POST", path, data=form)
        if status != 200:
            raise _open311_error(status, body)
        return _report(body[0])

    async def ping(self) -> None:
        """For readiness: the platform answers a cheap public request, or this raises."""
        status, _ = await self._request("GET", OPEN311 + "/discovery.json", retries=0)
        if status != 200:
            raise CityUnavailable(f"discovery answered {status}")

    # --- plumbing -----------------------------------------------------------------------

    def _client_form(self) -> dict[str, str]:
        return {"client_id": self._client_id, "client_secret": self._client_secret}

    async def _token_request(self, form: dict[str, str]) -> TokenSet:
        status, body = await self._request(
            "POST", "/oauth/token", data={**form, **self._client_form()}, retries=0
        )
        if status == 400 and isinstance(body, dict) and body.get("error") == "invalid_grant":
            raise InvalidGrant(str(body.get("error_description", "")))
        if status != 200 or not isinstance(body, dict):
            log.error("city.token_failed", status=status)
            raise CityUnavailable(f"token endpoint answered {status}")
        return TokenSet(
            access_token=body["access_token"],
            refresh_token=body.get("refresh_token") or form.get("refresh_token", ""),
            expires_at=datetime.now(UTC) + timedelta(seconds=int(body["expires_in"])),
        )

    async def _resident_get(
        self, path: str, session: CitySession, params: dict[str, str] | None = None
    ) -> Any:
        status, body = await self._resident_call("GET", path, session, params=params)
        if status == 404:
            raise NotFound(path)
        if status != 200:
            raise CityUnavailable(f"{path} answered {status}")
        return body

    async def _resident_call(
        self, method: str, path: str, session: CitySession, **kwargs: Any
    ) -> tuple[int, Any]:
        """A call on behalf of a resident: on 401 the token is refreshed once."""
        extra_headers = kwargs.pop("headers", {})
        for attempt in range(2):
            headers = {"Authorization": f"Bearer {session.access_token}", **extra_headers}
            status, body = await self._request(method, path, headers=headers, **kwargs)
            if status == 401 and attempt == 0:
                await session.refresh()
                continue
            if status == 401:
                raise RelinkRequired()
            return status, body
        raise RelinkRequired()  # pragma: no cover - the loop always returns or raises

    # --- payments (CityPayments) --------------------------------------------------------

    async def payment_methods(self, session: CitySession) -> list[PaymentMethod]:
        body = await self._resident_get("/api/v1/payment-methods", session)
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
        else:
            body["bill_ids"] = list(payable.bill_ids)
        # The Idempotence-Key makes this POST safe to repeat: a retry after a timeout gets the
        # same payment back, never a second charge.
        status, answer = await self._resident_call(
            "POST",
            "/api/v1/payments",
            session,
            json=body,
            headers={"Idempotence-Key": key},
            retries=self._read_retries,
        )
        if status in (200, 201):
            return _payment(answer)
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
        body = await self._resident_get(
            "/api/v1/payments", session, params={"idempotence_key": key, "limit": "1"}
        )
        return _payment(body["payments"][0]) if body["payments"] else None

    async def payment_history(self, session: CitySession, limit: int) -> list[Payment]:
        body = await self._resident_get("/api/v1/payments", session, params={"limit": str(limit)})
        return [_payment(item) for item in body["payments"]]

    async def lookup_bill(self, session: CitySession, uin: str) -> Bill:
        status, body = await self._resident_call(
            "GET", "/api/v1/bills/lookup", session, params={"uin": uin}
        )
        if status == 200:
            return _bill(body["bill"])
        if status == 409:
            raise BillAlreadyPaid(body.get("bill_ids", []))
        if status in (400, 404):
            raise NotFound(uin)
        raise CityUnavailable(f"bill lookup answered {status}")

    async def find_fines(
        self, session: CitySession, *, sts: str | None = None, driver_license: str | None = None
    ) -> list[Bill]:
        params = {"sts": sts} if sts else {"driver_license": driver_license or ""}
        status, body = await self._resident_call("GET", "/api/v1/fines", session, params=params)
        if status == 200:
            return [_bill(item) for item in body["fines"]]
        if status == 400:
            raise NotFound("document")
        raise CityUnavailable(f"fines answered {status}")

    async def _request(
        self,
        method: str,
        path: str,
        *,
        retries: int | None = None,
        **kwargs: Any,
    ) -> tuple[int, Any]:
        """One call within the deadline; GETs are retried on timeouts, network errors and 5xx."""
        if retries is None:
            retries = self._read_retries if method == "GET" else 0
        deadline = time.monotonic() + self._deadline
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            timeout = aiohttp.ClientTimeout(total=max(0.05, min(self._attempt_timeout, remaining)))
            started = time.monotonic()
            try:
                async with self.http.request(
                    method, self.base_url + path, timeout=timeout, **kwargs
                ) as response:
                    body = await _read_body(response)
                    status = response.status
            except (TimeoutError, aiohttp.ClientError) as exc:
                status, body, failure = 0, None, type(exc).__name__
            else:
                failure = None if status not in RETRYABLE_STATUSES else f"http {status}"
            if self._observe is not None:
                self._observe(method, path, status, time.monotonic() - started, failure)
            log.debug(
                "city.call",
                method=method,
                path=path,
                status=status,
                ms=round((time.monotonic() - started) * 1000),
            )
            if failure is None:
                return status, body
            pause = self._backoff * (2**attempt)
            if attempt >= retries or time.monotonic() + pause >= deadline:
                log.warning("city.unavailable", method=method, path=path, failure=failure)
                raise CityUnavailable(f"{method} {path}: {failure}")
            attempt += 1
            await asyncio.sleep(pause)


async def _read_body(response: aiohttp.ClientResponse) -> Any:
    if response.content_type == "application/json":
        return await response.json()
    return await response.text()


def _payment(item: dict[str, Any]) -> Payment:
    receipt = item.get("receipt")
    return Payment(
        id=item["id"],
        status=PaymentStatus(item["status"]),
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
    """What a payment paid, as the city reports it: its bills, requisites or fund."""
    try:
        if item.get("fund_id"):
            return Payable.donation(item["fund_id"])
        if item.get("requisites"):
            return Payable.by_requisites(Requisites(**item["requisites"]))
        if item.get("bill_ids"):
            return Payable.bills(item["bill_ids"])
    except (TypeError, ValueError):  # a shape this client does not know: not a known target
        return None
    return None


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
        status=ReportStatus(status),
        address=item.get("address") or "",
        point=Point(float(item["lat"]), float(item["long"])) if has_point else None,
        requested_at=datetime.fromisoformat(item["requested_datetime"]),
        expected_at=_when(item.get("expected_datetime")),
        status_notes=item.get("status_notes") or "",
        answer_media_url=item.get("answer_media_url"),
        confirm_until=_when(item.get("confirm_until")),
        account_id=item.get("account_id"),
    )


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


def _bill(item: dict[str, Any]) -> Bill:
    return Bill(
        id=item["id"],
        kind=BillKind(item["kind"]),
        title=item["title"],
        provider=item["provider"],
        amount=int(item["amount"]),
        due_date=date.fromisoformat(item["due_date"]),
        uin=item.get("uin"),
        payer_code=item.get("payer_code"),
        period=item.get("period"),
        paid=item.get("status") == "paid",
    )
