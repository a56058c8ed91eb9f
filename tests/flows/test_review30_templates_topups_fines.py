"""Review 30c: the money flows the suite looked at least — «Шаблоны», «Пополнить», «Штрафы»
and a bill by UIN — broken as a resident, an attacker and a flaky network would. The sandbox's
ledger judges every charge; what the chat shows is read as the resident reads it."""

from __future__ import annotations

import asyncio

import pytest

from sandbox import funds as sandbox_funds
from sandbox import oauth
from sandbox.conversation import Conversation
from sandbox.data import BillKind, BillStatus
from sandbox.payments_api import PAYMENTS_KEY
from tests.flows.conftest import Harness
from tests.flows.test_charity_points_meters import linked
from tests.flows.test_hostile_input import no_crash, press_again
from tests.flows.test_hostile_text import assert_clean
from tests.flows.test_payments import ledger, uin_with_rule
from tests.flows.test_review15_topups import open_intents
from tests.flows.test_templates import _donation_template, _templates_of
from tests.money_text import nb

GENERIC = "Что-то пошло не так"
BAD_PHONE = "Это не номер мобильного телефона"


def _pay_button(chat: Conversation) -> str:
    return next(b for b in chat.buttons if b.startswith("Оплатить"))


async def _troika_template(harness: Harness) -> Conversation:
    """demo-full topped up «Тройка» 0012 345 678 with 500 ₽ and kept it as a template; back
    at the menu."""
    chat = await linked(harness, "demo-full")
    await chat.press("Пополнить")
    await chat.press("Тройка")
    await chat.send("0012 345 678")
    await chat.press(nb("500,00 ₽"))
    await chat.press(_pay_button(chat))
    assert "✅ Оплачено" in chat.last_text
    await chat.press("Сохранить как шаблон")
    await chat.press(1)  # the proposed name
    assert "сохранён" in chat.last_text
    await chat.press("Готово")
    return chat


# ---- «Пополнить»: the parking account is a Russian mobile number ------------------------------


# Was (review 30c): «+» and ten digits (a foreign number, e.g. +960…) is read as +7 9… of a stranger
@pytest.mark.parametrize(
    ("typed", "stranger"),
    [
        ("+960 791 2345", "79607912345"),  # the Maldives: «+960» and seven digits
        ("+95 9 1234 567", "79591234567"),  # Myanmar: «+95 9» and seven digits
    ],
)
async def test_a_foreign_number_with_a_plus_is_not_taken_for_a_russian_parking_account(
    harness: Harness, typed: str, stranger: str
) -> None:
    """A number typed with «+» carries its country code: «+960 791 2345» is a number in the
    Maldives, never «+7 960 791-23-45» (a Beeline number: someone else's parking account). The
    bot used to prepend «7» to any ten digits, plus or not, and offer to top up the stranger."""
    await harness.sandbox_call(
        "PATCH",
        "/sandbox/topup-accounts",
        json={"service": "parking", "account": stranger, "balance": 0},
    )
    chat = await linked(harness, "demo-full")
    await chat.press("Пополнить")
    await chat.press("Парковочный счёт")
    reply = await chat.send(typed)
    no_crash(reply)
    assert BAD_PHONE in reply.text, reply.text  # asked again, nothing to pay offered
    assert not any("₽" in b for b in chat.buttons), chat.buttons
    assert await open_intents(harness) == []


