"""Public bug reports of other Telegram bots (aiogram 3, aiogram-dialog, python-telegram-bot and
the Bot API itself), replayed against this bot through the flow harness. Each test names the
thread it replays. Tests under «Was (review 19)» pinned a defect found here (fixed since); the
others pin behaviour that held."""

from __future__ import annotations

from typing import Any

import pytest
from aiogram.exceptions import TelegramForbiddenError

from bot.metrics import ERRORS
from sandbox.conversation import Conversation, Reply
from tests.flows.conftest import LINKED_MENU, STALE, START_LINK, Harness
from tests.flows.test_charity_points_meters import linked, open_first_fund
from tests.flows.test_hostile_input import no_crash, press_again
from tests.flows.test_hostile_text import _sent, _told
from tests.flows.test_reports import advance

UIN = "18810136161108008161"
UIN_ASKED = "Введите УИН"
GROUP = -1001234567
GROUP_CHAT = {"id": GROUP, "type": "supergroup", "title": "Дом 5, чат жильцов"}
ANONYMOUS_ADMIN = {
    "id": 1087968824,
    "is_bot": True,
    "first_name": "Group",
    "username": "GroupAnonymousBot",
}

STICKER = {
    "sticker": {
        "file_id": "sticker-1",
        "file_unique_id": "sticker-1u",
        "type": "regular",
        "width": 512,
        "height": 512,
        "is_animated": False,
        "is_video": False,
    }
}
VOICE = {"voice": {"file_id": "voice-1", "file_unique_id": "voice-1u", "duration": 3}}
LOCATION = {"location": {"latitude": 55.7558, "longitude": 37.6173}}
NOT_TEXT = {"sticker": STICKER, "voice": VOICE, "location": LOCATION}


def command(text: str) -> dict[str, Any]:
    name = text.split(maxsplit=1)[0]
    return {"text": text, "entities": [{"type": "bot_command", "offset": 0, "length": len(name)}]}


async def uin_step(harness: Harness) -> Conversation:
    chat = await linked(harness, "demo-standard")
    await chat.press("Добавить счёт по УИН")
    assert UIN_ASKED in chat.last_text
    return chat


async def donation_step(harness: Harness) -> Conversation:
    chat = await linked(harness)
    await open_first_fund(chat)
    await chat.press("Другая сумма")
    return chat


async def in_group(harness: Harness, who: Conversation, content: dict[str, Any]) -> Reply:
    harness.telegram.register_chat(GROUP_CHAT)
    message = harness.telegram.incoming_message(GROUP, who.user, content)
    return await who.feed({"message": message})


def group_texts(harness: Harness) -> list[str]:
    return [message.text for message in harness.telegram.messages(GROUP)]


# ---- groups: privacy mode still delivers /start and commands to the bot -----------------------
# https://github.com/dgongut/docker-controller-bot/issues/25 (anyone can add a bot to a group
# and drive it there; anonymous admins write as GroupAnonymousBot)
# https://github.com/tdlib/telegram-bot-api/issues/667 (an anonymous admin's command comes from
# 1087968824, the press under the answer from the real user)


# Was (review 19): a linked resident's /start in a group shows their menu there, and «Мои счета»
# then lists their bills to the whole group
async def test_a_linked_residents_bills_are_never_shown_in_a_group(harness: Harness) -> None:
    chat = await linked(harness)
    await in_group(harness, chat, command("/start"))
    menus = [m for m in harness.telegram.messages(GROUP) if m.buttons]
    if menus:  # the menu reached the group: press «Мои счета» there, as the resident would
        menu = menus[-1]
        [bills] = [b for b in menu.buttons if "Мои счета" in b.text]
        reply = await press_again(chat, dict(menu.payload), bills.callback_data or "")
        no_crash(reply)
    shown = "\n".join(group_texts(harness))
    assert "Мария В." not in shown and "неоплаченных счетов" not in shown, shown
    assert "₽" not in shown


