"""Review 22: the update shapes real Telegram sends, fed in the middle of real flows (a linked
resident at the UIN step, an amount, a report's description and photos, «Поддержка», the pay
step's confirmation): presses under messages Telegram no longer gives (InaccessibleMessage),
presses without a message, garbage callback data, messages carrying every optional field the
Bot API has (replies, quotes, forwards, entities of every kind, private-chat topics), texts at
and past Telegram's limits, invisible and control characters, update kinds the bot never asks
for, a blocked bot, Telegram Payments with a payload or an amount of another invoice, and the
same update delivered twice. Tests with a «Was (review 22)» comment pinned a defect found
here, fixed since; the others pin behaviour that held."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiogram.methods import AnswerPreCheckoutQuery
from aiogram.types import Update

from bot.jobs import deliver_notifications, poll_reports, run_autopays
from bot.metrics import ERRORS
from bot.ratelimit import MemoryLimiter
from sandbox import SandboxServer
from sandbox.conversation import Conversation, Reply
from tests.contract.sandbox_client import FakeClock
from tests.flows.conftest import LINKED_MENU, Harness, _harness, settings_for
from tests.flows.test_charity_points_meters import linked, open_first_fund
from tests.flows.test_hostile_input import no_crash, press_again
from tests.flows.test_payments import bill_buttons, city_bills, ledger
from tests.flows.test_reports import ARBAT_10, advance, photo, start_pothole
from tests.flows.test_review15_quiet import MSK, deliver, donation
from tests.flows.test_review19_bug_reports import UIN, UIN_ASKED, command, uin_step
from tests.flows.test_review20_chats_inputs import (
    PASSED_ON,
    STAFF,
    SUPPORT_CHAT,
    in_support,
    topic,
)
from tests.flows.test_telegram_payments import (
    invoice_for_first_bill,
    pre_checkout,
    successful_payment,
)

FOUND = "Нашли начисление"


@pytest.fixture
async def staffed(
    request: pytest.FixtureRequest, tmp_path: Path, sandbox: SandboxServer, clock: FakeClock
) -> AsyncIterator[Harness]:
    """The staff supergroup (a forum) configured, one administrator in it (as review 20)."""
    settings = settings_for(tmp_path, support_chat_id=SUPPORT_CHAT)
    async for harness in _harness(settings, sandbox, clock, request):
        harness.telegram.register_chat(
            {"id": SUPPORT_CHAT, "type": "supergroup", "title": "Поддержка", "is_forum": True}
        )
        harness.telegram.set_member(SUPPORT_CHAT, STAFF, "administrator")
        yield harness


DESCRIBE = "Опишите проблему"


def errors() -> float:
    return ERRORS._value.get()


def rich_fields(chat: Conversation, replied: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every optional field a resident's private message can carry (Bot API 7.0–9.x): a reply
    to the bot's message with a quote of it, a reply to a message of another chat, link preview
    options; `via_bot` and `forward_origin` are tried on their own."""
    fields: dict[str, Any] = {
        "link_preview_options": {"is_disabled": True},
        "external_reply": {
            "origin": {
                "type": "channel",
                "chat": {"id": -100555, "type": "channel", "title": "Новости"},
                "message_id": 7,
                "date": 1,
            },
            "chat": {"id": -100555, "type": "channel", "title": "Новости"},
            "message_id": 7,
        },
    }
    if replied is not None:
        fields["reply_to_message"] = replied
        fields["quote"] = {"text": (replied.get("text") or "x")[:10], "position": 0}
    return fields


def every_entity(text: str) -> list[dict[str, Any]]:
    """One entity of every kind the Bot API names, over the whole text (`text` long enough)."""
    n = len(text)
    kinds: list[dict[str, Any]] = [
        {"type": "bold"},
        {"type": "italic"},
        {"type": "underline"},
        {"type": "strikethrough"},
        {"type": "spoiler"},
        {"type": "code"},
        {"type": "blockquote"},
        {"type": "expandable_blockquote"},
        {"type": "text_link", "url": "https://example.com/"},
        {"type": "text_mention", "user": {"id": 42, "is_bot": False, "first_name": "Пётр"}},
        {"type": "custom_emoji", "custom_emoji_id": "5368324170671202286"},
        {"type": "pre", "language": "python"},
    ]
    return [{**kind, "offset": 0, "length": min(2, n)} for kind in kinds]


