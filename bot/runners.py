"""Ways to run the bot: terminal console, long polling, migrations."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, TextIO
from urllib.parse import urlsplit

import aiohttp
import structlog
from aiogram.client.session.base import BaseSession
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot import polling
from bot.album import install_first, settle_now
from bot.app import Application, Clock, create_application, utc_now
from bot.config import (
    DEFAULT_CITY_DEADLINE,
    CannotStart,
    Settings,
    SettingsError,
    unusable_data_dir,
)
from bot.jobs import run_due_now, start_scheduler, stop_scheduler
from bot.middlewares import TransientRetryMiddleware
from bot.polling import StorageLedger, poll_confirming
from bot.ratelimit import MemoryLimiter
from bot.warmup import lean_heap
from bot.web import WEBHOOK_PATH
from storage.database import create_engine
from storage.migrate import upgrade

if TYPE_CHECKING:  # the sandbox ships only with the source checkout, never in the wheel
    from sandbox import SandboxServer
    from sandbox.clock import SandboxClock
    from sandbox.console import InputFn
    from sandbox.telegram_double import LocalTelegram

log = structlog.get_logger(__name__)

START_LINK = re.compile(r"[?&]start=(link-[A-Za-z0-9_-]+)")

Ask = Callable[[str], Awaitable[str]]
TEST_CARD = "4242424242424242"
CONSOLE_USER = 100001  # the Telegram user id the terminal console chats as
POLL_GRACE = 30.0  # seconds the updates in flight get to finish when polling stops
# seconds the webhook's albums buffered in memory (no Redis) get on SIGTERM; the requests in
# flight get aiohttp's graceful shutdown after it
WEBHOOK_ALBUM_GRACE = POLL_GRACE
RETRY_DELAYS = (0.5, 2.0, 5.0)  # seconds before each retry of a transiently failed update


async def migrate(settings: Settings) -> None:
    engine = create_engine(settings.database_url)
    try:
        await upgrade(engine)  # DatabaseUnreachable, NotMigrated: one line (bot/__main__.py)
    finally:
        await engine.dispose()
    log.info("migrate.done")


def start_background(app: Application) -> AsyncIOScheduler:
    """The scheduler's ticks, and reconciliation of payments left open started in the
    background — never awaited, so start-up never depends on the city. Returns at once."""
    scheduler = start_scheduler(app)
    app.reconciliation.start()
    return scheduler


@asynccontextmanager
async def serving(
    settings: Settings,
    *,
    bot_session: BaseSession | None = None,
    clock: Clock = utc_now,
    sandbox: SandboxServer | None = None,
) -> AsyncIterator[Application]:
    """What every runner (console, poll, webhook) does around its own way of taking updates:
    the application and its background work (`start_background`). On the way out the scheduler
    stops (`stop_scheduler`: the job runs under way finish first) and the application stops,
    which cancels a reconciliation under way. While the runner takes updates, what start-up
    left on the heap is frozen out of the garbage collector's way (`bot.warmup.lean_heap`)."""
    app = await create_application(settings, bot_session=bot_session, clock=clock, sandbox=sandbox)
    scheduler: AsyncIOScheduler | None = None
    try:
        scheduler = start_background(app)
        with lean_heap():  # no collection scans start-up's ~300 000 objects again
            yield app
    finally:
        if scheduler is not None:
            await stop_scheduler(scheduler)  # the runs under way finish first
        await app.stop()


async def poll(settings: Settings) -> None:
    if settings.bot_token is None:
        raise SettingsError("BOT_TOKEN", "polling needs a token from @BotFather")
    async with serving(settings) as app:
        await app.bot.delete_webhook(drop_pending_updates=False)
        await run_polling(app, handle_signals=True)


