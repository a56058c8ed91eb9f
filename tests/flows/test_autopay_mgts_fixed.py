"""A fixed-amount autopay for a bill service that takes one (МГТС), through the real Dispatcher
and the sandbox: «Автоплатежи» → «➕» → «Счёт за услугу» → «МГТС» asks «Как платить?»;
«Фиксированная сумма по расписанию» builds a TOPUP autopay to the profile's МГТС number,
charged at 10:00 on its day once and shown in the history. ЕПД is not listed by the platform:
it never offers the choice. A bill autopay of МГТС and a fixed one would both pay МГТС: the
second is refused. Hostile input on the way: forged buttons and items, «1e5», «²», «0»,
5 000 digits, markup."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from domain.autopay import AutopayKind, Frequency
from domain.linking import StaticSession
from domain.topups import TopupService
from tests.flows.conftest import Harness
from tests.flows.test_autopay_setup import MSK, ledger, linked, stored, tick
from tests.flows.test_autopay_topups import forged_button
from tests.flows.test_hostile_input import forge, forged_item, no_crash
from tests.money_text import nb

PHONE = "74951234567"  # demo-full's МГТС number (in its profile at the sandbox), 120 ₽ on it
WHAT = "МГТС, телефон +7 495 123-45-67 — фиксированная сумма"
HOW_ASK = "Как платить за МГТС?"
BY_BILL, FIXED = "По выставленному счёту", "Фиксированная сумма по расписанию"
AMOUNT_ASK = "Сколько платить каждый раз?"
FORGED_TOAST = "Эта кнопка не работает. Откройте нужный раздел из меню."


async def test_a_fixed_mgts_autopay_is_charged_on_its_day_once_and_in_history(
    harness: Harness,
) -> None:
    chat = await linked(harness)
    await chat.press("Автоплатежи")
    await chat.press("➕ Подключить автоплатёж")
    await chat.press("Счёт за услугу")
    for item in ["<b>", "", "troika", "mgts:fixed", "mgts" * 20]:  # forged services: refused
        reply = await forge(chat, forged_item(chat, "МГТС", item))
        no_crash(reply)
        assert [a.text for a in reply.callback_answers] == [FORGED_TOAST], item
        assert "За какую услугу?" in chat.last_text
    await chat.press("МГТС")
    assert HOW_ASK in chat.last_text and "аванс" in chat.last_text
    assert BY_BILL in chat.buttons and FIXED in chat.buttons
    await chat.press(FIXED)
    assert "Как часто?" in chat.last_text
    assert "Когда баланс ниже суммы" not in chat.buttons  # a wallet's, not МГТС's
    reply = await forge(chat, forged_button(chat, "below"))
    assert [a.text for a in reply.callback_answers] == [FORGED_TOAST]
    assert "Как часто?" in chat.last_text
    await chat.press("Раз в месяц")
    await chat.send("25")
    assert AMOUNT_ASK in chat.last_text
    assert nb("от 1,00 ₽ до 15 000,00 ₽") in chat.last_text  # the platform's limits
    bad, outside = "Напишите сумму больше нуля", "МГТС принимает от"
    for typed, said in [
        ("1e5", bad),
        ("²", "Пишите обычными цифрами 0–9"),
        ("0", bad),
        ("-1", bad),
        ("9" * 5000, bad),
        ("<b>600</b> & 1", bad),
        ("0,50", outside),
        ("15 000,01", outside),
        ("200 000", "слишком много"),  # above the operator's autopay ceiling
    ]:
        reply = await chat.send(typed)
        no_crash(reply)
        assert said in reply.text, (typed[:20], reply.text)
        assert AMOUNT_ASK in chat.last_text  # asked again
    await chat.send("600")
    await chat.press("•• 4242")
    summary = chat.last_text
    assert WHAT in summary and nb("600,00 ₽") in summary and "каждое 25-е число" in summary
    assert "25.11.2026" in summary  # first charge: tomorrow at 10:00
    confirm = next(b for b in chat.last_message.buttons if b.text == "Подключить")
    await asyncio.gather(chat.press(confirm.text), chat.press(confirm.text))  # a double tap
    assert sum("Автоплатёж подключён" in t for t in chat.history) == 1
    [autopay] = await stored(harness, chat)
    assert (autopay.kind, autopay.topup_service, autopay.topup_account) == (
        AutopayKind.TOPUP,
        "mgts",
        PHONE,
    )
    assert (autopay.schedule.frequency, autopay.schedule.day) == (Frequency.MONTHLY, 25)
    assert (autopay.amount, autopay.threshold, autopay.method_id) == (60_000, None, "pm-full-4242")

    await tick(harness, datetime(2026, 11, 25, 9, 59, tzinfo=MSK))
    assert await ledger(harness) == []
    due = datetime(2026, 11, 25, 10, 0, 5, tzinfo=MSK)
    await tick(harness, due)
    [charge] = await ledger(harness)
    assert (charge["amount"], charge["card_last4"]) == (60_000, "4242")
    assert charge["idempotence_key"] == f"ap-{autopay.id}-2026-11-1"
    assert f"✅ Автоплатёж: {WHAT} — списано " + nb("600,00 ₽") in chat.last_text
    for moment in (due + timedelta(minutes=1), due + timedelta(hours=3), due + timedelta(days=1)):
        await tick(harness, moment)
    assert len(await ledger(harness)) == 1  # once
    resident = await harness.stored_resident(chat)
    assert resident is not None and harness.app is not None
    account = await harness.app.city.topup_balance(
        StaticSession(resident.tokens), TopupService.MGTS, PHONE
    )
    assert account.balance == 12_000 + 60_000  # credited once

    await chat.send("/start")
    await chat.press("История платежей")
    assert nb("600,00 ₽") in chat.last_text
    assert f"Оплата услуг МГТС, телефон {PHONE}" in chat.last_text

    # МГТС a second way: refused at once, the fixed one offered to open
    await chat.send("/start")
    await chat.press("Автоплатежи")
    assert WHAT in " ".join(chat.buttons)
    await chat.press("➕ Подключить автоплатёж")
    await chat.press("Счёт за услугу")
    await chat.press("МГТС")
    told = chat.last_text
    assert told.startswith(f"У вас уже есть автоплатёж {WHAT}") and HOW_ASK not in told
    assert "Открыть автоплатёж" in chat.buttons and "Подключить" not in chat.buttons
    await chat.press("Отмена")

    # the wallets' list («Тройка», parking) does not offer the МГТС number
    await chat.press("➕ Подключить автоплатёж")
    await chat.press("Пополнять «Тройку» или парковку")
    assert "Какую карту или парковочный счёт пополнять?" in chat.last_text
    assert not any("МГТС" in b for b in chat.buttons)
    await chat.press("‹ Назад")

    # ЕПД is not among the platform's fixed-amount services: straight to its limit
    await chat.press("Счёт за услугу")
    await chat.press("ЕПД")
    assert "До какой суммы платить" in chat.last_text and HOW_ASK not in chat.last_text
    assert FIXED not in chat.buttons
    for widget in ("fixed", "by_bill"):  # not in this step: nothing happens
        no_crash(await forge(chat, forged_button(chat, widget)))
        assert "До какой суммы платить" in chat.last_text
    assert len(await stored(harness, chat)) == 1


async def test_a_bill_autopay_of_mgts_refuses_a_fixed_one_and_standard_pays_its_number(
    harness: Harness,
) -> None:
    chat = await linked(harness)
    await chat.press("Автоплатежи")
    await chat.press("➕ Подключить автоплатёж")
    await chat.press("Счёт за услугу")
    await chat.press("МГТС")
    await chat.press(BY_BILL)
    assert "До какой суммы платить" in chat.last_text
    await chat.send("1 500")
    await chat.press("•• 4242")
    assert nb("счёт целиком, до 1 500,00 ₽") in chat.last_text
    await chat.press("Подключить")
    [by_bill] = await stored(harness, chat)
    assert (by_bill.kind, by_bill.limit) == (AutopayKind.BILL, 150_000)

    await chat.press("➕ Подключить автоплатёж")
    await chat.press("Счёт за услугу")
    await chat.press("МГТС")  # the bill autopay pays МГТС already: no «Как платить?»
    assert chat.last_text.startswith("У вас уже есть автоплатёж за МГТС")
    assert FIXED not in chat.buttons
    reply = await forge(chat, forged_button(chat, "fixed"))  # forged into the summary
    no_crash(reply)
    assert len(await stored(harness, chat)) == 1

    # demo-standard: its own МГТС number (a 499 line), weekly
    other = harness.chat(100002, "Елена")
    await harness.link(other, "demo-standard")
    await other.press("Автоплатежи")
    await other.press("➕ Подключить автоплатёж")
    await other.press("Счёт за услугу")
    await other.press("МГТС")
    await other.press(FIXED)
    await other.press("Раз в неделю")
    await other.press("пятница")
    await other.send("300")
    await other.press("•• 4242")
    assert "МГТС, телефон +7 499 765-43-21" in other.last_text
    assert "каждую неделю, пятница" in other.last_text
    await other.press("Подключить")
    [fixed] = await stored(harness, other)
    assert (fixed.topup_service, fixed.topup_account, fixed.amount) == (
        "mgts",
        "74997654321",
        30_000,
    )
