"""The sandbox's OAuth 2.0 server: authorization code + PKCE S256, refresh, revocation, expiry."""

from __future__ import annotations

import pytest

from .sandbox_client import LOGINS, REDIRECT_URI, ContractClient, FakeClock, Pkce

# ---------------------------------------------------------------- authorization endpoint


async def test_login_page_offers_every_demo_resident(city: ContractClient) -> None:
    pkce = Pkce.new()
    page = await city.request("GET", "/oauth/authorize", params=city.authorize_params(pkce))

    assert page.status == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "ПЕСОЧНИЦА" in page.body
    for login in LOGINS:
        assert f'name="login" value="{login}"' in page.body
    assert pkce.challenge in page.body  # the form carries the request back


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"code_challenge": None}, "code_challenge"),
        ({"code_challenge_method": "plain"}, "S256"),
        ({"code_challenge_method": None}, "S256"),
        ({"client_id": "someone-else"}, "client_id"),
        ({"client_id": None}, "client_id"),
        ({"response_type": "token"}, "response_type"),
        ({"redirect_uri": None}, "redirect_uri"),
        ({"redirect_uri": "/relative/callback"}, "redirect_uri"),
        ({"redirect_uri": "javascript:alert(1)"}, "redirect_uri"),
        ({"state": None}, "state"),
        ({"state": "short"}, "state"),
        ({"code_challenge": "too-short"}, "code_challenge"),
    ],
)
async def test_invalid_authorization_requests_get_an_error_page_and_no_redirect(
    city: ContractClient, overrides: dict[str, str | None], reason: str
) -> None:
    pkce = Pkce.new()
    params = city.authorize_params(pkce, **overrides)

    page = await city.request("GET", "/oauth/authorize", params=params)
    submitted = await city.submit_login("demo-full", pkce, **overrides)

    for answer in (page, submitted):
        assert answer.status == 400
        assert "Location" not in answer.headers
        assert reason in answer.body


async def test_unknown_login_or_action_gets_an_error_page(city: ContractClient) -> None:
    pkce = Pkce.new()
    unknown = await city.submit_login("demo-nobody", pkce)
    bad_action = await city.submit_login("demo-full", pkce, action="maybe")

    assert (unknown.status, bad_action.status) == (400, 400)
    assert "Location" not in unknown.headers and "Location" not in bad_action.headers
    assert "demo-nobody" in unknown.body


async def test_approve_redirects_with_code_and_state(city: ContractClient) -> None:
    pkce = Pkce.new()
    answer = await city.submit_login(
        "demo-full", pkce, state="state-123456", redirect_uri=REDIRECT_URI + "?lang=ru"
    )

    assert answer.status == 302
    location = answer.location
    assert str(location.with_query(None)) == REDIRECT_URI
    assert location.query["state"] == "state-123456"
    assert location.query["lang"] == "ru"  # the redirect_uri's own query is kept
    assert len(location.query["code"]) >= 32
    assert "error" not in location.query


async def test_action_defaults_to_approve(city: ContractClient) -> None:
    pkce = Pkce.new()
    answer = await city.submit_login("demo-simple", pkce, action=None)

    assert answer.status == 302
    assert (await city.exchange(answer.location.query["code"], pkce)).status == 200


async def test_deny_redirects_with_access_denied(city: ContractClient) -> None:
    answer = await city.submit_login("demo-full", Pkce.new(), action="deny", state="state-denied")

    assert answer.status == 302
    assert dict(answer.location.query) == {"error": "access_denied", "state": "state-denied"}


# ---------------------------------------------------------------- token endpoint: codes


@pytest.mark.parametrize("login", LOGINS)
async def test_full_flow_for_each_demo_resident(city: ContractClient, login: str) -> None:
    resident = next(
        r
        for r in (await city.request("GET", "/sandbox/residents")).body["residents"]
        if r["login"] == login
    )
    pkce = Pkce.new()
    code = await city.code_for(login, pkce, scope="profile bills")

    answer = await city.exchange(code, pkce)

    assert answer.status == 200
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.body["token_type"] == "Bearer"
    assert answer.body["expires_in"] == 3600
    assert answer.body["scope"] == "profile bills"
    assert answer.body["access_token"] != answer.body["refresh_token"]
    profile = await city.profile(answer.body["access_token"])
    assert profile.status == 200
    assert profile.body["full_name"] == resident["full_name"]
    assert profile.body["account_level"] == resident["account_level"]


async def test_each_login_is_a_different_account(city: ContractClient) -> None:
    accounts = set()
    for login in LOGINS:
        tokens = await city.login(login)
        accounts.add((await city.profile(tokens.access_token)).body["account_id"])

    assert len(accounts) == len(LOGINS)


async def test_wrong_code_verifier_is_invalid_grant(city: ContractClient) -> None:
    pkce = Pkce.new()
    code = await city.code_for("demo-full", pkce)

    answer = await city.exchange(code, Pkce.new())

    assert answer.status == 400
    assert answer.body["error"] == "invalid_grant"
    # The code is burnt by the failed attempt: guessing verifiers gets nowhere.
    assert (await city.exchange(code, pkce)).body["error"] == "invalid_grant"


async def test_code_works_once(city: ContractClient) -> None:
    pkce = Pkce.new()
    code = await city.code_for("demo-full", pkce)

    first = await city.exchange(code, pkce)
    second = await city.exchange(code, pkce)

    assert first.status == 200
    assert second.status == 400
    assert second.body["error"] == "invalid_grant"


