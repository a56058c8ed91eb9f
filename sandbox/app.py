"""Building the sandbox application and running it on a local port."""

from __future__ import annotations

from datetime import UTC, date, datetime
from types import TracebackType
from typing import Self

from aiohttp import web

from sandbox import (
    api,
    charges,
    charity_api,
    geo_api,
    media,
    meters_api,
    oauth,
    open311_api,
    open311_common,
    pay_page,
    payments_api,
    points_api,
    prizes_api,
    topups_api,
)
from sandbox.clock import CLOCK_KEY, MOSCOW, SandboxClock
from sandbox.clock import routes as clock_routes
from sandbox.data import build_data
from sandbox.meters import MeterBook, seed_meters
from sandbox.open311 import RequestBook
from sandbox.open311_seed import seed_requests
from sandbox.payments import PaymentBook
from sandbox.points import PointsBook, seed_points
from sandbox.prizes import PrizeShop

__all__ = ["MOSCOW", "SandboxServer", "create_app"]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def create_app(
    *,
    client_id: str = "resident-bot",
    client_secret: str = "sandbox-secret",
    clock: oauth.Clock | None = None,
    today: date | None = None,
) -> web.Application:
    """A fresh sandbox: its own demo data, tokens, payments, points, meters, «Наш город»
    reports, photos and faults (apps never share state).

    `clock` (timezone-aware) drives code and token expiry; payments, points, meters and the
    reports' lifecycle follow it shifted by `PUT /sandbox/clock` (which leaves tokens alone).
    `today` anchors the bills' due dates and defaults to the clock's date in Moscow; the points
    history, meter readings and demo reports are seeded relative to the clock.
    """
    clock = clock or _utc_now
    moved = SandboxClock(clock)
    app = web.Application(middlewares=[api.faults_middleware, open311_common.errors_middleware])
    app[oauth.CLIENT_KEY] = oauth.ClientConfig(client_id, client_secret)
    data = build_data(today or clock().astimezone(MOSCOW).date())
    app[oauth.DATA_KEY] = data
    app[oauth.TOKENS_KEY] = oauth.TokenStore(clock)
    app[api.FAULTS_KEY] = api.FaultsHolder()
    app[CLOCK_KEY] = moved
    payments = PaymentBook(data, moved)
    points = PointsBook(moved)
    payments.listeners.append(points.credit_epd_cashback)
    meters = MeterBook(moved, points)
    seed_points(points, moved())
    seed_meters(meters, moved())
    app[payments_api.PAYMENTS_KEY] = payments
    app[points_api.POINTS_KEY] = points
    app[prizes_api.PRIZES_KEY] = PrizeShop(moved, points)
    app[meters_api.METERS_KEY] = meters
    app[charges.FINES_KEY] = charges.FineRegistry()
    photos = media.MediaStore()
    reports = RequestBook(moved, photos)
    reports.confirm_listeners.append(points.credit_report_confirmed)
    seed_requests(reports, moved())
    app[media.MEDIA_KEY] = photos
    app[open311_api.REQUESTS_KEY] = reports
    app.add_routes(clock_routes)
    for module in (
        oauth,
        api,
        charges,
        payments_api,
        pay_page,
        charity_api,
        points_api,
        prizes_api,
        meters_api,
        geo_api,
        open311_api,
        media,
        topups_api,
    ):
        app.add_routes(module.routes)
    return app


class SandboxServer:
    """Runs a sandbox app on `host:port` (port 0 picks a free one).

    Use `async with SandboxServer() as server: ... server.url ...`, or `start()` / `stop()`.
    """

    def __init__(
        self, app: web.Application | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.app = app if app is not None else create_app()
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """The base URL without a trailing slash, e.g. 'http://127.0.0.1:40123'."""
        if self._url is None:
            raise RuntimeError("the sandbox server is not running")
        return self._url

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("the sandbox server is already running")
        # A client that gives up on a slow (faulted) answer cancels it, and stopping does not
        # wait long for answers still in flight: a sandbox must stop promptly.
        runner = web.AppRunner(
            self.app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self._url = f"http://{_url_host(host)}:{port}"

    async def stop(self) -> None:
        runner, self._runner, self._url = self._runner, None, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
