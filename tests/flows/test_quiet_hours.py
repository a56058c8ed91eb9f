"""Quiet hours a resident sets in «Настройки»: shown, set by a preset or typed (bad input told,
nothing lost, forged buttons refused); notifications written in them wait and arrive as ONE
digest at their end; urgent ones come at once; a muted kind never comes; «off» sends at night."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from bot.jobs import deliver_notifications
from bot.ratelimit import MemoryLimiter
from domain.ports import Notification
from domain.quiet_hours import DEFAULT, QuietHours
from sandbox.conversation import Conversation
from storage.models import NotificationRow
from tests.flows.conftest import Harness
from tests.flows.test_autopay_and_outbox import note
from tests.flows.test_hostile_input import FORGED, no_crash, press_again

MSK = timezone(timedelta(hours=3))


async def quiet_of(harness: Harness, chat: Conversation) -> QuietHours:
    assert harness.app is not None
    async with harness.app.uow_factory() as uow:
        return await uow.notification_settings.quiet_hours(chat.chat_id)


async def deliver(harness: Harness) -> None:
    assert harness.app is not None
    await deliver_notifications(harness.app, harness.clock, MemoryLimiter())


async def test_quiet_hours_set_to_23_08_hold_night_notes_for_one_morning_digest(
    harness: Harness,
) -> None:
    chat = harness.chat()
    await harness.link(chat)
    assert harness.app is not None
    harness.clock.now = datetime(2026, 11, 24, 12, 0, tzinfo=MSK)
    await chat.press("Настройки")
    assert "Тихие часы: 22:00–09:00" in chat.last_text
    await chat.press("Тихие часы")
    screen = chat.last_message
    assert screen is not None and "23:00–08:00" in chat.buttons and "00:00–07:00" in chat.buttons
    payload = dict(screen.payload)
    [preset] = [b for row in screen.keyboard for b in row if b.text == "23:00–08:00"]
    data = preset.callback_data or ""
    assert "1380-480" in data
    for forged in (data.replace("1380-480", "600-601"), data.replace("1380-480", "off:1")):
        reply = await press_again(chat, payload, forged)
        no_crash(reply)
        answers = [a.text or "" for a in reply.callback_answers]
        assert len(answers) == 1 and answers[0].startswith(FORGED), (forged, answers)
    assert await quiet_of(harness, chat) == DEFAULT  # nothing changed

    for typed, told in (
        ("25:00-08:00", "Такого времени нет"),
        ("23:00–23:00", "совпадают"),
        ("ё" * 5000, "Не понял время"),
        ("1e5", "Не понял время"),
        ("23²:00-08:00", "Не понял время"),
        ("<b>23:00</b> & 08:00", "Не понял время"),
    ):
        reply = await chat.send(typed)
        no_crash(reply)
        assert told in reply.text, typed
        assert "Выберите время или напишите своё" in chat.last_text  # still on the screen
    assert await quiet_of(harness, chat) == DEFAULT

    await chat.send("23:00–08:00")
    assert "Тихие часы: 23:00–08:00" in chat.last_text
    await chat.press("Результаты автоплатежей")  # a kind muted
    assert "❌ Результаты автоплатежей" in chat.buttons

    harness.clock.now = datetime(2026, 11, 24, 22, 30, tzinfo=MSK)  # not quiet for her now
    await note(harness, chat, "NG-0")
    await deliver(harness)
    assert sum("NG-0" in t for t in chat.history) == 1

    harness.clock.now = datetime(2026, 11, 24, 23, 30, tzinfo=MSK)
    for key in ("NG-1", "NG-2", "NG-3"):
        await note(harness, chat, key)
    async with harness.app.uow_factory() as uow:
        await uow.notifications.add_once(
            Notification(
                chat.chat_id,
                "autopay_paid",
                {"kind": "fixed", "fund_name": "Фонд тишины", "amount": 100, "receipt": "R-1"},
                dedupe_key="muted-1",
            ),
            harness.clock(),
        )
        await uow.commit()
    await note(harness, chat, "urgent-1", urgent=True)
    before = len(chat.history)
    await deliver(harness)
    assert len(chat.history) == before + 1  # the urgent one, at once
    assert "не прошёл три дня подряд" in chat.last_text

    harness.clock.now = datetime(2026, 11, 25, 7, 59, tzinfo=MSK)
    await deliver(harness)
    assert len(chat.history) == before + 1

    harness.clock.now = datetime(2026, 11, 25, 8, 0, tzinfo=MSK)
    await deliver(harness)
    await deliver(harness)
    assert len(chat.history) == before + 2  # ONE message
    digest = chat.last_text
    assert "Пока шли тихие часы, пришло 3 уведомления" in digest
    assert all(key in digest for key in ("NG-1", "NG-2", "NG-3"))
    assert digest.index("NG-1") < digest.index("NG-2") < digest.index("NG-3")
    assert not [t for t in chat.history if "Фонд тишины" in t]  # muted: never
    async with harness.app.engine.connect() as connection:
        rows = (
            await connection.execute(
                select(
                    NotificationRow.dedupe_key, NotificationRow.message_id, NotificationRow.status
                )
            )
        ).all()
    digested = {r.message_id for r in rows if r.dedupe_key in ("NG-1", "NG-2", "NG-3")}
    assert len(digested) == 1 and None not in digested  # every folded row: the digest's message
    assert {r.status for r in rows} == {"sent"}

    harness.clock.now = datetime(2026, 11, 25, 12, 0, tzinfo=MSK)
    await chat.press("Тихие часы")  # «Настройки» is still the screen with buttons
    reply = await chat.press("Выключить тихие часы")
    assert "Тихие часы: выключены" in reply.text  # the screen above the digest, edited
    harness.clock.now = datetime(2026, 11, 25, 23, 30, tzinfo=MSK)
    await note(harness, chat, "NG-4")
    await deliver(harness)
    assert sum("NG-4" in t for t in chat.history) == 1  # off: at once, at night
