"""Review 27b: the flows reviewed least so far — meter readings, city points, notification
settings and quiet hours, payment history and unlinking — broken as a resident and an attacker
would. The defects found were pinned by strict xfails, now «Was (review 27b)» comments above
their tests; what held is pinned by the ordinary tests below them."""

from __future__ import annotations

from typing import Any

import pytest

from bot.metrics import ERRORS
from domain.linking import StaticSession
from domain.meter_reminders import MeterRound, remind_meter_windows
from sandbox import meters as sandbox_meters
from sandbox.conversation import Conversation, Reply
from sandbox.telegram_double import ChatMessage
from tests.flows.conftest import Harness
from tests.flows.test_charity_points_meters import at, linked
from tests.flows.test_hostile_input import FORGED, no_crash, press_again
from tests.flows.test_meter_readings import (
    everything_sent,
    in_the_window,
    next_month,
    open_meter,
    period_of,
    points_balance,
)
from tests.flows.test_quiet_hours import deliver, quiet_of
from tests.flows.test_review15_prizes_money import NO_ANSWER, _transfer_debits
from tests.money_text import nb

CRASH = ("Что-то пошло не так", "{???}")


async def faults(harness: Harness, **body: Any) -> None:
    await harness.sandbox_call("PUT", "/sandbox/faults", json=body)


async def forged_press(chat: Conversation, message: ChatMessage, data: str) -> Reply:
    """A press of `data` under `message` as it is now (a client that sends what it likes)."""
    return await press_again(chat, dict(message.payload), data)


def intent_prefix(message: ChatMessage) -> str:
    """aiogram-dialog's callback data is «<intent id>\\x1d<widget id>[:<item>]»."""
    data = next(b.callback_data for b in message.buttons if b.callback_data)
    assert data is not None and "\x1d" in data
    return data.split("\x1d")[0]


async def pay_first_bill(chat: Conversation) -> None:
    await chat.press("Мои счета")
    await chat.press(1)
    await chat.press("Оплатить выбранные")
    await chat.press("Оплатить")
    await chat.send("/start")


# =============================================================================== defects


# ---- points: the balance after a failure ------------------------------------------------------


# Was (review 27b): after «Баллы» failed to load, the transfer says «У вас 0 баллов» and refuses
# any amount (handlers/points.py on_amount reads a balance never stored)
async def test_a_balance_that_failed_to_load_is_not_zero_at_the_transfer(harness: Harness) -> None:
    chat = await linked(harness)  # 1 250 points at the city
    await faults(harness, status=503, paths=["/api/v1/points"])
    await chat.press("Баллы")
    assert "временно недоступен" in chat.last_text
    assert "Перевести баллы в фонд" in chat.buttons  # still offered
    await faults(harness)  # the city is back a moment later
    await chat.press("Перевести баллы в фонд")
    await chat.press(1)
    ask = chat.last_text
    reply = await chat.send("100")

    assert nb("У вас 0 баллов") not in ask, ask  # she has 1 250
    assert "Подтвердить" in chat.buttons, reply.text  # 100 of 1 250 is allowed
    assert _transfer_debits(harness) == []


# Was (review 27b): a transfer whose answer was lost cannot be repeated as told when it took most
# of the balance: the local balance check refuses it before the kept key is used
async def test_a_lost_transfer_of_most_of_the_balance_can_be_repeated_as_told(
    harness: Harness,
) -> None:
    chat = await linked(harness)  # 1 250 points
    await chat.press("Баллы")
    await chat.press("Перевести баллы в фонд")
    await chat.press(1)
    await chat.send("1000")
    await faults(harness, **NO_ANSWER)
    await chat.press("Подтвердить")
    await faults(harness)
    assert "повторите тот же перевод" in chat.last_text  # what the bot asks her to do
    assert _transfer_debits(harness) == [-1000]  # made at the city: 250 left

    await chat.send("/start")
    await chat.press("Баллы")
    await chat.press("Перевести баллы в фонд")
    await chat.press(1)
    reply = await chat.send("1000")  # the same transfer, as she was told

    assert "Подтвердить" in chat.buttons, reply.text  # told «не больше, чем у вас есть (250)»
    await chat.press("Подтвердить")
    assert nb("получил 1 000 баллов") in chat.last_text  # the platform replays the key
    assert _transfer_debits(harness) == [-1000]


# ---- forged page numbers ----------------------------------------------------------------------


