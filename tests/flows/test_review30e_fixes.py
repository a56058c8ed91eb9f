"""Review 30e: attacks on the fixes of review 30 (8688f36, 8ca3652, e4066e0, c7c2726) and the
same kinds of fault where they were not fixed.

- the period read from a receipt's purpose (`period_in_text`, `_NOT_A_PERIOD_BEFORE`): real
  periods it now drops, and deadlines it still reads as the period;
- «not by requisites to a budget payee whose UIN is unreadable» (`ReceiptCheck.can_pay`): the
  resident's own bill, which the payer code and period identify, refused with it;
- phones typed with «+» (`domain.topups._phone`);
- «Не устранено» checked at the press (`refutable_report`): what the refusal says;
- the quiet hours' digest's buttons pressed in every order and under an old message.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest

from domain.payment_qr import period_in_text
from domain.topups import AccountProblem, mgts_account, parking_account
from sandbox.conversation import Conversation
from tests.flows.conftest import Harness
from tests.flows.receipt_codes import qr_png
from tests.flows.test_bill_discovery import FULL, discover, issue
from tests.flows.test_hostile_input import press_again
from tests.flows.test_receipt_photo import linked
from tests.flows.test_review15_quiet import donation
from tests.flows.test_review30_notice_buttons import (
    MSK,
    SKIP,
    SKIPPED,
    calm,
    deliver,
    report_answered_then_relinked,
    tick,
)
from tests.flows.test_review30_support_moved import desk as desk

# demo-standard's unpaid ЕПД (sandbox/data.py): payer code 8215604937, 6 237,90 ₽, last month.
EPD_CODE = "8215604937"
EPD_AMOUNT = 623790
# Moscow's ЕПД prints two codes: without and with the voluntary flat insurance; the one with
# it is more than the city's bill.
WITH_INSURANCE = EPD_AMOUNT + 9_850


def _last_month(harness: Harness) -> date:
    today = harness.clock().date()
    first = today.replace(day=1)
    return (first.replace(year=first.year - 1, month=12) if first.month == 1 else
            first.replace(month=first.month - 1))  # fmt: skip


def _next_month(harness: Harness) -> date:
    first = harness.clock().date().replace(day=1)
    return (
        first.replace(year=first.year + 1, month=1)
        if first.month == 12
        else first.replace(month=first.month + 1)
    )


_MONTHS_GENITIVE = (
    "января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа", "сентября",
    "октября", "ноября", "декабря",
)  # fmt: skip
_MONTHS = (
    "январь", "февраль", "март", "апрель", "май", "июнь", "июль", "август", "сентябрь",
    "октябрь", "ноябрь", "декабрь",
)  # fmt: skip


def _epd(*, purpose: str, amount: int, extra: str = "", account: str = "") -> bytes:
    payee = account or (
        "|PersonalAcc=40702810938000012345|BankName=ПАО СБЕРБАНК|BIC=044525225"
        "|CorrespAcc=30101810400000000225"
    )
    return (
        "ST00012|Name=ЕИРЦ «Городской расчётный центр»"
        f"{payee}|PayeeINN=7701234567|PersAcc={EPD_CODE}|Sum={amount}|Purpose={purpose}"
        f"|TechCode=02{extra}"
    ).encode()


async def _pay_receipt(harness: Harness, payload: bytes) -> tuple[str, str, list[str]]:
    chat = await linked(harness, "demo-standard")
    reply = await chat.send_photo(qr_png(payload))
    card = reply.text
    if "Оплатить" in chat.buttons:
        await chat.press("Оплатить")
    return card, chat.last_text, chat.buttons


# ---------------------------------------------------------------- the period in the purpose


def test_periods_a_purpose_names_plainly_are_read() -> None:
    """Guard: the usual ways an ЕПД's purpose names its month."""
    assert period_in_text("Оплата ЕПД за 09.2026") == "09.2026"
    assert period_in_text("Оплата ЖКУ 09.2026 г.") == "09.2026"
    assert period_in_text("ЕПД сентябрь 2026") == "09.2026"
    assert period_in_text("за сентябрь 2026г") == "09.2026"
    assert period_in_text("кв 5 за 09/2026") == "09.2026"
    assert period_in_text("оплатить до 10.10.2026") is None
    assert period_in_text("Счёт № 15 от 01.09.2026") is None
    assert period_in_text("до 1 октября 2026") is None


# Was (review 30e): period_in_text drops a month and year that follow any number («кв. 15 октябрь
# 2026», «ЛС 8215604937 10.2026») or name the month as a date range
@pytest.mark.parametrize(
    "purpose",
    [
        "Оплата ЖКУ кв. 15 октябрь 2026",
        "ЛС 8215604937 10.2026",
        "ЖКУ за период с 01.10.2026 по 31.10.2026",
    ],
)
def test_a_period_after_a_number_or_as_a_one_month_range_is_still_read(purpose: str) -> None:
    # Before 8ca3652 each of these read 10.2026; now «[0-9][./\s]?» before the match throws
    # away any month that follows a flat or account number, and the range's two dates.
    assert period_in_text(purpose) == "10.2026"