async def test_code_expires_after_60_seconds(city: ContractClient, clock: FakeClock) -> None:
    fresh, stale = Pkce.new(), Pkce.new()
    fresh_code = await city.code_for("demo-full", fresh)
    stale_code = await city.code_for("demo-full", stale)

    clock.advance(59)
    assert (await city.exchange(fresh_code, fresh)).status == 200
    clock.advance(2)
    answer = await city.exchange(stale_code, stale)

    assert answer.status == 400
    assert answer.body["error"] == "invalid_grant"


async def test_redirect_uri_must_match_the_authorization(city: ContractClient) -> None:
    pkce = Pkce.new()
    code = await city.code_for("demo-full", pkce)

    answer = await city.exchange(code, pkce, redirect_uri="http://127.0.0.1:9/elsewhere")

    assert answer.status == 400
    assert answer.body["error"] == "invalid_grant"


async def test_unknown_code_is_invalid_grant(city: ContractClient) -> None:
    answer = await city.exchange("not-a-code-" + "x" * 32, Pkce.new())

    assert answer.status == 400
    assert answer.body["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "credentials",
    [
        {"client_secret": "wrong-secret"},
        {"client_secret": None},
        {"client_id": "someone-else"},
        {"client_id": None},
    ],
)
async def test_client_must_authenticate(
    city: ContractClient, credentials: dict[str, str | None]
) -> None:
    pkce = Pkce.new()
    code = await city.code_for("demo-full", pkce)

    answer = await city.token(
        grant_type="authorization_code",
        code=code,
        redirect_uri=REDIRECT_URI,
        code_verifier=pkce.verifier,
        **credentials,
    )

    assert answer.status == 401
    assert answer.body["error"] == "invalid_client"
    assert (await city.exchange(code, pkce)).status == 200  # the code was not touched


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({}, "invalid_request"),
        ({"grant_type": "password"}, "unsupported_grant_type"),
        ({"grant_type": "authorization_code", "code": "abc"}, "invalid_request"),
        ({"grant_type": "refresh_token"}, "invalid_request"),
        ({"grant_type": "refresh_token", "refresh_token": "x" * 43}, "invalid_grant"),
    ],
)
async def test_malformed_token_requests(
    city: ContractClient, fields: dict[str, str], error: str
) -> None:
    answer = await city.token(**fields)

    assert answer.status == 400
    assert answer.body["error"] == error


# ---------------------------------------------------------------- refresh and revocation


async def test_refresh_gives_a_new_access_token_and_the_same_refresh_token(
    city: ContractClient,
) -> None:
    tokens = await city.login("demo-standard")

    answer = await city.refresh(tokens.refresh_token)

    assert answer.status == 200
    assert answer.body["refresh_token"] == tokens.refresh_token
    assert answer.body["access_token"] != tokens.access_token
    profile = await city.profile(answer.body["access_token"])
    assert profile.status == 200
    assert profile.body["account_level"] == "standard"


async def test_revoking_the_refresh_token_kills_its_access_tokens(city: ContractClient) -> None:
    tokens = await city.login("demo-full")
    refreshed = (await city.refresh(tokens.refresh_token)).body["access_token"]
    other = await city.login("demo-full")  # another linking of the same account

    revoked = await city.revoke(tokens.refresh_token, token_type_hint="refresh_token")

    assert revoked.status == 200
    assert (await city.refresh(tokens.refresh_token)).body["error"] == "invalid_grant"
    assert (await city.profile(tokens.access_token)).status == 401
    assert (await city.profile(refreshed)).status == 401
    assert (await city.profile(other.access_token)).status == 200


async def test_revoking_an_access_token_keeps_the_refresh_token(city: ContractClient) -> None:
    tokens = await city.login("demo-full")

    assert (await city.revoke(tokens.access_token)).status == 200

    assert (await city.profile(tokens.access_token)).status == 401
    assert (await city.refresh(tokens.refresh_token)).status == 200


async def test_revoking_an_unknown_token_is_fine(city: ContractClient) -> None:
    answer = await city.revoke("never-issued-" + "x" * 32)

    assert answer.status == 200
    assert answer.body == {}


async def test_revocation_needs_client_authentication(city: ContractClient) -> None:
    tokens = await city.login("demo-full")

    answer = await city.revoke(tokens.refresh_token, client_secret="wrong-secret")

    assert answer.status == 401
    assert answer.body["error"] == "invalid_client"
    assert (await city.refresh(tokens.refresh_token)).status == 200


# ---------------------------------------------------------------- access token expiry


async def test_access_token_expires_after_an_hour(city: ContractClient, clock: FakeClock) -> None:
    tokens = await city.login("demo-full")

    clock.advance(3599)
    assert (await city.profile(tokens.access_token)).status == 200
    clock.advance(1)
    expired = await city.profile(tokens.access_token)

    assert expired.status == 401
    assert expired.body["code"] == 401
    assert 'error="invalid_token"' in expired.headers["WWW-Authenticate"]
    refreshed = await city.refresh(tokens.refresh_token)
    assert (await city.profile(refreshed.body["access_token"])).status == 200


async def test_sandbox_can_expire_every_access_token(city: ContractClient) -> None:
    first = await city.login("demo-full")
    second = await city.login("demo-standard")

    answer = await city.request("POST", "/sandbox/tokens/expire")
    again = await city.request("POST", "/sandbox/tokens/expire")

    assert answer.body == {"expired": 2}
    assert again.body == {"expired": 0}
    assert (await city.profile(first.access_token)).status == 401
    assert (await city.bills(second.access_token)).status == 401
    refreshed = await city.refresh(first.refresh_token)
    assert (await city.profile(refreshed.body["access_token"])).status == 200