# Was (review 19): any /start or text in a group (an anonymous admin's too) gets the resident
# greeting, the fallback hint and a menu with «Привязать аккаунт» in the group
async def test_a_group_gets_no_resident_menu(harness: Harness) -> None:
    neighbour = harness.chat(user_id=200002, first_name="Сосед")
    await in_group(harness, neighbour, command("/start"))
    await in_group(harness, neighbour, {"text": "кто знает, когда дадут воду?"})
    admin = harness.chat(user_id=ANONYMOUS_ADMIN["id"], first_name="Group")
    admin.user = dict(ANONYMOUS_ADMIN)
    await in_group(harness, admin, {**command("/start"), "sender_chat": GROUP_CHAT})
    buttons = [b.text for m in harness.telegram.messages(GROUP) for b in m.buttons]
    assert not any("Привязать" in text for text in buttons), buttons
    assert not any("Я пока не понимаю" in text for text in group_texts(harness))


async def test_a_group_is_pointed_to_the_private_chat_once_per_command(harness: Harness) -> None:
    neighbour = harness.chat(user_id=200002, first_name="Сосед")
    me = harness.telegram.bot_user["username"]
    reply = await in_group(harness, neighbour, command("/start"))
    no_crash(reply)
    [pointer] = harness.telegram.messages(GROUP)
    assert "только в личном чате" in pointer.text and pointer.buttons == [], pointer.text
    for quiet in (
        {"text": "кто знает, когда дадут воду?"},  # the group's own talk (privacy mode off)
        command("/start@some_other_bot"),  # addressed to another bot
        {"sticker": STICKER["sticker"]},
    ):
        no_crash(await in_group(harness, neighbour, quiet))
        assert len(harness.telegram.messages(GROUP)) == 1, (quiet, group_texts(harness))
    no_crash(await in_group(harness, neighbour, command(f"/bills@{me}")))  # addressed to us
    assert (
        "только в личном чате" in group_texts(harness)[-1] and f"@{me}" in group_texts(harness)[-1]
    )


async def test_a_press_under_a_group_message_is_answered_with_a_toast(harness: Harness) -> None:
    chat = await linked(harness)
    menu = chat.last_message
    assert menu is not None
    [bills] = [b for b in menu.buttons if "Мои счета" in b.text]
    harness.telegram.register_chat(GROUP_CHAT)
    in_the_group = {**dict(menu.payload), "chat": dict(GROUP_CHAT)}  # an old message there
    reply = await press_again(chat, in_the_group, bills.callback_data or "")
    no_crash(reply)
    assert [a.text for a in reply.callback_answers] == [
        "Я работаю только в личном чате. Откройте чат со мной и отправьте /start."
    ]
    assert group_texts(harness) == [] and reply.edits == []


# Was (review 19): /start link-<nonce> pasted into a group finishes the link there: «Готово!
# Аккаунт привязан: <name>» and the menu go to the group, and the group's id is stored as the
# resident's chat
async def test_a_link_is_never_finished_in_a_group(harness: Harness) -> None:
    chat = harness.chat()
    await chat.send("/start")
    await chat.press("Привязать")
    match = START_LINK.search(await harness.login_page(chat))
    assert match
    reply = await in_group(harness, chat, command(f"/start {match.group(1)}"))
    no_crash(reply)
    assert not any("Аккаунт привязан" in text for text in group_texts(harness))
    resident = await harness.stored_resident(chat)
    assert resident is None or resident.chat_id == chat.chat_id


# ---- the resident blocked the bot while a screen was being shown -------------------------------
# https://github.com/aiogram/aiogram/issues/735 («Forbidden: bot was blocked by the user»)
# https://github.com/codex-team/codex.bot/issues/105


