"""Review 17: an adversarial reviewer breaking the outbox sender after da270a9 (a chat's rows
one after another in a tick, what a cancelled tick records, the claim's advisory lock and
`ix_notifications_open_chat`, slots in flight kept in the limiter's window).

Driven like test_outbox_faults.py / test_review16_outbox.py: the Bot API double with a
per-notification fault script and a fake clock for the rows and the limiter, or the fake HTTP
Bot API of bench/fake_telegram.py (which counts Telegram's limits itself). Nothing here times
anything: concurrency is counted, limits are read from the fake server's own log."""

from __future__ import annotations

import asyncio
import contextlib
import math
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from aiogram import Bot
from aiogram.methods import TelegramMethod
from aiogram.methods.base import TelegramType
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot import outbox, ratelimit
from bot.jobs import deliver_notifications
from bot.ratelimit import RedisLimiter
from domain.bill_discovery import KIND as BILL_ISSUED
from domain.ports import Notification
from storage.database import create_engine
from storage.notifications import CLAIM_LOCK, STALE_CLAIM
from tests.conftest import POSTGRES_URL, REDIS_URL, fresh_engine, need_service
from tests.integration.test_outbox_faults import (
    NOON,
    Clock,
    ScriptedTelegram,
    make_sender,
    report,
    rows,
    write,
)
from tests.integration.test_review16_outbox import (
    RealNoon,
    SlowDouble,
    UnevenBotApi,
    cancel_while_writing,
    http_sender,
    order,
    rounds,
    ticks,
    two_replicas,
    without_credit,
)

# ----------------------------------------------------------------- cancellation


# Was (review): deliver_notifications: a tick cancelled in _Pipeline.start before the batch's
# tasks exist (the city check of a bill reminder, _refresh) leaves every claimed row `sending`
# (never tried, not put back) until STALE_CLAIM, blocking their chats' later rows
async def test_cancelled_during_the_city_check_puts_the_batch_back(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bill's day-before reminder is checked with the city just before it goes (`_refresh`,
    `still_due`), and the city is slow; the shutdown cancels the tick meanwhile. Nothing of
    the batch was tried: each row should be pending again, due now (the module's promise: «a
    row never tried as DEFERRED due now»), not `sending` for five minutes."""
    clock = Clock()
    telegram = ScriptedTelegram(clock)
    sender = make_sender(engine, telegram, clock)
    sender.city = object()  # type: ignore[attr-defined]  # only handed to the (slow) check
    asking = asyncio.Event()

    async def slow_city(*_: Any) -> Notification | None:
        asking.set()
        await asyncio.sleep(5)  # the city answers slowly; the shutdown comes first
        return None

    monkeypatch.setattr(outbox, "still_due", slow_city)
    reminder = Notification(
        8701,
        BILL_ISSUED,
        {"reminder": True, "bill_id": "b-1", "amount": "15000.00", "due_date": "2026-12-15"},
        dedupe_key="test:reminder",
    )
    plain = [report(8710 + i, i) for i in range(5)]
    await write(sender, clock, reminder, *plain)
    tick = asyncio.create_task(deliver_notifications(sender.app(), clock, sender.limiter))
    await asyncio.wait_for(asking.wait(), 5)
    tick.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await tick
    stored = await rows(engine)
    assert telegram.messages(8710) == []  # nothing was tried
    assert {key: row.status for key, row in stored.items()} == dict.fromkeys(stored, "pending")
    await sender.bot.session.close()


# Was (review): _Pipeline._one: a send cancelled while queued behind its chat's previous send
# (put back: a 5xx, 429, the chat's turn) is recorded DEFERRED due now, not due with the
# previous one, so after the restart it overtakes it
async def test_cancelled_behind_a_put_back_row_keeps_the_chats_order(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chat X's first notification gets a 500 (backed off 2 s); its second waits for it in the
    tick and would be put back with it. The shutdown comes while the first one's outcome is
    being written (the second still queued behind it). The process restarts without Redis (a
    fresh in-memory limiter, as after any restart of a single-process bot): the second one is
    due now, the first in 2 s — the second arrives first. Without the cancellation both are
    due together and go in order (checked by the last assertion's twin below)."""
    clock = Clock()
    telegram = ScriptedTelegram(clock)
    sender = make_sender(engine, telegram, clock)
    chat = 8801
    await write(sender, clock, report(chat, 1), report(chat, 2))
    telegram.script(1, "500")
    await cancel_while_writing(sender, clock, monkeypatch, commit_takes=0.2)

    sender.limiter = clock.limiter()  # restarted: the chat's hold was in memory
    await ticks(sender, clock, 8)
    stored = await rows(engine)
    assert {stored["test:1"].status, stored["test:2"].status} == {"sent"}
    assert order(telegram, chat) == [1, 2]
    await sender.bot.session.close()