async def feed_raw(chat: Conversation, payload: dict[str, Any]) -> Reply:
    """An update with its own update_id (Conversation numbers its own otherwise)."""
    start = len(chat.telegram.events)
    update = Update.model_validate(payload, context={"bot": chat.bot})
    await chat.dispatcher.feed_update(chat.bot, update)
    return chat._reply_since(start)


def press_payload(chat: Conversation, message: dict[str, Any] | None, data: str | None, **extra):
    query_id = f"raw-{len(chat.telegram.events)}-{len(chat.telegram.calls)}"
    chat.telegram.open_callback_query(query_id)
    query: dict[str, Any] = {
        "id": query_id,
        "from": dict(chat.user),
        "chat_instance": f"local-{chat.chat_id}",
        **extra,
    }
    if message is not None:
        query["message"] = message
    if data is not None:
        query["data"] = data
    return {"callback_query": query}


async def pay_confirmation(harness: Harness) -> Conversation:
    chat = await linked(harness)
    await chat.press("Мои счета")
    await chat.press(bill_buttons(chat)[0])
    await chat.press("Оплатить выбранные")
    assert "К оплате" in chat.last_text
    return chat


# ---- presses under messages Telegram no longer gives, and presses without a message -----------


async def test_pay_pressed_under_an_inaccessible_confirmation_charges_once(
    harness: Harness,
) -> None:
    chat = await pay_confirmation(harness)
    confirm = chat.last_message
    assert confirm is not None
    [pay] = [b for b in confirm.buttons if b.text.startswith("Оплатить ")]
    inaccessible = {
        "chat": harness.telegram.chat(chat.chat_id),
        "message_id": confirm.message_id,
        "date": 0,
    }
    before = errors()
    reply = await press_again(chat, inaccessible, pay.callback_data or "")
    no_crash(reply)
    assert reply.answered
    again = await press_again(chat, inaccessible, pay.callback_data or "")
    no_crash(again)
    assert len(await ledger(harness)) == 1
    assert "Оплачено" in chat.last_text or "Оплачено" in reply.text
    assert errors() == before


@pytest.mark.parametrize("shape", ["inline", "game", "inline+game"])
async def test_pay_data_without_a_message_moves_no_money(harness: Harness, shape: str) -> None:
    chat = await pay_confirmation(harness)
    confirm = chat.last_message
    assert confirm is not None
    [pay] = [b for b in confirm.buttons if b.text.startswith("Оплатить ")]
    extra: dict[str, Any] = {}
    if "inline" in shape:
        extra["inline_message_id"] = "AgAAAGinline"
    if "game" in shape:
        extra["game_short_name"] = "city"
    data = pay.callback_data if "inline" in shape else None
    before = errors()
    reply = await chat.feed(press_payload(chat, None, data, **extra))
    no_crash(reply)
    assert reply.answered and reply.messages == [] and reply.edits == []
    assert await ledger(harness) == []
    assert errors() == before
    assert any(b.startswith("Оплатить ") for b in chat.buttons)  # still there to press
    assert "Оплачено" in (await chat.press("Оплатить")).text


GARBAGE = [
    "",
    "x" * 64,
    "я" * 32,  # 64 bytes of UTF-8
    "\x00\x01\x02",
    "aiogd_x\x1fzz\x1f" + "9" * 40,
    "{}",
    "🙂" * 16,
    "pay:" + "9" * 60,
]