# Was (review 27b): a forged negative page («__pager__:-5») of a one-page text raises IndexError
# in handlers/widgets.py Paged._render_text (the guard admits «-»)
async def test_a_forged_negative_page_of_a_text_is_answered_not_crashed(harness: Harness) -> None:
    chat = await linked(harness)
    await pay_first_bill(chat)
    await chat.press("История платежей")
    message = chat.last_message
    assert message is not None and "Последние платежи" in message.text
    before = ERRORS._value.get()
    try:
        reply = await forged_press(chat, message, f"{intent_prefix(message)}\x1d__pager__:-5")
    except IndexError as error:
        pytest.fail(f"a forged page raised out of the Dispatcher: {error!r}")
    no_crash(reply)
    assert ERRORS._value.get() == before
    assert "Последние платежи" in chat.last_text


# Was (review 27b): a forged negative page of a button list (funds, prizes) shows a page with no
# buttons numbered «0» or «-2» (aiogram-dialog ScrollingGroup, guard admits «-»)
@pytest.mark.parametrize("page", ["-1", "-3"])
async def test_a_forged_negative_page_of_the_funds_keeps_funds_on_screen(
    harness: Harness, page: str
) -> None:
    chat = await linked(harness)
    await chat.press("Баллы")
    await chat.press("Перевести баллы в фонд")
    message = chat.last_message
    assert message is not None
    first = [b.text for b in message.buttons][:6]
    reply = await forged_press(chat, message, f"{intent_prefix(message)}\x1dfunds_page:{page}")
    no_crash(reply)
    labels = chat.buttons
    assert not [b for b in labels if b == "0" or b.startswith("-")], labels
    assert labels[:6] == first, labels  # the first page, as for any page out of range


# ---- settings: a double tap on a kind ---------------------------------------------------------


# Was (review 27b): a double tap on «✅ Ответы по обращениям» toggles twice — the kind stays on
# (handlers/settings.py on_toggle flips instead of setting the state pressed)
async def test_a_double_tap_on_a_notification_kind_turns_it_off(harness: Harness) -> None:
    assert harness.app is not None
    chat = await linked(harness)
    await chat.press("Настройки")
    message = chat.last_message
    assert message is not None
    [button] = [b for b in message.buttons if b.text == "✅ Ответы по обращениям"]
    payload = dict(message.payload)  # what her client shows while both taps leave it

    await chat.press("✅ Ответы по обращениям")
    reply = await press_again(chat, payload, button.callback_data or "")

    no_crash(reply)
    async with harness.app.uow_factory() as uow:
        muted = await uow.notification_settings.muted(chat.chat_id)
    assert "report_status" in muted  # she tapped «off» twice
    assert "❌ Ответы по обращениям" in chat.buttons


# ---- readings: a correction skips the typo check ----------------------------------------------


# Was (review 27b): a correction is sent at once however huge the jump (+90 000 kWh):
# handlers/meters.py on_value checks IMPLAUSIBLE only for a period's first reading
async def test_a_correction_with_a_huge_jump_is_confirmed_before_it_is_sent(
    harness: Harness,
) -> None:
    chat = await linked(harness)
    await in_the_window(harness)
    last = await open_meter(chat, "Электричество")
    await chat.send(f"{last + 60:.0f}")
    assert "принято" in chat.last_text
    await chat.press("Исправить показание")

    reply = await chat.send(f"{last + 90060:.0f}")  # one digit too many

    assert "очень много" in reply.text, reply.text
    assert "исправлено" not in reply.text


# ---- history: a status the bot does not know --------------------------------------------------


