"""Review 33d: adding and paying a bill by a receipt's QR code and by a typed UIN, as residents
with real receipts do it.

Shapes of the payloads and where they come from:

* The Moscow ЕПД prints two payment codes side by side: the housing services (ЕИРЦ) and the
  contribution for capital repair (Фонд капитального ремонта многоквартирных домов города Москвы,
  its own payee and account), both with the flat's payer code (PersAcc) and the same month
  («Отдельной строкой вынесен капремонт», the regional ЕПД descriptions; the bot's own
  `_payment_qrs` docstring: «a bill and its capital repair»). The fund's account below is made up.
* Sberbank's receipt generators (AndrewGo2017/kvitmoscow and kvit-001-back, QrHandler.java)
  build the payload by string concatenation in Java: a field that is not set comes out as the
  text «null» (``.append("PersAcc=").append(qrStructure.ls)``).
* A СБП payment link (https://qr.nspk.ru/…, the NSPK's format; tests/unit/test_payment_qr.py
  uses the same one) is printed on receipts next to or instead of the ST00012 code.
"""

from __future__ import annotations

from typing import Any

import pytest

from sandbox import oauth
from sandbox.data import BillStatus, CityBill
from sandbox.payments_api import PAYMENTS_KEY
from tests.flows.conftest import Harness
from tests.flows.receipt_codes import qr_png
from tests.flows.test_numbers_typed import lookups  # noqa: F401 - a fixture
from tests.flows.test_payments import ledger
from tests.flows.test_receipt_photo import linked
from tests.flows.test_review18_receipts_flows import two_codes_photo
from tests.money_text import nb

EIRC = (
    "ST00012|Name=ЕИРЦ «Городской расчётный центр»|PersonalAcc=40702810938000012345"
    "|BankName=ПАО СБЕРБАНК|BIC=044525225|CorrespAcc=30101810400000000225|PayeeINN=7701234567"
)
CAPITAL_REPAIR = (
    "ST00012|Name=Фонд капитального ремонта многоквартирных домов города Москвы"
    "|PersonalAcc=40604810138000000001|BankName=ПАО СБЕРБАНК|BIC=044525225"
    "|CorrespAcc=30101810400000000225|PayeeINN=7701090559|KPP=770101001"
)
STANDARD_PAYER = "8215604937"  # demo-standard's ЕПД payer code
SBP_LINK = (
    "https://qr.nspk.ru/AS1000670LSS7DN18SJQDNP4B05KLJL2?type=01&bank=100000000001"
    "&sum=150000&cur=RUB&crc=C08B"
)


def _bill(harness: Harness, bill_id: str) -> CityBill:
    data = harness.sandbox.app[oauth.DATA_KEY]
    [bill] = [bill for bill in data.bills if bill.id == bill_id]
    return bill


def _paid_requisites(harness: Harness) -> list[dict[str, Any]]:
    """The payee INN and amount of every payment by requisites the city received."""
    book = harness.sandbox.app[PAYMENTS_KEY]
    return [
        {"inn": p.request.requisites.payee_inn, "amount": p.request.amount}
        for p in book.payments.values()
        if p.request.requisites is not None
    ]


def _period_code(period: str) -> str:
    month, year = period.split(".")
    return f"{month}{year}"


def _capital_repair(period: str) -> str:
    return (
        f"{CAPITAL_REPAIR}|Purpose=Взнос на капитальный ремонт|PersAcc={STANDARD_PAYER}"
        f"|PaymPeriod={_period_code(period)}|Sum=150000|TechCode=02"
    )


def _epd(period: str, amount: int) -> str:
    return (
        f"{EIRC}|Purpose=Оплата ЖКУ|PersAcc={STANDARD_PAYER}|PaymPeriod={_period_code(period)}"
        f"|Sum={amount}|TechCode=02"
    )


async def _photo(harness: Harness, login: str, data: str | bytes):
    chat = await linked(harness, login)
    reply = await chat.send_photo(qr_png(data.encode() if isinstance(data, str) else data))
    return chat, reply.text