@pytest.mark.parametrize("data", GARBAGE, ids=range(len(GARBAGE)))
@pytest.mark.parametrize("where", ["message", "inaccessible", "inline"])
async def test_garbage_data_at_the_uin_step_is_toasted_and_keeps_the_step(
    harness: Harness, data: str, where: str
) -> None:
    chat = await uin_step(harness)
    step = chat.last_message
    assert step is not None
    before = errors()
    if where == "message":
        update = press_payload(chat, dict(step.payload), data)
    elif where == "inaccessible":
        gone = {"chat": harness.telegram.chat(chat.chat_id), "message_id": 1, "date": 0}
        update = press_payload(chat, gone, data)
    else:
        update = press_payload(chat, None, data, inline_message_id="AgAAAGinline")
    reply = await chat.feed(update)
    no_crash(reply)
    assert reply.answered and reply.messages == []
    assert errors() == before
    assert UIN_ASKED in chat.last_text
    assert FOUND in (await chat.send(UIN)).text


# ---- messages with every optional field, at typed steps ---------------------------------------


async def test_a_uin_with_every_field_and_entity_is_taken(harness: Harness) -> None:
    chat = await uin_step(harness)
    step = chat.last_message
    assert step is not None
    content = {"text": UIN, "entities": every_entity(UIN), **rich_fields(chat, dict(step.payload))}
    reply = await chat._send_content(content)
    no_crash(reply)
    assert FOUND in reply.text


async def test_a_uin_sent_via_an_inline_bot_is_taken(harness: Harness) -> None:
    chat = await uin_step(harness)
    via = {"id": 600006, "is_bot": True, "first_name": "Gif", "username": "gif"}
    reply = await chat._send_content({"text": UIN, "via_bot": via})
    no_crash(reply)
    assert FOUND in reply.text


async def test_an_amount_with_every_field_and_entity_is_taken(harness: Harness) -> None:
    chat = await linked(harness)
    await open_first_fund(chat)
    await chat.press("Другая сумма")
    step = chat.last_message
    assert step is not None
    text = "700 ₽"
    content = {
        "text": text,
        "entities": every_entity(text),
        **rich_fields(chat, dict(step.payload)),
    }
    reply = await chat._send_content(content)
    no_crash(reply)
    assert "700,00" in chat.last_text and chat.buttons[0].startswith("Оплатить 700"), reply.texts


async def description_step(harness: Harness) -> Conversation:
    chat = await start_pothole(harness)
    await chat.send_location(*ARBAT_10)
    await chat.press("Пропустить")
    assert DESCRIBE in chat.last_text
    return chat


async def test_a_description_with_every_entity_is_kept_as_typed(harness: Harness) -> None:
    chat = await description_step(harness)
    text = "Глубокая яма у подъезда, детская площадка рядом"
    content = {"text": text, "entities": every_entity(text), **rich_fields(chat)}
    reply = await chat._send_content(content)
    no_crash(reply)
    assert f"Описание: {text}" in chat.last_text


async def test_a_description_of_4096_characters_is_refused_kindly_and_a_short_one_taken(
    harness: Harness,
) -> None:
    chat = await description_step(harness)
    reply = await chat.send("я" * 4096)
    no_crash(reply)
    assert "длиннее 2000 знаков" in reply.text
    await chat.send("Яма")
    assert "Описание: Яма" in chat.last_text


# Found: `clean_description` (domain/reports.py:289) strips only what str.strip() calls white
# space: a text of zero-width or direction marks (pasted, or a «blank» message some clients
# send) is taken as the description — the review reads «Описание:» and nothing, and the city
# gets an invisible description instead of none.
# Was (review 22): a description of only invisible characters was taken as the description.
@pytest.mark.parametrize(
    "text",
    ["\u200b", "\u200f\u200e", "\u202e", "\ufeff", "\u3164", "\u2800"],
    ids=["zwsp", "rtl-marks", "rlo", "bom", "hangul-filler", "braille-blank"],
)
async def test_an_invisible_description_is_not_taken_as_a_description(
    harness: Harness, text: str
) -> None:
    chat = await description_step(harness)
    reply = await chat.send(text)
    no_crash(reply)
    shown = chat.last_text
    assert f"Описание: {text}" not in shown, reply.texts


