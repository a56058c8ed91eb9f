"""A runner takes updates with start-up's heap frozen out of the garbage collector's way."""

from __future__ import annotations

import gc
from pathlib import Path

from bot.runners import serving
from bot.warmup import THRESHOLDS
from sandbox import SandboxServer
from sandbox.telegram_double import LocalTelegram
from tests.contract.sandbox_client import FakeClock
from tests.flows.conftest import settings_for


async def test_serving_freezes_start_up_and_thaws_on_the_way_out(
    tmp_path: Path, sandbox: SandboxServer, clock: FakeClock
) -> None:
    previous = gc.get_threshold()
    async with serving(
        settings_for(tmp_path), bot_session=LocalTelegram(), clock=clock, sandbox=sandbox
    ) as app:
        frozen = gc.get_freeze_count()
        young = len(gc.get_objects())  # what a collection may still scan
        threshold = gc.get_threshold()
        assert (await app.bot.me()).username  # up and answering with the heap frozen
    assert frozen >= 50_000  # a bot's start-up leaves well over 50 000 tracked objects
    assert frozen > 10 * young  # and almost all of them are frozen
    assert threshold == THRESHOLDS
    assert gc.get_freeze_count() == 0  # thawed: a test process starts many applications
    assert gc.get_threshold() == previous
