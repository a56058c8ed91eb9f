"""The application factory: wires settings, storage, the city, the dispatcher and the web app."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import structlog
from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.base import BaseSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage
from aiogram.fsm.storage.memory import SimpleEventIsolation
from aiogram.fsm.storage.redis import RedisStorage
from aiogram_dialog import setup_dialogs
from aiohttp import web
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot import dialog_ids
from bot.album import AlbumMiddleware, install_first
from bot.config import CannotStart, PortBusy, Settings, SettingsError, without_password
from bot.dedup import DedupStore, LeasedRedisEventIsolation, MemoryDedup, RedisDedup
from bot.i18n import Translator, load_translator
from bot.isolation import IsolationReleaseMiddleware, UpdateScopedIsolation
from bot.metrics import observe_city
from bot.middlewares import (
    LogContextMiddleware,
    MetricsMiddleware,
    StaleScreenMiddleware,
    ThrottlingMiddleware,
    UnitOfWorkMiddleware,
    UpdateDedupMiddleware,
    install_session_middlewares,
)
from bot.ratelimit import MemoryLimiter, RedisLimiter, SendLimiter
from bot.screens import ScreenMessageManager
from bot.unexpected import ErrorPathGuard
from bot.unexpected import build_router as build_unexpected_router
from bot.warmup import inline_sync_filters, keep_response_types_alive
from bot.web import Check, WebContext, create_web_app
from city.client import CityClient
from domain.errors import CityUnavailable
from domain.limits import DEFAULT_LIMITS, AmountLimits
from domain.money import format_rub
from domain.payments import IntentStatus, OutcomeKind, PaymentIntent, reconcile
from handlers import build_router
from handlers.ports import QrCode, QrDecoder
from handlers.telegram_pay import REFUND_KEYS
from storage.database import create_engine, create_sessionmaker
from storage.fsm import DIALOG_STATE_KEPT, BatchedRedisStorage, SqlStorage, dialog_key_builder
from storage.migrate import ensure_migrated, upgrade
from storage.token_cipher import TokenCipher
from storage.uow import UnitOfWorkFactory

if TYPE_CHECKING:  # the sandbox ships only with the source checkout, never in the wheel
    from aiogram.types import User

    from sandbox import SandboxServer

log = structlog.get_logger(__name__)
dialog_ids.install()

Clock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[None]]

RECONCILE_EVERY = 300.0  # seconds: the scheduler's reconciliation job (bot/jobs.py)
FIRST_RETRY = 5.0  # seconds: the first retry after the city did not answer about an intent
FLOOD_WINDOW = 2  # seconds: flood protection counts a resident's updates per window


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
    clock: Clock = utc_now
    _web_runner: web.AppRunner | None = field(default=None, repr=False)
    reconciliation: Reconciliation = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.reconciliation = Reconciliation(self, self.clock)

    async def stop(self) -> None:
        await self.reconciliation.stop()  # first: it uses the city, the bot and the database
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


# Seconds between getMe's tries at start-up while the Bot API does not answer (~7 s in all).
WHOAMI_RETRIES = (1.0, 2.0, 4.0)


async def _whoami(bot: Bot, settings: Settings) -> User:
    """getMe: the bot's own account (its @username for links). Raises CannotStart when
    Telegram refuses the token (401: revoked at @BotFather) or, after `WHOAMI_RETRIES`, does
    not answer — naming the setting to check, never the token."""
    where = str(settings.bot_api_url or "https://api.telegram.org")
    for delay in (*WHOAMI_RETRIES, None):
        try:
            return await bot.me()
        except TelegramUnauthorizedError:
            raise CannotStart(
                "Telegram refuses BOT_TOKEN (401 Unauthorized): set the bot's current token "
                "from @BotFather"
            ) from None
        except (TelegramNetworkError, TelegramServerError, TelegramNotFound) as error:
            if delay is None:
                raise CannotStart(
                    f"the Bot API at {where} does not answer getMe ({type(error).__name__}): "
                    "check BOT_API_URL and the network"
                ) from None
            if delay == WHOAMI_RETRIES[0]:  # once: the tries that follow say nothing new
                log.warning(
                    "telegram.unreachable", error=type(error).__name__, retries=len(WHOAMI_RETRIES)
                )
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


def _bot_session(settings: Settings) -> BaseSession | None:
    if settings.bot_api_url is None:
        return None
    return AiohttpSession(api=TelegramAPIServer.from_base(str(settings.bot_api_url)))


def _engine(settings: Settings) -> AsyncEngine:
    """A pool of DATABASE_POOL_SIZE (+ as many overflow) waiting up to POOL_TIMEOUT."""
    return create_engine(
        settings.database_url,
        pool_size=settings.database_pool_size,
        pool_timeout=settings.pool_timeout,
    )


REDIS_CHECK_TIMEOUT = 10.0  # seconds the start-up waits for Redis to answer PING …
REDIS_CHECK_EVERY = 0.5  # … asking again this often (a failover rides out)


async def _redis_reachable(storage: RedisStorage, settings: Settings) -> None:
    """PING until Redis answers, for REDIS_CHECK_TIMEOUT at most, as the database is
    connected to at start: a Redis away for a moment (a failover) is waited for; one that
    does not answer stops the start in one line naming REDIS_URL (without its password),
    instead of a replica that takes updates and fails every one of them (review 36e)."""
    deadline = asyncio.get_running_loop().time() + REDIS_CHECK_TIMEOUT
    while True:
        try:
            async with asyncio.timeout(max(0.1, deadline - asyncio.get_running_loop().time())):
                await storage.redis.ping()  # type: ignore[misc]  # redis-py types sync and async
            return
        except (RedisError, OSError, TimeoutError) as error:
            if asyncio.get_running_loop().time() + REDIS_CHECK_EVERY >= deadline:
                reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
                where = without_password(settings.redis_url or "")
                raise CannotStart(f"cannot reach Redis at {where} (REDIS_URL): {reason}") from None
            await asyncio.sleep(REDIS_CHECK_EVERY)


def _storage(
    settings: Settings, clock: Clock
) -> tuple[BaseStorage, BaseEventIsolation, AsyncEngine | None]:
    if settings.redis_url:
        # One client for dialog state, locks, de-duplication and the send limiter; its pool
        # waits up to POOL_TIMEOUT for a free connection rather than failing at the limit.
        pool = BlockingConnectionPool.from_url(
            settings.redis_url,
            max_connections=settings.redis_max_connections,
            timeout=settings.pool_timeout,
        )
        # aiogram's RedisStorage, with an update's reads and writes batched (storage/fsm.py).
        storage = BatchedRedisStorage(
            Redis(connection_pool=pool),
            key_builder=dialog_key_builder(),
            state_ttl=DIALOG_STATE_KEPT,
            data_ttl=DIALOG_STATE_KEPT,
        )
        # The per-chat lock with a short lease kept by a heartbeat (aiogram's holds 60 s): a
        # replica killed mid-update freezes the chat for seconds, not a minute.
        return storage, LeasedRedisEventIsolation(storage.redis, storage.key_builder), None
    # Dialog state gets an engine (a pool) of its own: every update holds a connection of the
    # main pool for its unit of work, and sharing that pool deadlocked at 15 concurrent
    # updates once each needed a second connection for its state (found by bench/updates.py).
    state_engine = _engine(settings)
    sql = SqlStorage(create_sessionmaker(state_engine), clock=clock)  # the purge's clock
    return sql, SimpleEventIsolation(), state_engine


async def decode_qr(image: bytes) -> Sequence[QrCode]:
    """`handlers.ports.QrDecoder` by Pillow + zxing-cpp (`bot.qr_decoder`), imported with the
    first picture a resident sends rather than at start-up."""
    from bot.qr_decoder import find_qr_payloads

    return await find_qr_payloads(image)


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
    limits: AmountLimits = DEFAULT_LIMITS,
    qr_decoder: QrDecoder = decode_qr,
) -> Dispatcher:
    # each update's locks its own: re-entered, and released at its end whatever failed
    isolation = UpdateScopedIsolation(isolation)
    dispatcher = Dispatcher(storage=storage, events_isolation=isolation)
    dispatcher.workflow_data.update(
        city=city,
        tr=tr,  # handlers.ports.Texts
        qr_decoder=qr_decoder,  # handlers.ports.QrDecoder: receipts' photos
        uow_factory=uow_factory,
        clock=clock,
        telegram_payments=telegram_payments,  # the provider token, when Telegram Payments is on
        support_chat_id=support_chat_id,  # the staff supergroup (forum), when support is on
        limits=limits,  # the operator's ceilings on one payment, donation, autopay charge
    )
    dedup = dedup or MemoryDedup()
    # De-duplication runs first of all: a redelivered update must not even wait for a lock.
    # With Redis the claim also counts the update for flood protection (one round trip).
    flood_window = FLOOD_WINDOW if flood_limit else None
    albums = AlbumMiddleware.for_storage(storage)
    install_first(
        dispatcher,
        IsolationReleaseMiddleware(isolation),  # outermost: after everything, even a failure
        # the chat's pending album groups read with the claim: one round trip less an update
        UpdateDedupMiddleware(dedup, flood_window=flood_window, also_read=albums.pending_key),
        albums,
    )
    if flood_limit:
        dispatcher.update.outer_middleware(
            ThrottlingMiddleware(dedup, tr, limit=flood_limit, window=FLOOD_WINDOW)
        )
    dispatcher.update.outer_middleware(MetricsMiddleware())
    dispatcher.update.outer_middleware(LogContextMiddleware())
    dispatcher.update.outer_middleware(UnitOfWorkMiddleware(uow_factory))
    # Inner: after aiogram-dialog's intent middleware has loaded the stack of the press.
    dispatcher.callback_query.middleware(StaleScreenMiddleware())
    dispatcher.include_router(build_router())
    dispatcher.include_router(build_unexpected_router())  # last: errors no handler words
    # a screen whose message Telegram no longer has comes as a new one (bot/screens.py)
    setup_dialogs(dispatcher, events_isolation=isolation, message_manager=ScreenMessageManager())
    # around aiogram-dialog's error middleware: its failure must not hide a transient one
    dispatcher.errors.outer_middleware(ErrorPathGuard())
    inline_sync_filters(dispatcher)  # no thread hop per magic filter (setup_dialogs' too)
    return dispatcher


def _readiness_checks(
    engine: AsyncEngine, storage: BaseStorage, city: CityClient
) -> dict[str, Check]:
    async def database() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def redis() -> None:
        assert isinstance(storage, RedisStorage)
        await storage.redis.ping()  # type: ignore[misc]  # redis<8 types it `Awaitable[T] | T`

    checks: dict[str, Check] = {"database": database, "city": city.ping}
    if isinstance(storage, RedisStorage):
        checks["redis"] = redis
    return checks


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket for the web server on WEB_HOST:WEB_PORT; PortBusy when it is taken,
    SettingsError when the port is not ours to take (below 1024) or the host is not this
    machine's (unknown, or an address of another)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise PortBusy("WEB_PORT", host, port) from None
        if error.errno == errno.EACCES:
            raise SettingsError("WEB_PORT", f"port {port} needs privileges") from None
        reason = error.strerror or str(error)
        raise SettingsError("WEB_HOST", f"cannot listen on {host!r}: {reason}") from None
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
    """Everything started except the Telegram side (polling, console or webhook). What
    start-up opened is closed again when it fails (the sandbox, pools, sessions, the port), so
    a refusal ends in its own one line: DatabaseUnreachable, NotMigrated, PortBusy, CannotStart
    (Telegram refuses the token or does not answer)."""
    undo = contextlib.AsyncExitStack()
    try:
        owns_sandbox = settings.uses_sandbox and sandbox is None
        if owns_sandbox:
            from sandbox import SandboxServer
            from sandbox import create_app as create_sandbox_app

            sandbox = SandboxServer(
                create_sandbox_app(
                    client_id=settings.city_client_id,
                    client_secret=settings.city_client_secret.get_secret_value(),
                ),
                port=settings.sandbox_port,
            )
            await sandbox.start()
            undo.push_async_callback(sandbox.stop)
            log.warning("sandbox", url=sandbox.url, note="SANDBOX city platform, not production")
        city_url = sandbox.url if settings.uses_sandbox and sandbox else str(settings.city_api_url)

        engine = _engine(settings)
        undo.push_async_callback(engine.dispose)
        if settings.is_embedded_database:
            await upgrade(engine)
        else:
            await ensure_migrated(engine)

        sock = _bind(settings.web_host, settings.web_port)
        undo.callback(sock.close)
        web_url = f"http://{settings.web_host}:{sock.getsockname()[1]}"
        public = settings.public_url(sock.getsockname()[1])  # unset: follows the bound port

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
        undo.push_async_callback(city.close)
        cipher = TokenCipher(settings.encryption_keys())
        uow_factory = UnitOfWorkFactory(create_sessionmaker(engine), cipher)
        tr = load_translator()
        storage, isolation, state_engine = _storage(settings, clock)
        undo.push_async_callback(storage.close)
        if isinstance(storage, RedisStorage):
            await _redis_reachable(storage, settings)
        if state_engine is not None:
            undo.push_async_callback(state_engine.dispose)
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
            limits=settings.amount_limits(),
        )
        if settings.bot_token:
            token = settings.bot_token.get_secret_value()
        else:
            from sandbox.telegram_double import LOCAL_BOT_TOKEN as token
        bot = Bot(
            token,
            session=bot_session or _bot_session(settings),
            default=DefaultBotProperties(parse_mode="HTML"),
        )
        # a redelivered press is not refused on its old answer; no keyboard Telegram refuses
        install_session_middlewares(bot, untitled=tr.label("button-untitled"))
        keep_response_types_alive()  # aiogram's Response[T] classes never garbage-collected
        undo.push_async_callback(bot.session.close)
        me = await _whoami(bot, settings)

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
                updates_in_flight=settings.updates_in_flight,
            )
        )
        # A request line up to 32 KiB: a callback URL with a long `state` or `code` reaches
        # the bot's own Russian page, not aiohttp's English 400 at 8 KiB (review 33e).
        runner = web.AppRunner(web_app, access_log=None, max_line_size=32768)
        await runner.setup()
        undo.push_async_callback(runner.cleanup)
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
            clock=clock,
            _web_runner=runner,
        )
    except BaseException:
        await undo.aclose()
        raise


@dataclass(frozen=True)
class Reconciled:
    """What one reconciliation run did."""

    settled: int = 0  # intents whose outcome was recorded
    told: int = 0  # residents told their payment went through
    retry_soon: int = 0  # left because the city did not answer: asked again after a backoff
    left: int = 0  # left for the regular run (a revoked token, another refusal)


async def reconcile_once(app: Application, clock: Clock | None = None) -> Reconciled:
    """Settle payments a crash or a lost answer left open, and tell the residents whose payment
    went through. Safe to run on every replica: it only asks the platform and records.

    An intent the platform cannot be asked about now is left as it is and logged (its id and
    the reason, nothing personal); the others are settled all the same. Raises only what is
    not the city's doing (the database, a bug)."""
    now = (clock or app.clock)()
    grace = timedelta(seconds=app.settings.city_deadline)  # younger ones may still be in flight
    async with app.uow_factory() as uow:
        outcomes = await reconcile(uow, app.city, app.city, now, now - grace)
    settled = told = retry_soon = left = 0
    for outcome in outcomes:
        intent = outcome.intent
        if outcome.kind is OutcomeKind.UNKNOWN:
            error = outcome.left_because
            # Only an unanswering city is worth a quick retry; a revoked token waits for the
            # resident to link again, so it is asked about at the regular run only.
            soon = error is None or isinstance(error, CityUnavailable)
            retry_soon += soon
            left += not soon
            log.warning(
                "payments.reconcile_left",
                intent_id=intent.id,
                reason=type(error).__name__ if error is not None else "no_answer",
                retry="soon" if soon else "later",
            )
            continue
        settled += 1
        if intent.status is IntentStatus.SUCCEEDED and intent.receipt is not None:
            told += await _tell_reconciled(app, intent)
        elif intent.status is IntentStatus.FAILED and intent.external_charge_id is not None:
            # Telegram's money the city refused when asked again: owed back (staff were told)
            log.error("tgpay.refund_needed", intent_id=intent.id, reason=intent.failure)
            key = REFUND_KEYS.get(outcome.kind, "tgpay-refund-refused")
            told += await _tell(app, intent, app.tr(key, amount=format_rub(intent.amount)))
    log.info("payments.reconciled", settled=settled, told=told, retry_soon=retry_soon, left=left)
    return Reconciled(settled=settled, told=told, retry_soon=retry_soon, left=left)


