"""Setting up a top-up autopay («Пополнять «Тройку» или парковку») through the real Dispatcher
and the sandbox: by threshold (charged once per drop of the balance) and monthly (charged on
its day, once), from the result screen of a paid top-up, and what a resident may get wrong on
the way (forged buttons, bad amounts, a threshold + amount over the card's ceiling, a double
tap on «Подключить»)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from domain.autopay import AutopayKind, Frequency
from sandbox.conversation import Conversation
from tests.flows.conftest import Harness
from tests.flows.test_autopay_setup import MSK, SET_UP_AT, ledger, linked, stored, tick
from tests.flows.test_hostile_input import forge, forged_item, no_crash
from tests.money_text import nb

CARD = "0012345678"  # demo-full's «Тройка», 150 ₽ on it, 3 000 ₽ at most
TROIKA = "Пополнение «Тройки» № 0012 345 678"
FORGED_TOAST = "Эта кнопка не работает. Откройте нужный раздел из меню."
FOREIGN = "Пишите обычными цифрами 0–9"


async def set_balance(harness: Harness, balance: int, account: str = CARD) -> None:
    await harness.sandbox_call(
        "PATCH",
        "/sandbox/topup-accounts",
        json={"service": "troika", "account": account, "balance": balance},
    )


async def to_frequency(chat: Conversation) -> None:
    """«Автоплатежи» → «➕» → «Пополнять …» → the own «Тройка»: «Как часто?»."""
    await chat.press("Автоплатежи")
    await chat.press("➕ Подключить автоплатёж")
    await chat.press("Пополнять «Тройку» или парковку")
    assert "Какую карту или парковочный счёт пополнять?" in chat.last_text
    await chat.press(TROIKA)
    assert "Как часто?" in chat.last_text


async def test_a_threshold_topup_is_set_up_and_charged_once_per_drop(harness: Harness) -> None:
    chat = await linked(harness)
    await to_frequency(chat)
    await chat.press("Когда баланс ниже суммы")
    assert "ниже какой суммы" in chat.last_text
    await chat.send("100")
    assert "На сколько пополнять?" in chat.last_text
    await chat.send("500")
    assert "С какой карты списывать?" in chat.last_text
    await chat.press("•• 4242")
    summary = chat.last_text
    assert TROIKA in summary and nb("500,00 ₽") in summary
    assert nb("когда баланс ниже 100,00 ₽") in summary and "•• 4242" in summary
    reply = await chat.press("Подключить")
    assert "Автоплатёж подключён" in reply.text and "каждые полчаса" in reply.text
    [autopay] = await stored(harness, chat)
    assert (autopay.kind, autopay.schedule.frequency) == (AutopayKind.TOPUP, Frequency.BELOW)
    assert (autopay.amount, autopay.threshold) == (50_000, 10_000)
    assert (autopay.topup_service, autopay.topup_account) == ("troika", CARD)

    await tick(harness, SET_UP_AT + timedelta(minutes=1))  # 150 ₽ ≥ 100 ₽: nothing
    assert await ledger(harness) == []
    await set_balance(harness, 5_000)
    await tick(harness, SET_UP_AT + timedelta(minutes=40))
    [charge] = await ledger(harness)
    assert (charge["amount"], charge["card_last4"]) == (50_000, "4242")
    assert charge["idempotence_key"] == f"ap-{autopay.id}-d-0-1"  # the first drop's
    assert "✅ Автоплатёж: " + TROIKA + " — списано " + nb("500,00 ₽") in chat.last_text
    await tick(harness, SET_UP_AT + timedelta(minutes=80))
    await tick(harness, SET_UP_AT + timedelta(minutes=120))
    assert len(await ledger(harness)) == 1  # the same drop: not again

    # a new amount is checked as at the set-up: 100 ₽ + 2 950 ₽ would overfill the card
    await chat.press(1)  # on the list under «✅ Автоплатёж подключён»
    await chat.press("Сумма или лимит")
    reply = await chat.send("2 950")
    assert "карта переполнится" in reply.text and "На сколько пополнять?" in chat.last_text
    reply = await chat.send("2 900")
    assert nb("2 900,00 ₽, когда баланс ниже 100,00 ₽") in reply.text
    [changed] = await stored(harness, chat)
    assert (changed.amount, changed.threshold) == (290_000, 10_000)


async def test_a_monthly_topup_is_charged_on_its_day_once(harness: Harness) -> None:
    chat = await linked(harness)
    await to_frequency(chat)
    await chat.press("Раз в месяц")
    await chat.send("25")
    await chat.send("300")
    await chat.press("•• 4242")
    summary = chat.last_text
    assert TROIKA in summary and nb("300,00 ₽") in summary and "каждое 25-е число" in summary
    assert "25.11.2026" in summary  # first charge: tomorrow at 10:00
    assert "Автоплатёж подключён" in (await chat.press("Подключить")).text
    [autopay] = await stored(harness, chat)
    assert (autopay.schedule.frequency, autopay.schedule.day) == (Frequency.MONTHLY, 25)
    assert (autopay.amount, autopay.threshold) == (30_000, None)

    await tick(harness, datetime(2026, 11, 25, 9, 59, tzinfo=MSK))
    assert await ledger(harness) == []
    due = datetime(2026, 11, 25, 10, 0, 5, tzinfo=MSK)
    await tick(harness, due)
    [charge] = await ledger(harness)
    assert charge["amount"] == 30_000
    assert charge["idempotence_key"] == f"ap-{autopay.id}-2026-11-1"
    assert "списано " + nb("300,00 ₽") in chat.last_text
    for moment in (due + timedelta(minutes=1), due + timedelta(days=1)):
        await tick(harness, moment)
    assert len(await ledger(harness)) == 1


async def test_connect_after_a_paid_topup_sets_up_that_card(harness: Harness) -> None:
    chat = await linked(harness)
    await chat.press("Пополнить")
    await chat.press("Тройка")
    await chat.send("1234 567 890")  # not the profile's card: typed; 2 950 ₽ of 3 000 ₽
    await chat.send("20")
    pay = next(b for b in chat.buttons if b.startswith("Оплатить"))
    await chat.press(pay)
    assert "✅ Оплачено" in chat.last_text
    await chat.press("Подключить автоплатёж")
    assert "Как часто?" in chat.last_text
    await chat.press("Раз в неделю")
    await chat.press("пятница")
    # the amount just paid is kept: straight to the card
    assert "С какой карты списывать?" in chat.last_text
    await chat.press("•• 4242")
    summary = chat.last_text
    assert "Пополнение «Тройки» № 1234 567 890" in summary and nb("20,00 ₽") in summary
    assert "каждую неделю, пятница" in summary
    await chat.press("Подключить")
    [autopay] = await stored(harness, chat)
    assert (autopay.topup_service, autopay.topup_account) == ("troika", "1234567890")
    assert (autopay.amount, autopay.method_id) == (2_000, "pm-full-4242")
    assert "Ваши автоплатежи" in chat.last_text


def forged_button(chat: Conversation, widget: str) -> str:
    """The callback data of a plain button `widget` of the dialog shown last (shown or not)."""
    message = chat.last_message
    assert message is not None
    data = next(b.callback_data for b in message.buttons if b.callback_data)
    return data.rpartition("\x1d")[0] + "\x1d" + widget


async def test_hostile_input_on_the_way_creates_nothing(harness: Harness) -> None:
    chat = await linked(harness)
    # «Когда баланс ниже» forged into a donation's set-up (not shown there): refused
    await chat.press("Автоплатежи")
    await chat.press("➕ Подключить автоплатёж")
    await chat.press("Пожертвование фонду")
    await chat.press(1)
    assert "Когда баланс ниже суммы" not in chat.buttons
    reply = await forge(chat, forged_button(chat, "below"))
    no_crash(reply)
    assert [a.text for a in reply.callback_answers] == [FORGED_TOAST]
    assert "Как часто?" in chat.last_text
    await chat.press("Отмена")

    await chat.press("➕ Подключить автоплатёж")
    await chat.press("Пополнять «Тройку» или парковку")
    for item in ["١", "99999999999999999999", "-1", "<b>", "", "troika:0012345678"]:
        reply = await forge(chat, forged_item(chat, TROIKA, item))
        no_crash(reply)
        assert [a.text for a in reply.callback_answers] == [FORGED_TOAST], item
        assert "Какую карту или парковочный счёт пополнять?" in chat.last_text
    await chat.press(TROIKA)
    for widget in ["belo", "below" * 10, "<b>"]:  # no such button: nothing happens
        no_crash(await forge(chat, forged_button(chat, widget)))
        assert "Как часто?" in chat.last_text
    await chat.press("Когда баланс ниже суммы")

    threshold_bad = "Нужна сумма больше нуля"
    for typed, said in [
        ("1e5", threshold_bad),
        ("²", FOREIGN),
        ("0", threshold_bad),
        ("-1", threshold_bad),
        ("9" * 5000, threshold_bad),
        ("<b>1</b> & 2", threshold_bad),
    ]:
        reply = await chat.send(typed)
        no_crash(reply)
        assert said in reply.text, (typed[:20], reply.text)
        assert "ниже какой суммы" in chat.last_text  # asked again
    await chat.send("1 000,50")
    amount_bad = "Напишите сумму больше нуля"
    for typed, said in [
        ("1e5", amount_bad),
        ("²", FOREIGN),
        ("0", amount_bad),
        ("-1", amount_bad),
        ("9" * 5000, amount_bad),
        ("10 000 000", "слишком много"),
    ]:
        reply = await chat.send(typed)
        no_crash(reply)
        assert said in reply.text, (typed[:20], reply.text)
        assert "не меньше 50" not in reply.text  # a top-up has no donation's minimum
        assert "На сколько пополнять?" in chat.last_text
    # 1 000,50 ₽ + 2 500 ₽ is more than the card may hold: told when typed, with the most
    # that fits, and asked again («Подключить» refusing it is in test_review15_console.py)
    reply = await chat.send("2 500")
    no_crash(reply)
    assert "карта переполнится" in reply.text and nb("1 999,50 ₽") in reply.text
    assert "На сколько пополнять?" in chat.last_text
    assert await stored(harness, chat) == []
    await chat.send("1 999,50")  # the threshold chosen is kept; exactly 3 000 ₽ fits
    await chat.press("•• 4242")
    summary = chat.last_text
    assert nb("когда баланс ниже 1 000,50 ₽") in summary and nb("1 999,50 ₽") in summary
    confirm = next(b for b in chat.last_message.buttons if b.text == "Подключить")
    await asyncio.gather(chat.press(confirm.text), chat.press(confirm.text))  # a double tap
    [autopay] = await stored(harness, chat)
    assert (autopay.threshold, autopay.amount, autopay.method_id) == (
        100_050,
        199_950,
        "pm-full-4242",
    )
    assert sum("Автоплатёж подключён" in t for t in chat.history) == 1
    assert await ledger(harness) == []  # 150 ₽ is below the threshold: checked at once
    await tick(harness, SET_UP_AT + timedelta(seconds=5))
    await tick(harness, SET_UP_AT + timedelta(minutes=31))
    [charge] = await ledger(harness)
    assert (charge["amount"], charge["card_last4"]) == (199_950, "4242")