async def run_polling(
    app: Application,
    *,
    handle_signals: bool = False,
    retry_delays: tuple[float, ...] = RETRY_DELAYS,
) -> None:
    """Long polling with backpressure (`bot.polling.poll_confirming`), until the dispatcher is
    stopped (a signal when `handle_signals`, or `Dispatcher.stop_polling`):

    - at most `Settings.updates_in_flight` updates are handled at once, and no more than one
      getUpdates batch (100) waits to start: a burst waits in Telegram's queue instead of
      piling up tasks that all wait for the database pool;
    - Telegram is told an update was received only once it and every update before it were
      handled (or failed and the resident was told), so what was in flight when the process
      died comes back after a restart;
    - an update that fails in a way that passes is retried after each of `retry_delays`
      seconds in turn (`TransientRetryMiddleware`), holding its slot: Telegram would only
      send it again after a restart;
    - on the way out the updates in flight get POLL_GRACE seconds to finish; the others are
      not confirmed, and are handled after the restart. Albums buffered in memory (no Redis;
      their parts may be confirmed already) are handled at once within the same grace. Without
      Redis the updates that finished behind an unfinished one (not confirmable) are kept in
      the database (`bot.polling.StorageLedger`): the restart skips them when Telegram hands
      them out again, as Redis's de-duplication markers would."""
    install_first(app.dispatcher, TransientRetryMiddleware(retry_delays))
    ledger = StorageLedger(app.storage, app.bot.id) if app.settings.redis_url is None else None
    await poll_confirming(
        app.dispatcher,
        app.bot,
        in_flight=app.settings.updates_in_flight,
        grace=POLL_GRACE,
        handle_signals=handle_signals,
        ledger=ledger,
        # UPDATE_DEADLINE holds for the default city deadline; a longer one stretches it
        deadline=polling.UPDATE_DEADLINE
        * max(1.0, app.settings.city_deadline / DEFAULT_CITY_DEADLINE),
    )  # the bot's session is left open: Application.stop closes it


async def webhook(settings: Settings) -> None:
    """A webhook replica: several may run behind a load balancer against one PostgreSQL and
    Redis. Updates are answered after handling; SIGTERM stops taking new ones, lets the ones in
    flight finish (aiohttp's graceful shutdown) and releases what this replica holds.

    Without Redis the albums buffered in memory were answered 200 already (Telegram will not
    send their parts again) and die with the process: on SIGTERM they are handled at once,
    within WEBHOOK_ALBUM_GRACE, and a part arriving after that is handled alone in its own
    request, which the graceful shutdown waits for (`bot.album.settle_now`)."""
    if settings.bot_token is None:
        raise SettingsError("BOT_TOKEN", "the webhook needs a token from @BotFather")
    if settings.webhook_secret is None:
        raise SettingsError("WEBHOOK_SECRET", "set a random secret for Telegram's header")
    secret = settings.webhook_secret.get_secret_value()
    async with serving(settings) as app:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signal_number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signal_number, stop.set)
        await app.bot.set_webhook(
            url=str(settings.public_base_url).rstrip("/") + WEBHOOK_PATH,
            secret_token=secret,
            allowed_updates=app.dispatcher.resolve_used_update_types(),
            # Telegram opens no more connections than the replica handles updates at once
            # (the Bot API allows 1-100): the rest wait at Telegram, not in our queue.
            max_connections=max(1, min(100, settings.updates_in_flight)),
        )
        log.info("webhook.ready", url=app.web_url)
        await stop.wait()
        await settle_now(app.dispatcher, WEBHOOK_ALBUM_GRACE)  # before storage closes


CARD_PROMPT = (
    "Страница оплаты песочницы: новая карта. Номер карты (4242424242424242 — успех, "
    "4000000000000002 — отказ, 4000000000003220 — с 3-D Secure), пусто — 4242424242424242: "
)
CONFIRM_PROMPT = (
    "3-D Secure: банк просит подтвердить оплату картой. Подтвердить? "
    "(пусто или «да» — подтвердить, «нет» — отклонить): "
)
CONFIRMS = frozenset({"", "да", "д", "yes", "y", "подтвердить", "+"})
REFUSALS = frozenset({"нет", "н", "no", "n", "-", "отклонить", "отмена", "отменить", "cancel"})
ASKS = 3  # a question not understood is asked again this many times at most, then let go


async def _confirmation(ask: Ask, say: Callable[[str], None]) -> str:
    """«confirm» or «reject» for the 3-D Secure page: only a clear yes confirms — anything not
    understood is asked again, and after ASKS tries nothing is paid (review 33f: «отмена»
    confirmed the payment)."""
    for _ in range(ASKS):
        answer = (await ask(CONFIRM_PROMPT)).strip().lower()
        if answer in CONFIRMS:
            return "confirm"
        if answer in REFUSALS:
            return "reject"
        say("Не понял ответ: пусто или «да» — подтвердить, «нет» — отклонить.")
    return "reject"


