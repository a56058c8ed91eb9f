"""No database connection waits on the city: while the platform answers an update's call, the
update's unit of work holds no connection (it had only read), so a slow city does not use up
the pool (`SqlUnitOfWork.release_idle` through `city.transport.before_call`); nor does the web
app's OAuth callback while it exchanges the code and asks for the profile."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web

from sandbox import SandboxServer
from sandbox.app import create_app
from tests.contract.sandbox_client import FakeClock
from tests.flows.conftest import START_LINK, Harness, _harness, settings_for

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


LINKING_CALLS = ("/oauth/token", "/api/v1/profile")  # the OAuth callback's two calls


class PoolWatch:
    """A sandbox middleware noting, for every resident's call (one with a bearer token) and
    the OAuth callback's code exchange, how many connections the bot's pool had checked out
    when the call arrived."""

    def __init__(self) -> None:
        self.harness: Harness | None = None
        self.seen: list[tuple[str, int]] = []

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        app = self.harness.app if self.harness is not None else None
        bearer = request.headers.get("Authorization", "").startswith("Bearer")
        if app is not None and (bearer or request.path.startswith(LINKING_CALLS)):
            pool = app.engine.sync_engine.pool
            self.seen.append((request.path, pool.checkedout()))  # type: ignore[attr-defined]
        return await handler(request)


@pytest.fixture
def watch() -> PoolWatch:
    return PoolWatch()


@pytest.fixture
async def sandbox(watch: PoolWatch) -> AsyncIterator[SandboxServer]:
    app = create_app()
    app.middlewares.append(watch.middleware)
    async with SandboxServer(app) as server:
        yield server


@pytest.fixture
async def watched(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    sandbox: SandboxServer,
    clock: FakeClock,
    watch: PoolWatch,
) -> AsyncIterator[Harness]:
    async for harness in _harness(settings_for(tmp_path), sandbox, clock, request):
        watch.harness = harness
        yield harness


async def test_no_connection_is_held_while_the_city_answers(
    watched: Harness, watch: PoolWatch
) -> None:
    chat = watched.chat()
    await watched.link(chat)
    watch.seen.clear()
    await chat.send("/start")
    reply = await chat.press("Мои счета")
    assert "ЕПД" in reply.text or "счет" in reply.text.lower(), reply.text
    await chat.press("Назад")
    await chat.press("Баллы")
    bills = [checked for path, checked in watch.seen if "bills" in path]
    assert bills, f"the bills were not asked for: {watch.seen}"
    assert all(checked == 0 for _path, checked in watch.seen), watch.seen


# Found by review: the callback kept the unit of work's transaction (it wrote the claim) and
# its connection open across the code exchange and the profile call.
async def test_the_oauth_callback_holds_no_connection_while_the_city_answers(
    watched: Harness, watch: PoolWatch
) -> None:
    """A slow city at linking time (both calls up to CITY_DEADLINE each) must not take a
    connection of the pool the updates are bounded by: residents linking at once would
    otherwise starve everyone's updates into pool timeouts."""
    chat = watched.chat()
    await chat.send("/start")
    await chat.press("Привязать")
    watch.seen.clear()
    page = await watched.login_page(chat)
    assert START_LINK.search(page), page  # the link worked
    calls = [path for path, _ in watch.seen]
    assert any(p.startswith("/oauth/token") for p in calls), calls
    assert any(p.startswith("/api/v1/profile") for p in calls), calls
    assert all(checked == 0 for _path, checked in watch.seen), watch.seen