# Was (review 19): a 403 «bot was blocked by the user» on the resident's own update is logged as
# update.failed with a traceback and counted in bot_errors_total
async def test_a_resident_who_blocked_the_bot_mid_dialog_is_not_a_bot_error(
    harness: Harness,
) -> None:
    chat = await linked(harness)
    harness.telegram.block_chat(chat.chat_id)
    before = ERRORS._value.get()
    raised: BaseException | None = None
    try:
        await chat.press("Мои счета")
    except TelegramForbiddenError as error:  # the unexpected-error path re-raised it
        raised = error
    assert ERRORS._value.get() == before
    assert raised is None


# ---- something other than text where text is asked --------------------------------------------
# https://github.com/python-telegram-bot/python-telegram-bot/issues/30 (a sticker where text was
# expected); https://github.com/Tishka17/aiogram_dialog/issues/461 (an open dialog takes every
# message: what its input does not take is only shown the window again)


@pytest.mark.parametrize("kind", list(NOT_TEXT))
async def test_something_not_text_at_the_uin_step_keeps_the_step(
    harness: Harness, kind: str
) -> None:
    chat = await uin_step(harness)
    reply = await chat._send_content(NOT_TEXT[kind])
    no_crash(reply)
    assert UIN_ASKED in chat.last_text  # still the UIN step
    reply = await chat.send(UIN)
    assert "Нашли начисление" in reply.text


# Was (review 19): a sticker, voice or location at a typed step gets the same question again
# without a word on why (only typed text is ever explained)
@pytest.mark.parametrize("step", ["uin", "donation"])
async def test_something_not_text_at_a_typed_step_is_told_what_is_expected(
    harness: Harness, step: str
) -> None:
    chat = await (uin_step if step == "uin" else donation_step)(harness)
    asking = chat.last_text
    unexplained = []
    for kind, content in NOT_TEXT.items():
        reply = await chat._send_content(content)
        no_crash(reply)
        if not [text for text in reply.texts if text != asking]:
            unexplained.append(kind)
    assert unexplained == []


# ---- commands typed at a typed step ------------------------------------------------------------
# https://github.com/Tishka17/aiogram_dialog/issues/461 (the dialog's input takes the message)
# https://github.com/telegraf/telegraf/issues/317 (commands addressed to the bot)


# Was (review 19): an unknown /command at a typed step was read as the value: /cancel at the UIN
# step was told about «²» and digits of other alphabets, /help at an amount «Не понял сумму».
async def test_an_unknown_command_at_the_uin_step_is_not_read_as_the_value(
    harness: Harness,
) -> None:
    chat = await uin_step(harness)
    reply = await chat.send("/cancel")
    no_crash(reply)
    assert "«²»" not in reply.text and "УИН состоит из цифр" not in reply.text, reply.text
    assert "Такой команды у меня нет" in reply.text
    assert UIN_ASKED in chat.last_text  # the step came back below, as it was
    assert "Нашли начисление" in (await chat.send(UIN)).text


async def test_an_unknown_command_at_an_amount_is_not_read_as_the_value(
    harness: Harness,
) -> None:
    chat = await donation_step(harness)
    asking = chat.last_text
    reply = await chat.send("/help")
    no_crash(reply)
    assert "Не понял сумму" not in reply.text, reply.text
    assert "Такой команды у меня нет" in reply.text
    assert chat.last_text == asking


async def test_start_with_the_bots_name_works_at_a_typed_step(harness: Harness) -> None:
    chat = await uin_step(harness)
    reply = await chat.send("/start@resident_console_bot")
    no_crash(reply)
    assert "Здравствуйте" in reply.text and chat.buttons == LINKED_MENU


# ---- /start payloads -----------------------------------------------------------------------
# https://github.com/aiogram/aiogram/issues/480 (payloads beyond A-Z a-z 0-9 _ -)
# https://github.com/Desiders/telers/issues/167 (aiogram's 64-byte limit of a deep link)