async def test_a_description_of_joiners_and_a_word_joiner_is_not_taken(harness: Harness) -> None:
    chat = await description_step(harness)
    reply = await chat.send("\u200b\u200c\u200d\u2060")
    no_crash(reply)
    assert DESCRIBE in chat.last_text and "Описание:" not in chat.last_text


async def test_nul_in_a_description_is_stored_and_sent_on_postgres(pg_harness: Harness) -> None:
    harness = pg_harness
    chat = await description_step(harness)
    before = errors()
    reply = await chat.send("Яма\x00 глубокая")
    no_crash(reply)
    assert errors() == before
    assert "Описание: Яма" in chat.last_text, reply.texts
    reply = await chat.press("Отправить")
    no_crash(reply)
    assert "✅ Обращение № NG-" in reply.text


async def test_nul_at_the_uin_and_amount_steps_is_answered(pg_harness: Harness) -> None:
    harness = pg_harness
    chat = await uin_step(harness)
    before = errors()
    reply = await chat.send(UIN + "\x00")
    no_crash(reply)
    assert reply.texts and errors() == before


async def test_a_caption_of_1024_on_a_report_photo_is_not_lost(harness: Harness) -> None:
    chat = await start_pothole(harness)
    await chat.send_location(*ARBAT_10)
    caption = "Яма " + "ж" * 1020
    reply = await chat.send_photo(photo(), caption)
    no_crash(reply)
    assert "Фото добавлено: 1 из 5" in reply.text


async def test_a_premium_caption_of_4096_on_a_report_photo(harness: Harness) -> None:
    chat = await start_pothole(harness)
    await chat.send_location(*ARBAT_10)
    reply = await chat.send_photo(photo(), "ж" * 4096)
    no_crash(reply)
    assert "Фото добавлено: 1 из 5" in reply.text


# ---- support: what the resident writes reaches their topic, whatever it carries ---------------


async def test_support_text_with_every_field_and_entity_reaches_the_topic(
    staffed: Harness,
) -> None:
    harness = staffed
    chat, thread = await in_support(harness)
    text = "Не пришла квитанция за ноябрь 🙂"
    content = {"text": text, "entities": every_entity(text), **rich_fields(chat)}
    reply = await chat._send_content(content)
    no_crash(reply)
    assert PASSED_ON in reply.text
    assert topic(harness, thread)[-1] == text


@pytest.mark.parametrize("size", [4096])
async def test_support_text_of_telegrams_limit_with_a_phone_reaches_the_topic(
    staffed: Harness, size: int
) -> None:
    harness = staffed
    chat, thread = await in_support(harness)
    head = "Мой телефон +7 916 123-45-67, почта maria@example.com. "
    text = head + "ж" * (size - len(head))
    reply = await chat.send(text)
    no_crash(reply)
    assert PASSED_ON in reply.text
    shown = topic(harness, thread)[-1]
    assert "916" not in shown and "maria@" not in shown and shown.endswith("жжж")


async def test_support_caption_with_a_phone_and_entities_is_masked(staffed: Harness) -> None:
    harness = staffed
    chat, _thread = await in_support(harness)
    caption = "Звоните 8 (916) 123-45-67"
    content = {
        "photo": harness.telegram.register_photo(photo(33)),
        "caption": caption,
        "caption_entities": every_entity(caption),
    }
    reply = await chat._send_content(content)
    no_crash(reply)
    shown = harness.telegram.messages(SUPPORT_CHAT)[-1]
    assert "916" not in shown.text


async def test_support_invisible_text_is_passed_or_answered(staffed: Harness) -> None:
    harness = staffed
    chat, _thread = await in_support(harness)
    before = errors()
    for text in ("\u200b", "\u200f\u200e", "\x00"):
        reply = await chat.send(text)
        no_crash(reply)
        assert reply.texts, text
    assert errors() == before


# ---- private-chat topics (Bot API 9.x) -----------------------------------------------------------


