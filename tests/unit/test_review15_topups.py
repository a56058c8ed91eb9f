"""Review of «Пополнить» (issue 15 part 3), below the conversation: the console's saved world
and why no amount fits."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from domain.topups import Closed, TopupLimits, can_top_up, closed
from sandbox import SandboxServer
from sandbox import state as state_module
from sandbox.payments import PaymentBook, PaymentRequest
from sandbox.state import STATE_FILE
from tests.contract.sandbox_client import ContractClient, FakeClock
from tests.contract.test_sandbox_state import World

MOSCOW = timezone(timedelta(hours=3))
PAY_FINE = {"bill_ids": ["B-1002"], "amount": 50_000, "payment_method_id": "pm-full-4242"}


async def test_a_console_world_saved_before_topups_is_read_whole_or_set_aside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make run` keeps the sandbox in DATA_DIR/sandbox-state.pickle. A file written by the
    code before top-ups has payments without `topup` and a payment book without `topups`;
    the format (sandbox/state.py FORMAT) was not bumped, so it is loaded as it is. It must
    either be set aside (a fresh city) or work: history, «Пополнить» and saving again."""
    real = FakeClock(datetime(2026, 3, 20, 12, 0, tzinfo=MOSCOW))
    path = tmp_path / STATE_FILE
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        world = World(path, real)
        await world.server.start()
        city = ContractClient(http, world.server.url)
        token = (await city.login("demo-full")).access_token
        assert (await city.pay(token, "fine", PAY_FINE)).body["status"] == "succeeded"
        # what the code before top-ups wrote: no `topup` in a request, no `topups` in the book
        request_state = PaymentRequest.__getstate__
        book_state = PaymentBook.__getstate__

        def old_book(book: PaymentBook) -> object:
            empty, slots = book_state(book)  # a slotted class's state: (None, {slot: value})
            return empty, {name: value for name, value in slots.items() if name != "topups"}

        monkeypatch.setattr(PaymentRequest, "__getstate__", lambda s: request_state(s)[:-1])
        monkeypatch.setattr(PaymentBook, "__getstate__", old_book)
        assert world.state.save()
        monkeypatch.undo()
        await world.server.stop()

        again = World(path, real)
        loaded = again.state.load()
        if not loaded:  # set aside: a fresh city, nothing half-read
            assert path.with_name(path.name + ".unreadable").exists() and not path.exists()
            return
        server: SandboxServer = again.server
        await server.start()
        try:
            city = ContractClient(http, server.url)
            token = (await city.login("demo-full")).access_token
            history = await city.payments(token)
            assert history.status == 200, history.body
            services = await city.request("GET", "/api/v1/topup-services", token=token)
            assert services.status == 200, services.body
            again.state.save()  # the console saves every second and on the way out
        finally:
            await server.stop()


def test_a_world_of_the_format_before_topups_is_set_aside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FORMAT was bumped for top-ups: a file of format 2 starts a fresh city, kept aside."""
    path = tmp_path / STATE_FILE
    clock = FakeClock(datetime(2026, 3, 20, 12, 0, tzinfo=MOSCOW))
    monkeypatch.setattr(state_module, "FORMAT", 2)  # what the code before top-ups wrote
    assert World(path, clock).state.save()
    monkeypatch.undo()
    assert state_module.FORMAT > 2
    again = World(path, clock)
    with capture_logs() as logs:
        assert again.state.load() is False
    assert path.with_name(path.name + ".unreadable").exists() and not path.exists()
    assert [e["event"] for e in logs] == ["sandbox.state_unreadable"]


async def test_autosave_logs_a_failed_save_once_and_keeps_saving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any exception in a save (not only a full disk) is logged, once while it repeats, and
    the loop goes on: the next good save is written."""
    world = World(tmp_path / STATE_FILE, FakeClock(datetime(2026, 3, 20, 12, 0, tzinfo=MOSCOW)))
    real_save = world.state.save
    calls: list[str] = []

    def save() -> bool:
        calls.append("save")
        if len(calls) <= 3:
            raise AttributeError("'PaymentRequest' object has no attribute 'topup'")
        return real_save()

    monkeypatch.setattr(world.state, "save", save)
    with capture_logs() as logs:
        saver = asyncio.create_task(world.state.autosave(every=0))
        for _ in range(1_000):  # bounded: a loop that died must fail the test, not hang it
            if len(calls) >= 5 or saver.done():
                break
            await asyncio.sleep(0)
        assert not saver.done(), saver.exception()
        saver.cancel()
        with pytest.raises(asyncio.CancelledError):
            await saver
    failed = [e for e in logs if e["event"] == "sandbox.state_not_saved"]
    assert len(failed) == 1 and "topup" in failed[0]["error"], logs
    assert failed[0]["log_level"] == "error" and failed[0].get("exc_info")
    assert (tmp_path / STATE_FILE).exists()  # saved once the failure went away


@given(
    st.integers(min_value=1, max_value=10_000),
    st.integers(min_value=1, max_value=10_000),
    st.none() | st.integers(min_value=0, max_value=20_000),
    st.none() | st.integers(min_value=0, max_value=20_000),
    st.integers(min_value=1, max_value=20_000),
)
def test_why_no_amount_fits_is_always_a_named_reason_that_holds(
    low: int, high: int, max_balance: int | None, balance: int | None, ceiling: int
) -> None:
    """`closed` is None exactly when some amount fits; «full» only where there is a ceiling
    and a balance (the amount step's text needs them: a parking account has neither)."""
    limits = TopupLimits(low, high, max_balance)
    reason = closed(limits, balance, ceiling)
    assert (reason is None) == can_top_up(limits, balance, ceiling)
    if reason is Closed.FULL:
        assert max_balance is not None and balance is not None
        assert max_balance - balance < low <= min(high, ceiling)
    elif reason is Closed.CEILING:
        assert ceiling < low <= high
    elif reason is Closed.LIMITS:
        assert high < low


def test_a_parking_account_is_never_full_only_over_the_operators_ceiling() -> None:
    parking = TopupLimits(1_000, 1_500_000, None)
    assert closed(parking, 0, 500) is Closed.CEILING
    assert closed(parking, None, 500) is Closed.CEILING
    assert closed(parking, 0, 1_000) is None
    troika = TopupLimits(100, 300_000, 300_000)
    assert closed(troika, 299_950, 50_000_000) is Closed.FULL
    assert closed(troika, 299_900, 50_000_000) is None
    assert closed(troika, None, 50_000_000) is None  # a hidden balance: the platform decides