# ---------------------------------------------------------------- the ЕПД and its capital repair


async def test_the_epd_code_next_to_its_capital_repair_pays_the_epd_bill(harness: Harness) -> None:
    """Guard: of the two codes of one ЕПД, the housing one pays the resident's unpaid bill."""
    epd = _bill(harness, "B-2001")
    chat = await linked(harness, "demo-standard")
    photo = two_codes_photo(
        _epd(epd.period or "", epd.amount).encode(), _capital_repair(epd.period or "").encode()
    )
    await chat.send_photo(photo, width=900, height=400)
    await chat.press(nb("Оплатить № 1 — 6 237,90 ₽"))
    await chat.press("Оплатить")
    assert "К оплате 1 счёт" in chat.last_text and "ЕПД за" in chat.last_text


# Was (review 33d): a capital repair code with the ЕПД's payer code and month is paid as the ЕПД
# Was (review 33d): match_receipt matches a receipt to a bill by payer code and period only, so the
# capital repair fund's code pays the ЕПД bill (another payee, another amount)
async def test_the_capital_repair_code_pays_the_fund_not_the_epd(harness: Harness) -> None:
    epd = _bill(harness, "B-2001")
    chat = await linked(harness, "demo-standard")
    photo = two_codes_photo(
        _epd(epd.period or "", epd.amount).encode(), _capital_repair(epd.period or "").encode()
    )
    await chat.send_photo(photo, width=900, height=400)
    await chat.press(nb("Оплатить № 2 — 1 500,00 ₽"))
    await chat.press("Оплатить")
    # Before: «⚠️ На квитанции 1 500,00 ₽, а город выставил 6 237,90 ₽ — к оплате сумма города.
    # К оплате 1 счёт: • ЕПД за … — 6 237,90 ₽», and «Оплатить 6 237,90 ₽» pays the ЕПД.
    assert "Оплата по реквизитам" in chat.last_text
    assert "Фонд капитального ремонта" in chat.last_text
    assert nb("Итого: 1 500,00 ₽") in chat.last_text


# Was (review 33d): the capital repair of a month whose ЕПД is paid is said to be paid already
# Was (review 33d): the capital repair code is matched to the paid ЕПД of its month (match_receipt)
# and answered «Это уже оплачено»: the contribution can never be paid from the photo
async def test_the_capital_repair_of_a_paid_epd_month_is_not_called_paid(
    harness: Harness,
) -> None:
    paid = _bill(harness, "B-2005")
    assert paid.status is BillStatus.PAID
    chat, _card = await _photo(harness, "demo-standard", _capital_repair(paid.period or ""))
    await chat.press("Оплатить")
    assert "уже оплачено" not in chat.last_text
    assert "Оплата по реквизитам" in chat.last_text


# ---------------------------------------------------------------- receipts by UIN


async def test_a_kindergarten_receipt_pays_the_bill_at_the_citys_amount(harness: Harness) -> None:
    """A 25-digit UIN of the resident's own bill: paid as that bill, the city's amount shown and
    charged, the receipt's other amount named."""
    bill = _bill(harness, "B-1004")
    receipt = (
        "ST00012|Name=ГБОУ «Школа № 1811»|PersonalAcc=03224643450000007300"
        "|BankName=ГУ Банка России по ЦФО//УФК по г.Москве г.Москва|BIC=004525988"
        "|CorrespAcc=40102810545370000003|PayeeINN=7733098705|KPP=773301001"
        f"|CBC=07500000000131131022|Purpose=Родительская плата|UIN={bill.uin}|Sum=300000"
    )
    chat, card = await _photo(harness, "demo-full", receipt)
    assert f"УИН: {bill.uin}" in card and nb("Сумма: 3 000,00 ₽") in card
    await chat.press("Оплатить")
    text = chat.last_text
    assert nb("На квитанции 3 000,00 ₽, а город выставил 3 460,00 ₽") in text
    assert "Родительская плата за детский сад" in text and nb("Итого: 3 460,00 ₽") in text
    await chat.press(nb("Оплатить 3 460,00 ₽"))
    assert [c["amount"] for c in await ledger(harness)] == [346_000]
    assert _paid_requisites(harness) == []