def in_topic(content: dict[str, Any], thread: int = 4242) -> dict[str, Any]:
    return {**content, "message_thread_id": thread, "is_topic_message": True}


async def test_start_in_a_private_topic_is_answered_in_that_topic(harness: Harness) -> None:
    chat = await linked(harness)
    reply = await chat._send_content(in_topic(command("/start")))
    no_crash(reply)
    assert reply.messages and all(
        m.payload.get("message_thread_id") == 4242 for m in reply.messages
    ), [m.payload.get("message_thread_id") for m in reply.messages]
    assert chat.buttons == LINKED_MENU


async def test_a_whole_uin_flow_inside_a_private_topic_stays_in_it(harness: Harness) -> None:
    """A private chat with topics (BotFather's threaded mode): every topic is a conversation of
    its own; a flow begun in one is answered in it, its steps take what is typed there."""
    chat = await linked(harness, "demo-standard")
    reply = await chat._send_content(in_topic(command("/start")))
    menu = reply.messages[-1]
    [add] = [b for b in menu.buttons if "Добавить счёт по УИН" in b.text]
    reply = await press_again(chat, dict(menu.payload), add.callback_data or "")
    no_crash(reply)
    assert UIN_ASKED in chat.last_text
    reply = await chat._send_content(in_topic({"text": UIN}))
    no_crash(reply)
    assert FOUND in reply.text, reply.texts
    assert all(m.payload.get("message_thread_id") == 4242 for m in reply.messages)


# ---- update kinds the bot never asks for ------------------------------------------------------


async def test_other_update_kinds_mid_flow_are_silence(harness: Harness) -> None:
    chat = await uin_step(harness)
    user = dict(chat.user)
    private = harness.telegram.chat(chat.chat_id)
    channel = {"id": -100999, "type": "channel", "title": "Новости района"}
    group = {"id": -1001234, "type": "supergroup", "title": "Дом 5"}
    updates: list[dict[str, Any]] = [
        {"channel_post": {"message_id": 5, "date": 1, "chat": channel, "text": UIN}},
        {"edited_channel_post": {"message_id": 5, "date": 1, "chat": channel, "text": UIN}},
        {
            "chat_join_request": {
                "chat": group,
                "from": user,
                "user_chat_id": chat.chat_id,
                "date": 1,
            }
        },
        {
            "message_reaction": {
                "chat": private,
                "message_id": 1,
                "user": user,
                "date": 1,
                "old_reaction": [],
                "new_reaction": [{"type": "emoji", "emoji": "👍"}],
            }
        },
        {
            "message_reaction_count": {
                "chat": group,
                "message_id": 1,
                "date": 1,
                "reactions": [{"type": {"type": "emoji", "emoji": "👍"}, "total_count": 3}],
            }
        },
        {
            "poll_answer": {
                "poll_id": "p1",
                "user": user,
                "option_ids": [0],
                "option_persistent_ids": ["o1"],
            }
        },
        {
            "poll": {
                "id": "p1",
                "question": "?",
                "options": [{"persistent_id": "o1", "text": "да", "voter_count": 1}],
                "allows_revoting": False,
                "members_only": False,
                "total_voter_count": 1,
                "is_closed": False,
                "is_anonymous": True,
                "type": "regular",
                "allows_multiple_answers": False,
            }
        },
        {
            "chat_boost": {
                "chat": channel,
                "boost": {
                    "boost_id": "b1",
                    "add_date": 1,
                    "expiration_date": 2,
                    "source": {"source": "premium", "user": user},
                },
            }
        },
        {
            "removed_chat_boost": {
                "chat": channel,
                "boost_id": "b1",
                "remove_date": 2,
                "source": {"source": "premium", "user": user},
            }
        },
        {
            "purchased_paid_media": {"from": user, "paid_media_payload": "x"},
        },
        {
            "business_connection": {
                "id": "bc-1",
                "user": user,
                "user_chat_id": chat.chat_id,
                "date": 1,
                "is_enabled": True,
            }
        },
        {
            "business_message": {
                "message_id": 6,
                "date": 1,
                "chat": private,
                "from": user,
                "business_connection_id": "bc-1",
                "text": UIN,
            }
        },
        {
            "edited_business_message": {
                "message_id": 6,
                "date": 1,
                "chat": private,
                "from": user,
                "business_connection_id": "bc-1",
                "text": UIN,
            }
        },
        {
            "deleted_business_messages": {
                "business_connection_id": "bc-1",
                "chat": private,
                "message_ids": [6],
            }
        },
        {
            "chat_member": {
                "chat": group,
                "from": user,
                "date": 1,
                "old_chat_member": {"status": "left", "user": user},
                "new_chat_member": {"status": "member", "user": user},
            }
        },
        {"inline_query": {"id": "iq", "from": user, "query": UIN, "offset": ""}},
        {
            "chosen_inline_result": {
                "result_id": "r1",
                "from": user,
                "query": UIN,
            }
        },
        {"guest_message": {**chat._incoming({"text": UIN}), "guest_query_id": "gq-1"}},
        {
            "managed_bot": {
                "user": user,
                "bot_user": {"id": 700007, "is_bot": True, "first_name": "B"},
            }
        },
        {"subscription": {"user": user, "invoice_payload": "x", "state": "active"}},
        {"stopped_message_generation": {"chat": private, "draft_id": 1}},
        {
            "shipping_query": {
                "id": "sq",
                "from": user,
                "invoice_payload": "x",
                "shipping_address": {
                    "country_code": "RU",
                    "state": "",
                    "city": "Москва",
                    "street_line1": "Арбат, 10",
                    "street_line2": "",
                    "post_code": "119002",
                },
            }
        },
    ]
    before = errors()
    for update in updates:
        reply = await chat.feed(update)
        no_crash(reply)
        assert reply.messages == [] and reply.edits == [], (list(update), reply.texts)
    assert errors() == before
    assert UIN_ASKED in chat.last_text
    assert FOUND in (await chat.send(UIN)).text


