"""Meter-window reminders: on the 15th, when the water window opens, one reminder to each
resident with a meter lacking this period's reading — none to the others, never twice (a
second round, a second scheduler), none before the window; its button opens «Счётчики»."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from domain.errors import CityUnavailable
from domain.linking import StaticSession
from domain.meter_reminders import METER_WINDOW, MeterRound, remind_meter_windows
from domain.meters import format_reading
from tests.flows.conftest import Harness
from tests.flows.test_charity_points_meters import MSK, at, linked
from tests.flows.test_hostile_input import FORGED, no_crash, press_again
from tests.flows.test_meter_readings import next_month
from tests.flows.test_quiet_hours import deliver


async def test_the_window_opening_reminds_each_resident_with_a_meter_to_read_once(
    harness: Harness,
) -> None:
    assert harness.app is not None
    full, standard, simple = (harness.chat(user_id=100001 + n) for n in range(3))
    await harness.link(full, "demo-full")  # cold, hot water and electricity
    await harness.link(standard, "demo-standard")  # cold and hot water
    await harness.link(simple, "demo-simple")  # no meters
    app = harness.app

    async def round_(rounds: MeterRound) -> int:
        async with app.uow_factory() as uow:
            return await remind_meter_windows(uow, app.city, app.city, harness.clock(), rounds)

    await at(harness, next_month(harness, 10, hour=12))  # no window open
    assert await round_(MeterRound()) == 0

    await at(harness, next_month(harness, 15, hour=0, minute=5))  # the windows open
    resident = await harness.stored_resident(standard)
    assert resident is not None
    session = StaticSession(resident.tokens)
    for meter in await app.city.meters(session):  # she reads hers at once
        value = (meter.last_reading.value if meter.last_reading else 0) + 1
        await app.city.submit_reading(
            session, f"k-{meter.id}", meter.id, format_reading(meter.kind, value)
        )

    first, second = MeterRound(), MeterRound()  # two schedulers
    written = await round_(first) + await round_(second) + await round_(first)
    assert written == 1
    harness.clock.now += timedelta(days=1)  # the next day's round: nothing again
    assert await round_(first) == 0

    harness.clock.now = harness.clock.now.replace(hour=12)
    await deliver(harness)
    reminders = [t for t in full.history if "Открыт приём показаний" in t]
    assert len(reminders) == 1
    period = harness.clock.now.astimezone(MSK).strftime("%m.%Y")
    text = reminders[0]
    assert f"за {period}" in text
    assert "Холодная вода" in text and "Горячая вода" in text and "Электричество" in text
    assert not [t for t in standard.history + simple.history if "Открыт приём показаний" in t]

    message = full.last_message
    assert message is not None
    payload = dict(message.payload)
    reply = await press_again(full, payload, "mw:forged")
    no_crash(reply)
    assert next(a.text or "" for a in reply.callback_answers).startswith(FORGED)
    reply = await full.press("Передать показания")
    no_crash(reply)
    assert "Ваши счётчики" in full.last_text


async def test_a_muted_meter_reminder_never_comes(harness: Harness) -> None:
    assert harness.app is not None
    chat = await linked(harness, "demo-full")
    await chat.press("Настройки")
    await chat.press("Напоминания о показаниях счётчиков")
    assert "❌ Напоминания о показаниях счётчиков" in chat.buttons
    await at(harness, next_month(harness, 15, hour=12))
    async with harness.app.uow_factory() as uow:
        written = await remind_meter_windows(
            uow, harness.app.city, harness.app.city, harness.clock(), MeterRound()
        )
    assert written == 1
    await deliver(harness)
    assert not [t for t in chat.history if "Открыт приём показаний" in t]
    assert METER_WINDOW == "meter_window"


async def test_a_held_reminder_names_only_the_meters_still_unread(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Written at 00:05 (quiet hours), held until 09:00, checked with the city again then:
    cold water read at 08:00 is no longer named, hot water and electricity are. A second
    resident's city does not answer at 09:00: her reminder goes as it was written."""
    assert harness.app is not None
    app = harness.app
    full, other = harness.chat(user_id=100001), harness.chat(user_id=100002)
    await harness.link(full, "demo-full")  # cold, hot water and electricity
    await harness.link(other, "demo-standard")  # cold and hot water
    night = next_month(harness, 15, hour=0, minute=5)  # once: it counts from the clock's today
    await at(harness, night)
    async with app.uow_factory() as uow:
        assert await remind_meter_windows(uow, app.city, app.city, harness.clock(), MeterRound())
    await deliver(harness)
    assert not [t for t in full.history + other.history if "Открыт приём показаний" in t]

    await at(harness, night.replace(hour=8))
    resident = await harness.stored_resident(full)
    assert resident is not None
    session = StaticSession(resident.tokens)
    cold = next(m for m in await app.city.meters(session) if m.kind.value == "cold_water")
    value = (cold.last_reading.value if cold.last_reading else 0) + 1
    await app.city.submit_reading(session, "k-cold", cold.id, format_reading(cold.kind, value))

    real_meters = app.city.meters

    async def meters(session: Any) -> Any:
        if getattr(session, "resident", None) and session.resident.telegram_user_id == 100002:
            raise CityUnavailable("down")
        return await real_meters(session)

    monkeypatch.setattr(app.city, "meters", meters)
    await at(harness, night.replace(hour=9))
    await deliver(harness)
    [text] = [t for t in full.history if "Открыт приём показаний" in t]
    assert "Холодная вода" not in text
    assert "Горячая вода" in text and "Электричество" in text
    [text] = [t for t in other.history if "Открыт приём показаний" in t]
    assert "Холодная вода" in text and "Горячая вода" in text
