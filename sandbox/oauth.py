"""The sandbox's OAuth 2.0 authorization server: authorization code with PKCE (S256 only).

- `GET /oauth/authorize` shows a login page offering the demo residents; `POST` submits it and
  redirects back to the client with a code (60 s, single use) or `error=access_denied`.
  Invalid parameters show an HTML error page and never redirect.
- `POST /oauth/token` exchanges a code (RFC 6749 §4.1.3, RFC 7636 §4.6) or a refresh token
  (§6; the refresh token is not rotated).
- `POST /oauth/revoke` (RFC 7009): a refresh token dies with every access token issued from it.

The client authenticates with `client_id` and `client_secret` in the form body.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape
from typing import NoReturn

from aiohttp import web
from yarl import URL

from sandbox.data import CityData, DemoResident
from sandbox.pages import render_page

Clock = Callable[[], datetime]

ACCESS_TOKEN_TTL = timedelta(seconds=3600)
CODE_TTL = timedelta(seconds=60)

_PKCE_VALUE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")  # RFC 7636 §4.1 / §4.2
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@dataclass(frozen=True, slots=True)
class ClientConfig:
    client_id: str
    client_secret: str


# ---------------------------------------------------------------- token store (per app)


@dataclass(frozen=True, slots=True)
class _AuthCode:
    client_id: str
    redirect_uri: str
    code_challenge: str
    account_id: str
    scope: str | None
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class RefreshGrant:
    client_id: str
    account_id: str
    scope: str | None


@dataclass(slots=True)
class _AccessGrant:
    account_id: str
    refresh_token: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    scope: str | None


class TokenStore:
    """Authorization codes, refresh tokens and access tokens of one sandbox instance."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._codes: dict[str, _AuthCode] = {}
        self._refresh: dict[str, RefreshGrant] = {}
        self._access: dict[str, _AccessGrant] = {}

    def issue_code(
        self,
        *,
        client_id: str,
        redirect_uri: str,
        code_challenge: str,
        account_id: str,
        scope: str | None,
    ) -> str:
        now = self._clock()
        self._codes = {k: v for k, v in self._codes.items() if now < v.expires_at}
        code = secrets.token_urlsafe(32)
        self._codes[code] = _AuthCode(
            client_id, redirect_uri, code_challenge, account_id, scope, now + CODE_TTL
        )
        return code

    def take_code(self, code: str) -> _AuthCode | None:
        """The code if it is known and still valid; either way it can never be used again."""
        grant = self._codes.pop(code, None)
        if grant is None or self._clock() >= grant.expires_at:
            return None
        return grant

    def issue_tokens(self, *, client_id: str, account_id: str, scope: str | None) -> IssuedTokens:
        refresh_token = secrets.token_urlsafe(32)
        self._refresh[refresh_token] = RefreshGrant(client_id, account_id, scope)
        return IssuedTokens(self._issue_access(refresh_token, account_id), refresh_token, scope)

    def refresh(self, refresh_token: str, *, client_id: str) -> IssuedTokens | None:
        """A new access token for a live refresh token of this client; the same refresh token."""
        grant = self._refresh.get(refresh_token)
        if grant is None or grant.client_id != client_id:
            return None
        access = self._issue_access(refresh_token, grant.account_id)
        return IssuedTokens(access, refresh_token, grant.scope)

    def account_for_access_token(self, token: str) -> str | None:
        """The account of a live access token; None for unknown, revoked or expired ones."""
        grant = self._access.get(token)
        if grant is None:
            return None
        if self._clock() >= grant.expires_at:
            del self._access[token]
            return None
        return grant.account_id

    def revoke(self, token: str) -> None:
        """Revoke a refresh token (with its access tokens) or a single access token."""
        if self._refresh.pop(token, None) is not None:
            self._access = {k: v for k, v in self._access.items() if v.refresh_token != token}
        else:
            self._access.pop(token, None)

    def expire_access_tokens(self) -> int:
        """Expire every live access token now; returns how many there were."""
        now = self._clock()
        live = [grant for grant in self._access.values() if now < grant.expires_at]
        for grant in live:
            grant.expires_at = now
        return len(live)

    def _issue_access(self, refresh_token: str, account_id: str) -> str:
        token = secrets.token_urlsafe(32)
        expires_at = self._clock() + ACCESS_TOKEN_TTL
        self._access[token] = _AccessGrant(account_id, refresh_token, expires_at)
        return token


# ---------------------------------------------------------------- app keys (shared with api.py)

CLIENT_KEY = web.AppKey("sandbox_client", ClientConfig)
DATA_KEY = web.AppKey("sandbox_data", CityData)
TOKENS_KEY = web.AppKey("sandbox_tokens", TokenStore)

