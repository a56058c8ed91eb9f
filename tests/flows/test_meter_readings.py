"""Meter readings as residents type them: exponents, foreign digits and absurd values are refused
in plain words, and a reading sent by mistake is corrected without a second points credit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from domain.linking import StaticSession
from sandbox.conversation import Conversation
from tests.flows.conftest import Harness
from tests.flows.test_charity_points_meters import MSK, at, linked


def next_month(harness: Harness, day: int, hour: int = 10, minute: int = 0) -> datetime:
    """A Moscow moment in the month after the harness's today. The sandbox seeds readings for
    the periods before today's window, so next month's period has none yet."""
    today = harness.clock.now.astimezone(MSK)
    index = today.year * 12 + today.month  # next month, months counted from year 0
    return datetime(index // 12, index % 12 + 1, day, hour, minute, tzinfo=MSK)


def period_of(moment: datetime) -> str:
    return f"{moment.month:02d}.{moment.year}"


async def in_the_window(harness: Harness) -> str:
    """The 20th of next month: the water and electricity windows are open. Returns the period."""
    moment = next_month(harness, 20)
    await at(harness, moment)
    return period_of(moment)


def everything_sent(harness: Harness) -> list[str]:
    """Every text and caption the bot sent or edited in, failed calls included."""
    texts: list[str] = []
    for call in harness.telegram.calls:
        for name in ("text", "caption"):
            value: Any = getattr(call, name, None)
            if isinstance(value, str):
                texts.append(value)
    return texts


async def points_balance(harness: Harness, chat: Conversation) -> int:
    resident = await harness.stored_resident(chat)
    assert resident is not None and harness.app is not None
    account = await harness.app.city.points(StaticSession(resident.tokens), 50)
    return account.balance


async def open_meter(chat: Conversation, name: str) -> float:
    """Open the meter's input; returns its last reading."""
    await chat.press("Показания счётчиков")
    await chat.press(name)
    return float(chat.last_text.split("Прошлое показание: ")[1].split()[0])


@pytest.mark.parametrize("typed", ["1e5000", "1e999999999", "1E5", "0x10", "１２３", "12²"])
async def test_an_exponent_or_a_strange_digit_is_refused_and_the_meter_still_works(
    harness: Harness, typed: str
) -> None:
    chat = await linked(harness)
    period = await in_the_window(harness)
    before = await points_balance(harness, chat)
    last = await open_meter(chat, "Холодная вода")

    reply = await chat.send(typed)

    assert "Не понял показание" in reply.text
    assert "цифрами" in reply.text and "123,456" in reply.text
    assert "Холодная вода" in chat.last_text  # still asking for this meter's reading
    reply = await chat.send(f"{last + 3.25:.3f}".replace(".", ","))
    assert f"за {period} принято" in reply.text and "+20 баллов" in reply.text
    assert await points_balance(harness, chat) == before + 20
    sent = everything_sent(harness)
    assert sent and not [text for text in sent if "{???}" in text or "{$" in text]
    assert not [text for text in sent if typed in text]  # never echoed back


async def test_an_absurd_or_negative_reading_is_refused_in_plain_words(harness: Harness) -> None:
    chat = await linked(harness)
    period = await in_the_window(harness)
    last = await open_meter(chat, "Электричество")

    too_large = await chat.send("1000000")
    negative = await chat.send(f"-{last:.0f}")
    fraction = await chat.send(f"{last:.0f},5")

    assert "не больше 999999 кВт·ч" in too_large.text
    assert "не бывает отрицательным" in negative.text
    assert "целым числом" in fraction.text
    value = int(last) + 1234
    reply = await chat.send(f"{value:,}".replace(",", " "))  # a space grouping thousands
    assert f"✅ Показание {value} кВт·ч за {period} принято" in reply.text


async def test_a_reading_is_corrected_once_and_earns_no_second_credit(harness: Harness) -> None:
    chat = await linked(harness)
    period = await in_the_window(harness)
    before = await points_balance(harness, chat)
    last = await open_meter(chat, "Горячая вода")
    wrong, right = f"{last + 45.5:.3f}", f"{last + 2.15:.3f}"

    reply = await chat.send(wrong)
    assert "очень много" in reply.text  # the typo is big enough to be asked about…
    reply = await chat.press("Да, всё верно")  # …and confirmed by mistake
    assert f"Показание {wrong} м³ за {period} принято" in reply.text
    assert "+20 баллов" in reply.text
    assert await points_balance(harness, chat) == before + 20

    await chat.press("Исправить показание")
    assert f"Передано за {period}: {wrong} м³" in chat.last_text
    same = await chat.send(wrong)
    assert "то же показание" in same.text
    below = await chat.send(f"{last - 1:.3f}")
    assert "меньше прошлого" in below.text  # the platform checks it against the last period
    assert "Напишите верное показание" in chat.last_text  # still correcting
    reply = await chat.send(right.replace(".", ","))

    assert f"✅ Показание исправлено: {right} м³ за {period}" in reply.text
    assert "без баллов" in reply.text and "+20" not in reply.text
    assert await points_balance(harness, chat) == before + 20
    await chat.press("‹ Назад")
    assert f"{right} м³ за {period}" in chat.last_text
    assert "исправить можно до 03." in chat.last_text


async def test_a_second_reading_is_not_sent_without_the_correction_button(
    harness: Harness,
) -> None:
    chat = await linked(harness)
    period = await in_the_window(harness)
    before = await points_balance(harness, chat)
    last = await open_meter(chat, "Холодная вода")
    first = f"{last + 4:.3f}"
    await chat.send(first)
    await chat.press("‹ Назад")
    await chat.press("Холодная вода")
    assert f"уже передано — {first} м³" in chat.last_text
    assert "✏️ Исправить показание" in chat.buttons

    reply = await chat.send(f"{last + 5:.3f}")

    assert "нажмите «Исправить показание»" in reply.text
    await chat.press("‹ Назад")
    assert f"{first} м³ за {period}" in chat.last_text  # unchanged
    assert await points_balance(harness, chat) == before + 20


async def test_a_correction_after_the_window_closed_is_refused(harness: Harness) -> None:
    chat = await linked(harness)
    await at(harness, next_month(harness, 26, 23))  # electricity's last evening
    last = await open_meter(chat, "Электричество")
    await chat.send(f"{last + 60:.0f}")
    assert "принято" in chat.last_text
    closed = next_month(harness, 27, 0, 30)
    await at(harness, closed)
    index = closed.year * 12 + closed.month  # the month after, counted from year 0
    opens = f"15.{index % 12 + 1:02d}.{index // 12}"

    await chat.press("Исправить показание")

    assert f"откроется {opens}" in chat.last_text
    reply = await chat.send(f"{last + 61:.0f}")
    assert f"откроется {opens}" in reply.text
