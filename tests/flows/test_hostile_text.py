"""Text from outside the bot reaches the resident literally and never breaks a message: a QR
code's payee with `<` and `&`, a city answer with `<`, a venue address written as a link, a
city answer of 3,000 characters, a payment history far over 4,096 characters. The Bot API
double is strict (bare `<`, `&` refused with 400 «can't parse entities»), so a refusal would
surface as an error here."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from bot.jobs import deliver_notifications, poll_reports
from bot.ratelimit import MemoryLimiter
from sandbox.conversation import Conversation
from sandbox.payments_api import PAYMENTS_KEY
from sandbox.telegram_double import ChatMessage, utf16_len
from tests.flows.conftest import Harness
from tests.flows.test_receipt_photo import epd_qr, linked, receipt_photo
from tests.flows.test_reports import ARBAT_10, advance, photo, start_pothole
from tests.money_text import nb

PAYEE = "ООО <Ромашка> & Ко"
EVIL_ADDRESS = '<a href="https://evil.example">x</a>'
GENERIC = "Что-то пошло не так"


def foreign_links(message: ChatMessage) -> list[Any]:
    entities = message.payload.get("entities") or message.payload.get("caption_entities") or []
    return [e for e in entities if e["type"] == "text_link" or "evil.example" in str(e)]


def assert_clean(chat: Conversation) -> None:
    """Nothing refused (it would have been «Что-то пошло не так»), no link from outside, no
    message over Telegram's limit, no Fluent error mark."""
    for message in chat.messages:
        assert GENERIC not in message.text, message.text[:200]
        assert "{???}" not in message.text
        assert foreign_links(message) == [], message.text[:200]
        assert utf16_len(message.text) <= 4096
        assert "&lt;" not in message.text and "&amp;" not in message.text  # never twice


async def test_a_payee_with_markup_characters_is_shown_and_paid(harness: Harness) -> None:
    chat = await linked(harness)
    reply = await chat.send_photo(receipt_photo(epd_qr(Name=PAYEE)), width=900, height=600)
    assert f"Получатель: {PAYEE}" in reply.text
    await chat.press("Оплатить")
    assert f"Получатель: {PAYEE}" in chat.last_text
    await chat.press(nb("Оплатить 8 124,50 ₽"))
    assert "✅ Оплачено" in chat.last_text
    assert_clean(chat)


async def _report_at(chat: Conversation, harness: Harness) -> str:
    await chat.send_venue(*ARBAT_10, title="x", address=EVIL_ADDRESS)
    assert "Пришлите фото" in chat.last_text
    await chat.send_photo(photo())
    await chat.press("Дальше")
    await chat.send("Глубокая яма & <b>опасно</b>")
    review = chat.last_text
    # (the description goes to the city without HTML: domain.reports turns < > into ‹ ›)
    assert EVIL_ADDRESS in review and "Глубокая яма & ‹b›опасно‹/b›" in review
    reply = await chat.press("Отправить")
    return reply.text.split("№ ")[1].split()[0]


@pytest.mark.markup_in_values
async def test_a_venue_address_written_as_a_link_stays_text(harness: Harness) -> None:
    chat = await start_pothole(harness)
    number = await _report_at(chat, harness)
    assert_clean(chat)
    # Another resident at the same place sees the first one's address in the duplicate hint.
    other = harness.chat(user_id=100002, first_name="Олег")
    await harness.link(other, "demo-standard")
    await other.press("Сообщить о проблеме")
    await other.send("яма на дороге")
    await other.press("Яма на дороге")
    await other.send_location(*ARBAT_10)
    await other.press("Пропустить")
    await other.press("Пропустить")
    reply = await other.press("Отправить")
    assert "Рядом уже есть" in reply.text and number in reply.text
    assert EVIL_ADDRESS in reply.text  # the city keeps the address as it was sent
    assert_clean(other)
    # The first resident's card in «Мои обращения».
    await chat.send("/start")
    await chat.press("Мои обращения")
    await chat.press(number[-6:])
    assert "Обращение № " in chat.last_text
    assert_clean(chat)