routes = web.RouteTableDef()


# ---------------------------------------------------------------- authorization endpoint


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    client_id: str
    redirect_uri: str
    state: str
    code_challenge: str
    scope: str | None

    def form_fields(self) -> dict[str, str]:
        fields = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "state": self.state,
            "code_challenge": self.code_challenge,
            "code_challenge_method": "S256",
        }
        if self.scope is not None:
            fields["scope"] = self.scope
        return fields


class _BadAuthorization(Exception):
    """The authorization request is invalid: answer with an error page, never redirect."""


def parse_authorization(params: Mapping[str, str], client: ClientConfig) -> AuthorizationRequest:
    client_id = params.get("client_id", "")
    if client_id != client.client_id:
        raise _BadAuthorization(f"unknown client_id {client_id!r}")
    redirect_uri = params.get("redirect_uri", "")
    if not _is_redirect_uri(redirect_uri):
        raise _BadAuthorization("redirect_uri must be an absolute http(s) URI without a fragment")
    if params.get("response_type") != "code":
        raise _BadAuthorization("response_type must be 'code'")
    state = params.get("state", "")
    if len(state) < 8:
        raise _BadAuthorization("state is required (at least 8 characters)")
    code_challenge = params.get("code_challenge", "")
    if not _PKCE_VALUE.match(code_challenge):
        raise _BadAuthorization("code_challenge is required (43 to 128 URL-safe characters)")
    if params.get("code_challenge_method") != "S256":
        raise _BadAuthorization("code_challenge_method must be 'S256'")
    return AuthorizationRequest(client_id, redirect_uri, state, code_challenge, params.get("scope"))


def _is_redirect_uri(value: str) -> bool:
    try:
        url = URL(value)
    except ValueError:
        return False
    return url.is_absolute() and url.scheme in ("http", "https") and not url.raw_fragment


@routes.get("/oauth/authorize")
async def authorize_page(request: web.Request) -> web.Response:
    try:
        auth = parse_authorization(request.query, request.app[CLIENT_KEY])
    except _BadAuthorization as exc:
        return _error_page(str(exc))
    return web.Response(
        text=_login_page(auth, request.app[DATA_KEY].residents),
        content_type="text/html",
        headers=_NO_STORE,
    )


@routes.post("/oauth/authorize")
async def authorize_submit(request: web.Request) -> web.Response:
    form = await request.post()
    params = {key: value for key, value in form.items() if isinstance(value, str)}
    try:
        auth = parse_authorization(params, request.app[CLIENT_KEY])
    except _BadAuthorization as exc:
        return _error_page(str(exc))
    resident = request.app[DATA_KEY].resident_by_login(params.get("login", ""))
    if resident is None:
        return _error_page(f"unknown demo login {params.get('login', '')!r}")
    action = params.get("action", "approve")
    if action == "deny":
        _redirect(auth.redirect_uri, error="access_denied", state=auth.state)
    if action != "approve":
        return _error_page("action must be 'approve' or 'deny'")
    code = request.app[TOKENS_KEY].issue_code(
        client_id=auth.client_id,
        redirect_uri=auth.redirect_uri,
        code_challenge=auth.code_challenge,
        account_id=resident.account_id,
        scope=auth.scope,
    )
    _redirect(auth.redirect_uri, code=code, state=auth.state)


def _redirect(redirect_uri: str, **query: str) -> NoReturn:
    raise web.HTTPFound(location=str(URL(redirect_uri).update_query(query)), headers=_NO_STORE)


# ---------------------------------------------------------------- token endpoint


@routes.post("/oauth/token")
async def token(request: web.Request) -> web.Response:
    form = await request.post()
    params = {key: value for key, value in form.items() if isinstance(value, str)}
    client = request.app[CLIENT_KEY]
    if not _client_authenticated(params, client):
        return _oauth_error(401, "invalid_client", "unknown client or wrong client_secret")
    grant_type = params.get("grant_type")
    if not grant_type:
        return _oauth_error(400, "invalid_request", "grant_type is required")
    store = request.app[TOKENS_KEY]
    if grant_type == "authorization_code":
        return _exchange_code(params, store)
    if grant_type == "refresh_token":
        return _refresh(params, store)
    return _oauth_error(400, "unsupported_grant_type", f"grant_type {grant_type!r}")


