"""Paid once, whatever road: one «what is paid» from the confirmation to the city, paid things
gone everywhere, refusals named and settled, every result leading somewhere fresh."""

from __future__ import annotations

import pytest

from domain.payable import MixedPayable, Payable, PayableKind, Requisites
from domain.payments import IntentStatus, OutcomeKind, check_payment, pay
from domain.uin import with_control_digit
from sandbox.browser import pay_on_page
from sandbox.conversation import Conversation
from tests.flows.conftest import LINKED_MENU, Harness
from tests.flows.test_charity_points_meters import open_first_fund
from tests.flows.test_payments import bill_buttons, city_bills, ledger, open_bills
from tests.flows.test_receipt_photo import epd_qr, linked, receipt_photo
from tests.money_text import nb


def _period(harness: Harness, months_back: int) -> str:
    """The sandbox's «MM.YYYY» of a month before the clock's (as its demo data does)."""
    today = harness.clock().date()
    index = today.year * 12 + (today.month - 1) - months_back
    return f"{index % 12 + 1:02d}.{index // 12}"


def _no_pay_button(chat: Conversation) -> None:
    assert not any(b.startswith("Оплатить") for b in chat.buttons), chat.buttons


# ------------------------------------------------------------------ one "what is paid"


def test_a_payable_names_exactly_one_target() -> None:
    requisites = Requisites("Фонд", "7701234567", "40702810938000012345", "044525225", "Взнос")
    assert Payable.bills(["B-1", "B-1", "B-2"]).bill_ids == ("B-1", "B-2")
    for mixed in (
        lambda: Payable(PayableKind.BILLS, bill_ids=("B-1",), fund_id="F-1"),
        lambda: Payable(PayableKind.DONATION, fund_id="F-1", requisites=requisites),
        lambda: Payable(PayableKind.REQUISITES, requisites=requisites, bill_ids=("B-1",)),
        lambda: Payable(PayableKind.BILLS),
        lambda: Payable(PayableKind.DONATION),
    ):
        with pytest.raises(MixedPayable):
            mixed()
    for payable in (
        Payable.bills(["B-1"]),
        Payable.donation("F-1"),
        Payable.by_requisites(requisites),
    ):
        assert Payable.from_json(payable.to_json()) == payable


# ------------------------------------------------------------------ receipts, paid once


async def test_the_same_epd_receipt_twice_is_not_paid_twice_unasked(harness: Harness) -> None:
    chat = await linked(harness)
    await chat.send_photo(receipt_photo(epd_qr()))
    await chat.press("Оплатить")
    await chat.press(nb("Оплатить 8 124,50 ₽"))
    assert "✅ Оплачено" in chat.last_text
    await chat.press("Готово")
    assert chat.buttons == LINKED_MENU  # «Готово» leads to the menu, not back to the receipt

    harness.clock.advance(7 * 24 * 3600)  # photographed again a week later
    await chat.send_photo(receipt_photo(epd_qr()))
    reply = await chat.press("Оплатить")
    assert "Уже оплачено" in reply.text and nb("8 124,50 ₽") in reply.text
    _no_pay_button(chat)
    assert len(await ledger(harness)) == 1
    await chat.press("Всё равно оплатить ещё раз")  # only an explicit second payment
    await chat.press(nb("Оплатить 8 124,50 ₽"))
    assert len(await ledger(harness)) == 2


async def test_a_receipt_matching_an_unpaid_epd_is_paid_as_that_bill(harness: Harness) -> None:
    chat = await linked(harness)
    period = _period(harness, 2)  # «ЕПД за 09.2026» of demo-full (B-1001, 8 124,50 ₽)
    payload = epd_qr(PersAcc="4703159826", PaymPeriod=period.replace(".", ""), Sum="800000")
    await chat.send_photo(receipt_photo(payload))
    reply = await chat.press("Оплатить")
    confirm = reply.text
    assert "К оплате 1 счёт" in confirm and f"ЕПД за {period}" in confirm
    assert nb("8 000,00 ₽") in confirm and nb("8 124,50 ₽") in confirm  # both amounts shown
    await chat.press(nb("Оплатить 8 124,50 ₽"))
    assert "✅ Оплачено" in chat.last_text
    assert "B-1001" not in {b["id"] for b in await city_bills(harness, chat)}
    [charge] = await ledger(harness)
    assert charge["amount"] == 812450

    await chat.send_photo(receipt_photo(payload))  # the same receipt again: paid, with the date
    reply = await chat.press("Оплатить")
    assert "уже оплачено" in reply.text and "квитанция №" in reply.text
    assert len(await ledger(harness)) == 1


