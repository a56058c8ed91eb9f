"""Settings (pydantic-settings): environment variables or `.env`. Every one is in README's table."""

from __future__ import annotations

import errno
import re
import sys
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from cryptography.fernet import Fernet
from pydantic import (
    AnyHttpUrl,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from domain.limits import AmountLimits

DEFAULT_DATABASE_FILE = "resident-bot.sqlite3"  # in DATA_DIR, when DATABASE_URL is unset
MAX_CEILING_RUB = 1_000_000_000  # a ceiling above 1 billion ₽ is a typo in the setting


DEFAULT_CITY_DEADLINE = 6.0  # seconds one city call may take with its retries


SUPERGROUP_IDS_BELOW = 1_000_000_000_000  # a supergroup's chat id is below minus this
_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def without_password(url: str) -> str:
    """`url` with its password written «***» (for a log or a refusal line)."""
    scheme, sep, rest = url.partition("://")
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    tail = rest[len(authority) :]
    userinfo, at, host = authority.rpartition("@")
    if at and ":" in userinfo:
        userinfo = userinfo.split(":", 1)[0] + ":***"
    return f"{scheme}{sep}{userinfo}{at}{host}{tail}"


def _userinfo_encoded(url: str) -> None:
    """Refuse a URL whose user or password holds a raw «@», «%», «/», «?» or «#» (RFC 3986:
    they are written %40, %25, %2F, %3F, %23 there). Parsed as it stands, part of the password
    would be taken for the host or the port and printed in a refusal line. The value itself is
    never put in the message."""
    _, _, rest = url.partition("://")
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    userinfo, at, _host = authority.rpartition("@")
    path = re.split(r"[?#]", rest[len(authority) :], maxsplit=1)[0]
    try:
        urlsplit(url).port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        malformed = True  # «/», «?» or «#» in a password cut the URL there
    else:  # … or cut it after digits: the rest of the password, and «@», is in the path
        malformed = bool(authority) and not at and "@" in path
    if malformed or (at and ("@" in userinfo or _ESCAPE.search(userinfo))):
        raise ValueError(
            "percent-encode «@», «%», «/», «?» and «#» in the user name and password "
            "(%40, %25, %2F, %3F, %23)"
        )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    bot_token: SecretStr | None = None
    bot_api_url: AnyHttpUrl | None = None
    database_url: str = ""  # unset: SQLite in DATA_DIR (see `_database_in_data_dir`)
    redis_url: str | None = None

    city_api_url: AnyHttpUrl | None = None  # unset: the in-process sandbox
    city_client_id: str = "resident-bot"
    city_client_secret: SecretStr = SecretStr("sandbox-secret")
    city_timeout: float = Field(default=3.0, gt=0, le=60)
    city_deadline: float = Field(default=DEFAULT_CITY_DEADLINE, gt=0, le=120)
    open311_api_key: SecretStr = SecretStr("sandbox-open311-key")
    sandbox_port: int = Field(default=8081, ge=0, le=65535)

    token_encryption_keys: Annotated[list[SecretStr], NoDecode] = []
    public_base_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8080")  # unset: see public_url
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=8080, ge=0, le=65535)
    support_chat_id: int | None = None
    payments_provider_token: SecretStr | None = None  # Telegram Payments (e.g. ЮKassa)
    webhook_secret: SecretStr | None = None  # X-Telegram-Bot-Api-Secret-Token
    flood_limit: int = Field(default=10, ge=0)  # events per resident per 2 s; 0 turns it off
    # Backpressure (README's table): connections each pool keeps, how long a checkout waits
    # for a free one, and how many updates are handled at once (0: DATABASE_POOL_SIZE).
    database_pool_size: int = Field(default=10, ge=1, le=1000)
    pool_timeout: float = Field(default=30.0, gt=0, le=600)  # seconds, database and Redis
    redis_max_connections: int = Field(default=100, ge=1, le=10_000)
    max_concurrent_updates: int = Field(default=0, ge=0, le=10_000)
    # The most one action may charge, in whole rubles (domain/limits.py; README's table).
    max_payment_rub: int = Field(default=500_000, gt=0, le=MAX_CEILING_RUB)
    max_donation_rub: int = Field(default=100_000, gt=0, le=MAX_CEILING_RUB)
    max_autopay_rub: int = Field(default=100_000, gt=0, le=MAX_CEILING_RUB)
    # Autopay charges (city payment calls) in flight at once in one scheduler's run; each
    # holds a database connection while it writes, so keep it below DATABASE_POOL_SIZE.
    autopay_concurrency: int = Field(default=32, ge=1, le=256)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["console", "json"] = "console"
    data_dir: Path = Path("var")

    @field_validator(
        "bot_token",
        "redis_url",
        "city_api_url",
        "bot_api_url",
        "payments_provider_token",
        "webhook_secret",
        "support_chat_id",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="before")
    @classmethod
    def _database_in_data_dir(cls, data: Any) -> Any:
        """Without DATABASE_URL the embedded SQLite file lives in DATA_DIR, beside the key and
        the sandbox's saved state: one directory holds the whole embedded world."""
        if isinstance(data, dict) and not data.get("database_url"):
            folder = Path(str(data.get("data_dir") or "var"))
            data = {**data, "database_url": f"sqlite+aiosqlite:///{folder / DEFAULT_DATABASE_FILE}"}
        return data

    @field_validator("database_url")
    @classmethod
    def _database_driver(cls, value: str) -> str:
        _userinfo_encoded(value)
        if value.startswith(("postgresql://", "postgres://")):
            return "postgresql+asyncpg://" + value.split("://", 1)[1]
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("use sqlite+aiosqlite:///path or postgresql+asyncpg://user@host/db")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("use redis://host:port/db")
        if value is not None:
            _userinfo_encoded(value)
        return value

    @field_validator("support_chat_id")
    @classmethod
    def _a_supergroup(cls, value: int | None) -> int | None:
        # The Bot API gives a supergroup the id -100… (-1000000000000 less its own number): a
        # positive id is a person's private chat, where residents' messages would go.
        if value is not None and value > -SUPERGROUP_IDS_BELOW:
            raise ValueError(
                "use the staff forum supergroup's id (it starts with -100, e.g. -1001234567890)"
            )
        return value

    @field_validator("bot_token")
    @classmethod
    def _token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            head, _, tail = value.get_secret_value().partition(":")
            if not (head.isascii() and head.isdigit()) or not tail:
                raise ValueError("a bot token looks like 123456:ABC... (from @BotFather)")
        return value

    @field_validator("token_encryption_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("token_encryption_keys")
    @classmethod
    def _fernet_keys(cls, value: list[SecretStr]) -> list[SecretStr]:
        for key in value:
            try:
                Fernet(key.get_secret_value())
            except ValueError:
                raise ValueError(
                    "each key must be a Fernet key (32 url-safe base64-encoded bytes)"
                ) from None
        return value

    @model_validator(mode="after")
    def _public_follows_web_port(self) -> Settings:
        """Unset, PUBLIC_BASE_URL is this machine's web server, so WEB_PORT alone moves both."""
        if "public_base_url" not in self.model_fields_set:
            object.__setattr__(self, "public_base_url", AnyHttpUrl(self.public_url()))
        return self

    def public_url(self, bound_port: int | None = None) -> str:
        """Where browsers reach the web server (the OAuth callback), without a trailing "/":
        PUBLIC_BASE_URL when set; otherwise http://WEB_HOST:port, 127.0.0.1 for a wildcard
        WEB_HOST, the port being `bound_port` (the one WEB_PORT=0 was given) or WEB_PORT."""
        if "public_base_url" in self.model_fields_set:
            return str(self.public_base_url).rstrip("/")
        host = "127.0.0.1" if self.web_host in ("", "0.0.0.0", "::") else self.web_host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.web_port if bound_port is None else bound_port}"

    @property
    def updates_in_flight(self) -> int:
        """How many updates are handled at once (polling tasks, webhook requests):
        MAX_CONCURRENT_UPDATES, or unset (0) DATABASE_POOL_SIZE — each update holds one
        connection of the pool for its unit of work, so more would only wait for the pool."""
        return self.max_concurrent_updates or self.database_pool_size

    @property
    def uses_sandbox(self) -> bool:
        return self.city_api_url is None

    @property
    def is_embedded_database(self) -> bool:
        return self.database_url.startswith("sqlite")

    def amount_limits(self) -> AmountLimits:
        """MAX_PAYMENT_RUB, MAX_DONATION_RUB and MAX_AUTOPAY_RUB as the domain's ceilings, in
        kopecks (rubles × 100)."""
        return AmountLimits(
            payment=self.max_payment_rub * 100,
            donation=self.max_donation_rub * 100,
            autopay=self.max_autopay_rub * 100,
        )

    def encryption_keys(self) -> list[str]:
        """The configured keys; with the sandbox and no keys, one kept in DATA_DIR."""
        if self.token_encryption_keys:
            return [key.get_secret_value() for key in self.token_encryption_keys]
        if not self.uses_sandbox:
            raise SettingsError("TOKEN_ENCRYPTION_KEYS", "required when CITY_API_URL is set")
        path = self.data_dir / "token-encryption.key"
        try:
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(Fernet.generate_key().decode("ascii"))
                path.chmod(0o600)
            return [path.read_text().strip()]
        except OSError as error:  # one line at start, not a traceback (review 34b)
            raise CannotStart(unusable_data_dir(self.data_dir, error)) from None


