"""Input that must not crash, through the real Dispatcher: digits that are not 0-9 at every
typed step (a friendly answer, what was entered kept), forged callback data for every
factory and forged dialog item ids (answered, nothing done), and one-shot buttons pressed
twice (one effect, the second press answered)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from bot.jobs import deliver_notifications, poll_reports, run_autopays
from bot.ratelimit import MemoryLimiter
from sandbox.conversation import Conversation, Reply
from tests.flows.conftest import Harness
from tests.flows.test_autopay_and_outbox import MSK, set_up_donation
from tests.flows.test_charity_points_meters import linked, open_first_fund
from tests.flows.test_meter_readings import in_the_window, open_meter
from tests.flows.test_receipt_photo import epd_qr, receipt_photo
from tests.flows.test_reports import advance, sent_report, start_pothole
from tests.flows.test_support import STAFF_ID, in_group, person, support_harness  # noqa: F401
from tests.money_text import nb

FOREIGN = ["²", "①", "١٥٠٠", "１５００"]
FRIENDLY = "обычными цифрами 0–9"
FORGED = "Эта кнопка не работает"
ALREADY = "Уже сделано"
CRASH = ("Что-то пошло не так", "{???}")


def no_crash(reply: Reply) -> None:
    """An unhandled error re-raises out of the Dispatcher (handlers/errors.py `unexpected`),
    so reaching here means none; the resident must not read the generic apology either."""
    for text in CRASH:
        assert text not in reply.text


# ---- typed steps: open the step, then what a correct value does afterwards ------------------

Step = Callable[[Harness], Awaitable[Conversation]]


async def uin_step(harness: Harness) -> Conversation:
    chat = await linked(harness, "demo-standard")
    await chat.press("Добавить счёт по УИН")
    return chat


async def sts_step(harness: Harness) -> Conversation:
    chat = await linked(harness)
    await chat.press("Штрафы по СТС")
    return chat


async def donation_step(harness: Harness) -> Conversation:
    chat = await linked(harness)
    await open_first_fund(chat)
    await chat.press("Другая сумма")
    return chat


async def points_step(harness: Harness) -> Conversation:
    chat = await linked(harness)
    await chat.press("Баллы")
    await chat.press("Перевести баллы в фонд")
    await chat.press(1)
    return chat


async def receipt_amount_step(harness: Harness) -> Conversation:
    chat = await linked(harness)
    await chat.send_photo(receipt_photo(epd_qr(Sum=None)))
    await chat.press("Оплатить")
    return chat


async def meter_step(harness: Harness) -> Conversation:
    chat = await linked(harness)
    await in_the_window(harness)
    await open_meter(chat, "Холодная вода")
    return chat


async def autopay_day_step(harness: Harness) -> Conversation:
    chat = await linked(harness)
    await chat.press("Автоплатежи")
    await chat.press("Подключить автоплатёж")
    await chat.press("Пожертвование фонду")
    await chat.press(1)
    await chat.press("Раз в месяц")
    return chat


async def autopay_money_step(harness: Harness) -> Conversation:
    chat = await autopay_day_step(harness)
    await chat.send("25")
    return chat


async def report_address_step(harness: Harness) -> Conversation:
    return await start_pothole(harness)


# (step, what the foreign digit gets, a correct value, what it then shows: the earlier
# choices are still there)
STEPS: dict[str, tuple[Step, str, str, str]] = {
    "uin": (uin_step, "УИН состоит из цифр", "18810136161108008161", "Нашли начисление"),
    "sts": (sts_step, FRIENDLY, "77АВ123456", ""),
    "donation": (donation_step, FRIENDLY, "1 500", "Пожертвование фонду «"),
    "points": (points_step, FRIENDLY, "100", "Перевести 100 баллов"),
    "receipt amount": (receipt_amount_step, FRIENDLY, "1 500 ₽", nb("Сумма: 1 500,00 ₽")),
    "meter reading": (meter_step, FRIENDLY, "", ""),
    "autopay day": (autopay_day_step, FRIENDLY, "25", ""),
    "autopay amount": (autopay_money_step, FRIENDLY, "150", ""),
    "report address": (report_address_step, FRIENDLY, "", ""),
}


@pytest.mark.parametrize("step", list(STEPS))
async def test_a_foreign_digit_at_each_typed_step_gets_a_friendly_answer(
    harness: Harness, step: str
) -> None:
    opener, expected, valid, after = STEPS[step]
    chat = await opener(harness)
    asking = chat.last_text

    for typed in FOREIGN:
        reply = await chat.send(typed)
        no_crash(reply)
        assert expected in reply.text, (step, typed)
        assert chat.last_text in (asking, *reply.texts)  # the same step, nothing moved on

    if valid:
        reply = await chat.send(valid)
        no_crash(reply)
        assert FRIENDLY not in reply.text
        assert after in chat.last_text or after in reply.text


async def test_the_autopay_set_up_keeps_day_and_amount_around_foreign_digits(
    harness: Harness,
) -> None:
    chat = await autopay_day_step(harness)
    assert FRIENDLY in (await chat.send("2²")).text
    await chat.send("25")
    assert FRIENDLY in (await chat.send("１５０")).text
    await chat.send("150")
    await chat.press("•• 4242")
    assert nb("150,00 ₽") in chat.last_text and "каждое 25-е число" in chat.last_text


async def test_a_meter_reading_after_foreign_digits_is_accepted(harness: Harness) -> None:
    chat = await linked(harness)
    period = await in_the_window(harness)
    last = await open_meter(chat, "Холодная вода")
    reply = await chat.send("١٢٣")
    assert FRIENDLY in reply.text and "Не понял показание" in reply.text
    reply = await chat.send(f"{last + 1.5:.3f}".replace(".", ","))
    assert f"за {period} принято" in reply.text


async def test_staff_resident_command_with_foreign_digits(support_harness: Harness) -> None:  # noqa: F811
    harness = support_harness
    staff = person(harness, STAFF_ID, "Ольга")
    for typed in ("/resident ١", "/resident ²", "/resident １２", "/resident #①"):
        reply = await in_group(harness, staff, typed)
        message = reply.elsewhere[0].message
        assert message is not None and FRIENDLY in message.text, typed


# ---- forged callback data --------------------------------------------------------------------


async def forge(chat: Conversation, data: str) -> Reply:
    """A callback query with `data` under the latest bot message, as a modified client
    would send it."""
    message = chat.last_message
    assert message is not None
    query_id = f"forged-{len(chat.telegram.events)}"
    chat.telegram.open_callback_query(query_id)
    query = {
        "id": query_id,
        "from": dict(chat.user),
        "message": dict(message.payload),
        "chat_instance": f"local-{chat.chat_id}",
        "data": data,
    }
    return await chat.feed({"callback_query": query})


FORGED_DATA = [
    # AutopaySkip: autopay id, period
    "as:abc:2026-11",
    "as:99999999999999999999:2026-11",
    "as:9223372036854775808:2026-11",
    "as:0:2026-11",
    "as:١:2026-11",
    "as:+5:2026-11",
    "as:1_0:2026-11",
    "as:1:<b>",
    "as:1:2026-11:extra",
    "as:1",
    # AutopayOpen: autopay id
    "ao:abc",
    "ao:-1",
    "ao:²",
    "ao:99999999999999999999",
    # ReportAction: action, report number
    "ra:zz:NG-2026-000001",
    "ra:ok:<script>",
    "ra:ok:",
    "ra:no:NG 1",
    "ra:show:１",
]


@pytest.mark.parametrize("data", FORGED_DATA)
async def test_forged_callback_data_is_answered_not_raised(harness: Harness, data: str) -> None:
    chat = await linked(harness)
    before = chat.history

    reply = await forge(chat, data)

    no_crash(reply)
    assert [answer.text for answer in reply.callback_answers] == [
        "Эта кнопка не работает. Откройте нужный раздел из меню."
    ]
    assert reply.messages == [] and chat.history == before  # nothing else happened


@pytest.mark.parametrize("data", ["as:424242:2026-11", "as:9223372036854775807:2026-W48"])
async def test_another_residents_autopay_is_refused(harness: Harness, data: str) -> None:
    chat = await linked(harness)
    reply = await forge(chat, data)
    no_crash(reply)
    assert any(FORGED in (a.text or "") for a in reply.callback_answers)
    assert reply.messages == []


def forged_item(chat: Conversation, button: str, item: str) -> str:
    """The callback data of a dialog's Select `button` with its item id replaced."""
    message = chat.last_message
    assert message is not None
    [target] = [b for b in message.buttons if b.text == button]
    assert target.callback_data is not None
    head, _, _ = target.callback_data.rpartition(":")
    return f"{head}:{item}"