HOSTILE_PAYLOADS = {
    "link, 80 characters": ("link-" + "A" * 80, "Ссылка для привязки не подошла"),
    "link, markup": ("link-<b>&amp;</b>", "Ссылка для привязки не подошла"),
    "link, unicode": ("link-привет🙂\u202e", "Ссылка для привязки не подошла"),
    "other, markup": ("ref<script>alert(1)</script>", "Здравствуйте"),
    "other, 300 characters": ("x" * 300, "Здравствуйте"),
}


@pytest.mark.markup_in_values
@pytest.mark.parametrize("case", list(HOSTILE_PAYLOADS))
async def test_a_hostile_start_payload_gets_a_sentence_and_the_menu(
    harness: Harness, case: str
) -> None:
    payload, expected = HOSTILE_PAYLOADS[case]
    chat = harness.chat()
    reply = await chat.send(f"/start {payload}")
    no_crash(reply)
    assert expected in reply.text
    assert "Привязать" in " ".join(chat.buttons)
    assert payload not in reply.text  # nothing of it is echoed


async def test_start_addressed_to_the_bot_with_a_link_payload_is_a_link(harness: Harness) -> None:
    chat = harness.chat()
    reply = await chat.send("/start@resident_console_bot link-does-not-exist")
    assert "Ссылка для привязки не подошла" in reply.text


# ---- updates the bot does not take --------------------------------------------------------
# https://github.com/python-botogram/botogram/issues/70 (crash on edited messages)
# https://github.com/aiogram/aiogram/issues/375 (channel posts: from_user None)
# https://github.com/Tishka17/aiogram_dialog/pull/468 (business_message through input widgets)


async def test_updates_the_bot_does_not_ask_for_are_left_alone(harness: Harness) -> None:
    assert harness.app is not None
    used = set(harness.app.dispatcher.resolve_used_update_types())
    # edited_message is asked for since review 27 (staff correcting a reply in a topic); a
    # resident's own edit is answered with one line (`handlers.edits`, review 35e), never
    # taken as a value: tests/flows/test_sent_report_told.py
    unasked = {"channel_post", "inline_query", "my_chat_member"}
    assert used.isdisjoint(unasked), used  # so Telegram never sends them
    chat = await linked(harness)
    bot_user = harness.telegram.bot_user
    private = harness.telegram.chat(chat.chat_id)
    channel = {"id": -100999, "type": "channel", "title": "Новости района"}
    stranger = {"id": 300003, "is_bot": False, "first_name": "Клиент"}
    for update in (
        {"inline_query": {"id": "iq", "from": dict(chat.user), "query": "счёт", "offset": ""}},
        {
            "channel_post": {
                "message_id": 5,
                "date": 1,
                "chat": channel,
                "sender_chat": channel,
                **command("/start"),
            }
        },
        {
            "my_chat_member": {
                "chat": private,
                "from": dict(chat.user),
                "date": 1,
                "old_chat_member": {"status": "member", "user": bot_user},
                "new_chat_member": {"status": "kicked", "user": bot_user, "until_date": 0},
            }
        },
        {
            "business_message": {
                "message_id": 6,
                "date": 1,
                "chat": {"id": 300003, "type": "private", "first_name": "Клиент"},
                "from": stranger,
                "business_connection_id": "bc-1",
                **command("/start"),
            }
        },
    ):
        calls = len(harness.telegram.calls)
        reply = await chat.feed(update)
        assert reply.events == () and len(harness.telegram.calls) == calls, update


# ---- old, gone and uneditable messages -----------------------------------------------------
# https://github.com/aiogram/aiogram/issues/1675 (a press under a message Telegram no longer
# gives: InaccessibleMessage, date 0); https://github.com/tdlib/telegram-bot-api/issues/401


