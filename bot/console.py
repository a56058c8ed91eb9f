"""A terminal chat with the bot: the real Dispatcher, no Telegram token.

The resident types lines; plain text is sent as a message, ``#N`` presses inline button N of
the latest keyboard and ``:commands`` send locations, photos, files and contacts. Everything
the bot does is rendered as text. Rendering (``render_*``) and parsing (``parse_line``) are
pure functions; ``run_console`` is the I/O loop around them.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import mimetypes
import sys
import threading
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from aiogram import Bot, Dispatcher

from bot.conversation import Conversation, ConversationError, Reply
from bot.telegram_double import ChatMessage, EventKind, InlineButton

OpenUrl = Callable[[str], Awaitable[str | None]]
InputFn = Callable[[str], Awaitable[str] | str]

PROMPT = "> "
QUIT_WORDS = frozenset({":quit", ":q", ":exit"})
CONSOLE_HELP = """\
Console commands (everything else is sent to the bot as a message; /help is the bot's own):
  #N                 press inline button N of the latest keyboard
  :loc LAT LON       send a location, e.g. :loc 55.7558 37.6173
  :photo PATH        send a photo from a file
  :file PATH         send a file as a document
  :contact PHONE     share your own contact
  :screen            show the latest bot message again
  :help              this help
  :quit              leave (Ctrl-D / Ctrl-C work too)"""


# ---- parsing ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsoleCommand:
    """One parsed input line. ``kind`` is one of: text, press, loc, photo, file, contact,
    screen, help, quit, empty, invalid (``args[0]`` then explains why)."""

    kind: str
    args: tuple[str, ...] = ()


def parse_line(line: str) -> ConsoleCommand:
    stripped = line.strip()
    if not stripped:
        return ConsoleCommand("empty")
    if stripped.lower() in QUIT_WORDS:
        return ConsoleCommand("quit")
    if stripped.startswith("#") and stripped[1:].isascii() and stripped[1:].isdigit():
        return ConsoleCommand("press", (stripped[1:],))
    if not stripped.startswith(":"):
        return ConsoleCommand("text", (line.rstrip("\r\n"),))
    name, _, rest = stripped[1:].partition(" ")
    return _parse_console_command(name.lower(), rest.strip())


def _parse_console_command(name: str, rest: str) -> ConsoleCommand:
    if name in ("help", "screen"):
        return ConsoleCommand(name)
    if name == "loc":
        parts = rest.replace(",", " ").split()
        if len(parts) != 2 or not all(_is_float(part) for part in parts):
            return ConsoleCommand("invalid", ("usage: :loc LAT LON",))
        return ConsoleCommand("loc", (parts[0], parts[1]))
    if name in ("photo", "file", "contact"):
        if not rest:
            argument = "PHONE" if name == "contact" else "PATH"
            return ConsoleCommand("invalid", (f"usage: :{name} {argument}",))
        return ConsoleCommand(name, (rest,))
    return ConsoleCommand("invalid", (f"unknown console command :{name}; try :help",))


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# ---- rendering --------------------------------------------------------------------------------


def render_buttons(message: ChatMessage) -> list[str]:
    """Inline keyboard rows as ``[1] text   [2] text``; URL buttons as ``[3] text ↗ url``."""
    lines = []
    numbers = iter(range(1, len(message.buttons) + 1))
    for row in message.keyboard:
        lines.append("   ".join(_render_button(next(numbers), button) for button in row))
    return [f"  {line}" for line in lines]


def _render_button(number: int, button: InlineButton) -> str:
    if button.callback_data is None and button.url:
        return f"[{number}] {button.text} ↗ {button.url}"
    return f"[{number}] {button.text}"


def render_message(message: ChatMessage, *, edited: bool = False) -> list[str]:
    lines = _content_lines(message)
    if edited:
        lines[0] = f"✎ {lines[0]}"
    lines.extend(render_buttons(message))
    if message.reply_keyboard:
        rows = (" | ".join(row) for row in message.reply_keyboard)
        lines.append("  ⌨ " + "  /  ".join(rows))
    return lines


def _content_lines(message: ChatMessage) -> list[str]:
    label = _media_label(message)
    text_lines = message.text.splitlines() if message.text else []
    if label is None:
        return text_lines or ["(empty message)"]
    return [label, *text_lines]


def _media_label(message: ChatMessage) -> str | None:
    payload = message.payload
    kind = message.content_type
    if kind == "photo":
        return "[фото]"
    if kind in ("document", "video", "audio", "voice", "animation"):
        name = payload[kind].get("file_name")
        return f"[{kind}: {name}]" if name else f"[{kind}]"
    if kind == "venue":
        venue = payload["venue"]
        return f"[📍 {venue['title']}, {venue['address']} ({_coordinates(message)})]"
    if kind == "location":
        return f"[📍 {_coordinates(message)}]"
    if kind == "contact":
        contact = payload["contact"]
        return f"[contact: {contact.get('first_name', '')} {contact['phone_number']}]"
    return None


def _coordinates(message: ChatMessage) -> str:
    location = message.location
    return "" if location is None else f"{location[0]:.6f}, {location[1]:.6f}"


def render_reply(reply: Reply) -> list[str]:
    """Everything the bot did in answer to one action, as console lines."""
    lines: list[str] = []
    for event in reply.events:
        lines.extend(_render_event(reply, event.kind, event.message, event.markup_only))
        if event.answer is not None and event.answer.text:
            marker = "⚠" if event.answer.show_alert else "💬"
            lines.append(f"{marker} {event.answer.text}")
    if not lines:
        lines.append("(the bot did not answer)")
    return lines


def _render_event(
    reply: Reply, kind: EventKind, message: ChatMessage | None, markup_only: bool
) -> list[str]:
    if message is None:
        return []
    if message.chat_id != reply.chat_id:
        if kind is not EventKind.SENT:
            return []
        return [f"→ chat {message.chat_id}: {line}" for line in _content_lines(message)]
    if kind is EventKind.SENT:
        return render_message(message)
    if kind is EventKind.EDITED and not markup_only:
        return render_message(message, edited=True)
    if kind is EventKind.EDITED and message.buttons:
        return ["✎ (keyboard changed)", *render_buttons(message)]
    return []


# ---- the loop ---------------------------------------------------------------------------------


class _Console:
    def __init__(
        self, conversation: Conversation, open_url: OpenUrl | None, output: TextIO
    ) -> None:
        self.conversation = conversation
        self.open_url = open_url
        self.output = output

    def write(self, lines: list[str] | str) -> None:
        text = lines if isinstance(lines, str) else "\n".join(lines)
        self.output.write(text + "\n")
        self.output.flush()

    async def handle(self, line: str) -> bool:
        """Process one input line; ``False`` means the resident wants to leave."""
        command = parse_line(line)
        if command.kind == "quit":
            return False
        try:
            await self._execute(command)
        except ConversationError as error:
            self.write(f"! {error}")
        except Exception:
            self.write(["! the bot failed to process that:", traceback.format_exc().rstrip()])
        return True

    async def _execute(self, command: ConsoleCommand) -> None:
        conversation = self.conversation
        kind, args = command.kind, command.args
        if kind == "empty":
            return
        if kind == "help":
            self.write(CONSOLE_HELP)
        elif kind == "invalid":
            self.write(f"! {args[0]}")
        elif kind == "screen":
            last = conversation.last_message
            self.write(render_message(last) if last else "(no messages yet)")
        elif kind == "text":
            self.write(render_reply(await conversation.send(args[0])))
        elif kind == "press":
            await self._press(int(args[0]))
        elif kind == "loc":
            reply = await conversation.send_location(float(args[0]), float(args[1]))
            self.write(render_reply(reply))
        elif kind == "contact":
            self.write(render_reply(await conversation.send_contact(args[0])))
        else:
            await self._send_file(kind, args[0])

    async def _press(self, number: int) -> None:
        conversation = self.conversation
        try:
            reply = await conversation.press(number)
        except ConversationError:
            url = self._url_of(number)
            if url is None:
                raise
            await self._follow_url(url)
            return
        self.write(render_reply(reply))

    def _url_of(self, number: int) -> str | None:
        try:
            return self.conversation.url_of(number)
        except ConversationError:
            return None

    async def _follow_url(self, url: str) -> None:
        self.write(f"↗ {url}")
        if self.open_url is None:
            return
        answer = await self.open_url(url)
        if answer:
            self.write(f"{PROMPT}{answer}")
            self.write(render_reply(await self.conversation.send(answer)))

    async def _send_file(self, kind: str, raw_path: str) -> None:
        path = Path(raw_path)
        try:
            data = await asyncio.to_thread(_read_file, path)
        except OSError as error:
            self.write(f"! cannot read {raw_path}: {error.strerror or error}")
            return
        if kind == "photo":
            reply = await self.conversation.send_photo(data)
        else:
            mime_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            reply = await self.conversation.send_document(data, path.name, mime_type)
        self.write(render_reply(reply))


def _read_file(path: Path) -> bytes:
    return path.expanduser().read_bytes()


async def run_console(
    dispatcher: Dispatcher,
    bot: Bot,
    *,
    banner: str,
    open_url: OpenUrl | None = None,
    input_fn: InputFn | None = None,
    output: TextIO = sys.stdout,
    user_id: int = 100001,
    first_name: str = "Житель",
) -> None:
    """Chat with the bot in a terminal until ``:quit``, end of input or Ctrl-C.

    ``bot`` must use a ``LocalTelegram`` session. ``input_fn(prompt)`` returns the next line
    (sync or async) and raises ``EOFError`` at the end; by default stdin is read in a daemon
    thread, so Ctrl-C never waits for a pending ``input()``.
    """
    conversation = Conversation(dispatcher, bot, user_id=user_id, first_name=first_name)
    console = _Console(conversation, open_url, output)
    read = input_fn or read_stdin_line
    console.write(banner.rstrip("\n"))
    try:
        while True:
            try:
                line = await _next_line(read)
            except (EOFError, KeyboardInterrupt):
                break
            if not await console.handle(line):
                break
    finally:
        console.write("bye")


async def _next_line(read: InputFn) -> str:
    line = read(PROMPT)
    if inspect.isawaitable(line):
        return await line
    return line


async def read_stdin_line(prompt: str) -> str:
    """``input(prompt)`` in a daemon thread (``asyncio.to_thread`` would block interpreter exit
    on Ctrl-C until Enter is pressed, because executor threads are joined at shutdown)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str] = loop.create_future()

    def deliver(result: str | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result or "")

    def worker() -> None:
        line: str | None = None
        failure: BaseException | None = None
        try:
            line = input(prompt)
        except BaseException as error:  # EOFError / KeyboardInterrupt go to the loop
            failure = error
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            loop.call_soon_threadsafe(deliver, line, failure)

    threading.Thread(target=worker, name="console-stdin", daemon=True).start()
    return await future
