"""A clean exit is clean: the bot stops its scheduler letting the job runs under way finish
(bot.jobs.stop_scheduler) instead of cancelling them mid-query, which APScheduler logs as an
error with a traceback (seen at `make run </dev/null`: «support_dashboard» cut off)."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.jobs import stop_scheduler

ROOT = Path(__file__).resolve().parents[2]


def test_the_console_at_end_of_input_exits_without_a_traceback(tmp_path: Path) -> None:
    """`make run </dev/null`: start-up runs the dashboard job at once, the console reads EOF at
    once, so the job is mid-query when the bot stops."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "PYTHONPATH": str(ROOT),
        "DATA_DIR": str(tmp_path),
        "WEB_PORT": "0",
        "SANDBOX_PORT": "0",
        "LOG_LEVEL": "INFO",  # the console logs warnings only unless told: its start is info
    }
    run = subprocess.run(
        [sys.executable, "-m", "bot"],
        cwd=tmp_path,  # no .env of the checkout
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    screen = run.stdout + run.stderr
    assert run.returncode == 0, screen[-3000:]
    assert "bot.started" in screen  # it did start (and the log is shown at this level)
    assert "Traceback" not in screen, screen[-3000:]
    assert "raised an exception" not in screen
    assert "[error" not in screen


async def test_stopping_lets_a_run_finish_and_cuts_short_only_past_the_grace(
    caplog: pytest.LogCaptureFixture,
) -> None:
    started = asyncio.Event()
    finished: list[str] = []

    async def job(name: str, seconds: float) -> None:
        started.set()
        await asyncio.sleep(seconds)
        finished.append(name)

    scheduler = AsyncIOScheduler()
    scheduler.add_job(job, "interval", hours=1, args=["quick", 0.3], next_run_time=_now())
    scheduler.start()
    await asyncio.wait_for(started.wait(), timeout=10)
    with caplog.at_level(logging.ERROR, logger="apscheduler"):
        assert await stop_scheduler(scheduler, grace=10) == 0
    assert finished == ["quick"]  # waited for, not cancelled
    assert not caplog.records
    await asyncio.sleep(0)  # AsyncIOScheduler shuts down on the loop's next turn
    assert not scheduler.running

    started.clear()
    scheduler = AsyncIOScheduler()
    scheduler.add_job(job, "interval", hours=1, args=["slow", 60], next_run_time=_now())
    scheduler.start()
    await asyncio.wait_for(started.wait(), timeout=10)
    assert await stop_scheduler(scheduler, grace=0.2) == 1  # cut short after the grace
    assert finished == ["quick"]
    await asyncio.sleep(0)  # the cancelled run unwinds


def _now() -> datetime:
    return datetime.now(UTC)


def test_the_console_exits_cleanly_after_a_photo_under_the_debug_allocator(tmp_path: Path) -> None:
    """A linked resident's photo imports zxing-cpp, whose exit hook (nanobind, Python < 3.12)
    left aiogram's cache of the last updates (`Update.event_type`) to the final collection,
    after CPython 3.11 had freed the datetime C API their tzinfo needs: a use-after-free that
    crashed the exit (rc 139 under PYTHONMALLOC=debug; pydantic#12867). The bot lets go of
    those updates at each update's end and at exit (`bot.middlewares.forget_cached_updates`)."""
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"junk")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "PYTHONPATH": str(ROOT),
        "DATA_DIR": str(tmp_path),
        "WEB_PORT": "0",
        "SANDBOX_PORT": "0",
        "PYTHONMALLOC": "debug",
    }
    typed = f"/start\n#1\n#1\n3\n:photo {junk}\n:quit\n"  # link as resident 3, then the photo
    run = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-m", "bot"],
        cwd=tmp_path,
        env=env,
        input=typed,
        capture_output=True,
        text=True,
        timeout=180,
    )
    screen = run.stdout + run.stderr
    assert "Это не похоже на картинку" in screen, screen[-3000:]  # the photo reached the decoder
    assert run.returncode == 0, screen[-3000:]
    assert "Fatal Python error" not in screen, screen[-3000:]
