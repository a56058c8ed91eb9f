"""WEB_PORT alone moves the bot: PUBLIC_BASE_URL follows it unless set, and a busy port (web or
sandbox) stops `python -m bot` with one line and exit code 2 instead of a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.config import load_settings
from sandbox import SandboxServer
from tests.contract.sandbox_client import FakeClock
from tests.flows.conftest import LINKED_MENU, Harness, settings_for

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port another program listens on."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield int(taken.getsockname()[1])


def test_public_base_url_follows_web_port_unless_set() -> None:
    moved = load_settings(_env_file=None, web_port=9123)
    assert str(moved.public_base_url) == "http://127.0.0.1:9123/"
    assert moved.public_url() == "http://127.0.0.1:9123"
    anywhere = load_settings(_env_file=None, web_host="0.0.0.0", web_port=9124)
    assert anywhere.public_url() == "http://127.0.0.1:9124"  # a browser cannot open 0.0.0.0
    assert load_settings(_env_file=None, web_port=0).public_url(bound_port=40001).endswith(":40001")
    explicit = load_settings(_env_file=None, web_port=9123, public_base_url="https://bot.example/")
    assert explicit.public_url() == explicit.public_url(bound_port=40001) == "https://bot.example"


async def test_linking_works_on_a_web_port_set_alone(tmp_path: Path) -> None:
    """The city sends the browser back to the bot's own port (it went to 8080 before)."""
    port = free_port()
    async with SandboxServer() as sandbox:
        harness = Harness(
            settings=settings_for(tmp_path, web_port=port),
            sandbox=sandbox,
            clock=FakeClock(datetime.now(UTC)),
        )
        app = await harness.start()
        try:
            assert app.web_url.endswith(f":{port}")
            chat = harness.chat()
            await harness.link(chat)
            assert chat.buttons == LINKED_MENU
            assert await harness.stored_resident(chat) is not None
        finally:
            await app.stop()


@pytest.mark.parametrize("setting", ["WEB_PORT", "SANDBOX_PORT"])
def test_a_busy_port_is_one_line_and_exit_2(setting: str, busy_port: int, tmp_path: Path) -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "PYTHONPATH": str(ROOT),
        "DATA_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}",
        "LOG_LEVEL": "ERROR",  # start-up's own log lines are not the subject here
        "WEB_PORT": "0",
        "SANDBOX_PORT": "0",
        setting: str(busy_port),
    }
    run = subprocess.run(
        [sys.executable, "-m", "bot", "console"],
        cwd=tmp_path,  # no .env of the checkout
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.stderr.splitlines() == [
        f"Cannot start: port {busy_port} on 127.0.0.1 is busy — set {setting}"
    ], run.stderr
    assert run.returncode == 2


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("192.0.2.1", "Cannot assign requested address"),  # TEST-NET-1: never this machine's
        ("no-such-host.invalid", ""),  # the resolver's wording varies
    ],
)
def test_a_web_host_not_of_this_machine_is_one_line_and_exit_2(
    host: str, reason: str, tmp_path: Path
) -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "PYTHONPATH": str(ROOT),
        "DATA_DIR": str(tmp_path),
        "LOG_LEVEL": "ERROR",
        "WEB_HOST": host,
        "WEB_PORT": "0",
        "SANDBOX_PORT": "0",
    }
    run = subprocess.run(
        [sys.executable, "-m", "bot", "console"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    [line] = run.stderr.splitlines()
    assert line.startswith(f"Invalid setting WEB_HOST: cannot listen on '{host}': {reason}")
    assert run.returncode == 2
