"""A terminal chat with the bot: the real Dispatcher, no Telegram token.

The resident types lines; plain text is sent as a message, ``#N`` presses inline button N of
the latest keyboard the console printed and ``:commands`` send locations, photos, files and
contacts. Everything the bot does is rendered as text. Messages the bot sends on its own (the
outbox's reminders, autopay results, report statuses) are printed as they arrive, under a
``🔔 [уведомление]`` line, so the resident sees every keyboard ``#N`` can press: a message
that arrived but was not printed yet is never the one pressed. ``:time`` shows or moves the
clock the bot and the sandbox city share and does what fell due on the way. Rendering
(``render_*``) and parsing (``parse_line``) are pure functions; ``run_console`` is the I/O
loop around them.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import mimetypes
import os
import re
import sys
import threading
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol, TextIO

from aiogram import Bot, Dispatcher

from sandbox.clock import MOSCOW
from sandbox.conversation import Conversation, ConversationError, Reply
from sandbox.telegram_double import ChatMessage, EventKind, InlineButton

OpenUrl = Callable[[str], Awaitable[str | None]]
InputFn = Callable[[str], Awaitable[str] | str]
RunDue = Callable[[], Awaitable[object]]


class MovableClock(Protocol):
    """The clock `:time` moves (sandbox.clock.SandboxClock): the bot's and the city's."""

    def __call__(self) -> datetime: ...

    @property
    def offset(self) -> timedelta: ...

    def move_by(self, delta: timedelta) -> None: ...


PROMPT = "> "
MAX_BUTTON_DIGITS = 6  # `#N`: no keyboard has a million buttons (Telegram allows 100)
QUIT_WORDS = frozenset({":quit", ":q", ":exit"})
BACKGROUND_MARK = "🔔 [уведомление]"
# Seconds between looks for messages the bot sent on its own while the resident is at the
# prompt (a display refresh for a person; what #N presses never depends on it).
BACKGROUND_POLL = 0.25
# `:time` moves the clock in steps of at most this, doing what fell due after each, so every
# calendar day passed is visited (an autopay's reminder the day before, then its charge).
TIME_STEP = timedelta(hours=12)
# A longer move forwards (`:time 2026-12-15` after `:time 1900-01-01`) jumps straight to this
# far before its target and walks only the rest: step by step, decades would take hours.
MAX_WALK = timedelta(days=92)
CONSOLE_HELP = """\
Console commands (everything else is sent to the bot as a message; /help is the bot's own):
  #N                 press inline button N of the latest keyboard shown
  :loc LAT LON       send a location, e.g. :loc 55.7558 37.6173
  :photo PATH        send a photo from a file
  :file PATH         send a file as a document
  :contact PHONE     share your own contact
  :screen            show the latest bot message again
  :time              show the clock the bot and the sandbox city share
  :time +1d | +3h | +30m | -2h | 2026-12-15 10:00
                     move that clock (Moscow time) and do at once what fell due on the way:
                     autopay reminders and charges, report statuses, notifications
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
        number = stripped[1:].lstrip("0") or "0"
        if len(number) > MAX_BUTTON_DIGITS:  # int() of thousands of digits raises
            return ConsoleCommand("invalid", (f"no button #{number[:MAX_BUTTON_DIGITS]}…",))
        return ConsoleCommand("press", (number,))
    if not stripped.startswith(":"):
        return ConsoleCommand("text", (line.rstrip("\r\n"),))
    name, _, rest = stripped[1:].partition(" ")
    return _parse_console_command(name.lower(), rest.strip())


def _parse_console_command(name: str, rest: str) -> ConsoleCommand:
    if name in ("help", "screen"):
        return ConsoleCommand(name)
    if name == "time":
        return ConsoleCommand("time", (rest,))
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


_SHIFT = re.compile(r"([+-])((?:\d{1,5}[dhm])+)")
_UNIT = {"d": timedelta(days=1), "h": timedelta(hours=1), "m": timedelta(minutes=1)}
TIME_USAGE = "usage: :time, :time +1d, :time +3h, :time -30m, :time 2026-12-15 10:00"
TIME_EARLIEST = datetime(1900, 1, 1, tzinfo=MOSCOW)
TIME_LATEST = datetime(2199, 12, 31, tzinfo=MOSCOW)
TIME_RANGE = "the clock goes from 1900-01-01 to 2199-12-31"


def parse_time(argument: str, now: datetime) -> datetime:
    """The moment `:time ARGUMENT` moves to from `now` (aware): a shift such as ``+1d``,
    ``+3h``, ``-30m``, ``+1d12h``, or a Moscow date with an optional time (``2026-12-15
    10:00``), within TIME_EARLIEST…TIME_LATEST. ValueError (with `TIME_USAGE`, or the range)
    for anything else: a moment past what the bot's dates can hold broke every update and
    job, and was saved with the city (review 33f)."""
    try:
        moment = _parse_time(argument, now)
    except OverflowError:
        raise ValueError(TIME_RANGE) from None
    if not TIME_EARLIEST <= moment <= TIME_LATEST:
        raise ValueError(TIME_RANGE)
    return moment


def _parse_time(argument: str, now: datetime) -> datetime:
    text = argument.strip().lower().replace(" ", "") if argument.strip()[:1] in "+-" else ""
    shift = _SHIFT.fullmatch(text) if text else None
    if shift is not None:
        total = sum(
            (int(n) * _UNIT[unit] for n, unit in re.findall(r"(\d+)([dhm])", shift.group(2))),
            timedelta(0),
        )
        return now + total if shift.group(1) == "+" else now - total
    for pattern in ("%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            return datetime.strptime(argument.strip(), pattern).replace(tzinfo=MOSCOW)
        except ValueError:
            continue
    raise ValueError(TIME_USAGE)


def render_time(now: datetime, offset: timedelta) -> str:
    """``⏰ 15.12.2026 10:00 MSK (real time +1 day, 2:00:00)``: the shared clock's moment."""
    moment = now.astimezone(MOSCOW).strftime("%d.%m.%Y %H:%M")
    sign = "-" if offset < timedelta(0) else "+"
    shift = timedelta(seconds=round(abs(offset).total_seconds()))
    return f"⏰ {moment} MSK (real time {sign}{shift})"


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


def render_background(reply: Reply) -> list[str]:
    """What the bot did in the resident's chat on its own (no action of theirs), each message
    under a ``BACKGROUND_MARK`` line; nothing when it did nothing visible there."""
    lines: list[str] = []
    for event in reply.events:
        if event.chat_id != reply.chat_id:
            continue
        rendered = _render_event(reply, event.kind, event.message, event.markup_only)
        if rendered:
            lines.extend([BACKGROUND_MARK, *rendered])
    return lines


def keyboard_shown(reply: Reply, current: int | None) -> int | None:
    """The id of the message whose keyboard ``#N`` presses after ``reply`` was printed: the
    last message of the resident's chat printed with buttons, else ``current``."""
    for event in reply.events:
        message = event.message
        if message is None or message.chat_id != reply.chat_id or not message.buttons:
            continue
        if event.kind is EventKind.SENT or event.kind is EventKind.EDITED:
            current = message.message_id
    return current


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
        self,
        conversation: Conversation,
        open_url: OpenUrl | None,
        output: TextIO,
        clock: MovableClock | None = None,
        run_due: RunDue | None = None,
    ) -> None:
        self.conversation = conversation
        self.open_url = open_url
        self.output = output
        self.clock = clock
        self.run_due = run_due
        self.keyboard: int | None = None  # the message #N presses: the last printed keyboard
        self.busy = False  # a resident's action is being processed: its reply prints it all
        self._printed = len(conversation.telegram.events)  # events already shown or skipped

    def write(self, lines: list[str] | str) -> None:
        text = lines if isinstance(lines, str) else "\n".join(lines)
        self.output.write(text + "\n")
        self.output.flush()

    def show(self, reply: Reply) -> None:
        """Print the answer to the resident's action; its keyboard becomes what #N presses.
        A background message that arrived while the action was handled (a scheduler job's,
        no action of the resident's) is printed first, marked as such."""
        background = Reply(
            chat_id=reply.chat_id, events=tuple(e for e in reply.events if e.action is None)
        )
        answer = Reply(
            chat_id=reply.chat_id, events=tuple(e for e in reply.events if e.action is not None)
        )
        lines = render_background(background)
        if lines:
            self.write(lines)
            self._shown(background)
        self.write(render_reply(answer))
        self._shown(answer)

    def show_background(self) -> None:
        """Print what the bot sent to this chat on its own since the last print (marked)."""
        telegram = self.conversation.telegram
        events = tuple(telegram.events[self._printed :])
        reply = Reply(chat_id=self.conversation.chat_id, events=events)
        lines = render_background(reply)
        if lines:
            self.write(lines)
        self._shown(reply)

    def _shown(self, reply: Reply) -> None:
        self.keyboard = keyboard_shown(reply, self.keyboard)
        self._printed = max(self._printed, len(self.conversation.telegram.events))

    async def watch_background(self, interval: float) -> None:
        """While the resident is at the prompt, print background messages as they arrive."""
        while True:
            await asyncio.sleep(interval)
            if not self.busy and self.pending():
                self.write("")  # the prompt is on screen: start on a line of its own
                self.show_background()
                self.output.write(PROMPT)
                self.output.flush()

    def pending(self) -> bool:
        return len(self.conversation.telegram.events) > self._printed

    async def handle(self, line: str) -> bool:
        """Process one input line; ``False`` means the resident wants to leave.

        ``#N`` presses the keyboard printed before the line was typed: messages that arrived
        meanwhile are printed first, but what the resident pressed is what they saw."""
        command = parse_line(line)
        if command.kind == "quit":
            return False
        self.busy = True
        target = self.keyboard
        try:
            self.show_background()
            await self._execute(command, target)
        except ConversationError as error:
            self.write(f"! {error}")
        except Exception:
            self.write(["! the bot failed to process that:", traceback.format_exc().rstrip()])
        finally:
            self._printed = max(self._printed, len(self.conversation.telegram.events))
            self.busy = False
        return True

    async def _execute(self, command: ConsoleCommand, keyboard: int | None) -> None:
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
            if last is not None and last.buttons:
                self.keyboard = last.message_id
        elif kind == "text":
            self.show(await conversation.send(args[0]))
        elif kind == "press":
            await self._press(int(args[0]), keyboard)
        elif kind == "loc":
            self.show(await conversation.send_location(float(args[0]), float(args[1])))
        elif kind == "contact":
            self.show(await conversation.send_contact(args[0]))
        elif kind == "time":
            await self._time(args[0])
        else:
            await self._send_file(kind, args[0])

    async def _time(self, argument: str) -> None:
        """Show or move the shared clock; after a move, what fell due on the way is done
        step by step (`TIME_STEP`) and what the bot sent is printed as it comes."""
        clock = self.clock
        if clock is None:
            self.write("! :time needs the embedded sandbox (no CITY_API_URL)")
            return
        if not argument.strip():
            self.write(render_time(clock(), clock.offset))
            return
        try:
            target = parse_time(argument, clock())
        except ValueError as error:
            self.write(f"! {error}")
            return
        await self._due()  # first what is due before the jump
        remaining = target - clock()
        if remaining > MAX_WALK:
            clock.move_by(remaining - MAX_WALK)
            self.write(
                f"(jumped {(remaining - MAX_WALK).days} days at once; what falls due is done"
                f" only for the last {MAX_WALK.days})"
            )
            remaining = target - clock()
        if remaining <= timedelta(0):
            clock.move_by(remaining)
            await self._due()
        while remaining > timedelta(0):
            step = min(remaining, TIME_STEP)
            clock.move_by(step)
            remaining -= step
            await self._due()
        self.write(render_time(clock(), clock.offset))

    async def _due(self) -> None:
        if self.run_due is not None:
            await self.run_due()
        self.show_background()

    async def _press(self, number: int, keyboard: int | None) -> None:
        if keyboard is None:
            raise ConversationError("no bot message with an inline keyboard has been shown yet")
        conversation = self.conversation
        try:
            reply = await conversation.press(number, message_id=keyboard)
        except ConversationError:
            url = self._url_of(number, keyboard)
            if url is None:
                raise
            await self._follow_url(url)
            return
        self.show(reply)

    def _url_of(self, number: int, keyboard: int) -> str | None:
        try:
            return self.conversation.url_of(number, message_id=keyboard)
        except ConversationError:
            return None

    async def _follow_url(self, url: str) -> None:
        self.write(f"↗ {url}")
        if self.open_url is None:
            return
        try:
            answer = await self.open_url(url)
        except EOFError:  # Ctrl-D at the page's own question: the resident left the page
            self.write("! page left (end of input)")
            return
        if answer:
            self.write(f"{PROMPT}{answer}")
            self.show(await self.conversation.send(answer))

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
        self.show(reply)


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
    background_poll: float | None = BACKGROUND_POLL,
    clock: MovableClock | None = None,
    run_due: RunDue | None = None,
    first_update_id: int = 1,
) -> None:
    """Chat with the bot in a terminal until ``:quit``, end of input or Ctrl-C.

    ``bot`` must use a ``LocalTelegram`` session. ``input_fn(prompt)`` returns the next line
    (sync or async) and raises ``EOFError`` at the end; by default stdin is read in a daemon
    thread, so Ctrl-C never waits for a pending ``input()``. Messages the bot sends on its own
    are printed before each prompt, before each line is handled and, every
    ``background_poll`` seconds (None: never), while the resident is at the prompt.

    ``clock`` is the one clock of the bot and the city that ``:time`` moves, ``run_due()`` the
    scheduler's clock-driven work done after each step of a move (without them ``:time``
    says it needs the embedded sandbox). ``first_update_id`` numbers the updates (a restarted
    console must not reuse ids a Redis de-duplication still remembers).
    """
    conversation = Conversation(
        dispatcher,
        bot,
        user_id=user_id,
        first_name=first_name,
        first_update_id=first_update_id,
    )
    console = _Console(conversation, open_url, output, clock, run_due)
    read = input_fn or read_stdin_line
    console.write(banner.rstrip("\n"))
    watcher = None
    if background_poll is not None:
        watcher = asyncio.create_task(console.watch_background(background_poll))
    try:
        while True:
            console.show_background()
            try:
                line = await _next_line(read)
            except (EOFError, KeyboardInterrupt):
                break
            if not await console.handle(line):
                break
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        console.write("bye")


