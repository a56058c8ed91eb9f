"""A Telegram invoice is one more road to the same obligation: once the resident goes on with
another way to pay, the invoice left in the chat can no longer take money."""

from __future__ import annotations

import asyncio

from aiogram.methods import SendInvoice

from domain.payments import TelegramRefund, prepare_bills_payment, register_external_payment
from tests.flows.conftest import Harness
from tests.flows.test_charity_points_meters import open_first_fund
from tests.flows.test_payments import ledger
from tests.flows.test_receipt_photo import epd_qr, receipt_photo
from tests.flows.test_telegram_payments import invoice_for_first_bill, pre_checkout
from tests.flows.test_telegram_payments import tg_harness as tg_harness  # the fixture
from tests.money_text import nb


async def _invoice(harness: Harness) -> SendInvoice:
    return harness.telegram.calls_of(SendInvoice)[-1]


async def test_a_donation_invoice_is_void_after_paying_by_card(tg_harness: Harness) -> None:
    chat = tg_harness.chat()
    await tg_harness.link(chat, "demo-standard")
    await open_first_fund(chat)
    await chat.press(nb("500,00 ₽"))
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


async def test_retiring_an_intent_never_erases_a_telegram_charge_recorded_meanwhile(
    tg_harness: Harness,
) -> None:
    """A card payment for the same bill is prepared while Telegram's successful_payment is
    registered: the retirement reads the invoice's intent as NEW and uncharged, the charge id
    is committed, then the retirement runs — it must not wipe the charge."""
    h = tg_harness
    chat, bill, payload = await invoice_for_first_bill(h)
    ans = await pre_checkout(chat, payload, bill["amount"])
    assert ans.ok
    app = h.app
    read_done, t2_committed = asyncio.Event(), asyncio.Event()

    async def t1():
        async with app.uow_factory() as uow:
            resident = await uow.residents.get(chat.chat_id)
            orig = uow.payment_intents.recent

            async def recent(*a, **k):
                r = await orig(*a, **k)
                read_done.set()
                await t2_committed.wait()
                return r

            uow.payment_intents.recent = recent
            intent, _ = await prepare_bills_payment(
                uow, app.city, app.city, resident, [bill["id"]], None, app.clock()
            )
            await uow.commit()
            return intent

    async def t2():
        await read_done.wait()
        async with app.uow_factory() as uow:
            resident = await uow.residents.get(chat.chat_id)
            orig_commit = uow.commit
            first = True

            async def commit():
                nonlocal first
                await orig_commit()
                if first:
                    first = False
                    t2_committed.set()
                    await asyncio.sleep(0.5)  # let T1 retire now

            uow.commit = commit
            return await register_external_payment(
                uow, app.city, app.city, resident, payload, "tg-charge-1", app.clock(), "prov-1"
            )

    _, out = await asyncio.gather(t1(), t2())
    async with app.uow_factory() as uow:
        tg = await uow.payment_intents.by_key(payload)
    assert tg is not None
    assert tg.external_charge_id == "tg-charge-1"  # the money Telegram took is on record
    assert isinstance(out, TelegramRefund) or out.kind.value == "paid"
