"""The bot's client for the city platform (REST + OAuth), as described in city/openapi.yaml.

One class per port of domain/ports.py, each over the one shared transport (city/transport.py:
the session, deadlines, retries, the 401 refresh, error mapping, metrics):

    auth.py      AuthClient      CityAuth      OAuth 2.0 code + PKCE
    api.py       ApiClient       CityApi       profile, bills
    payments.py  PaymentsClient  CityPayments  payments, UIN lookup, fines
    charity.py   CharityClient   CityCharity   funds, donations, points, meters
    prizes.py    PrizesClient    CityPrizes    prizes for points, «Мои призы»
    reports.py   ReportsClient   CityReports   «Наш город»: Open311 and the gazetteer
    topups.py    TopupsClient    CityTopups    top-up services («Тройка», parking), balances

CityClient is all of them at once (domain.ports.City), as the bot wires it. Every call has a
deadline; idempotent reads are retried with backoff inside it; a 401 on a resident's call
refreshes the token once. Failures become domain errors, so the rest of the bot never sees
aiohttp.
"""

from __future__ import annotations

import aiohttp

from city.api import ApiClient
from city.auth import AuthClient
from city.charity import CharityClient
from city.payments import PaymentsClient
from city.prizes import PrizesClient
from city.reports import REFUSAL_KINDS, ReportsClient, _open311_error, refusal_kind
from city.topups import TopupsClient
from city.transport import CityTransport, Observer
from domain.ports import City

__all__ = ["REFUSAL_KINDS", "CityClient", "Observer", "_open311_error", "refusal_kind"]


class CityClient(
    AuthClient,
    ApiClient,
    PaymentsClient,
    CharityClient,
    PrizesClient,
    ReportsClient,
    TopupsClient,
):
    """Implements the city ports (domain.ports.City) over HTTP: every port's client over one
    CityTransport. `attempt_timeout`, `deadline` and `backoff` are seconds."""

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
        transport = CityTransport(
            base_url,
            attempt_timeout=attempt_timeout,
            deadline=deadline,
            read_retries=read_retries,
            backoff=backoff,
            observe=observe,
        )
        # The ports without settings of their own hold nothing but the transport set here.
        AuthClient.__init__(
            self,
            transport,
            client_id=client_id,
            client_secret=client_secret,
            redirect_uri=redirect_uri,
        )
        ReportsClient.__init__(self, transport, open311_key=open311_key)
        self.base_url = transport.base_url

    async def close(self) -> None:
        await self._transport.close()

    @property
    def http(self) -> aiohttp.ClientSession:
        return self._transport.http

    async def ping(self) -> None:
        """For readiness: the platform answers a cheap public request, or this raises."""
        await self._transport.ping()


# mypy checks here that CityClient offers every city port (domain.ports.City).
_IMPLEMENTS: type[City] = CityClient
