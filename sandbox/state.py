"""Keeping the embedded world across console restarts: DATA_DIR/sandbox-state.pickle.

Only the terminal console uses it (`bot/runners.py::console`); a sandbox made by `create_app`
alone (tests, `python -m sandbox`) lives in memory as before.

Kept: the city's bills, OAuth grants (codes, refresh and access tokens), payments with their
idempotency keys and the ledger, points and their remembered transfers, meters and readings,
fines found, uploaded photos, «Наш город» requests; the offsets of the console's shared clock
and of the sandbox's own clock (`PUT /sandbox/clock`); and the Telegram double's chats, messages
and files (`LocalTelegram.snapshot`), so a report draft's photo file ids stay valid. Not kept:
injected faults, the double's call log.

Why pickle: the state is a graph of dataclasses that point at one another (the payment book's
listeners are the points book's methods, the requests' photos are the media store) and at the
clocks; pickle keeps those shared references as they are, and the two clocks are written as
references to the live ones (`persistent_id`), so the loaded books read the console's clock.
JSON would need a schema for every class. The file is this machine's own (pickle runs code when
loading: never load a file from elsewhere).

When: `save()` writes atomically (a temporary file, fsync, `os.replace`) and only when the state
changed; `autosave()` calls it every `SAVE_EVERY` seconds, `save_after_request` (an app
middleware the console adds) after every request the city answers, before the answer leaves,
and the console once more on the way out: a kill -9 loses at most the last `SAVE_EVERY`
seconds of the Telegram double's chat, never what the bot was told by the city. A file that
cannot be read (truncated, or written by code whose classes changed) is moved aside as
`*.unreadable` and the city starts afresh, with a warning. So is a file whose objects lack a
field the classes now have (`_missing_field`: a field added without bumping `FORMAT` would
otherwise load and fail later, at the first request or save that reads it).
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import os
import pickle
from collections import deque
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from sandbox import (
    charges,
    media,
    meters_api,
    oauth,
    open311_api,
    payments_api,
    points_api,
    prizes_api,
)
from sandbox.clock import CLOCK_KEY, SandboxClock
from sandbox.telegram_double import LocalTelegram

log = structlog.get_logger(__name__)

STATE_FILE = "sandbox-state.pickle"
SAVE_EVERY = 1.0  # seconds between looks for a changed state
FORMAT = 3  # bumped when what is kept changes shape (3: top-ups' balances and payments)

# The app keys whose values are the city's state (faults and the client config are not).
KEPT_KEYS: dict[str, web.AppKey[Any]] = {
    "data": oauth.DATA_KEY,
    "tokens": oauth.TOKENS_KEY,
    "payments": payments_api.PAYMENTS_KEY,
    "points": points_api.POINTS_KEY,
    "prizes": prizes_api.PRIZES_KEY,
    "meters": meters_api.METERS_KEY,
    "fines": charges.FINES_KEY,
    "media": media.MEDIA_KEY,
    "requests": open311_api.REQUESTS_KEY,
}
_MOVED, _BASE = "sandbox-clock", "shared-clock"


class SandboxState:
    """The sandbox app's state (and the Telegram double's) in one file.

    `app` is a sandbox `create_app(clock=shared)` not started yet when `load()` is called;
    `shared` is the console's one clock (the sandbox's clock base, also the bot's clock);
    `telegram` the console's double, if its chats and files are to be kept too.
    """

    def __init__(
        self,
        path: Path,
        app: web.Application,
        shared: SandboxClock,
        telegram: LocalTelegram | None = None,
    ) -> None:
        self.path = path
        self.app = app
        self.shared = shared
        self.telegram = telegram
        self._written: bytes | None = None
        self._failure: str | None = None  # the last save's error, logged once

    def _live(self) -> dict[str, object]:
        moved = self.app[CLOCK_KEY]
        return {_MOVED: moved, _BASE: moved.base}

    def dumps(self) -> bytes:
        """The state as bytes (synchronous: nothing changes it while it is pickled)."""
        state: dict[str, Any] = {
            "format": FORMAT,
            "shared_offset": self.shared.offset,
            "sandbox_offset": self.app[CLOCK_KEY].offset,
            "city": {name: self.app[key] for name, key in KEPT_KEYS.items()},
            "telegram": None if self.telegram is None else self.telegram.snapshot(),
        }
        buffer = io.BytesIO()
        _Pickler(buffer, self._live()).dump(state)
        return buffer.getvalue()

    def loads(self, raw: bytes) -> None:
        """Put a `dumps()` back into the app, the clocks and the double; ValueError if the
        bytes are not a state of this format."""
        state = _Unpickler(io.BytesIO(raw), self._live()).load()
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise ValueError("not a sandbox state of this version")
        missing = _missing_field(state, self._live())
        if missing is not None:
            raise ValueError(f"written by other code: {missing}")
        for name, key in KEPT_KEYS.items():
            self.app[key] = state["city"][name]
        self.shared.offset = _timedelta(state["shared_offset"])
        self.app[CLOCK_KEY].offset = _timedelta(state["sandbox_offset"])
        if self.telegram is not None and state["telegram"] is not None:
            self.telegram.restore(state["telegram"])
        self._written = raw

    def load(self) -> bool:
        """Load the file if there is one; True when a saved world was taken back."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return False
        try:
            self.loads(raw)
        except Exception as error:  # unreadable: keep it for a look, start afresh
            aside = self.path.with_name(self.path.name + ".unreadable")
            os.replace(self.path, aside)
            log.warning("sandbox.state_unreadable", moved_to=str(aside), error=repr(error))
            return False
        log.info("sandbox.state_loaded", path=str(self.path))
        return True

    def save(self) -> bool:
        """Write the state if it changed since the last write; True when written."""
        raw = self.dumps()
        if raw == self._written:
            return False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + ".tmp")
        with open(temporary, "wb") as file:
            file.write(raw)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.path)
        self._written = raw
        return True

    @web.middleware
    async def save_after_request(
        self, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        """An app middleware: the state is on disk before the bot reads the city's answer, so
        a kill -9 never leaves the bot with a payment (or a token) the restored city lacks."""
        try:
            return await handler(request)
        finally:  # a redirect is raised (HTTPFound) after the state changed, too
            self._save_logged()

    async def autosave(self, every: float = SAVE_EVERY) -> None:
        """Save every `every` seconds until cancelled. A failed save — a full disk, or any
        other exception — is logged and retried; it never ends the loop (the console would
        go on without saving, silently)."""
        while True:
            await asyncio.sleep(every)
            self._save_logged()

    def _save_logged(self) -> None:
        """`save()`, logging instead of raising; the same failure is logged once in a row."""
        try:
            self.save()
        except Exception as error:
            said = repr(error)
            if said != self._failure:
                if isinstance(error, OSError):
                    log.warning("sandbox.state_not_saved", error=said)
                else:
                    log.exception("sandbox.state_not_saved", error=said)
            self._failure = said
        else:
            self._failure = None


_ATOMS = (str, bytes, bytearray, int, float, complex, type(None))


def _missing_field(root: object, live: dict[str, object]) -> str | None:
    """The first dataclass object in the loaded state that lacks one of its class's fields
    ("PaymentRequest.topup"), or None when every object is whole. Walks containers and the
    sandbox's own objects; the live clocks and other libraries' objects are not entered."""
    seen = {id(value) for value in live.values()}
    todo: list[object] = [root]
    while todo:
        obj = todo.pop()
        if isinstance(obj, _ATOMS) or id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, dict):
            todo.extend(obj.keys())
            todo.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset, deque)):
            todo.extend(obj)
        elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            for item in dataclasses.fields(obj):
                if not hasattr(obj, item.name):
                    return f"{type(obj).__name__}.{item.name}"
                todo.append(getattr(obj, item.name))
        elif type(obj).__module__.startswith("sandbox") and hasattr(obj, "__dict__"):
            todo.extend(vars(obj).values())
    return None


# The console's `:time` keeps the clock within 1900…2199: a saved offset beyond this is not
# one it made, and a clock moved there breaks every date the bot computes (review 33f).
MAX_OFFSET = timedelta(days=366 * 300)


def _timedelta(value: object) -> timedelta:
    if not isinstance(value, timedelta):
        raise ValueError("a clock offset must be a timedelta")
    if abs(value) > MAX_OFFSET:
        raise ValueError("a clock offset beyond what the console sets")
    return value


class _Pickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO, live: dict[str, object]) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._ids = {id(value): name for name, value in live.items()}

    def persistent_id(self, obj: object) -> str | None:
        return self._ids.get(id(obj))


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, live: dict[str, object]) -> None:
        super().__init__(file)
        self._live = live

    def persistent_load(self, pid: object) -> object:
        if not isinstance(pid, str) or pid not in self._live:
            raise pickle.UnpicklingError(f"unknown reference {pid!r}")
        return self._live[pid]