async def _next_line(read: InputFn) -> str:
    line = read(PROMPT)
    if inspect.isawaitable(line):
        return await line
    return line


def _read_piped_line(prompt: str) -> str:
    """One line of a stdin that is not a terminal, read from its file descriptor.

    Not `input()`: on a pipe it reads through `sys.stdin`'s buffer and holds the buffer's lock
    while it waits, so a Ctrl+C (or any end) while this daemon thread waits made interpreter
    shutdown abort («Fatal Python error: _enter_buffered_busy», exit -6). On a terminal
    `input()` reads through readline, outside that buffer, and keeps its line editing."""
    sys.stdout.write(prompt)
    sys.stdout.flush()
    line = bytearray()
    while True:
        byte = os.read(sys.stdin.fileno(), 1)  # one byte: nothing of the next line is taken
        if not byte:
            if not line:
                raise EOFError
            break
        if byte == b"\n":
            break
        line += byte
    return line.decode("utf-8", errors="replace").removesuffix("\r")


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
            line = input(prompt) if sys.stdin.isatty() else _read_piped_line(prompt)
        except BaseException as error:  # EOFError / KeyboardInterrupt go to the loop
            failure = error
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            loop.call_soon_threadsafe(deliver, line, failure)

    threading.Thread(target=worker, name="console-stdin", daemon=True).start()
    return await future
