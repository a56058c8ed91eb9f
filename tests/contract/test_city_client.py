"""The bot's city client against the sandbox over real HTTP.

Every answer the sandbox gives the client in these tests is checked against city/openapi.yaml
by a middleware, so the client is proven to live inside the contract.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web

from city.client import CityClient
from domain.accounts import AccountLevel, TokenSet
from domain.bills import by_due_date
from domain.errors import CityUnavailable, InvalidGrant, RelinkRequired
from domain.linking import StaticSession, pkce_challenge
from domain.uin import check_uin
from sandbox import SandboxServer, create_app
from sandbox.browser import demo_login

from .openapi import validate
from .sandbox_client import FakeClock

REDIRECT = "http://127.0.0.1:9/oauth/callback"  # never contacted: the login stops at the redirect
VERIFIER = "v" * 64


@dataclass
class Recorder:
    checked: list[str] = field(default_factory=list)


def contract_middleware(recorder: Recorder) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def check(request: web.Request, handler: Callable[..., Awaitable[web.StreamResponse]]):
        response = await handler(request)
        route = request.match_info.route.resource
        template = route.canonical if route is not None else request.path
        if isinstance(response, web.Response) and response.content_type == "application/json":
            assert response.body is not None
            body = json.loads(bytes(response.body))  # type: ignore[arg-type]
            validate(template, request.method, response.status, body)
            recorder.checked.append(f"{request.method} {template} {response.status}")
        return response

    return check


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def sandbox(recorder: Recorder) -> AsyncIterator[SandboxServer]:
    app = create_app(
        clock=FakeClock(datetime(2026, 3, 10, 9, 0, tzinfo=UTC)), today=date(2026, 3, 10)
    )
    app.middlewares.insert(0, contract_middleware(recorder))  # outermost: sees fault answers
    async with SandboxServer(app) as server:
        yield server


def make_client(sandbox: SandboxServer, **kwargs: float) -> CityClient:
    return CityClient(
        sandbox.url,
        client_id="resident-bot",
        client_secret="sandbox-secret",
        redirect_uri=REDIRECT,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture
async def client(sandbox: SandboxServer) -> AsyncIterator[CityClient]:
    city = make_client(sandbox)
    yield city
    await city.close()


async def login_code(client: CityClient, login: str, verifier: str = VERIFIER) -> str:
    """Log in at the sandbox's page; the redirect to our (unreachable) callback carries the code."""
    url = client.authorization_url(state="state-123456", code_challenge=pkce_challenge(verifier))
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as page:
            assert page.status == 200
        form = {**dict(parse_qs(urlsplit(url).query, keep_blank_values=True)), "login": login}
        form = {k: v[0] if isinstance(v, list) else v for k, v in form.items()}
        async with http.post(url.split("?")[0], data=form, allow_redirects=False) as answer:
            location = answer.headers["Location"]
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == ["state-123456"]
    return query["code"][0]


class CountingSession:
    """A CitySession that refreshes through the client and counts how often."""

    def __init__(self, client: CityClient, tokens: TokenSet) -> None:
        self.client, self.tokens, self.refreshes = client, tokens, 0

    @property
    def access_token(self) -> str:
        return self.tokens.access_token

    async def refresh(self) -> None:
        self.refreshes += 1
        try:
            self.tokens = await self.client.refresh(self.tokens.refresh_token)
        except InvalidGrant as exc:
            raise RelinkRequired() from exc


@pytest.mark.parametrize(
    ("login", "level"),
    [
        ("demo-simple", AccountLevel.SIMPLE),
        ("demo-standard", AccountLevel.STANDARD),
        ("demo-full", AccountLevel.FULL),
    ],
)
async def test_link_profile_and_bills(
    client: CityClient, recorder: Recorder, login: str, level: AccountLevel
) -> None:
    tokens = await client.exchange_code(
        code=await login_code(client, login), code_verifier=VERIFIER
    )
    profile = await client.profile(StaticSession(tokens))
    bills = await client.unpaid_bills(StaticSession(tokens))
    assert profile.level is level
    assert bills == by_due_date(bills)
    assert all(check_uin(bill.uin).ok for bill in bills if bill.uin)
    if level is AccountLevel.SIMPLE:
        assert bills == []
    else:
        assert bills and all(bill.amount > 0 for bill in bills)
    assert {"POST /oauth/token 200", "GET /api/v1/profile 200", "GET /api/v1/bills 200"} <= set(
        recorder.checked
    )


async def test_wrong_verifier_is_invalid_grant(client: CityClient) -> None:
    code = await login_code(client, "demo-full")
    with pytest.raises(InvalidGrant):
        await client.exchange_code(code=code, code_verifier="w" * 64)


