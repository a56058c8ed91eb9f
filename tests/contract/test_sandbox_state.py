"""The console's sandbox world survives a restart (sandbox/state.py): every piece of state is
made over HTTP in one sandbox, saved, loaded into a fresh one and read back over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import aiohttp
import pytest

from sandbox import SandboxServer, create_app
from sandbox.clock import CLOCK_KEY, SandboxClock
from sandbox.state import STATE_FILE, SandboxState
from sandbox.telegram_double import LocalTelegram

from .sandbox_client import ContractClient, FakeClock
from .test_sandbox_fines import traffic_uin
from .test_sandbox_open311_media import picture
from .test_sandbox_open311_requests import report

MOSCOW = timezone(timedelta(hours=3))
OPEN = datetime(2026, 3, 20, 12, 0, tzinfo=MOSCOW)  # the water meters' window is open
FINE, FUND, COLD = "B-1002", "F-301", "M-3101"
PAY_FINE = {"bill_ids": [FINE], "amount": 50_000, "payment_method_id": "pm-full-4242"}


class World:
    """One sandbox process: its app on a port, its clock, its state file and Telegram double."""

    def __init__(self, path: Path, real: FakeClock) -> None:
        self.shared = SandboxClock(real)
        self.app = create_app(clock=self.shared, today=OPEN.date())
        self.telegram = LocalTelegram()
        self.state = SandboxState(path, self.app, self.shared, self.telegram)
        self.server = SandboxServer(self.app)


@pytest.fixture
def real() -> FakeClock:
    return FakeClock(OPEN)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


async def restarted(world: World, real: FakeClock, tmp_path: Path) -> World:
    """Save, stop, and start a fresh sandbox from the file (as the console does)."""
    assert world.state.save()
    await world.server.stop()
    again = World(tmp_path / STATE_FILE, real)
    assert again.state.load()
    await again.server.start()
    return again


async def test_every_piece_of_the_city_survives_a_restart(
    tmp_path: Path, real: FakeClock, http: aiohttp.ClientSession
) -> None:
    world = World(tmp_path / STATE_FILE, real)
    await world.server.start()
    city = ContractClient(http, world.server.url)
    tokens = await city.login("demo-full")
    token = tokens.access_token
    paid = await city.pay(token, "fine", PAY_FINE)
    assert paid.body["status"] == "succeeded"
    given = await city.transfer_points(token, "gift", {"fund_id": FUND, "points": 200})
    reading = await city.send_reading(token, "march", COLD, {"value": "431.002"})
    found = (await city.lookup(token, traffic_uin(1))).body["bill"]
    photo = picture()
    media_url = (await city.upload_media(photo)).body["media_url"]
    request_id = await city.report_id(report(media_url=media_url))
    balance = await city.balance(token)  # after the reading's and the report's points
    world.shared.move_by(timedelta(minutes=30))  # the access token lives an hour
    world.app[CLOCK_KEY].move_by(timedelta(hours=5))
    file_id = world.telegram.register_file(b"draft photo", kind="document").file_id
    await world.server.stop()

    world = await restarted(world, real, tmp_path)
    city = ContractClient(http, world.server.url)
    try:
        # tokens: the access token still works, the refresh token still refreshes
        assert (await city.profile(token)).status == 200
        assert (await city.refresh(tokens.refresh_token)).status == 200
        # payments, their keys and the bills they paid
        history = (await city.payments(token)).body["payments"]
        assert [p["id"] for p in history if p["bill_ids"] == [FINE]] == [paid.body["id"]]
        again = await city.pay(token, "fine", PAY_FINE)
        assert (again.status, again.body["id"]) == (200, paid.body["id"])
        assert (await city.bill(token, FINE))["status"] == "paid"
        # points: the balance and the remembered transfer (a replay debits nothing)
        assert await city.balance(token) == balance
        replay = await city.transfer_points(token, "gift", {"fund_id": FUND, "points": 200})
        assert (replay.status, replay.body) == (200, given.body)
        # meters: the reading is kept
        assert reading.status == 201
        meter = await city.meter(token, COLD)
        assert "431.002" in str(meter)
        # fines found by a UIN stay the resident's bills
        assert found["id"] in {b["id"] for b in (await city.bills(token, "all")).body["bills"]}
        # «Наш город»: the request and its photo
        kept = await city.report_now(request_id)
        assert kept["service_request_id"] == request_id
        name = media_url.rsplit("/", 1)[1]
        status, _, data = await city.fetch_media(f"{world.server.url}/media/{name}")
        assert (status, data) == (200, photo)
        # both clocks' offsets, and the Telegram double's files under the same id
        assert world.shared.offset == timedelta(minutes=30)
        assert world.app[CLOCK_KEY]() == OPEN + timedelta(hours=5, minutes=30)
        assert world.telegram._files[file_id].data == b"draft photo"
        assert world.telegram.register_file(b"next", kind="document").file_id != file_id
    finally:
        await world.server.stop()


async def test_a_save_without_changes_writes_nothing_and_a_broken_file_starts_afresh(
    tmp_path: Path, real: FakeClock
) -> None:
    path = tmp_path / STATE_FILE
    world = World(path, real)
    assert world.state.save()
    assert not world.state.save()  # nothing changed
    world.shared.move_by(timedelta(hours=1))
    assert world.state.save()

    path.write_bytes(path.read_bytes()[:100])  # a kill mid-write cannot do this (os.replace)
    fresh = World(path, real)
    assert not fresh.state.load()
    assert fresh.shared.offset == timedelta(0)
    assert not path.exists() and path.with_name(STATE_FILE + ".unreadable").exists()


def test_a_saved_clock_beyond_what_the_console_sets_starts_afresh(
    tmp_path: Path, real: FakeClock
) -> None:
    """Review 33f: an offset the console's `:time` never makes (year 1) broke every date the
    bot computes once loaded; such a file is set aside like a broken one."""
    path = tmp_path / STATE_FILE
    world = World(path, real)
    world.shared.move_by(-(OPEN - datetime(1, 1, 2, tzinfo=MOSCOW)))
    assert world.state.save()
    fresh = World(path, real)
    assert not fresh.state.load()
    assert fresh.shared.offset == timedelta(0)
    assert path.with_name(STATE_FILE + ".unreadable").exists()


def test_no_state_file_is_written_by_a_sandbox_made_alone(tmp_path: Path) -> None:
    create_app(today=date(2026, 3, 20))
    assert list(tmp_path.iterdir()) == []
