"""The sandbox's movable clock and `PUT /sandbox/clock`.

`SandboxClock` is the app's injected clock shifted by an offset that `PUT /sandbox/clock` sets:
the shifted time keeps flowing with the injected clock. Payments, points, meters and «Наш город»
reports read it; OAuth keeps the injected clock, so moving the sandbox's clock does not expire
tokens.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone

from aiohttp import web

from sandbox.common import error_response, iso_datetime

Clock = Callable[[], datetime]

MOSCOW = timezone(timedelta(hours=3), "MSK")


class SandboxClock:
    """A clock that can be moved to any moment (forwards or backwards) and goes on from there."""

    def __init__(self, base: Clock) -> None:
        self._base = base
        self._offset = timedelta(0)

    def __call__(self) -> datetime:
        return self._base() + self._offset

    @property
    def base(self) -> Clock:
        """The injected clock this one is shifted from."""
        return self._base

    @property
    def offset(self) -> timedelta:
        """How far this clock is from its base (kept across console restarts)."""
        return self._offset

    @offset.setter
    def offset(self, offset: timedelta) -> None:
        self._offset = offset

    def move_to(self, now: datetime) -> None:
        if now.tzinfo is None:
            raise ValueError("the sandbox clock needs a timezone-aware moment")
        self._offset = now - self._base()

    def move_by(self, delta: timedelta) -> None:
        """Jump `delta` forwards (or backwards, when negative) and go on from there."""
        self._offset += delta

    def moscow_today(self) -> date:
        return moscow_date(self())


def moscow_date(moment: datetime) -> date:
    return moment.astimezone(MOSCOW).date()


CLOCK_KEY = web.AppKey("sandbox_clock", SandboxClock)

routes = web.RouteTableDef()


@routes.put("/sandbox/clock")
async def put_clock(request: web.Request) -> web.Response:
    try:
        body = json.loads(await request.text())
    except json.JSONDecodeError:
        return error_response(400, "the body must be a JSON object")
    if not isinstance(body, dict) or set(body) != {"now"} or not isinstance(body["now"], str):
        return error_response(400, 'the body must be {"now": "<ISO 8601 datetime>"}')
    try:
        now = datetime.fromisoformat(body["now"])
    except ValueError:
        return error_response(400, "now must be an ISO 8601 datetime")
    if now.tzinfo is None:
        return error_response(400, "now must carry a timezone")
    clock = request.app[CLOCK_KEY]
    clock.move_to(now)
    return web.json_response({"now": iso_datetime(clock())})
