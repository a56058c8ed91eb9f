"""The console journey, as `make run` gives it: /start → link as a demo resident → «Мои счета»."""

from __future__ import annotations

import io
from collections.abc import Iterator

from bot.runners import sandbox_login_opener
from sandbox.console import run_console
from tests.flows.conftest import Harness


def scripted(lines: list[str]) -> tuple[Iterator[str], list[str]]:
    prompts: list[str] = []
    feed = iter(lines)

    def read(prompt: str) -> str:
        prompts.append(prompt)
        try:
            return next(feed)
        except StopIteration:
            raise EOFError from None

    return read, prompts  # type: ignore[return-value]


async def test_console_links_a_demo_resident_and_lists_bills(harness: Harness) -> None:
    assert harness.app is not None
    answers = iter(["3"])  # the demo resident number asked by the sandbox login

    async def ask(prompt: str) -> str:
        assert "демо-житель" in prompt and "Воронцова Мария Сергеевна" in prompt
        return next(answers)

    read, _ = scripted(["/start", "#1", "#1", "#1", ":quit"])
    output = io.StringIO()
    await run_console(
        harness.app.dispatcher,
        harness.app.bot,
        banner="ПЕСОЧНИЦА",
        open_url=sandbox_login_opener(harness.sandbox.url, ask),
        input_fn=read,
        output=output,
    )
    screen = output.getvalue()
    assert screen.startswith("ПЕСОЧНИЦА")
    assert "Здравствуйте!" in screen
    assert "Войти через mos.ru ↗ " + harness.sandbox.url in screen
    assert "Аккаунт привязан: Мария В., учётная запись полная" in screen
    assert "У вас 12 неоплаченных счетов" in screen
    assert screen.rstrip().endswith("bye")


async def test_console_login_with_a_wrong_number_changes_nothing(harness: Harness) -> None:
    assert harness.app is not None

    async def ask(prompt: str) -> str:
        return "сорок два"

    read, _ = scripted(["/start", "#1", "#1", ":quit"])
    output = io.StringIO()
    await run_console(
        harness.app.dispatcher,
        harness.app.bot,
        banner="",
        open_url=sandbox_login_opener(harness.sandbox.url, ask),
        input_fn=read,
        output=output,
    )
    assert "Аккаунт привязан" not in output.getvalue()