async def test_a_receipt_of_a_paid_epd_says_so(harness: Harness) -> None:
    chat = await linked(harness)
    period = _period(harness, 3)  # B-1013, paid before the bot
    payload = epd_qr(PersAcc="4703159826", PaymPeriod=period.replace(".", ""), Sum="698204")
    await chat.send_photo(receipt_photo(payload))
    reply = await chat.press("Оплатить")
    assert "уже оплачено" in reply.text.lower()
    assert await ledger(harness) == []


async def test_a_receipt_paid_by_requisites_leaves_my_bills_and_pay_all(harness: Harness) -> None:
    """The receipt road and «Оплатить все» never pay the same ЕПД twice."""
    chat = await linked(harness)
    period = _period(harness, 1)  # B-1008
    payload = epd_qr(PersAcc="4703159826", PaymPeriod=period.replace(".", ""), Sum="764318")
    await chat.send_photo(receipt_photo(payload))
    await chat.press("Оплатить")
    await chat.press(nb("Оплатить 7 643,18 ₽"))
    await chat.press("Готово")
    await chat.press("Мои счета")
    assert f"ЕПД за {period}" not in chat.last_text
    await chat.press("Оплатить все")
    await chat.press(next(b for b in chat.buttons if b.startswith("Оплатить")))
    bills_charged = [c for c in await ledger(harness)]
    assert len(bills_charged) == 2
    assert await city_bills(harness, chat) == []


# ------------------------------------------------------------------ UIN paid / Готово


async def test_a_uin_paid_through_the_bot_says_when_not_pay(harness: Harness) -> None:
    chat = await open_bills(harness, "demo-standard")
    await chat.press("‹ Назад")
    uin = with_control_digit("188101772011290000" + "3")
    await chat.press("Добавить счёт по УИН")
    await chat.send(uin)
    await chat.press("Оплатить этот счёт")
    await chat.press(next(b for b in chat.buttons if b.startswith("Оплатить")))
    assert "✅ Оплачено" in chat.last_text
    await chat.press("Готово")
    assert chat.buttons == LINKED_MENU
    await chat.press("Добавить счёт по УИН")
    reply = await chat.send(uin)
    assert "уже оплачено" in reply.text and "квитанция №" in reply.text
    _no_pay_button(chat)
    assert len(await ledger(harness)) == 1


async def test_done_after_paying_a_bill_card_shows_the_refreshed_list(harness: Harness) -> None:
    chat = await open_bills(harness)
    first = bill_buttons(chat)[0]
    await chat.press(first)
    await chat.press("Оплатить выбранные")
    await chat.press(next(b for b in chat.buttons if b.startswith("Оплатить")))
    await chat.press("Готово")
    assert "11 неоплаченных" in chat.last_text


# ------------------------------------------------------------------ refusals, checks, resume


async def test_a_requisites_payment_the_city_refuses_is_named_and_settled(
    harness: Harness,
) -> None:
    chat = await linked(harness)
    assert harness.app is not None
    resident = await harness.stored_resident(chat)
    assert resident is not None
    bad = Requisites("ООО «Ромашка»", "123456789", "40702810938000012345", "044525225", "Взнос")
    now = harness.clock()
    async with harness.app.uow_factory() as uow:
        from domain.payments import prepare_requisites_payment

        intent = await prepare_requisites_payment(uow, resident, bad, 10_000, "pm-full-4242", now)
        await uow.commit()
        assert intent.id is not None
        outcome = await pay(uow, harness.app.city, harness.app.city, resident, intent.id, now)
        assert outcome.kind is OutcomeKind.REFUSED and outcome.refusal == "invalid_request"
        stored = await uow.payment_intents.get(intent.id)
        assert stored is not None and stored.status is IntentStatus.FAILED  # nothing in progress
        again = await check_payment(
            uow, harness.app.city, harness.app.city, resident, intent.id, now
        )
        assert again.kind is OutcomeKind.REFUSED
    assert await ledger(harness) == []


