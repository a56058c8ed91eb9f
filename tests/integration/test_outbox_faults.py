"""The outbox sender under faults, on SQLite and PostgreSQL: one refused notification never
jams the others, waiting is not failing, retry_after counts from the answer, and under random
per-message faults every deliverable notification arrives exactly once (more only when an
answer was lost on its way back).

The Bot API is the in-process double with a per-message fault script (below); the clock is
fake, and so is the limiter's time (its sleeps move the fake clock), so nothing here sleeps or
measures wall-clock time."""

from __future__ import annotations

import re
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import TelegramMethod
from aiogram.methods.base import TelegramType
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot import outbox
from bot.app import Application
from bot.i18n import load_translator
from bot.jobs import MAX_ATTEMPTS, deliver_notifications
from bot.ratelimit import MemoryLimiter
from domain.ports import Dashboard, Notification
from domain.support import DASHBOARD_DEAD_LETTER
from sandbox.telegram_double import LocalTelegram
from storage.database import create_sessionmaker
from storage.models import NotificationRow
from storage.token_cipher import TokenCipher
from storage.uow import UnitOfWorkFactory

NOON = datetime(2026, 11, 24, 9, tzinfo=UTC)  # 12:00 in Moscow: outside the quiet hours
TAG = re.compile(r"T-(\d+)")
SUPPORT_CHAT, DASHBOARD_THREAD = -100777, 5
TRANSLATOR = load_translator()


class Clock:
    """A fake clock (datetime for the sender, seconds for the limiter) that moves when told."""

    def __init__(self, now: datetime = NOON) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def monotonic(self) -> float:
        return (self.now - NOON).total_seconds()

    async def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def limiter(self) -> MemoryLimiter:
        return MemoryLimiter(clock=self.monotonic, sleep=self.sleep)


class ScriptedTelegram(LocalTelegram):
    """The Bot API double, with faults scripted per notification: `faults[n]` are the answers
    to notification «T-n»'s next sends, in order (then it is accepted). `send_takes` moves the
    clock during every call, as a slow answer would."""

    def __init__(self, clock: Clock, send_takes: float = 0.0) -> None:
        super().__init__()
        self.faults: dict[int, deque[str]] = {}
        self.fake_clock = clock
        self.send_takes = send_takes
        self.answered_at: dict[int, datetime] = {}  # by notification: its last answer
        self.after_block: Counter[int] = Counter()  # sends tried to a chat after its 403

    def script(self, index: int, *faults: str) -> None:
        self.faults[index] = deque(faults)

    async def make_request(
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        timeout: int | None = None,  # noqa: ASYNC109 - BaseSession's signature
    ) -> TelegramType:
        self.fake_clock.advance(self.send_takes)
        text = getattr(method, "text", None) or getattr(method, "caption", None) or ""
        match = TAG.search(str(text))
        index = int(match.group(1)) if match else -1
        self.answered_at[index] = self.fake_clock()
        queue = self.faults.get(index)
        fault = queue.popleft() if queue else None
        chat = getattr(method, "chat_id", None)
        if chat in self._blocked:
            self.after_block[chat] += 1
        if fault == "400":
            raise TelegramBadRequest(method, "Bad Request: can't parse entities")
        if fault == "403":
            assert isinstance(chat, int)
            self.block_chat(chat)  # from now on every send to the chat is refused
            raise TelegramForbiddenError(method, "Forbidden: bot was blocked by the user")
        if fault is not None and fault.startswith("429"):
            seconds = int(fault.partition(":")[2] or 1)
            raise TelegramRetryAfter(method, f"Too Many Requests: retry after {seconds}", seconds)
        if fault == "500":
            raise TelegramServerError(method, "Internal Server Error")
        result = await super().make_request(bot, method, timeout)
        if fault == "lost":  # Telegram took it; the answer never reached the sender
            raise TelegramNetworkError(method, "ServerDisconnectedError: lost answer")
        return result

    def copies(self, chat: int) -> Counter[int]:
        """How many times each notification reached the chat, by its number."""
        found = (TAG.search(message.text) for message in self.messages(chat))
        return Counter(int(match.group(1)) for match in found if match)


@dataclass
class Sender:
    """What `deliver_notifications` uses of the application: storage, bot, texts, limiter."""

    uow_factory: UnitOfWorkFactory
    bot: Bot
    limiter: MemoryLimiter
    tr: Any = field(default=TRANSLATOR)

    def app(self) -> Application:
        return cast(Application, self)


def make_sender(engine: AsyncEngine, telegram: LocalTelegram, clock: Clock) -> Sender:
    factory = UnitOfWorkFactory(
        create_sessionmaker(engine), TokenCipher([TokenCipher.generate_key()])
    )
    bot = Bot("42:TEST", session=telegram, default=DefaultBotProperties(parse_mode="HTML"))
    return Sender(factory, bot, clock.limiter())