@pytest.mark.parametrize("item", ["١", "99999999999999999999", "-1", "<b>", ""])
async def test_forged_dialog_item_ids_are_refused(harness: Harness, item: str) -> None:
    chat = await linked(harness)
    await chat.press("Автоплатежи")
    await chat.press("Подключить автоплатёж")
    await chat.press("Пожертвование фонду")
    fund = chat.last_message.buttons[0].text if chat.last_message else ""
    reply = await forge(chat, forged_item(chat, fund, item))
    no_crash(reply)
    assert reply.answered and fund in chat.buttons  # still picking a fund
    await chat.press(fund)
    await chat.press("Раз в неделю")
    weekdays = chat.screen().text
    reply = await forge(chat, forged_item(chat, "пятница", item))
    no_crash(reply)
    assert reply.answered and chat.screen().text == weekdays  # still asking for the day


@pytest.mark.parametrize("item", ["١", "99999999999999999999", "-1", "7"])
async def test_a_forged_address_pick_is_refused(harness: Harness, item: str) -> None:
    chat = await start_pothole(harness)
    await chat.send("Тверская")
    if not chat.last_message or not chat.last_message.buttons:
        pytest.skip("the sandbox found no address to pick from")
    first = chat.last_message.buttons[0].text
    reply = await forge(chat, forged_item(chat, first, item))
    no_crash(reply)
    assert reply.answered
    assert first in chat.buttons  # still picking


