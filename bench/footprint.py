"""Footprint benchmark: a fresh process's resident memory idle after start-up, and its time from
process start to ready, against importing aiogram alone.

Each figure comes from a fresh Python process this benchmark starts (RSS is VmRSS from
/proc/self/status). The bot runs like a production replica — `python -m bot`'s path: settings
from the environment, logging, `bot.runners.serving` (application, scheduler, frozen heap) —
with a BOT_TOKEN whose Bot API is a fake one in this process (`bench.fake_telegram`, answering
getMe), a CITY_API_URL nobody calls at start-up, and PostgreSQL + Redis when the benchmarks have
them (`bench.common`), else SQLite in a temporary folder (migrated at start-up, so counted).
«ready» is when `serving` yields, i.e. when a runner would start taking updates; «idle» is one
second later. The import steps show what each layer adds to the process, cumulatively.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import Services, flush_redis, fresh_postgres, heading, table
from bench.fake_telegram import BENCH_TOKEN, FakeBotApi
from storage.token_cipher import TokenCipher

ROOT = Path(__file__).resolve().parents[1]
IDLE_SECONDS = 1.0

_RSS = """
def rss_mb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
"""

IMPORT_AIOGRAM = (
    _RSS
    + """
import json, time
started = time.perf_counter()
import aiogram, aiogram.methods, aiogram.types
print(json.dumps({"rss": rss_mb(), "seconds": time.perf_counter() - started}))
"""
)

# what each layer of the bot adds, imported in this order in one process; `bot` first, as in a
# replica: its hook (bot.lazy_models) builds aiogram's types on first use, not at import
IMPORT_STEPS = (
    _RSS
    + """
import importlib, json
steps = [("python", rss_mb())]
for name in ("bot", "aiogram", "aiogram_dialog", "sqlalchemy.ext.asyncio", "redis.asyncio",
             "apscheduler.schedulers.asyncio", "bot.app", "bot.runners"):
    importlib.import_module(name)
    steps.append((name, rss_mb()))
print(json.dumps(steps))
"""
)

REPLICA = (
    _RSS
    + """
import asyncio, gc, json, sys
from bot.config import load_settings
from bot.logs import setup_logging
settings = load_settings()
setup_logging("ERROR", settings.log_format)
from bot.runners import serving

async def main():
    async with serving(settings):
        print(json.dumps({"ready": True}), flush=True)
        await asyncio.sleep(IDLE_SECONDS)
        print(json.dumps({
            "rss": rss_mb(),
            "frozen": gc.get_freeze_count(),
            "young": len(gc.get_objects()),
            "modules": len(sys.modules),
            "lazy": sorted({m.split(".")[0] for m in sys.modules} & {"sandbox", "PIL", "zxingcpp"}),
        }), flush=True)

asyncio.run(main())
"""
)


async def _child(script: str, env: dict[str, str] | None = None) -> tuple[float, list[object]]:
    """Run `script` in a fresh interpreter; returns (seconds from spawning it to its first line
    of output, every JSON line it printed)."""
    spawned = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    first: float | None = None
    lines: list[object] = []
    async for raw in process.stdout:
        if first is None:
            first = time.perf_counter() - spawned
        lines.append(json.loads(raw))
    errors = (await process.stderr.read()).decode() if process.stderr else ""
    if await process.wait() != 0 or first is None:
        raise RuntimeError(f"footprint child failed:\n{errors[-2000:]}")
    return first, lines


@dataclass(frozen=True)
class FootprintResult:
    where: str  # the replica's stack, e.g. "PostgreSQL + Redis"
    rss: float  # MB, the replica idle after start-up
    ready: float  # seconds from spawning the replica to ready
    aiogram_rss: float  # MB, a process that imported aiogram alone


async def run(services: Services) -> FootprintResult:
    heading("Footprint: a fresh process, RSS and start-up time")
    _, [alone] = await _child(IMPORT_AIOGRAM)
    assert isinstance(alone, dict)
    telegram = FakeBotApi()
    await telegram.start()
    with tempfile.TemporaryDirectory() as data_dir:
        env = {
            "BOT_TOKEN": BENCH_TOKEN,
            "BOT_API_URL": telegram.url,
            "CITY_API_URL": "https://city.invalid/api",
            "TOKEN_ENCRYPTION_KEYS": TokenCipher.generate_key(),
            "DATA_DIR": data_dir,
            "WEB_PORT": "0",
            "LOG_LEVEL": "ERROR",
            "DATABASE_URL": "",
            "REDIS_URL": "",
        }
        if services.postgres:
            await fresh_postgres(services.postgres)
            env["DATABASE_URL"] = services.postgres
            where = "PostgreSQL"
        else:
            where = "SQLite"
        if services.redis:
            await flush_redis(services.redis)
            env["REDIS_URL"] = services.redis
            where += " + Redis"
        try:
            ready, [_, idle] = await _child(REPLICA.replace("IDLE_SECONDS", str(IDLE_SECONDS)), env)
        finally:
            await telegram.stop()
    assert isinstance(idle, dict)
    table(
        ["process", "RSS MB", "seconds to ready"],
        [
            ["import aiogram (+ methods, types) alone", alone["rss"], f"{alone['seconds']:.2f}"],
            [f"bot replica ({where}), idle after start", idle["rss"], f"{ready:.2f}"],
        ],
    )
    print(
        f"replica: {idle['frozen']:,} objects frozen at start-up, {idle['young']:,} tracked since;"
        f" {idle['modules']:,} modules; of sandbox/PIL/zxingcpp imported: {idle['lazy'] or 'none'}"
    )
    print("(seconds to ready: from spawning the process; import aiogram: the import alone, every")
    print(" Bot API type built at import, as aiogram does it without bot.lazy_models)")

    _, [steps] = await _child(IMPORT_STEPS)
    assert isinstance(steps, list)
    print()
    rows: list[list[object]] = []
    previous = 0.0
    for name, rss in steps:
        rows.append([name if not rows else f"+ import {name}", rss, rss - previous])
        previous = rss
    table(["imports, cumulative", "RSS MB", "added MB"], rows)
    return FootprintResult(where, idle["rss"], ready, alone["rss"])
