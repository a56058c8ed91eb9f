"""Review 36d: receipts of the real world through the parser, the photo flow and the typed UIN.

Where earlier reviews (30, 33d and the unit tests of the parser) did not go: a receipt without
a sum and a period paid at a typed amount, a payer code printed twice, the control keys of an
account and an INN, an all-capitals receipt in KOI8-R under the UTF-8 header, a UIN pasted with
typographic dashes, an iPhone's HEIC sent as a file, an animated GIF, a sticker, a 1×1 picture,
a file that only claims to be a JPEG, a sum over the ceiling.

Reference values: the INN 7707089101 (УФК по г. Москве, the ГИБДД payee) and the account
40702810138250123017 at BIC 044525225 (QRCoder's own test) are real and pass their control
keys; the UINs are the reference's valid examples.
"""

from __future__ import annotations

import io

import pytest
from PIL import Image

from domain.payment_qr import ReceiptProblem, parse_payment_qr, validate
from domain.uin import check_uin
from sandbox.data import BillStatus
from tests.flows.conftest import Harness
from tests.flows.receipt_codes import qr_png
from tests.flows.test_hostile_input import no_crash
from tests.flows.test_numbers_typed import lookups  # noqa: F401 - a fixture
from tests.flows.test_payments import ledger
from tests.flows.test_receipt_photo import linked
from tests.flows.test_review33d_receipts import _bill, _paid_requisites
from tests.money_text import nb

EIRC = (
    "ST00012|Name=ЕИРЦ «Городской расчётный центр»|PersonalAcc=40702810938000012345"
    "|BankName=ПАО СБЕРБАНК|BIC=044525225|CorrespAcc=30101810400000000225|PayeeINN=7701234567"
)
# A payee whose account and INN both pass their control keys (real values, see the docstring).
KEYED = (
    "ST00012|Name=ООО «Три кита»|PersonalAcc=40702810138250123017|BankName=ПАО СБЕРБАНК"
    "|BIC=044525225|CorrespAcc=30101810400000000225|PayeeINN=7707089101|Purpose=Оплата"
    "|Sum=100000"
)
STANDARD_PAYER = "8215604937"  # demo-standard's ЕПД payer code (B-2001: 6 237,90 ₽, unpaid)
FULL_PAYER = "4703159826"  # demo-full's: another flat


def _check(payload: str | bytes):
    return validate(parse_payment_qr(payload))


# ================================================================ DEFECTS


# Found: an ЕПД receipt with the resident's payer code but no Sum and no PaymPeriod is matched to
# the resident's bill by amount only when the code printed one; the amount the resident types on
# «Сколько заплатить?» is kept in dialog_data while _receipt_bill passes start_data's amount (None)
# to match_receipt. So 6 237,90 ₽ typed — exactly the unpaid ЕПД — is paid by requisites and the
# bill stays unpaid in «Мои счета»: the flat pays the same month twice.
# Was (review 36d): ЕПД receipt without Sum and period: typed amount paid by requisites, bill left
# unpaid
async def test_an_epd_receipt_without_sum_and_period_paid_at_a_typed_amount_pays_the_bill(
    harness: Harness,
) -> None:
    chat = await linked(harness, "demo-standard")
    receipt = f"{EIRC}|Purpose=Оплата ЖКУ|PersAcc={STANDARD_PAYER}|TechCode=02"
    card = (await chat.send_photo(qr_png(receipt.encode()))).text
    assert "Сумма в QR-коде не указана" in card
    await chat.press("Оплатить")
    assert "Сколько заплатить" in chat.last_text
    await chat.send("6 237,90")
    await chat.press("Оплатить")
    # With Sum=623790 printed the same receipt is «К оплате 1 счёт» (review 30's guard test).
    assert "Оплата по реквизитам" not in chat.last_text
    assert "К оплате 1 счёт" in chat.last_text


