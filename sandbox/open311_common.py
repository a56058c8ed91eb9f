"""Shared pieces of the sandbox's Open311 GeoReport v2 endpoints: the API key, the error
array, form/query argument helpers and datetimes in Moscow time."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from aiohttp import web
from aiohttp.typedefs import Handler

from sandbox.clock import MOSCOW

API_KEY = "sandbox-open311-key"
BASE_PATH = "/open311/v2"
INVALID_KEY = "Invalid api_key received -- can't proceed with this request."


class Open311Error(Exception):
    """A refusal answered with the spec's error array (one or several errors, one status)."""

    def __init__(self, status: int, *descriptions: str) -> None:
        super().__init__("; ".join(descriptions))
        self.status = status
        self.descriptions = descriptions

    def response(self) -> web.Response:
        return errors_response(self.status, *self.descriptions)


def errors_response(
    status: int, *descriptions: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    """`[{"code": status, "description": ...}, ...]` with that HTTP status."""
    body = [{"code": status, "description": description} for description in descriptions]
    return web.json_response(body, status=status, headers=headers)


def argument(values: Mapping[str, str], name: str) -> str | None:
    """An optional argument: empty or blank counts as not given (GeoReport v2 «Optional»)."""
    value = values.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


def check_api_key(*sources: Mapping[str, str]) -> None:
    """Raises a 403 Open311Error unless the first source that has `api_key` has the right one."""
    key = next((argument(source, "api_key") for source in sources if "api_key" in source), None)
    if key != API_KEY:
        raise Open311Error(403, INVALID_KEY)


def iso(moment: datetime) -> str:
    """ISO 8601 in Moscow time with its offset, e.g. 2026-03-10T09:30:00+03:00."""
    if moment.tzinfo is None:
        raise ValueError("the sandbox's datetimes are timezone-aware")
    return moment.astimezone(MOSCOW).isoformat()


def base_url(request: web.Request) -> str:
    """The sandbox's own origin as the client reached it, e.g. http://127.0.0.1:8081."""
    return str(request.url.origin())


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """`Open311Error` as the spec's error array; under /open311/ also aiohttp's own refusals
    (unknown path, wrong method)."""
    try:
        return await handler(request)
    except Open311Error as error:
        return error.response()
    except web.HTTPException as exc:
        if exc.status < 400 or not request.path.startswith("/open311/"):
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return errors_response(exc.status, exc.reason, headers=headers)