@pytest.mark.markup_in_values
async def test_a_draft_with_a_hostile_address_can_be_resumed(harness: Harness) -> None:
    chat = await start_pothole(harness)
    await chat.send_venue(*ARBAT_10, title="x", address=EVIL_ADDRESS)
    await harness.restart()
    await chat.send("/start")
    await chat.press("Сообщить о проблеме")
    assert EVIL_ADDRESS in chat.last_text
    await chat.press("Продолжить")
    assert_clean(chat)


async def _sent(harness: Harness) -> tuple[Conversation, str]:
    chat = await start_pothole(harness)
    await chat.send_location(*ARBAT_10)
    await chat.press("Пропустить")
    await chat.press("Пропустить")
    reply = await chat.press("Отправить")
    return chat, reply.text.split("№ ")[1].split()[0]


async def _told(harness: Harness) -> None:
    assert harness.app is not None
    await poll_reports(harness.app, harness.clock)
    await deliver_notifications(harness.app, harness.clock, MemoryLimiter())


async def test_a_city_answer_with_a_less_than_sign(harness: Harness) -> None:
    chat, number = await _sent(harness)
    await advance(harness, number, to="answered", status_notes="глубина ямы < 5 см")
    await _told(harness)
    assert "глубина ямы < 5 см" in chat.last_text
    await chat.send("/start")
    await chat.press("Мои обращения")
    await chat.press(number[-6:])
    assert "Ответ города: глубина ямы < 5 см" in chat.last_text
    assert_clean(chat)


async def test_a_long_city_answer_can_be_read_in_full(harness: Harness) -> None:
    chat, number = await _sent(harness)
    answer = " ".join(f"слово{n} <{n}> &" for n in range(400))[:3000].strip()
    assert len(answer) >= 2900
    await advance(harness, number, to="answered", status_notes=answer)
    await _told(harness)
    told = chat.last_text
    assert answer[:100] in told and "…" in told and answer not in told  # shortened, not {???}
    reply = await chat.press("Показать полностью")
    pages = [reply.text or chat.last_text]
    while "›" in chat.buttons and chat.buttons.count("›") == 1:
        before = chat.last_text
        await chat.press("›")
        if chat.last_text == before:
            break
        pages.append(chat.last_text)
    whole = " ".join(pages)
    for word in answer.split():
        assert word in whole, word
    assert_clean(chat)


async def test_a_payment_history_over_one_message(harness: Harness) -> None:
    chat = await linked(harness)
    await chat.send_photo(receipt_photo(epd_qr(Name=PAYEE)), width=900, height=600)
    await chat.press("Оплатить")
    await chat.press(nb("Оплатить 8 124,50 ₽"))
    # The city's history: the same payment many times, each line long and hostile.
    book = harness.sandbox.app[PAYMENTS_KEY]
    (paid,) = list(book.payments.values())
    assert paid.receipt is not None
    title = ("Оплата <по> квитанции & " * 40)[:900]
    for n in range(12):
        line = dataclasses.replace(paid.receipt.lines[0], title=f"{n}: {title}")
        receipt = dataclasses.replace(paid.receipt, number=f"R-{n:04d}", lines=(line, line))
        copy = dataclasses.replace(paid, id=f"{paid.id}-{n}", receipt=receipt)
        book.payments[copy.id] = copy
    await chat.send("/start")
    await chat.press("История платежей")
    text = chat.last_text
    assert "Последние платежи" in text and GENERIC not in text
    seen = [text]
    while "›" in chat.buttons:
        before = chat.last_text
        await chat.press("›")
        if chat.last_text == before:
            break
        seen.append(chat.last_text)
    assert len(seen) > 1
    whole = "\n".join(seen)
    assert "Оплата <по> квитанции &" in whole
    assert_clean(chat)
