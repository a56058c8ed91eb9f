"""Review 22: the operator's view — faults in the services the bot depends on and in the
process's own life: start-up misconfiguration, a database or Redis going away mid-run, the
database's connections cut at the worst moment (between a charge and its record), signals,
and what the health endpoints and logs show meanwhile.

The bot runs as its own process (`python -m bot …`) where its exit, its exit code and what it
prints matter; in-process otherwise. Telegram is an HTTP fake Bot API (tests/polling_api.py) or
the strict double; PostgreSQL, Redis and the city sandbox are real. Outages are made with a
TCP proxy in front of the service (tests/proxy.py) or by ending this test's own database
connections (pg_terminate_backend), never by stopping the servers."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg  # type: ignore[import-untyped]
import pytest
from aiohttp import web
from cryptography.fernet import Fernet

from sandbox import SandboxServer
from tests.conftest import POSTGRES_URL, need_service
from tests.integration.test_wheel import TOKEN, FakeBotApi
from tests.polling_api import TelegramQueue, sent_per_chat, serve_bot_api, start_update

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


# ---- the process: python -m bot with an environment of the test's own ------------------------


def base_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """What a fresh machine has: no .env (the process runs in `tmp_path`), the embedded SQLite
    under DATA_DIR, free ports."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "PYTHONPATH": str(ROOT),
        "DATA_DIR": str(tmp_path / "var"),
        "WEB_PORT": "0",
        "SANDBOX_PORT": "0",
        **extra,
    }


async def run_bot(env: dict[str, str], *args: str, limit: float = 90) -> tuple[int, str]:
    """`python -m bot ARGS` until it exits by itself; its exit code and all it printed."""
    process = await asyncio.create_subprocess_exec(
        PYTHON, "-m", "bot", *args, cwd=env["HOME"], env=env,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        out, _ = await asyncio.wait_for(process.communicate(), limit)
    except TimeoutError:
        process.kill()
        out, _ = await process.communicate()
        return -9, out.decode()
    return process.returncode if process.returncode is not None else -1, out.decode()


def one_clear_line(code: int, screen: str) -> None:
    """What an operator must get from a start-up that cannot work: a non-zero exit and a short
    explanation — no Python traceback to dig through."""
    assert code not in (0, -9), f"exit code {code}:\n{screen[-2000:]}"
    assert "Traceback" not in screen, screen[-3000:]
    lines = [line for line in screen.splitlines() if line.strip()]
    assert len(lines) <= 3, screen[-3000:]


@pytest.fixture
async def bot_api() -> AsyncIterator[tuple[FakeBotApi, str]]:
    api = FakeBotApi()
    async with serve_bot_api(api) as url:
        yield api, url


def _pg_admin_url(database: str = "postgres") -> str:
    url = need_service(POSTGRES_URL, "TEST_DATABASE_URL")
    parts = urlsplit(url)
    return f"postgresql://{parts.netloc}/{database}"


def _pg_url(database: str) -> str:
    parts = urlsplit(need_service(POSTGRES_URL, "TEST_DATABASE_URL"))
    return f"postgresql+asyncpg://{parts.netloc}/{database}"


async def _recreate_database(name: str) -> None:
    assert name.startswith("test_h2_")
    connection = await asyncpg.connect(_pg_admin_url())
    try:
        await connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


# ---- start-up misconfiguration ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "value", "named"),
    [
        ("BOT_TOKEN", "not-a-token", "BOT_TOKEN"),
        ("AUTOPAY_CONCURRENCY", "0", "AUTOPAY_CONCURRENCY"),
        ("FLOOD_LIMIT", "-5", "FLOOD_LIMIT"),
        ("MAX_PAYMENT_RUB", "-1", "MAX_PAYMENT_RUB"),
        ("SUPPORT_CHAT_ID", "the-support-group", "SUPPORT_CHAT_ID"),
        ("TOKEN_ENCRYPTION_KEYS", "short", "TOKEN_ENCRYPTION_KEYS"),
        ("DATABASE_URL", "mysql://root@localhost/bot", "DATABASE_URL"),
        ("REDIS_URL", "127.0.0.1:6379", "REDIS_URL"),
        ("CITY_API_URL", "https://city.example", "TOKEN_ENCRYPTION_KEYS"),
    ],
)
async def test_an_invalid_setting_stops_start_up_with_one_line_naming_it(
    tmp_path: Path, setting: str, value: str, named: str
) -> None:
    code, screen = await run_bot(base_env(tmp_path, **{setting: value}), "poll")
    one_clear_line(code, screen)
    assert named in screen, screen


