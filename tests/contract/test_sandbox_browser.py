"""`demo_login`: the screenless browser the bot's terminal console uses to link an account."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from yarl import URL

from sandbox import SandboxServer
from sandbox.browser import DemoLoginError, demo_login

from .sandbox_client import CLIENT_ID, ContractClient, Pkce

CALLBACK_KEY = web.AppKey("callback_hits", list)


async def _echo_query(request: web.Request) -> web.Response:
    request.app[CALLBACK_KEY].append(dict(request.query))
    return web.Response(text=f"callback got {request.query_string}")


@pytest.fixture
async def callback() -> AsyncIterator[SandboxServer]:
    """A tiny stand-in for the bot's /oauth/callback page (SandboxServer runs any app)."""
    app = web.Application()
    app[CALLBACK_KEY] = []
    app.router.add_get("/oauth/callback", _echo_query)
    async with SandboxServer(app) as server:
        yield server


def _authorize_url(sandbox: SandboxServer, callback: SandboxServer, pkce: Pkce) -> str:
    query = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": callback.url + "/oauth/callback",
        "state": "console-state-1",
        "code_challenge": pkce.challenge,
        "code_challenge_method": "S256",
    }
    return str(URL(sandbox.url + "/oauth/authorize").with_query(query))


async def test_demo_login_follows_the_redirect_to_the_callback(
    sandbox: SandboxServer, callback: SandboxServer, city: ContractClient
) -> None:
    pkce = Pkce.new()

    result = await demo_login(_authorize_url(sandbox, callback, pkce), "demo-standard")

    assert result.status == 200
    final = URL(result.url)
    assert str(final.with_query(None)) == callback.url + "/oauth/callback"
    assert final.query["state"] == "console-state-1"
    assert callback.app[CALLBACK_KEY] == [dict(final.query)]
    assert result.text == f"callback got {final.query_string}"
    # The code it brought back is a real one.
    tokens = await city.exchange(final.query["code"], pkce, callback.url + "/oauth/callback")
    profile = await city.profile(tokens.body["access_token"])
    assert profile.body["account_level"] == "standard"


async def test_demo_login_can_deny(sandbox: SandboxServer, callback: SandboxServer) -> None:
    url = _authorize_url(sandbox, callback, Pkce.new())

    result = await demo_login(url, "demo-full", action="deny")

    assert dict(URL(result.url).query) == {"error": "access_denied", "state": "console-state-1"}


async def test_demo_login_with_an_unknown_login_ends_on_the_error_page(
    sandbox: SandboxServer, callback: SandboxServer
) -> None:
    result = await demo_login(_authorize_url(sandbox, callback, Pkce.new()), "demo-nobody")

    assert result.status == 400
    assert URL(result.url).path == "/oauth/authorize"
    assert callback.app[CALLBACK_KEY] == []


async def test_demo_login_refuses_an_invalid_authorize_url(
    sandbox: SandboxServer, callback: SandboxServer
) -> None:
    url = URL(_authorize_url(sandbox, callback, Pkce.new())).update_query(
        code_challenge_method="plain"
    )

    with pytest.raises(DemoLoginError, match="400"):
        await demo_login(str(url), "demo-full")
    assert callback.app[CALLBACK_KEY] == []
