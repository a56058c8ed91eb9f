"""Production carries no fakes: with a token and a real city, start-up imports neither the
sandbox city, nor the Telegram double, nor the console."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, sys
import bot.__main__, bot.app, bot.runners, bot.jobs, bot.web
from bot.config import load_settings
settings = load_settings()
assert not settings.uses_sandbox
print(json.dumps(sorted(m for m in sys.modules if m == "sandbox" or m.startswith("sandbox."))))
"""


def test_production_start_up_imports_no_sandbox_or_double(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "BOT_TOKEN": "123456:PRODUCTION-like-token",
        "CITY_API_URL": "https://city.example/api",
        "TOKEN_ENCRYPTION_KEYS": "x" * 43 + "=",
        "DATA_DIR": str(tmp_path),
    }
    run = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.strip().splitlines()[-1]) == []


def test_the_probe_would_see_the_sandbox(tmp_path: Path) -> None:
    """The same probe in embedded mode does import it: the check above can fail."""
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            "import bot.app, sandbox.telegram_double, sys;"
            "print(sum(m.startswith('sandbox') for m in sys.modules))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert int(run.stdout) > 0
