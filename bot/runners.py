"""Ways to run the bot: terminal console, long polling, migrations."""

from __future__ import annotations

import asyncio
import re
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import aiohttp
import structlog
from aiogram.client.session.base import BaseSession
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.app import Application, Clock, create_application, utc_now
from bot.config import Settings, SettingsError
from bot.jobs import start_scheduler
from bot.web import WEBHOOK_PATH
from storage.database import create_engine
from storage.migrate import upgrade

if TYPE_CHECKING:  # the sandbox ships only with the source checkout, never in the wheel
    from sandbox import SandboxServer

log = structlog.get_logger(__name__)

START_LINK = re.compile(r"[?&]start=(link-[A-Za-z0-9_-]+)")

Ask = Callable[[str], Awaitable[str]]
TEST_CARD = "4242424242424242"


async def migrate(settings: Settings) -> None:
    engine = create_engine(settings.database_url)
    await upgrade(engine)
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
    stops and the application stops, which cancels a reconciliation under way."""
    app = await create_application(settings, bot_session=bot_session, clock=clock, sandbox=sandbox)
    scheduler: AsyncIOScheduler | None = None
    try:
        scheduler = start_background(app)
        yield app
    finally:
        if scheduler is not None:
            scheduler.shutdown(wait=False)
        await app.stop()


async def poll(settings: Settings) -> None:
    if settings.bot_token is None:
        raise SettingsError("BOT_TOKEN", "polling needs a token from @BotFather")
    async with serving(settings) as app:
        await app.bot.delete_webhook(drop_pending_updates=False)
        await app.dispatcher.start_polling(app.bot, handle_signals=True)


async def webhook(settings: Settings) -> None:
    """A webhook replica: several may run behind a load balancer against one PostgreSQL and
    Redis. Updates are answered after handling; SIGTERM stops taking new ones, lets the ones in
    flight finish (aiohttp's graceful shutdown) and releases what this replica holds."""
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
        )
        log.info("webhook.ready", url=app.web_url)
        await stop.wait()


def sandbox_login_opener(sandbox_url: str, ask: Ask) -> Callable[[str], Awaitable[str | None]]:
    """For the console, a browser without a screen: the sandbox's login page logs in as a
    chosen demo resident and returns the `/start link-…` the callback page points back to; the
    sandbox's payment page takes a test card number."""

    from sandbox.browser import demo_login, pay_on_page

    async def open_url(url: str) -> str | None:
        if url.startswith(sandbox_url + "/pay/"):
            card = await ask(
                "Страница оплаты песочницы. Номер карты (4242424242424242 — успех, "
                "4000000000000002 — отказ), пусто — 4242424242424242: "
            )
            result = await pay_on_page(url, card_number="".join(card.split()) or TEST_CARD)
            print(
                f"[песочница] страница оплаты ответила {result.status}; нажмите «Проверить оплату»"
            )
            return None
        if not url.startswith(sandbox_url + "/oauth/authorize"):
            return None
        async with aiohttp.ClientSession() as http:
            async with http.get(sandbox_url + "/sandbox/residents") as response:
                residents = (await response.json())["residents"]
        menu = "\n".join(
            f"  {n}. {r['full_name']} — {r['description']}" for n, r in enumerate(residents, 1)
        )
        answer = await ask(f"Войти как демо-житель (песочница mos.ru):\n{menu}\nНомер: ")
        try:
            login = residents[int(answer.strip()) - 1]["login"]
        except (ValueError, IndexError):
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


async def console(settings: Settings) -> None:
    from sandbox.console import read_stdin_line, run_console
    from sandbox.telegram_double import LocalTelegram

    async with serving(settings, bot_session=LocalTelegram()) as app:
        city = (
            f"ПЕСОЧНИЦА {app.sandbox.url} — демо-данные, не настоящий mos.ru"
            if app.sandbox
            else str(settings.city_api_url)
        )
        opener = sandbox_login_opener(app.sandbox.url, read_stdin_line) if app.sandbox else None
        await run_console(app.dispatcher, app.bot, banner=BANNER.format(city=city), open_url=opener)