async def test_a_receipt_for_a_paid_fine_says_so_and_charges_nothing(harness: Harness) -> None:
    fine = _bill(harness, "B-1014")
    assert fine.status is BillStatus.PAID and fine.uin
    receipt = (
        "ST00012|Name=УФК по г. Москве (ГУ МВД России по г. Москве)"
        "|PersonalAcc=03100643000000017300|BankName=ГУ Банка России по ЦФО|BIC=004525988"
        "|CorrespAcc=40102810545370000003|PayeeINN=7707089101|KPP=770731005"
        f"|CBC=18811601123010001140|OKTMO=45380000|UIN={fine.uin}|Sum=250000|TechCode=03"
    )
    chat, _card = await _photo(harness, "demo-full", receipt)
    await chat.press("Оплатить")
    assert "оплачено" in chat.last_text and "Итого" not in chat.last_text
    assert await ledger(harness) == [] and _paid_requisites(harness) == []


# ---------------------------------------------------------------- amounts as printed


@pytest.mark.parametrize("printed", ["100000", "1000.00", "1 000,00", "000100000"])
async def test_a_sum_in_kopecks_or_rubles_is_the_amount_confirmed_and_charged(
    harness: Harness, printed: str
) -> None:
    chat, card = await _photo(harness, "demo-full", f"{EIRC}|Purpose=Оплата|Sum={printed}")
    assert nb("Сумма: 1 000,00 ₽") in card
    await chat.press("Оплатить")
    assert nb("Итого: 1 000,00 ₽") in chat.last_text
    await chat.press(nb("Оплатить 1 000,00 ₽"))
    assert _paid_requisites(harness) == [{"inn": "7701234567", "amount": 100_000}]


async def test_two_different_sums_in_one_code_are_asked_not_picked(harness: Harness) -> None:
    chat, card = await _photo(
        harness, "demo-full", f"{EIRC}|Sum=100000|Purpose=Оплата|Sum=10000000"
    )
    assert "Сумма:" not in card and "сумма" in card
    await chat.press("Оплатить")
    assert "Сколько заплатить" in chat.last_text
    await chat.send("1000")
    assert nb("Сумма: 1 000,00 ₽") in chat.last_text
    assert _paid_requisites(harness) == []


# ---------------------------------------------------------------- what the code says, shown


# Was (review 33d): a generator's «null» is shown as the payer code and the purpose
# Was (review 33d): parse_payment_qr keeps «null» (Java string concatenation of an unset field) as a
# value: the card shows «Назначение: null» and «Код плательщика: null»
async def test_null_fields_of_a_java_generator_are_not_shown(harness: Harness) -> None:
    receipt = (
        f"{EIRC}|KPP=null|PersAcc=null|Sum=100000|LastName=null|PayerAddress=Москва|Purpose=null|"
    )
    chat, card = await _photo(harness, "demo-full", receipt)
    assert nb("Сумма: 1 000,00 ₽") in card
    assert "null" not in card.lower()
    await chat.press("Оплатить")
    assert "null" not in chat.last_text.lower()


@pytest.mark.markup_in_values
async def test_markup_and_a_long_purpose_are_shown_as_printed(harness: Harness) -> None:
    long_purpose = "Оплата по договору № 12 ² " * 40  # ~1 000 characters
    receipt = (
        "ST00012|Name=ООО «<b>Ромашка</b> & Co»|PersonalAcc=40702810938000012345"
        "|BankName=ПАО СБЕРБАНК|BIC=044525225|CorrespAcc=30101810400000000225"
        f"|PayeeINN=7701234567|Sum=100000|Purpose=<script>{long_purpose}"
    )
    chat, card = await _photo(harness, "demo-full", receipt)
    assert "Получатель: ООО «<b>Ромашка</b> & Co»" in card
    assert "Назначение: <script>Оплата по договору № 12 ²" in card and card.endswith("₽")
    await chat.press("Оплатить")
    assert "Получатель: ООО «<b>Ромашка</b> & Co»" in chat.last_text
    assert nb("Итого: 1 000,00 ₽") in chat.last_text


