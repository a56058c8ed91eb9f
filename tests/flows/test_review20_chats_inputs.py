"""Review 20: the private-chat gate (`handlers.chats`), the catch-all input of every window
(`handlers.widgets.OtherInput`), unknown commands (`handlers.fallback.unknown_command`) and the
403 rule (`bot.unexpected._resident_gone`), tried as a resident, a support agent and an
attacker. Tests under «Was (review 20)» pinned a defect found here (fixed since); the others
pin behaviour that held."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiogram.exceptions import TelegramForbiddenError
from aiogram.methods import SendMessage

from bot.jobs import deliver_notifications, poll_reports
from bot.metrics import ERRORS
from bot.ratelimit import MemoryLimiter
from sandbox import SandboxServer
from sandbox.conversation import Conversation, Reply
from sandbox.telegram_double import Fault
from tests.contract.sandbox_client import FakeClock
from tests.flows.conftest import Harness, _harness, settings_for
from tests.flows.test_albums import shorten_debounce
from tests.flows.test_charity_points_meters import linked
from tests.flows.test_hostile_input import no_crash, press_again
from tests.flows.test_payments import bill_buttons
from tests.flows.test_reports import ARBAT_10, advance, photo, sent_report, start_pothole
from tests.flows.test_review19_bug_reports import (
    GROUP,
    GROUP_CHAT,
    STICKER,
    command,
    in_group,
    uin_step,
)

SUPPORT_CHAT = -1001234567890
STAFF = {"id": 500001, "is_bot": False, "first_name": "Ольга"}
PRIVATE_ONLY = "только в личном чате"
BUTTONS_ONLY = "Здесь нужно выбрать вариант кнопкой"
TOAST = "Я работаю только в личном чате. Откройте чат со мной и отправьте /start."
PASSED_ON = "Передали сотруднику"
DICE = {"dice": {"emoji": "🎲", "value": 3}}


@pytest.fixture
async def staffed(
    request: pytest.FixtureRequest, tmp_path: Path, sandbox: SandboxServer, clock: FakeClock
) -> AsyncIterator[Harness]:
    """A harness with the staff supergroup (a forum) configured and one administrator in it."""
    settings = settings_for(tmp_path, support_chat_id=SUPPORT_CHAT)
    async for harness in _harness(settings, sandbox, clock, request):
        harness.telegram.register_chat(
            {"id": SUPPORT_CHAT, "type": "supergroup", "title": "Поддержка", "is_forum": True}
        )
        harness.telegram.set_member(SUPPORT_CHAT, STAFF, "administrator")
        yield harness


async def in_support(harness: Harness) -> tuple[Conversation, int]:
    """A linked resident who opened «Поддержка» and wrote once; their topic's thread."""
    chat = await linked(harness)
    await chat.press("Поддержка")
    assert PASSED_ON in (await chat.send("Вопрос про счёт за октябрь")).text
    [thread] = [t for t, name in harness.telegram.forum_topics[SUPPORT_CHAT].items() if "#" in name]
    return chat, thread


def topic(harness: Harness, thread: int) -> list[str]:
    return [
        m.text
        for m in harness.telegram.messages(SUPPORT_CHAT)
        if m.payload.get("message_thread_id") == thread
    ]


def staff_message(
    harness: Harness, content: dict[str, Any], thread: int | None = None
) -> dict[str, Any]:
    if thread is not None:
        content = {**content, "message_thread_id": thread, "is_topic_message": True}
    return harness.telegram.incoming_message(SUPPORT_CHAT, STAFF, content)


async def staff_writes(
    harness: Harness, content: dict[str, Any], thread: int | None = None
) -> Reply:
    staff = harness.chat(user_id=STAFF["id"], first_name=STAFF["first_name"])
    return await staff.feed({"message": staff_message(harness, content, thread)})


def staff_group_texts(harness: Harness) -> list[str]:
    return [m.text for m in harness.telegram.messages(SUPPORT_CHAT)]


# ---- staff: the support dashboard end to end, behind the new gate ------------------------------


