"""The application factory: wires settings, storage, the city, the dispatcher and the web app."""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import structlog
from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.base import BaseSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage
from aiogram.fsm.storage.memory import SimpleEventIsolation
from aiogram.fsm.storage.redis import RedisStorage
from aiogram_dialog import setup_dialogs
from aiohttp import web
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot import dialog_ids
from bot.album import AlbumMiddleware, install_first
from bot.config import Settings
from bot.dedup import DedupStore, MemoryDedup, RedisDedup
from bot.i18n import Translator, load_translator
from bot.metrics import observe_city
from bot.middlewares import (
    LogContextMiddleware,
    MetricsMiddleware,
    ThrottlingMiddleware,
    UnitOfWorkMiddleware,
    UpdateDedupMiddleware,
)
from bot.ratelimit import MemoryLimiter, RedisLimiter, SendLimiter
from bot.telegram_double import LOCAL_BOT_TOKEN
from bot.web import Check, WebContext, create_web_app
from city.client import CityClient
from city.sandbox import SandboxServer
from city.sandbox import create_app as create_sandbox_app
from domain.money import format_rub
from domain.payments import IntentStatus, reconcile
from handlers import build_router
from storage.database import create_engine, create_sessionmaker
from storage.fsm import SqlStorage, dialog_key_builder
from storage.migrate import ensure_migrated, upgrade
from storage.token_cipher import TokenCipher
from storage.uow import UnitOfWorkFactory

log = structlog.get_logger(__name__)
dialog_ids.install()

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Application:
    settings: Settings
    bot: Bot
    dispatcher: Dispatcher
    engine: AsyncEngine
    storage: BaseStorage
    city: CityClient
    uow_factory: UnitOfWorkFactory
    tr: Translator
    web_url: str
    sandbox: SandboxServer | None = None
    owns_sandbox: bool = False
    limiter: SendLimiter = field(default_factory=MemoryLimiter)
    state_engine: AsyncEngine | None = None
    _web_runner: web.AppRunner | None = field(default=None, repr=False)

    async def stop(self) -> None:
        if self._web_runner is not None:
            await self._web_runner.cleanup()
        await self.dispatcher.storage.close()
        await self.city.close()
        if self.sandbox is not None and self.owns_sandbox:
            await self.sandbox.stop()
        await self.bot.session.close()
        await self.engine.dispose()
        if self.state_engine is not None:
            await self.state_engine.dispose()


def _bot_session(settings: Settings) -> BaseSession | None:
    if settings.bot_api_url is None:
        return None
    return AiohttpSession(api=TelegramAPIServer.from_base(str(settings.bot_api_url)))


def _storage(settings: Settings) -> tuple[BaseStorage, BaseEventIsolation, AsyncEngine | None]:
    if settings.redis_url:
        storage = RedisStorage.from_url(settings.redis_url, key_builder=dialog_key_builder())
        return storage, storage.create_isolation(), None
    # Dialog state gets an engine (a pool) of its own: every update holds a connection of the
    # main pool for its unit of work, and sharing that pool deadlocked at 15 concurrent
    # updates once each needed a second connection for its state (found by bench/updates.py).
    state_engine = create_engine(settings.database_url)
    return SqlStorage(create_sessionmaker(state_engine)), SimpleEventIsolation(), state_engine


def build_dispatcher(
    storage: BaseStorage,
    isolation: BaseEventIsolation,
    *,
    uow_factory: UnitOfWorkFactory,
    city: CityClient,
    tr: Translator,
    clock: Clock,
    telegram_payments: str | None = None,
    support_chat_id: int | None = None,
    dedup: DedupStore | None = None,
    flood_limit: int = 10,
) -> Dispatcher:
    dispatcher = Dispatcher(storage=storage, events_isolation=isolation)
    dispatcher.workflow_data.update(
        city=city,
        tr=tr,
        uow_factory=uow_factory,
        clock=clock,
        telegram_payments=telegram_payments,  # the provider token, when Telegram Payments is on
        support_chat_id=support_chat_id,  # the staff supergroup (forum), when support is on
    )
    dedup = dedup or MemoryDedup()
    # De-duplication runs first of all: a redelivered update must not even wait for a lock.
    install_first(dispatcher, UpdateDedupMiddleware(dedup), AlbumMiddleware())
    if flood_limit:
        dispatcher.update.outer_middleware(ThrottlingMiddleware(dedup, tr, limit=flood_limit))
    dispatcher.update.outer_middleware(MetricsMiddleware())
    dispatcher.update.outer_middleware(LogContextMiddleware())
    dispatcher.update.outer_middleware(UnitOfWorkMiddleware(uow_factory))
    dispatcher.include_router(build_router())
    setup_dialogs(dispatcher, events_isolation=isolation)
    return dispatcher