async def test_a_press_under_an_inaccessible_message_opens_the_screen(harness: Harness) -> None:
    chat = await linked(harness)
    menu = chat.last_message
    assert menu is not None
    [bills] = [b for b in menu.buttons if "Мои счета" in b.text]
    inaccessible = {"chat": harness.telegram.chat(chat.chat_id), "message_id": menu.message_id}
    reply = await press_again(chat, {**inaccessible, "date": 0}, bills.callback_data or "")
    no_crash(reply)
    assert reply.answered and "неоплаченных счетов" in chat.last_text


# https://github.com/Tishka17/aiogram_dialog/pull/40 («message to edit not found»: the dialog's
# last message was deleted)


async def test_typing_after_the_resident_deleted_the_step_message(harness: Harness) -> None:
    chat = await uin_step(harness)
    step = chat.last_message
    assert step is not None
    del chat.telegram._messages[chat.chat_id][step.message_id]  # «Delete for both» in the client
    reply = await chat.send("123")
    no_crash(reply)
    assert "В УИН 3 знака" in reply.text and UIN_ASKED in chat.last_text
    assert "Нашли начисление" in (await chat.send(UIN)).text


# https://github.com/Tishka17/aiogram_dialog/issues/123 and pull/40 («message can't be
# edited»: the pressed message is not the bot's — a forwarded copy of its menu)


async def test_a_press_under_a_forwarded_copy_of_the_menu(harness: Harness) -> None:
    chat = await linked(harness)
    menu = chat.last_message
    assert menu is not None
    origin = {"type": "user", "sender_user": harness.telegram.bot_user, "date": 1}
    copy = chat._incoming(
        {"text": menu.text, "reply_markup": menu.payload["reply_markup"], "forward_origin": origin}
    )
    [bills] = [b for b in menu.buttons if "Мои счета" in b.text]
    reply = await press_again(chat, copy, bills.callback_data or "")
    no_crash(reply)
    # Not the dialog's current message: answered as a stale screen (review 33b), the menu
    # below stays and works.
    assert [a.text for a in reply.callback_answers] == [STALE]
    await chat.press(bills.text)
    assert "неоплаченных счетов" in chat.last_text


# ---- presses Telegram refuses to act on ----------------------------------------------------
# https://github.com/Tishka17/aiogram_dialog/issues/37 (MessageNotModified on quick presses)
# https://github.com/python-telegram-bot/python-telegram-bot/issues/2440 (a press that edits the
# message into itself)


async def test_pager_presses_that_change_nothing_are_answered(harness: Harness) -> None:
    chat = await linked(harness)
    await chat.press("Мои счета")
    first = chat.last_text
    for button in ("1/3", "‹"):  # the counter, and back on the first page
        reply = await chat.press(button)
        no_crash(reply)
        assert reply.answered and chat.last_text == first
    await chat.press("›")
    await chat.press("›")
    last = chat.last_text
    for button in ("›", "3/3"):
        reply = await chat.press(button)
        assert reply.answered and chat.last_text == last


# https://github.com/Tishka17/aiogram_dialog/issues/173 (flooding a dialog's keyboard: the second
# tap lands on a step no longer on top)


async def test_a_second_tap_on_the_menu_under_an_open_step_keeps_the_step(
    harness: Harness,
) -> None:
    chat = await linked(harness)
    menu = chat.last_message
    assert menu is not None
    payload = dict(menu.payload)
    [charity] = [b for b in menu.buttons if "Благотворительность" in b.text]
    await chat.press("Мои счета")
    on_top = chat.last_text
    reply = await press_again(chat, payload, charity.callback_data or "")
    no_crash(reply)
    assert [a.text for a in reply.callback_answers] == [
        "Этот шаг уже открыт ниже — продолжайте в последнем сообщении."
    ]
    assert chat.last_text == on_top


# https://github.com/grammyjs/menu/issues/25 (two taps before the first one's edit arrived)


