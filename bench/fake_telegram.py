"""A fake Telegram Bot API on 127.0.0.1 that enforces the sending limits like the real one.

* More than `per_second` messages accepted in any rolling second bot-wide, or a second message
  to a chat less than `chat_interval` seconds after the previous one, is refused with HTTP 429
  and `parameters.retry_after` (whole seconds, at least 1), as Telegram does.
* Within the limits it still injects faults: a share of HTTP 500s and a share of 429s, both
  refused *before* the message is accepted (nothing is delivered).
* Every accepted message (chat id, text, arrival time) is recorded, so a benchmark can count
  what was lost and what was delivered twice.

Every answer can take `Faults.latency` seconds, like a distant Telegram.

Only what a bot needs for sending is answered: getMe, deleteWebhook, sendMessage, sendPhoto
(its caption is recorded as the text). Other methods get Telegram's 404.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

BOT_ID = 123456
BENCH_TOKEN = f"{BOT_ID}:ABC-bench"
BOT_USER = {
    "id": BOT_ID,
    "is_bot": True,
    "first_name": "Bench Bot",
    "username": "bench_resident_bot",
    "can_join_groups": False,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}


@dataclass(frozen=True, slots=True)
class Faults:
    server_errors: float = 0.02  # share of sends answered 500 although within the limits
    too_many_requests: float = 0.01  # share answered 429 although within the limits
    retry_after: int = 2  # seconds, for the injected 429s
    latency: float = 0.0  # seconds every answer takes, like the distance to Telegram (~0.05)

    def describe(self) -> str:
        """The injected refusals in words, «» when there are none."""
        parts = []
        if self.server_errors:
            parts.append(f"{self.server_errors:.0%} HTTP 500")
        if self.too_many_requests:
            share, after = self.too_many_requests, self.retry_after
            parts.append(f"{share:.0%} HTTP 429 (retry_after {after} s)")
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class Accepted:
    chat_id: int
    text: str
    at: float  # time.monotonic() on arrival


@dataclass
class Refusals:
    global_limit: int = 0  # 429: more than per_second in a rolling second
    chat_limit: int = 0  # 429: a chat's second message within chat_interval
    injected_429: int = 0
    injected_500: int = 0

    @property
    def too_many(self) -> int:
        return self.global_limit + self.chat_limit + self.injected_429


@dataclass
class FakeBotApi:
    token: str = BENCH_TOKEN
    per_second: int = 30
    chat_interval: float = 1.0
    faults: Faults = field(default_factory=Faults)
    seed: int = 1
    accepted: list[Accepted] = field(default_factory=list)
    refusals: Refusals = field(default_factory=Refusals)
    calls: Counter[str] = field(default_factory=Counter)
    _window: deque[float] = field(default_factory=deque)  # arrival times of accepted messages
    _last_by_chat: dict[int, float] = field(default_factory=dict)
    _runner: web.AppRunner | None = None
    _url: str | None = None

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the fake Bot API is not running")
        return self._url

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self._url = f"http://{host}:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner, self._url = None, None

    # ----------------------------------------------------------------- the API

    async def _handle(self, request: web.Request) -> web.Response:
        if self.faults.latency:  # the way there and back: the answer leaves this much later
            await asyncio.sleep(self.faults.latency)
        method = request.match_info["method"]
        self.calls[method] += 1
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        form = await request.post()
        # Read after the last await: messages are counted in the order they are decided, so
        # the rolling window below only ever grows at its end (a time read before the body
        # let a busy event loop append an earlier arrival after a later one, and the window
        # then counted messages more than a second old: a 429 no limiter could have avoided).
        arrived = time.monotonic()
        params = {key: str(value) for key, value in form.items()}
        if method == "getMe":
            return _ok(BOT_USER)
        if method == "deleteWebhook":
            return _ok(True)
        if method in ("sendMessage", "sendPhoto"):
            text = params.get("text") if method == "sendMessage" else params.get("caption")
            return self._send(arrived, int(params["chat_id"]), text or "", params)
        return _error(404, "Not Found")

    def _send(self, now: float, chat_id: int, text: str, params: dict[str, str]) -> web.Response:
        while self._window and now - self._window[0] >= 1.0:
            self._window.popleft()
        if len(self._window) >= self.per_second:
            self.refusals.global_limit += 1
            return _retry_after(self._window[0] + 1.0 - now)
        last = self._last_by_chat.get(chat_id)
        if last is not None and now - last < self.chat_interval:
            self.refusals.chat_limit += 1
            return _retry_after(last + self.chat_interval - now)
        roll = self._random.random()
        if roll < self.faults.server_errors:
            self.refusals.injected_500 += 1
            return _error(500, "Internal Server Error")
        if roll < self.faults.server_errors + self.faults.too_many_requests:
            self.refusals.injected_429 += 1
            return _retry_after(self.faults.retry_after)

        self._window.append(now)
        self._last_by_chat[chat_id] = now
        self.accepted.append(Accepted(chat_id, text, now))
        message: dict[str, Any] = {
            "message_id": len(self.accepted),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private", "first_name": "Resident"},
            "from": BOT_USER,
            "text": text,
        }
        if "reply_markup" in params:
            message["reply_markup"] = json.loads(params["reply_markup"])
        return _ok(message)

    # ----------------------------------------------------------------- figures

    def steady_rate(self) -> float:
        """Messages a second between the 5th and the 95th percentile of arrivals: the rate
        while the outbox was full, without the start and the tail of retries."""
        times = [message.at for message in self.accepted]
        first, last = len(times) // 20, len(times) * 19 // 20
        if last <= first or times[last] <= times[first]:
            return 0.0
        return (last - first) / (times[last] - times[first])

    def peak_per_second(self) -> int:
        """The most messages accepted within any rolling second (the server's own check)."""
        times = [message.at for message in self.accepted]
        peak, start = 0, 0
        for end, at in enumerate(times):
            while at - times[start] >= 1.0:
                start += 1
            peak = max(peak, end - start + 1)
        return peak


def _ok(result: object) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _error(status: int, description: str) -> web.Response:
    return web.json_response(
        {"ok": False, "error_code": status, "description": description}, status=status
    )


def _retry_after(seconds: float) -> web.Response:
    retry_after = max(1, math.ceil(seconds))
    return web.json_response(
        {
            "ok": False,
            "error_code": 429,
            "description": f"Too Many Requests: retry after {retry_after}",
            "parameters": {"retry_after": retry_after},
        },
        status=429,
    )