async def test_edits_mid_flow_are_told_not_taken_and_keep_the_step(harness: Harness) -> None:
    """A resident's edit (Telegram's `edited_message`) is not a step's value: nothing is taken
    from it, but it is answered once (a fix met with silence reads as taken — review 35e)."""
    chat = await uin_step(harness)
    edits: list[dict[str, Any]] = [
        {"edited_message": {**chat._incoming({"text": UIN}), "edit_date": 2}},
        {
            "edited_message": {
                **chat._incoming({"photo": harness.telegram.register_photo(photo(9))}),
                "caption": "исправленная подпись",
                "edit_date": 2,
            }
        },
    ]
    before = errors()
    for update in edits:
        reply = await chat.feed(update)
        no_crash(reply)
        assert len(reply.messages) == 1 and reply.edits == [], (list(update), reply.texts)
        caption = "caption" in update["edited_message"]
        told = "Исправленную подпись я не вижу" if caption else "Исправленное сообщение я не вижу"
        assert told in reply.text, reply.texts
    assert errors() == before
    assert FOUND in (await chat.send(UIN)).text


# ---- the bot blocked and unblocked ---------------------------------------------------------------


async def test_blocked_then_back_with_start(harness: Harness) -> None:
    chat, number = await sent_report_chat(harness)
    assert harness.app is not None
    private = harness.telegram.chat(chat.chat_id)
    bot_user = harness.telegram.bot_user
    harness.telegram.block_chat(chat.chat_id)
    kicked = {
        "my_chat_member": {
            "chat": private,
            "from": dict(chat.user),
            "date": 1,
            "old_chat_member": {"status": "member", "user": bot_user},
            "new_chat_member": {"status": "kicked", "user": bot_user, "until_date": 0},
        }
    }
    before = errors()
    assert (await chat.feed(kicked)).events == ()
    await advance(harness, number, to="in_work", status_notes="Бригада выехала")
    await poll_reports(harness.app, harness.clock)
    await deliver_notifications(harness.app, harness.clock, MemoryLimiter())
    harness.telegram.unblock_chat(chat.chat_id)
    back = {
        "my_chat_member": {
            **kicked["my_chat_member"],
            "old_chat_member": {"status": "kicked", "user": bot_user, "until_date": 0},
            "new_chat_member": {"status": "member", "user": bot_user},
        }
    }
    assert (await chat.feed(back)).events == ()
    reply = await chat.send("/start")
    no_crash(reply)
    assert chat.buttons == LINKED_MENU
    assert errors() == before
    await advance(harness, number, to="answered", status_notes="Яму заделали")
    await poll_reports(harness.app, harness.clock)
    await deliver_notifications(harness.app, harness.clock, MemoryLimiter())
    assert "Яму заделали" in chat.last_text  # later news reach the resident again


