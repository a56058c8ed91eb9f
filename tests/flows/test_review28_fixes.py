"""Review 28: the fixes of 5ab7c43 (review 27's support desk, meters, points, settings,
lenient contract reads) attacked as a resident, a support agent, an operator and an attacker.
The defects found were pinned by strict xfails, now «Was (review 28)» comments; the other
tests pin behaviour that held and that the suite did not check yet."""

from __future__ import annotations

from typing import Any

import pytest
from aiogram.methods import CopyMessage, SendMessage

from bot.album import albums_of
from domain import support
from sandbox.conversation import Conversation
from sandbox.telegram_double import Fault, _ApiError
from tests.flows import test_review27_support as review27
from tests.flows.conftest import Harness
from tests.flows.test_albums import shorten_debounce
from tests.flows.test_hostile_input import no_crash
from tests.flows.test_reports import photo
from tests.flows.test_review27_support import (
    STAFF,
    SUPPORT_CHAT,
    UNAVAILABLE,
    resident,
    staff_message,
    telegram_delivers,
    topic,
)

desk = review27.desk  # the bot with the staff supergroup (a forum) configured
CORRECTED = "Сотрудник исправил своё сообщение"


def _staff(harness: Harness) -> Conversation:
    return harness.chat(user_id=STAFF["id"], first_name=STAFF["first_name"])


def _short_album_retries(harness: Harness) -> None:
    assert harness.app is not None
    shorten_debounce(harness)
    for middleware in albums_of(harness.app.dispatcher):
        middleware.retries = (0.01, 0.01, 0.01)


def _throttle_copy(harness: Harness, on_call: int, retry_after: int, times: int = 1) -> None:
    """The `on_call`-th copyMessage from now on (and `times`-1 after it) meets a 429."""
    double = harness.telegram
    original = double._handlers[CopyMessage]
    seen = 0

    async def throttled(call: Any) -> Any:
        nonlocal seen
        seen += 1
        if seen == on_call - 1:  # the next copy meets the group's (or the chat's) limit
            double.fail_next(CopyMessage, Fault.RETRY_AFTER, retry_after=retry_after, times=times)
        return await original(call)

    if on_call == 1:
        double.fail_next(CopyMessage, Fault.RETRY_AFTER, retry_after=retry_after, times=times)
    double._handlers[CopyMessage] = throttled


def _photos_in(harness: Harness, chat: Conversation) -> list[str]:
    return [m.text for m in harness.telegram.messages(chat.chat_id) if m.content_type == "photo"]


# ---- a resident's album meeting a long 429 ----------------------------------------------------


# Found: `_waiting_once` waits out a 429 only up to RETRY_PART (5 s) and only once; a forum
# supergroup's 429 is commonly 20-40 s. On the second part of a resident's album it is raised,
# `on_resident_message` says «Поддержка сейчас недоступна» while the first part is already in
# the topic: the resident sends the album again and staff get the first photo twice
# Was (review 28): a long 429 midway through a resident's album leaves a part in the topic and
# tells the resident support is unavailable
@pytest.mark.parametrize(("retry_after", "times"), [(30, 1), (1, 2)], ids=["long", "twice"])
async def test_a_residents_album_meeting_a_long_429_midway_is_whole_or_nothing(
    desk: Harness, retry_after: int, times: int
) -> None:
    harness = desk
    _short_album_retries(harness)
    chat, thread = await resident(harness)
    _throttle_copy(harness, on_call=2, retry_after=retry_after, times=times)
    reply = await chat.send_album([photo(51), photo(52), photo(53)])
    no_crash(reply)
    in_topic = [m.content_type for m in topic(harness, thread)[1:]]
    told_unavailable = any(UNAVAILABLE in text for text in reply.texts)
    told_partly = any("Передали сотруднику 1 из 3" in text for text in reply.texts)
    # Whole, or nothing and «недоступна», or the part that went and a word saying so (never
    # «недоступна» after a part went: the resident would send it again).
    assert (
        (in_topic == ["photo"] * 3 and not told_unavailable)
        or (in_topic == [] and told_unavailable)
        or (in_topic == ["photo"] and told_partly and not told_unavailable)
    ), (in_topic, reply.texts)


# ---- a staff album meeting a long 429, and a transient member check -------------------------