# Was (review 22): a revoked BOT_TOKEN (getMe 401) ends start-up in a traceback wall
async def test_telegram_refusing_the_token_stops_start_up_with_one_line(
    tmp_path: Path,
) -> None:
    """BOT_TOKEN has the right shape but was revoked at @BotFather: Telegram answers getMe
    with 401 Unauthorized. The operator must read that the token is refused — not a wall."""

    async def refuse(_request: web.Request) -> web.Response:
        return web.json_response(
            {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
        )

    server = web.Application()
    server.router.add_route("*", "/bot{token}/{method}", refuse)
    runner = web.AppRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        code, screen = await run_bot(base_env(tmp_path, BOT_TOKEN=TOKEN, BOT_API_URL=url), "poll")
    finally:
        await runner.cleanup()
    one_clear_line(code, screen)
    assert TOKEN not in screen and TOKEN.split(":")[1] not in screen  # the secret stays secret


# Was (review 22): Telegram unreachable at start-up (getMe) ends in a traceback wall
async def test_telegram_unreachable_at_start_up_is_said_in_one_line(tmp_path: Path) -> None:
    """A firewall or DNS problem: api.telegram.org does not answer at start-up."""
    env = base_env(tmp_path, BOT_TOKEN=TOKEN, BOT_API_URL="http://127.0.0.1:9")
    code, screen = await run_bot(env, "poll")
    one_clear_line(code, screen)


# Was (review 22): a DATABASE_URL that cannot be reached ends start-up in a traceback wall
@pytest.mark.parametrize("where", ["closed-port", "no-such-database"])
@pytest.mark.parametrize("command", ["poll", "migrate"])
async def test_a_database_that_cannot_be_reached_is_said_in_one_line(
    tmp_path: Path, bot_api: tuple[FakeBotApi, str], where: str, command: str
) -> None:
    """DATABASE_URL names a host:port where nothing listens (a typo, the database not up yet)
    or a database that does not exist: `poll` and `migrate` must say so in one line (which
    setting, what failed) and exit non-zero."""
    url = (
        "postgresql://postgres@127.0.0.1:9/bot"
        if where == "closed-port"
        else _pg_url("test_h2_no_such_database").replace("+asyncpg", "")
    )
    env = base_env(tmp_path, BOT_TOKEN=TOKEN, BOT_API_URL=bot_api[1], DATABASE_URL=url)
    code, screen = await run_bot(env, command)
    one_clear_line(code, screen)
    assert "DATABASE_URL" in screen or "database" in screen.lower(), screen


FUTURE = "0099_from_a_newer_release"


@pytest.fixture
async def newer_database() -> str:
    """A PostgreSQL database migrated by this version, then by a newer one (its alembic
    revision is unknown here): the operator rolled the code back after a deploy."""
    name = "test_h2_newer"
    await _recreate_database(name)
    url = _pg_url(name)
    from storage.database import create_engine
    from storage.migrate import upgrade

    engine = create_engine(url)
    try:
        await upgrade(engine)
        async with engine.begin() as connection:
            from sqlalchemy import text

            await connection.execute(
                text("UPDATE alembic_version SET version_num = :v"), {"v": FUTURE}
            )
    finally:
        await engine.dispose()
    return url


# Was (review 22): `migrate` on a database of a newer release crashes with alembic's CommandError
# traceback
async def test_migrate_on_a_database_of_a_newer_release_says_so_in_one_line(
    tmp_path: Path, newer_database: str
) -> None:
    code, screen = await run_bot(base_env(tmp_path, DATABASE_URL=newer_database), "migrate")
    one_clear_line(code, screen)
    assert FUTURE in screen, screen


# Was (review 22): a database of a newer release is answered «run `python -m bot migrate`», which
# cannot help (the code does not know the revision)
async def test_start_on_a_database_of_a_newer_release_does_not_advise_migrate(
    tmp_path: Path, bot_api: tuple[FakeBotApi, str], newer_database: str
) -> None:
    env = base_env(tmp_path, BOT_TOKEN=TOKEN, BOT_API_URL=bot_api[1], DATABASE_URL=newer_database)
    code, screen = await run_bot(env, "poll")
    one_clear_line(code, screen)
    assert FUTURE in screen, screen
    assert "bot migrate" not in screen, screen  # the advice leads to a crash (test above)


# Was (review 22): two `migrate` at once on an empty PostgreSQL database: one dies with an
# IntegrityError traceback (pg_type_typname_nsp_index) — no lock around the upgrade
async def test_replicas_migrating_one_empty_database_at_once_all_succeed(tmp_path: Path) -> None:
    """A deploy starts replicas whose entrypoint is `python -m bot migrate` at the same moment
    on an empty database: each must end well (one migrates, the others wait and find it done)
    — a replica exiting on a traceback is restarted in a loop by its supervisor, and an
    operator reads a crash. Three rounds of three (the race is won or lost by milliseconds)."""
    from storage.migrate import head_revision

    name = "test_h2_twin"
    url = _pg_url(name)
    for round_ in range(3):
        await _recreate_database(name)
        homes = [tmp_path / f"r{round_}-{n}" for n in range(3)]
        for home in homes:
            home.mkdir()
        results = await asyncio.gather(
            *(run_bot(base_env(home, DATABASE_URL=url), "migrate") for home in homes)
        )
        for code, screen in results:
            assert code == 0, screen[-3000:]
        connection = await asyncpg.connect(_pg_admin_url(name))
        try:
            revision = await connection.fetchval("SELECT version_num FROM alembic_version")
        finally:
            await connection.close()
        assert revision == head_revision()


# ---- signals ---------------------------------------------------------------------------------


class SlowSends(TelegramQueue):
    """Telegram that takes `delay` seconds to answer each sendMessage: an update is in flight
    for that long. `sending` is set when the first send arrives."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.sending = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        if request.match_info["method"] == "sendMessage":
            self.sending.set()
            await asyncio.sleep(self.delay)
        return await super().handle(request)


async def start_polling_process(
    env: dict[str, str],
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        PYTHON, "-m", "bot", "poll", cwd=env["HOME"], env=env,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip


async def finish(process: asyncio.subprocess.Process, limit: float = 60) -> tuple[int, str]:
    try:
        out, _ = await asyncio.wait_for(process.communicate(), limit)
    except TimeoutError:
        process.kill()
        out, _ = await process.communicate()
        return -9, out.decode()
    return process.returncode if process.returncode is not None else -1, out.decode()


async def wait_for(condition: Any, what: str, limit: float = 60) -> None:
    for _ in range(int(limit * 20)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out: {what}")


@pytest.mark.parametrize("signals", [1, 2])
async def test_sigterm_while_an_update_is_handled_finishes_it_once(
    tmp_path: Path, signals: int
) -> None:
    """A deploy sends SIGTERM (an impatient one twice) while a resident's /start is being
    answered: the process ends without a traceback, exit code 0, and the resident gets the
    answer exactly once — finished now, or, when cut, after the restart (never twice, never
    lost)."""
    api = SlowSends(delay=1.5)
    user = 620_000_001
    api.updates.append(start_update(1, user))
    async with serve_bot_api(api) as url:
        env = base_env(
            tmp_path, BOT_TOKEN=TOKEN, BOT_API_URL=url, LOG_FORMAT="json",
            TOKEN_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        )  # fmt: skip
        process = await start_polling_process(env)
        await asyncio.wait_for(api.sending.wait(), 90)
        for _ in range(signals):
            process.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.1)
        code, screen = await finish(process)
        assert code == 0, screen[-3000:]
        assert "Traceback" not in screen, screen[-3000:]
        assert '"level": "error"' not in screen, screen[-3000:]
        api.delay = 0
        asked = len(api.offsets)
        again = await start_polling_process(env)
        await wait_for(lambda: len(api.offsets) > asked + 1, "the restart polls")
        assert api.confirmed >= 2
        await asyncio.sleep(1)  # anything sent twice would be sent by now
        again.send_signal(signal.SIGTERM)
        code, screen = await finish(again)
        assert code == 0, screen[-3000:]
    assert sent_per_chat(api)[user] == 2  # greeting and menu, once


# Was (review 22): Ctrl+C in the console prints «bye» then aborts: Fatal Python error
# _enter_buffered_busy (the stdin-reading thread at interpreter shutdown), exit -6
async def test_sigint_in_the_console_exits_cleanly(tmp_path: Path) -> None:
    """`make run` without BOT_TOKEN: the terminal console; Ctrl+C at its prompt."""
    env = base_env(tmp_path)
    process = await asyncio.create_subprocess_exec(
        PYTHON, "-m", "bot", cwd=env["HOME"], env=env,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    assert process.stdout is not None
    seen = b""
    while "Resident Bot — консоль".encode() not in seen:  # the banner: started, at its prompt
        chunk = await asyncio.wait_for(process.stdout.read(4096), 90)
        assert chunk, seen.decode()
        seen += chunk
    await asyncio.sleep(1)
    process.send_signal(signal.SIGINT)
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    screen = (seen + out).decode()
    assert process.returncode in (0, 130), screen[-3000:]
    assert "Traceback" not in screen, screen[-3000:]
    assert "[error" not in screen, screen[-3000:]


# ---- health and metrics while the database is down; what they and the logs show -------------


async def test_health_and_metrics_answer_while_the_database_is_down_and_hide_secrets(
    tmp_path: Path,
) -> None:
    """PostgreSQL goes away (a proxy cut) while a resident writes: /healthz still says the
    process lives, /readyz says the database fails, /metrics answers — and none of them, nor
    any log line, shows the bot token or the database password."""
    import aiohttp
    from aiogram.types import Update

    from bot.app import create_application
    from sandbox.telegram_double import LocalTelegram
    from tests.conftest import fresh_engine
    from tests.flows.conftest import settings_for
    from tests.flows.test_review22_operator_flows import operator_log
    from tests.proxy import Proxy

    engine = await fresh_engine("postgres", tmp_path)
    await engine.dispose()
    pg = urlsplit(POSTGRES_URL)
    proxy = Proxy(pg.hostname or "127.0.0.1", pg.port or 5432)
    await proxy.start()
    password = "Pg-Pa55word-review22"
    user = pg.username or "postgres"
    url = f"postgresql+asyncpg://{user}:{password}@127.0.0.1:{proxy.port}{pg.path}"
    token = "987654:SECRET-review22-token-AAAAAAAAAAAAAAAA"
    settings = settings_for(tmp_path, database_url=url, bot_token=token)
    async with SandboxServer() as city:
        app = await create_application(settings, bot_session=LocalTelegram(), sandbox=city)
        bodies: list[str] = []
        try:
            with operator_log() as lines:
                proxy.down()
                update = Update.model_validate(
                    start_update(1, 630_000_001), context={"bot": app.bot}
                )
                with pytest.raises(Exception):  # noqa: B017 — any failure; it is classified
                    await app.dispatcher.feed_update(app.bot, update)
                async with aiohttp.ClientSession() as http:
                    for path, expected in (("/healthz", 200), ("/readyz", 503), ("/metrics", 200)):
                        async with http.get(app.web_url + path) as answer:
                            body = await answer.text()
                            bodies.append(body)
                            assert answer.status == expected, (path, body)
                proxy.restore()
        finally:
            await app.stop()
            await proxy.stop()
    shown = "\n".join(bodies) + "\n" + repr(lines)
    for secret in (token, token.split(":")[1], password):
        assert secret not in shown, secret
    assert [line for line in lines if line.get("event") == "update.failed"] == []