def _exchange_code(params: Mapping[str, str], store: TokenStore) -> web.Response:
    missing = [name for name in ("code", "redirect_uri", "code_verifier") if not params.get(name)]
    if missing:
        return _oauth_error(400, "invalid_request", f"missing {', '.join(missing)}")
    grant = store.take_code(params["code"])
    if grant is None:
        return _oauth_error(400, "invalid_grant", "unknown, used or expired code")
    if grant.client_id != params["client_id"]:
        return _oauth_error(400, "invalid_grant", "the code was issued to another client")
    if grant.redirect_uri != params["redirect_uri"]:
        return _oauth_error(400, "invalid_grant", "redirect_uri differs from the authorization")
    if not _pkce_matches(params["code_verifier"], grant.code_challenge):
        return _oauth_error(400, "invalid_grant", "code_verifier does not match code_challenge")
    issued = store.issue_tokens(
        client_id=grant.client_id, account_id=grant.account_id, scope=grant.scope
    )
    return _token_response(issued)


def _refresh(params: Mapping[str, str], store: TokenStore) -> web.Response:
    refresh_token = params.get("refresh_token")
    if not refresh_token:
        return _oauth_error(400, "invalid_request", "refresh_token is required")
    issued = store.refresh(refresh_token, client_id=params["client_id"])
    if issued is None:
        return _oauth_error(400, "invalid_grant", "unknown or revoked refresh token")
    return _token_response(issued)


def _pkce_matches(verifier: str, challenge: str) -> bool:
    """RFC 7636 §4.6, S256: BASE64URL(SHA256(ASCII(verifier))) == challenge."""
    if not _PKCE_VALUE.match(verifier):
        return False
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    return secrets.compare_digest(computed, challenge)


def _token_response(issued: IssuedTokens) -> web.Response:
    body: dict[str, str | int] = {
        "access_token": issued.access_token,
        "token_type": "Bearer",
        "expires_in": int(ACCESS_TOKEN_TTL.total_seconds()),
        "refresh_token": issued.refresh_token,
    }
    if issued.scope is not None:
        body["scope"] = issued.scope
    return web.json_response(body, headers=_NO_STORE)


# ---------------------------------------------------------------- revocation endpoint


@routes.post("/oauth/revoke")
async def revoke(request: web.Request) -> web.Response:
    form = await request.post()
    params = {key: value for key, value in form.items() if isinstance(value, str)}
    if not _client_authenticated(params, request.app[CLIENT_KEY]):
        return _oauth_error(401, "invalid_client", "unknown client or wrong client_secret")
    # RFC 7009 §2.2: an unknown (or missing) token is not an error; the hint is not needed
    # because refresh and access tokens cannot collide.
    request.app[TOKENS_KEY].revoke(params.get("token", ""))
    return web.json_response({}, headers=_NO_STORE)


# ---------------------------------------------------------------- helpers


def _client_authenticated(params: Mapping[str, str], client: ClientConfig) -> bool:
    id_ok = secrets.compare_digest(params.get("client_id", "").encode(), client.client_id.encode())
    secret_ok = secrets.compare_digest(
        params.get("client_secret", "").encode(), client.client_secret.encode()
    )
    return id_ok and secret_ok


def _oauth_error(status: int, error: str, description: str) -> web.Response:
    return web.json_response(
        {"error": error, "error_description": description}, status=status, headers=_NO_STORE
    )


def _login_page(auth: AuthorizationRequest, residents: tuple[DemoResident, ...]) -> str:
    hidden = "".join(
        f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
        for name, value in auth.form_fields().items()
    )
    forms = "".join(
        f'<form class="resident" method="post" action="/oauth/authorize">{hidden}'
        f'<input type="hidden" name="login" value="{escape(r.login)}">'
        f"<h2>{escape(r.full_name)}</h2><p>{escape(r.description)}</p>"
        f"<p>Логин: <code>{escape(r.login)}</code></p>"
        '<button type="submit" name="action" value="approve">Войти и разрешить доступ</button> '
        '<button type="submit" name="action" value="deny">Отказать</button>'
        "</form>"
        for r in residents
    )
    body = (
        "<h1>Вход в городской аккаунт</h1>"
        f"<p>Приложение <b>{escape(auth.client_id)}</b> просит доступ к вашему профилю "
        "и начислениям. Выберите демо-жителя:</p>"
        f"{forms}"
    )
    return render_page("Вход — песочница", body)


def _error_page(reason: str) -> web.Response:
    body = (
        "<h1>Ошибка запроса авторизации</h1>"
        "<p>Ссылка для входа неверна, вернуться в приложение нельзя.</p>"
        f"<p><code>{escape(reason)}</code></p>"
    )
    return web.Response(
        status=400,
        text=render_page("Ошибка — песочница", body),
        content_type="text/html",
        headers=_NO_STORE,
    )