async def test_the_same_receipt_with_its_sum_printed_pays_the_bill(harness: Harness) -> None:
    """Guard for the test above: the printed amount finds the bill."""
    chat = await linked(harness, "demo-standard")
    receipt = f"{EIRC}|Purpose=Оплата ЖКУ|PersAcc={STANDARD_PAYER}|Sum=623790|TechCode=02"
    await chat.send_photo(qr_png(receipt.encode()))
    await chat.press("Оплатить")
    assert "К оплате 1 счёт" in chat.last_text
    await chat.press(nb("Оплатить 6 237,90 ₽"))
    assert _bill(harness, "B-2001").status is BillStatus.PAID


# Found: PersAcc (the payer code: which flat the provider credits) printed twice with two values
# is not a conflict — _fold keeps the first, since pers_acc is not in _DECISIVE. The card shows
# the other flat's code and the payment by requisites carries it: the money is credited to the
# wrong flat. Accounts, BIC, INN, Sum, UIN and period printed twice are refused; PersAcc is not.
# Was (review 36d): PersAcc printed twice with two values: the first is shown and sent with the
# payment
async def test_a_payer_code_printed_twice_differently_is_neither_shown_nor_sent(
    harness: Harness,
) -> None:
    chat = await linked(harness, "demo-standard")
    receipt = f"{EIRC}|Purpose=Оплата ЖКУ|PersAcc={FULL_PAYER}|Sum=100000|persAcc={STANDARD_PAYER}"
    card = (await chat.send_photo(qr_png(receipt.encode()))).text
    assert f"Код плательщика: {FULL_PAYER}" not in card
    assert "код плательщика" in card, card  # named as what cannot be read
    if "Оплатить" in chat.buttons:  # requisites without the payer code are not offered
        await chat.press("Оплатить")
        if "Оплата по реквизитам" in chat.last_text:
            await chat.press(nb("Оплатить 1 000,00 ₽"))
    assert FULL_PAYER not in str(_sent_payer_codes(harness))
    assert STANDARD_PAYER not in str(_sent_payer_codes(harness))


# Was (review 36d): PersAcc printed twice with two values: validate keeps the first payer code
def test_a_payer_code_printed_twice_differently_is_not_believed() -> None:
    # Found: the same at the parser: _fold's first-wins for a field that decides the crediting.
    check = _check(f"{EIRC}|PersAcc={FULL_PAYER}|Sum=100000|PersAcc={STANDARD_PAYER}")
    assert check.qr.pers_acc is None
    assert check.requisites is None or check.requisites.pers_acc is None


def test_a_payer_code_printed_twice_alike_is_read() -> None:
    check = _check(f"{EIRC}|PersAcc={STANDARD_PAYER}|Sum=100000|persacc=8215 604 937")
    assert check.qr.pers_acc == STANDARD_PAYER


def _sent_payer_codes(harness: Harness) -> list[str | None]:
    from sandbox.payments_api import PAYMENTS_KEY

    book = harness.sandbox.app[PAYMENTS_KEY]
    return [
        p.request.requisites.pers_acc
        for p in book.payments.values()
        if p.request.requisites is not None
    ]


# Not done (decided): the Bank of Russia's control key over the BIC and PersonalAcc. Its rule
# differs by the kind of account (credit institutions: the BIC's last three digits; settlement
# centres: «0» and the BIC's 5th-6th digits; treasury accounts «03…» of the UFK another), and
# the Moscow treasury's own 03100643000000017300 with BIC 004525988 fails both simple rules: a
# check short of the whole rule would refuse real receipts for fines and duties. The bank
# checks the key when the payment is made.


def test_an_account_that_passes_its_control_key_is_used() -> None:
    check = _check(KEYED)
    assert check.problems == () and check.requisites is not None
    assert check.requisites.personal_acc == "40702810138250123017"


