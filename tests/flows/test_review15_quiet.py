"""Review of issue 15 (quiet hours, the digest, meter-window reminders): what a resident, an
operator or an attacker can break. Each test names the behaviour that must hold."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from aiogram.exceptions import TelegramBadRequest
from aiogram.methods import SendMessage
from sqlalchemy import select

import bot.outbox
from bot.jobs import deliver_notifications, run_autopays
from bot.ratelimit import MemoryLimiter
from domain.linking import StaticSession
from domain.meter_reminders import MeterRound, remind_meter_windows
from domain.meters import format_reading
from sandbox.conversation import Conversation
from storage.models import NotificationRow
from tests.flows.conftest import Harness
from tests.flows.test_autopay_and_outbox import ledger, note
from tests.flows.test_charity_points_meters import at
from tests.flows.test_meter_readings import next_month

MSK = timezone(timedelta(hours=3))


async def deliver(harness: Harness) -> None:
    assert harness.app is not None
    await deliver_notifications(harness.app, harness.clock, MemoryLimiter())


async def donation(chat: Conversation, fund: int, day: int) -> None:
    """A monthly donation of 150 ₽ to the `fund`-th fund on `day` (from the main menu)."""
    await chat.press("Автоплатежи")
    await chat.press("Подключить автоплатёж")
    await chat.press("Пожертвование фонду")
    await chat.press(fund)
    await chat.press("Раз в месяц")
    await chat.send(str(day))
    await chat.send("150")
    await chat.press("•• 4242")
    reply = await chat.press("Подключить")
    assert "Автоплатёж подключён" in reply.text
    await chat.send("/start")


async def rows(harness: Harness) -> list[tuple[str, str]]:
    assert harness.app is not None
    async with harness.app.engine.connect() as connection:
        found = await connection.execute(
            select(NotificationRow.dedupe_key, NotificationRow.status).order_by(NotificationRow.id)
        )
        return [(r.dedupe_key, r.status) for r in found]


async def test_skipping_one_autopay_in_a_digest_keeps_the_other_items_skip_buttons(
    harness: Harness,
) -> None:
    """Two autopays due the same day: their reminders are written at night, held, and come as
    one digest with «1 · Пропустить этот раз» and «2 · Пропустить этот раз». Skipping the first
    must leave the second's button: the autopay card has no «skip», so with the keyboard gone
    the resident can no longer stop the second charge."""
    chat = harness.chat()
    await harness.link(chat)
    assert harness.app is not None
    harness.clock.now = datetime(2026, 11, 23, 12, 0, tzinfo=MSK)
    await donation(chat, 1, 25)
    await donation(chat, 2, 25)
    harness.clock.now = datetime(2026, 11, 24, 0, 0, 30, tzinfo=MSK)  # the day before
    await run_autopays(harness.app, harness.clock)
    await deliver(harness)
    assert not [t for t in chat.history if "спишем по автоплатежу" in t]  # quiet: held

    harness.clock.now = datetime(2026, 11, 24, 9, 0, tzinfo=MSK)
    await deliver(harness)
    digest = chat.last_message
    assert digest is not None and "Пока шли тихие часы, пришло 2" in chat.last_text
    assert "1 · Пропустить этот раз" in chat.buttons and "2 · Пропустить этот раз" in chat.buttons
    reply = await chat.press("1 · Пропустить этот раз", message_id=digest.message_id)
    assert "в этот раз не спишем" in reply.text
    digest_now = next(m for m in chat.messages if m.message_id == digest.message_id)
    labels = [b.text for row in (digest_now.keyboard or []) for b in row]
    assert "2 · Пропустить этот раз" in labels, labels  # the other autopay can still be skipped


async def test_an_autopay_reminder_reaches_the_resident_before_its_charge(
    harness: Harness,
) -> None:
    """«… спишем по автоплатежу … Пропустить этот раз» is the resident's chance to stop a
    charge. Quiet hours may hold it, but never past the charge itself: here the hours are
    23:00–11:00 (typed in «Настройки»), the autopay is set up at 23:30 for tomorrow, the
    reminder is written at once, held, and the charge at 10:00 comes first — the reminder and
    its dead «Пропустить» arrive an hour after the money is gone. (The same holds for a bill
    discovered at night and handed to an on-issue autopay: charged at 10:00 the next day, its
    notice held.)"""
    chat = harness.chat()
    await harness.link(chat)
    assert harness.app is not None
    harness.clock.now = datetime(2026, 11, 24, 12, 0, tzinfo=MSK)
    await chat.press("Настройки")
    await chat.press("Тихие часы")
    await chat.send("23:00–11:00")
    assert "Тихие часы: 23:00–11:00" in chat.last_text
    await chat.send("/start")

    harness.clock.now = datetime(2026, 11, 24, 23, 30, tzinfo=MSK)
    await donation(chat, 1, 25)
    await run_autopays(harness.app, harness.clock)  # the reminder: written, held
    await deliver(harness)
    harness.clock.now = datetime(2026, 11, 25, 10, 0, 5, tzinfo=MSK)
    await deliver(harness)  # the sender runs every second: whatever may go, went
    reminded = any("спишем по автоплатежу" in t for t in chat.history)
    await run_autopays(harness.app, harness.clock)
    charged = [c["amount"] for c in await ledger(harness)]
    assert reminded or not charged, "charged before the resident could read its reminder"


async def test_turning_quiet_hours_off_at_night_brings_the_held_notes_as_one_digest(
    harness: Harness,
) -> None:
    """Three notes held by the default 22:00–09:00; at 02:00 the resident turns the hours off
    (or moves them to 00:00–07:00 at 23:45): the quiet hours ended for them, so what they held
    arrives as ONE digest — not as a burst of separate messages, which is what «held»
    computed from the hours in force NOW (bot/outbox.py `_fold`, `Claimed.held`) gives."""
    chat = harness.chat()
    await harness.link(chat)
    assert harness.app is not None
    harness.clock.now = datetime(2026, 11, 24, 23, 30, tzinfo=MSK)
    for key in ("NG-1", "NG-2", "NG-3"):
        await note(harness, chat, key)
    await deliver(harness)
    before = len(chat.history)

    harness.clock.now = datetime(2026, 11, 25, 2, 0, tzinfo=MSK)
    await chat.press("Настройки")
    await chat.press("Тихие часы")
    await chat.press("Выключить тихие часы")
    assert "Тихие часы: выключены" in chat.last_text
    before = len(chat.history)
    for second in range(5):  # the sender's next ticks
        harness.clock.now = datetime(2026, 11, 25, 2, 0, 1 + 2 * second, tzinfo=MSK)
        await deliver(harness)
    new = chat.history[before:]
    assert [k for k, s in await rows(harness) if s != "sent"] == []
    assert len(new) == 1, new  # one digest, not three messages


async def test_a_digest_telegram_refuses_does_not_fail_every_note_folded_into_it(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Telegram refusing the digest (a 400: say one item's button or entity it will not take)
    must not dead-letter every notification folded into it: sent alone, each would have failed
    (or gone) by itself — «a refused one never jams the others». Today the digest's 400 fails
    all of them (bot/outbox.py `_attempt_one` → `_dead` for the head, `_write` fails every
    row of `result.rows`), and staff's dashboard hears of one dead letter, not three."""
    chat = harness.chat()
    await harness.link(chat)
    assert harness.app is not None
    harness.clock.now = datetime(2026, 11, 24, 23, 30, tzinfo=MSK)
    for key in ("NG-1", "NG-2", "NG-3"):
        await note(harness, chat, key)
    real_post = bot.outbox._post

    async def refusing(app, chat_id, prepared):  # type: ignore[no-untyped-def]
        if "Пока шли тихие часы" in prepared.text:
            raise TelegramBadRequest(
                SendMessage(chat_id=chat_id, text="x"), "Bad Request: BUTTON_DATA_INVALID"
            )
        return await real_post(app, chat_id, prepared)

    monkeypatch.setattr(bot.outbox, "_post", refusing)
    for second in range(5):
        harness.clock.now = datetime(2026, 11, 25, 9, 0, 2 * second, tzinfo=MSK)
        await deliver(harness)
    statuses = dict(await rows(harness))
    assert sum(any(k in t for t in chat.history) for k in ("NG-1", "NG-2", "NG-3")) >= 2, statuses
    assert list(statuses.values()).count("failed") <= 1, statuses