async def test_check_always_answers_and_a_pending_payment_resumes_from_history(
    harness: Harness,
) -> None:
    chat = await open_bills(harness)
    await chat.press(bill_buttons(chat)[0])
    await chat.press("Оплатить выбранные")
    await chat.press("Другой способ оплаты")
    await chat.press("Новая карта")
    await chat.press("Оплатить")
    assert "Перейти к оплате" in chat.buttons
    reply = await chat.press("Проверить оплату")  # the bank page is still open
    assert "банк ещё не подтвердил оплату" in reply.text
    url = chat.url_of("Перейти к оплате")
    await chat.press("Готово")
    await chat.press(bill_buttons(chat)[0])  # the same bill again: the open payment comes first
    await chat.press("Оплатить выбранные")
    assert "банк ещё не ответил" in chat.last_text
    _no_pay_button(chat)
    await chat.press("‹ Назад")
    await chat.press("‹ Назад")
    await chat.press("История платежей")
    resume = next(b for b in chat.buttons if b.startswith("⏳ Продолжить оплату"))
    await chat.press(resume)
    assert "Перейти к оплате" in chat.buttons
    await pay_on_page(url, card_number="4242424242424242")
    reply = await chat.press("Проверить оплату")
    assert "✅ Оплачено" in reply.text
    assert len(await ledger(harness)) == 1


async def test_a_donation_after_no_answer_is_checked_before_a_second_charge(
    harness: Harness,
) -> None:
    chat = await linked(harness, "demo-standard")
    await open_first_fund(chat)
    await chat.press(nb("500,00 ₽"))
    await harness.sandbox_call("PUT", "/sandbox/faults", json={"fail_after_processing": 5})
    reply = await chat.press(next(b for b in chat.buttons if b.startswith("Оплатить")))
    assert "Не оплачивайте повторно" in reply.text
    await chat.press("Готово")  # back to the fund's card
    await harness.sandbox_call("PUT", "/sandbox/faults", json={})
    reply = await chat.press(nb("500,00 ₽"))
    assert "банк ещё не ответил" in reply.text
    _no_pay_button(chat)
    reply = await chat.press("Проверить оплату")
    assert "Спасибо" in reply.text or "✅" in reply.text
    assert len(await ledger(harness)) == 1


# ------------------------------------------------------------------ receipts as they come


async def test_an_album_of_receipts_answers_each_receipt(harness: Harness) -> None:
    chat = await linked(harness)
    photos = [receipt_photo(epd_qr()), receipt_photo(epd_qr(Sum="100000"))]
    reply = await chat.send_album(photos)
    assert nb("8 124,50 ₽") in reply.text and nb("1 000,00 ₽") in reply.text  # both read, one list
    await chat.press("Оплатить № 2")
    assert nb("Сумма: 1 000,00 ₽") in chat.last_text
    await chat.press("Отмена")
    assert nb("Оплатить № 1 — 8 124,50 ₽") in chat.buttons  # back to the album's list


async def test_a_late_part_of_an_album_is_read_too(harness: Harness) -> None:
    """A part that arrives after its album was answered is read on its own, never dropped."""
    chat = await linked(harness)
    await chat.send_photo(receipt_photo(epd_qr()), media_group_id="42")
    assert nb("8 124,50 ₽") in chat.last_text
    reply = await chat.send_photo(receipt_photo(epd_qr(Sum="100000")), media_group_id="42")
    assert nb("Сумма: 1 000,00 ₽") in reply.text


async def test_a_huge_typed_receipt_amount_is_refused_and_the_receipt_kept(
    harness: Harness,
) -> None:
    chat = await linked(harness)
    await chat.send_photo(receipt_photo(epd_qr(Sum=None)))
    await chat.press("Оплатить")
    reply = await chat.send("99 999 999 999")
    assert nb("не более 500 000,00 ₽") in reply.text
    reply = await chat.send("1500 50")
    assert "разряды по три цифры" in reply.text
    await chat.send("1 500,50")
    assert nb("Сумма: 1 500,50 ₽") in chat.last_text
    assert await ledger(harness) == []


