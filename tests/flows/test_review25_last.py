"""Review 25: the last commit's fixes (a second Telegram charge owed back on its own, the refute
comment following a description's rules, aiogram's cached updates let go) broken as a resident,
an operator or an attacker would."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiogram.types import Update
from structlog.testing import capture_logs

from bot.jobs import deliver_notifications, support_dashboard
from bot.ratelimit import MemoryLimiter
from domain.money import format_rub
from domain.payments import IntentStatus
from sandbox import SandboxServer
from tests.contract.sandbox_client import FakeClock
from tests.flows.conftest import Harness, _harness, settings_for
from tests.flows.test_hostile_input import no_crash
from tests.flows.test_payments import city_bills, ledger
from tests.flows.test_reports import open311
from tests.flows.test_review22_update_shapes import errors
from tests.flows.test_review23_session_fixes import at_refute_comment, paid_with
from tests.flows.test_support import SUPPORT_CHAT, dashboard
from tests.flows.test_telegram_payments import (
    invoice_for_first_bill,
    pre_checkout,
)
from tests.flows.test_telegram_refund import TOKEN, refund_events, refund_logs, stored_intent


@pytest.fixture
async def tg(
    request: pytest.FixtureRequest, tmp_path: Path, sandbox: SandboxServer, clock: FakeClock
) -> AsyncIterator[Harness]:
    """Telegram Payments on and a support supergroup with its «Dashboard»."""
    settings = settings_for(tmp_path, payments_provider_token=TOKEN, support_chat_id=SUPPORT_CHAT)
    async for harness in _harness(settings, sandbox, clock, request):
        harness.telegram.register_chat(
            {"id": SUPPORT_CHAT, "type": "supergroup", "title": "Поддержка", "is_forum": True}
        )
        assert harness.app is not None
        await support_dashboard(harness.app, harness.clock)
        yield harness


async def posts(harness: Harness) -> list[str]:
    assert harness.app is not None
    await deliver_notifications(harness.app, harness.clock, MemoryLimiter())
    await deliver_notifications(harness.app, harness.clock, MemoryLimiter())
    return [p for p in dashboard(harness) if "Нужен возврат" in p]


# ---- a second charge -------------------------------------------------------------------------


async def test_the_same_second_charge_told_twice_is_owed_once_and_answered_each_time(
    tg: Harness,
) -> None:
    chat, bill, payload = await invoice_for_first_bill(tg)
    assert (await pre_checkout(chat, payload, bill["amount"])).ok is True
    assert "зачислен" in await paid_with(chat, payload, bill["amount"], "tg-a-1")
    before = errors()
    with capture_logs() as logs:
        first = await paid_with(chat, payload, bill["amount"], "tg-b-1")
        again = await paid_with(chat, payload, bill["amount"], "tg-b-1")
    amount = format_rub(bill["amount"])
    for text in (first, again):
        assert "уже принял другой платёж" in text and amount in text and "вернут" in text, text
    assert errors() == before
    assert [e["staff_told"] for e in refund_logs(logs)] == [True, False]
    assert [e["charge"] for e in refund_logs(logs)] == ["tg-b-1", "tg-b-1"]
    [event] = await refund_events(tg)
    assert event["charge_id"] == "tg-b-1" and event["failure"] == "second_charge"
    assert event["provider_charge_id"] == "yk-tg-b-1"
    [post] = await posts(tg)
    assert "tg-b-1" in post and "yk-tg-b-1" in post and "уже принял другой платёж" in post
    assert amount in post
    # The intent keeps its own charge, paid; the city has one payment.
    intent = await stored_intent(tg, payload)
    assert intent.status is IntentStatus.SUCCEEDED and intent.external_charge_id == "tg-a-1"
    assert [c["external_charge_id"] for c in await ledger(tg)] == ["tg-a-1"]
    # «История платежей»: the bill paid once, nothing «не прошёл».
    reply = await chat.send("/start")
    no_crash(reply)
    reply = await chat.press("История платежей")
    no_crash(reply)
    assert chat.last_text.count("оплачено") == 1, chat.last_text
    assert "не прошёл" not in chat.last_text, chat.last_text


async def test_a_second_charge_while_the_first_is_at_a_slow_city_is_owed_back(
    tg: Harness,
) -> None:
    chat, bill, payload = await invoice_for_first_bill(tg)
    assert (await pre_checkout(chat, payload, bill["amount"])).ok is True
    assert (await pre_checkout(chat, payload, bill["amount"])).ok is True
    await tg.sandbox_call(
        "PUT", "/sandbox/faults", json={"delay_seconds": 1.0, "paths": ["/api/v1/payments"]}
    )
    before = errors()
    await asyncio.gather(
        paid_with(chat, payload, bill["amount"], "tg-a-2"),
        paid_with(chat, payload, bill["amount"], "tg-b-2"),
    )
    await tg.sandbox_call("PUT", "/sandbox/faults", json={})
    assert errors() == before
    texts = chat.history
    assert sum("зачислен" in t for t in texts) == 1, texts
    assert sum("уже принял другой платёж" in t for t in texts) == 1, texts
    [charge] = await ledger(tg)
    events = await refund_events(tg)
    assert [e["charge_id"] for e in events] == [
        {"tg-a-2", "tg-b-2"}.difference({charge["external_charge_id"]}).pop()
    ]


# Found: after the first charge was refused by the city (the bill's amount changed: the intent
# FAILED `amount_changed`, that charge owed back), a second charge is answered `tgpay-refund-second`
# (handlers/telegram_pay.py:146): «За этот счёт Telegram уже принял другой платёж… Платить ещё
# раз не нужно» — but neither charge was registered and the bill is still unpaid (at its new sum):
# the resident is told the bill is paid when it is not.
# Was (review 25): a second charge after a refused one says «платить не нужно».
async def test_a_second_charge_after_a_refused_one_does_not_say_the_bill_is_paid(
    tg: Harness,
) -> None:
    chat, bill, payload = await invoice_for_first_bill(tg)
    assert (await pre_checkout(chat, payload, bill["amount"])).ok is True
    assert (await pre_checkout(chat, payload, bill["amount"])).ok is True  # a second device
    await tg.sandbox_call(
        "PATCH", f"/sandbox/bills/{bill['id']}", json={"amount": bill["amount"] + 100}
    )
    first = await paid_with(chat, payload, bill["amount"], "tg-a-3")
    assert "сумма счёта изменилась" in first and "не оплачен" in first
    second = await paid_with(chat, payload, bill["amount"], "tg-b-3")
    events = await refund_events(tg)
    assert sorted(e["charge_id"] for e in events) == ["tg-a-3", "tg-b-3"]
    assert await ledger(tg) == []
    assert {"id": bill["id"], "amount": bill["amount"] + 100} in await city_bills(tg, chat)
    # The bill is not paid: the resident must not read that it is.
    assert "Платить ещё раз не нужно" not in second, second
    assert "уже принял другой платёж" not in second, second


# Found: the same after a mismatched first charge (the intent FAILED `charge_mismatch`): a correct
# second charge is told «Telegram уже принял другой платёж… Платить ещё раз не нужно»
# (handlers/telegram_pay.py:146) while the first is being returned and the bill is unpaid; the
# Dashboard reads «оплачен дважды» for an invoice paid zero times.
# Was (review 25): a right charge after a mismatch says «платить не нужно».
async def test_a_right_charge_after_a_mismatched_one_does_not_say_the_bill_is_paid(
    tg: Harness,
) -> None:
    chat, bill, payload = await invoice_for_first_bill(tg)
    assert (await pre_checkout(chat, payload, bill["amount"])).ok is True
    await paid_with(chat, payload, bill["amount"] - 1, "tg-odd-4")
    second = await paid_with(chat, payload, bill["amount"], "tg-good-4")
    assert await ledger(tg) == []
    assert bill in await city_bills(tg, chat)
    assert "Платить ещё раз не нужно" not in second, second
    assert "уже принял другой платёж" not in second, second
    for post in await posts(tg):
        assert "оплачен дважды" not in post, post


async def test_a_mismatched_charge_after_the_paid_one_is_owed_on_its_own(tg: Harness) -> None:
    chat, bill, payload = await invoice_for_first_bill(tg)
    assert (await pre_checkout(chat, payload, bill["amount"])).ok is True
    assert "зачислен" in await paid_with(chat, payload, bill["amount"], "tg-a-5")
    text = await paid_with(chat, payload, bill["amount"] + 1, "tg-odd-5")
    assert "не ту сумму" in text and "зачислен" not in text
    [event] = await refund_events(tg)
    assert event["charge_id"] == "tg-odd-5" and event["failure"] == "charge_mismatch"
    intent = await stored_intent(tg, payload)
    assert intent.status is IntentStatus.SUCCEEDED and intent.external_charge_id == "tg-a-5"


# ---- aiogram's cached updates ------------------------------------------------------------------


def test_the_cache_forgotten_is_the_one_aiogram_keeps() -> None:
    from bot.middlewares import forget_cached_updates

    fget = vars(Update)["event_type"].fget
    assert hasattr(fget, "cache_clear") and hasattr(fget, "cache_info")
    update = Update.model_validate(
        {
            "update_id": 1,
            "message": {
                "message_id": 1,
                "date": 0,
                "chat": {"id": 1, "type": "private"},
                "text": "x",
            },
        }
    )
    assert update.event_type == "message"
    assert fget.cache_info().currsize >= 1
    forget_cached_updates()
    assert fget.cache_info().currsize == 0
    assert update.event_type == "message"  # recomputed


async def test_no_update_stays_cached_after_a_flow(tg: Harness) -> None:
    chat, bill, payload = await invoice_for_first_bill(tg)
    assert (await pre_checkout(chat, payload, bill["amount"])).ok is True
    await paid_with(chat, payload, bill["amount"], "tg-a-6")
    await asyncio.gather(chat.send("/start"), chat.send("/start"))
    assert vars(Update)["event_type"].fget.cache_info().currsize == 0


# ---- the «Не устранено» comment ----------------------------------------------------------------


async def test_a_refused_long_refute_comment_leaves_the_comment_step_waiting(
    tg: Harness,
) -> None:
    chat, number = await at_refute_comment(tg)
    reply = await chat.send("Я" * 2001 + " " * 5)
    no_crash(reply)
    assert "2000" in reply.text and "2001" in reply.text, reply.text
    reply = await chat.send("Яма <снова> на месте & глубже")
    no_crash(reply)
    assert "Добавьте фото" in reply.text, reply.texts
    reply = await chat.press("Без фото")
    no_crash(reply)
    assert "вернули в работу" in reply.text, reply.texts
    updates = await open311(tg, f"requests/{number}/updates.json")
    assert updates[-1]["description"] == "Яма ‹снова› на месте & глубже"


# Found: a comment over the limit is answered with the description's text (handlers/my_reports.py
# 205, `report-description-long`): «Описание длиннее 2000 знаков… остальное уже сохранено» — the
# resident is writing a «Не устранено» comment, not a description, and nothing else is saved.
# Was (review 25): a long refute comment is told «Описание… остальное сохранено».
async def test_a_long_refute_comment_is_told_about_the_comment(tg: Harness) -> None:
    chat, _number = await at_refute_comment(tg)
    reply = await chat.send("Я" * 2001)
    no_crash(reply)
    assert "2000" in reply.text and "2001" in reply.text, reply.text
    assert "Описание" not in reply.text and "остальное уже сохранено" not in reply.text, reply.text


# Found: a charge of another sum besides the intent's own is owed on its own event
# (`_another_charge`, domain/payments.py:962) as a copy of the intent — with the intent's amount:
# the Dashboard reads «Telegram списал 8 124,50 ₽» for a charge of 8 124,60 ₽; staff refund what
# the post says, not what was taken (the sum Telegram reported is only in the log).
# Was (review 25): the Dashboard names the invoice's sum for a charge of another.
async def test_the_dashboard_names_the_sum_telegram_took_for_a_mismatched_charge(
    tg: Harness,
) -> None:
    chat, bill, payload = await invoice_for_first_bill(tg)
    assert (await pre_checkout(chat, payload, bill["amount"])).ok is True
    assert "зачислен" in await paid_with(chat, payload, bill["amount"], "tg-a-9")
    await paid_with(chat, payload, bill["amount"] + 10, "tg-odd-9")
    [post] = await posts(tg)
    assert "tg-odd-9" in post
    assert format_rub(bill["amount"] + 10) in post, post