async def test_staff_answer_stats_and_card_work_from_the_topic(staffed: Harness) -> None:
    harness = staffed
    chat, thread = await in_support(harness)
    [copied] = [
        m
        for m in harness.telegram.messages(SUPPORT_CHAT)
        if m.payload.get("message_thread_id") == thread
    ]
    # a reply to the bot's copy of the resident's message, in the resident's topic
    answer = {"text": "Счёт придёт до 5-го числа.", "reply_to_message": dict(copied.payload)}
    reply = await staff_writes(harness, answer, thread)
    assert [e.chat_id for e in reply.elsewhere] == [chat.chat_id]
    assert chat.last_text == "Счёт придёт до 5-го числа." and chat.buttons == ["✏️ Ответить"]

    [stats] = [
        e.message for e in (await staff_writes(harness, command("/stats"), thread)).elsewhere
    ]
    assert stats is not None and "привязанных жителей: 1" in stats.text
    [card] = [
        e.message for e in (await staff_writes(harness, command("/resident"), thread)).elsewhere
    ]
    assert card is not None and "Житель #" in card.text and "Мария В." in card.text
    assert card.payload.get("message_thread_id") == thread  # answered in the topic

    await chat.press("Ответить")
    assert PASSED_ON in (await chat.send("Спасибо!")).text
    assert topic(harness, thread)[-1] == "Спасибо!"
    assert not any(PRIVATE_ONLY in text for text in staff_group_texts(harness))


@pytest.mark.parametrize(
    "text", ["/start", "/start@resident_console_bot", "/help", "/stats@some_other_bot"]
)
async def test_no_command_of_staff_in_the_supergroup_is_answered_private_only(
    staffed: Harness, text: str
) -> None:
    harness = staffed
    chat, thread = await in_support(harness)
    before = chat.history
    for where in (None, thread):  # «General» and the resident's topic
        reply = await staff_writes(harness, command(text), where)
        no_crash(reply)
        assert reply.events == (), reply.texts
    assert chat.history == before  # a command is never passed on to the resident
    assert not any(PRIVATE_ONLY in text for text in staff_group_texts(harness))


@pytest.mark.parametrize("content", [{"text": "Коллеги, кто возьмёт тему?"}, STICKER])
async def test_staff_talk_in_general_is_silence(staffed: Harness, content: dict[str, Any]) -> None:
    harness = staffed
    chat, _thread = await in_support(harness)
    before = chat.history
    reply = await staff_writes(harness, content)
    assert reply.events == () and chat.history == before


# Found: `on_staff_message` drops any staff text that starts with «/», not only commands
# Was (review 20): a staff reply starting with «/» that is no command («/ подождите») is dropped
async def test_a_staff_reply_starting_with_a_slash_reaches_the_resident(
    staffed: Harness,
) -> None:
    harness = staffed
    chat, thread = await in_support(harness)
    await staff_writes(harness, {"text": "/ подождите минуту, уточняю"}, thread)
    assert chat.last_text == "/ подождите минуту, уточняю"


# Was (review 20): a staff album in a resident's topic reaches the resident as its first part only
async def test_a_staff_album_reaches_the_resident_whole(staffed: Harness) -> None:
    harness = staffed
    shorten_debounce(harness)
    chat, thread = await in_support(harness)
    parts = [
        staff_message(
            harness,
            {"photo": harness.telegram.register_photo(photo(n)), "media_group_id": "staff-1"},
            thread,
        )
        for n in (10, 20, 30)
    ]
    staff = harness.chat(user_id=STAFF["id"], first_name=STAFF["first_name"])
    before = len(harness.telegram.messages(chat.chat_id))
    await asyncio.gather(*(staff.feed({"message": part}) for part in parts))
    got = harness.telegram.messages(chat.chat_id)[before:]
    assert [m.content_type for m in got] == ["photo", "photo", "photo"]


# ---- the resident in «Поддержка» -----------------------------------------------------------