async def test_a_receipt_the_city_could_not_accept_is_explained_not_sent(
    harness: Harness,
) -> None:
    """A 9-digit INN and no UIN: nothing the city would take; the resident may type the UIN."""
    chat = await linked(harness)
    reply = await chat.send_photo(receipt_photo(epd_qr(PayeeINN="770123456", PersAcc="1")))
    assert "ИНН получателя" in reply.text and "Ввести УИН" in chat.buttons
    _no_pay_button(chat)
    assert await ledger(harness) == []


@pytest.mark.markup_in_values
async def test_receipt_text_is_shown_as_text_never_as_markup(harness: Harness) -> None:
    """A QR's payee and purpose go into HTML messages escaped: no link, no refused message."""
    chat = await linked(harness)
    name = 'ГБУ <a href="https://evil.example/pay">Жилищник</a> & Ко'
    payload = epd_qr(Name=name, Purpose="Оплата за <b> кв. 12")
    reply = await chat.send_photo(receipt_photo(payload.decode("cp1251").encode()))
    assert f"Получатель: {name}" in reply.text
    assert "Оплата за <b> кв. 12" in reply.text
    await chat.press("Оплатить")
    confirm = chat.messages[-1] if chat.messages else None
    assert f"Получатель: {name}" in chat.last_text
    for message in [*reply.messages, *([confirm] if confirm else [])]:
        assert not message.payload.get("entities"), message.payload.get("entities")
    assert "Что-то пошло не так" not in chat.last_text


@pytest.mark.parametrize(
    "fields",
    [
        {"PersAcc": "4703 159 826"},  # the payer code printed in groups
        {"PersAcc": "04703159826"},  # with a leading zero
        {"PaymPeriod": None},  # the period only in the purpose
        {"PaymPeriod": None, "Purpose": "Оплата ЕПД"},  # no period at all: the amount decides
        {"PaymPeriod": "{mmyy}"},  # a truncated MMYY period
    ],
)
async def test_an_epd_receipt_printed_otherwise_is_still_that_bill(
    harness: Harness, fields: dict[str, str | None]
) -> None:
    chat = await linked(harness)
    period = _period(harness, 2)  # B-1001
    base = {
        "PersAcc": "4703159826",
        "PaymPeriod": period.replace(".", ""),
        "Sum": "812450",
        "Purpose": f"Оплата ЕПД за {period}",
    }
    for key, value in fields.items():
        base[key] = value.format(mmyy=period[:2] + period[-2:]) if value else value
    await chat.send_photo(receipt_photo(epd_qr(**base)))
    reply = await chat.press("Оплатить")
    assert "К оплате 1 счёт" in reply.text and f"ЕПД за {period}" in reply.text
    await chat.press(nb("Оплатить 8 124,50 ₽"))
    await chat.press("Готово")
    await chat.press("Мои счета")
    assert f"ЕПД за {period}" not in chat.last_text
    await chat.press("Оплатить все")
    await chat.press(next(b for b in chat.buttons if b.startswith("Оплатить")))
    charges = [c["amount"] for c in await ledger(harness)]
    assert charges.count(812450) == 1 and len(charges) == 2


async def test_a_receipt_paid_from_another_telegram_account_is_shown_as_paid(
    harness: Harness,
) -> None:
    """The city's payment history is the authority: requisites paid by the same city account
    from another chat (or the site) are shown before any new charge."""
    first = harness.chat(user_id=100001)
    await harness.link(first)
    await first.send_photo(receipt_photo(epd_qr()))
    await first.press("Оплатить")
    await first.press(nb("Оплатить 8 124,50 ₽"))
    second = harness.chat(user_id=100002, first_name="Пётр")
    await harness.link(second)  # the same demo city account, another Telegram user
    await second.send_photo(receipt_photo(epd_qr()))
    reply = await second.press("Оплатить")
    assert "Уже оплачено" in reply.text
    _no_pay_button(second)
    assert len(await ledger(harness)) == 1