async def test_a_meter_read_before_the_held_reminder_goes_out_is_not_called_missing(
    harness: Harness,
) -> None:
    """The reminders' round starts at 00:00 on the 15th — inside the default quiet hours — so
    the reminder is written at night and held until 09:00. A resident who reads her meters at
    08:00 must not get, at 09:00, «Ещё не передано: Холодная вода …» for the meters she has
    just read (nothing looks at the reminder again before it is sent)."""
    assert harness.app is not None
    app = harness.app
    chat = harness.chat()
    await harness.link(chat, "demo-standard")  # cold and hot water
    # One day: `next_month` counts from the clock's today, so calling it again would move on
    # a month each time (the held reminder's window closed: a weaker check).
    night = next_month(harness, 15, hour=0, minute=5)
    await at(harness, night)
    async with app.uow_factory() as uow:
        written = await remind_meter_windows(uow, app.city, app.city, harness.clock(), MeterRound())
    assert written == 1
    await deliver(harness)
    assert not [t for t in chat.history if "Открыт приём показаний" in t]  # held

    await at(harness, night.replace(hour=8))  # she reads them before work
    resident = await harness.stored_resident(chat)
    assert resident is not None
    session = StaticSession(resident.tokens)
    for meter in await app.city.meters(session):
        value = (meter.last_reading.value if meter.last_reading else 0) + 1
        await app.city.submit_reading(
            session, f"k-{meter.id}", meter.id, format_reading(meter.kind, value)
        )
    assert all(m.submitted_this_period for m in await app.city.meters(session))

    await at(harness, night.replace(hour=9))
    await deliver(harness)
    stale = [t for t in chat.history if "Ещё не передано" in t]
    assert stale == [], stale
