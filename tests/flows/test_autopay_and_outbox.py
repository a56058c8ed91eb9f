"""Autopay in the chat (set up, the reminder with «Пропустить этот раз») and the outbox's
delivery rules (429, 403, quiet hours, a rolled-back transaction)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from aiogram.methods import SendMessage
from prometheus_client import REGISTRY

from bot.jobs import deliver_notifications, run_autopays
from bot.ratelimit import MemoryLimiter
from domain.ports import Notification
from sandbox.conversation import Conversation
from sandbox.telegram_double import Fault
from tests.flows.conftest import Harness
from tests.money_text import nb

MSK = timezone(timedelta(hours=3))
METRICS = [
    ("autopay_runs_total", {"outcome": "succeeded"}),
    ("payments_total", {"outcome": "201"}),
    ("notifications_total", {"outcome": "sent"}),
]


def sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def ledger(harness: Harness) -> list[dict[str, Any]]:
    return (await harness.sandbox_call("GET", "/sandbox/ledger"))["charges"]


async def set_up_donation(harness: Harness, chat: Conversation, day: int) -> None:
    await chat.press("Автоплатежи")
    assert "Автоплатежей пока нет" in chat.last_text
    await chat.press("Подключить автоплатёж")
    await chat.press("Пожертвование фонду")
    await chat.press(1)
    await chat.press("Раз в месяц")
    assert "Нужно число от 1 до 31" in (await chat.send("32")).text
    await chat.send(str(day))
    assert "Нужна сумма не меньше 50\u00a0₽" in (await chat.send("49")).text
    await chat.send("150")
    await chat.press("•• 4242")
    summary = chat.last_text
    assert nb("150,00 ₽") in summary and f"каждое {day}-е число" in summary and "•• 4242" in summary
    reply = await chat.press("Подключить")
    assert "Автоплатёж подключён" in reply.text


async def test_reminder_skip_then_the_next_period_is_charged(harness: Harness) -> None:
    chat = harness.chat()
    await harness.link(chat)
    harness.clock.now = datetime(2026, 11, 24, 12, 0, tzinfo=MSK)
    await set_up_donation(harness, chat, 25)
    assert harness.app is not None
    limiter = MemoryLimiter()

    await run_autopays(harness.app, harness.clock)  # the day before: the reminder
    await deliver_notifications(harness.app, harness.clock, limiter)
    assert "25.11 в 10:00 спишем по автоплатежу" in chat.last_text  # a date: never «завтра»
    reply = await chat.press("Пропустить этот раз")
    assert "в этот раз не спишем" in reply.text

    harness.clock.now = datetime(2026, 11, 25, 10, 0, 5, tzinfo=MSK)
    await run_autopays(harness.app, harness.clock)
    assert await ledger(harness) == []  # skipped: nothing charged for November

    harness.clock.now = datetime(2026, 12, 25, 10, 0, 5, tzinfo=MSK)
    before = {name: sample(name, labels) for name, labels in METRICS}
    await run_autopays(harness.app, harness.clock)
    charges = await ledger(harness)
    assert [c["amount"] for c in charges] == [15_000]
    # A month later by the fake clock, but the limiter counts real seconds: a fresh one.
    await deliver_notifications(harness.app, harness.clock, MemoryLimiter())
    for name, labels in METRICS:  # the charge and its notification show in /metrics
        assert sample(name, labels) == before[name] + 1, name
    assert "Автоплатёж: Помощь фонду" in chat.last_text and nb("списано 150,00 ₽") in chat.last_text


async def test_pause_and_resume(harness: Harness) -> None:
    chat = harness.chat()
    await harness.link(chat)
    await set_up_donation(harness, chat, 5)
    await chat.press(1)
    assert "Статус: включён" in chat.last_text
    await chat.press("Приостановить")
    assert "Статус: на паузе" in chat.last_text
    await chat.press("Возобновить")
    assert "Статус: включён" in chat.last_text

    await chat.press("Сумма или лимит")  # change the amount…
    assert "Нужна сумма не меньше 50\u00a0₽" in (await chat.send("10")).text
    await chat.send("250")
    assert nb("250,00 ₽") in chat.last_text and "каждое 5-е число" in chat.last_text
    await chat.press("День списания")  # …and the day
    await chat.press("Раз в неделю")
    await chat.press("пятница")
    assert "каждую неделю, пятница" in chat.last_text and nb("250,00 ₽") in chat.last_text


async def note(harness: Harness, chat: Conversation, key: str, *, urgent: bool = False) -> None:
    assert harness.app is not None
    async with harness.app.uow_factory() as uow:
        await uow.notifications.add_once(
            Notification(
                chat.chat_id,
                "autopay_failed" if urgent else "report_status",
                {
                    "report_id": key,
                    "theme": "Яма",
                    "status": "in_work",
                    "text": "",
                    "kind": "fixed",
                    "fund_name": "Фонд",
                    "amount": 100,
                },
                dedupe_key=key,
                urgent=urgent,
            ),
            harness.clock(),
        )
        await uow.commit()


def sent_texts(chat: Conversation, needle: str) -> list[str]:
    return [t for t in chat.history if needle in t]


async def test_429_waits_its_retry_after(harness: Harness) -> None:
    chat = harness.chat()
    await harness.link(chat)
    assert harness.app is not None
    await note(harness, chat, "NG-1")
    harness.telegram.fail_next(SendMessage, Fault.RETRY_AFTER, retry_after=30)
    await deliver_notifications(harness.app, harness.clock, MemoryLimiter())
    assert sent_texts(chat, "NG-1") == []
    harness.clock.advance(20)
    await deliver_notifications(harness.app, harness.clock, MemoryLimiter())
    assert sent_texts(chat, "NG-1") == []  # not before retry_after
    harness.clock.advance(11)
    await deliver_notifications(harness.app, harness.clock, MemoryLimiter())
    assert len(sent_texts(chat, "NG-1")) == 1


async def test_403_stops_delivery_to_that_resident(harness: Harness) -> None:
    chat = harness.chat()
    await harness.link(chat)
    assert harness.app is not None
    await note(harness, chat, "NG-1")
    await note(harness, chat, "NG-2")
    harness.telegram.fail_next(SendMessage, Fault.FORBIDDEN)
    await deliver_notifications(harness.app, harness.clock, MemoryLimiter())
    harness.clock.advance(3600)
    await deliver_notifications(harness.app, harness.clock, MemoryLimiter())
    assert sent_texts(chat, "NG-") == []


async def test_quiet_hours_defer_all_but_urgent(harness: Harness) -> None:
    chat = harness.chat()
    await harness.link(chat)
    assert harness.app is not None
    harness.clock.now = harness.clock.now.replace(hour=23)
    await note(harness, chat, "NG-7")
    await note(harness, chat, "urgent-1", urgent=True)
    await deliver_notifications(harness.app, harness.clock, MemoryLimiter())
    assert sent_texts(chat, "NG-7") == []
    assert len(sent_texts(chat, "не прошёл три дня подряд")) == 1  # urgent goes out at night
    harness.clock.now = harness.clock.now.replace(hour=9) + timedelta(days=1)
    await deliver_notifications(harness.app, harness.clock, MemoryLimiter())
    assert len(sent_texts(chat, "NG-7")) == 1


async def test_a_rolled_back_notification_is_never_sent(harness: Harness) -> None:
    chat = harness.chat()
    await harness.link(chat)
    assert harness.app is not None
    async with harness.app.uow_factory() as uow:
        await uow.notifications.add_once(
            Notification(
                chat.chat_id,
                "report_status",
                {"report_id": "NG-9", "status": "in_work"},
                dedupe_key="NG-9",
            ),
            harness.clock(),
        )
        await uow.rollback()
    await deliver_notifications(harness.app, harness.clock, MemoryLimiter())
    assert sent_texts(chat, "NG-9") == []


async def test_muted_kinds_are_not_sent(harness: Harness) -> None:
    chat = harness.chat()
    await harness.link(chat)
    assert harness.app is not None
    await chat.press("Настройки")
    await chat.press("Ответы по обращениям")
    assert "❌ Ответы по обращениям" in chat.buttons
    await note(harness, chat, "NG-5")
    await deliver_notifications(harness.app, harness.clock, MemoryLimiter())
    assert sent_texts(chat, "NG-5") == []
