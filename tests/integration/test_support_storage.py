"""Support's storage on SQLite and PostgreSQL: one topic row per resident and chat however
often it is asked for, threads found back, one dashboard kept, and the figures of /stats."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from domain.accounts import AccountLevel, Resident, TokenSet
from domain.payable import Payable
from domain.payments import IntentStatus, PaymentIntent
from domain.ports import Dashboard, Notification, TrackedReport
from storage.database import create_sessionmaker
from storage.token_cipher import TokenCipher
from storage.uow import UnitOfWorkFactory

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
CHAT, OTHER_CHAT = -1001, -1002


def factory_for(engine: AsyncEngine) -> UnitOfWorkFactory:
    return UnitOfWorkFactory(create_sessionmaker(engine), TokenCipher([TokenCipher.generate_key()]))


async def test_one_topic_per_resident_and_chat(engine: AsyncEngine) -> None:
    factory = factory_for(engine)

    async def topic(user: int, chat: int = CHAT) -> int:
        async with factory() as uow:
            found = await uow.support.topic_of(chat, user, NOW)
            await uow.commit()
            return found.id

    first = await asyncio.gather(topic(7), topic(7))
    assert first[0] == first[1]
    assert await topic(8) != first[0] and await topic(7, OTHER_CHAT) != first[0]
    async with factory() as uow:
        await uow.support.set_thread(first[0], 42, "Мария В. · #1", NOW)
        await uow.commit()
    async with factory() as uow:
        found = await uow.support.by_thread(CHAT, 42)
        assert found is not None and (found.telegram_user_id, found.name) == (7, "Мария В. · #1")
        assert await uow.support.by_thread(OTHER_CHAT, 42) is None
        assert (await uow.support.get(first[0])) == found


async def test_one_dashboard_is_kept(engine: AsyncEngine) -> None:
    factory = factory_for(engine)
    async with factory() as uow:
        assert await uow.support.dashboard() is None
        stored = await uow.support.add_dashboard(Dashboard(CHAT, 5), NOW)
        again = await uow.support.add_dashboard(Dashboard(CHAT, 9), NOW)  # another replica
        await uow.commit()
    assert stored == again == Dashboard(CHAT, 5)
    async with factory() as uow:
        await uow.support.keep_dashboard(OTHER_CHAT)  # support moved to another chat
        await uow.commit()
        assert await uow.support.dashboard() is None


async def test_dashboard_events_waiting_for_a_chat_support_left_are_readdressed(
    engine: AsyncEngine,
) -> None:
    """SUPPORT_CHAT_ID moved: the dashboard's waiting events go to the new chat's topic; a
    resident's notice, an event being sent and one sent stay as they are."""
    factory = factory_for(engine)
    kinds = frozenset({"dash_refund"})

    def event(key: str, chat: int = CHAT, kind: str = "dash_refund") -> Notification:
        return Notification(chat, kind, {"message_thread_id": 5, "n": key}, key, urgent=True)

    async with factory() as uow:
        for each in (event("a"), event("b"), event("c"), event("d"), event("e", OTHER_CHAT)):
            await uow.notifications.add_once(each, NOW)
        await uow.notifications.add_once(event("r", 7, "report_status"), NOW)
        await uow.commit()
        taken = await uow.notifications.claim(NOW, 2, urgent_only=True)  # a and b: sending
        await uow.commit()
        await uow.notifications.sent(taken[0].id or 0, 1, NOW)  # a: sent
        await uow.commit()
    async with factory() as uow:
        assert await uow.notifications.readdress(kinds, OTHER_CHAT, 9) == 2  # c and d
        await uow.commit()
    async with factory() as uow:
        assert await uow.notifications.readdress(kinds, OTHER_CHAT, 9) == 0
        waiting = await uow.notifications.claim(NOW, 10)
    moved = {n.dedupe_key: (n.telegram_user_id, n.data) for n in waiting}
    assert moved["c"] == (OTHER_CHAT, {"message_thread_id": 9, "n": "c"})
    assert moved["d"] == (OTHER_CHAT, {"message_thread_id": 9, "n": "d"})
    assert moved["e"] == (OTHER_CHAT, {"message_thread_id": 5, "n": "e"})  # already there
    assert moved["r"][0] == 7  # a resident's notice is never moved
    assert {"a", "b"}.isdisjoint(moved)  # sent, and being sent: left to their sender


async def test_dashboard_events_waiting_when_support_is_off_fail(engine: AsyncEngine) -> None:
    """Support turned off: waiting dashboard events fail for good; one being sent, one sent
    and a resident's notice stay as they are."""
    factory = factory_for(engine)
    kinds = frozenset({"dash_refund"})

    def event(key: str, chat: int = CHAT, kind: str = "dash_refund") -> Notification:
        return Notification(chat, kind, {"message_thread_id": 5}, key, urgent=True)

    async with factory() as uow:
        for each in (event("a"), event("b"), event("c"), event("d", OTHER_CHAT)):
            await uow.notifications.add_once(each, NOW)
        await uow.notifications.add_once(event("r", 7, "report_status"), NOW)
        await uow.commit()
        [taken] = await uow.notifications.claim(NOW, 1, urgent_only=True)  # a: sending
        await uow.commit()
    async with factory() as uow:
        assert await uow.notifications.fail_waiting(kinds) == 3  # b, c, d
        await uow.commit()
    async with factory() as uow:
        assert await uow.notifications.fail_waiting(kinds) == 0
        waiting = await uow.notifications.claim(NOW, 10)
    assert {n.dedupe_key for n in waiting} == {"r"}
    assert taken.dedupe_key == "a"


async def test_stats_count_today_only(engine: AsyncEngine) -> None:
    factory = factory_for(engine)
    yesterday = NOW - timedelta(days=1)
    tokens = TokenSet("a", "r", NOW)
    async with factory() as uow:
        await uow.residents.save(Resident(7, 7, "C-1", AccountLevel.FULL, "Мария В.", tokens, NOW))
        for key, amount, when in (("k1", 10_000, NOW), ("k2", 5_050, NOW), ("k3", 999, yesterday)):
            intent = PaymentIntent(key, 7, Payable.bills(["b"]), amount, "pm", when, when)
            await uow.payment_intents.add(intent)
            intent = await uow.payment_intents.by_key(key)
            assert intent is not None
            intent.status = IntentStatus.SUCCEEDED
            await uow.payment_intents.save(intent)
        await uow.tracked_reports.track(TrackedReport(7, "NG-1"), NOW)
        await uow.tracked_reports.track(TrackedReport(7, "NG-2", own=False), NOW)
        await uow.notifications.add_once(Notification(7, "report_status", {}, "x"), NOW)
        await uow.commit()
        [claimed] = await uow.notifications.claim(NOW, 1)
        assert claimed.id is not None
        await uow.notifications.retry(claimed.id, NOW, failed=True)
        await uow.commit()
    async with factory() as uow:
        stats = await uow.support.stats(NOW - timedelta(hours=12))
        counts = await uow.support.counts(7)
    assert (stats.linked_residents, stats.payments_today, stats.paid_today) == (1, 2, 15_050)
    assert (stats.reports_today, stats.failed_notifications) == (1, 1)
    assert counts == (1, 0)
