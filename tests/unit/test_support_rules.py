"""Support's rules without I/O: what is masked before a resident's words reach the staff
channel, and how the in-process Bot API answers the forum and membership calls it relies on."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiogram import Bot
from aiogram.enums import ChatMemberStatus
from aiogram.exceptions import TelegramBadRequest

from domain.support import mask_personal
from sandbox.telegram_double import LocalTelegram, make_local_bot

STAFF_CHAT = -1001234567890


@pytest.mark.parametrize(
    "text",
    [
        "+7 916 123-45-67",
        "+7 (916) 123-45-67",
        "89161234567",
        "8 916 123 45 67",
        "+44 20 7946 0958",
        "4242 4242 4242 4242",
        "4242-4242-4242-4242",
        "4000000000000002",
        # without a prefix, as residents write them
        "9161234567",
        "916-123-45-67",
        "(916) 123-45-67",
        "916.123.45.67",
        "495 123-45-67",
        # cards with dots, no-break or thin spaces
        "4242.4242.4242.4242",
        "4242\u00a04242\u00a04242\u00a04242",
        "4242\u20094242\u20094242\u20094242",
        # e-mails
        "ivan.petrov@mail.ru",
        "a+b@sub.example.com",
    ],
)
def test_phones_and_cards_are_masked(text: str) -> None:
    masked, changed = mask_personal(f"мой номер {text}, спасибо")
    assert (masked, changed) == ("мой номер •••, спасибо", True)


@pytest.mark.parametrize(
    "text",
    [
        "УИН 18810177200104519116",  # 20 digits: a UIN, not a card
        "4242 4242 4242 4241",  # fails the Luhn check
        "сумма 1 500,50 ₽ за 10.2026",
        "обращение NG-2026-001001",
        "лицевой счёт 40817810099910004312",
        "ИНН 7701234567",  # an organisation's INN: ten digits, not a 9xx/495/499 phone
        "код плательщика 1234567890",
        "дом 12, кв. 34, подъезд 3",
        "12.11.2026 в 10:30",
    ],
)
def test_other_numbers_are_left_alone(text: str) -> None:
    assert mask_personal(text) == (text, False)


@pytest.fixture
def telegram() -> LocalTelegram:
    return LocalTelegram()


@pytest.fixture
async def bot(telegram: LocalTelegram) -> AsyncIterator[Bot]:
    bot = make_local_bot(telegram)
    yield bot
    await bot.session.close()


@pytest.mark.parametrize("status", ["creator", "administrator", "member", "restricted", "kicked"])
async def test_get_chat_member_answers_the_status_set(
    bot: Bot, telegram: LocalTelegram, status: str
) -> None:
    telegram.set_member(STAFF_CHAT, {"id": 7, "is_bot": False, "first_name": "Ольга"}, status)
    member = await bot.get_chat_member(STAFF_CHAT, 7)
    assert member.status == ChatMemberStatus(status) and member.user.id == 7


async def test_a_stranger_has_left(bot: Bot) -> None:
    member = await bot.get_chat_member(STAFF_CHAT, 8)
    assert member.status == ChatMemberStatus.LEFT


async def test_topics_can_be_renamed_and_deleted(bot: Bot, telegram: LocalTelegram) -> None:
    topic = await bot.create_forum_topic(STAFF_CHAT, "Житель · #1")
    thread = topic.message_thread_id
    await bot.send_message(STAFF_CHAT, "вопрос", message_thread_id=thread)
    await bot.edit_forum_topic(STAFF_CHAT, thread, name="Мария В. · #1")
    assert telegram.forum_topics[STAFF_CHAT] == {thread: "Мария В. · #1"}
    with pytest.raises(TelegramBadRequest, match="TOPIC_NOT_MODIFIED"):
        await bot.edit_forum_topic(STAFF_CHAT, thread, name="Мария В. · #1")
    await bot.delete_forum_topic(STAFF_CHAT, thread)
    assert telegram.forum_topics[STAFF_CHAT] == {} and telegram.messages(STAFF_CHAT) == []
    with pytest.raises(TelegramBadRequest, match="message thread not found"):
        await bot.send_message(STAFF_CHAT, "ещё", message_thread_id=thread)