async def _staff_album(harness: Harness, thread: int, captions: list[str]) -> None:
    group = "staff-album-1"
    updates = []
    for index, caption in enumerate(captions):
        content = {
            "photo": harness.telegram.register_photo(photo(60 + index)),
            "caption": caption,
            "media_group_id": group,
        }
        updates.append({"message": staff_message(harness, content, thread)})
    await _staff(harness)._feed(*updates)


# Found: a 429 above RETRY_PART on a later part of a staff album is raised from
# `on_staff_message`; the album task (`bot.album._handle`, a transient failure) runs the handler
# again, which copies every part from the first: the resident gets the earlier parts twice
# Was (review 28): a long 429 on a later part of a staff album makes the retry copy the earlier
# parts to the resident again
async def test_a_staff_album_meeting_a_long_429_reaches_the_resident_once(desk: Harness) -> None:
    harness = desk
    _short_album_retries(harness)
    chat, thread = await resident(harness)
    _throttle_copy(harness, on_call=3, retry_after=30)
    await _staff_album(harness, thread, ["Фото 1", "Фото 2", "Фото 3"])
    photos = _photos_in(harness, chat)
    assert len(photos) == len(set(photos)), photos  # no part twice
    if photos != ["Фото 1", "Фото 2", "Фото 3"]:  # else staff hear which parts did not go
        missing = 3 - len(photos)
        told = [m.text for m in topic(harness, thread)]
        assert any(f"Не доставлено частей ответа: {missing} из 3" in t for t in told), told


async def test_a_staff_album_survives_a_passing_member_check_failure(desk: Harness) -> None:
    from aiogram.methods import GetChatMember

    harness = desk
    _short_album_retries(harness)
    chat, thread = await resident(harness)
    harness.telegram.fail_next(GetChatMember, Fault.SERVER_ERROR)
    await _staff_album(harness, thread, ["Фото 1", "Фото 2"])
    assert sorted(_photos_in(harness, chat)) == ["Фото 1", "Фото 2"]
    assert chat.buttons == ["✏️ Ответить"]


# Found: the Premium fallback of `_copy_part` makes two calls (the photo copied as it is, then
# the line with «Ответить»); a long 429 on the second is raised, the update is delivered again
# and the photo is copied a second time
# Was (review 28): a long 429 on «Ответить» after a Premium caption's copy makes the redelivery
# send the photo to the resident twice
async def test_a_premium_caption_reply_meeting_a_429_on_its_button_reaches_once(
    desk: Harness,
) -> None:
    harness = desk
    assert harness.app is not None
    chat, thread = await resident(harness)
    double = harness.telegram
    original = double._handlers[CopyMessage]
    throttled = False

    async def as_telegram(call: Any) -> Any:  # tdlib/telegram-bot-api#334
        nonlocal throttled
        source = double._messages[int(call.params["from_chat_id"])][int(call.params["message_id"])]
        long_caption = len(source.payload.get("caption") or "") > 1024
        if long_caption and ("reply_markup" in call.params or "caption" in call.params):
            raise _ApiError(400, "Bad Request: message caption is too long")
        if long_caption and not throttled:  # the copy goes; the resident's chat is throttled
            throttled = True
            double.fail_next(SendMessage, Fault.RETRY_AFTER, retry_after=30)
        return await original(call)

    double._handlers[CopyMessage] = as_telegram
    caption = "Как заполнить заявление: " + "п" * 1500
    content = {"photo": double.register_photo(photo(78)), "caption": caption}
    try:
        await telegram_delivers(harness.app, {"message": staff_message(harness, content, thread)})
    finally:
        double._handlers[CopyMessage] = original
    assert _photos_in(harness, chat) == [caption]  # once: the line's 429 is not retried


# ---- staff edits -----------------------------------------------------------------------------


def _live_location(harness: Harness, thread: int) -> dict[str, Any]:
    content = {"location": {"latitude": 55.75, "longitude": 37.6, "live_period": 900}}
    return staff_message(harness, content, thread)


# Found: a live location staff share in a topic (to guide a resident to an office) moves by
# `edited_message` updates, several a minute; `on_staff_edit` takes each as a correction: the
# resident gets «✏️ Сотрудник исправил своё сообщение» and another copy of the map every time
# Was (review 28): each move of a staff live location reaches the resident as a «corrected»
# message with a new map
async def test_a_staff_live_location_moving_is_not_a_stream_of_corrections(
    desk: Harness,
) -> None:
    harness = desk
    chat, thread = await resident(harness)
    staff = _staff(harness)
    shared = _live_location(harness, thread)
    await staff.feed({"message": shared})
    before = len(harness.telegram.messages(chat.chat_id))
    for step in range(1, 6):
        moved = {
            **shared,
            "location": {"latitude": 55.75 + step / 1000, "longitude": 37.6, "live_period": 900},
            "edit_date": shared["date"] + 10 * step,
        }
        await staff.feed({"edited_message": moved})
    after = harness.telegram.messages(chat.chat_id)[before:]
    assert not any(CORRECTED in m.text for m in after), [m.text for m in after]
    assert len(after) <= 1, [m.content_type for m in after]