# Not done (decided): the INN's control digits. A QR code is printed by the payee's software,
# not typed, so a wrong digit is rare, and the bank refuses a payment whose INN does not match
# the account; the sandbox's own demo payees would need new INNs first.


def test_a_payee_inn_with_its_control_digit_is_used() -> None:
    check = _check(KEYED)
    assert check.requisites is not None and check.requisites.payee_inn == "7707089101"


# Found: an all-capitals receipt (payees and purposes are often printed so) in KOI8-R bytes under
# the UTF-8 header ST00012: UTF-8 fails, windows-1251 and KOI8-R both read as letters, and
# _KOI8_HANDICAP (1.5 bits a letter) makes the windows-1251 reading win — «звх цймйэойл …» is
# shown as the payee and sent to the city as payee_name. The same bytes under ST00013 read right,
# and mixed-case text under ST00012 reads right (test_koi8r_bytes_under_another_header).
# Was (review 36d): KOI8-R all-capitals receipt under ST00012 shows and sends a garbled payee name
def test_an_all_capitals_koi8r_receipt_under_the_utf8_header_reads_right() -> None:
    body = (
        "|Name=ГБУ ЖИЛИЩНИК РАЙОНА ТВЕРСКОЙ|PersonalAcc=40702810938000012345|BIC=044525225"
        "|PayeeINN=7707089101|Purpose=ОПЛАТА ЖКУ ЗА МАРТ|Sum=50000"
    )
    qr = parse_payment_qr(f"ST00012{body}".encode("koi8_r"))
    assert (qr.name, qr.purpose) == ("ГБУ ЖИЛИЩНИК РАЙОНА ТВЕРСКОЙ", "ОПЛАТА ЖКУ ЗА МАРТ")


def test_the_same_koi8r_bytes_under_their_own_header_read_right() -> None:
    body = "|Name=ГБУ ЖИЛИЩНИК РАЙОНА ТВЕРСКОЙ|PersonalAcc=40702810938000012345|BIC=044525225"
    assert parse_payment_qr(f"ST00013{body}".encode("koi8_r")).name == (
        "ГБУ ЖИЛИЩНИК РАЙОНА ТВЕРСКОЙ"
    )


# Found: domain.uin.normalize drops spaces and the ASCII hyphen only. A UIN copied from a PDF or
# a word processor (non-breaking hyphen U+2011) or typed on a phone that turns «-» into a dash
# (U+2013) is refused with «УИН состоит из цифр 0–9 … вроде «²»» — the resident sees nothing wrong.
# Was (review 36d): a UIN grouped with a non-breaking hyphen or an en dash is refused as bad
# characters
@pytest.mark.parametrize("dash", ["\u2011", "\u2013", "\u2010"])
async def test_a_uin_grouped_with_typographic_dashes_is_found(
    harness: Harness,
    lookups: list[str],  # noqa: F811 - the fixture imported above
    dash: str,
) -> None:
    chat = await linked(harness, "demo-standard")
    await chat.press("Добавить счёт по УИН")
    reply = await chat.send(dash.join(["1881", "0136", "1611", "0800", "8161"]))
    assert "Нашли начисление" in reply.text or "не найдено" in reply.text
    assert lookups == ["18810136161108008161"]


# Found: Pillow here cannot open HEIC (no pillow-heif), and an iPhone photo sent as a file is
# HEIC (mime image/heic): the answer «Это не похоже на картинку» is false — it is a picture,
# in a format the bot does not read; the resident is not told to send it as a photo instead.
# Was (review 36d): an iPhone HEIC sent as a file is told it does not look like a picture
async def test_a_heic_file_is_not_called_not_a_picture(harness: Harness) -> None:
    chat = await linked(harness)
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 200
    reply = await chat.send_document(heic, "IMG_0412.HEIC", "image/heic")
    no_crash(reply)
    assert "не похоже на картинку" not in reply.text
    assert "фото" in reply.text


# ================================================================ HELD