async def test_two_taps_at_once_open_the_screen_once(harness: Harness) -> None:
    chat = await linked(harness)
    menu = chat.last_message
    assert menu is not None
    [bills] = [b for b in menu.buttons if "Мои счета" in b.text]
    taps = []
    for n in range(2):
        query_id = f"tap-{n}"
        chat.telegram.open_callback_query(query_id)
        query = {
            "id": query_id,
            "from": dict(chat.user),
            "message": dict(menu.payload),
            "chat_instance": "local",
            "data": bills.callback_data,
        }
        taps.append({"callback_query": query})
    reply = await chat._feed(*taps)  # delivered side by side, as polling does
    no_crash(reply)
    assert len(reply.callback_answers) == 2  # both spinners stop
    assert len(reply.edits) == 1 and reply.messages == []  # one screen, drawn once
    assert "неоплаченных счетов" in chat.last_text


# https://github.com/Tishka17/aiogram_dialog/issues/416 («there is no text in the message to
# edit»: a button under a photo opens a text screen)


async def test_buttons_under_a_photo_notification_open_the_card(harness: Harness) -> None:
    chat, number = await _sent(harness)
    answer = " ".join(f"слово{n}" for n in range(200))  # shortened: «Показать полностью»
    photo = "https://city.example/answer.jpg"
    await advance(harness, number, to="answered", status_notes=answer, media_url=photo)
    await _told(harness)
    notice = chat.last_message
    assert notice is not None and notice.file_id is not None  # the city's photo, captioned
    reply = await chat.press("Показать полностью")
    no_crash(reply)
    assert reply.answered and f"Обращение № {number}" in chat.last_text
    reply = await chat.press("›")
    assert reply.answered and "слово199" in chat.last_text


# https://github.com/Tishka17/aiogram_dialog/issues/145 («query is too old»: the answer comes
# after Telegram's 15 s, a slow external service)


async def test_a_press_answered_too_late_still_changes_the_screen(harness: Harness) -> None:
    chat = await linked(harness)
    harness.telegram.callback_query_timeout = -1  # every answer is too late
    reply = await chat.press("Мои счета")
    no_crash(reply)
    assert not reply.answered and "неоплаченных счетов" in chat.last_text
    await chat.press("Назад")
    assert chat.buttons == LINKED_MENU


# ---- who writes ----------------------------------------------------------------------------
# https://github.com/python-telegram-bot/python-telegram-bot/pull/4 (a user without a username)
# https://github.com/eternnoir/pyTelegramBotAPI/issues/1470 (None concatenated)


async def test_a_resident_without_username_with_a_hostile_name_is_greeted(
    harness: Harness,
) -> None:
    chat = harness.chat(user_id=400004, first_name="\u202e<b>Ж&amp;" + "Я" * 60)
    chat.user.pop("language_code", None)
    reply = await chat.send("/start")
    no_crash(reply)
    assert "Здравствуйте" in reply.text and "Я" * 60 not in reply.text


# https://github.com/V35HR4J/Automate-Telegram/pull/19 (forwarded and edited texts)


async def test_a_forwarded_uin_is_taken(harness: Harness) -> None:
    chat = await uin_step(harness)
    origin = {"type": "hidden_user", "sender_user_name": "Пётр", "date": 1}
    reply = await chat._send_content({"text": UIN, "forward_origin": origin})
    assert "Нашли начисление" in reply.text


# https://github.com/python-telegram-bot/python-telegram-bot/issues/30 — a command in a photo's
# caption: aiogram's Command reads captions too


async def test_start_in_a_photos_caption_is_start(harness: Harness) -> None:
    chat = harness.chat()
    photo = chat.telegram.register_photo(b"not a receipt", width=10, height=10)
    caption_entities = [{"type": "bot_command", "offset": 0, "length": 6}]
    reply = await chat._send_content(
        {"photo": photo, "caption": "/start", "caption_entities": caption_entities}
    )
    no_crash(reply)
    assert "Здравствуйте" in reply.text