# Found: `on_staff_edit` copies an edited media with its caption and «Ответить»; a Premium
# staff member's long caption cannot be copied so (the fallback `_copy_part` has is not used
# here): the resident gets «Сотрудник исправил своё сообщение — вот как оно звучит теперь:»
# followed by nothing, and staff read that the part was not delivered
# Was (review 28): an edited Premium caption leaves the resident a «corrected:» line followed by
# nothing
async def test_an_edited_premium_caption_reaches_the_resident(desk: Harness) -> None:
    harness = desk
    chat, thread = await resident(harness)
    double = harness.telegram
    original = double._handlers[CopyMessage]

    async def as_telegram(call: Any) -> Any:  # tdlib/telegram-bot-api#334
        caption = call.params.get("caption")
        source = double._messages[int(call.params["from_chat_id"])][int(call.params["message_id"])]
        long_caption = len(caption or source.payload.get("caption") or "") > 1024
        if long_caption and ("reply_markup" in call.params or "caption" in call.params):
            raise _ApiError(400, "Bad Request: message caption is too long")
        return await original(call)

    double._handlers[CopyMessage] = as_telegram
    caption = "Как заполнить заявление: " + "п" * 1500
    content = {"photo": double.register_photo(photo(79)), "caption": caption}
    staff = _staff(harness)
    posted = staff_message(harness, content, thread)
    try:
        await staff.feed({"message": posted})
        edited = {**posted, "caption": caption + " (срок — 5 дней)", "edit_date": posted["date"]}
        await staff.feed({"edited_message": edited})
    finally:
        double._handlers[CopyMessage] = original
    # The correction goes first, the line saying so after it (the line only once the content
    # went: never a line followed by nothing).
    texts = chat.history
    corrected = [i for i, text in enumerate(texts) if CORRECTED in text]
    assert corrected == [len(texts) - 1], texts
    assert _photos_in(harness, chat)[-1].startswith("Как заполнить заявление:")
    assert len(_photos_in(harness, chat)) == 2  # the reply and its correction
    assert not any("Не доставлено" in m.text for m in topic(harness, thread))


@pytest.mark.markup_in_values
async def test_an_edited_reply_with_html_looking_text_reaches_as_typed_once(
    desk: Harness,
) -> None:
    harness = desk
    chat, thread = await resident(harness)
    staff = _staff(harness)
    posted = staff_message(harness, {"text": "Сумма 100 ₽"}, thread)
    await staff.feed({"message": posted})
    text = "Сумма <b>1 500 ₽</b> & <i>пеня</i> " + "ё" * 4000
    entities = [{"type": "bold", "offset": 0, "length": 5}]
    edited = {**posted, "text": text, "entities": entities, "edit_date": posted["date"] + 5}
    reply = await staff.feed({"edited_message": edited})
    no_crash(reply)
    assert chat.history[-2:] == [
        text,
        "✏️ Сотрудник исправил своё сообщение — выше оно в новом виде.",
    ]
    [corrected] = [m for m in harness.telegram.messages(chat.chat_id) if m.text == text]
    assert corrected.payload.get("entities") == entities
    assert chat.buttons == ["✏️ Ответить"]


async def test_edits_that_are_not_a_staff_reply_reach_nobody_and_get_no_answer(
    desk: Harness,
) -> None:
    harness = desk
    chat, thread = await resident(harness)
    staff = _staff(harness)
    outsider = {"id": 500009, "is_bot": False, "first_name": "Чужой"}
    harness.telegram.set_member(SUPPORT_CHAT, outsider, "left")
    group_before = len(harness.telegram.messages(SUPPORT_CHAT))
    resident_before = chat.history
    cases: list[dict[str, Any]] = []
    command = staff_message(harness, {"text": "/stats"}, thread)
    cases.append({**command, "text": "/stats now", "edit_date": command["date"] + 1})
    foreign = staff_message(harness, {"text": "Я не сотрудник"}, thread, who=outsider)
    cases.append({**foreign, "text": "Я не сотрудник!", "edit_date": foreign["date"] + 1})
    general = staff_message(harness, {"text": "В общем чате"})
    cases.append({**general, "text": "В общем чате!", "edit_date": general["date"] + 1})
    unknown_topic = staff_message(harness, {"text": "Чужая тема"}, thread + 1000)
    cases.append({**unknown_topic, "text": "Чужая тема!", "edit_date": unknown_topic["date"] + 1})
    for edited in cases:
        reply = await staff.feed({"edited_message": edited})
        no_crash(reply)
    assert chat.history == resident_before
    assert len(harness.telegram.messages(SUPPORT_CHAT)) == group_before