# Was (review 20): in support a text starting with «/» that is no command is not passed on and is
# answered «выберите вариант кнопкой»
@pytest.mark.parametrize("text", ["/ лифт не работает третий день", "/дом 5 — нет воды"])
async def test_a_support_message_starting_with_a_slash_reaches_staff(
    staffed: Harness, text: str
) -> None:
    harness = staffed
    chat, thread = await in_support(harness)
    reply = await chat.send(text)
    no_crash(reply)
    assert BUTTONS_ONLY not in reply.text, reply.texts
    assert topic(harness, thread)[-1] == text


# Was (review 20): the support window's catch-all says «выберите вариант кнопкой» though it takes
# text, photos and files (its input lives in support.build_router, unseen by explain_other_input)
async def test_something_support_cannot_pass_on_is_not_told_buttons_only(
    staffed: Harness,
) -> None:
    chat, _thread = await in_support(staffed)
    reply = await chat._send_content(DICE)
    no_crash(reply)
    assert reply.texts and BUTTONS_ONLY not in reply.text, reply.texts


async def test_an_unknown_command_in_support_is_said_and_support_stays_open(
    staffed: Harness,
) -> None:
    harness = staffed
    chat, thread = await in_support(harness)
    reply = await chat.send("/help")
    assert reply.texts[0].startswith("Такой команды у меня нет")
    assert len(reply.messages) == 2 and "Выйти из поддержки" in " ".join(chat.buttons)
    assert topic(harness, thread) == ["Вопрос про счёт за октябрь"]  # /help is not passed on
    await chat.send("И ещё: квитанция не пришла")
    assert topic(harness, thread)[-1] == "И ещё: квитанция не пришла"


# ---- the catch-all input ---------------------------------------------------------------------


# Found: OtherInput takes ContentType.ANY, so service messages of the private chat (the
# resident pins the step, turns on auto-delete) are answered as if the resident had sent them
# Was (review 20): a service message in the private chat (a pin, the auto-delete timer) is answered
# «Здесь нужен ответ текстом» and the step is sent again
async def test_service_messages_of_the_private_chat_are_not_answered(harness: Harness) -> None:
    chat = await uin_step(harness)
    step = chat.last_message
    assert step is not None
    for service in (
        {"pinned_message": dict(step.payload)},
        {"message_auto_delete_timer_changed": {"message_auto_delete_time": 86400}},
    ):
        reply = await chat._send_content(service)
        no_crash(reply)
        assert reply.messages == [], (service, reply.texts)


async def test_a_sticker_at_the_refute_photo_step_is_told_a_photo_is_needed(
    harness: Harness,
) -> None:
    chat, number = await sent_report(harness)
    assert harness.app is not None
    await advance(harness, number, to="answered", status_notes="Выполнено")
    await poll_reports(harness.app, harness.clock)
    await deliver_notifications(harness.app, harness.clock, MemoryLimiter())
    await chat.press("Не устранено")
    await chat.send("Яма на месте")
    assert "Добавьте фото" in chat.last_text
    reply = await chat._send_content(STICKER)
    assert reply.texts == [
        "Здесь нужна фотография — пришлите её или выберите вариант кнопкой ниже.",
        chat.last_text,
    ]
    assert "Добавьте фото" in chat.last_text
    assert "вернули в работу" in (await chat.send_photo(photo(30))).text


# Was (review 20): a photo sent as a file at «Не устранено» is told «пришлите её» (the resident
# did): not told to send it as a photo, as the report's photo step does
async def test_a_photo_as_a_file_at_the_refute_photo_step_is_told_to_send_it_as_a_photo(
    harness: Harness,
) -> None:
    chat, number = await sent_report(harness)
    assert harness.app is not None
    await advance(harness, number, to="answered", status_notes="Выполнено")
    await poll_reports(harness.app, harness.clock)
    await deliver_notifications(harness.app, harness.clock, MemoryLimiter())
    await chat.press("Не устранено")
    await chat.send("Яма на месте")
    reply = await chat.send_document(photo(40), "IMG_0001.jpg", "image/jpeg")
    no_crash(reply)
    assert "не файлом" in reply.text, reply.texts


