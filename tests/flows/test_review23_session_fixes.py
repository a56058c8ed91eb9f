"""Review 23: the last hour's fixes, broken as a resident, an operator or an attacker would:
what shows nothing refused as a typed value (descriptions, answers, the «Не устранено» comment),
a Telegram charge of another sum than the invoice's, one-shot buttons under an inaccessible
message, a report's send retried with its key, and the OAuth callback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from structlog.testing import capture_logs

from bot.jobs import deliver_notifications, poll_reports
from bot.ratelimit import MemoryLimiter
from domain.payments import IntentStatus
from sandbox import SandboxServer
from sandbox.conversation import Conversation
from storage.models import NotificationRow
from tests.contract.sandbox_client import FakeClock
from tests.flows.conftest import Harness, _harness, settings_for
from tests.flows.test_hostile_input import no_crash
from tests.flows.test_payments import city_bills, ledger
from tests.flows.test_reports import ARBAT_10, advance, open311, sent_report, start_pothole
from tests.flows.test_review22_update_shapes import errors
from tests.flows.test_telegram_payments import (
    invoice_for_first_bill,
    pre_checkout,
    successful_payment,
)

DESCRIBE = "Опишите проблему"
EMPTY_DESCRIPTION = "В сообщении нет видимого текста"

# ---- what shows nothing: characters Unicode calls default-ignorable, not Cf ----------------

# Default_Ignorable_Code_Point characters of category Mn, drawn as nothing: the Khmer inherent
# vowels (sold as «invisible characters» beside U+3164 and U+2800), the combining grapheme
# joiner, the Mongolian free variation selectors, a lone variation selector.
IGNORABLE_MARKS = ["\u17b5", "\u17b4\u17b5", "\u034f", "\u180b", "\ufe0f", "\U000e0100"]


async def at_description(harness: Harness) -> Conversation:
    chat = await start_pothole(harness)
    await chat.send_location(*ARBAT_10)
    await chat.press("Пропустить")  # no photos
    assert DESCRIBE in chat.last_text
    return chat


# Was (review 23): a description of default-ignorable marks (U+17B5, U+034F) is sent
@pytest.mark.parametrize("blank", IGNORABLE_MARKS)
async def test_a_description_of_invisible_marks_is_not_a_description(
    harness: Harness, blank: str
) -> None:
    chat = await at_description(harness)
    reply = await chat.send(blank)
    no_crash(reply)
    assert EMPTY_DESCRIPTION in reply.text, reply.texts


# A subdivision flag is a tag sequence: 🏴 then TAG letters (U+E0067…, category Cf) and CANCEL TAG.
SCOTLAND = "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"


# Was (review 23): `visible` strips a flag's tag characters (Cf) off a description's end
async def test_a_description_ending_in_a_subdivision_flag_reaches_the_city_whole(
    harness: Harness,
) -> None:
    chat = await at_description(harness)
    await chat.send(f"Разбитый флагшток {SCOTLAND}")
    reply = await chat.press("Отправить")
    number = reply.text.split("№ ")[1].split()[0]
    [request] = await open311(harness, f"requests/{number}.json")
    assert request["description"].endswith(SCOTLAND), ascii(request["description"])


KEPT = [
    "\U0001f468\u200d\U0001f469\u200d\U0001f467",  # a family: a ZWJ sequence alone
    "\U0001f1f7\U0001f1fa",  # a flag: regional indicators
    "\U0001f573\ufe0f",  # one emoji with its variation selector
    "\u05d1\u05d5\u05e8 \u200f\u05d1\u05db\u05d1\u05d9\u05e9 12",  # Hebrew, an RLM inside
    "\u062d\u0641\u0631\u0629\u200f \u0641\u064a \u0627\u0644\u0637\u0631\u064a\u0642",  # Arabic
    "\ud55c\u3164\uae00 \uad6c\uba4d",  # Korean with a Hangul filler inside
]


@pytest.mark.parametrize("text", KEPT)
async def test_what_shows_is_a_description_and_reaches_the_city(
    harness: Harness, text: str
) -> None:
    chat = await at_description(harness)
    reply = await chat.send(text)
    no_crash(reply)
    assert EMPTY_DESCRIPTION not in reply.text
    reply = await chat.press("Отправить")
    number = reply.text.split("№ ")[1].split()[0]
    [request] = await open311(harness, f"requests/{number}.json")
    assert request["description"] == text


async def at_refute_comment(harness: Harness) -> tuple[Conversation, str]:
    chat, number = await sent_report(harness)
    assert harness.app is not None
    await advance(harness, number, to="answered", status_notes="Выполнено")
    await poll_reports(harness.app, harness.clock)
    await deliver_notifications(harness.app, harness.clock, MemoryLimiter())
    await chat.press("Не устранено")
    assert "Что не так?" in chat.last_text
    return chat, number


# Found: `on_refute_comment` (handlers/my_reports.py:199) stores `visible(text)` — "" for a
# comment that shows nothing — and goes on to the photo step; `refute_fix` then sends an empty
# description, the city refuses it (400), and the resident reads «Что-то пошло не так» after
# adding the photo: the refutation is lost.
# Was (review 23): an invisible «Не устранено» comment is taken; the refute then fails with «Что-то
# пошло не так»
@pytest.mark.parametrize("blank", ["\u200b\u3164", "\u2800"])
async def test_an_invisible_refute_comment_is_asked_again_not_taken(
    harness: Harness, blank: str
) -> None:
    chat, _number = await at_refute_comment(harness)
    reply = await chat.send(blank)
    no_crash(reply)
    if "Добавьте фото" in reply.text:  # taken as a comment: the refute must still go through
        reply = await chat.press("Без фото")
        no_crash(reply)
        assert "вернули в работу" in reply.text, reply.texts
    else:
        assert "видимого текста" in reply.text, reply.texts  # not a comment: asked again


async def test_a_refute_comment_of_an_emoji_goes_back_to_work(harness: Harness) -> None:
    chat, number = await at_refute_comment(harness)
    await chat.send("\U0001f573\ufe0f")
    assert "Добавьте фото" in chat.last_text
    reply = await chat.press("Без фото")
    assert "вернули в работу" in reply.text, reply.texts
    updates = await open311(harness, f"requests/{number}/updates.json")
    assert updates[-1]["description"] == "\U0001f573\ufe0f"


# ---- Telegram Payments: a charge of another sum than the invoice's ---------------------------

TOKEN = "381764678:TEST:100500"
SUPPORT_CHAT = -1001234567890


@pytest.fixture
async def tg(
    request: pytest.FixtureRequest, tmp_path: Path, sandbox: SandboxServer, clock: FakeClock
) -> AsyncIterator[Harness]:
    """Telegram Payments on, and a support supergroup with its «Dashboard» topic."""
    from bot.jobs import support_dashboard

    settings = settings_for(tmp_path, payments_provider_token=TOKEN, support_chat_id=SUPPORT_CHAT)
    async for harness in _harness(settings, sandbox, clock, request):
        harness.telegram.register_chat(
            {"id": SUPPORT_CHAT, "type": "supergroup", "title": "Поддержка", "is_forum": True}
        )
        assert harness.app is not None
        await support_dashboard(harness.app, harness.clock)
        yield harness


async def paid_with(
    chat: Conversation, payload: str, amount: int, charge: str, currency: str = "RUB"
) -> str:
    reply = await chat.feed(
        {
            "message": {
                "message_id": 30_000 + len(chat.telegram.calls),
                "date": 0,
                "chat": chat.telegram.chat(chat.chat_id),
                "from": dict(chat.user),
                "successful_payment": {
                    "currency": currency,
                    "total_amount": amount,
                    "invoice_payload": payload,
                    "telegram_payment_charge_id": charge,
                    "provider_payment_charge_id": "yk-" + charge,
                },
            }
        }
    )
    no_crash(reply)
    return reply.text


async def refund_events(harness: Harness) -> list[dict[str, Any]]:
    from domain.support import DASHBOARD_TELEGRAM_REFUND

    assert harness.app is not None
    async with harness.app.uow_factory() as uow:
        rows = await uow.session.execute(
            select(NotificationRow).where(NotificationRow.kind == DASHBOARD_TELEGRAM_REFUND)
        )
        return [dict(row.data) for row in rows.scalars()]


async def test_a_mismatched_charge_told_again_is_owed_once(tg: Harness) -> None:
    chat, bill, payload = await invoice_for_first_bill(tg)
    assert (await pre_checkout(chat, payload, bill["amount"])).ok is True
    before = errors()
    first = await paid_with(chat, payload, bill["amount"] - 1, "tg-odd-1")
    again = await paid_with(chat, payload, bill["amount"] - 1, "tg-odd-1")
    assert "не ту сумму" in first and "не ту сумму" in again
    assert errors() == before
    events = await refund_events(tg)
    assert len(events) == 1 and events[0]["charge_id"] == "tg-odd-1"
    assert events[0]["failure"] == "charge_mismatch"
    assert await ledger(tg) == []


async def test_after_a_mismatch_the_bill_is_paid_again_normally(tg: Harness) -> None:
    chat, bill, payload = await invoice_for_first_bill(tg)
    assert (await pre_checkout(chat, payload, bill["amount"])).ok is True
    await paid_with(chat, payload, bill["amount"] + 500, "tg-odd-2")
    assert (await pre_checkout(chat, payload, bill["amount"])).ok is False  # that invoice is spent
    _, bill2, payload2 = await invoice_for_first_bill_again(tg, chat)
    assert payload2 != payload and bill2["id"] == bill["id"]
    assert (await pre_checkout(chat, payload2, bill["amount"])).ok is True
    text = await successful_payment(chat, payload2, bill["amount"], "tg-good-2")
    assert "зачислен" in text, text
    charges = await ledger(tg)
    assert [c["external_charge_id"] for c in charges] == ["tg-good-2"]
    assert bill["id"] not in {b["id"] for b in await city_bills(tg, chat)}


async def invoice_for_first_bill_again(
    harness: Harness, chat: Conversation
) -> tuple[Conversation, dict[str, Any], str]:
    from aiogram.methods import SendInvoice

    from tests.flows.test_payments import bill_buttons

    await chat.send("/start")
    await chat.press("Мои счета")
    bill = (await city_bills(harness, chat))[0]
    await chat.press(bill_buttons(chat)[0])
    await chat.press("Оплатить выбранные")
    await chat.press("Другой способ оплаты")
    await chat.press("Оплатить в Telegram")
    reply = await chat.press("Оплатить")
    assert "Счёт отправлен ниже" in reply.text, reply.texts
    invoice = harness.telegram.calls_of(SendInvoice)[-1]
    assert isinstance(invoice, SendInvoice)
    return chat, bill, invoice.payload


# Was (review 23): a mismatched second charge on a paid intent is told as the city's refusal of the
# invoice's sum
async def test_a_mismatched_second_charge_on_a_paid_invoice_is_not_told_as_a_city_refusal(
    tg: Harness,
) -> None:
    chat, bill, payload = await invoice_for_first_bill(tg)
    assert (await pre_checkout(chat, payload, bill["amount"])).ok is True
    assert "зачислен" in await successful_payment(chat, payload, bill["amount"], "tg-ok-3")
    text = await paid_with(chat, payload, bill["amount"] + 10_000, "tg-odd-3")
    # The city refused nothing and Telegram did not take the invoice's sum: say what happened.
    assert "Городской сервис не принял" not in text, text
    assert "не ту сумму" in text, text


async def test_a_mismatched_second_charge_on_a_paid_invoice_is_owed_back_to_staff(
    tg: Harness,
) -> None:
    chat, bill, payload = await invoice_for_first_bill(tg)
    assert (await pre_checkout(chat, payload, bill["amount"])).ok is True
    await successful_payment(chat, payload, bill["amount"], "tg-ok-4")
    await paid_with(chat, payload, bill["amount"] + 10_000, "tg-odd-4")
    events = await refund_events(tg)
    assert [e["charge_id"] for e in events] == ["tg-odd-4"]
    assert [c["external_charge_id"] for c in await ledger(tg)] == ["tg-ok-4"]
    assert tg.app is not None
    async with tg.app.uow_factory() as uow:
        intent = await uow.payment_intents.by_key(payload)
    assert intent is not None and intent.status is IntentStatus.SUCCEEDED
    assert intent.external_charge_id == "tg-ok-4"


# Was (review 23): the refund log of a mismatched charge on a paid intent names the charge that
# paid the bill
async def test_the_refund_log_names_the_mismatched_charge_not_the_one_that_paid(
    tg: Harness,
) -> None:
    chat, bill, payload = await invoice_for_first_bill(tg)
    assert (await pre_checkout(chat, payload, bill["amount"])).ok is True
    await successful_payment(chat, payload, bill["amount"], "tg-ok-6")
    with capture_logs() as logs:
        await paid_with(chat, payload, bill["amount"] + 10_000, "tg-odd-6")
    [needed] = [e for e in logs if e.get("event") == "tgpay.refund_needed"]
    # What an operator refunds from the log: the charge of the other sum, never the paid one.
    assert needed["charge"] == "tg-odd-6", needed
    assert needed["reason"] == "charge_mismatch", needed


# Was (review 23): a second mismatched charge on one intent is never told to staff (one Dashboard
# event per intent)
async def test_every_mismatched_charge_is_owed_back(tg: Harness) -> None:
    chat, bill, payload = await invoice_for_first_bill(tg)
    assert (await pre_checkout(chat, payload, bill["amount"])).ok is True
    await paid_with(chat, payload, bill["amount"] - 100, "tg-odd-5a")
    await paid_with(chat, payload, bill["amount"] - 200, "tg-odd-5b")
    events = await refund_events(tg)
    assert sorted(e["charge_id"] for e in events) == ["tg-odd-5a", "tg-odd-5b"]


# ---- a report's send retried with its key: the «open report nearby» check ------------------

TVERSKAYA_7 = (55.7577, 37.6107)  # the sandbox's seed: an open pothole report is here
CREATE = "/open311/v2/requests.json"


async def reports_at(harness: Harness) -> int:
    return len(await open311(harness, "requests.json"))


async def at_review_without_extras(harness: Harness) -> Conversation:
    chat = await at_description(harness)
    await chat.press("Пропустить")
    assert "Отправить" in chat.buttons
    return chat


async def send_failing(
    harness: Harness, chat: Conversation, monkeypatch: pytest.MonkeyPatch, faults: dict[str, Any]
) -> None:
    """«Отправить» whose POST meets `faults` at the city (the nearby check before it does not)."""
    assert harness.app is not None
    real_create = harness.app.city.create_report

    async def faulty(*args: Any, **kwargs: Any) -> Any:
        await harness.sandbox_call("PUT", "/sandbox/faults", json=faults)
        try:
            return await real_create(*args, **kwargs)
        finally:
            await harness.sandbox_call("PUT", "/sandbox/faults", json={})

    monkeypatch.setattr(harness.app.city, "create_report", faulty)
    reply = await chat.press("Отправить")
    monkeypatch.setattr(harness.app.city, "create_report", real_create)
    no_crash(reply)
    assert "✅" not in reply.text, reply.texts


async def back_to_review(chat: Conversation) -> None:
    await chat.send("/start")
    await chat.press("Сообщить о проблеме")
    await chat.press("Продолжить")
    assert "Проверьте обращение" in chat.last_text, chat.last_text


NEARBY = "Рядом уже есть открытое обращение"


# Found: `on_send` (handlers/reports.py:666) skips the «open report nearby» check whenever the
# draft carries a send key — also when the resident changed the draft since (the key stays on
# it: only a KEY_REUSED refusal clears it). A send the city never received (503 at its door),
# then the place moved next to an open report of the same theme: a duplicate is made there,
# never offered.
# Was (review 23): a draft edited after a failed send skips the «open report nearby» check
async def test_a_draft_moved_after_a_failed_send_is_offered_the_open_report_there(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat = await at_review_without_extras(harness)
    before = await reports_at(harness)
    await send_failing(harness, chat, monkeypatch, {"status": 503, "paths": [CREATE]})
    assert await reports_at(harness) == before  # the city never got it
    await back_to_review(chat)
    await chat.press("Место")
    await chat.send_location(*TVERSKAYA_7)
    assert "Проверьте обращение" in chat.last_text
    reply = await chat.press("Отправить")
    no_crash(reply)
    assert NEARBY in reply.text, reply.texts
    assert await reports_at(harness) == before


async def test_a_send_whose_answer_was_lost_is_not_offered_as_its_own_duplicate(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat = await at_review_without_extras(harness)
    before = await reports_at(harness)
    await send_failing(harness, chat, monkeypatch, {"fail_after_processing": 5})
    assert await reports_at(harness) == before + 1  # made; its answer lost
    await back_to_review(chat)
    reply = await chat.press("Отправить")
    no_crash(reply)
    assert NEARBY not in reply.text and "✅ Обращение № NG-" in reply.text, reply.texts
    assert await reports_at(harness) == before + 1


async def test_a_draft_edited_after_a_lost_answer_is_told_it_may_have_gone(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat = await at_review_without_extras(harness)
    before = await reports_at(harness)
    await send_failing(harness, chat, monkeypatch, {"fail_after_processing": 5})
    await back_to_review(chat)
    await chat.press("Описание")
    await chat.send("Яма стала глубже")
    reply = await chat.press("Отправить")
    no_crash(reply)
    assert "Возможно, обращение уже ушло" in reply.text or NEARBY in reply.text, reply.texts
    assert await reports_at(harness) == before + 1  # never a second report unasked


# ---- the OAuth callback: twice at once, and a bug inside -----------------------------------


async def callback_url(harness: Harness, chat: Conversation, login: str = "demo-full") -> str:
    """Log in at the sandbox and stop at its redirect: our callback's URL (code and state)."""
    import aiohttp
    from yarl import URL

    await chat.send("/start")
    await chat.press("Привязать")
    page_url = URL(chat.url_of("mos.ru"))
    async with aiohttp.ClientSession() as session:
        async with session.get(page_url) as page:
            assert page.status == 200
        form = {**page_url.query, "login": login, "action": "approve"}
        async with session.post(
            page_url.with_query(None), data=form, allow_redirects=False
        ) as answer:
            assert answer.status in (302, 303), await answer.text()
            return answer.headers["Location"]