def _readiness_checks(
    engine: AsyncEngine, storage: BaseStorage, city: CityClient
) -> dict[str, Check]:
    async def database() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def redis() -> None:
        assert isinstance(storage, RedisStorage)
        await storage.redis.ping()

    checks: dict[str, Check] = {"database": database, "city": city.ping}
    if isinstance(storage, RedisStorage):
        checks["redis"] = redis
    return checks


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


async def create_application(
    settings: Settings,
    *,
    bot_session: BaseSession | None = None,
    clock: Clock = utc_now,
    sandbox: SandboxServer | None = None,
) -> Application:
    """Everything started except the Telegram side (polling, console or webhook)."""
    owns_sandbox = settings.uses_sandbox and sandbox is None
    if owns_sandbox:
        sandbox = SandboxServer(
            create_sandbox_app(
                client_id=settings.city_client_id,
                client_secret=settings.city_client_secret.get_secret_value(),
            ),
            port=settings.sandbox_port,
        )
        await sandbox.start()
        log.warning("city.sandbox", url=sandbox.url, note="SANDBOX city platform, not production")
    city_url = sandbox.url if settings.uses_sandbox and sandbox else str(settings.city_api_url)

    engine = create_engine(settings.database_url)
    if settings.is_embedded_database:
        await upgrade(engine)
    else:
        await ensure_migrated(engine)

    sock = _bind(settings.web_host, settings.web_port)
    web_url = f"http://{settings.web_host}:{sock.getsockname()[1]}"
    public = web_url if settings.web_port == 0 else str(settings.public_base_url).rstrip("/")

    city = CityClient(
        city_url,
        client_id=settings.city_client_id,
        client_secret=settings.city_client_secret.get_secret_value(),
        redirect_uri=public + "/oauth/callback",
        attempt_timeout=settings.city_timeout,
        deadline=settings.city_deadline,
        open311_key=settings.open311_api_key.get_secret_value(),
        observe=observe_city,
    )
    cipher = TokenCipher(settings.encryption_keys())
    uow_factory = UnitOfWorkFactory(create_sessionmaker(engine), cipher)
    tr = load_translator()
    storage, isolation, state_engine = _storage(settings)
    dispatcher = build_dispatcher(
        storage,
        isolation,
        uow_factory=uow_factory,
        city=city,
        tr=tr,
        clock=clock,
        telegram_payments=(
            settings.payments_provider_token.get_secret_value()
            if settings.payments_provider_token
            else None
        ),
        support_chat_id=settings.support_chat_id,
        dedup=RedisDedup(storage.redis) if isinstance(storage, RedisStorage) else MemoryDedup(),
        flood_limit=settings.flood_limit,
    )
    token = settings.bot_token.get_secret_value() if settings.bot_token else LOCAL_BOT_TOKEN
    bot = Bot(
        token,
        session=bot_session or _bot_session(settings),
        default=DefaultBotProperties(parse_mode="HTML"),
    )
    me = await bot.me()

    web_app = create_web_app(
        WebContext(
            uow_factory=uow_factory,
            auth=city,
            city=city,
            tr=tr,
            clock=clock,
            bot_username=me.username or "",
            dispatcher=dispatcher,
            bot=bot,
            webhook_secret=(
                settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
            ),
            checks=_readiness_checks(engine, storage, city),
        )
    )
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    log.info(
        "bot.started",
        database="sqlite (embedded)" if settings.is_embedded_database else "postgresql",
        state="redis" if settings.redis_url else "database",
        city="sandbox" if settings.uses_sandbox else "platform",
        telegram="token" if settings.bot_token else "local console",
        web=web_url,
    )
    return Application(
        settings=settings,
        bot=bot,
        dispatcher=dispatcher,
        engine=engine,
        storage=storage,
        city=city,
        uow_factory=uow_factory,
        tr=tr,
        web_url=web_url,
        sandbox=sandbox,
        owns_sandbox=owns_sandbox,
        state_engine=state_engine,
        limiter=RedisLimiter(storage.redis)
        if isinstance(storage, RedisStorage)
        else MemoryLimiter(),
        _web_runner=runner,
    )


async def reconcile_payments(app: Application, clock: Clock = utc_now) -> int:
    """Settle payments a crash or a lost answer left open, and tell the residents whose payment
    went through. Safe to run on every replica: it only asks the platform and records."""
    now = clock()
    grace = timedelta(seconds=app.settings.city_deadline)  # younger ones may still be in flight
    async with app.uow_factory() as uow:
        outcomes = await reconcile(uow, app.city, app.city, now, now - grace)
    told = 0
    for outcome in outcomes:
        intent = outcome.intent
        if intent.status is IntentStatus.SUCCEEDED and intent.receipt is not None:
            text = app.tr(
                "pay-reconciled", total=format_rub(intent.amount), number=intent.receipt.number
            )
            await app.bot.send_message(intent.telegram_user_id, text)
            told += 1
    log.info("payments.reconciled", settled=len(outcomes), told=told)
    return told
