"""Start-up never depends on the city: payments left open are reconciled in the background, with
backoff while the city is down, and the bot serves meanwhile — in every runner."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import structlog
from aiogram import Bot, Dispatcher
from structlog.testing import capture_logs

import bot.app
import bot.runners
from bot.app import Application, create_application
from bot.runners import start_background
from bot.web import WEBHOOK_PATH
from domain.payments import IntentStatus, PaymentIntent, reconcile
from sandbox.browser import pay_on_page
from sandbox.conversation import Conversation
from tests.contract.sandbox_client import FakeClock
from tests.flows.conftest import LINKED_MENU, Harness, settings_for
from tests.flows.test_payments import bill_buttons, open_bills

CITY_DOWN = {"status": 503}


class ManualSleep:
    """An injectable `sleep` for the backoff: records each delay asked for and returns only
    when the test says so (then the fake clock moves on by that delay)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.delays: list[float] = []
        self._asked: asyncio.Queue[asyncio.Future[None]] = asyncio.Queue()

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._asked.put_nowait(wake)
        await wake
        self.clock.advance(seconds)

    async def asked(self) -> asyncio.Future[None]:
        """Wait until the background run goes to sleep; the future wakes it."""
        return await asyncio.wait_for(self._asked.get(), timeout=30)


@pytest.fixture
async def loop_errors() -> AsyncIterator[list[dict[str, Any]]]:
    """What reaches the event loop's exception handler ("Task exception was never retrieved",
    an exception in a callback): nothing, ever."""
    loop = asyncio.get_running_loop()
    seen: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: seen.append(context))
    yield seen
    gc.collect()  # a task dropped with an unretrieved exception reports it when collected
    loop.set_exception_handler(None)
    assert seen == []


async def pending_3ds_payment(harness: Harness, *, confirm: bool = True) -> Conversation:
    """A resident pays a bill with the saved card •• 3220, which needs 3-D Secure: the intent
    is PENDING. With `confirm` the resident then confirms on the bank's page, so the platform
    has the payment as succeeded while the bot still has it pending."""
    chat = await open_bills(harness)
    await chat.press(bill_buttons(chat)[0])
    await chat.press("Оплатить выбранные")
    await chat.press("Другой способ оплаты")
    await chat.press("•• 3220")
    reply = await chat.press("Оплатить")
    assert "подтвердить оплату на странице банка" in reply.text
    if confirm:
        page = await pay_on_page(chat.url_of("Перейти к оплате"), action="confirm")
        assert page.status == 200 and 'data-status="succeeded"' in page.text
    assert (await last_intent(harness, chat.chat_id)).status is IntentStatus.PENDING
    return chat


async def last_intent(harness: Harness, user_id: int) -> PaymentIntent:
    assert harness.app is not None
    async with harness.app.uow_factory() as uow:
        (intent,) = await uow.payment_intents.recent(user_id, 1)
    return intent


async def set_faults(harness: Harness, faults: dict[str, Any]) -> None:
    await harness.sandbox_call("PUT", "/sandbox/faults", json=faults)


async def revoke_tokens(harness: Harness, chat: Conversation) -> None:
    resident = await harness.stored_resident(chat)
    assert resident is not None and harness.app is not None
    await harness.app.city.revoke(resident.tokens.refresh_token)


async def restart_with_manual_sleep(harness: Harness) -> tuple[Application, ManualSleep]:
    """A new process a minute later (past the in-flight grace), with the backoff's sleep
    in the test's hands."""
    harness.clock.advance(60)
    app = await harness.restart()
    sleep = ManualSleep(harness.clock)
    app.reconciliation.sleep = sleep
    return app, sleep


async def answers_start_with_the_menu(harness: Harness) -> None:
    chat = harness.chat()
    await chat.send("/start")
    assert chat.buttons == LINKED_MENU


def told_reconciled(harness: Harness, chat_id: int) -> list[str]:
    return [m.text for m in harness.telegram.messages(chat_id) if "прошёл. Квитанция №" in m.text]


async def finished(task: asyncio.Task[None] | None) -> None:
    assert task is not None
    await asyncio.wait_for(asyncio.shield(task), timeout=30)


async def test_start_up_while_the_city_is_down_then_the_retry_reconciles(
    harness: Harness, loop_errors: list[dict[str, Any]]
) -> None:
    chat = await pending_3ds_payment(harness)
    await set_faults(harness, CITY_DOWN)

    app, sleep = await restart_with_manual_sleep(harness)
    scheduler = start_background(app)  # what every runner does; returns at once
    try:
        await answers_start_with_the_menu(harness)  # served while the city is down

        wake = await sleep.asked()  # the first run could not ask: a retry in 5 s
        assert sleep.delays == [5.0]
        assert (await last_intent(harness, chat.chat_id)).status is IntentStatus.PENDING
        wake.set_result(None)
        wake = await sleep.asked()  # still down: the delay doubles
        assert sleep.delays == [5.0, 10.0]
        assert told_reconciled(harness, chat.chat_id) == []

        await set_faults(harness, {})  # the city is back
        wake.set_result(None)
        await finished(app.reconciliation.task)  # settled: no further retry
    finally:
        scheduler.shutdown(wait=False)

    assert sleep.delays == [5.0, 10.0]
    assert (await last_intent(harness, chat.chat_id)).status is IntentStatus.SUCCEEDED
    (told,) = told_reconciled(harness, chat.chat_id)
    assert "✅ Платёж на" in told