async def test_russian_phone_numbers_in_every_usual_shape_are_the_same_parking_account(
    harness: Harness,
) -> None:
    """Regression guard for the fix above: every usual way of writing +7 916 123-45-67 still
    opens that account's amount step; a foreign or odd one is asked again, never paid."""
    chat = await linked(harness, "demo-full")
    await chat.press("Пополнить")
    await chat.press("Парковочный счёт")
    for typed in (
        "+7 (916) 123-45-67",
        "8 916 123 45 67",
        "8 (916) 123-45-67",
        "79161234567",
        "9161234567",
        "+7\u00a0916\u00a0123\u201145\u201167",  # no-break spaces and hyphens
    ):
        reply = await chat.send(typed)
        no_crash(reply)
        assert "Парковочный счёт +7 916 123-45-67" in reply.text, (typed, reply.text)
        await chat.press("‹ Назад")
    for typed in (
        "+8 916 123 45 67",
        "+1 212 555 0199",
        "+44 7911 123456",
        "+7 916 123\u200b45 67",  # a zero-width space: asked again, never guessed
        "+７ 916 123 45 67",
        "<b>+7 916 123 45 67</b>",
        "9" * 5000,
    ):
        reply = await chat.send(typed)
        no_crash(reply)
        assert "Баланс" not in reply.text, (typed, reply.text)
        assert not any("₽" in b for b in chat.buttons), (typed, chat.buttons)
    assert await open_intents(harness) == []
    assert await ledger(harness) == []
    assert_clean(chat)


# ---- «Шаблоны»: a top-up's or a donation's new amount ----------------------------------------


# Was (review 30c): «Изменить сумму» of a top-up template whose card the city lost says «Что-то
# пошло не так» (UnknownTopupAccount has no text in ERROR_KEYS)
async def test_a_topup_templates_new_amount_for_a_card_the_city_lost_says_so(
    harness: Harness,
) -> None:
    """The card was closed (lost, replaced) after the template was kept. «Оплатить» is told
    «Город не нашёл этот счёт»; «Изменить сумму» must say the same (or that the template's
    card is gone), never the bot's own apology — which also leaves the resident typing
    amounts in a loop that can never succeed."""
    chat = await _troika_template(harness)
    del harness.sandbox.app[PAYMENTS_KEY].topups.accounts[("troika", "0012345678")]
    await chat.press("Шаблоны")
    await chat.press(next(b for b in chat.buttons if nb("500,00 ₽") in b))
    await chat.press("Изменить сумму")
    reply = await chat.send("300")
    assert GENERIC not in reply.text, reply.text
    assert "не нашёл" in reply.text or "недоступ" in reply.text, reply.text
    assert [c["amount"] for c in await ledger(harness)] == [50_000]