async def test_restart_without_cancellation_keeps_the_chats_order(engine: AsyncEngine) -> None:
    """The twin of the test above without the cancellation: the tick ends, the second row is
    put back due with the first one; a restart (fresh limiter) keeps their order."""
    clock = Clock()
    telegram = ScriptedTelegram(clock)
    sender = make_sender(engine, telegram, clock)
    chat = 8802
    await write(sender, clock, report(chat, 1), report(chat, 2))
    telegram.script(1, "500")
    await deliver_notifications(sender.app(), clock, sender.limiter)
    sender.limiter = clock.limiter()
    await ticks(sender, clock, 8)
    assert order(telegram, chat) == [1, 2]
    await sender.bot.session.close()


async def test_cancelled_digest_keeps_its_rows_together(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Quiet-hours rows folded into one digest, queued behind the chat's urgent row whose
    answer is slow; the shutdown comes. The digest was never tried: all its rows are pending
    again (none left `sending`, none split off sent), and the next ticks send ONE digest."""
    night = Clock(NOON - timedelta(hours=13))  # the evening before, 23:00 in Moscow: quiet hours
    posting = asyncio.Event()

    class Slow(ScriptedTelegram):
        hang = True

        async def make_request(
            self,
            bot: Bot,
            method: TelegramMethod[TelegramType],
            timeout: int | None = None,  # noqa: ASYNC109 - BaseSession's signature
        ) -> TelegramType:
            if self.hang:
                posting.set()
                await asyncio.sleep(5)
            return await super().make_request(bot, method, timeout)

    telegram = Slow(night)
    sender = make_sender(engine, telegram, night)
    chat = 8901
    await write(sender, night, *(report(chat, i) for i in range(1, 4)))
    night.now = NOON - timedelta(hours=2)  # 10:00 in Moscow: the hours are over
    urgent = replace(report(chat, 0), urgent=True)
    await write(sender, night, urgent)
    tick = asyncio.create_task(deliver_notifications(sender.app(), night, sender.limiter))
    await asyncio.wait_for(posting.wait(), 5)
    tick.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await tick
    stored = await rows(engine)
    assert stored["test:0"].status == "sending"  # its request had left: unknown
    assert [stored[f"test:{i}"].status for i in range(1, 4)] == ["pending"] * 3
    assert [stored[f"test:{i}"].attempts for i in range(1, 4)] == [0] * 3

    telegram.hang = False
    night.advance(STALE_CLAIM.total_seconds() + 60)  # the restart, after the stale claim
    sender.limiter = night.limiter()
    await ticks(sender, night, 5)
    stored = await rows(engine)
    assert {row.status for row in stored.values()} == {"sent"}, (
        {k: (r.status, r.due_at, r.attempts, r.held) for k, r in stored.items()},
        night(),
        [m.text[:60] for m in telegram.messages(chat)],
    )
    digests = [m for m in telegram.messages(chat) if "T-1" in m.text]
    assert len(digests) == 1 and all(f"T-{i}" in digests[0].text for i in (2, 3))
    assert not any(
        "T-2" in m.text or "T-3" in m.text for m in telegram.messages(chat) if m not in digests
    )
    await sender.bot.session.close()


# ----------------------------------------------------------------- throughput


class Counting(SlowDouble):
    """The slow double counting how many sends are in its hands at once."""

    def __init__(self, clock: Clock, delay: float) -> None:
        super().__init__(clock, delay)
        self.now_in = 0
        self.peak = 0

    async def make_request(
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        timeout: int | None = None,  # noqa: ASYNC109 - BaseSession's signature
    ) -> TelegramType:
        self.now_in += 1
        self.peak = max(self.peak, self.now_in)
        try:
            return await super().make_request(bot, method, timeout)
        finally:
            self.now_in -= 1


async def test_many_chats_one_row_each_fill_the_budget(sqlite_engine: AsyncEngine) -> None:
    """90 chats with one notification each (two batches): the per-chat chain must not
    serialise them — SEND_CONCURRENCY (30) sends are in flight at once, never more."""
    clock = Clock()
    telegram = Counting(clock, delay=0.05)
    sender = make_sender(sqlite_engine, telegram, clock)
    await write(sender, clock, *(report(9100 + i, i) for i in range(90)))
    await deliver_notifications(sender.app(), clock, sender.limiter)
    stored = await rows(sqlite_engine)
    assert {row.status for row in stored.values()} == {"sent"}
    assert telegram.peak == outbox.SEND_CONCURRENCY
    await sender.bot.session.close()


async def test_a_chat_with_many_rows_does_not_hold_the_others(sqlite_engine: AsyncEngine) -> None:
    """One chat with 60 rows (a whole batch, each queued behind the one before) and 40 chats
    with one row: the tick does not hang on the chain, the chat gets one message a second in
    order, the others all go in the first tick."""
    clock = Clock()
    telegram = Counting(clock, delay=0.01)
    sender = make_sender(sqlite_engine, telegram, clock)
    busy = 9300
    await write(sender, clock, *(report(busy, i) for i in range(60)))
    await write(sender, clock, *(report(9400 + i, 100 + i) for i in range(40)))
    await asyncio.wait_for(deliver_notifications(sender.app(), clock, sender.limiter), 10)
    assert all(order(telegram, 9400 + i) == [100 + i] for i in range(40))
    await ticks(sender, clock, 70)
    assert order(telegram, busy) == list(range(60))


# ----------------------------------------------------------------- two replicas


async def test_two_replicas_many_chats_in_order_exactly_once(tmp_path: Any) -> None:
    """Two replicas on one PostgreSQL outbox and one limiter, 50 chats × 4 rows (two hundred,
    interleaved by chat), one chat blocking the bot midway (a 403): every chat gets its
    notifications in the order written, each exactly once (but the blocked one)."""
    clock = Clock()
    telegram = SlowDouble(clock, delay=0.005)
    chats = [9500 + c for c in range(50)]
    notes = [report(chat, n * 1000 + c) for n in range(4) for c, chat in enumerate(chats)]
    async with two_replicas(tmp_path, telegram, clock) as (replicas, first_engine):
        await write(replicas[0], clock, *notes)
        telegram.script(1000 + 13, "403")  # backoffs: test_a_later_row_waits_for_the_put_back_one
        await rounds(replicas, clock, 40)
        stored = await rows(first_engine)
    blocked = chats[13]
    for c, chat in enumerate(chats):
        got = order(telegram, chat)
        if chat == blocked:
            assert got == [13], got
            continue
        assert got == [n * 1000 + c for n in range(4)], (chat, got)
    assert {row.status for row in stored.values()} == {"sent", "failed"}


# Was (review): claim_to_send leaves out a chat's row only behind an older row `sending`, not
# one put back (pending, due later); the later row waits for a send past the hold's end and goes
# before the put-back row is claimed again
@pytest.mark.parametrize("fault", ["500", "429:2"])
async def test_a_later_row_waits_for_the_put_back_one(engine: AsyncEngine, fault: str) -> None:
    """One replica. Chat X's notification 1 gets a 500 (backed off 2 s, the chat held as long)
    or a 429 (retry after 2 s). Notification 2 of X is written a moment later, after 31 of
    other chats. At +1.5 s the next tick claims the 31 and X's 2 (X's 1 is not due yet); 30
    fill the second's budget, the 31st waits for it (half a second and more), X's 2 behind it
    for a free send: by then X's hold is over and it goes — X's 1 is claimed only by the
    next tick. The chat reads 2, then 1."""
    clock = Clock()
    telegram = ScriptedTelegram(clock)
    sender = make_sender(engine, telegram, clock)
    chat = 9901
    telegram.script(1, fault)
    await write(sender, clock, report(chat, 1))
    await deliver_notifications(sender.app(), clock, sender.limiter)
    assert order(telegram, chat) == []
    await write(sender, clock, *(report(9910 + i, 100 + i) for i in range(31)), report(chat, 2))
    clock.advance(1.5)
    await ticks(sender, clock, 6)
    stored = await rows(engine)
    assert {row.status for row in stored.values()} == {"sent"}
    assert order(telegram, chat) == [1, 2]
    await sender.bot.session.close()


async def test_the_claim_lock_is_released_with_the_claim(pg_engine: AsyncEngine) -> None:
    """The advisory lock lives as long as the claim's transaction: a claim that failed (rolled
    back) or committed leaves it free for the next claim (another session takes it at once)."""
    clock = Clock()
    sender = make_sender(pg_engine, ScriptedTelegram(clock), clock)
    await write(sender, clock, report(9601, 1))
    async with sender.uow_factory() as uow:
        assert len(await uow.notifications.claim_to_send(clock(), 5)) == 1
        await uow.commit()
    with contextlib.suppress(RuntimeError):
        async with sender.uow_factory() as uow:
            await uow.notifications.claim_to_send(clock(), 5)
            raise RuntimeError("the tick fails after its claim")
    async with pg_engine.connect() as connection:
        taken = await connection.scalar(text(f"select pg_try_advisory_xact_lock({CLAIM_LOCK})"))
        assert taken is True
        held = await connection.scalar(
            text("select count(*) from pg_locks where locktype = 'advisory' and granted")
        )
        assert held == 1  # ours alone


# ----------------------------------------------------------------- the Redis limiter


async def test_a_waiting_send_polls_redis_boundedly(monkeypatch: pytest.MonkeyPatch) -> None:
    """The window is full of slots in flight asked long ago (a replica died mid-send: never
    answered). A send waiting for the budget asks Redis again every IN_FLIGHT_POLL until the
    lease ends — never more often than that (count the calls), and it does get its slot."""
    monkeypatch.setattr(ratelimit, "WINDOW", 0.05)
    monkeypatch.setattr(ratelimit, "IN_FLIGHT_LEASE", 0.3)
    client = Redis.from_url(need_service(REDIS_URL, "TEST_REDIS_URL"))
    await client.flushdb()
    try:
        dead = RedisLimiter(client, per_second=5)
        for chat in range(5):
            assert await dead.acquire(9700 + chat) == 0.0
        waiting = RedisLimiter(client, per_second=5)
        calls = 0
        script = waiting._acquire

        async def counted(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            return await script(*args, **kwargs)

        waiting._acquire = counted  # type: ignore[assignment,method-assign]
        assert await asyncio.wait_for(waiting.acquire(9799), 5) == 0.0
        # the lease and two windows at most, one call per IN_FLIGHT_POLL, and a few spare
        bound = math.ceil((0.3 + 2 * 0.05) / ratelimit.IN_FLIGHT_POLL) + 3
        assert 2 <= calls <= bound, calls
    finally:
        await client.flushdb()
        await client.aclose()


async def test_two_redis_replicas_stay_within_the_rolling_second(tmp_path: Any) -> None:
    """Two replicas (two RedisLimiters on one Redis, each its own round-trip estimate) on one
    PostgreSQL outbox send 150 chats' notifications through the fake Bot API: no rolling
    second above 30 as the fake counts arrivals, no chat twice in a second, each once."""
    client = Redis.from_url(need_service(REDIS_URL, "TEST_REDIS_URL"))
    await client.flushdb()
    api = UnevenBotApi(slow={})
    await api.start()
    first_engine = await fresh_engine("postgres", tmp_path)
    second_engine = create_engine(POSTGRES_URL)
    clock = RealNoon()
    replicas = [
        http_sender(e, api, without_credit(RedisLimiter(client)))
        for e in (first_engine, second_engine)
    ]
    await write(replicas[0], clock, *(report(9800 + i, i) for i in range(150)))
    try:
        for _ in range(20):
            await asyncio.gather(
                *(deliver_notifications(r.app(), clock, r.limiter) for r in replicas)
            )
            if {row.status for row in (await rows(first_engine)).values()} == {"sent"}:
                break
            await asyncio.sleep(0.05)
    finally:
        for replica in replicas:
            await replica.bot.session.close()
        await api.stop()
        await client.flushdb()
        await client.aclose()
        await second_engine.dispose()
        await first_engine.dispose()
    assert api.refusals.global_limit == 0 and api.refusals.chat_limit == 0, (
        api.refusals,
        api.peak_per_second(),
    )
    assert sorted(message.chat_id for message in api.accepted) == [9800 + i for i in range(150)]


# ------------------------------------------------------------------ starvation


async def test_a_stuck_sending_row_does_not_starve_its_chat(engine: AsyncEngine) -> None:
    """A crash left chat X's first row `sending` (its answer unknown). Its later rows wait
    behind it (`ix_notifications_open_chat`), but only until STALE_CLAIM: then the stuck row
    is claimed again and the chat's rows go (an urgent one, which waited too, first)."""
    clock = Clock()
    telegram = ScriptedTelegram(clock)
    sender = make_sender(engine, telegram, clock)
    chat = 9951
    await write(sender, clock, report(chat, 1))
    async with sender.uow_factory() as uow:  # the crashed sender's claim
        assert len(await uow.notifications.claim_to_send(clock(), 5)) == 1
        await uow.commit()
    urgent = replace(report(chat, 3), urgent=True)
    await write(sender, clock, report(chat, 2), urgent, report(9952, 4))
    await ticks(sender, clock, 3)
    assert order(telegram, chat) == [] and order(telegram, 9952) == [4]
    clock.advance(STALE_CLAIM.total_seconds())
    await ticks(sender, clock, 5)
    assert order(telegram, chat) == [3, 1, 2]  # urgent first (claim order), then in order
    await sender.bot.session.close()


async def test_a_blocked_chat_ends_its_chain_in_one_tick(engine: AsyncEngine) -> None:
    """Chat X blocks the bot at its first of five rows (a 403), the second of them muted: the
    tick returns, every row of X is failed (none left `sending` or pending), nothing more is
    tried to X, the other chats' rows go."""
    clock = Clock()
    telegram = ScriptedTelegram(clock)
    sender = make_sender(engine, telegram, clock)
    chat = 9961
    telegram.script(1, "403")
    await write(sender, clock, *(report(chat, i) for i in range(1, 6)), report(9962, 9))
    async with sender.uow_factory() as uow:
        await uow.notification_settings.set_muted(chat, {"report_status"})
        await uow.commit()
    urgent_first = replace(report(chat, 0), urgent=True)
    telegram.script(0, "403")
    await write(sender, clock, urgent_first)
    await asyncio.wait_for(deliver_notifications(sender.app(), clock, sender.limiter), 10)
    stored = await rows(engine)
    assert {stored[f"test:{i}"].status for i in range(6)} <= {"failed", "sent"}
    assert stored["test:0"].status == "failed"
    assert telegram.after_block[chat] == 0
    assert order(telegram, 9962) == [9]
    await sender.bot.session.close()