async def test_the_backoff_is_capped_at_the_regular_interval(
    harness: Harness, loop_errors: list[dict[str, Any]]
) -> None:
    await pending_3ds_payment(harness)
    await set_faults(harness, CITY_DOWN)
    app, sleep = await restart_with_manual_sleep(harness)
    app.reconciliation.first_retry, app.reconciliation.cap = 100.0, 300.0
    app.reconciliation.start()
    for _ in range(3):
        (await sleep.asked()).set_result(None)
    await sleep.asked()
    assert sleep.delays == [100.0, 200.0, 300.0, 300.0]
    task = app.reconciliation.task
    assert task is not None and not task.done()
    await app.stop()  # cancels the run asleep in its backoff, cleanly
    harness.app = None
    assert task.cancelled() and app.reconciliation.task is None


async def test_a_revoked_token_is_left_for_later_and_others_are_settled(
    harness: Harness, loop_errors: list[dict[str, Any]]
) -> None:
    revoked = await pending_3ds_payment(harness)  # the first intent, so it is asked first
    await revoke_tokens(harness, revoked)
    other = harness.chat(200002, "Олег")  # paid a new card on the hosted page meanwhile
    await harness.link(other, "demo-standard")
    await other.press("Мои счета")
    await other.press("Оплатить все")
    await other.press("Другой способ оплаты")
    await other.press("Новая карта")
    await other.press("Оплатить")
    await pay_on_page(other.url_of("Перейти к оплате"), card_number="4242424242424242")

    app, sleep = await restart_with_manual_sleep(harness)
    structlog.configure(cache_logger_on_first_use=False)
    with capture_logs() as events:
        scheduler = start_background(app)
        try:
            await finished(app.reconciliation.task)
        finally:
            scheduler.shutdown(wait=False)

    # The city refused the resident's tokens: they are forgotten, so the resident is offered
    # linking again; the intent keeps its owner and is settled once they have linked.
    revoked_chat = harness.chat(revoked.chat_id)
    await revoked_chat.send("/start")
    assert revoked_chat.buttons == ["🔑 Привязать аккаунт mos.ru"]
    assert sleep.delays == []  # a revoked token is not retried quickly: the regular job asks
    assert (await last_intent(harness, revoked.chat_id)).status is IntentStatus.PENDING
    assert (await last_intent(harness, other.chat_id)).status is IntentStatus.SUCCEEDED
    assert told_reconciled(harness, revoked.chat_id) == []
    assert len(told_reconciled(harness, other.chat_id)) == 1
    left = [e for e in events if e["event"] == "payments.reconcile_left"]
    assert left == [
        {
            "event": "payments.reconcile_left",
            "log_level": "warning",
            "intent_id": (await last_intent(harness, revoked.chat_id)).id,
            "reason": "RelinkRequired",
            "retry": "later",
        }
    ]
    assert not any("exc_info" in e or e["log_level"] == "error" for e in events)

    # The regular job later: still left, still no quick retry, and no traceback.
    harness.clock.advance(300)
    await bot.app.reconcile_in_background(app)
    await finished(app.reconciliation.task)
    assert sleep.delays == []


