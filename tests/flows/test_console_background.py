"""The console shows what the resident would see: a message the outbox sends on its own (an
autopay reminder) is printed, marked, as it arrives, and ``#N`` presses only a keyboard the
console printed — never one that arrived but was not shown yet."""

from __future__ import annotations

import asyncio
import contextvars
import io
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import Bot
from aiogram.methods import EditMessageText, SendMessage, TelegramMethod

from bot.jobs import deliver_notifications
from bot.ratelimit import MemoryLimiter
from bot.runners import sandbox_login_opener
from domain.ports import Notification
from sandbox.console import BACKGROUND_MARK, run_console
from tests.flows.conftest import Harness

USER_ID = 100001  # the console's chat (run_console's default user)
REMINDER = "в 10:00 спишем по автоплатежу"  # after «DD.MM»
MARKED_REMINDER = rf"{re.escape(BACKGROUND_MARK)}\n\d\d\.\d\d {REMINDER}"
SKIP_ANSWER = "Эта кнопка не работает"  # the reminder's autopay is nobody's
BILLS = "неоплаченных счетов"
LINKED = "Аккаунт привязан"


async def send_reminder(harness: Harness) -> None:
    """What the scheduler does: an autopay reminder row in the outbox, then the sender."""
    assert harness.app is not None
    async with harness.app.uow_factory() as uow:
        await uow.notifications.add_once(
            Notification(
                USER_ID,
                "autopay_reminder",
                {
                    "kind": "fixed",
                    "fund_name": "Помощь фонду",
                    "amount": 15_000,
                    "autopay_id": 424242,  # nobody's: «Пропустить» can only say it is late
                    "period": "2026-11",
                    "due": "2026-11-25",
                },
                dedupe_key="console-reminder",
            ),
            harness.clock(),
        )
        await uow.commit()
    assert await deliver_notifications(harness.app, harness.clock, MemoryLimiter()) == 1


Step = str | Callable[[], Awaitable[str]]


async def run(harness: Harness, steps: list[Step]) -> str:
    """Run the console over `steps` (a line, or a coroutine returning one after doing
    something in the background); the console links the demo resident first."""
    assert harness.app is not None
    feed = iter(["/start", "#1", "#1", *steps])

    async def read(_prompt: str) -> str:
        step = next(feed, None)
        if step is None:
            raise EOFError
        return step if isinstance(step, str) else await step()

    async def ask(_prompt: str) -> str:
        return "3"  # the demo resident number the sandbox login asks for

    output = io.StringIO()
    await run_console(
        harness.app.dispatcher,
        harness.app.bot,
        banner="",
        open_url=sandbox_login_opener(harness.sandbox.url, ask),
        input_fn=read,
        output=output,
        background_poll=None,  # only the deterministic prints: before a prompt, before a line
    )
    return output.getvalue()


async def test_a_reminder_sent_in_the_background_is_printed_and_pressed(
    harness: Harness,
) -> None:
    async def reminder_arrives() -> str:
        await send_reminder(harness)
        return ""  # the resident looks at the screen and types nothing yet

    screen = await run(harness, [reminder_arrives, "#1", ":quit"])

    assert LINKED in screen
    after_link = screen[screen.index(LINKED) :]
    assert re.search(MARKED_REMINDER, after_link)
    printed = after_link.index(REMINDER)
    assert "[1] Пропустить этот раз" in after_link[printed:]
    # #1 pressed the reminder's keyboard, the last one printed: its answer comes after it.
    assert SKIP_ANSWER in after_link[printed:]
    assert BILLS not in after_link


async def test_a_message_not_yet_printed_is_never_what_a_press_presses(
    harness: Harness,
) -> None:
    async def reminder_arrives_as_the_resident_types() -> str:
        await send_reminder(harness)
        return "#1"  # typed while the menu was on screen: «Мои счета»

    screen = await run(harness, [reminder_arrives_as_the_resident_types, ":quit"])

    after_link = screen[screen.index(LINKED) :]
    assert re.search(MARKED_REMINDER, after_link)  # printed before the press's answer
    assert after_link.index(REMINDER) < after_link.index(BILLS)  # the menu's #1 was pressed
    assert SKIP_ANSWER not in after_link


async def test_a_press_before_any_keyboard_is_printed_presses_nothing(
    harness: Harness,
) -> None:
    assert harness.app is not None
    output = io.StringIO()
    lines = iter(["#1", ":quit"])

    def read(_prompt: str) -> str:
        return next(lines)

    await run_console(
        harness.app.dispatcher,
        harness.app.bot,
        banner="",
        input_fn=read,
        output=output,
        background_poll=None,
    )
    assert "! no bot message with an inline keyboard has been shown yet" in output.getvalue()


class ReminderDuringAnswer:
    """A scheduler job that sends a reminder while the bot is answering the resident's press:
    run in a context of its own, as APScheduler's tasks are (no resident action in it)."""

    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        self.armed = False

    async def __call__(self, make_request: Any, bot: Bot, method: TelegramMethod[Any]) -> Any:
        result = await make_request(bot, method)
        if self.armed and isinstance(method, (SendMessage, EditMessageText)):
            self.armed = False
            job = asyncio.create_task(send_reminder(self.harness), context=contextvars.Context())
            await job
        return result


async def test_a_background_message_during_an_answer_is_printed_marked(
    harness: Harness,
) -> None:
    assert harness.app is not None
    during = ReminderDuringAnswer(harness)
    harness.app.bot.session.middleware(during)

    async def press_while_a_job_sends() -> str:
        during.armed = True
        return "#1"  # «Мои счета»: the reminder goes out while its answer is being sent

    screen = await run(harness, [press_while_a_job_sends, ":quit"])

    after_link = screen[screen.index(LINKED) :]
    assert re.search(MARKED_REMINDER, after_link)  # marked, not shown as the answer
    assert BILLS in after_link