async def test_a_residents_edit_in_support_is_not_passed_on_and_told_once(desk: Harness) -> None:
    """Staff have what was sent; the resident is told, one plain line an edit, that the edit
    was not taken (review 35e: a fix met with silence reads as taken), never a menu, never a
    command run («/start» edited in)."""
    harness = desk
    chat, thread = await resident(harness)
    sent = chat.messages
    own = harness.telegram.incoming_message(chat.chat_id, chat.user, {"text": "Вопрос"})
    await chat.feed({"message": own})
    in_topic = len(topic(harness, thread))
    history = chat.history
    for text in ["Вопрос (исправлено)", "/start", "<b>x</b> & 4242 4242 4242 4242"]:
        edited = {**own, "text": text, "edit_date": own["date"] + 5}
        reply = await chat.feed({"edited_message": edited})
        no_crash(reply)
        assert len(reply.messages) == 1 and not reply.messages[0].buttons, reply.texts
        assert "Исправленное сообщение я не вижу" in reply.text, reply.texts
    assert len(chat.history) == len(history) + 3 and len(topic(harness, thread)) == in_topic
    assert sent  # (the support screen was there before)


# ---- masking ----------------------------------------------------------------------------------


# Found: with `_SEP*` the card pattern runs on across «. », « - » into the number that follows a
# card («4242 … 4242. 15 марта», «… 4242 - 2 раза»); the longer run fails Luhn and
# `mask_personal` leaves the whole of it, card included, unmasked (with one separator between
# digits, before 5ab7c43, these cards were masked)
# Was (review 28): a card number followed by «. 15» or « - 2» reaches staff unmasked
@pytest.mark.parametrize(
    "text",
    [
        "Списали с карты 4242 4242 4242 4242. 15 марта ещё раз",
        "Карта 4242 4242 4242 4242 - 2 раза списали",
        "Шаг 2. 4242 4242 4242 4242",
    ],
)
def test_a_card_followed_or_preceded_by_a_short_number_is_masked(text: str) -> None:
    masked, changed = support.mask_personal(text)
    assert changed and "4242" not in masked, masked


@pytest.mark.parametrize(
    "text",
    [
        "УИН 18810177230000012345 оплачен",
        "Лицевой счёт 1234567890, ИНН 7707083893, КПП 770701001",
        "Сумма 1 000 000 ₽, потом 2 500 000 ₽",
        "Счёт 40817810099910004312 в Сбербанке",
        "1e5 ² ١٢٣ 1234",
    ],
)
def test_what_staff_need_is_not_masked(text: str) -> None:
    assert support.mask_personal(text) == (text, False)


# Found: `_CARD` checks only the character next to its ends, so it takes any 13–19 digits of a
# longer run that meet at a separator: a billing period «01.10.2026 - 31.10.2026» (16 digits;
# with « - » newly taken by `_SEP*`) and a UIN written in groups of four («1881 0177 6258 5178
# 1288»: its first 16 digits) are masked whenever those digits pass Luhn — about one in ten —
# and staff cannot see which period or which UIN the resident means
# Was (review 28): a billing period or a UIN in groups of four is masked as a card one time in ten
@pytest.mark.parametrize(
    "text",
    [
        "Период 01.10.2026 - 31.10.2026 начислен дважды",
        "Период 01.10.2026-31.10.2026 начислен дважды",
        "УИН 1881 0177 6258 5178 1288 оплачен",
        "УИН 1881 0177 0110 7043 4192 оплачен",
    ],
)
def test_a_period_or_a_grouped_uin_is_not_masked_as_a_card(text: str) -> None:
    assert support.mask_personal(text) == (text, False)