# Was (review 30e): «срок оплаты 11.2026», «до конца ноября 2026», «до 10-го ноября 2026» are still
# read as the receipt's period (_NOT_A_PERIOD_BEFORE knows only a word right before)
@pytest.mark.parametrize(
    "purpose",
    [
        "Оплата ЖКУ, срок оплаты 11.2026",
        "Оплата ЖКУ. Срок оплаты: ноябрь 2026",
        "Оплата ЖКУ, оплатить до конца ноября 2026",
        "Оплата ЖКУ, оплатить до 10-го ноября 2026",
    ],
)
def test_a_deadline_is_not_read_as_the_period(purpose: str) -> None:
    assert period_in_text(purpose) is None


# Was (review 30e): a due date after «Срок оплаты» becomes the receipt's period: the ЕПД is matched
# to no bill and paid by requisites while the bill stays unpaid
async def test_an_epd_receipt_with_a_срок_оплаты_pays_the_residents_bill(
    harness: Harness,
) -> None:
    # The exact defect 8ca3652 fixed for «оплатить до <date>», with the commonest wording of a
    # deadline on a receipt: «Срок оплаты» followed by next month.
    due = _next_month(harness)
    purpose = f"Оплата ЖКУ. Срок оплаты: {_MONTHS[due.month - 1]} {due.year}"
    _card, text, _buttons = await _pay_receipt(harness, _epd(purpose=purpose, amount=EPD_AMOUNT))
    assert "К оплате 1 счёт" in text
    assert "Оплата по реквизитам" not in text


# Was (review 30e): an ЕПД period printed after the flat number is no longer read (8ca3652): the
# receipt with insurance is paid by requisites while the resident's bill stays unpaid
async def test_an_epd_receipt_with_the_period_after_the_flat_number_pays_the_bill(
    harness: Harness,
) -> None:
    # The receipt's amount includes the voluntary insurance, so only the period identifies the
    # bill. Before 8ca3652 «кв. 15 <месяц> <год>» was read, the bill matched and paid at the
    # city's amount (with «Сумма в квитанции … отличается»).
    month = _last_month(harness)
    purpose = f"Оплата ЖКУ кв. 15 {_MONTHS[month.month - 1]} {month.year}"
    _card, text, _buttons = await _pay_receipt(
        harness, _epd(purpose=purpose, amount=WITH_INSURANCE)
    )
    assert "К оплате 1 счёт" in text
    assert "Оплата по реквизитам" not in text


# ---------------------------------------------------------------- a budget payee, UIN garbled

TREASURY = (
    "|PersonalAcc=03100643000000017300|BankName=ГУ Банка России по ЦФО|BIC=004525988"
    "|CorrespAcc=40102810545370000003"
)


async def test_a_treasury_receipt_with_a_readable_uin_of_zero_is_still_payable(
    harness: Harness,
) -> None:
    """Guard: «UIN=0» means none, and a treasury payee is paid by its requisites then."""
    month = _last_month(harness)
    card, text, _ = await _pay_receipt(
        harness,
        _epd(
            purpose="Оплата ЖКУ",
            amount=EPD_AMOUNT,
            account=TREASURY,
            extra=f"|PaymPeriod={month:%m.%Y}|UIN=0",
        ),
    )
    assert "Не смог прочитать" not in card
    assert "К оплате 1 счёт" in text


# Was (review 30e): a receipt to a treasury account with a garbled UIN is refused before its payer
# code and period are matched: the resident's own ЕПД bill cannot be paid from the photo
@pytest.mark.parametrize("uin", ["Null", "-", "18810177200718000123"])
async def test_an_epd_receipt_to_a_treasury_account_with_a_garbled_uin_pays_the_bill(
    harness: Harness, uin: str
) -> None:
    # can_pay is False (budget payee, UIN problem), so handlers/receipts.py `_read` answers
    # «receipt-unusable» and `on_pay` → `match_receipt` is never reached — although PersAcc
    # and PaymPeriod name the resident's unpaid bill exactly, which is paid as the city's
    # bill (with the city's own identifiers), never by requisites.
    month = _last_month(harness)
    card, text, _buttons = await _pay_receipt(
        harness,
        _epd(
            purpose="Оплата ЖКУ",
            amount=EPD_AMOUNT,
            account=TREASURY,
            extra=f"|PaymPeriod={month:%m.%Y}|UIN={uin}",
        ),
    )
    assert "К оплате 1 счёт" in text, (card, text)


# ---------------------------------------------------------------- the digest's buttons


async def _digest_bill_and_donation(harness: Harness) -> tuple[Conversation, Any]:
    """A quiet hours' digest: «1 · Оплатить» (a new ЕПД) and «2 · Пропустить этот раз»."""
    chat = harness.chat()
    await harness.link(chat)
    harness.clock.now = datetime(2026, 11, 23, 12, 0, tzinfo=MSK)
    await discover(harness)
    await donation(chat, 1, 25)
    harness.clock.now = datetime(2026, 11, 24, 0, 0, 30, tzinfo=MSK)  # quiet hours: held
    issue(harness, FULL, 812_450)
    assert await discover(harness) == 1
    await tick(harness)
    await deliver(harness)
    harness.clock.now = datetime(2026, 11, 24, 9, 0, tzinfo=MSK)
    await deliver(harness)
    digest = chat.last_message
    assert digest is not None and "Пока шли тихие часы, пришло 2" in digest.text
    return chat, digest


