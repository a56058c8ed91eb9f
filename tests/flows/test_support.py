"""«Поддержка»: a resident's messages land in a forum topic of their own in the staff
supergroup, a staff member's answer there reaches the resident's chat, only members of the
supergroup are heard, and the «Dashboard» topic gets each event staff must act on once —
without phones, residents' addresses, card data or tokens."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from aiogram.methods import GetChatMember, SendMessage, SendPhoto

from bot.jobs import deliver_notifications, post_daily_digest, run_autopays, support_dashboard
from bot.ratelimit import MemoryLimiter
from domain import support
from domain.ports import Notification
from domain.reports import Draft
from sandbox import SandboxServer
from sandbox.conversation import Conversation, Reply
from sandbox.telegram_double import ChatMessage, Fault
from tests.contract.sandbox_client import FakeClock
from tests.flows.conftest import LINKED_MENU, Harness, _harness, settings_for
from tests.flows.test_payments import bill_buttons
from tests.flows.test_reports import ARBAT_10, photo, start_pothole
from tests.money_text import nb

SUPPORT_CHAT = -1001234567890
STAFF_ID, MEMBER_ID, OUTSIDER_ID = 500001, 500002, 500003
MSK = timezone(timedelta(hours=3))
PHONE = "+7 916 123-45-67"  # what residents type in these tests


@pytest.fixture
async def support_harness(
    request: pytest.FixtureRequest, tmp_path: Path, sandbox: SandboxServer, clock: FakeClock
) -> AsyncIterator[Harness]:
    settings = settings_for(tmp_path, support_chat_id=SUPPORT_CHAT)
    async for harness in _harness(settings, sandbox, clock, request):
        telegram = harness.telegram
        telegram.register_chat(
            {"id": SUPPORT_CHAT, "type": "supergroup", "title": "Поддержка", "is_forum": True}
        )
        for user_id, name, status in (
            (STAFF_ID, "Ольга", "administrator"),
            (MEMBER_ID, "Пётр", "member"),
            (OUTSIDER_ID, "Чужой", "left"),
        ):
            telegram.set_member(
                SUPPORT_CHAT, {"id": user_id, "is_bot": False, "first_name": name}, status
            )
        yield harness


def person(harness: Harness, user_id: int, name: str) -> Conversation:
    """Someone in the supergroup (their own private chat is not used)."""
    return harness.chat(user_id=user_id, first_name=name)


async def in_group(
    harness: Harness, who: Conversation, text: str, thread: int | None = None
) -> Reply:
    """`who` writes in the supergroup: in a topic when `thread` is given, else in «General»."""
    content: dict[str, Any] = {"text": text}
    if text.startswith("/"):
        command = text.split()[0]
        content["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
    if thread is not None:
        content.update(message_thread_id=thread, is_topic_message=True)
    message = harness.telegram.incoming_message(SUPPORT_CHAT, who.user, content)
    return await who.feed({"message": message})


def topics(harness: Harness) -> dict[int, str]:
    return dict(harness.telegram.forum_topics[SUPPORT_CHAT])


def thread_of(harness: Harness, name_part: str) -> int:
    [thread] = [t for t, name in topics(harness).items() if name_part in name]
    return thread


def in_topic(harness: Harness, thread: int) -> list[ChatMessage]:
    return [
        m
        for m in harness.telegram.messages(SUPPORT_CHAT)
        if m.payload.get("message_thread_id") == thread
    ]


def dashboard(harness: Harness) -> list[str]:
    return [m.text for m in in_topic(harness, thread_of(harness, "Dashboard"))]


async def ask_support(chat: Conversation, text: str) -> Reply:
    if "Выйти из поддержки" not in chat.buttons:
        await chat.press("Поддержка")
    return await chat.send(text)


async def assert_no_personal_data(harness: Harness, chat: Conversation, text: str) -> None:
    resident = await harness.stored_resident(chat)
    assert resident is not None
    forbidden = [
        "Воронцова",
        "Мария",
        resident.masked_name,
        resident.city_account_id,
        resident.tokens.access_token,
        resident.tokens.refresh_token,
        str(chat.chat_id),
        "4242",
        "0002",
        "pm-full",
        "+7",
        "916",
    ]
    assert [word for word in forbidden if word in text] == [], text


# ---- the resident and their topic ---------------------------------------------------------


async def test_a_residents_messages_reach_one_topic_of_their_own(support_harness: Harness) -> None:
    harness = support_harness
    chat = harness.chat()
    await harness.link(chat)
    assert "💬 Поддержка" in chat.buttons
    await chat.press("Поддержка")
    assert "ответит сотрудник, здесь же, в этом чате" in chat.last_text

    reply = await chat.send("Здравствуйте! Не вижу счёт за октябрь.")
    assert "Передали сотруднику" in reply.text
    thread = thread_of(harness, "#")
    assert re.fullmatch(r"Мария В\. · #\d+", topics(harness)[thread])
    assert [m.text for m in in_topic(harness, thread)] == ["Здравствуйте! Не вижу счёт за октябрь."]

    await chat.send_photo(photo(), caption="Вот квитанция")
    await chat.send("И ещё вопрос")
    assert len(topics(harness)) == 2  # the resident's topic and the dashboard, nothing new
    texts = [(m.content_type, m.text) for m in in_topic(harness, thread)]
    assert texts[1:] == [("photo", "Вот квитанция"), ("text", "И ещё вопрос")]

    assert harness.app is not None
    async with harness.app.uow_factory() as uow:
        stored = await uow.support.by_thread(SUPPORT_CHAT, thread)
    assert stored is not None and stored.telegram_user_id == chat.chat_id

    reply = await chat.press("Выйти из поддержки")
    assert "Что сделаем?" in reply.text
    await chat.send("Это уже не в поддержку")
    assert len(in_topic(harness, thread)) == 3


async def test_an_unlinked_resident_is_named_resident_and_renamed_once_linked(
    support_harness: Harness,
) -> None:
    harness = support_harness
    chat = harness.chat()
    await chat.send("/start")
    assert chat.buttons == ["🔑 Привязать аккаунт mos.ru", "💬 Поддержка"]
    await ask_support(chat, "Как привязать аккаунт?")
    thread = thread_of(harness, "#")
    number = topics(harness)[thread].split("#")[1]
    assert topics(harness)[thread] == f"Житель · #{number}"

    await harness.link(chat)
    await ask_support(chat, "Получилось, спасибо")
    assert topics(harness)[thread] == f"Мария В. · #{number}"  # the same topic, renamed
    assert len(in_topic(harness, thread)) == 2


async def test_phones_cards_contacts_and_places_do_not_reach_the_channel(
    support_harness: Harness,
) -> None:
    harness = support_harness
    chat = harness.chat()
    await harness.link(chat)
    reply = await ask_support(chat, f"Звоните {PHONE}, карта 4242 4242 4242 4242")
    assert "скрыли" in reply.text
    thread = thread_of(harness, "Мария")
    [posted] = [m.text for m in in_topic(harness, thread)]
    assert posted == "Звоните •••, карта •••"

    refused = await chat.send_contact("+79161234567")
    # the window asks again, not «✅ Передали» right after «Это не передать» (review 27)
    assert "Это не передать" in refused.text and "Передали сотруднику" not in refused.text
    assert "Это не передать" in (await chat.send_location(*ARBAT_10)).text
    await chat.send_photo(photo(), caption="мой номер 8 916 123 45 67")
    texts = [m.text for m in in_topic(harness, thread)]
    assert texts == ["Звоните •••, карта •••", "мой номер •••"]
    await chat.send("УИН 18810177200104519116, счёт за октябрь")  # not a card, not a phone
    assert in_topic(harness, thread)[-1].text == "УИН 18810177200104519116, счёт за октябрь"


async def test_a_deleted_topic_is_made_again(support_harness: Harness) -> None:
    harness = support_harness
    assert harness.app is not None
    chat = harness.chat()
    await harness.link(chat)
    await ask_support(chat, "Первый вопрос")
    old = thread_of(harness, "Мария")
    await harness.app.bot.delete_forum_topic(SUPPORT_CHAT, old)  # staff cleaned up
    await chat.send("Второй вопрос")
    new = thread_of(harness, "Мария")
    assert new != old and [m.text for m in in_topic(harness, new)] == ["Второй вопрос"]
    staff = person(harness, STAFF_ID, "Ольга")
    await in_group(harness, staff, "Отвечаю в новой теме", thread=new)
    assert chat.last_text == "Отвечаю в новой теме"


# ---- staff --------------------------------------------------------------------------------------


async def test_a_staff_reply_in_the_topic_reaches_the_resident(support_harness: Harness) -> None:
    harness = support_harness
    chat = harness.chat()
    await harness.link(chat)
    await ask_support(chat, "Когда придёт счёт?")
    await chat.press("Выйти из поддержки")
    thread = thread_of(harness, "Мария")
    staff = person(harness, STAFF_ID, "Ольга")

    reply = await in_group(harness, staff, "Добрый день! Счёт придёт до 5-го числа.", thread)
    assert [e.chat_id for e in reply.elsewhere] == [chat.chat_id]
    assert chat.last_text == "Добрый день! Счёт придёт до 5-го числа."
    assert chat.buttons == ["✏️ Ответить"]
    assert len(in_topic(harness, thread)) == 1  # the reply is not echoed into the topic

    await chat.press("Ответить")
    assert "ответит сотрудник" in chat.last_text
    await chat.send("Спасибо!")
    assert in_topic(harness, thread)[-1].text == "Спасибо!"

    member = person(harness, MEMBER_ID, "Пётр")  # a plain member of the supergroup is staff too
    await in_group(harness, member, "Пожалуйста!", thread)
    assert chat.last_text == "Пожалуйста!"


async def test_the_supergroup_is_heard_only_from_members_and_only_in_residents_topics(
    support_harness: Harness,
) -> None:
    harness = support_harness
    chat = harness.chat()
    await harness.link(chat)
    await ask_support(chat, "Вопрос")
    thread = thread_of(harness, "Мария")
    before = chat.history
    outsider = person(harness, OUTSIDER_ID, "Чужой")
    staff = person(harness, STAFF_ID, "Ольга")

    reply = await in_group(harness, outsider, "Я не сотрудник, но отвечу", thread)
    assert reply.events == ()
    checked = harness.telegram.calls_of(GetChatMember)[-1]
    assert (checked.chat_id, checked.user_id) == (SUPPORT_CHAT, OUTSIDER_ID)
    assert (await in_group(harness, staff, "В общем чате")).events == ()
    assert (await in_group(harness, staff, "/start")).events == ()  # no menus in the group
    dashboard_thread = thread_of(harness, "Dashboard")
    assert (await in_group(harness, staff, "Заметка", dashboard_thread)).events == ()
    assert (await in_group(harness, staff, "/note для своих", thread)).events == ()
    assert chat.history == before


async def test_staff_commands_answer_members_and_nobody_else(support_harness: Harness) -> None:
    harness = support_harness
    chat = harness.chat()
    await harness.link(chat)
    await chat.press("Мои счета")
    await chat.press(next(b for b in chat.buttons if b[:1].isdigit()))
    await chat.press("Оплатить выбранные")
    paid = chat.last_text.split("К оплате")[1]
    assert "✅ Оплачено" in (await chat.press("Оплатить")).text
    await chat.send("/start")
    await ask_support(chat, "Вопрос")
    thread = thread_of(harness, "Мария")
    number = topics(harness)[thread].split("#")[1]
    staff = person(harness, STAFF_ID, "Ольга")
    member = person(harness, MEMBER_ID, "Пётр")
    outsider = person(harness, OUTSIDER_ID, "Чужой")

    assert (await in_group(harness, outsider, "/stats")).events == ()
    assert (await in_group(harness, outsider, f"/resident {number}")).events == ()
    assert (await in_group(harness, outsider, "/resident", thread)).events == ()
    harness.telegram.set_member(SUPPORT_CHAT, outsider.user, "kicked")
    assert (await in_group(harness, outsider, "/stats")).events == ()

    stats = (await in_group(harness, member, "/stats")).elsewhere[0].message
    assert stats is not None and stats.chat_id == SUPPORT_CHAT
    assert "привязанных жителей: 1" in stats.text and "оплат прошло: 1 на " in stats.text
    amount = stats.text.split("оплат прошло: 1 на ")[1].split("\n")[0]
    assert amount in paid and "отправлено: 0" in stats.text

    card = (await in_group(harness, staff, f"/resident {number}")).elsewhere[0].message
    assert card is not None
    assert f"Житель #{number}: Мария В." in card.text and "полная" in card.text
    assert datetime.now(MSK).strftime("%d.%m.%Y") in card.text
    assert "Обращений: 0, автоплатежей: 0" in card.text
    await assert_no_personal_data(harness, chat, card.text.replace("Мария В.", ""))

    in_thread = (await in_group(harness, staff, "/resident", thread)).elsewhere[0].message
    assert in_thread is not None and in_thread.text == card.text
    assert in_thread.payload.get("message_thread_id") == thread  # answered in the topic
    unknown = (await in_group(harness, staff, "/resident 99999")).elsewhere[0].message
    assert unknown is not None and "Жителя #99999 нет" in unknown.text
    usage = (await in_group(harness, staff, "/resident Мария")).elsewhere[0].message
    assert usage is not None and "/resident 42" in usage.text


# ---- the dashboard ------------------------------------------------------------------------------


async def test_a_new_report_is_posted_once_without_personal_data(
    support_harness: Harness,
) -> None:
    harness = support_harness
    assert harness.app is not None
    await support_dashboard(harness.app, harness.clock)
    assert dashboard(harness) == []
    chat = await start_pothole(harness)
    await chat.send_location(*ARBAT_10)
    await chat.send_photo(photo())
    await chat.press("Дальше")
    await chat.send(f"Яма у подъезда, звоните {PHONE}")
    reply = await chat.press("Отправить")
    number = reply.text.split("№ ")[1].split()[0]

    await deliver_notifications(harness.app, harness.clock, MemoryLimiter())
    await deliver_notifications(harness.app, harness.clock, MemoryLimiter())
    [post] = dashboard(harness)
    assert f"Новое обращение «Наш город» № {number}" in post
    assert "Тема: Яма на дороге" in post and "Адрес: ул. Арбат, 10" in post
    assert "Карта: https://yandex.ru/maps/?pt=37.597,55.7513&z=17" in post
    assert "Фото: 1" in post and "подъезд" not in post
    await assert_no_personal_data(harness, chat, post)
    async with harness.app.uow_factory() as uow:  # the same report again: not a new event
        assert not await support.report_sent(uow, number, Draft(theme_name="x"), harness.clock())


async def test_a_failed_autopay_is_posted_once_without_card_data(
    support_harness: Harness,
) -> None:
    harness = support_harness
    assert harness.app is not None
    await support_dashboard(harness.app, harness.clock)
    chat = harness.chat()
    await harness.link(chat)
    harness.clock.now = datetime(2026, 11, 24, 12, 0, tzinfo=MSK)
    await chat.press("Автоплатежи")
    await chat.press("Подключить автоплатёж")
    await chat.press("Пожертвование фонду")
    await chat.press(1)
    await chat.press("Раз в месяц")
    await chat.send("25")
    await chat.send("150")
    await chat.press("•• 0002")  # the sandbox's card that is always declined
    assert "Автоплатёж подключён" in (await chat.press("Подключить")).text

    for day in (25, 26):
        harness.clock.now = datetime(2026, 11, day, 10, 0, 5, tzinfo=MSK)
        await run_autopays(harness.app, harness.clock)
        await deliver_notifications(harness.app, harness.clock, MemoryLimiter())
        assert dashboard(harness) == []  # a decline that will be retried is not news yet
    harness.clock.now = datetime(2026, 11, 27, 10, 0, 5, tzinfo=MSK)
    await run_autopays(harness.app, harness.clock)
    await run_autopays(harness.app, harness.clock)
    await deliver_notifications(harness.app, harness.clock, MemoryLimiter())
    await deliver_notifications(harness.app, harness.clock, MemoryLimiter())
    [post] = dashboard(harness)
    assert "не прошёл (2026-11), попыток: 3" in post and "банк отклонил списание" in post
    assert "Помощь фонду" in post and nb("150,00 ₽") in post
    await assert_no_personal_data(harness, chat, post)
    assert "не прошёл три дня подряд" in chat.last_text  # the resident heard too


async def test_a_dead_lettered_notification_is_posted_once(support_harness: Harness) -> None:
    harness = support_harness
    assert harness.app is not None
    await support_dashboard(harness.app, harness.clock)
    chat = harness.chat()
    await harness.link(chat)
    async with harness.app.uow_factory() as uow:
        await uow.notifications.add_once(
            Notification(
                chat.chat_id,
                "report_status",
                {"report_id": "NG-77", "status": "in_work", "theme": "Яма", "text": ""},
                dedupe_key="report:NG-77:1",
            ),
            harness.clock(),
        )
        await uow.commit()
    harness.telegram.fail_next(SendMessage, Fault.SERVER_ERROR, times=5)
    for _ in range(5):
        await deliver_notifications(harness.app, harness.clock, MemoryLimiter())
        assert dashboard(harness) == []
        harness.clock.advance(3600)
    assert harness.telegram.pending_faults(SendMessage) == 0
    await deliver_notifications(harness.app, harness.clock, MemoryLimiter())
    await deliver_notifications(harness.app, harness.clock, MemoryLimiter())
    [post] = dashboard(harness)
    assert "(«статус обращения») не доставлено. Попыток: 5." in post
    await assert_no_personal_data(harness, chat, post)
    assert not any("NG-77" in text for text in chat.history)


async def test_the_dashboard_is_made_once_and_forgotten_when_support_is_off(
    support_harness: Harness,
) -> None:
    harness = support_harness
    assert harness.app is not None
    await support_dashboard(harness.app, harness.clock)
    await support_dashboard(harness.app, harness.clock)
    assert list(topics(harness).values()) == ["Dashboard"]

    harness.settings = harness.settings.model_copy(update={"support_chat_id": None})
    await harness.restart()
    await support_dashboard(harness.app, harness.clock)
    chat = harness.chat()
    await harness.link(chat)
    assert chat.buttons == LINKED_MENU  # no «Поддержка» without a support chat
    await chat.press("Сообщить о проблеме")
    await chat.send("яма на дороге")
    await chat.press("Яма на дороге")
    await chat.send_location(*ARBAT_10)
    await chat.send_photo(photo())
    await chat.press("Дальше")
    await chat.press("Пропустить")
    assert "✅ Обращение № NG-" in (await chat.press("Отправить")).text
    await deliver_notifications(harness.app, harness.clock, MemoryLimiter())
    assert dashboard(harness) == []
    async with harness.app.uow_factory() as uow:
        assert await uow.support.dashboard() is None


async def test_the_morning_digest_is_posted_once_with_a_chart(support_harness: Harness) -> None:
    harness = support_harness
    assert harness.app is not None
    await support_dashboard(harness.app, harness.clock)
    chat = harness.chat()
    await harness.link(chat)
    await chat.press("Мои счета")
    await chat.press(bill_buttons(chat)[0])
    await chat.press("Оплатить выбранные")
    await chat.press("Оплатить")  # one payment today: it shows in tomorrow's digest

    tomorrow = harness.clock.now + timedelta(days=1)
    harness.clock.now = tomorrow.replace(hour=8, minute=59)
    assert not await post_daily_digest(harness.app, harness.clock)  # not before 09:00
    harness.clock.now = tomorrow.replace(hour=9, minute=5)
    assert await post_daily_digest(harness.app, harness.clock)
    assert not await post_daily_digest(harness.app, harness.clock)  # once a day
    await deliver_notifications(harness.app, harness.clock, MemoryLimiter())

    photos = [c for c in harness.telegram.calls if isinstance(c, SendPhoto)]
    assert len(photos) == 1 and photos[0].chat_id == SUPPORT_CHAT
    caption = str(photos[0].caption)
    assert "Новых привязок: 1" in caption and "Платежей: 1 на" in caption
    assert "Мария" not in caption and "4242" not in caption
    chart = photos[0].photo
    assert getattr(chart, "data", b"")[:8] == b"\x89PNG\r\n\x1a\n"


async def test_the_platform_going_away_and_back_is_posted_once_each(
    support_harness: Harness,
) -> None:
    from bot.jobs import watch_platform

    harness = support_harness
    assert harness.app is not None
    await support_dashboard(harness.app, harness.clock)
    await watch_platform(harness.app, harness.clock)  # reachable: nothing to say
    await harness.sandbox_call("PUT", "/sandbox/faults", json={"status": 503})
    await watch_platform(harness.app, harness.clock)
    await watch_platform(harness.app, harness.clock)  # still down: not said again
    await harness.sandbox_call("PUT", "/sandbox/faults", json={})
    await watch_platform(harness.app, harness.clock)
    for _ in range(2):  # one message a second to the group: the second goes a second later
        await deliver_notifications(harness.app, harness.clock, MemoryLimiter())
        harness.clock.advance(2)
    posts = dashboard(harness)
    assert sum("не отвечает" in p for p in posts) == 1
    assert sum("снова отвечает" in p for p in posts) == 1


async def test_a_spike_of_unanswered_payments_is_posted_once_an_hour(
    support_harness: Harness,
) -> None:
    from domain.payable import Payable
    from domain.payments import IntentStatus, PaymentIntent
    from domain.support import payment_errors_seen

    harness = support_harness
    assert harness.app is not None
    await support_dashboard(harness.app, harness.clock)
    now = harness.clock()
    async with harness.app.uow_factory() as uow:
        for n in range(5):
            await uow.payment_intents.add(
                PaymentIntent(
                    f"key-{n}",
                    1,
                    Payable.bills(["B-1"]),
                    100,
                    "pm",
                    now,
                    now,
                    status=IntentStatus.SUBMITTED,
                )
            )
        await uow.commit()
        assert await payment_errors_seen(uow, now)
        assert not await payment_errors_seen(uow, now)  # once within the hour
    await deliver_notifications(harness.app, harness.clock, MemoryLimiter())
    [post] = [p for p in dashboard(harness) if "Всплеск ошибок оплаты" in p]
    assert "5 платежей" in post
