"""The wheel is what production installs: it is built here offline, installed into a fresh
virtual environment, and answers `/start` over HTTP — with the texts it ships, without the
sandbox (which it must not contain), and it refuses to start once its texts are gone."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography.fernet import Fernet

from sandbox import SandboxServer

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("bot", "handlers", "domain", "storage", "city", "locales", "sandbox")
TOKEN = "424242:WHEEL-test-token"
RESIDENT = 777_000_111
PIP = (sys.executable, "-m", "pip")
BOT_USER = {"id": 424242, "is_bot": True, "first_name": "Wheel", "username": "wheel_test_bot"}


@dataclass
class FakeBotApi:
    """The few Bot API methods a polling bot needs, over HTTP: one `/start` to hand out, the
    messages it sends kept in `sent`."""

    sent: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    message_id: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        form: dict[str, Any] = dict(await request.post())
        if not form and request.can_read_body:
            form = await request.json()
        if method == "getMe":
            return self._ok(BOT_USER)
        if method == "getUpdates":
            offset = int(form.get("offset") or 0)
            pending = [u for u in self.updates if u["update_id"] >= offset]
            if not pending:
                await asyncio.sleep(0.2)
            return self._ok(pending)
        if method in ("sendMessage", "sendPhoto"):
            self.message_id += 1
            self.sent.append(form)
            return self._ok(
                {
                    "message_id": self.message_id,
                    "date": 1_700_000_000,
                    "chat": {"id": int(form["chat_id"]), "type": "private"},
                    "text": form.get("text", ""),
                }
            )
        return self._ok(True)

    @staticmethod
    def _ok(result: Any) -> web.Response:
        return web.json_response({"ok": True, "result": result})


def _copy_sources(target: Path) -> None:
    shutil.copy(ROOT / "pyproject.toml", target / "pyproject.toml")
    for name in SOURCES:
        shutil.copytree(
            ROOT / name, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding only the wheel; the dependencies come from the test's own venv
    through a plain path entry (its editable-install hook is not run), so offline and fast."""
    work = tmp_path_factory.mktemp("wheel")
    source, dist, venv = work / "src", work / "dist", work / "venv"
    source.mkdir()
    _copy_sources(source)
    subprocess.run(
        [*PIP, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist), str(source)],
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("resident_bot-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if n.startswith(("sandbox/", "tests/", "bench/"))]
    assert "locales/ru/start.ftl" in names
    assert any(n.startswith("storage/migrations/versions/0001") for n in names)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [*PIP, "--python", str(python), "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
    )
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(purelib, "_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[tuple[FakeBotApi, str, dict[str, str]]]:
    api = FakeBotApi()
    app = web.Application()
    app.router.add_route("*", "/bot{token}/{method}", api.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    async with SandboxServer() as city:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(tmp_path),
            "BOT_TOKEN": TOKEN,
            "BOT_API_URL": f"http://127.0.0.1:{port}",
            "CITY_API_URL": city.url,
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/bot.sqlite3",
            "TOKEN_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "DATA_DIR": str(tmp_path / "var"),
            "WEB_PORT": "0",
            "LOG_FORMAT": "json",
        }
        yield api, str(tmp_path), env
    await runner.cleanup()


async def _python(python: Path, cwd: str, env: dict[str, str], code: str) -> str:
    process = await asyncio.create_subprocess_exec(
        str(python), "-c", code, cwd=cwd, env=env, stdout=subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0
    return out.decode().strip()


async def _run(python: Path, cwd: str, env: dict[str, str], *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        str(python), "-m", "bot", *args, cwd=cwd, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode()


async def test_the_installed_wheel_answers_start(
    installed: Path, services: tuple[FakeBotApi, str, dict[str, str]]
) -> None:
    api, cwd, env = services
    python = installed / "bin" / "python"
    where = await _python(
        python, cwd, env, "import bot, locales; print(bot.__file__, locales.__file__)"
    )
    assert all(path.startswith(str(installed)) for path in where.split()), where
    code, out = await _run(python, cwd, env, "migrate")
    assert code == 0, out

    api.updates.append(
        {
            "update_id": 1,
            "message": {
                "message_id": 1,
                "date": 1_700_000_000,
                "chat": {"id": RESIDENT, "type": "private"},
                "from": {"id": RESIDENT, "is_bot": False, "first_name": "Мария"},
                "text": "/start",
                "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
            },
        }
    )
    process = await asyncio.create_subprocess_exec(
        str(python), "-m", "bot", "poll", cwd=cwd, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        for _ in range(300):
            if len(api.sent) >= 2 or process.returncode is not None:
                break
            await asyncio.sleep(0.1)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        out, _ = await asyncio.wait_for(process.communicate(), 30)
    assert api.sent, out.decode()[-3000:]
    first = api.sent[0]
    assert int(first["chat_id"]) == RESIDENT
    assert "mos.ru" in first["text"], first
    buttons = [
        button["text"]
        for message in api.sent
        for row in json.loads(message.get("reply_markup") or "{}").get("inline_keyboard", [])
        for button in row
    ]
    assert buttons, api.sent  # then the menu, with the button to link the account
    assert (
        "sandbox"
        not in " ".join(line for line in out.decode().splitlines() if '"city"' in line).lower()
    )


async def test_the_wheel_refuses_to_start_without_its_texts(
    installed: Path, services: tuple[FakeBotApi, str, dict[str, str]]
) -> None:
    _api, cwd, env = services
    python = installed / "bin" / "python"
    locales = await _python(
        python, cwd, env, "import locales, os; print(os.path.dirname(locales.__file__))"
    )
    saved = Path(cwd, "texts")
    shutil.move(Path(locales, "ru"), saved)
    try:
        code, out = await _run(python, cwd, env, "poll")
    finally:
        shutil.move(saved, Path(locales, "ru"))
    assert code == 2, out
    assert out.strip().splitlines() == [out.strip().splitlines()[-1]]
    assert "Cannot start: no texts" in out
