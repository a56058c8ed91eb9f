"""Test helpers: an HTTP client for the sandbox that checks every answer against the contract."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from json import loads
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from domain.linking import pkce_challenge

from .openapi import spec, validate

OPEN311_KEY = "sandbox-open311-key"
OPEN311 = "/open311/v2"
CLIENT_ID = "resident-bot"
CLIENT_SECRET = "sandbox-secret"
# Never contacted: these tests read the redirect's Location instead of following it.
REDIRECT_URI = "http://127.0.0.1:9/oauth/callback"
LOGINS = ("demo-simple", "demo-standard", "demo-full")
REDIRECTS = (301, 302, 303, 307, 308)


class FakeClock:
    """An injectable clock that only moves when told to."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: CIMultiDictProxy[str]
    body: Any  # parsed JSON, the text of other media types, or None for redirects

    @property
    def location(self) -> URL:
        assert self.status in REDIRECTS, f"expected a redirect, got {self.status}: {self.body}"
        return URL(self.headers["Location"])


@dataclass(frozen=True)
class Pkce:
    verifier: str
    challenge: str

    @classmethod
    def new(cls) -> Pkce:
        verifier = secrets.token_urlsafe(64)
        return cls(verifier, pkce_challenge(verifier))


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str


class ContractClient:
    """Talks to a running sandbox; every answer is validated against city/openapi.yaml."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str) -> None:
        self.http = http
        self.base_url = base_url

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        data: dict[str, str] | list[tuple[str, str]] | str | aiohttp.FormData | None = None,
        json: Any = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        check: bool = True,
        template: str | None = None,
    ) -> Answer:
        """`check=False` skips the contract check (for answers the contract cannot declare);
        `template` names the contract's path when `path` has parameters filled in."""
        headers = dict(headers or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        async with self.http.request(
            method,
            self.base_url + path,
            params=params,
            data=data,
            json=json,
            headers=headers,
            allow_redirects=False,
        ) as response:
            if response.status in REDIRECTS:
                body = None
            elif response.content_type == "application/json":
                body = await response.json()
            else:
                body = await response.text()
            answer = Answer(response.status, response.headers, body)
        if check:
            validate(template or path, method, answer.status, answer.body)
        return answer

    # ------------------------------------------------------------ OAuth

    def authorize_params(self, pkce: Pkce, **overrides: str | None) -> dict[str, str]:
        """Valid authorization request parameters; an override of None drops the parameter."""
        params: dict[str, str | None] = {
            "response_type": "code",
            "client_id": CLIENT_ID,
            "redirect_uri": REDIRECT_URI,
            "state": secrets.token_urlsafe(16),
            "code_challenge": pkce.challenge,
            "code_challenge_method": "S256",
            **overrides,
        }
        return {key: value for key, value in params.items() if value is not None}

    async def submit_login(
        self, login: str, pkce: Pkce, *, action: str | None = "approve", **overrides: str | None
    ) -> Answer:
        """Submit the login form; `action=None` leaves the field out (the default: approve)."""
        form = {**self.authorize_params(pkce, **overrides), "login": login}
        if action is not None:
            form["action"] = action
        return await self.request("POST", "/oauth/authorize", data=form)

    async def code_for(self, login: str, pkce: Pkce, **overrides: str | None) -> str:
        answer = await self.submit_login(login, pkce, **overrides)
        code = answer.location.query.get("code")
        assert code, f"no code in {answer.location}"
        return code

    async def token(self, **fields: str | None) -> Answer:
        form: dict[str, str | None] = {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            **fields,
        }
        data = {key: value for key, value in form.items() if value is not None}
        return await self.request("POST", "/oauth/token", data=data)

    async def exchange(self, code: str, pkce: Pkce, redirect_uri: str = REDIRECT_URI) -> Answer:
        return await self.token(
            grant_type="authorization_code",
            code=code,
            redirect_uri=redirect_uri,
            code_verifier=pkce.verifier,
        )

    async def refresh(self, refresh_token: str) -> Answer:
        return await self.token(grant_type="refresh_token", refresh_token=refresh_token)

    async def revoke(self, token: str, **fields: str) -> Answer:
        data = {"token": token, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, **fields}
        return await self.request("POST", "/oauth/revoke", data=data)

    async def login(self, login: str) -> Tokens:
        """The whole authorization-code + PKCE flow for a demo resident."""
        pkce = Pkce.new()
        answer = await self.exchange(await self.code_for(login, pkce), pkce)
        assert answer.status == 200, answer.body
        return Tokens(answer.body["access_token"], answer.body["refresh_token"])

    # ------------------------------------------------------------ resident API

    async def profile(self, token: str | None) -> Answer:
        return await self.request("GET", "/api/v1/profile", token=token)

    async def bills(self, token: str | None, status: str | None = None) -> Answer:
        params = None if status is None else {"status": status}
        return await self.request("GET", "/api/v1/bills", params=params, token=token)

    async def put_faults(self, faults: Any) -> Answer:
        return await self.request("PUT", "/sandbox/faults", json=faults)

    # ------------------------------------------------------------ payments and charges

    async def bill(self, token: str, bill_id: str) -> dict[str, Any]:
        """One of the resident's bills as `/api/v1/bills?status=all` shows it."""
        answer = await self.bills(token, "all")
        assert answer.status == 200, answer.body
        found = [bill for bill in answer.body["bills"] if bill["id"] == bill_id]
        assert len(found) == 1, f"{bill_id} is not among the resident's bills"
        return found[0]  # type: ignore[no-any-return]

    async def payment_methods(self, token: str | None) -> Answer:
        return await self.request("GET", "/api/v1/payment-methods", token=token)

    async def pay(self, token: str | None, key: str | None, body: Any) -> Answer:
        """POST /api/v1/payments; `key=None` leaves out the Idempotence-Key header."""
        headers = {} if key is None else {"Idempotence-Key": key}
        return await self.request(
            "POST", "/api/v1/payments", json=body, token=token, headers=headers
        )

    async def payment(self, token: str | None, payment_id: str) -> Answer:
        return await self.request(
            "GET",
            f"/api/v1/payments/{payment_id}",
            token=token,
            template="/api/v1/payments/{payment_id}",
        )

    async def payments(self, token: str | None, **params: str) -> Answer:
        return await self.request("GET", "/api/v1/payments", params=params, token=token)

    async def lookup(self, token: str | None, uin: str) -> Answer:
        return await self.request("GET", "/api/v1/bills/lookup", params={"uin": uin}, token=token)

    async def fines(self, token: str | None, **params: str) -> Answer:
        return await self.request("GET", "/api/v1/fines", params=params, token=token)

    async def ledger(self) -> list[dict[str, Any]]:
        answer = await self.request("GET", "/sandbox/ledger")
        assert answer.status == 200, answer.body
        return answer.body["charges"]  # type: ignore[no-any-return]

    async def patch_bill(self, bill_id: str, patch: Any) -> Answer:
        return await self.request(
            "PATCH", f"/sandbox/bills/{bill_id}", json=patch, template="/sandbox/bills/{bill_id}"
        )

    async def pay_page(self, url: str, form: dict[str, str] | None = None) -> Answer:
        """GET (no form) or POST (a form) the hosted payment page at an absolute URL."""
        path = URL(url).path
        assert url == self.base_url + path, f"{url} is not on this sandbox"
        method = "GET" if form is None else "POST"
        return await self.request(method, path, data=form, template="/pay/{payment_id}")

    # ------------------------------------------------------------ charity, points, meters

    async def set_clock(self, now: datetime) -> Answer:
        """PUT /sandbox/clock: move the sandbox's clock to `now` (timezone-aware)."""
        answer = await self.request("PUT", "/sandbox/clock", json={"now": now.isoformat()})
        assert answer.status == 200, answer.body
        return answer

    async def fund_categories(self, token: str | None) -> Answer:
        return await self.request("GET", "/api/v1/fund-categories", token=token)

    async def funds(self, token: str | None, category: str | None = None) -> Answer:
        params = None if category is None else {"category": category}
        return await self.request("GET", "/api/v1/funds", params=params, token=token)

    async def fund(self, token: str | None, fund_id: str) -> Answer:
        return await self.request(
            "GET", f"/api/v1/funds/{fund_id}", token=token, template="/api/v1/funds/{fund_id}"
        )

    async def donations(self, token: str | None) -> Answer:
        return await self.request("GET", "/api/v1/donations", token=token)

    async def report_page(self, url: str) -> Answer:
        """GET a fund's report page at an absolute URL on this sandbox."""
        path = URL(url).path
        assert url == self.base_url + path, f"{url} is not on this sandbox"
        return await self.request("GET", path, template="/reports/{fund_id}/{name}.html")

    async def points(self, token: str | None, **params: str) -> Answer:
        return await self.request("GET", "/api/v1/points", params=params, token=token)

    async def balance(self, token: str) -> int:
        answer = await self.points(token)
        assert answer.status == 200, answer.body
        return answer.body["balance"]  # type: ignore[no-any-return]

    async def transfer_points(self, token: str | None, key: str | None, body: Any) -> Answer:
        """POST /api/v1/points/transfers; `key=None` leaves out the Idempotence-Key header."""
        headers = {} if key is None else {"Idempotence-Key": key}
        return await self.request(
            "POST", "/api/v1/points/transfers", json=body, token=token, headers=headers
        )

    async def meters(self, token: str | None) -> Answer:
        return await self.request("GET", "/api/v1/meters", token=token)

    async def meter(self, token: str, meter_id: str) -> dict[str, Any]:
        answer = await self.meters(token)
        assert answer.status == 200, answer.body
        found = [meter for meter in answer.body["meters"] if meter["id"] == meter_id]
        assert len(found) == 1, f"{meter_id} is not among the resident's meters"
        return found[0]  # type: ignore[no-any-return]

    async def send_reading(
        self, token: str | None, key: str | None, meter_id: str, body: Any
    ) -> Answer:
        """POST a reading; `key=None` leaves out the Idempotence-Key header."""
        headers = {} if key is None else {"Idempotence-Key": key}
        return await self.request(
            "POST",
            f"/api/v1/meters/{meter_id}/readings",
            json=body,
            token=token,
            headers=headers,
            template="/api/v1/meters/{meter_id}/readings",
        )

    # ------------------------------------------------------------ «Наш город» (Open311), geo

    async def services(self) -> list[dict[str, Any]]:
        answer = await self.request("GET", f"{OPEN311}/services.json")
        assert answer.status == 200, answer.body
        return answer.body  # type: ignore[no-any-return]

    async def service_definition(self, code: str) -> Answer:
        return await self.request(
            "GET",
            f"{OPEN311}/services/{code}.json",
            template=f"{OPEN311}/services/{{service_code}}.json",
        )

    async def post_report(
        self, form: dict[str, str] | list[tuple[str, str]], *, api_key: str | None = OPEN311_KEY
    ) -> Answer:
        """POST requests.json; the sandbox key is added unless `api_key` says otherwise."""
        fields = list(form.items()) if isinstance(form, dict) else list(form)
        if api_key is not None:
            fields.insert(0, ("api_key", api_key))
        return await self.request("POST", f"{OPEN311}/requests.json", data=fields)

    async def report_id(self, form: dict[str, str] | list[tuple[str, str]]) -> str:
        answer = await self.post_report(form)
        assert answer.status == 201, answer.body
        return answer.body[0]["service_request_id"]  # type: ignore[no-any-return]

    async def reports(self, **params: str) -> Answer:
        return await self.request("GET", f"{OPEN311}/requests.json", params=params)

    async def report(self, request_id: str) -> Answer:
        return await self.request(
            "GET",
            f"{OPEN311}/requests/{request_id}.json",
            template=f"{OPEN311}/requests/{{service_request_id}}.json",
        )

    async def report_now(self, request_id: str) -> dict[str, Any]:
        answer = await self.report(request_id)
        assert answer.status == 200, answer.body
        return answer.body[0]  # type: ignore[no-any-return]

    async def report_updates(self, request_id: str) -> Answer:
        return await self.request(
            "GET",
            f"{OPEN311}/requests/{request_id}/updates.json",
            template=f"{OPEN311}/requests/{{service_request_id}}/updates.json",
        )

    async def report_action(
        self, request_id: str, action: str, form: dict[str, str], *, api_key: str = OPEN311_KEY
    ) -> Answer:
        """POST requests/{id}/confirm or /refute."""
        return await self.request(
            "POST",
            f"{OPEN311}/requests/{request_id}/{action}",
            data={"api_key": api_key, **form},
            template=f"{OPEN311}/requests/{{service_request_id}}/{action}",
        )

    async def advance_report(self, request_id: str, body: Any) -> Answer:
        return await self.request(
            "POST",
            f"/sandbox/open311/requests/{request_id}/advance",
            json=body,
            template="/sandbox/open311/requests/{service_request_id}/advance",
        )

    async def upload_media(
        self,
        data: bytes | None,
        *,
        api_key: str | None = OPEN311_KEY,
        content_type: str = "image/jpeg",
    ) -> Answer:
        form = aiohttp.FormData(default_to_multipart=True)
        if api_key is not None:
            form.add_field("api_key", api_key)
        if data is not None:
            form.add_field("media", data, filename="photo.jpg", content_type=content_type)
        return await self.request("POST", f"{OPEN311}/media", data=form)

    async def fetch_media(self, url: str) -> tuple[int, str, bytes]:
        """GET a photo at an absolute URL on this sandbox: (status, content type, bytes); the
        status and the content type are checked against the contract."""
        path = URL(url).path
        assert url == self.base_url + path, f"{url} is not on this sandbox"
        async with self.http.get(url) as response:
            status, content_type = response.status, response.content_type
            data = await response.read()
        declared = spec()["paths"]["/media/{name}"]["get"]["responses"]
        assert str(status) in declared, f"GET /media/{{name}} → {status} is not declared"
        assert content_type in declared[str(status)]["content"], content_type
        if content_type == "application/json":
            validate("/media/{name}", "GET", status, loads(data))
        return status, content_type, data

    async def geo(self, token: str | None, what: str, **params: str) -> Answer:
        """GET /api/v1/geo/{search|reverse|boundary}."""
        return await self.request("GET", f"/api/v1/geo/{what}", params=params, token=token)