async def complete_payment_page(url: str, ask: Ask, say: Callable[[str], None]) -> str | None:
    """Go through the sandbox's hosted payment page as the resident would: a card number on
    the «new card» form, then «Подтвердить» or «Отклонить» on the 3-D Secure page (after a
    card that asks for it, or for a saved card that does), each asked in the terminal.
    Returns the payment's status the last page shows (None when the page does not say)."""
    from sandbox.browser import open_payment_page, pay_on_page, read_payment_page

    page = await open_payment_page(url)
    for _ in range(3):  # a card, then its 3-D Secure: never more pages than that
        if page.step == "card":
            card = "".join((await ask(CARD_PROMPT)).split()) or TEST_CARD
            page = read_payment_page(await pay_on_page(url, card_number=card))
        elif page.step == "confirmation":
            action = await _confirmation(ask, say)
            page = read_payment_page(await pay_on_page(url, action=action))
        else:
            break
    say(f"[песочница] {page.title} (статус: {page.status or '—'}); нажмите «Проверить оплату»")
    return page.status


def sandbox_login_opener(
    sandbox_url: str, ask: Ask, say: Callable[[str], None] = print
) -> Callable[[str], Awaitable[str | None]]:
    """For the console, a browser without a screen: the sandbox's login page logs in as a
    chosen demo resident and returns the `/start link-…` the callback page points back to; the
    sandbox's payment page takes a test card number and a 3-D Secure confirmation
    (`complete_payment_page`). `say` prints a line for the resident."""

    from sandbox.browser import demo_login

    async def open_url(url: str) -> str | None:
        where = urlsplit(url)
        if where.hostname == urlsplit(sandbox_url).hostname and where.path.startswith("/pay/"):
            # a page made before a restart on another port (SANDBOX_PORT=0): the kept city
            # still has the payment, now on this port
            url = sandbox_url + url[url.index("/pay/") :]
            await complete_payment_page(url, ask, say)
            return None
        if not url.startswith(sandbox_url + "/oauth/authorize"):
            return None
        async with aiohttp.ClientSession() as http:
            async with http.get(sandbox_url + "/sandbox/residents") as response:
                residents = (await response.json())["residents"]
        menu = "\n".join(
            f"  {n}. {r['full_name']} — {r['description']}" for n, r in enumerate(residents, 1)
        )
        question = f"Войти как демо-житель (песочница mos.ru):\n{menu}\nНомер: "
        login = None
        for _ in range(ASKS):  # 1…N only: «0» and «-1» would pick from the end (review 33f)
            answer = (await ask(question)).strip()
            choices = {str(n): n for n in range(1, len(residents) + 1)}  # never int(5000 digits)
            if answer in choices:
                login = residents[choices[answer] - 1]["login"]
                break
            say(f"Нет такого номера — введите число от 1 до {len(residents)}.")
            question = "Номер: "
        if login is None:
            return None
        page = await demo_login(url, login)
        match = START_LINK.search(page.text)
        return f"/start {match.group(1)}" if match else None

    return open_url


BANNER = """\
Resident Bot — консоль (без Telegram).
Город: {city}
Пишите сообщения как в чате; #N — нажать кнопку N; :help — команды консоли; :quit — выход.
"""


@dataclass
class EmbeddedCity:
    """The console's sandbox city: its server, the one clock the bot shares with it, and
    whether a saved world was taken back from DATA_DIR."""

    server: SandboxServer
    clock: SandboxClock
    restored: bool
    state_path: Path


CONSOLE_LOCK = "console.lock"