async def _tell_reconciled(app: Application, intent: PaymentIntent) -> bool:
    assert intent.receipt is not None
    text = app.tr("pay-reconciled", total=format_rub(intent.amount), number=intent.receipt.number)
    return await _tell(app, intent, text)


async def _tell(app: Application, intent: PaymentIntent, text: str) -> bool:
    try:
        await app.bot.send_message(intent.telegram_user_id, text)
    except TelegramAPIError as error:  # e.g. the resident blocked the bot; the others are told
        log.warning("payments.reconciled_untold", intent_id=intent.id, error=type(error).__name__)
        return False
    return True


async def reconcile_payments(app: Application, clock: Clock | None = None) -> int:
    """One reconciliation run now; how many residents were told their payment went through."""
    return (await reconcile_once(app, clock)).told


class Reconciliation:
    """Reconciliation of payments left open runs in the background and is never awaited by
    start-up, so start-up never depends on the city.

    A run starts at once (`start`) and is repeated with exponential backoff — `first_retry`
    seconds, doubling, capped at `cap` (the regular job's interval) — while the city did not
    answer about some intent, or the run failed outright. Intents left for another reason (a
    revoked token) and those whose resident unlinked are not retried quickly: the scheduler's
    regular job (`reconcile_in_background`, every five minutes) asks again. At most one run is
    under way per process; `stop` cancels it. `sleep` is injectable for tests."""

    def __init__(
        self,
        app: Application,
        clock: Clock = utc_now,
        *,
        sleep: Sleep = asyncio.sleep,
        first_retry: float = FIRST_RETRY,
        cap: float = RECONCILE_EVERY,
    ) -> None:
        self.app = app
        self.clock = clock
        self.sleep = sleep
        self.first_retry = first_retry
        self.cap = cap
        self._task: asyncio.Task[None] | None = None

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The run under way or the last one (None before the first or after `stop`)."""
        return self._task

    def start(self) -> asyncio.Task[None]:
        """Start a run (with its retries) unless one is under way; returns at once."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="reconcile-payments")
            self._task.add_done_callback(_retrieve_outcome)
        return self._task

    async def _run(self) -> None:
        delay = self.first_retry
        while True:
            try:
                again = (await reconcile_once(self.app, self.clock)).retry_soon > 0
            except Exception:  # the database or a bug: never the end of the bot, tried again
                log.exception("payments.reconcile_failed")
                again = True
            if not again:
                return
            log.info("payments.reconcile_retry", in_seconds=delay)
            await self.sleep(delay)
            delay = min(delay * 2, self.cap)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task})  # its CancelledError stays inside; ours would propagate


def _retrieve_outcome(task: asyncio.Task[None]) -> None:
    """Retrieve how the run ended, so asyncio never reports an exception "never retrieved"."""
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:  # only a BaseException other than cancellation gets here
        log.error("payments.reconcile_crashed", error=type(error).__name__)


async def reconcile_in_background(app: Application) -> None:
    """The scheduler's job: start a background run unless one is under way (a coroutine, so
    APScheduler calls it in the event loop, not in a worker thread)."""
    app.reconciliation.start()