@pytest.mark.parametrize(
    ("tail", "kopecks"),
    [
        ("|Sum=1 234,56", 123456),
        ("|Sum=123456.00", 12345600),  # rubles with a point
        ("|SUM=100000", 100000),
        ("|sum=100000", 100000),
        ("| Sum = 100000 |", 100000),
        ("|Sum=100000|sum=100 000", 100000),  # twice, the same
        ("|Sum=|Sum=5000", 5000),  # an empty one is not printed
        ("|Sum=null|Sum=5000", 5000),
        ("|Sum=000100000", 100000),
        ("|Sum=100000|", 100000),
    ],
)
def test_sum_forms_read_as_the_receipts_own_amount(tail: str, kopecks: int) -> None:
    check = _check(f"{EIRC}{tail}")
    assert check.amount == kopecks and ReceiptProblem.SUM not in check.problems


@pytest.mark.parametrize(
    "tail",
    [
        "|Sum=0|Sum=5000",  # two different: neither believed
        "|Sum=100000|SUM=200000",
        "|Sum=1000|Sum=1000,00",  # 10 ₽ and 1 000 ₽
        "|Sum=-100",
        "|Sum=+100",
        "|Sum=1e5",
        "|Sum=1'000'00",
        "|Sum=١٠٠",
        "|Sum=１００",
        "|Sum=1500 руб",
        "|Sum=1,234.56",
    ],
)
def test_sums_that_cannot_be_read_are_asked_not_guessed(tail: str) -> None:
    check = _check(f"{EIRC}{tail}")
    assert check.amount is None and ReceiptProblem.SUM in check.problems


@pytest.mark.parametrize(
    ("tail", "problem"),
    [
        ("|PersonalAcc=40702810938000099999", ReceiptProblem.PERSONAL_ACC),
        ("|personalacc=40702810938000099999", ReceiptProblem.PERSONAL_ACC),
        ("|bic=044525226", ReceiptProblem.BIC),
        ("|PAYEEINN=7707089101", ReceiptProblem.PAYEE_INN),
    ],
)
def test_a_second_payee_in_one_code_is_refused(tail: str, problem: ReceiptProblem) -> None:
    check = _check(f"{EIRC}{tail}|Sum=100000")
    assert problem in check.problems and check.requisites is None and not check.can_pay


@pytest.mark.parametrize(
    ("payload", "purpose", "uin"),
    [
        (f"\ufeff{EIRC}|Purpose=Оплата по договору №12=3|Sum=1", "Оплата по договору №12=3", None),
        (f"{EIRC}|Purpose=|Sum=1", "ЕИРЦ «Городской расчётный центр»", None),
        (f"{EIRC}|UIN=0|Sum=1", "ЕИРЦ «Городской расчётный центр»", None),
        (f"{EIRC}|uin=00000000000000000000|Sum=1", "ЕИРЦ «Городской расчётный центр»", None),
        (f"{EIRC}|DocIdx=18810136161108008161|Sum=1", None, "18810136161108008161"),
        (f"{EIRC}|Uin=0355 4310 1011 7031 6000 1127 5|Sum=1", None, "0355431010117031600011275"),
    ],
)
def test_purposes_and_uins_as_printed(payload: str, purpose: str | None, uin: str | None) -> None:
    check = _check(payload)
    assert check.uin == uin
    if purpose is not None:
        assert check.qr.purpose == purpose


@pytest.mark.parametrize(
    "uin", ["18810177200718000123", "18810177220123456789", "00000000000000000000"]
)
def test_an_invalid_uin_in_the_code_is_never_passed_on(uin: str) -> None:
    check = _check(f"{EIRC}|UIN={uin}|Sum=100000")
    assert check.uin is None
    assert check.requisites is None or check.requisites.uin is None


