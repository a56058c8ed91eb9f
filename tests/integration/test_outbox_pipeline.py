"""The outbox sender's throughput shape (issue 14), driven like test_outbox_faults.py: a batch is
claimed with one statement (its residents' muted kinds included), sends run concurrently up to
the budget but never two at once to one chat, two senders (two replicas) on one PostgreSQL
send every notification exactly once, and the limiter counts a message from its answer less
the fastest round trip. Nothing here measures time (bench/delivery.py does)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from aiogram import Bot
from aiogram.methods import TelegramMethod
from aiogram.methods.base import TelegramType
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.jobs import deliver_notifications
from bot.outbox import SEND_BATCH, SEND_CONCURRENCY
from bot.ratelimit import ARRIVAL_MARGIN, CHAT_INTERVAL, TRUSTED_ROUND_TRIPS, MemoryLimiter
from storage.database import create_engine
from storage.notifications import Claimed, SqlNotificationRepository
from tests.conftest import POSTGRES_URL, fresh_engine
from tests.integration.test_outbox_faults import (
    Clock,
    ScriptedTelegram,
    make_sender,
    report,
    rows,
    write,
)
from tests.integration.test_ratelimit import FakeTime

SEND_DELAY = 0.005  # real seconds each answer takes: the sends overlap (nothing is timed)


@contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """Every SQL statement the engine sends to the database while the block runs."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(str(args[2]))  # (connection, cursor, statement, parameters, ...)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


class SlowTelegram(ScriptedTelegram):
    """The double answering after SEND_DELAY real seconds, counting the sends in flight: at
    once, and to each chat."""

    def __init__(self, clock: Clock, moves_clock_by: float = 0.0) -> None:
        super().__init__(clock)
        self.moves_clock_by = moves_clock_by  # fake seconds each send takes, at its start
        self.in_flight: Counter[int] = Counter()
        self.most_in_flight = 0
        self.most_to_a_chat: Counter[int] = Counter()
        self.statements_before_first_send: int | None = None
        self.seen: list[str] | None = None

    async def make_request(
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        timeout: int | None = None,  # noqa: ASYNC109 - BaseSession's signature
    ) -> TelegramType:
        chat = getattr(method, "chat_id", None)
        assert isinstance(chat, int)
        if self.seen is not None and self.statements_before_first_send is None:
            self.statements_before_first_send = len(self.seen)
        self.in_flight[chat] += 1
        self.most_to_a_chat[chat] = max(self.most_to_a_chat[chat], self.in_flight[chat])
        self.most_in_flight = max(self.most_in_flight, self.in_flight.total())
        self.fake_clock.advance(self.moves_clock_by)  # while this one is in flight
        try:
            await asyncio.sleep(SEND_DELAY)
            return await super().make_request(bot, method, timeout)
        finally:
            self.in_flight[chat] -= 1


async def test_a_batch_is_claimed_with_one_statement(engine: AsyncEngine) -> None:
    """One statement claims the whole batch, the residents' muted kinds with it (they used to
    be one query per resident: 61 statements for 60 rows); the sender runs nothing else
    before its first send. On PostgreSQL the claims take turns first (one advisory lock:
    `storage.notifications.CLAIM_LOCK`)."""
    turns = 1 if engine.dialect.name == "postgresql" else 0
    clock = Clock()
    telegram = SlowTelegram(clock)
    sender = make_sender(engine, telegram, clock)
    await write(sender, clock, *(report(4000 + i, i) for i in range(SEND_BATCH)))
    async with sender.uow_factory() as uow:
        await uow.notification_settings.set_muted(4001, {"report_status", "poll_reminder"})
        await uow.commit()

    async with sender.uow_factory() as uow:
        with statements(engine) as seen:
            claimed = await uow.notifications.claim_to_send(clock(), SEND_BATCH)
        await uow.rollback()
    assert len(seen) == 1 + turns, seen
    assert "pg_advisory_xact_lock" in seen[0] if turns else True, seen[0]
    assert "UPDATE notifications SET" in seen[-1], seen[-1]
    assert len(claimed) == SEND_BATCH
    muted = {each.notification.telegram_user_id: each.muted for each in claimed}
    assert muted[4001] == {"report_status", "poll_reminder"}
    assert muted[4000] == frozenset()

    with statements(engine) as seen:
        telegram.seen = seen
        sent = await deliver_notifications(sender.app(), clock, sender.limiter)
    assert telegram.statements_before_first_send == 1 + turns, seen[:3]
    assert sent == SEND_BATCH - 1  # the muted one is marked sent, never sent
    assert telegram.copies(4001) == Counter()
    assert {row.status for row in (await rows(engine)).values()} == {"sent"}
    await sender.bot.session.close()


