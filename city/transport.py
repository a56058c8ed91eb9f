"""What every city port shares: one aiohttp session to the platform (city/openapi.yaml).

Every call has a deadline; idempotent reads (and POSTs under an Idempotence-Key) are retried
with backoff inside it; a 401 on a resident's call refreshes the token once. Failures become
domain errors, so the rest of the bot never sees aiohttp.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

import aiohttp
import structlog

from domain.errors import CityUnavailable, NotFound, RelinkRequired
from domain.ports import CitySession

log = structlog.get_logger(__name__)

RETRYABLE_STATUSES = frozenset({500, 502, 503, 504})
# method, path, status (0: no answer), seconds, failure or None — for metrics
Observer = Callable[[str, str, int, float, str | None], None]
OPEN311 = "/open311/v2"

# Awaited before every call to the platform, in the task making it: the update's unit of work
# ends a transaction that only read (`storage.uow.SqlUnitOfWork.release_idle`, set by
# bot/middlewares.py), so no database connection waits on the city's answer.
before_call: ContextVar[Callable[[], Awaitable[object]] | None] = ContextVar(
    "city_before_call", default=None
)


class CityTransport:
    """The HTTP plumbing of the city client: session, timeouts, retries, auth, metrics.

    `attempt_timeout` and `deadline` are seconds (one attempt; the whole call with its
    retries); `backoff` is the first pause in seconds, doubled after each retry; `observe` is
    told of every attempt (for metrics)."""

    def __init__(
        self,
        base_url: str,
        *,
        attempt_timeout: float = 3.0,
        deadline: float = 6.0,
        read_retries: int = 2,
        backoff: float = 0.2,
        observe: Observer | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._attempt_timeout = attempt_timeout
        self._deadline = deadline
        self._read_retries = read_retries
        self._backoff = backoff
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

    async def ping(self) -> None:
        """For readiness: the platform answers a cheap public request, or this raises."""
        status, _ = await self.request("GET", OPEN311 + "/discovery.json", retries=0)
        if status != 200:
            raise CityUnavailable(f"discovery answered {status}")

    async def request(
        self,
        method: str,
        path: str,
        *,
        retries: int | None = None,
        key: str | None = None,
        **kwargs: Any,
    ) -> tuple[int, Any]:
        """One call within the deadline; GETs are retried on timeouts, network errors and 5xx.

        With `key` the call is sent under that Idempotence-Key and retried like a read (the
        key makes a repeat harmless: the platform answers it with what the first one did).
        Returns (status, JSON body or text); raises CityUnavailable when no answer came."""
        if (release := before_call.get()) is not None:
            await release()
        if key is not None:
            kwargs["headers"] = {**kwargs.get("headers", {}), "Idempotence-Key": key}
        if retries is None:
            retries = self._read_retries if method == "GET" or key is not None else 0
        deadline = time.monotonic() + self._deadline
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            timeout = aiohttp.ClientTimeout(total=max(0.05, min(self._attempt_timeout, remaining)))
            started = time.monotonic()
            failure: str | None
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

    async def resident_get(
        self, path: str, session: CitySession, params: dict[str, str] | None = None
    ) -> Any:
        """A resident's read answered 200, its body. Raises NotFound (404), RelinkRequired,
        CityUnavailable (any other status, or none)."""
        status, body = await self.resident_call("GET", path, session, params=params)
        if status == 404:
            raise NotFound(path)
        if status != 200:
            raise CityUnavailable(f"{path} answered {status}")
        return body

    async def resident_call(
        self, method: str, path: str, session: CitySession, **kwargs: Any
    ) -> tuple[int, Any]:
        """A call on behalf of a resident: on 401 the token is refreshed once."""
        extra_headers = kwargs.pop("headers", {})
        for attempt in range(2):
            headers = {"Authorization": f"Bearer {session.access_token}", **extra_headers}
            status, body = await self.request(method, path, headers=headers, **kwargs)
            if status == 401 and attempt == 0:
                await session.refresh()
                continue
            if status == 401:
                raise RelinkRequired()
            return status, body
        raise RelinkRequired()  # pragma: no cover - the loop always returns or raises


class Port:
    """One port's client: a small class over the shared transport."""

    def __init__(self, transport: CityTransport) -> None:
        self._transport = transport


async def _read_body(response: aiohttp.ClientResponse) -> Any:
    if response.content_type == "application/json":
        return await response.json()
    return await response.text()