async def sent_report_chat(harness: Harness) -> tuple[Conversation, str]:
    chat = await description_step(harness)
    await chat.press("Пропустить")
    reply = await chat.press("Отправить")
    return chat, reply.text.split("№ ")[1].split()[0]


# ---- the same update twice, and two in reverse order -----------------------------------------


async def test_the_same_pay_press_delivered_twice_charges_once_and_answers_once(
    harness: Harness,
) -> None:
    chat = await pay_confirmation(harness)
    confirm = chat.last_message
    assert confirm is not None
    [pay] = [b for b in confirm.buttons if b.text.startswith("Оплатить ")]
    update = {
        "update_id": 9_000_001,
        **press_payload(chat, dict(confirm.payload), pay.callback_data),
    }
    first = await feed_raw(chat, update)
    second = await feed_raw(chat, update)
    assert "Оплачено" in first.text
    assert second.events == ()
    assert len(await ledger(harness)) == 1


async def test_a_uin_then_its_step_in_reverse_update_order(harness: Harness) -> None:
    """The webhook may bring a press after a message typed after it (a press travels in another
    queue). The text, handled first, is no step's value yet: it is answered, not dropped
    silently; the press then on the menu it outdated is answered too."""
    chat = await linked(harness, "demo-standard")
    menu = chat.last_message
    assert menu is not None
    [add] = [b for b in menu.buttons if "Добавить счёт по УИН" in b.text]
    text = {"update_id": 9_100_001, "message": chat._incoming({"text": UIN})}
    press = {"update_id": 9_100_000, **press_payload(chat, dict(menu.payload), add.callback_data)}
    before = errors()
    first = await feed_raw(chat, text)
    no_crash(first)
    assert first.texts  # answered, not dropped
    second = await feed_raw(chat, press)
    no_crash(second)
    assert second.answered
    assert errors() == before
    await chat.press("Добавить счёт по УИН")
    assert FOUND in (await chat.send(UIN)).text


# ---- Telegram Payments: another invoice's payload, another amount or currency -------------


@pytest.fixture
async def tg(
    request: pytest.FixtureRequest, tmp_path: Path, sandbox: SandboxServer, clock: FakeClock
) -> AsyncIterator[Harness]:
    """Telegram Payments on (as tests/flows/test_telegram_payments.py)."""
    settings = settings_for(tmp_path, payments_provider_token="381764678:TEST:100500")
    async for harness in _harness(settings, sandbox, clock, request):
        yield harness


async def test_a_pre_checkout_in_another_currency_is_refused(tg: Harness) -> None:
    chat, bill, payload = await invoice_for_first_bill(tg)
    await chat.feed(
        {
            "pre_checkout_query": {
                "id": "pcq-usd",
                "from": dict(chat.user),
                "currency": "USD",
                "total_amount": bill["amount"],
                "invoice_payload": payload,
            }
        }
    )
    last = chat.telegram.calls_of(AnswerPreCheckoutQuery)[-1]
    assert last.ok is False and last.error_message