async def test_one_refresh_on_401_then_the_call_succeeds(
    client: CityClient, sandbox: SandboxServer
) -> None:
    tokens = await client.exchange_code(
        code=await login_code(client, "demo-full"), code_verifier=VERIFIER
    )
    async with aiohttp.ClientSession() as http:
        await http.post(sandbox.url + "/sandbox/tokens/expire")
    session = CountingSession(client, tokens)
    bills = await client.unpaid_bills(session)
    assert bills and session.refreshes == 1
    assert session.tokens.refresh_token == tokens.refresh_token
    assert session.tokens.access_token != tokens.access_token


async def test_revoked_tokens_need_relinking(client: CityClient) -> None:
    tokens = await client.exchange_code(
        code=await login_code(client, "demo-full"), code_verifier=VERIFIER
    )
    await client.revoke(tokens.refresh_token)
    session = CountingSession(client, tokens)
    with pytest.raises(RelinkRequired):
        await client.unpaid_bills(session)
    assert session.refreshes == 1


async def put_faults(sandbox: SandboxServer, faults: dict[str, float]) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.put(sandbox.url + "/sandbox/faults", json=faults) as answer:
            assert answer.status == 200


async def test_server_errors_become_city_unavailable_after_bounded_retries(
    sandbox: SandboxServer, recorder: Recorder
) -> None:
    client = make_client(sandbox, backoff=0.01)
    tokens = await client.exchange_code(
        code=await login_code(client, "demo-full"), code_verifier=VERIFIER
    )
    await put_faults(sandbox, {"status": 503})
    with pytest.raises(CityUnavailable):
        await client.unpaid_bills(StaticSession(tokens))
    assert recorder.checked.count("GET /api/v1/bills 503") == 3  # one try and two retries
    await put_faults(sandbox, {})
    assert await client.unpaid_bills(StaticSession(tokens))
    await client.close()


async def test_a_slow_city_is_given_up_on_at_the_deadline(sandbox: SandboxServer) -> None:
    client = make_client(sandbox, attempt_timeout=0.2, deadline=0.5, backoff=0.05)
    tokens = await client.exchange_code(
        code=await login_code(client, "demo-full"), code_verifier=VERIFIER
    )
    await put_faults(sandbox, {"delay_seconds": 5})
    with pytest.raises(CityUnavailable):
        await client.unpaid_bills(StaticSession(tokens))
    await put_faults(sandbox, {})
    await client.close()


async def test_nothing_listening_is_city_unavailable() -> None:
    client = CityClient(
        "http://127.0.0.1:9",
        client_id="x",
        client_secret="y",
        redirect_uri=REDIRECT,
        backoff=0.01,
    )
    with pytest.raises(CityUnavailable):
        await client.profile(StaticSession(TokenSet("a", "b", datetime.now(UTC))))
    await client.close()


async def test_demo_login_follows_to_the_callback(client: CityClient) -> None:
    url = client.authorization_url(state="state-abcdefgh", code_challenge=pkce_challenge(VERIFIER))
    with pytest.raises(aiohttp.ClientError):
        await demo_login(url, "demo-full")  # the redirect target (port 9) is not listening


async def test_a_keyed_post_is_repeated_after_a_lost_answer_and_an_unkeyed_one_is_not(
    sandbox: SandboxServer, recorder: Recorder
) -> None:
    """The refactor's claim (city/transport.py `request(..., key=...)`): a POST under an
    Idempotence-Key is retried like a read and done once; a POST without one that may have
    reached the city is never sent again — its lost answer is CityUnavailable."""
    client = make_client(sandbox, backoff=0.01)
    tokens = await client.exchange_code(
        code=await login_code(client, "demo-full"), code_verifier=VERIFIER
    )
    session = StaticSession(tokens)
    before = (await client.points(session, 1)).balance
    fund = (await client.funds(session, None))[0]
    await put_faults(sandbox, {"fail_after_processing": 1})
    transfer = await client.transfer_points(session, "lost-answer-key-1", fund.id, 1)
    assert transfer.balance == before - 1  # the repeat got the first transfer back
    assert recorder.checked.count("POST /api/v1/points/transfers 504") == 1
    assert (await client.points(session, 1)).balance == before - 1  # moved once

    await put_faults(sandbox, {"fail_after_processing": 1})
    with pytest.raises(CityUnavailable):
        await client.upload_media(b"\x89PNG\r\n\x1a\n", "image/png")
    media = [line for line in recorder.checked if line.startswith("POST /open311/v2/media")]
    assert media == ["POST /open311/v2/media 504"]  # sent once, never repeated
    await put_faults(sandbox, {})
    await client.close()