# ---- one-shot buttons pressed twice -----------------------------------------------------------


async def press_again(chat: Conversation, payload: dict[str, Any], data: str) -> Reply:
    """A second tap: the same message as the client had it (still with its keyboard)."""
    query_id = f"again-{len(chat.telegram.events)}"
    chat.telegram.open_callback_query(query_id)
    query = {
        "id": query_id,
        "from": dict(chat.user),
        "message": payload,
        "chat_instance": f"local-{chat.chat_id}",
        "data": data,
    }
    return await chat.feed({"callback_query": query})


async def test_skip_this_time_pressed_twice_skips_once(harness: Harness) -> None:
    from datetime import datetime

    chat = harness.chat()
    await harness.link(chat)
    harness.clock.now = datetime(2026, 11, 24, 12, 0, tzinfo=MSK)
    await set_up_donation(harness, chat, 25)
    assert harness.app is not None
    await run_autopays(harness.app, harness.clock)
    await deliver_notifications(harness.app, harness.clock, MemoryLimiter())
    reminder = chat.last_message
    assert reminder is not None and "спишем по автоплатежу" in reminder.text
    payload = dict(reminder.payload)
    [skip] = [b for b in reminder.buttons if b.text == "Пропустить этот раз"]
    assert skip.callback_data is not None

    first = await chat.press("Пропустить этот раз")
    second = await press_again(chat, payload, skip.callback_data)

    no_crash(first)
    no_crash(second)
    assert "в этот раз не спишем" in first.text
    assert second.messages == [] and second.edits == []
    assert [a.text for a in second.callback_answers] == [
        "Уже сделано — эта кнопка срабатывает один раз."
    ]
    assert sum("в этот раз не спишем" in t for t in chat.history) == 1


async def test_report_confirm_pressed_twice_confirms_once(harness: Harness) -> None:
    chat, number = await sent_report(harness)
    assert harness.app is not None
    await advance(harness, number, to="answered", status_notes="Яму заделали")
    await poll_reports(harness.app, harness.clock)
    await deliver_notifications(harness.app, harness.clock, MemoryLimiter())
    notification = chat.last_message
    assert notification is not None
    payload = dict(notification.payload)
    [confirm] = [b for b in notification.buttons if "Подтвердить" in b.text]
    assert confirm.callback_data is not None

    first = await chat.press("Подтвердить")
    second = await press_again(chat, payload, confirm.callback_data)

    no_crash(first)
    no_crash(second)
    assert "Спасибо, что подтвердили" in first.text
    assert second.messages == [] and second.edits == []
    assert any(ALREADY in (a.text or "") for a in second.callback_answers)
    assert sum("Спасибо, что подтвердили" in t for t in chat.history) == 1
    assert not any("Срок подтверждения истёк" in t for t in chat.history)