@pytest.mark.parametrize(
    "text",
    [
        "4242\u00ad4242\u200b4242\u20604242",
        "4242 .-. 4242 .-. 4242 .-. 4242",
        "8\u200b916\u200b123\u200b45\u200b67",
    ],
)
def test_cards_and_phones_with_invisible_or_long_separators_are_masked(text: str) -> None:
    masked, changed = support.mask_personal(text)
    assert changed and masked == support.MASK, masked


def test_five_thousand_digits_and_separators_are_read_in_one_pass() -> None:
    # Digits and separators alternating are read in one pass by both patterns. Not pinned
    # here (tests do not time): the Russian phone pattern's `_SEP*\(?_SEP*` and
    # `_SEP*\)?_SEP*` backtrack cubically on «8», a long run of separators, three digits and
    # another long run (review 28's report).
    text = ("1 2-3.4\u200b" * 700)[:5000]
    masked, _changed = support.mask_personal(text)
    assert len(masked) <= len(text)


# ---- settings: a screen drawn before 5ab7c43 -------------------------------------------------


# Found: `on_toggle` now reads «<kind>.on|off» and takes anything else for forged; a «Настройки»
# screen drawn before the update (its buttons carry the bare kind, «report_status») answers
# every tap with «Эта кнопка не работает» and changes nothing
# Was (review 28): a settings button drawn before the update (a bare kind) is answered as forged
# and changes nothing
async def test_a_settings_button_drawn_before_the_update_still_toggles(harness: Harness) -> None:
    from tests.flows.test_charity_points_meters import linked
    from tests.flows.test_hostile_input import press_again

    assert harness.app is not None
    chat = await linked(harness)
    await chat.press("Настройки")
    message = chat.last_message
    assert message is not None
    [button] = [b for b in message.buttons if b.text == "✅ Ответы по обращениям"]
    data = button.callback_data or ""
    assert data.endswith(":report_status.off"), data
    old = data.removesuffix(".off")  # as the screen was drawn before the update
    reply = await press_again(chat, dict(message.payload), old)
    no_crash(reply)
    assert not any("не работает" in a.text for a in reply.callback_answers if a.text)
    async with harness.app.uow_factory() as uow:
        muted = await uow.notification_settings.muted(chat.chat_id)
    assert "report_status" in muted


async def test_a_forged_settings_state_is_refused(harness: Harness) -> None:
    from tests.flows.test_charity_points_meters import linked
    from tests.flows.test_hostile_input import press_again

    assert harness.app is not None
    chat = await linked(harness)
    await chat.press("Настройки")
    message = chat.last_message
    assert message is not None
    [button] = [b for b in message.buttons if b.text == "✅ Ответы по обращениям"]
    prefix = (button.callback_data or "").removesuffix("report_status.off")
    async with harness.app.uow_factory() as uow:
        before = await uow.notification_settings.muted(chat.chat_id)
    for item in ["report_status.maybe", ".off", "report_status.off.on", "x" * 50, "<b>.on"]:
        reply = await press_again(chat, dict(message.payload), prefix + item)
        no_crash(reply)
    async with harness.app.uow_factory() as uow:
        muted = await uow.notification_settings.muted(chat.chat_id)
    assert muted == before


# ---- a payment status the bot does not know ---------------------------------------------------


# Found: `PaymentStatus.read` maps a status the bot does not know («processing», say) to PENDING,
# which everywhere means «the bank waits for 3-D Secure»: the resident is told «Осталось
# подтвердить оплату на странице банка» with no bank page to open (the payment has no
# confirmation_url), «История платежей» offers «⏳ Продолжить оплату» for it, and an autopay whose
# charge comes back so is paused as «needs confirmation» and its run closed as FAILED
# (`domain.autopaying._after_payment`) — the opposite of the «in doubt» the reading promises
# Was (review 28): a payment status the bot does not know is told as «confirm on the bank's page»
# with no page to open
async def test_a_payment_status_the_bot_does_not_know_is_not_a_bank_page_to_confirm(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sandbox import payments_api
    from tests.flows.test_charity_points_meters import linked

    real = payments_api.payment_json

    def processing(payment: Any) -> dict[str, Any]:
        body = real(payment)
        body["status"] = "processing"  # a status the platform added after this bot
        return body

    chat = await linked(harness)
    monkeypatch.setattr(payments_api, "payment_json", processing)
    await chat.press("Мои счета")
    await chat.press(1)
    await chat.press("Оплатить выбранные")
    reply = await chat.press("Оплатить")
    no_crash(reply)
    if "странице банка" in reply.text:
        assert chat.url_buttons, (reply.texts, chat.buttons)
