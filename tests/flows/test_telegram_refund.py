"""Telegram Payments took the money but the city will not register it (the bill was paid or its
amount changed between the pre-checkout and successful_payment, or a newer invoice replaced
this one): the refund owed is recorded on the intent, support's Dashboard is told once with the
charge id, the resident is told the money comes back, and it is logged as an error."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiogram.methods import SendInvoice
from sqlalchemy import select
from structlog.testing import capture_logs

from bot.jobs import deliver_notifications, support_dashboard
from bot.ratelimit import MemoryLimiter
from domain.money import format_rub
from domain.payments import IntentStatus, PaymentIntent
from domain.support import DASHBOARD_TELEGRAM_REFUND
from sandbox import SandboxServer
from storage.models import NotificationRow
from tests.contract.sandbox_client import FakeClock
from tests.flows.conftest import Harness, _harness, settings_for
from tests.flows.test_payments import bill_buttons, city_bills, ledger
from tests.flows.test_support import SUPPORT_CHAT, assert_no_personal_data, dashboard
from tests.flows.test_telegram_payments import (
    invoice_for_first_bill,
    pre_checkout,
    successful_payment,
)

TOKEN = "381764678:TEST:100500"


@pytest.fixture
async def refund_harness(
    request: pytest.FixtureRequest, tmp_path: Path, sandbox: SandboxServer, clock: FakeClock
) -> AsyncIterator[Harness]:
    """Telegram Payments on, and a support supergroup with its «Dashboard» topic made."""
    settings = settings_for(tmp_path, payments_provider_token=TOKEN, support_chat_id=SUPPORT_CHAT)
    async for harness in _harness(settings, sandbox, clock, request):
        harness.telegram.register_chat(
            {"id": SUPPORT_CHAT, "type": "supergroup", "title": "Поддержка", "is_forum": True}
        )
        assert harness.app is not None
        await support_dashboard(harness.app, harness.clock)
        yield harness


async def refund_events(harness: Harness) -> list[dict[str, Any]]:
    """The Dashboard's refund events in the outbox (their data)."""
    assert harness.app is not None
    async with harness.app.uow_factory() as uow:
        rows = await uow.session.execute(
            select(NotificationRow).where(NotificationRow.kind == DASHBOARD_TELEGRAM_REFUND)
        )
        return [dict(row.data) for row in rows.scalars()]


async def stored_intent(harness: Harness, payload: str) -> PaymentIntent:
    assert harness.app is not None
    async with harness.app.uow_factory() as uow:
        intent = await uow.payment_intents.by_key(payload)
    assert intent is not None
    return intent


def refund_logs(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e.get("event") == "tgpay.refund_needed"]


async def paid_after_checkout(
    harness: Harness, change: Callable[[dict[str, Any]], dict[str, Any]], charge: str
) -> Any:
    """An invoice for the first bill passes its pre-checkout; then the bill changes at the city
    (`change(bill)`) before Telegram reports the money taken. Returns the chat, what the
    resident was told, the bill, the payload, the ledger before, and the captured log events."""
    chat, bill, payload = await invoice_for_first_bill(harness)
    assert (await pre_checkout(chat, payload, bill["amount"])).ok is True
    before = await ledger(harness)
    await harness.sandbox_call("PATCH", f"/sandbox/bills/{bill['id']}", json=change(bill))
    structlog.configure(cache_logger_on_first_use=False)
    with capture_logs() as events:
        told = await successful_payment(chat, payload, bill["amount"], charge)
    return chat, told, bill, payload, before, events


async def test_a_bill_paid_before_the_money_arrived_is_refunded_once(
    refund_harness: Harness,
) -> None:
    harness = refund_harness
    assert harness.app is not None
    chat, told, bill, payload, before, events = await paid_after_checkout(
        harness, lambda _bill: {"status": "paid"}, "tg-charge-late"
    )
    amount = format_rub(bill["amount"])

    # The resident: already paid, Telegram took X ₽, it comes back, support knows.
    assert "уже оплачен" in told and f"Telegram списал {amount}" in told
    assert "вернут" in told and "Поддержка уже знает" in told
    assert "платить повторно не нужно" in told
    assert "подтвердит его в ближайшее время" not in told  # the old, false promise
    # The city's ledger has nothing for this charge.
    assert await ledger(harness) == before
    assert all(c.get("external_charge_id") != "tg-charge-late" for c in await ledger(harness))
    # The intent records the refund owed: failed with the charge id, the city's reason kept.
    intent = await stored_intent(harness, payload)
    assert intent.status is IntentStatus.FAILED and intent.failure == "already_paid"
    assert intent.external_charge_id == "tg-charge-late"
    # One urgent Dashboard event with what staff need to refund, nothing personal.
    [event] = await refund_events(harness)
    assert event["charge_id"] == "tg-charge-late"
    assert event["provider_charge_id"] == "yk-tg-charge-late"
    assert event["amount"] == bill["amount"] and event["intent_id"] == intent.id
    assert event["failure"] == "already_paid" and isinstance(event["resident"], int)
    # Logged at error level with the intent id.
    [logged] = refund_logs(events)
    assert logged["log_level"] == "error" and logged["intent_id"] == intent.id
    assert logged["staff_told"] is True

    # Telegram delivers the same successful_payment again: told again, written once.
    structlog.configure(cache_logger_on_first_use=False)
    with capture_logs() as again:
        repeated = await successful_payment(chat, payload, bill["amount"], "tg-charge-late")
    assert "уже оплачен" in repeated and f"Telegram списал {amount}" in repeated
    assert len(await refund_events(harness)) == 1
    assert [e["staff_told"] for e in refund_logs(again)] == [False]
    assert await ledger(harness) == before

    await deliver_notifications(harness.app, harness.clock, MemoryLimiter())
    await deliver_notifications(harness.app, harness.clock, MemoryLimiter())
    [post] = dashboard(harness)
    assert "Нужен возврат" in post and amount in post and "tg-charge-late" in post
    assert "yk-tg-charge-late" in post and "счёт уже был оплачен" in post
    assert f"Житель #{event['resident']}" in post
    await assert_no_personal_data(harness, chat, post)


