"""«Пополнить»: a «Тройка» card and a parking account topped up through the pay step, once,
and shown in «История платежей»; what a resident may type wrong on the way."""

from __future__ import annotations

import asyncio

from domain.linking import StaticSession
from domain.topups import TopupService
from tests.flows.conftest import LINKED_MENU, Harness
from tests.flows.test_charity_points_meters import linked
from tests.flows.test_hostile_input import forge, forged_item, no_crash
from tests.flows.test_hostile_text import assert_clean
from tests.flows.test_payments import ledger
from tests.money_text import nb

FOREIGN = "Пишите обычными цифрами 0–9"
BAD_CARD = "Это не номер карты «Тройка»"
FORGED = "Эта кнопка не работает. Откройте нужный раздел из меню."


async def test_a_troika_topup_is_checked_paid_once_and_in_the_history(harness: Harness) -> None:
    chat = await linked(harness, "demo-full")
    await chat.press("Пополнить")
    assert "Что пополним?" in chat.last_text
    await chat.press("Тройка")
    assert "10 цифр на обороте карты" in chat.last_text
    assert "0012 345 678" in chat.buttons  # the card in the profile, offered as a button

    # what the carrier would never issue is told and asked again, nothing looked up
    for typed, said in [
        ("1e5", BAD_CARD),
        ("001234567²", FOREIGN),
        ("1" * 5000, BAD_CARD),
        ("карта", BAD_CARD),
        ("<b>0012345678</b>", BAD_CARD),
        ("123456789", BAD_CARD),
        ("9999999999", "Карт «Тройка» с таким номером не бывает"),
        ("0000 000 001", "Карта «Тройка» 0000 000 001 не найдена"),
    ]:
        reply = await chat.send(typed)
        no_crash(reply)
        assert said in reply.text, (typed, reply.text)
    # typed with spaces, as printed on the card
    reply = await chat.send("0012 345 678")
    text = reply.text
    assert "Карта «Тройка» 0012 345 678" in text
    assert nb("Баланс: 150,00 ₽") in text
    assert nb("от 1,00 ₽ до 3 000,00 ₽") in text
    assert nb("сейчас можно добавить до 2 850,00 ₽") in text
    assert [b for b in chat.buttons if "₽" in b] == [
        nb("100,00 ₽"), nb("300,00 ₽"), nb("500,00 ₽"), nb("1 000,00 ₽")
    ]  # fmt: skip

    for typed, said in [
        ("0", "Пополнить можно от"),
        ("-5", "Пополнить можно от"),
        ("1e5", "Не понял сумму"),
        ("1,005", "Не понял сумму"),
        ("²", FOREIGN),
        ("x" * 5000, "Не понял сумму"),
        ("3 000", nb("Столько не поместится: сейчас можно добавить не больше 2 850,00 ₽")),
        ("3 000,01", nb("не больше чем на 3 000,00 ₽")),
    ]:
        reply = await chat.send(typed)
        no_crash(reply)
        assert said in reply.text, (typed, reply.text)
    # a forged preset is refused: nothing starts
    reply = await forge(chat, forged_item(chat, nb("500,00 ₽"), "2999900"))
    assert [a.text for a in reply.callback_answers] == [FORGED]

    await chat.press(nb("500,00 ₽"))
    confirm = chat.last_text
    assert "Пополнение:" in confirm
    assert "• Пополнение карты «Тройка» 0012 345 678 — " + nb("500,00 ₽") in confirm
    assert nb("Итого: 500,00 ₽") in confirm
    pay = next(b for b in chat.buttons if b.startswith("Оплатить"))
    await asyncio.gather(chat.press(pay), chat.press(pay))  # a double tap
    assert "✅ Оплачено" in chat.last_text
    assert "Пополнение карты «Тройка» № 0012345678" in chat.last_text
    charges = await ledger(harness)
    assert [c["amount"] for c in charges] == [50_000]  # charged once
    await chat.press("Готово")
    assert chat.buttons == LINKED_MENU
    await chat.press("История платежей")
    assert nb("500,00 ₽") in chat.last_text
    assert "Пополнение карты «Тройка» № 0012345678" in chat.last_text
    # the card holds what was paid, once (asked through the bot's own client)
    resident = await harness.stored_resident(chat)
    assert resident is not None and harness.app is not None
    session = StaticSession(resident.tokens)
    card = await harness.app.city.topup_balance(session, TopupService.TROIKA, "0012345678")
    assert card.balance == 15_000 + 50_000
    assert_clean(chat)


async def test_a_parking_topup_from_the_profile_is_paid_and_in_the_history(
    harness: Harness,
) -> None:
    chat = await linked(harness, "demo-standard")
    await chat.press("Пополнить")
    await chat.press("Парковочный счёт")
    assert "привязан к номеру мобильного телефона" in chat.last_text
    assert "+7 903 111-22-33" in chat.buttons
    reply = await forge(chat, forged_item(chat, "+7 903 111-22-33", "12345"))
    assert [a.text for a in reply.callback_answers] == [FORGED]
    for typed, said in [
        ("+7 495 123-45-67", "Это не номер мобильного телефона"),
        ("8 916 000 00 00", "Парковочного счёта с номером +7 916 000-00-00 нет"),
    ]:
        reply = await chat.send(typed)
        assert said in reply.text, (typed, reply.text)
    await chat.press("+7 903 111-22-33")
    text = chat.last_text
    assert "Парковочный счёт +7 903 111-22-33" in text
    assert nb("Баланс: 0,00 ₽") in text
    assert nb("от 10,00 ₽ до 15 000,00 ₽") in text
    assert "не больше" not in text  # no ceiling on a parking account
    reply = await chat.send("5")
    assert nb("Пополнить можно от 10,00 ₽") in reply.text
    await chat.send("250,50")
    line = "• Пополнение парковочного счёта +7 903 111-22-33 — " + nb("250,50 ₽")
    assert line in chat.last_text
    await chat.press("Оплатить")
    assert "✅ Оплачено" in chat.last_text
    assert [c["amount"] for c in await ledger(harness)] == [25_050]
    await chat.press("Готово")
    await chat.press("История платежей")
    assert "Пополнение парковочного счёта 79031112233" in chat.last_text
    assert_clean(chat)


async def test_a_full_troika_takes_no_amount_and_a_refused_topup_charges_nothing(
    harness: Harness,
) -> None:
    chat = await linked(harness, "demo-full")
    await chat.press("Пополнить")
    await chat.press("Тройка")
    await chat.send("1234567890")  # 2 950 ₽ of 3 000 ₽
    assert [b for b in chat.buttons if "₽" in b] == []  # no preset fits in 50 ₽
    await chat.send("50")
    assert nb("Итого: 50,00 ₽") in chat.last_text
    # the card filled up meanwhile (topped up at a metro ticket machine)
    await harness.sandbox_call(
        "PATCH",
        "/sandbox/topup-accounts",
        json={"service": "troika", "account": "1234567890", "balance": 300_000},
    )
    await chat.press("Оплатить")
    assert "Эту сумму сейчас зачислить нельзя — деньги не списаны" in chat.last_text
    assert await ledger(harness) == []
    await chat.press("Готово")
    await chat.press("Пополнить")
    await chat.press("Тройка")
    reply = await chat.send("1234 567 890")
    assert "Карта заполнена" in reply.text
    reply = await chat.send("10")
    assert "Карта заполнена" in reply.text
    assert await ledger(harness) == []
    assert_clean(chat)