# Was (review 33d): a direction override in the payee's name is shown and sent on
# Was (review 33d): payment_qr._clean drops zero-width characters but not bidi controls
# (U+202A-202E, U+2066-2069): the payee's name is shown reordered on the card and the confirmation
async def test_direction_overrides_in_the_payee_are_not_shown(harness: Harness) -> None:
    receipt = f"{EIRC}|Sum=100000".replace(
        "Name=ЕИРЦ «Городской расчётный центр»", "Name=ЕИРЦ \u202eртнец йынтёчсар\u202c"
    )
    chat, card = await _photo(harness, "demo-full", receipt)
    await chat.press("Оплатить")
    for shown in (card, chat.last_text):
        assert not any(mark in shown for mark in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067")


# Was (review 33d): a СБП payment link is called «не платёжный» QR code
# Was (review 33d): an https://qr.nspk.ru/ link is answered with receipt-not-payment («Это QR-код,
# но не платёжный»), which is false for a СБП payment code
async def test_an_sbp_payment_link_is_not_called_not_a_payment_code(harness: Harness) -> None:
    chat, text = await _photo(harness, "demo-full", SBP_LINK)
    assert "Ввести УИН" in chat.buttons and "‹ Назад" in chat.buttons
    assert "не платёжный" not in text


async def test_a_link_that_is_no_payment_gets_a_way_on(harness: Harness) -> None:
    chat, text = await _photo(harness, "demo-full", "https://www.mos.ru/pgu/ru/application/")
    assert "не платёжный" in text and "Ввести УИН" in chat.buttons
    await chat.press("Ввести УИН")
    assert "Введите УИН" in chat.last_text
    await chat.send("1881 0136 1611 0800 8161")
    assert "Нашли начисление" in chat.last_text


# ---------------------------------------------------------------- typed UINs


# Was (review 33d): a UIN pasted with its label «УИН» is counted as 23 characters
# Was (review 33d): domain.uin.normalize keeps the label: У, И, Н are letters of the DIT table, so
# «УИН 18810136161108008161» is told «В УИН 23 знака»
async def test_a_uin_pasted_with_its_label_is_found(harness: Harness) -> None:
    chat = await linked(harness, "demo-standard")
    await chat.press("Добавить счёт по УИН")
    reply = await chat.send("УИН 18810136161108008161")
    assert "23 знака" not in reply.text
    assert "Нашли начисление" in reply.text


@pytest.mark.parametrize(
    ("typed", "answer"),
    [
        ("0", "1 знак"),  # «0» means «no UIN» on a payment order, never a charge
        ("00000000000000000000", "из одних нулей"),
        ("18810177200718000123", "не сходится"),  # REFERENCE: control digit should be 7
        ("0355 4310 1011 7031 6000 1127 4", "не сходится"),  # 25 digits, last one mistyped
        ("１８８１０１３６１６１１０８００８１６１", "цифр 0–9"),
    ],
)
async def test_a_uin_that_cannot_be_one_is_refused_before_the_city(
    harness: Harness,
    lookups: list[str],  # noqa: F811 - the fixture imported above
    typed: str,
    answer: str,
) -> None:
    chat = await linked(harness, "demo-standard")
    await chat.press("Добавить счёт по УИН")
    reply = await chat.send(typed)
    assert answer in reply.text and "Введите УИН" in chat.last_text
    assert lookups == []
    again = await chat.send("0355-4310-1011-7031-6000-1127-5")  # REFERENCE, second pass
    assert "Нашли начисление" in again.text or "не найдено" in again.text
    assert lookups == ["0355431010117031600011275"]