async def test_a_failing_run_is_logged_and_retried_never_lost_in_the_loop(
    harness: Harness, loop_errors: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    chat = await pending_3ds_payment(harness)
    app, sleep = await restart_with_manual_sleep(harness)
    calls = 0

    async def database_gone_once(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("the database went away")
        return await reconcile(*args, **kwargs)

    monkeypatch.setattr(bot.app, "reconcile", database_gone_once)
    structlog.configure(cache_logger_on_first_use=False)
    with capture_logs() as events:
        app.reconciliation.start()
        (await sleep.asked()).set_result(None)
        await finished(app.reconciliation.task)
    assert [e["event"] for e in events if e["log_level"] == "error"] == [
        "payments.reconcile_failed"
    ]
    assert sleep.delays == [5.0]
    assert (await last_intent(harness, chat.chat_id)).status is IntentStatus.SUCCEEDED


async def test_unlinked_residents_intents_are_not_retried(
    harness: Harness, loop_errors: list[dict[str, Any]]
) -> None:
    chat = await pending_3ds_payment(harness)
    await chat.send("/start")
    await chat.press("Отвязать аккаунт")
    await chat.press("Да, отвязать")
    await set_faults(harness, CITY_DOWN)  # even with the city down: nobody to ask for
    app, sleep = await restart_with_manual_sleep(harness)
    app.reconciliation.start()
    await finished(app.reconciliation.task)
    assert sleep.delays == []


# ---------------------------------------------------------------- the runners themselves


@pytest.fixture
async def down_city_with_open_payment(harness: Harness) -> Harness:
    """A database with a confirmed 3-D Secure payment the bot has as pending, the city
    answering 503, and no application running: the next one is started by a runner."""
    await pending_3ds_payment(harness)
    await set_faults(harness, CITY_DOWN)
    harness.clock.advance(60)
    assert harness.app is not None
    await harness.app.stop()
    harness.app = None
    return harness


@pytest.fixture
def runner_apps(
    down_city_with_open_payment: Harness, monkeypatch: pytest.MonkeyPatch
) -> list[Application]:
    """The runners' own create_application, pointed at the test's Telegram, sandbox and clock;
    the backoff sleeps until the runner stops."""
    harness = down_city_with_open_payment
    apps: list[Application] = []

    async def create(settings: Any, **options: Any) -> Application:
        options["bot_session"] = options.get("bot_session") or harness.telegram
        options.update(clock=harness.clock, sandbox=harness.sandbox)
        app = await create_application(settings, **options)
        app.reconciliation.sleep = ManualSleep(harness.clock)
        harness.app = app
        apps.append(app)
        return app

    monkeypatch.setattr(bot.runners, "create_application", create)
    return apps


async def menu_then_stop(harness: Harness, apps: list[Application]) -> None:
    await answers_start_with_the_menu(harness)
    (app,) = apps
    sleep = app.reconciliation.sleep
    assert isinstance(sleep, ManualSleep)
    await sleep.asked()  # reconciliation is retrying in the background, the bot serves
    assert sleep.delays == [5.0]


def after_runner(harness: Harness, apps: list[Application]) -> None:
    (app,) = apps
    assert app.reconciliation.task is None  # cancelled and released by app.stop()
    harness.app = None  # already stopped by the runner


async def test_console_starts_and_serves_while_the_city_is_down(
    down_city_with_open_payment: Harness,
    runner_apps: list[Application],
    monkeypatch: pytest.MonkeyPatch,
    loop_errors: list[dict[str, Any]],
) -> None:
    harness = down_city_with_open_payment
    consoles = 0

    async def run_console(dispatcher: Dispatcher, bot_: Bot, **_: Any) -> None:
        nonlocal consoles
        consoles += 1
        await menu_then_stop(harness, runner_apps)

    monkeypatch.setattr("sandbox.console.run_console", run_console)
    await bot.runners.console(settings_for_runner(harness))
    assert consoles == 1
    after_runner(harness, runner_apps)


async def test_polling_starts_and_serves_while_the_city_is_down(
    down_city_with_open_payment: Harness,
    runner_apps: list[Application],
    monkeypatch: pytest.MonkeyPatch,
    loop_errors: list[dict[str, Any]],
) -> None:
    harness = down_city_with_open_payment
    polled = 0

    async def poll_confirming(dispatcher: Dispatcher, bot_: Bot, **_: Any) -> None:
        nonlocal polled
        polled += 1
        await menu_then_stop(harness, runner_apps)

    monkeypatch.setattr(bot.runners, "poll_confirming", poll_confirming)
    await bot.runners.poll(settings_for_runner(harness, bot_token="123456:TEST"))
    assert polled == 1
    after_runner(harness, runner_apps)


async def test_the_webhook_starts_and_serves_while_the_city_is_down(
    down_city_with_open_payment: Harness,
    runner_apps: list[Application],
    monkeypatch: pytest.MonkeyPatch,
    loop_errors: list[dict[str, Any]],
) -> None:
    harness = down_city_with_open_payment
    ready = asyncio.Event()

    async def set_webhook(self: Bot, **_: Any) -> bool:
        ready.set()
        return True

    monkeypatch.setattr(Bot, "set_webhook", set_webhook)
    settings = settings_for_runner(harness, bot_token="123456:TEST", webhook_secret="s3cret")
    replica = asyncio.create_task(bot.runners.webhook(settings))
    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(ready.wait(), timeout=30)
        (app,) = runner_apps
        update = {
            "update_id": 900001,
            "message": {
                "message_id": 900001,
                "date": 0,
                "chat": {"id": 100001, "type": "private", "first_name": "Мария"},
                "from": {"id": 100001, "is_bot": False, "first_name": "Мария"},
                "text": "/start",
                "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
            },
        }
        headers = {"X-Telegram-Bot-Api-Secret-Token": "s3cret"}
        async with aiohttp.ClientSession() as http:
            async with http.post(app.web_url + WEBHOOK_PATH, json=update, headers=headers) as r:
                assert r.status == 200
        assert harness.chat().buttons == LINKED_MENU
        sleep = app.reconciliation.sleep
        assert isinstance(sleep, ManualSleep)
        await sleep.asked()
        os.kill(os.getpid(), signal.SIGTERM)  # the replica is told to stop
        await asyncio.wait_for(replica, timeout=30)
    finally:
        for signal_number in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signal_number)
        if not replica.done():
            replica.cancel()
            await asyncio.wait({replica})
    after_runner(harness, runner_apps)


def settings_for_runner(harness: Harness, **overrides: Any) -> Any:
    data_dir = harness.settings.data_dir
    return settings_for(
        data_dir,
        database_url=harness.settings.database_url,
        token_encryption_keys=",".join(
            key.get_secret_value() for key in harness.settings.token_encryption_keys
        ),
        **overrides,
    )
