"""Settings: embedded defaults, parsing, and one clear line naming a bad setting."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from bot.config import SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = [
    "BOT_TOKEN", "BOT_API_URL", "DATABASE_URL", "REDIS_URL", "CITY_API_URL", "CITY_CLIENT_ID",
    "CITY_CLIENT_SECRET", "CITY_TIMEOUT", "CITY_DEADLINE", "SANDBOX_PORT",
    "TOKEN_ENCRYPTION_KEYS", "PUBLIC_BASE_URL", "WEB_HOST", "WEB_PORT", "SUPPORT_CHAT_ID",
    "LOG_LEVEL", "LOG_FORMAT", "DATA_DIR", "WEBHOOK_SECRET", "FLOOD_LIMIT", "OPEN311_API_KEY",
    "PAYMENTS_PROVIDER_TOKEN",
]  # fmt: skip


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no .env from the developer's checkout


def test_nothing_set_means_embedded_defaults(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    # the embedded database lives in DATA_DIR with the key and the sandbox's saved state
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path}/resident-bot.sqlite3"
    assert load_settings().database_url == "sqlite+aiosqlite:///var/resident-bot.sqlite3"
    assert settings.redis_url is None and settings.uses_sandbox and settings.bot_token is None
    keys = settings.encryption_keys()  # generated once and kept under DATA_DIR
    assert keys == settings.encryption_keys()
    Fernet(keys[0])


def test_keys_are_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setenv("TOKEN_ENCRYPTION_KEYS", f"{first}, {second}")
    assert load_settings().encryption_keys() == [first, second]


def test_plain_postgres_url_gets_the_async_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://bot@db/bot")
    assert load_settings().database_url == "postgresql+asyncpg://bot@db/bot"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", "mysql://x"),
        ("REDIS_URL", "http://redis"),
        ("TOKEN_ENCRYPTION_KEYS", "not-a-key"),
        ("BOT_TOKEN", "nonsense"),
        ("CITY_TIMEOUT", "-1"),
        ("WEB_PORT", "seventy"),
        ("LOG_FORMAT", "xml"),
        ("CITY_API_URL", "not a url"),
    ],
)
def test_a_bad_setting_is_named(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert str(caught.value).startswith(f"Invalid setting {name}: ")
    assert "\n" not in str(caught.value)


def test_a_real_city_needs_encryption_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITY_API_URL", "https://city.example")
    with pytest.raises(SettingsError, match="TOKEN_ENCRYPTION_KEYS"):
        load_settings().encryption_keys()


def test_the_process_stops_with_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    env.update(DATABASE_URL="mysql://nope", PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-m", "bot"], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "Invalid setting DATABASE_URL: use sqlite+aiosqlite:///path or "
        "postgresql+asyncpg://user@host/db"
    ]


def test_empty_optional_settings_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BOT_TOKEN", "REDIS_URL", "SUPPORT_CHAT_ID", "WEBHOOK_SECRET"):
        monkeypatch.setenv(name, "")
    settings = load_settings()
    assert settings.bot_token is None and settings.redis_url is None
    assert settings.support_chat_id is None and settings.webhook_secret is None


def test_data_dir_from_the_environment_moves_the_embedded_database(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "world"))
    assert (
        load_settings().database_url == f"sqlite+aiosqlite:///{tmp_path}/world/resident-bot.sqlite3"
    )
    monkeypatch.setenv("DATABASE_URL", "postgresql://bot@db/city")
    assert load_settings().database_url == "postgresql+asyncpg://bot@db/city"