def _data_dir_lock(data_dir: Path) -> IO[str]:
    """The console's hold on DATA_DIR: one console at a time — two would share one SQLite file
    and one saved city, each saving over the other's and each running its own scheduler
    (review 33f). An advisory lock (`flock`): the system drops it when the process dies,
    so a killed console never leaves the folder locked. Raises CannotStart."""
    path = data_dir / CONSOLE_LOCK
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        handle = path.open("a+", encoding="utf-8")
    except OSError as error:
        raise CannotStart(unusable_data_dir(data_dir, error)) from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "?"
        handle.close()
        raise CannotStart(
            f"another console (pid {holder}) is using DATA_DIR {data_dir} — stop it, or set "
            "DATA_DIR to another folder"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


@asynccontextmanager
async def embedded_city(settings: Settings, telegram: LocalTelegram) -> AsyncIterator[EmbeddedCity]:
    """The console's sandbox, kept across restarts in DATA_DIR (sandbox/state.py): loaded
    before it starts, saved every second while it runs and once more on the way out."""
    from sandbox import SandboxServer, create_app
    from sandbox.clock import CLOCK_KEY
    from sandbox.state import STATE_FILE, SandboxState

    city = create_app(
        client_id=settings.city_client_id,
        client_secret=settings.city_client_secret.get_secret_value(),
    )
    # The city's movable clock (real time plus the offset `:time` sets) is the bot's clock
    # too. OAuth keeps real time: a jump is for watching bills, autopays and reminders come,
    # and a token refresh after a long jump is covered elsewhere (tests/flows/test_token_refresh).
    shared = city[CLOCK_KEY]
    state = SandboxState(settings.data_dir / STATE_FILE, city, shared, telegram)
    restored = state.load()
    city.middlewares.insert(0, state.save_after_request)  # on disk before the bot hears
    server = SandboxServer(city, port=settings.sandbox_port)
    await server.start()
    log.warning("sandbox", url=server.url, note="SANDBOX city platform, not production")
    saver = asyncio.create_task(state.autosave(), name="sandbox-autosave")
    try:
        yield EmbeddedCity(server, shared, restored, state.path)
    finally:
        saver.cancel()
        await asyncio.wait({saver})
        try:
            state.save()
        finally:
            await server.stop()


async def console(
    settings: Settings,
    *,
    input_fn: InputFn | None = None,
    ask: Ask | None = None,
    output: TextIO | None = None,
    background_poll: float | None = 0.25,
) -> None:
    """The terminal console. With the embedded sandbox the bot and the city share one movable
    clock (`:time`), and the city, that clock and the Telegram double's chats and files outlive
    a restart (DATA_DIR/sandbox-state.pickle). `input_fn`, `ask` and `output` stand in for the
    terminal (tests); by default stdin and stdout."""
    from sandbox.console import read_stdin_line, run_console
    from sandbox.telegram_double import LocalTelegram

    telegram = LocalTelegram()
    out = output or sys.stdout
    lock = _data_dir_lock(settings.data_dir)  # before the city is loaded from DATA_DIR

    def say(line: str) -> None:
        out.write(line + "\n")
        out.flush()

    async with contextlib.AsyncExitStack() as stack:
        stack.callback(lock.close)
        city: EmbeddedCity | None = None
        if settings.uses_sandbox:
            city = await stack.enter_async_context(embedded_city(settings, telegram))
        app = await stack.enter_async_context(
            serving(
                settings,
                bot_session=telegram,
                clock=city.clock if city else utc_now,
                sandbox=city.server if city else None,
            )
        )
        if city is not None:
            kept = "восстановлен из" if city.restored else "новый; сохраняется в"
            where = f"ПЕСОЧНИЦА {city.server.url} — демо-данные, не настоящий mos.ru"
            where += f"\nМир песочницы {kept} {city.state_path}; время — :time"
        else:
            where = str(settings.city_api_url)
        opener = (
            sandbox_login_opener(city.server.url, ask or read_stdin_line, say) if city else None
        )

        async def run_due() -> int:  # no pacing: the console's one chat gets all at once
            return await run_due_now(app, MemoryLimiter(interval=0.0))

        await run_console(
            app.dispatcher,
            app.bot,
            banner=BANNER.format(city=where),
            open_url=opener,
            input_fn=input_fn,
            output=out,
            background_poll=background_poll,
            clock=city.clock if city else None,
            run_due=run_due if city else None,
            # ids a Redis de-duplication may still remember from the last run are never reused
            first_update_id=int(time.time() * 1000),
            user_id=CONSOLE_USER,
        )