def _shown(harness: Harness, chat: Conversation, message_id: int) -> list[str]:
    now = harness.telegram.message(chat.chat_id, message_id)
    assert now is not None
    return [b.text for b in now.buttons]


async def test_pay_pressed_under_an_inaccessible_digest_keeps_the_other_items_skip(
    harness: Harness,
) -> None:
    """Guard: «N · Оплатить» under a digest older than 48 hours (InaccessibleMessage, date 0)
    opens the pay step and leaves the donation's skip where it is."""
    chat, digest = await _digest_bill_and_donation(harness)
    labels = [b.text for b in digest.buttons]
    pay = next(b for b in digest.buttons if b.text.endswith("Оплатить"))
    skip = next(label for label in labels if label.endswith(SKIP))
    inaccessible = {"chat": harness.telegram.chat(chat.chat_id), "message_id": digest.message_id,
                    "date": 0}  # fmt: skip
    reply = await press_again(chat, inaccessible, pay.callback_data or "")
    calm(reply)
    assert "ЕПД за 11.2026" in reply.text
    assert skip in _shown(harness, chat, digest.message_id)


async def test_digest_items_pressed_in_every_order_leave_no_spent_button(
    harness: Harness,
) -> None:
    """Guard: pay first (the digest is edited to keep the skip), then the skip from the keyboard
    as first delivered (its edit not seen yet), then pay again from it: nothing comes back and
    the donation is skipped once."""
    chat, digest = await _digest_bill_and_donation(harness)
    payload = dict(digest.payload)
    pay = next(b for b in digest.buttons if b.text.endswith("Оплатить")).callback_data or ""
    skip = next(b for b in digest.buttons if b.text.endswith(SKIP)).callback_data or ""
    calm(await chat.press(next(b.text for b in digest.buttons if b.text.endswith("Оплатить")),
                          message_id=digest.message_id))  # fmt: skip
    await chat.press("Отмена")
    calm(await press_again(chat, payload, skip))
    assert _shown(harness, chat, digest.message_id) == []
    calm(await press_again(chat, payload, pay))
    assert _shown(harness, chat, digest.message_id) == []
    assert sum(SKIPPED in t for t in chat.history) == 1


# ---------------------------------------------------------------- «Не устранено» at the press


# Was (review 30e): «Не устранено» of the previous account's report is refused with «Не нашли этого
# в городском сервисе» — nothing says whose report it is or what to do
async def test_refute_of_the_previous_accounts_report_says_why_and_what_to_do(
    harness: Harness,
) -> None:
    # refutable_report raises NotFound for a report of another account (`_own_report`), and
    # `_refusal` tells it through ERROR_KEYS' generic «error-not-found»: «Возможно, данные уже
    # изменились» — the resident cannot tell that the report is the other mos.ru account's,
    # nor that relinking that account (or «Мои обращения» there) is the way to answer it.
    chat, notice = await report_answered_then_relinked(harness)
    reply = await chat.press("Не устранено", message_id=notice)
    calm(reply)
    assert "Что не так?" not in reply.text
    assert "аккаунт" in reply.text, reply.text


# ---------------------------------------------------------------- phones typed for top-ups


def test_a_phone_typed_with_a_plus_in_every_russian_shape_is_the_same_account() -> None:
    """Guard of e4066e0: «+7» in every usual shape, «8 …» and ten digits are one number; «+8»
    and any other country code after «+» are refused."""
    shapes = (
        "+7 916 123-45-67",
        "+7(916)1234567",
        "+ 7 916 123 45 67",
        "8 916 123 45 67",
        "9161234567",
        "+7\u00a0916\u00a0123\u201145\u201167",
        "7 916 123 45 67",
    )
    for typed in shapes:
        assert parking_account(typed) == "79161234567", typed
    for typed in ("+8 916 123-45-67", "+9 916 123 45 67", "+960 791 2345", "+79 16 123 45 67 0"):
        assert isinstance(parking_account(typed), AccountProblem), typed
    assert mgts_account("+7 495 123-45-67") == "74951234567"
    assert isinstance(mgts_account("+8 495 123-45-67"), AccountProblem)


# Was (review 30e): a phone pasted from iOS Contacts (wrapped in U+202A … U+202C) is refused as «not
# a mobile number» though it is exactly the «+7 916 123-45-67» the refusal asks for
def test_a_phone_pasted_from_contacts_with_direction_marks_is_the_parking_account() -> None:
    # iOS copies a contact's number as «\u202a+7 916 123‑45‑67\u202c» (left-to-right embedding,
    # non-breaking hyphens, pop directional formatting). `_phone` strips white space only, so
    # the «+» is not seen first, and `_digits` refuses U+202A as a sign (FORMAT).
    assert parking_account("\u202a+7 916 123\u201145\u201167\u202c") == "79161234567"