# Was (review 30c): «Изменить сумму» of a donation template whose fund closed meanwhile says «Что-то
# пошло не так» (PayeeGone has no text in ERROR_KEYS)
async def test_a_donation_templates_new_amount_for_a_fund_closed_meanwhile_says_so(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tap on the template says «Фонд … больше не принимает пожертвования» when the fund is
    gone; the same fund closing while the resident is at «Изменить сумму» must be told the
    same way, not as the bot's own failure."""
    chat, fund = await _donation_template(harness)
    await chat.press("Шаблоны")
    await chat.press(next(b for b in chat.buttons if nb("500,00 ₽") in b))
    await chat.press("Изменить сумму")
    [kept] = await _templates_of(harness, chat)
    gone = kept.target["fund_id"]
    left = tuple(f for f in sandbox_funds.FUNDS if f.id != gone)
    monkeypatch.setattr(sandbox_funds, "FUNDS", left)
    monkeypatch.setattr(sandbox_funds, "_BY_ID", {f.id: f for f in left})
    reply = await chat.send("700")
    assert GENERIC not in reply.text, reply.text
    assert f"Фонд «{fund}» больше не принимает пожертвования" in reply.text, reply.text
    assert [c["amount"] for c in await ledger(harness)] == [50_000]


async def test_a_topup_template_survives_hostile_amounts_a_restart_and_a_lost_answer(
    harness: Harness,
) -> None:
    """Regression guard: at «Изменить сумму» hostile amounts are asked again; a restart in
    the middle keeps the step; a payment whose answer was lost is checked, never paid twice
    from the template; a double tap on the template opens one confirmation."""
    chat = await _troika_template(harness)  # 650 ₽ on the card now
    await chat.press("Шаблоны")
    template = next(b for b in chat.buttons if nb("500,00 ₽") in b)
    await chat.press(template)
    await chat.press("Изменить сумму")
    hostile = ("<b>", "&amp;", "9" * 5000, "²", "٣", "１００", "1e5", "0x10", "-0", "1\u200b000")
    for typed in hostile:
        reply = await chat.send(typed)
        no_crash(reply)
        assert "Итого" not in reply.text, (typed, reply.text)
    await harness.restart()
    reply = await chat.send("1 000,50")
    assert nb("Итого: 1 000,50 ₽") in reply.text, reply.text
    await chat.press("Отмена")
    await chat.press(template)
    mid = chat.last_message.message_id  # type: ignore[union-attr]
    pay = _pay_button(chat)
    assert pay == nb("Оплатить 500,00 ₽")  # the template's own amount, not the one typed
    await harness.sandbox_call("PUT", "/sandbox/faults", json={"fail_after_processing": 5})
    await asyncio.gather(chat.press(pay, message_id=mid), chat.press(pay, message_id=mid))
    assert "Не оплачивайте повторно" in chat.last_text
    await harness.sandbox_call("PUT", "/sandbox/faults", json={})
    await chat.press("Готово")
    reply = await chat.press(template)
    assert "банк ещё не ответил" in reply.text, reply.text
    assert not any(b.startswith("Оплатить") for b in chat.buttons), chat.buttons
    assert [c["amount"] for c in await ledger(harness)] == [50_000, 50_000]
    assert_clean(chat)


# ---- «Штрафы»: the licence and a fine paid meanwhile -----------------------------------------


# Was (review 30c): a licence number with letters passes the bot's check (the СТС pattern), the city
# refuses it (400) and the resident reads «Не нашли этого в городском сервисе»
@pytest.mark.parametrize("typed", ["77 АА 123456", "77 aa 123457", "77ХО123457"])
async def test_a_licence_number_with_letters_is_refused_before_the_city(
    harness: Harness, typed: str
) -> None:
    """The contract (city/openapi.yaml `/api/v1/fines`): a driver's licence is 10 digits; the
    bot checks it with the СТС's pattern (letters allowed in the series), sends it, and tells
    the resident the city found nothing — as if the number were right and simply had no
    record — instead of «Это не похоже на номер водительского удостоверения»."""
    chat = await linked(harness, "demo-full")
    await chat.press("Штрафы по СТС")
    await chat.press("Искать по водительскому удостоверению")
    reply = await chat.send(typed)
    no_crash(reply)
    assert "Это не похоже на номер водительского удостоверения" in reply.text, reply.text
    assert "Не нашли этого" not in reply.text


# Was (review 30c): after «Оплатить штрафы» is refused because one fine was paid meanwhile, «Назад»
# shows the same stale list, whose button is refused again: the rest cannot be paid
async def test_a_fine_paid_meanwhile_leaves_the_others_payable_from_the_list(
    harness: Harness,
) -> None:
    """demo-full's four fines found by СТС (6 000 ₽); one is paid elsewhere (Госуслуги, a
    relative) before «Оплатить штрафы». The refusal is right — but «‹ Назад» must show what is
    unpaid now (three fines, 5 500 ₽) and pay them, not the list as it was, whose button only
    repeats the refusal (and sends the resident to «Мои счета»)."""
    chat = await linked(harness, "demo-full")
    await chat.press("Штрафы по СТС")
    await chat.send("77 АВ 123456")
    assert nb("Оплатить штрафы — 6 000,00 ₽") in chat.buttons
    data = harness.sandbox.app[oauth.DATA_KEY]
    [first, *_] = [
        b for b in data.bills_of("C-100003", BillStatus.UNPAID) if b.kind is BillKind.TRAFFIC_FINE
    ]
    assert first.amount == 50_000
    data.update_bill(first.id, status=BillStatus.PAID)
    await chat.press(nb("Оплатить штрафы — 6 000,00 ₽"))
    if any(b.startswith("Оплатить 5") for b in chat.buttons):  # paid the rest at once: fine too
        confirm = chat.last_text
    else:
        await chat.press("‹ Назад")
        assert nb("Оплатить штрафы — 5 500,00 ₽") in chat.buttons, (chat.last_text, chat.buttons)
        await chat.press(nb("Оплатить штрафы — 5 500,00 ₽"))
        confirm = chat.last_text
    assert nb("Итого: 5 500,00 ₽") in confirm, confirm
    await chat.press(_pay_button(chat))
    assert "✅ Оплачено" in chat.last_text
    assert [c["amount"] for c in await ledger(harness)] == [550_000]


async def test_fines_survive_odd_numbers_a_city_outage_a_restart_and_double_taps(
    harness: Harness,
) -> None:
    """Regression guard: an СТС typed in Latin look-alikes, lower case, with spaces, hyphens
    or no-break spaces is the same document; hostile text and foreign digits are asked again;
    a 5xx and a timeout are told and the number can be sent again; after a restart the list
    still pays; a double tap on «Оплатить штрафы» and on «Оплатить» charges once."""
    chat = await linked(harness, "demo-full")
    await chat.press("Штрафы по СТС")
    for typed in ("<b>", "&amp;", "x" * 5000, "77 AD 123457", "77АВ12345\u0663", "７７АВ123457"):
        reply = await chat.send(typed)
        no_crash(reply)
        assert "Нашли" not in reply.text, (typed, reply.text)
        assert "Искать по водительскому удостоверению" in chat.buttons  # still asking
    await harness.sandbox_call("PUT", "/sandbox/faults", json={"status": 502})
    reply = await chat.send("77 ab 123457")
    assert "временно недоступен" in reply.text, reply.text
    await harness.sandbox_call("PUT", "/sandbox/faults", json={"delay_seconds": 2.5})
    reply = await chat.send("77-АВ-123457")
    assert "временно недоступен" in reply.text, reply.text
    await harness.sandbox_call("PUT", "/sandbox/faults", json={})
    reply = await chat.send("77\u00a0ав\u00a0123\u00a0457")
    assert nb("Нашли 1 неоплаченный штраф на 3 000,00 ₽") in reply.text, reply.text
    await harness.restart()
    pay_all = nb("Оплатить штрафы — 3 000,00 ₽")
    mid = chat.last_message.message_id  # type: ignore[union-attr]
    await asyncio.gather(chat.press(pay_all, message_id=mid), chat.press(pay_all, message_id=mid))
    mid = chat.last_message.message_id  # type: ignore[union-attr]
    pay = _pay_button(chat)
    await asyncio.gather(chat.press(pay, message_id=mid), chat.press(pay, message_id=mid))
    assert "✅ Оплачено" in chat.last_text
    assert [c["amount"] for c in await ledger(harness)] == [300_000]
    assert_clean(chat)


# ---- a bill by UIN ------------------------------------------------------------------------------


async def test_a_uin_bill_is_paid_once_through_a_lost_answer_and_a_stale_button(
    harness: Harness,
) -> None:
    """Regression guard: a double tap on «Оплатить этот счёт» opens one confirmation; the
    answer lost after the city took the money, the same UIN typed again says «уже оплачено»;
    the confirmation's «Оплатить» pressed again from an older copy of the message pays
    nothing."""
    chat = await linked(harness, "demo-standard")
    await chat.press("Добавить счёт по УИН")
    reply = await chat.send(uin_with_rule("3"))
    assert "Нашли начисление" in reply.text
    mid = chat.last_message.message_id  # type: ignore[union-attr]
    found = "Оплатить этот счёт"
    await asyncio.gather(chat.press(found, message_id=mid), chat.press(found, message_id=mid))
    confirm = chat.last_message
    assert confirm is not None and nb("Итого: 500,00 ₽") in confirm.text
    payload = dict(confirm.payload)
    data = next(b.callback_data for b in confirm.buttons if b.text.startswith("Оплатить"))
    await harness.sandbox_call("PUT", "/sandbox/faults", json={"fail_after_processing": 5})
    reply = await chat.press(_pay_button(chat))
    assert "Не оплачивайте повторно" in reply.text
    await harness.sandbox_call("PUT", "/sandbox/faults", json={})
    assert data is not None
    reply = await press_again(chat, payload, data)
    no_crash(reply)
    await chat.send("/start")
    await chat.press("Добавить счёт по УИН")
    reply = await chat.send(uin_with_rule("3"))
    assert "уже оплачено" in reply.text, reply.text
    assert [c["amount"] for c in await ledger(harness)] == [50_000]
    assert_clean(chat)