async def test_sends_overlap_but_never_two_to_one_chat(engine: AsyncEngine) -> None:
    """Several sends are in flight at once (up to SEND_CONCURRENCY), never two to one chat:
    each of 20 chats has two notifications in the batch; the second waits for the first's
    answer, although the sends started meanwhile move the clock on by more than the chat's
    second (slow answers), yet less than IN_FLIGHT_LEASE."""
    clock = Clock()
    telegram = SlowTelegram(clock, moves_clock_by=0.3)
    sender = make_sender(engine, telegram, clock)
    chats = [5000 + i for i in range(20)]
    await write(sender, clock, *(report(chat, i) for i, chat in enumerate(chats * 2)))

    for _ in range(5):
        await deliver_notifications(sender.app(), clock, sender.limiter)
        clock.advance(1)

    assert telegram.most_in_flight > 1
    assert telegram.most_in_flight <= SEND_CONCURRENCY
    assert set(telegram.most_to_a_chat.values()) == {1}
    assert all(telegram.copies(chat).total() == 2 for chat in chats)
    assert {row.status for row in (await rows(engine)).values()} == {"sent"}
    await sender.bot.session.close()


async def test_two_senders_send_every_notification_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two replicas, each with its own engine, bot and limiter, deliver one PostgreSQL outbox
        at the same time: every notification reaches Telegram exactly once, both took part, and no
    claim took more rows than its limit."""
    first_engine = await fresh_engine("postgres", tmp_path)
    second_engine = create_engine(POSTGRES_URL)
    clock = Clock()
    telegram = SlowTelegram(clock)
    replicas = [make_sender(e, telegram, clock) for e in (first_engine, second_engine)]
    for replica in replicas:  # both connected: neither starts late
        async with replica.uow_factory() as uow:
            assert await uow.notifications.claim(clock(), 1) == []
    count = 4 * SEND_BATCH
    chats = [6000 + i for i in range(count // 2)]
    await write(replicas[0], clock, *(report(chat, i) for i, chat in enumerate(chats * 2)))

    by_replica: Counter[int] = Counter()
    claims: list[int] = []  # rows taken by each claim, either replica's
    claim_to_send = SqlNotificationRepository.claim_to_send

    async def counted(self: SqlNotificationRepository, *args: Any, **kw: Any) -> list[Claimed]:
        claimed = await claim_to_send(self, *args, **kw)
        claims.append(len(claimed))
        return claimed

    monkeypatch.setattr(SqlNotificationRepository, "claim_to_send", counted)
    for _ in range(8):
        sent = await asyncio.gather(
            *(deliver_notifications(r.app(), clock, r.limiter) for r in replicas)
        )
        by_replica.update(dict(enumerate(sent)))
        clock.advance(1)

    copies: Counter[int] = Counter()
    for chat in chats:
        copies.update(telegram.copies(chat))
    assert sorted(copies) == list(range(count))
    assert set(copies.values()) == {1}, [n for n, c in copies.items() if c > 1]
    assert {row.status for row in (await rows(first_engine)).values()} == {"sent"}
    assert max(claims) <= SEND_BATCH, claims  # a claim never takes more than asked
    assert by_replica[0] > 0 and by_replica[1] > 0, by_replica
    assert by_replica.total() == count
    for replica in replicas:
        await replica.bot.session.close()
    await second_engine.dispose()
    await first_engine.dispose()


async def test_a_chat_with_a_send_in_flight_gets_no_second_slot() -> None:
    """However long the answer takes, a chat's second message waits for it (a slow first one
    could otherwise arrive after, or within a second of, the second)."""
    clock = FakeTime()
    limiter = MemoryLimiter(clock=clock, sleep=clock.sleep)
    assert await limiter.acquire(1) == 0.0
    clock.now = 3.0  # no answer yet, three seconds on
    assert await limiter.acquire(1) == CHAT_INTERVAL
    await limiter.answered(1, accepted=True)
    assert await limiter.acquire(1) == pytest.approx(CHAT_INTERVAL)  # a second from the answer
    clock.now = 4.0
    assert await limiter.acquire(1) == 0.0


async def test_a_slot_counts_from_the_answer_less_the_fastest_round_trip() -> None:
    """Once TRUSTED_ROUND_TRIPS answers are known, a message counts from its answer less the
    fastest recent round trip (less ARRIVAL_MARGIN): with 0.1 s round trips the bot-wide slot
    is free again 0.91 s after the answer, not 1 s; the chat's second still runs from the
    answer."""
    clock = FakeTime()
    limiter = MemoryLimiter(per_second=1, clock=clock, sleep=clock.sleep)
    for chat in range(TRUSTED_ROUND_TRIPS):
        assert await limiter.acquire(chat) == 0.0  # waits (fake time) for the one slot
        clock.now += 0.1
        await limiter.answered(chat, accepted=True)
    answered = clock.now
    assert await limiter.acquire(TRUSTED_ROUND_TRIPS) == 0.0
    assert clock.now == pytest.approx(answered + 1 - 0.1 + ARRIVAL_MARGIN)
    assert await limiter.acquire(TRUSTED_ROUND_TRIPS - 1) == pytest.approx(0.1 - ARRIVAL_MARGIN)