def report(chat: int, index: int, **data: Any) -> Notification:
    return Notification(
        chat,
        data.pop("kind", "report_status"),
        {"report_id": f"T-{index}", "status": "in_work", "theme": "Яма", "text": "", **data},
        dedupe_key=f"test:{index}",
    )


async def write(sender: Sender, clock: Clock, *notifications: Notification) -> None:
    async with sender.uow_factory() as uow:
        for notification in notifications:
            assert await uow.notifications.add_once(notification, clock())
        await uow.commit()


async def add_dashboard(sender: Sender, clock: Clock) -> None:
    async with sender.uow_factory() as uow:
        await uow.support.add_dashboard(Dashboard(SUPPORT_CHAT, DASHBOARD_THREAD), clock())
        await uow.commit()


async def rows(engine: AsyncEngine) -> dict[str, NotificationRow]:
    async with create_sessionmaker(engine)() as session:
        found = await session.execute(select(NotificationRow))
        return {row.dedupe_key: row for row in found.scalars()}


def failed_metric() -> float:
    return REGISTRY.get_sample_value("notifications_total", {"outcome": "failed"}) or 0.0


@pytest.mark.parametrize("fault", ["400", "unrenderable"])
async def test_a_refused_notification_is_dead_lettered_alone(
    engine: AsyncEngine, fault: str
) -> None:
    clock = Clock()
    telegram = ScriptedTelegram(clock)
    sender = make_sender(engine, telegram, clock)
    await add_dashboard(sender, clock)
    notes = [report(1000 + i, i) for i in range(4)]
    if fault == "400":
        telegram.script(1, "400")
    else:  # a status the renderer does not know: rendering raises
        notes[1] = report(1001, 1, status="no-such-status")
    await write(sender, clock, *notes)
    failed_before = failed_metric()

    assert await deliver_notifications(sender.app(), clock, sender.limiter) == 3

    stored = await rows(engine)
    for i in (0, 2, 3):  # delivered on the same tick
        assert stored[f"test:{i}"].status == "sent"
        assert telegram.copies(1000 + i) == {i: 1}
    refused = stored["test:1"]
    assert refused.status == "failed" and refused.attempts == 1
    assert telegram.copies(1001) == {}
    assert failed_metric() == failed_before + 1
    assert not [row for row in stored.values() if row.status == "sending"]
    dead = stored[f"dashboard:dead:{refused.id}"]  # staff see it on the dashboard
    assert dead.kind == DASHBOARD_DEAD_LETTER and dead.telegram_user_id == SUPPORT_CHAT
    assert dead.data["notification_id"] == refused.id and dead.status == "pending"
    await sender.bot.session.close()


async def test_a_busy_residents_queue_survives_one_server_error(engine: AsyncEngine) -> None:
    clock = Clock()
    telegram = ScriptedTelegram(clock)
    sender = make_sender(engine, telegram, clock)
    chat = 2001
    await write(sender, clock, *(report(chat, i) for i in range(5)))
    telegram.script(4, "500")  # the last one, after waiting its turn four times
    for _ in range(30):
        await deliver_notifications(sender.app(), clock, sender.limiter)
        clock.advance(1)
    stored = await rows(engine)
    assert {stored[f"test:{i}"].status for i in range(5)} == {"sent"}
    assert telegram.copies(chat) == {i: 1 for i in range(5)}
    assert stored["test:4"].attempts == 2  # its turns were not attempts; the 500 was


async def test_a_deferral_does_not_use_an_attempt(engine: AsyncEngine) -> None:
    clock = Clock()
    telegram = ScriptedTelegram(clock)
    sender = make_sender(engine, telegram, clock)
    await write(sender, clock, report(3001, 1), report(3001, 2))

    assert await deliver_notifications(sender.app(), clock, sender.limiter) == 1
    waiting = (await rows(engine))["test:2"]
    assert waiting.status == "pending" and waiting.attempts == 0
    assert waiting.due_at > clock()  # the chat's turn, a second after the first message

    for _ in range(MAX_ATTEMPTS + 2):  # however often it waits, it is never given up
        telegram.script(2, "429:1")
        clock.advance(1)
        assert await deliver_notifications(sender.app(), clock, sender.limiter) == 0
        assert (await rows(engine))["test:2"].attempts == 0
    clock.advance(1)
    assert await deliver_notifications(sender.app(), clock, sender.limiter) == 1
    sent = (await rows(engine))["test:2"]
    assert sent.status == "sent" and sent.attempts == 1
    assert telegram.copies(3001) == {1: 1, 2: 1}


