"""The console as `make run` starts it (`bot.runners.console`, embedded sandbox, SQLite under
DATA_DIR): one clock for the bot and the city moved by `:time`, the work that fell due done at
once, and a restart on the same DATA_DIR that loses nothing."""

from __future__ import annotations

import io
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

from bot.config import Settings
from bot.runners import console
from sandbox.console import BACKGROUND_MARK, TIME_USAGE
from sandbox.state import STATE_FILE
from tests.flows.conftest import settings_for

REMINDER = "в 10:00 спишем по автоплатежу"  # after «DD.MM»
MARKED_REMINDER = rf"{re.escape(BACKGROUND_MARK)}\n\d\d\.\d\d {REMINDER}"
CHARGED = "✅ Автоплатёж:"
LINKED = "Аккаунт привязан"

Step = str | Callable[[], Awaitable[str]]


class Terminal:
    """What the resident types and reads: lines in, the screen out. A step may be a button's
    label (``Press("…")``): the number printed next to it on the latest keyboard is typed."""

    def __init__(self, steps: list[Step]) -> None:
        self.output = io.StringIO()
        self._steps = iter(steps)

    @property
    def screen(self) -> str:
        return self.output.getvalue()

    async def read(self, _prompt: str) -> str:
        step = next(self._steps, None)
        if step is None:
            raise EOFError
        return step if isinstance(step, str) else await step()

    def press(self, label: str) -> Callable[[], Awaitable[str]]:
        async def number() -> str:
            found = re.findall(r"\[(\d+)\] [^\[\n]*" + re.escape(label), self.screen)
            assert found, f"no button {label!r} on the screen:\n{self.screen[-1500:]}"
            return f"#{found[-1]}"

        return number


async def demo_full(_prompt: str) -> str:
    return "3"  # the sandbox login's demo resident: Воронцова Мария Сергеевна


async def run(settings: Settings, terminal: Terminal) -> str:
    await console(
        settings,
        input_fn=terminal.read,
        ask=demo_full,
        output=terminal.output,
        background_poll=None,  # only the deterministic prints: before a prompt, after a step
    )
    return terminal.screen


async def test_time_fires_the_reminder_then_the_charge_and_a_restart_keeps_everything(
    tmp_path: Path,
) -> None:
    settings = settings_for(tmp_path)  # one DATA_DIR, database and token key for both runs
    first = Terminal([])
    press = first.press
    first._steps = iter(
        [
            "/start",
            press("Привязать"),
            press("Войти через mos.ru"),
            ":time 2026-12-14 12:00",  # the demo reports' news of two weeks arrive meanwhile
            "/start",  # the menu again, below them
            press("Автоплатежи"),
            press("Подключить автоплатёж"),
            press("Пожертвование фонду"),
            "#1",  # the first fund
            press("Раз в месяц"),
            "15",  # tomorrow
            "300",
            press("•• 4242"),
            press("Подключить"),
            ":time +1d",
            ":time",
            ":quit",
        ]
    )
    screen = await run(settings, first)

    assert LINKED in screen
    assert "Автоплатёж подключён" in screen
    moved = screen[screen.index("Автоплатёж подключён") :]
    # the reminder of the 14th, then the charge at 10:00 on the 15th, each printed as it came
    assert re.search(MARKED_REMINDER, moved)
    assert f"{BACKGROUND_MARK}\n{CHARGED}" in moved
    assert moved.index(REMINDER) < moved.index(CHARGED)
    charged = re.search(r"✅ Автоплатёж: .* списано 300,00\xa0₽\. Квитанция № (\S+)\.", moved)
    assert charged, moved
    receipt = charged.group(1)
    assert "⏰ 15.12.2026 12:00 MSK" in moved  # where `:time +1d` left the shared clock
    assert (tmp_path / STATE_FILE).exists()

    second = Terminal([])
    second._steps = iter(["/start", second.press("История платежей"), ":time", ":quit"])
    screen = await run(settings, second)

    assert "Мир песочницы восстановлен из" in screen
    assert "Привяжите аккаунт заново" not in screen
    assert "🔁 Автоплатежи" in screen  # the linked menu: still linked
    history = screen[screen.index("История платежей") :]
    assert "300,00\u00a0₽" in history, history  # the autopay's donation, paid at the kept city
    assert "⏰ 15.12.2026" in screen  # the clock came back where it was left
    assert receipt


async def test_time_refuses_what_it_cannot_read_and_moves_nothing(tmp_path: Path) -> None:
    terminal = Terminal([":time", ":time tomorrow", ":time", ":quit"])
    screen = await run(settings_for(tmp_path), terminal)

    assert f"! {TIME_USAGE}" in screen
    shown = re.findall(r"⏰ (\S+ \S+) MSK \(real time ([^)]*)\)", screen)
    assert len(shown) == 2 and all(offset.startswith("+0:00:00") for _, offset in shown)