async def test_a_sum_over_the_ceiling_is_refused_before_any_charge(harness: Harness) -> None:
    chat = await linked(harness)
    card = (await chat.send_photo(qr_png(f"{EIRC}|Purpose=Оплата|Sum=60000000".encode()))).text
    assert nb("Сумма: 600 000,00 ₽") in card
    reply = await chat.press("Оплатить")
    assert nb("не более 500 000,00 ₽") in reply.text
    assert await ledger(harness) == [] and _paid_requisites(harness) == []


async def test_an_animated_gif_sent_as_a_file_is_read(harness: Harness) -> None:
    chat = await linked(harness)
    code = Image.open(io.BytesIO(qr_png(f"{EIRC}|Purpose=Оплата|Sum=100000".encode())))
    blank = Image.new("L", code.size, 255)
    gif = io.BytesIO()
    code.convert("L").save(gif, format="GIF", save_all=True, append_images=[blank], duration=100)
    reply = await chat.send_document(gif.getvalue(), "receipt.gif", "image/gif")
    assert nb("Сумма: 1 000,00 ₽") in reply.text


async def test_a_sticker_on_the_card_keeps_the_receipt(harness: Harness) -> None:
    chat = await linked(harness)
    await chat.send_photo(qr_png(f"{EIRC}|Purpose=Оплата|Sum=100000".encode()))
    sticker = harness.telegram.register_file(
        qr_png(b"ST00012|Name=X"), kind="sticker", file_name="s.webp", mime_type="image/webp"
    )
    content = {
        "sticker": {
            "file_id": sticker.file_id,
            "file_unique_id": sticker.file_unique_id,
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "type": "regular",
        }
    }
    reply = await chat.feed({"message": chat._incoming(content)})
    no_crash(reply)
    assert "кнопкой" in reply.text and "Оплатить" in chat.buttons
    assert nb("Сумма: 1 000,00 ₽") in chat.last_text


async def test_a_tiny_picture_and_a_fake_jpeg_get_clear_answers(harness: Harness) -> None:
    chat = await linked(harness)
    pixel = io.BytesIO()
    Image.new("RGB", (1, 1)).save(pixel, format="PNG")
    reply = await chat.send_photo(pixel.getvalue(), width=1, height=1)
    assert "Не нашёл QR-код" in reply.text and "Ввести УИН" in chat.buttons
    reply = await chat.send_document(b"\x00" * 100, "receipt.jpg", "image/jpeg")
    assert "не похоже на картинку" in reply.text


@pytest.mark.markup_in_values
@pytest.mark.parametrize(
    ("typed", "answer"),
    [
        ("1e5", "3 знака"),
        ("<b>18810136161108008161</b> & co", "цифр 0–9"),
        ("١٨٨١٠١٣٦١٦١١٠٨٠٠٨١٦١", "цифр 0–9"),
        ("1" * 5000, "знак"),
        ("УИН: 0", "1 знак"),
    ],
)
async def test_a_typed_uin_that_is_none_gets_a_clear_answer_and_the_step_waits(
    harness: Harness,
    lookups: list[str],  # noqa: F811 - the fixture imported above
    typed: str,
    answer: str,
) -> None:
    chat = await linked(harness, "demo-standard")
    await chat.press("Добавить счёт по УИН")
    reply = await chat.send(typed)
    no_crash(reply)
    assert answer in reply.text and lookups == []
    again = await chat.send("УИН: 1881-0136-1611-0800-8161")
    assert "Нашли начисление" in again.text or "не найдено" in again.text


@pytest.mark.parametrize(
    "pasted",
    [
        "УИН: 18810136161108008161",
        "УИН № 1881 0136 1611 0800 8161",
        "uin:18810136161108008161.",
        "\u200b18810136161108008161\u200b",
        "1881\u00a00136\u00a01611\u00a00800\u00a08161",
    ],
)
def test_a_pasted_uin_is_read_without_its_label_and_spacing(pasted: str) -> None:
    assert check_uin(pasted).uin == "18810136161108008161" and check_uin(pasted).ok
