"""The event loop a replica runs on (bot/event_loop.py): uvloop by default, asyncio's own when
EVENT_LOOP=asyncio or where uvloop is not installed."""

from __future__ import annotations

import asyncio
import sys

import pytest

from bot import event_loop
from bot.config import Settings


async def _kind() -> tuple[str, str]:
    await asyncio.sleep(0)
    return event_loop.running(), type(asyncio.get_running_loop()).__module__


def test_a_replica_runs_on_uvloop_by_default() -> None:
    assert Settings(_env_file=None).event_loop == "uvloop"
    kind, module = event_loop.run(_kind())
    assert kind == "uvloop"
    assert module.startswith("uvloop")


def test_asyncio_is_chosen_by_name() -> None:
    kind, module = event_loop.run(_kind(), "asyncio")
    assert kind == "asyncio"
    assert module.startswith("asyncio")


def test_without_uvloop_installed_asyncio_runs_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # `import uvloop` raises ImportError
    factory, name = event_loop.loop_factory("uvloop")
    assert name == "asyncio (uvloop not installed)"
    assert factory is asyncio.new_event_loop
    assert event_loop.run(_kind(), "uvloop")[0] == "asyncio"


def test_the_setting_takes_only_the_two_loops(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENT_LOOP", "asyncio")
    assert Settings(_env_file=None).event_loop == "asyncio"
    monkeypatch.setenv("EVENT_LOOP", "trio")
    with pytest.raises(ValueError, match="event_loop"):
        Settings(_env_file=None)


def test_the_runner_returns_what_the_coroutine_returns_and_raises_what_it_raises() -> None:
    async def fails() -> None:
        raise KeyError("x")

    assert event_loop.run(asyncio.sleep(0, result=42)) == 42
    with pytest.raises(KeyError):
        event_loop.run(fails())


def test_redis_replies_are_parsed_by_hiredis() -> None:
    """redis-py takes its compiled parser when hiredis is installed (a runtime dependency)."""
    from redis._parsers.hiredis import _AsyncHiredisParser
    from redis.asyncio.connection import DefaultParser

    assert DefaultParser is _AsyncHiredisParser
