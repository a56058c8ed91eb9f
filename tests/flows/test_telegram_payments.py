"""Telegram Payments: refused at pre-checkout when the bill changed, registered exactly once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiogram.methods import AnswerPreCheckoutQuery, SendInvoice

from sandbox import SandboxServer
from sandbox.conversation import Conversation
from tests.contract.sandbox_client import FakeClock
from tests.flows.conftest import Harness, _harness, settings_for
from tests.flows.test_payments import bill_buttons, city_bills, ledger


@pytest.fixture
async def tg_harness(
    request: pytest.FixtureRequest, tmp_path: Path, sandbox: SandboxServer, clock: FakeClock
) -> AsyncIterator[Harness]:
    settings = settings_for(tmp_path, payments_provider_token="381764678:TEST:100500")
    async for h in _harness(settings, sandbox, clock, request):
        yield h


async def invoice_for_first_bill(harness: Harness) -> tuple[Conversation, dict[str, Any], str]:
    chat = harness.chat()
    await harness.link(chat)
    await chat.press("Мои счета")
    bill = (await city_bills(harness, chat))[0]
    await chat.press(bill_buttons(chat)[0])
    await chat.press("Оплатить выбранные")
    await chat.press("Другой способ оплаты")
    await chat.press("Оплатить в Telegram")
    assert "Telegram (счёт придёт в этот чат)" in chat.last_text
    reply = await chat.press("Оплатить")
    assert "Счёт отправлен ниже" in reply.text
    invoice = harness.telegram.calls_of(SendInvoice)[-1]
    assert isinstance(invoice, SendInvoice)
    assert invoice.currency == "RUB" and invoice.prices[0].amount == bill["amount"]
    return chat, bill, invoice.payload


async def pre_checkout(chat: Conversation, payload: str, amount: int) -> AnswerPreCheckoutQuery:
    await chat.feed(
        {
            "pre_checkout_query": {
                "id": f"pcq-{payload[:6]}-{amount}",
                "from": {"id": chat.chat_id, "is_bot": False, "first_name": "Мария"},
                "currency": "RUB",
                "total_amount": amount,
                "invoice_payload": payload,
            }
        }
    )
    answer = chat.telegram.calls_of(AnswerPreCheckoutQuery)[-1]
    assert isinstance(answer, AnswerPreCheckoutQuery)
    return answer


async def successful_payment(chat: Conversation, payload: str, amount: int, charge: str) -> str:
    reply = await chat.feed(
        {
            "message": {
                "message_id": 10_000 + len(chat.telegram.calls),
                "date": 0,
                "chat": {"id": chat.chat_id, "type": "private", "first_name": "Мария"},
                "from": {"id": chat.chat_id, "is_bot": False, "first_name": "Мария"},
                "successful_payment": {
                    "currency": "RUB",
                    "total_amount": amount,
                    "invoice_payload": payload,
                    "telegram_payment_charge_id": charge,
                    "provider_payment_charge_id": "yk-" + charge,
                },
            }
        }
    )
    return reply.text


async def test_a_bill_paid_meanwhile_is_refused_at_pre_checkout(tg_harness: Harness) -> None:
    chat, bill, payload = await invoice_for_first_bill(tg_harness)
    await tg_harness.sandbox_call("PATCH", f"/sandbox/bills/{bill['id']}", json={"status": "paid"})
    answer = await pre_checkout(chat, payload, bill["amount"])
    assert answer.ok is False and "уже оплачен" in (answer.error_message or "")


async def test_a_changed_amount_is_refused_at_pre_checkout(tg_harness: Harness) -> None:
    chat, bill, payload = await invoice_for_first_bill(tg_harness)
    await tg_harness.sandbox_call(
        "PATCH", f"/sandbox/bills/{bill['id']}", json={"amount": bill["amount"] + 100}
    )
    answer = await pre_checkout(chat, payload, bill["amount"])
    assert answer.ok is False and "Сумма счёта изменилась" in (answer.error_message or "")


async def test_a_foreign_payload_is_refused(tg_harness: Harness) -> None:
    chat, bill, _payload = await invoice_for_first_bill(tg_harness)
    answer = await pre_checkout(chat, "not-our-invoice", bill["amount"])
    assert answer.ok is False


async def test_a_duplicate_successful_payment_is_registered_once(tg_harness: Harness) -> None:
    chat, bill, payload = await invoice_for_first_bill(tg_harness)
    answer = await pre_checkout(chat, payload, bill["amount"])
    assert answer.ok is True
    first = await successful_payment(chat, payload, bill["amount"], "tg-charge-1")
    second = await successful_payment(chat, payload, bill["amount"], "tg-charge-1")
    assert "Платёж получен и зачислен" in first and "Платёж получен" in second
    charges = await ledger(tg_harness)
    assert len(charges) == 1
    assert charges[0]["external_charge_id"] == "tg-charge-1" and charges[0]["card_last4"] is None
    assert bill["id"] not in {b["id"] for b in await city_bills(tg_harness, chat)}
    # Once paid, a late pre-checkout for the same invoice is refused.
    assert (await pre_checkout(chat, payload, bill["amount"])).ok is False