class SettingsError(Exception):
    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"Invalid setting {setting}: {problem}")
        self.setting = setting


class PortBusy(OSError):
    """Another program listens on a port the bot must bind (errno EADDRINUSE); `python -m bot`
    prints it as one line naming the setting that moves it."""

    def __init__(self, setting: str, host: str, port: int) -> None:
        super().__init__(errno.EADDRINUSE, f"port {port} on {host} is busy — set {setting}")
        self.setting = setting

    def __str__(self) -> str:
        return str(self.strerror)


class CannotStart(RuntimeError):
    """Start-up cannot go on for a reason outside the settings' shapes (Telegram refuses the
    token, or does not answer); `python -m bot` prints it as one line."""


def unusable_data_dir(data_dir: Path, error: OSError) -> str:
    """«DATA_DIR … cannot be used»: a folder the bot cannot create or write to."""
    return (
        f"DATA_DIR {data_dir} cannot be used: {error.strerror or error} — set DATA_DIR to a"
        " writable folder"
    )


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment; an invalid one stops start-up with one line naming it."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        error = exc.errors()[0]
        setting = str(error["loc"][0]).upper() if error["loc"] else "?"
        message = str(error["msg"]).removeprefix("Value error, ")
        raise SettingsError(setting, message) from None


def exit_on_bad_settings(error: SettingsError) -> None:
    print(str(error), file=sys.stderr)
    raise SystemExit(2)
