"""The console (`bot.runners.console`) attacked as a newcomer would: Ctrl-D at the pages'
own questions, a jump back to 1900 and forward again, a kill -9 right after a payment, and a
deleted sandbox-state file under a bot database that still holds the link."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

import bot.runners
from bot.app import Application
from bot.runners import embedded_city
from sandbox import SandboxServer, create_app
from sandbox.clock import CLOCK_KEY, MOSCOW
from sandbox.console import MAX_WALK, TIME_STEP
from sandbox.state import STATE_FILE, SandboxState
from sandbox.telegram_double import LocalTelegram
from tests.contract.sandbox_client import ContractClient
from tests.flows.conftest import settings_for
from tests.flows.test_console_time import LINKED, Terminal, run

RELINK = "Привяжите аккаунт заново"
LINK_BUTTON = "🔑 Привязать аккаунт mos.ru"


def answers(*replies: str | None):  # type: ignore[no-untyped-def]
    """The page's questions answered in turn; None is Ctrl-D (EOFError)."""
    queue = list(replies)

    async def ask(_prompt: str) -> str:
        reply = queue.pop(0) if queue else None
        if reply is None:
            raise EOFError
        return reply

    return ask


async def test_ctrl_d_at_the_login_and_the_3ds_questions_leaves_the_page_without_a_traceback(
    tmp_path: Path,
) -> None:
    terminal = Terminal([])
    press = terminal.press
    terminal._steps = iter(
        [
            "/start",
            press("Привязать"),
            press("Войти через mos.ru"),  # Ctrl-D at «Номер:»
            press("Войти через mos.ru"),  # then «3»
            "/start",
            press("Мои счета"),
            "#2",  # the fine of 500 ₽
            press("Оплатить выбранные"),
            press("Другой способ оплаты"),
            press("•• 3220"),
            press("Оплатить 500"),
            press("Перейти к оплате"),  # Ctrl-D at the 3-D Secure question
            press("Проверить оплату"),
            ":quit",
        ]
    )
    await bot.runners.console(
        settings_for(tmp_path),
        input_fn=terminal.read,
        ask=answers(None, "3", None),
        output=terminal.output,
        background_poll=None,
    )
    screen = terminal.screen
    assert "Traceback" not in screen and "EOFError" not in screen, screen[-3000:]
    assert screen.count("! page left (end of input)") == 2
    assert LINKED in screen  # the console went on after the first Ctrl-D
    assert "Оплачено" not in screen  # nothing confirmed on the resident's behalf


async def test_a_jump_from_1900_back_to_now_walks_only_the_last_stretch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = 0
    real_run_due = bot.runners.run_due_now

    async def counted(app: Application, limiter: object = None) -> int:
        nonlocal runs
        runs += 1
        return await real_run_due(app, limiter)  # type: ignore[arg-type]

    monkeypatch.setattr(bot.runners, "run_due_now", counted)
    target = datetime.now(MOSCOW) + timedelta(days=2)
    terminal = Terminal([":time 1900-01-01", f":time {target:%Y-%m-%d %H:%M}", ":quit"])
    screen = await run(settings_for(tmp_path), terminal)

    assert f"⏰ {target:%d.%m.%Y %H:%M} MSK" in screen
    assert "jumped" in screen
    # 46 000 days step by step would be 92 000 runs (about half an hour): only the last 92 days
    assert runs <= MAX_WALK / TIME_STEP + 4, runs


async def test_what_the_city_answered_is_on_disk_before_the_bot_hears_it(tmp_path: Path) -> None:
    """kill -9 right after a payment: no save at exit, no autosave tick — the file has it."""
    settings = settings_for(tmp_path)
    async with embedded_city(settings, LocalTelegram()) as city:
        async with aiohttp.ClientSession() as http:
            client = ContractClient(http, city.server.url)
            token = (await client.login("demo-full")).access_token
            body = {"bill_ids": ["B-1002"], "amount": 50_000, "payment_method_id": "pm-full-4242"}
            paid = await client.pay(token, "fine", body)
            assert paid.body["status"] == "succeeded"
            raw = city.state_path.read_bytes()  # what a restart after kill -9 would load

    fresh = create_app()
    SandboxState(tmp_path / "copy", fresh, fresh[CLOCK_KEY]).loads(raw)
    async with SandboxServer(fresh) as server, aiohttp.ClientSession() as http:
        kept = await ContractClient(http, server.url).payment(token, paid.body["id"])
    assert (kept.status, kept.body["status"]) == (200, "succeeded")  # not lost by a kill -9


async def test_a_deleted_city_file_leads_the_console_resident_to_link_again(
    tmp_path: Path,
) -> None:
    """A fresh city refuses the tokens the bot still holds: the first screen that asks the
    city says so, and one step back the menu offers linking — never a dead end."""
    settings = settings_for(tmp_path)
    first = Terminal([])
    first._steps = iter(
        ["/start", first.press("Привязать"), first.press("Войти через mos.ru"), ":quit"]
    )
    assert LINKED in await run(settings, first)
    (tmp_path / STATE_FILE).unlink()  # «Delete the file for a fresh city» (README)

    second = Terminal([])
    press = second.press
    second._steps = iter(
        [
            "/start",
            press("История платежей"),  # the city refuses the old tokens: forgotten
            press("‹ Назад"),
            press(LINK_BUTTON),  # the way forward is a button
            press("Войти через mos.ru"),
            press("История платежей"),
            ":quit",
        ]
    )
    screen = await run(settings, second)

    assert RELINK in screen
    assert LINKED in screen[screen.index(RELINK) :]  # linked again, to the new city
    assert "Платежей пока нет" in screen  # the history answers for the new link


async def test_a_payment_page_from_before_a_restart_on_another_port_still_opens(
    tmp_path: Path,
) -> None:
    settings = settings_for(tmp_path)  # SANDBOX_PORT=0: each run listens on another port
    first = Terminal([])
    press = first.press
    first._steps = iter(
        [
            "/start",
            press("Привязать"),
            press("Войти через mos.ru"),
            "/start",
            press("Мои счета"),
            "#2",  # the fine of 500 ₽
            press("Оплатить выбранные"),
            press("Другой способ оплаты"),
            press("•• 3220"),
            press("Оплатить 500"),
            ":quit",  # the bank's page is left for later
        ]
    )
    screen = await run(settings, first)
    old_url = screen[screen.rindex("Перейти к оплате ↗ ") :].split()[4]

    second = Terminal([":screen"])
    second._steps = iter(
        [":screen", second.press("Перейти к оплате"), second.press("Проверить оплату"), ":quit"]
    )
    await bot.runners.console(
        settings,
        input_fn=second.read,
        ask=answers("да"),  # confirm 3-D Secure
        output=second.output,
        background_poll=None,
    )
    screen = second.screen
    assert old_url in screen and "[песочница] Оплата прошла" in screen, screen[-1500:]
    assert "✅ Оплачено 500,00" in screen