async def test_a_changed_amount_before_the_money_arrived_is_refunded(
    refund_harness: Harness,
) -> None:
    harness = refund_harness
    chat, told, bill, payload, before, events = await paid_after_checkout(
        harness, lambda bill: {"amount": bill["amount"] + 100}, "tg-charge-changed"
    )
    assert "сумма счёта изменилась" in told and "вернут" in told
    assert f"Telegram списал {format_rub(bill['amount'])}" in told
    assert "Поддержка уже знает" in told and "Сам счёт пока не оплачен" in told
    assert await ledger(harness) == before
    intent = await stored_intent(harness, payload)
    assert intent.status is IntentStatus.FAILED and intent.failure == "amount_changed"
    assert intent.external_charge_id == "tg-charge-changed"
    [event] = await refund_events(harness)
    assert event["charge_id"] == "tg-charge-changed" and event["failure"] == "amount_changed"
    assert event["amount"] == bill["amount"]
    [logged] = refund_logs(events)
    assert logged["log_level"] == "error" and logged["intent_id"] == intent.id

    again = await successful_payment(chat, payload, bill["amount"], "tg-charge-changed")
    assert "сумма счёта изменилась" in again
    assert len(await refund_events(harness)) == 1
    assert await ledger(harness) == before
    # The bill itself is still to pay, at its new amount.
    assert {"id": bill["id"], "amount": bill["amount"] + 100} in await city_bills(harness, chat)


async def test_an_invoice_replaced_after_its_pre_checkout_is_refunded(
    refund_harness: Harness,
) -> None:
    """A second invoice for the same bill retires the first; money Telegram still takes for
    the first is owed back, and the second pays the bill once."""
    harness = refund_harness
    chat, bill, first = await invoice_for_first_bill(harness)
    assert (await pre_checkout(chat, first, bill["amount"])).ok is True
    await chat.send("/start")
    await chat.press("Мои счета")
    await chat.press(bill_buttons(chat)[0])
    await chat.press("Оплатить выбранные")
    await chat.press("Другой способ оплаты")
    await chat.press("Оплатить в Telegram")
    await chat.press("Оплатить")
    invoice = harness.telegram.calls_of(SendInvoice)[-1]
    assert isinstance(invoice, SendInvoice)
    second = invoice.payload
    assert second != first

    told = await successful_payment(chat, first, bill["amount"], "tg-charge-old")
    assert "не принял этот платёж" in told and "вернут" in told
    assert (await pre_checkout(chat, second, bill["amount"])).ok is True
    paid = await successful_payment(chat, second, bill["amount"], "tg-charge-new")
    assert "Платёж получен и зачислен" in paid

    [charge] = [c for c in await ledger(harness) if c.get("external_charge_id")]
    assert charge["external_charge_id"] == "tg-charge-new"
    [event] = await refund_events(harness)
    assert event["charge_id"] == "tg-charge-old" and event["failure"] == "replaced"


async def test_without_a_support_chat_the_resident_is_still_told_and_it_is_logged(
    request: pytest.FixtureRequest, tmp_path: Path, sandbox: SandboxServer, clock: FakeClock
) -> None:
    settings = settings_for(tmp_path, payments_provider_token=TOKEN)
    async for harness in _harness(settings, sandbox, clock, request):
        _chat, told, _bill, payload, _before, events = await paid_after_checkout(
            harness, lambda _bill: {"status": "paid"}, "tg-charge-nobody"
        )
        assert "уже оплачен" in told and "вернут" in told
        intent = await stored_intent(harness, payload)
        [logged] = refund_logs(events)
        assert logged["log_level"] == "error" and logged["intent_id"] == intent.id
        assert logged["charge"] == "tg-charge-nobody" and logged["staff_told"] is False
        assert await refund_events(harness) == []


async def test_a_refusal_found_by_reconciliation_is_owed_back_and_told(
    refund_harness: Harness,
) -> None:
    """The city was down when the money arrived; by the time reconciliation asks again the bill
    was paid by another road: the resident and the Dashboard hear of the refund then."""
    from bot.app import reconcile_payments

    harness = refund_harness
    chat, bill, payload = await invoice_for_first_bill(harness)
    assert (await pre_checkout(chat, payload, bill["amount"])).ok
    await harness.sandbox_call("PUT", "/sandbox/faults", json={"status": 503})
    await successful_payment(chat, payload, bill["amount"], "tg-later")
    assert (await stored_intent(harness, payload)).status is IntentStatus.SUBMITTED
    await harness.sandbox_call("PUT", "/sandbox/faults", json={})
    await harness.sandbox_call("PATCH", f"/sandbox/bills/{bill['id']}", json={"status": "paid"})
    harness.clock.advance(60)
    assert harness.app is not None
    await reconcile_payments(harness.app)
    intent = await stored_intent(harness, payload)
    assert intent.status is IntentStatus.FAILED and intent.external_charge_id == "tg-later"
    [event] = await refund_events(harness)
    assert event["charge_id"] == "tg-later"
    assert format_rub(bill["amount"]) in chat.inbox().text
    assert await ledger(harness) == []