async def test_another_residents_invoice_is_refused_and_not_registered(tg: Harness) -> None:
    chat, bill, payload = await invoice_for_first_bill(tg)
    other = tg.chat(user_id=100077, first_name="Елена")
    await tg.link(other, "demo-standard")
    answer = await pre_checkout(other, payload, bill["amount"])
    assert answer.ok is False
    text = await successful_payment(other, payload, bill["amount"], "tg-foreign-1")
    assert "Мои счета" not in text and text  # answered
    assert await ledger(tg) == []
    assert bill["id"] in {b["id"] for b in await city_bills(tg, chat)}


# Found: `on_successful_payment` (handlers/telegram_pay.py:113) passes on only the payload and the
# charge ids: `register_external_payment` registers the intent's own amount with the city
# whatever currency and amount Telegram says it took.
# Was (review 22): a successful_payment's currency and total_amount were never compared with
# the intent: the city was told a different sum was paid.
@pytest.mark.parametrize("currency,delta", [("RUB", -100), ("USD", 0)])
async def test_a_successful_payment_of_another_amount_is_not_registered_as_the_invoice(
    tg: Harness, currency: str, delta: int
) -> None:
    chat, bill, payload = await invoice_for_first_bill(tg)
    assert (await pre_checkout(chat, payload, bill["amount"])).ok is True
    before = errors()
    reply = await chat.feed(
        {
            "message": {
                "message_id": 20_000,
                "date": 0,
                "chat": harness_chat(chat),
                "from": dict(chat.user),
                "successful_payment": {
                    "currency": currency,
                    "total_amount": bill["amount"] + delta,
                    "invoice_payload": payload,
                    "telegram_payment_charge_id": "tg-odd-1",
                    "provider_payment_charge_id": "yk-odd-1",
                },
            }
        }
    )
    no_crash(reply)
    assert errors() == before
    assert "зачислен" not in reply.text, reply.texts
    assert "не ту сумму" in reply.text and "вернут" in reply.text, reply.texts
    assert await ledger(tg) == []  # what Telegram took is not what the city is told: staff look
    assert bill["id"] in {b["id"] for b in await city_bills(tg, chat)}  # still unpaid


def harness_chat(chat: Conversation) -> dict[str, Any]:
    return chat.telegram.chat(chat.chat_id)


# ---- a one-shot button in a digest pressed under a message Telegram no longer gives ----------


# Found: `drop_keyboard` (handlers/buttons.py:88) reads the pressed message's keyboard to take off
# only the pressed item's buttons; an InaccessibleMessage has none, so `without_item` answers
# «not a digest» and the whole keyboard is replaced by none: every other item's buttons go too.
# Was (review 22): a press in a digest reported as InaccessibleMessage took every item's
# buttons off, not only the pressed item's.
async def test_a_skip_pressed_under_an_inaccessible_digest_keeps_the_other_items_buttons(
    harness: Harness,
) -> None:
    chat = harness.chat()
    await harness.link(chat)
    assert harness.app is not None
    harness.clock.now = datetime(2026, 11, 23, 12, 0, tzinfo=MSK)
    await donation(chat, 1, 25)
    await donation(chat, 2, 25)
    harness.clock.now = datetime(2026, 11, 24, 0, 0, 30, tzinfo=MSK)  # the day before, at night
    await run_autopays(harness.app, harness.clock)
    await deliver(harness)
    harness.clock.now = datetime(2026, 11, 24, 9, 0, tzinfo=MSK)
    await deliver(harness)
    digest = chat.last_message
    assert digest is not None and "Пока шли тихие часы, пришло 2" in digest.text
    [first] = [b for b in digest.buttons if b.text == "1 · Пропустить этот раз"]
    inaccessible = {
        "chat": harness.telegram.chat(chat.chat_id),
        "message_id": digest.message_id,
        "date": 0,
    }
    before = errors()
    reply = await press_again(chat, inaccessible, first.callback_data or "")
    no_crash(reply)
    assert "в этот раз не спишем" in reply.text
    assert errors() == before
    now = harness.telegram.message(chat.chat_id, digest.message_id)
    assert now is not None
    assert "2 · Пропустить этот раз" in [b.text for b in now.buttons]  # still skippable