# Was (review 27b): one payment the city reports with a status the bot does not know («refunded»)
# breaks the whole «История платежей» (city/payments.py _payment: PaymentStatus(...) raises
# ValueError)
async def test_a_refunded_payment_keeps_the_history_readable(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sandbox import payments_api

    real = payments_api.payment_json

    def refunded(payment: Any) -> dict[str, Any]:
        body = real(payment)
        body["status"] = "refunded"
        return body

    chat = await linked(harness)
    await pay_first_bill(chat)
    monkeypatch.setattr(payments_api, "payment_json", refunded)
    before = ERRORS._value.get()
    try:
        reply = await chat.press("История платежей")
    except ValueError as error:
        pytest.fail(f"the history raised: {error!r}")
    no_crash(reply)
    assert ERRORS._value.get() == before
    assert "Последние платежи" in chat.last_text


# ---- readings: the window is the bot's copy of the rule, not the city's -----------------------


# Was (review 27b): the bot decides a meter's window with its own copy of the rule
# (domain/meters.py open_window) and ignores the city's `window.open`: a window the city keeps
# open is refused with «откроется <a date already past>»
async def test_a_window_the_city_keeps_open_takes_the_reading(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox_meters, "ELECTRICITY_CLOSES_DAY", 28)  # the city extends it
    chat = await linked(harness)
    moment = next_month(harness, 27)
    await at(harness, moment)
    await chat.press("Показания счётчиков")
    # the city's window (open until the 28th); the bot says «приём с 15.» — a date past
    assert "приём до 28." in chat.last_text, chat.last_text
    await chat.press("Электричество")
    assert "откроется 15." not in chat.last_text, chat.last_text
    last = float(chat.last_text.split("Прошлое показание: ")[1].split()[0])

    reply = await chat.send(f"{last + 60:.0f}")

    assert f"за {period_of(moment)} принято" in reply.text, reply.text


# =============================================================================== what held


@pytest.mark.parametrize(
    "typed",
    [
        "٣٤",  # Arabic-Indic digits
        "12³",
        "1e5",
        "-1",
        "\u200b425",  # a zero-width space before the digits
        "<b>425</b>",
        "4" * 5000,
        "12,5,5",
        "425.",
    ],
)
async def test_a_hostile_reading_is_refused_and_the_next_one_is_taken(
    harness: Harness, typed: str
) -> None:
    chat = await linked(harness)
    period = await in_the_window(harness)
    before = await points_balance(harness, chat)
    last = await open_meter(chat, "Холодная вода")

    reply = await chat.send(typed)

    no_crash(reply)
    assert "принято" not in reply.text
    assert "Холодная вода" in chat.last_text  # still asking for this meter
    assert await points_balance(harness, chat) == before
    whole = int(last) + 2
    reply = await chat.send(f"{whole}.50")  # «12.50»: two decimals, a dot
    assert f"Показание {whole}.500 м³ за {period} принято" in reply.text
    assert await points_balance(harness, chat) == before + 20
    if typed in ("4" * 5000, "<b>425</b>"):
        assert not [t for t in everything_sent(harness) if typed in t]  # never echoed


async def test_a_lost_answer_of_a_reading_is_retried_and_credited_once(harness: Harness) -> None:
    chat = await linked(harness)
    period = await in_the_window(harness)
    before = await points_balance(harness, chat)
    last = await open_meter(chat, "Холодная вода")
    await faults(harness, fail_after_processing=1, paths=["/api/v1/meters/"])

    reply = await chat.send(f"{last + 2:.3f}")

    await faults(harness)
    assert f"за {period} принято" in reply.text and "+20 баллов" in reply.text
    assert await points_balance(harness, chat) == before + 20


async def test_no_answer_at_all_then_the_meter_says_it_was_sent(harness: Harness) -> None:
    """Every attempt taken by the city, no answer: the resident is told the city did not
    answer; opening the meter again says what was sent, and a second value is not sent as a
    second reading — one credit."""
    chat = await linked(harness)
    period = await in_the_window(harness)
    before = await points_balance(harness, chat)
    last = await open_meter(chat, "Горячая вода")
    await faults(harness, **NO_ANSWER, paths=["/api/v1/meters/"])  # the POST alone
    reply = await chat.send(f"{last + 2:.3f}")
    await faults(harness)
    no_crash(reply)
    assert "временно недоступен" in reply.text and "принято" not in reply.text
    assert await points_balance(harness, chat) == before + 20  # the city took it

    await chat.press("‹ Назад")
    await chat.press("Горячая вода")
    assert f"уже передано — {last + 2:.3f} м³" in chat.last_text
    reply = await chat.send(f"{last + 3:.3f}")
    assert "нажмите «Исправить показание»" in reply.text
    assert await points_balance(harness, chat) == before + 20
    await chat.press("‹ Назад")
    assert f"{last + 2:.3f} м³ за {period}" in chat.last_text


async def test_a_restart_before_a_huge_reading_is_confirmed_twice_credits_once(
    harness: Harness,
) -> None:
    chat = await linked(harness)
    period = await in_the_window(harness)
    before = await points_balance(harness, chat)
    last = await open_meter(chat, "Электричество")
    reply = await chat.send(f"{last + 5000:.0f}")
    assert "очень много" in reply.text
    message = chat.last_message
    assert message is not None
    payload = dict(message.payload)
    [yes] = [b for b in message.buttons if b.text == "Да, всё верно"]

    await harness.restart()
    first = await chat.press("Да, всё верно")
    again = await press_again(chat, payload, yes.callback_data or "")

    no_crash(first)
    no_crash(again)
    assert f"Показание {last + 5000:.0f} кВт·ч за {period} принято" in first.text
    assert await points_balance(harness, chat) == before + 20


async def test_two_meters_in_a_row_are_each_credited_once(harness: Harness) -> None:
    chat = await linked(harness)
    period = await in_the_window(harness)
    before = await points_balance(harness, chat)
    cold = await open_meter(chat, "Холодная вода")
    assert "принято" in (await chat.send(f"{cold + 1:.3f}")).text
    await chat.press("‹ Назад")
    await chat.press("Горячая вода")
    hot = float(chat.last_text.split("Прошлое показание: ")[1].split()[0])
    assert "принято" in (await chat.send(f"{hot + 1:.3f}".replace(".", ","))).text
    await chat.press("‹ Назад")

    assert f"{cold + 1:.3f} м³ за {period}" in chat.last_text
    assert f"{hot + 1:.3f} м³ за {period}" in chat.last_text
    assert chat.last_text.count(f"✅ передано за {period}") == 2
    assert await points_balance(harness, chat) == before + 40


async def test_the_reminder_button_pressed_late_and_after_unlinking(harness: Harness) -> None:
    assert harness.app is not None
    app = harness.app
    chat = await linked(harness)
    await at(harness, next_month(harness, 15, hour=12))
    async with app.uow_factory() as uow:
        assert await remind_meter_windows(uow, app.city, app.city, harness.clock(), MeterRound())
    await deliver(harness)
    reminder = chat.last_message
    assert reminder is not None and "Открыт приём показаний" in reminder.text
    payload = dict(reminder.payload)
    [button] = [b for b in reminder.buttons if "Передать показания" in b.text]

    await at(harness, next_month(harness, 10))  # a month later: every window closed
    reply = await chat.press("Передать показания", message_id=reminder.message_id)
    no_crash(reply)
    assert "Ваши счётчики" in chat.last_text and "приём с 15." in chat.last_text

    await chat.send("/start")
    await chat.press("Отвязать аккаунт")
    await chat.press("Да, отвязать")
    reply = await press_again(chat, payload, button.callback_data or "")
    no_crash(reply)
    assert [a.text for a in reply.callback_answers] == [
        "Сначала привяжите аккаунт mos.ru — кнопка «Привязать аккаунт» в меню."
    ]
    assert "Ваши счётчики" not in reply.text
    forged = await press_again(chat, payload, "mw:1")
    assert next(a.text or "" for a in forged.callback_answers).startswith(FORGED)


async def test_old_points_and_meter_buttons_after_unlinking_do_nothing(harness: Harness) -> None:
    chat = await linked(harness)
    await in_the_window(harness)
    await chat.press("Баллы")
    await chat.press("Перевести баллы в фонд")
    await chat.press(1)
    await chat.send("100")
    confirm = chat.last_message
    assert confirm is not None and "Подтвердить" in chat.buttons
    [yes] = [b for b in confirm.buttons if b.text == "Подтвердить"]
    confirm_payload = dict(confirm.payload)
    await chat.send("/start")
    last = await open_meter(chat, "Холодная вода")
    resident = await harness.stored_resident(chat)
    assert resident is not None and harness.app is not None
    session = StaticSession(resident.tokens)
    meters_before = {m.id: m.last_reading for m in await harness.app.city.meters(session)}

    await chat.send("/start")
    await chat.press("Отвязать аккаунт")
    await chat.press("Да, отвязать")
    pressed = await press_again(chat, confirm_payload, yes.callback_data or "")
    typed = await chat.send(f"{last + 1:.3f}")

    no_crash(pressed)
    no_crash(typed)
    assert _transfer_debits(harness) == []
    assert "принято" not in typed.text
    await harness.link(chat)  # the same account again: nothing was sent meanwhile
    resident = await harness.stored_resident(chat)
    assert resident is not None
    after = {
        m.id: m.last_reading for m in await harness.app.city.meters(StaticSession(resident.tokens))
    }
    assert after == meters_before


@pytest.mark.parametrize(
    ("typed", "told"),
    [
        ("7:5-8:00", "Не понял время"),  # one digit of minutes
        ("-1", "Не понял время"),
        ("23:00", "Не понял время"),  # one end only
        ("٢٣-٠٧", "Не понял время"),  # Arabic-Indic digits
        ("24:30-07:00", "Такого времени нет"),
        ("23:60-07:00", "Такого времени нет"),
        ("00:00-24:00", "совпадают"),  # «24:00» is midnight: the same ends
    ],
)
async def test_hostile_quiet_hours_are_refused_and_nothing_changes(
    harness: Harness, typed: str, told: str
) -> None:
    chat = await linked(harness)
    await chat.press("Настройки")
    await chat.press("Тихие часы")
    before = await quiet_of(harness, chat)

    reply = await chat.send(typed)

    no_crash(reply)
    assert told in reply.text
    assert "Выберите время или напишите своё" in chat.last_text
    assert await quiet_of(harness, chat) == before


@pytest.mark.parametrize(
    ("typed", "shown"),
    [("07.30-08.00", "07:30–08:00"), ("24:00–07:00", "00:00–07:00"), ("23 - 7", "23:00–07:00")],
)
async def test_quiet_hours_typed_the_ways_people_write_them(
    harness: Harness, typed: str, shown: str
) -> None:
    chat = await linked(harness)
    await chat.press("Настройки")
    await chat.press("Тихие часы")
    await chat.send(typed)
    assert f"Тихие часы: {shown}" in chat.last_text
