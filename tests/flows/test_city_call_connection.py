"""No database connection waits on the city: while the platform answers an update's call, the
update's unit of work holds no connection (it had only read), so a slow city does not use up
the pool (`SqlUnitOfWork.release_idle` through `city.transport.before_call`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web

from sandbox import SandboxServer
from sandbox.app import create_app
from tests.contract.sandbox_client import FakeClock
from tests.flows.conftest import Harness, _harness, settings_for

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class PoolWatch:
    """A sandbox middleware noting, for every resident's call (one with a bearer token), how
    many connections the bot's pool had checked out when the call arrived."""

    def __init__(self) -> None:
        self.harness: Harness | None = None
        self.seen: list[tuple[str, int]] = []

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        app = self.harness.app if self.harness is not None else None
        if app is not None and request.headers.get("Authorization", "").startswith("Bearer"):
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
