"""Review of «Пополнить» (issue 15 part 3): what a resident, an operator and an attacker do to
a top-up. Each test is named after the behaviour that must hold."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiogram.methods import SendInvoice
from sqlalchemy import select

from domain.payments import IntentStatus
from sandbox import SandboxServer, funds
from sandbox.conversation import Conversation
from sandbox.payments_api import PAYMENTS_KEY
from storage.models import PaymentIntentRow
from tests.contract.sandbox_client import FakeClock
from tests.flows.conftest import Harness, _harness, settings_for
from tests.flows.test_charity_points_meters import linked, open_first_fund
from tests.flows.test_hostile_input import forge, forged_item, no_crash
from tests.flows.test_hostile_text import assert_clean
from tests.flows.test_payments import ledger
from tests.flows.test_telegram_payments import pre_checkout, successful_payment
from tests.flows.test_telegram_payments import tg_harness as tg_harness
from tests.money_text import nb

FORGED = "Эта кнопка не работает. Откройте нужный раздел из меню."


async def test_a_topup_that_no_longer_fits_is_refused_at_pre_checkout_before_telegram_charges(
    tg_harness: Harness,
) -> None:
    """Telegram asks before taking the money; for a bill the bot asks the city whether it is
    still unpaid at that amount. A «Тройка» that filled up meanwhile (topped up at a metro
    machine) must be refused there too — not charged by Telegram and then owed back."""
    harness = tg_harness
    chat = await linked(harness, "demo-full")
    await chat.press("Пополнить")
    await chat.press("Тройка")
    await chat.send("1234567890")  # 2 950 ₽ of 3 000 ₽: room for 50 ₽
    await chat.send("50")
    assert nb("Итого: 50,00 ₽") in chat.last_text
    await chat.press("Другой способ оплаты")
    await chat.press("Оплатить в Telegram")
    reply = await chat.press("Оплатить")
    assert "Счёт отправлен ниже" in reply.text
    invoice = harness.telegram.calls_of(SendInvoice)[-1]
    assert isinstance(invoice, SendInvoice) and invoice.prices[0].amount == 5_000
    await harness.sandbox_call(
        "PATCH",
        "/sandbox/topup-accounts",
        json={"service": "troika", "account": "1234567890", "balance": 300_000},
    )
    answer = await pre_checkout(chat, invoice.payload, 5_000)
    if answer.ok:  # what happens next shows the harm: money taken, refused, owed back
        said = await successful_payment(chat, invoice.payload, 5_000, "tg-topup-1")
        assert answer.ok is False, f"Telegram took 50 ₽ the city refused; the bot said: {said!r}"
    assert "Эту сумму сейчас зачислить нельзя" in (answer.error_message or "")
    assert await ledger(harness) == []


async def _lost_topup(harness: Harness, card: str, preset: str) -> Conversation:
    chat = await linked(harness, "demo-full")
    await chat.press("Пополнить")
    await chat.press("Тройка")
    await chat.send(card)
    await chat.press(nb(preset))
    await harness.sandbox_call("PUT", "/sandbox/faults", json={"fail_after_processing": 5})
    reply = await chat.press(next(b for b in chat.buttons if b.startswith("Оплатить")))
    assert "Не оплачивайте повторно" in reply.text
    await harness.sandbox_call("PUT", "/sandbox/faults", json={})
    return chat


async def test_a_topup_whose_answer_was_lost_is_checked_after_a_restart_and_paid_once(
    harness: Harness,
) -> None:
    chat = await _lost_topup(harness, "0012345678", "500,00 ₽")
    await harness.restart()
    await chat.press("Готово")
    await chat.press("Пополнить")
    await chat.press("Тройка")
    await chat.press("0012 345 678")
    assert nb("Баланс: 650,00 ₽") in chat.last_text  # credited once, whatever the bot heard
    reply = await chat.press(nb("500,00 ₽"))
    assert "банк ещё не ответил" in reply.text
    assert not any(b.startswith("Оплатить") for b in chat.buttons), chat.buttons
    reply = await chat.press("Проверить оплату")
    assert "✅ Оплачено" in reply.text
    assert "Пополнение карты «Тройка» № 0012345678" in reply.text
    assert [c["amount"] for c in await ledger(harness)] == [50_000]
    await chat.press("Готово")
    await chat.press("История платежей")
    assert chat.last_text.count("Пополнение карты «Тройка»") == 1


async def test_a_topup_still_unanswered_is_shown_before_another_topup_of_the_same_card(
    harness: Harness,
) -> None:
    """A card whose balance the city does not show (the resident cannot see that the first
    top-up arrived): a lost 500 ₽ top-up, then «Пополнить» the same card with 1 000 ₽. As for
    a bill (any amount), the unanswered top-up must come first — «Не оплачивайте повторно»
    was the last thing the resident read, and a second key charges again."""
    chat = await _lost_topup(harness, "0300000000", "500,00 ₽")
    await chat.press("Готово")
    await chat.press("Пополнить")
    await chat.press("Тройка")
    await chat.send("0300000000")
    assert "Баланс этой карты город не показывает" in chat.last_text
    reply = await chat.press(nb("1 000,00 ₽"))
    assert "банк ещё не ответил" in reply.text, reply.text


async def _database_text(harness: Harness) -> str:
    """Every value of every table of the (SQLite) database, as one text."""
    assert harness.app is not None
    url = harness.settings.database_url
    assert url.startswith("sqlite"), url
    path = url.split("///", 1)[1]
    with sqlite3.connect(path) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        rows = [(t, row) for t in tables for row in db.execute(f'SELECT * FROM "{t}"')]
    return "\n".join(f"{table}: {row!r}" for table, row in rows)


async def test_unlinking_forgets_the_parking_phone_everywhere_and_a_topup_stays_a_topup(
    harness: Harness,
) -> None:
    """A parking account is the resident's phone. After «Отвязать» it is nowhere in the
    database (payment intents, their receipts, notifications, dialog state), and the kept
    accounting record still reads as a parking top-up, never as a bill or a donation."""
    chat = await linked(harness, "demo-standard")
    await chat.press("Пополнить")
    await chat.press("Парковочный счёт")
    await chat.press("+7 903 111-22-33")
    await chat.send("250,50")
    await chat.press("Оплатить")
    assert "✅ Оплачено" in chat.last_text
    await chat.press("Готово")
    # a second one left at the confirmation (NEW: deleted on unlinking) — typed differently
    await chat.press("Пополнить")
    await chat.press("Парковочный счёт")
    await chat.send("8 (903) 111-22-33")
    await chat.press(nb("100,00 ₽"))
    assert "Итого" in chat.last_text
    await chat.send("/start")
    await chat.press("Отвязать аккаунт")
    await chat.press("Да, отвязать")
    text = await _database_text(harness)
    for shown in ("79031112233", "9031112233", "903 111-22-33", "903 111 22 33"):
        assert shown not in text, (shown, [line for line in text.splitlines() if shown in line])
    assert harness.app is not None
    async with harness.app.uow_factory() as uow:
        rows = (await uow.session.execute(select(PaymentIntentRow))).scalars().all()
        kept = [(r.amount, r.status, r.fund_id, r.requisites, r.topup) for r in rows]
    assert kept == [
        (25_050, IntentStatus.SUCCEEDED.value, None, None, {"service": "parking", "account": "***"})
    ]


async def open_intents(harness: Harness) -> list[tuple[int, str, str | None]]:
    assert harness.app is not None
    async with harness.app.uow_factory() as uow:
        rows = (await uow.session.execute(select(PaymentIntentRow))).scalars().all()
        return [(r.amount, r.status, r.failure) for r in rows]


async def test_forged_and_doubled_topup_buttons_start_one_payment_of_a_shown_amount(
    harness: Harness,
) -> None:
    chat = await linked(harness, "demo-full")
    await chat.press("Пополнить")
    await chat.press("Тройка")
    for item in ["99999999", "", "<b>", "١", "-1", "0"]:
        reply = await forge(chat, forged_item(chat, "0012 345 678", item))
        no_crash(reply)
        assert [a.text for a in reply.callback_answers] == [FORGED], item
    await chat.press("0012 345 678")
    for item in ["0", "-1", "²", "99999999999999999999", "<b>", "", "100", "285000", "285001"]:
        reply = await forge(chat, forged_item(chat, nb("500,00 ₽"), item))
        no_crash(reply)
        assert [a.text for a in reply.callback_answers] == [FORGED], item
    for typed in ["<b>500</b>", "&", "1 000,50 & <i>", "3000.001", "1e5", "\u00b2"]:
        no_crash(await chat.send(typed))
    assert await open_intents(harness) == []  # nothing forged or malformed started a payment
    await asyncio.gather(chat.press(nb("300,00 ₽")), chat.press(nb("300,00 ₽")))
    assert nb("Итого: 300,00 ₽") in chat.last_text
    live = [i for i in await open_intents(harness) if i[2] is None]
    assert live == [(30_000, IntentStatus.NEW.value, None)], await open_intents(harness)
    pay = next(b for b in chat.buttons if b.startswith("Оплатить"))
    await asyncio.gather(chat.press(pay), chat.press(pay))
    assert [c["amount"] for c in await ledger(harness)] == [30_000]
    assert_clean(chat)


async def _telegram_invoice(harness: Harness, chat: Conversation) -> SendInvoice:
    """From the confirmation: pay in Telegram; the invoice sent."""
    await chat.press("Другой способ оплаты")
    await chat.press("Оплатить в Telegram")
    reply = await chat.press("Оплатить")
    assert "Счёт отправлен ниже" in reply.text
    invoice = harness.telegram.calls_of(SendInvoice)[-1]
    assert isinstance(invoice, SendInvoice)
    return invoice


async def test_pre_checkout_takes_a_topup_that_fits_and_refuses_a_card_the_city_lost(
    tg_harness: Harness,
) -> None:
    """The re-check must not refuse what still fits; an account the platform no longer knows
    is refused (not charged and owed back)."""
    harness = tg_harness
    chat = await linked(harness, "demo-full")
    await chat.press("Пополнить")
    await chat.press("Тройка")
    await chat.press("0012 345 678")  # 150 ₽ of 3 000 ₽
    await chat.press(nb("500,00 ₽"))
    invoice = await _telegram_invoice(harness, chat)
    assert (await pre_checkout(chat, invoice.payload, 50_000)).ok is True
    book = harness.sandbox.app[PAYMENTS_KEY].topups
    del book.accounts[("troika", "0012345678")]  # the card was closed meanwhile
    answer = await pre_checkout(chat, invoice.payload, 50_000)
    assert answer.ok is False
    assert "Город не нашёл этот счёт" in (answer.error_message or "")
    assert await ledger(harness) == []


async def test_pre_checkout_refuses_a_donation_to_a_fund_the_city_no_longer_has(
    tg_harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness = tg_harness
    chat = await linked(harness, "demo-full")
    await open_first_fund(chat)
    await chat.press(nb("300,00 ₽"))
    invoice = await _telegram_invoice(harness, chat)
    assert (await pre_checkout(chat, invoice.payload, 30_000)).ok is True
    assert harness.app is not None
    async with harness.app.uow_factory() as uow:
        intent = await uow.payment_intents.by_key(invoice.payload)
    assert intent is not None and intent.fund_id is not None
    monkeypatch.delitem(funds._BY_ID, intent.fund_id)  # the platform closed the fund
    answer = await pre_checkout(chat, invoice.payload, 30_000)
    assert answer.ok is False
    assert "фонд больше не принимает пожертвования" in (answer.error_message or "")
    assert await ledger(harness) == []


@pytest.fixture
async def low_ceiling(
    request: pytest.FixtureRequest, tmp_path: Path, sandbox: SandboxServer, clock: FakeClock
) -> AsyncIterator[Harness]:
    """An operator who set MAX_PAYMENT_RUB=5: below a parking top-up's 10 ₽ minimum."""
    settings = settings_for(tmp_path, max_payment_rub=5)
    async for h in _harness(settings, sandbox, clock, request):
        yield h


async def test_a_parking_account_under_an_operator_ceiling_below_its_minimum_says_why(
    low_ceiling: Harness,
) -> None:
    """A parking account has no balance ceiling: when no amount fits it is the operator's
    limit, and the resident reads that (the step did crash on «only a ceiling closes»)."""
    harness = low_ceiling
    chat = await linked(harness, "demo-standard")
    await chat.press("Пополнить")
    await chat.press("Парковочный счёт")
    reply = await chat.press("+7 903 111-22-33")
    no_crash(reply)
    said = "Через бот этот счёт не пополнить: город принимает пополнение от"
    assert said in chat.last_text and nb("не больше 5,00 ₽") in chat.last_text
    assert "Карта заполнена" not in chat.last_text
    assert not any("₽" in b for b in chat.buttons), chat.buttons
    for typed in ["5", "10", "<b>1</b>"]:
        reply = await chat.send(typed)
        no_crash(reply)
        assert said in reply.text
    assert await open_intents(harness) == []
    assert_clean(chat)