async def test_photo_step_answers_an_unknown_command_once_and_still_takes_photos(
    harness: Harness,
) -> None:
    chat = await start_pothole(harness)
    await chat.send_location(*ARBAT_10)
    asking = chat.last_text
    reply = await chat.send("/help")
    assert len(reply.messages) == 2 and reply.texts[0].startswith("Такой команды у меня нет")
    assert chat.last_text == asking
    reply = await chat.send_location(*ARBAT_10)  # its own «not a photo» answer, no second one
    # the button the screen has before a photo (review 35e: it named «Дальше», not there yet)
    said = "Здесь нужны фото проблемы. Пришлите фото или нажмите «Пропустить»."
    assert reply.texts == [said, asking]
    assert "Фото добавлено: 1 из 5" in (await chat.send_photo(photo(50))).text


async def test_an_album_with_a_video_first_at_the_photo_step_is_answered_once(
    harness: Harness,
) -> None:
    shorten_debounce(harness)
    chat = await start_pothole(harness)
    await chat.send_location(*ARBAT_10)
    stored = chat.telegram.register_file(b"video", kind="video", mime_type="video/mp4")
    video = {
        "file_id": stored.file_id,
        "file_unique_id": stored.file_unique_id,
        "width": 640,
        "height": 480,
        "duration": 3,
    }
    first = chat._incoming({"video": video, "media_group_id": "mixed-v"})
    second = chat._incoming(
        {"photo": chat.telegram.register_photo(photo(10)), "media_group_id": "mixed-v"}
    )
    before = len(chat.history)
    await asyncio.gather(chat.feed({"message": first}), chat.feed({"message": second}))
    told = chat.history[before:]
    assert sum("не только фото" in text for text in told) == 1, told
    assert not any("Здесь нужн" in text and "Фото" not in text for text in told)
    assert not any("Фото добавлено" in text for text in told)


@pytest.mark.parametrize("text", ["/ лифт не работает", "/дом 5, второй подъезд"])
async def test_a_report_description_starting_with_a_slash_is_the_description(
    harness: Harness, text: str
) -> None:
    chat = await start_pothole(harness)
    await chat.send_location(*ARBAT_10)
    await chat.press("Пропустить")
    assert "Опишите проблему" in chat.last_text
    reply = await chat.send(text)
    no_crash(reply)
    assert "Такой команды" not in reply.text and f"Описание: {text}" in chat.last_text


# ---- commands ------------------------------------------------------------------------------


async def test_start_typed_in_capitals_points_to_start_and_keeps_the_step(
    harness: Harness,
) -> None:
    chat = await uin_step(harness)
    asking = chat.last_text
    reply = await chat.send("/START")
    assert "/start" in reply.texts[0] and chat.last_text == asking


# ---- groups ----------------------------------------------------------------------------------


async def test_every_button_of_a_linked_menu_pressed_in_a_group_gets_the_toast_only(
    harness: Harness,
) -> None:
    chat = await linked(harness)
    menu = chat.last_message
    assert menu is not None
    harness.telegram.register_chat(GROUP_CHAT)
    moved = {**dict(menu.payload), "chat": dict(GROUP_CHAT)}
    datas = [b.callback_data or "" for b in menu.buttons] + ["support:answer", "forged"]
    for data in datas:
        reply = await press_again(chat, moved, data)
        no_crash(reply)
        assert [a.text for a in reply.callback_answers] == [TOAST], data
        assert reply.messages == [] and reply.edits == [], data
    assert harness.telegram.messages(GROUP) == []
    await chat.press("Мои счета")  # the private screen is untouched
    assert "неоплаченных счетов" in chat.last_text


async def test_a_command_in_a_topic_of_another_forum_is_pointed_once_in_that_topic(
    harness: Harness,
) -> None:
    forum = {"id": -100777, "type": "supergroup", "title": "Форум жильцов", "is_forum": True}
    harness.telegram.register_chat(forum)
    neighbour = harness.chat(user_id=200002, first_name="Сосед")
    content = {**command("/start"), "message_thread_id": 5, "is_topic_message": True}
    message = harness.telegram.incoming_message(forum["id"], neighbour.user, content)
    reply = await neighbour.feed({"message": message})
    [pointer] = [e.message for e in reply.elsewhere]
    assert pointer is not None and PRIVATE_ONLY in pointer.text and pointer.buttons == []
    assert pointer.payload.get("message_thread_id") == 5