async def get_page(url: str) -> tuple[int, str]:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.get(url) as answer:
            return answer.status, await answer.text()


async def test_the_callback_opened_twice_at_once_links_once_in_russian(harness: Harness) -> None:
    await callback_twice_at_once(harness)


async def test_the_callback_opened_twice_at_once_links_once_on_postgres(
    pg_harness: Harness,
) -> None:
    await callback_twice_at_once(pg_harness)


async def callback_twice_at_once(harness: Harness) -> None:
    import asyncio
    import re

    chat = harness.chat()
    url = await callback_url(harness, chat)
    pages = await asyncio.gather(get_page(url), get_page(url))
    statuses = sorted(status for status, _ in pages)
    assert statuses == [200, 400], pages
    texts = {status: text for status, text in pages}
    assert "Вернуться в Telegram" in texts[200]
    assert "уже использована" in texts[400], texts[400]
    for text in texts.values():
        assert "Traceback" not in text and 'lang="ru"' in text
    nonce = re.search(r"start=(link-[A-Za-z0-9_-]+)", texts[200])
    assert nonce is not None
    reply = await chat.send(f"/start {nonce.group(1)}")
    assert "Аккаунт привязан" in reply.text


async def test_a_bug_in_the_callback_shows_the_bots_page_and_revokes_the_tokens(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat = harness.chat()
    url = await callback_url(harness, chat)
    assert harness.app is not None
    revoked: list[Any] = []
    real_revoke = harness.app.city.revoke

    async def counting_revoke(*args: Any, **kwargs: Any) -> Any:
        revoked.append(args)
        return await real_revoke(*args, **kwargs)

    monkeypatch.setattr(harness.app.city, "revoke", counting_revoke)
    from storage.uow import SqlUnitOfWork

    real_uow_commit = SqlUnitOfWork.commit
    calls = {"n": 0}

    async def failing_second_commit(self: SqlUnitOfWork) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # the authorized attempt's own commit
            raise RuntimeError("a bug")
        await real_uow_commit(self)

    monkeypatch.setattr(SqlUnitOfWork, "commit", failing_second_commit)
    status, text = await get_page(url)
    monkeypatch.setattr(SqlUnitOfWork, "commit", real_uow_commit)
    assert status == 500, text
    assert "Не получилось" in text and "сбоя у нас" in text and "Traceback" not in text
    assert len(revoked) == 1
