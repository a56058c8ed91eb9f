"""A Telegram invoice is one more road to the same obligation: once the resident goes on with
another way to pay, the invoice left in the chat can no longer take money."""

from __future__ import annotations

from aiogram.methods import SendInvoice

from tests.flows.conftest import Harness
from tests.flows.test_charity_points_meters import open_first_fund
from tests.flows.test_payments import ledger
from tests.flows.test_receipt_photo import epd_qr, receipt_photo
from tests.flows.test_telegram_payments import pre_checkout
from tests.flows.test_telegram_payments import tg_harness as tg_harness  # the fixture


async def _invoice(harness: Harness) -> SendInvoice:
    return harness.telegram.calls_of(SendInvoice)[-1]


async def test_a_donation_invoice_is_void_after_paying_by_card(tg_harness: Harness) -> None:
    chat = tg_harness.chat()
    await tg_harness.link(chat, "demo-standard")
    await open_first_fund(chat)
    await chat.press("500,00 ₽")
    await chat.press("Другой способ оплаты")
    await chat.press("Оплатить в Telegram")
    await chat.press("Оплатить")
    invoice = await _invoice(tg_harness)
    await chat.press("Выбрать другую карту")
    await chat.press("•• 4242")
    await chat.press(next(b for b in chat.buttons if b.startswith("Оплатить")))
    assert len(await ledger(tg_harness)) == 1
    answer = await pre_checkout(chat, invoice.payload, invoice.prices[0].amount)
    assert answer.ok is False  # Telegram is told not to take the money
    assert len(await ledger(tg_harness)) == 1


async def test_a_receipt_invoice_is_void_after_paying_the_receipt_again(
    tg_harness: Harness,
) -> None:
    chat = tg_harness.chat()
    await tg_harness.link(chat)
    await chat.send_photo(receipt_photo(epd_qr()))
    await chat.press("Оплатить")
    await chat.press("Другой способ оплаты")
    await chat.press("Оплатить в Telegram")
    await chat.press("Оплатить")
    invoice = await _invoice(tg_harness)
    await chat.press("Готово")
    await chat.send_photo(receipt_photo(epd_qr()))
    await chat.press("Оплатить")
    await chat.press(next(b for b in chat.buttons if b.startswith("Оплатить")))
    answer = await pre_checkout(chat, invoice.payload, invoice.prices[0].amount)
    assert answer.ok is False
    assert len(await ledger(tg_harness)) == 1