async def test_a_channel_post_forwarded_into_its_discussion_group_gets_no_menu(
    harness: Harness,
) -> None:
    harness.telegram.register_chat(GROUP_CHAT)
    channel = {"id": -100888, "type": "channel", "title": "Новости района"}
    service = {"id": 777000, "is_bot": False, "first_name": "Telegram"}
    content = {**command("/start"), "sender_chat": channel, "is_automatic_forward": True}
    message = harness.telegram.incoming_message(GROUP, service, content)
    neighbour = harness.chat(user_id=200002, first_name="Сосед")
    reply = await neighbour.feed({"message": message})
    no_crash(reply)
    shown = [e.message for e in reply.elsewhere if e.message is not None]
    assert all(m.buttons == [] for m in shown)
    assert not any("Здравствуйте" in m.text or "Привязать" in m.text for m in shown)


async def test_a_linked_residents_text_in_a_group_is_silence(harness: Harness) -> None:
    chat = await uin_step(harness)
    reply = await in_group(harness, chat, {"text": "18810136161108008161"})
    assert reply.events == ()
    assert "Введите УИН" in chat.last_text  # the private step did not take it


# Was (review 20): a press without a message (inline mode) is toasted «Вот главное меню», and no
# menu is shown anywhere
async def test_a_press_without_a_message_promises_no_menu(harness: Harness) -> None:
    chat = await linked(harness)
    menu = chat.last_message
    assert menu is not None
    chat.telegram.open_callback_query("inline-1")
    query = {
        "id": "inline-1",
        "from": dict(chat.user),
        "inline_message_id": "AAAAinline",
        "chat_instance": "inline",
        "data": menu.buttons[0].callback_data,
    }
    reply = await chat.feed({"callback_query": query})
    no_crash(reply)
    assert reply.messages == []
    assert not any("главное меню" in (a.text or "") for a in reply.callback_answers)


# ---- 403 ---------------------------------------------------------------------------------


async def test_a_403_for_the_staff_group_is_still_a_bot_error(staffed: Harness) -> None:
    harness = staffed
    await in_support(harness)
    harness.telegram.fail_next(
        SendMessage,
        Fault.FORBIDDEN,
        description="Forbidden: bot is not a member of the supergroup chat",
    )
    before = ERRORS._value.get()
    with pytest.raises(TelegramForbiddenError):
        await staff_writes(harness, command("/stats"))
    assert ERRORS._value.get() == before + 1


async def test_an_unknown_command_at_the_pay_step_keeps_the_payment(harness: Harness) -> None:
    chat = await linked(harness)
    await chat.press("Мои счета")
    await chat.press(bill_buttons(chat)[0])
    await chat.press("Оплатить выбранные")
    confirm = chat.last_text
    assert "К оплате" in confirm
    reply = await chat.send("/cancel")
    assert reply.texts[0].startswith("Такой команды у меня нет")
    assert reply.texts[1:] == [confirm]  # the pay step once, as it was
    assert "✅ Оплачено" in (await chat.press("Оплатить")).text


async def test_a_photo_at_a_typed_step_is_read_as_a_receipt_not_explained(
    harness: Harness,
) -> None:
    chat = await uin_step(harness)
    for reply in (
        await chat.send_photo(photo(70)),
        await chat.send_document(photo(80), "scan.jpg", "image/jpeg"),
    ):
        no_crash(reply)
        assert reply.texts and not any(t.startswith("Здесь нужен") for t in reply.texts)
    reply = await chat.send_document(b"%PDF-1.4", "bill.pdf", "application/pdf")
    assert reply.texts and not any(t.startswith("Здесь нужен") for t in reply.texts)
