"""OAuth 2.0 authorization code + PKCE (S256) at the city platform (domain.ports.CityAuth)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import structlog

from city.transport import CityTransport, Port
from domain.accounts import TokenSet
from domain.errors import CityUnavailable, InvalidGrant
from domain.ports import CityAuth

log = structlog.get_logger(__name__)


class AuthClient(Port):
    """The platform's /oauth endpoints for this bot (its client id, secret and callback)."""

    def __init__(
        self, transport: CityTransport, *, client_id: str, client_secret: str, redirect_uri: str
    ) -> None:
        Port.__init__(self, transport)
        self._client_id = client_id
        self._client_secret = client_secret
        self.redirect_uri = redirect_uri

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
        return f"{self._transport.base_url}/oauth/authorize?{query}"

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
        status, _ = await self._transport.request("POST", "/oauth/revoke", data=form, retries=0)
        if status != 200:
            raise CityUnavailable(f"revoke answered {status}")

    def _client_form(self) -> dict[str, str]:
        return {"client_id": self._client_id, "client_secret": self._client_secret}

    async def _token_request(self, form: dict[str, str]) -> TokenSet:
        status, body = await self._transport.request(
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


# mypy checks here that AuthClient offers the port (domain.ports.CityAuth).
_IMPLEMENTS_AUTH: type[CityAuth] = AuthClient
