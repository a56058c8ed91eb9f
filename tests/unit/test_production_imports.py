"""Production carries no fakes: with a token and a real city, start-up imports neither the
sandbox city, nor the Telegram double, nor the console; nor Pillow and zxing, which only a chart
or a QR photo needs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, sys
import bot.__main__, bot.app, bot.runners, bot.jobs, bot.web
from bot.config import load_settings
settings = load_settings()
assert not settings.uses_sandbox
{then}
# the sandbox and its Telegram double; Pillow and zxing, imported only to draw a chart or read a QR
ROOTS = ("sandbox", "PIL", "zxingcpp")
print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}} & set(ROOTS))))
"""


def production_env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "BOT_TOKEN": "123456:PRODUCTION-like-token",
        "CITY_API_URL": "https://city.example/api",
        "TOKEN_ENCRYPTION_KEYS": "x" * 43 + "=",
        "DATA_DIR": str(tmp_path),
    }


def imported_lazy_roots(tmp_path: Path, then: str = "") -> list[str]:
    """Which of the lazily imported packages a production-like process holds after importing
    the runners (and running `then`)."""
    run = subprocess.run(
        [sys.executable, "-c", PROBE.format(then=then)],
        cwd=ROOT,
        env=production_env(tmp_path),
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_production_start_up_imports_no_sandbox_double_pillow_or_zxing(tmp_path: Path) -> None:
    assert imported_lazy_roots(tmp_path) == []


@pytest.mark.parametrize(
    ("then", "imported"),
    [
        ("bot.charts.payments_chart([['2026-01-01', 100, 1]])", ["PIL"]),  # the digest's chart
        ("import bot.qr_decoder", ["PIL", "zxingcpp"]),  # the QR decoder, built for a photo
    ],
)
def test_the_probe_would_see_pillow_and_zxing(
    tmp_path: Path, then: str, imported: list[str]
) -> None:
    """Drawing a chart or reading a QR photo does import them: the check above can fail."""
    assert imported_lazy_roots(tmp_path, "import bot.charts\n" + then) == imported


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