async def test_retry_after_counts_from_the_answer(engine: AsyncEngine) -> None:
    clock = Clock()
    telegram = ScriptedTelegram(clock, send_takes=3.0)  # every answer arrives 3 s later
    sender = make_sender(engine, telegram, clock)
    await write(sender, clock, report(4001, 1), report(4002, 2))
    telegram.script(1, "429:5")
    telegram.script(2, "500")
    started = clock()
    await deliver_notifications(sender.app(), clock, sender.limiter)
    stored = await rows(engine)
    answers = telegram.answered_at
    assert answers[1] >= started + timedelta(seconds=3)
    assert stored["test:1"].due_at == answers[1] + timedelta(seconds=5)  # retry_after
    assert stored["test:2"].due_at == answers[2] + timedelta(seconds=2)  # the first backoff

    telegram.send_takes = 0
    clock.now = answers[1] + timedelta(seconds=4.5)
    await deliver_notifications(sender.app(), clock, sender.limiter)
    assert telegram.copies(4001) == {}  # not before retry_after has passed since the answer
    clock.now = answers[1] + timedelta(seconds=5)
    await deliver_notifications(sender.app(), clock, sender.limiter)
    assert telegram.copies(4001) == {1: 1}
    await sender.bot.session.close()


# ------------------------------------------------------------------- random faults

FAULT = st.sampled_from(["400", "403", "429:1", "429:3", "500", "lost"])
CASE = st.lists(  # per notification: (chat 0–3, the answers to its first sends)
    st.tuples(st.integers(0, 3), st.lists(FAULT, max_size=3)), min_size=1, max_size=12
)
_examples = iter(range(100_000, 10**9, 1_000))


def expected(faults: list[str]) -> tuple[str, int]:
    """(final status, copies Telegram holds) for a notification of a chat nobody blocked."""
    copies = 0
    for fault in faults:
        if fault == "400":
            return "failed", copies
        copies += fault == "lost"
    return "sent", copies + 1


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=CASE)
async def test_random_faults_deliver_every_deliverable_notification_once(
    engine: AsyncEngine, case: list[tuple[int, list[str]]]
) -> None:
    base = next(_examples)  # the database is shared by the examples: numbers of their own
    clock = Clock(NOON + timedelta(days=base // 1000))
    telegram = ScriptedTelegram(clock, send_takes=0.01)
    sender = make_sender(engine, telegram, clock)
    await add_dashboard(sender, clock)
    notes = []
    for offset, (chat, faults) in enumerate(case):
        telegram.script(base + offset, *faults)
        notes.append(report(base + chat, base + offset))
    await write(sender, clock, *notes)

    for tick in range(80):  # a 16 s backoff at most (three failures), 3 s retry_after
        await deliver_notifications(sender.app(), clock, sender.limiter)
        clock.advance(1)
        if tick % 5 == 4 and await all_final(engine, base, len(case)):
            break
    await sender.bot.session.close()

    stored = await rows(engine)
    mine = {i: stored[f"test:{base + i}"] for i in range(len(case))}
    assert {row.status for row in mine.values()} <= {"sent", "failed"}  # none left behind
    blocked = {chat for chat, faults in case if "403" in faults[: _stop(faults)]}
    dead = {
        row.data["notification_id"]
        for row in stored.values()
        if row.kind == "dashboard_dead_letter"
    }
    for i, (chat, faults) in enumerate(case):
        row, copies = mine[i], telegram.copies(base + chat)[base + i]
        if chat in blocked:  # 403: what had not reached the chat before it failed
            assert row.status == "failed" or copies >= 1
            assert copies <= 1 + faults.count("lost")
            continue
        status, expected_copies = expected(faults)
        assert (row.status, copies) == (status, expected_copies), (faults, row.attempts)
        assert (row.id in dead) == ("400" in faults)  # dead-lettered: the refused one alone
        if status == "sent":  # attempts are real tries: waiting turns and 429s do not count
            assert row.attempts == 1 + sum(f in ("500", "lost") for f in faults)
    assert not telegram.after_block  # 403: the sender stopped trying that chat


async def all_final(engine: AsyncEngine, base: int, count: int) -> bool:
    stored = await rows(engine)
    return all(stored[f"test:{base + i}"].status in ("sent", "failed") for i in range(count))


def _stop(faults: list[str]) -> int:
    """How much of a script is used: up to and including the first 400 or 403."""
    for position, fault in enumerate(faults):
        if fault in ("400", "403"):
            return position + 1
    return len(faults)


async def test_an_outcome_that_cannot_be_written_does_not_undo_the_others(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outcomes are written several to a transaction; when one of them cannot be written (here
    the dashboard's dead letter), the others are written alone — a sent row left `sending`
    would be sent again after STALE_CLAIM."""
    clock = Clock()
    telegram = ScriptedTelegram(clock)
    sender = make_sender(engine, telegram, clock)
    notes = [report(1100 + i, i) for i in range(4)]
    telegram.script(1, "400")
    await write(sender, clock, *notes)

    async def broken(*_args: object, **_kwargs: object) -> bool:
        raise RuntimeError("the dashboard's row cannot be written")

    monkeypatch.setattr(outbox, "dead_lettered", broken)
    with pytest.raises(RuntimeError):  # the tick says so, after the others were recorded
        await deliver_notifications(sender.app(), clock, sender.limiter)
    stored = await rows(engine)
    assert [stored[f"test:{i}"].status for i in (0, 2, 3)] == ["sent"] * 3
    assert stored["test:1"].status == "sending"  # claimed again after STALE_CLAIM
    await sender.bot.session.close()
