"""Review 18: how a receipt's payment QR code (GOST R 56042-2014) and a UIN are read.

Adversarial cases built from what real receipts contain: the three header encodings and what a
reader hands over for each, padding, key case, separators, duplicated and missing fields, odd
sums, requisites of the wrong shape, UINs in and out of their field, codes that are not
payment codes at all. The tests marked «Was (review)» were defects, fixed since.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from domain.payment_qr import (
    NotAPaymentQr,
    QrProblem,
    ReceiptProblem,
    parse_payment_qr,
    validate,
)
from domain.uin import UinProblem, check_uin
from handlers.receipts import _payment_qr

PAYEE = (
    'Name=ООО «Ёлка» "Берёзка"|PersonalAcc=40702810938000000001|BankName=ПАО СБЕРБАНК'
    "|BIC=044525225|CorrespAcc=30101810400000000225|PayeeINN=7707083893|KPP=770701001"
)
PAYEE_KOI8 = PAYEE.replace("«", '"').replace("»", '"')  # KOI8-R has no guillemets
NAME = 'ООО «Ёлка» "Берёзка"'
ACC = "40702810938000000001"


def check(data: bytes | str):
    return validate(parse_payment_qr(data))


# ---------------------------------------------------------------- encodings and readers


@pytest.mark.parametrize(
    ("header", "codec", "payee", "name", "purpose"),
    [
        ("ST00011", "cp1251", PAYEE, NAME, "Оплата за ёЁ «кв. 5» №3"),
        ("ST00012", "utf-8", PAYEE, NAME, "Оплата за ёЁ «кв. 5» №3 ₽"),
        ("ST00013", "koi8_r", PAYEE_KOI8, NAME.replace("«", '"').replace("»", '"'), "За ёЁ 5"),
    ],
)
def test_each_header_encoding_as_raw_bytes_and_as_a_latin1_reading(
    header: str, codec: str, payee: str, name: str, purpose: str
) -> None:
    text = f"{header}|{payee}|Sum=150050|Purpose={purpose}"
    raw = text.encode(codec)
    for data in (raw, raw.decode("latin-1"), text):
        result = check(data)
        assert result.qr.name == name
        assert result.qr.purpose == purpose
        assert result.amount == 150050
        assert result.qr.personal_acc == ACC
        assert result.problems == ()


def test_real_fns_receipt_header_1_over_utf8_read_as_latin1() -> None:
    # A real tax receipt (public scanner-analysis code): ST00011 over UTF-8 bytes, handed over
    # by the reader as Latin-1 text.
    original = (
        "ST00011|Name=Управление Федерального Казначейства|PersonalAcc=03100643000000011600"
        "|BIC=019805001|CorrespAcc=40102810345370000085|docIdx=18209965213722486565"
        "|DrawerStatus=09|PayerINN=140210045398|Sum=210650|PayeeINN=1402003388|KPP=140201001"
        "|CBC=18210202103081013160|OKTMO=98603105|PaytReason=ТП"
    )
    for data in (original.encode(), original.encode().decode("latin-1")):
        result = check(data)
        assert result.qr.name == "Управление Федерального Казначейства"
        assert result.amount == 210650
        assert result.qr.personal_acc == "03100643000000011600"
        assert result.requisites_usable


# Was (review): DocIdx (the tax document index = its UIN) is dropped: a tax payment goes without
# UIN
def test_fns_uin_printed_as_docidx_is_passed_on() -> None:
    # ФНС notices print the UIN as «Индекс документа» (DocIdx); there is no UIN field. The
    # value is a valid UIN; paying by requisites without it leaves the tax uncredited.
    assert check_uin("18209965213722486565").ok
    result = check(
        "ST00012|Name=УФК по г. Москве (ИФНС № 1)|PersonalAcc=03100643000000017300"
        "|BankName=ГУ Банка России по ЦФО|BIC=004525988|CorrespAcc=40102810545370000003"
        "|PayeeINN=7701107259|KPP=770101001|CBC=18210601020041000110|OKTMO=45375000"
        "|DocIdx=18209965213722486565|Sum=210650|Purpose=Налог на имущество"
    )
    assert result.uin == "18209965213722486565"


# Was (review): UTF-8 payload a reader decoded as windows-1251 (РћРћРћ) is not repaired: the
# payee name is shown and sent as mojibake
def test_utf8_payload_read_as_windows1251_text_is_repaired() -> None:
    mojibake = f"ST00012|{PAYEE}|Sum=100".encode().decode("cp1251")
    assert "Рћ" in mojibake  # what such a reader hands over
    assert check(mojibake).qr.name == NAME


# Was (review): a name with U+FFFD inside (bytes a reader lost) is kept and sent on as the payee
def test_windows1251_read_as_utf8_with_replacement_never_pays_a_garbled_name() -> None:
    lossy = f"ST00011|{PAYEE}|Sum=100".encode("cp1251").decode("utf-8", errors="replace")
    result = check(lossy)
    assert result.qr.name is None or "\ufffd" not in result.qr.name
    assert result.requisites is None or "\ufffd" not in result.requisites.payee_name


@pytest.mark.parametrize(
    "wrap",
    [
        lambda b: b"\xef\xbb\xbf" + b,
        lambda b: b + b"\r\n",
        lambda b: b + b"\n\n",
        lambda b: b + b"   ",
        lambda b: b + b"\x00",
        lambda b: b"\r\n" + b + b"|",
    ],
)
def test_bom_crlf_trailing_padding(wrap) -> None:
    raw = wrap(f"ST00012|{PAYEE}|Sum=150050".encode())
    for data in (raw, raw.decode("utf-8")):
        result = check(data)
        assert result.amount == 150050 and result.qr.name == NAME and result.problems == ()


def test_crlf_between_fields_does_not_glue_values() -> None:
    result = check(f"ST00012|{PAYEE}|Sum=150050\r\n|Purpose=Взнос\r\n|PersAcc=12 34\r\n")
    assert result.amount == 150050
    assert result.qr.purpose == "Взнос"
    assert result.qr.pers_acc == "1234"


# ---------------------------------------------------------------- structure


def test_keys_in_any_case() -> None:
    result = check(
        "ST00012|name=ООО Ромашка|PERSONALACC=40702810938000000001|bankname=Банк"
        "|bic=044525225|CorrespAcc=0|payeeinn=7707083893|sum=150050|persAcc=4703159826"
        "|PaymPeriod=03.2026|uin=0"
    )
    assert result.qr.name == "ООО Ромашка"
    assert result.amount == 150050
    assert result.qr.pers_acc == "4703159826"
    assert result.uin is None and result.requisites_usable


def test_key_with_spaces_around_equals() -> None:
    # A public generator writes «|Sum =» (space before the equals sign).
    result = check(f"ST00012|{PAYEE}|Sum =150050")
    assert result.amount == 150050


def test_value_with_equals_signs_and_empty_fields() -> None:
    result = check(f"ST00012|{PAYEE}||Purpose=Итого=1500 руб.=ок||Sum=150050||")
    assert result.qr.purpose == "Итого=1500 руб.=ок"
    assert result.amount == 150050


@pytest.mark.parametrize("sep", ["#", ";", "^", "~", "\n"])
def test_separator_from_the_header(sep: str) -> None:
    text = f"ST00012{sep}" + PAYEE.replace("|", sep) + f"{sep}Sum=150050{sep}Purpose=a|b"
    result = check(text)
    assert result.amount == 150050
    assert result.qr.personal_acc == ACC
    assert result.qr.purpose == "a|b"


def test_fields_in_any_order_and_unknown_fields() -> None:
    parts = [*PAYEE.split("|"), "Sum=150050", "Foo=bar", "ABC123=1", "PaymPeriod=032026"]
    result = check("ST00012|" + "|".join(reversed(parts)))
    assert result.amount == 150050
    assert result.qr.personal_acc == ACC
    assert result.qr.period == "03.2026"
    assert result.requisites_usable


def test_very_long_payload_is_read() -> None:
    purpose = "Оплата ёЁ " * 400
    result = check(f"ST00012|{PAYEE}|Purpose={purpose}|Sum=100")
    assert result.amount == 100
    assert result.qr.purpose == purpose.strip()


# Was (review): conflicting duplicated Sum: the first is silently proposed (should be asked)
def test_conflicting_duplicated_sum_is_asked_not_guessed() -> None:
    result = check(f"ST00012|{PAYEE}|Sum=100|Sum=500000")
    assert result.amount is None
    assert ReceiptProblem.SUM in result.problems


# Was (review): conflicting duplicated PersonalAcc: the first account is silently used as payee
def test_conflicting_duplicated_account_is_not_paid() -> None:
    result = check(f"ST00012|{PAYEE}|PersonalAcc=40702810900000000777|Sum=100")
    assert not result.requisites_usable


def test_identical_duplicates_are_harmless() -> None:
    result = check(f"ST00012|{PAYEE}|Sum=100|SUM=100|PersonalAcc={ACC}")
    assert result.amount == 100 and result.requisites_usable and result.problems == ()


# ---------------------------------------------------------------- amounts


@pytest.mark.parametrize(
    ("printed", "kopecks"),
    [
        ("000150050", 150050),
        ("150050", 150050),
        ("1500.50", 150050),
        ("1500,50", 150050),
        ("1500.5", 150050),
        ("1 500,50", 150050),
        ("1\u00a0500,50", 150050),
        ("999999999999999999", 999999999999999999),
    ],
)
def test_sum_forms(printed: str, kopecks: int) -> None:
    result = check(f"ST00012|{PAYEE}|Sum={printed}")
    assert result.amount == kopecks and ReceiptProblem.SUM not in result.problems


@pytest.mark.parametrize("printed", [None, "", "0", "000", "0.00"])
def test_no_amount_is_asked_never_zero(printed: str | None) -> None:
    text = f"ST00012|{PAYEE}" + ("" if printed is None else f"|Sum={printed}")
    result = check(text)
    assert result.amount is None
    summary_amount = result.qr.amount
    assert not summary_amount  # the handler asks «Сколько заплатить»


@pytest.mark.parametrize(
    "printed",
    [
        "-100",
        "+100",
        "1.500,50",
        "1500.505",
        "1500 руб",
        "9999999999999999999",
        "١٠٠",
        "10²",
        "１００",
        "1e5",
        "0x10",
    ],
)
def test_unreadable_sum_is_a_problem_and_asked(printed: str) -> None:
    result = check(f"ST00012|{PAYEE}|Sum={printed}")
    assert result.amount is None
    assert ReceiptProblem.SUM in result.problems
    assert result.requisites_usable  # the payee is fine; only the amount is asked


# ---------------------------------------------------------------- requisites


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("7707083893", "77070838X3", ReceiptProblem.PAYEE_INN),
        ("7707083893", "77070838931", ReceiptProblem.PAYEE_INN),
        ("7707083893", "770708389", ReceiptProblem.PAYEE_INN),
        ("7707083893", "７７０７０８３８９３", ReceiptProblem.PAYEE_INN),
        ("044525225", "04452522", ReceiptProblem.BIC),
        ("044525225", "04452522S", ReceiptProblem.BIC),
        (ACC, ACC[:-1], ReceiptProblem.PERSONAL_ACC),
        (ACC, ACC[:-1] + "O", ReceiptProblem.PERSONAL_ACC),
        (ACC, ACC + "0", ReceiptProblem.PERSONAL_ACC),
    ],
)
def test_malformed_requisites_are_never_paid(old: str, new: str, problem) -> None:
    result = check(f"ST00012|{PAYEE.replace(old, new)}|Sum=100")
    assert problem in result.problems
    assert not result.requisites_usable and result.requisites is None and not result.can_pay


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("770701001", "77070100", ReceiptProblem.KPP),
        ("30101810400000000225", "301018104", ReceiptProblem.CORRESP_ACC),
    ],
)
def test_tolerated_fields_are_left_out_not_fatal(old: str, new: str, problem) -> None:
    result = check(f"ST00012|{PAYEE.replace(old, new)}|Sum=100")
    assert problem in result.problems and result.requisites_usable


def test_grouped_account_and_inn_digits() -> None:
    text = f"ST00012|{PAYEE}|Sum=100".replace(ACC, "4070 2810 9380 0000 0001")
    assert check(text).qr.personal_acc == ACC


# ---------------------------------------------------------------- UIN


@pytest.mark.parametrize(
    "uin",
    [
        "18810136161108008161",
        "0349347501810000000132623",
        "0355431010117031600011275",
        "1881 0136 1611 0800 8161",
        "1881-0136-1611-0800-8161",
    ],
)
def test_valid_uin_is_passed_on(uin: str) -> None:
    result = check(f"ST00012|{PAYEE}|UIN={uin}|Sum=100")
    expected = uin.replace(" ", "").replace("-", "")
    assert result.uin == expected
    assert result.requisites is not None and result.requisites.uin == expected


@pytest.mark.parametrize(
    "uin",
    [
        "18810177200718000123",  # wrong control digit
        "18810177220123456789",
        "188101361611080081",  # 18 digits
        "188101361611080081611",  # 21 digits
        "１８８１0136161108008161",  # full-width digits
        "1881013616110800816²",
    ],
)
def test_invalid_uin_is_never_passed_on(uin: str) -> None:
    result = check(f"ST00012|{PAYEE}|UIN={uin}|Sum=100")
    assert result.uin is None
    assert ReceiptProblem.UIN in result.problems
    assert result.requisites is not None and result.requisites.uin is None


@pytest.mark.parametrize("uin", ["0", "00000000000000000000", "0000000000000000000000000"])
def test_zero_uin_means_none(uin: str) -> None:
    result = check(f"ST00012|{PAYEE}|UIN={uin}|Sum=100")
    assert result.uin is None and ReceiptProblem.UIN not in result.problems


def test_uin_equal_to_cbc_is_not_a_uin() -> None:
    uin = "18810136161108008161"
    result = check(f"ST00012|{PAYEE}|CBC={uin}|UIN={uin}|Sum=100")
    assert result.uin is None


def test_uin_only_code_can_pay_by_uin() -> None:
    result = check("ST00012|UIN=18810136161108008161|Sum=100")
    assert result.uin == "18810136161108008161" and result.can_pay
    assert result.requisites is None


def test_uin_zero_only_is_missing_fields() -> None:
    with pytest.raises(NotAPaymentQr) as error:
        parse_payment_qr("ST00012|UIN=0|Sum=100")
    assert error.value.reason is QrProblem.MISSING_FIELDS


def test_typed_uin_checks() -> None:
    assert check_uin(" 1881 0136-1611-0800-8161 ").ok
    assert check_uin("0").problem is UinProblem.LENGTH
    assert check_uin("00000000000000000000").problem is UinProblem.ZEROS
    assert check_uin("18810177200718000123").problem is UinProblem.CONTROL
    assert check_uin("").problem is UinProblem.EMPTY
    assert check_uin("１８８１0136161108008161").problem is UinProblem.CHARACTERS


# ---------------------------------------------------------------- not payment codes


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ("https://www.mos.ru/pay?a=b|c", QrProblem.NOT_PAYMENT),
        ("BEGIN:VCARD\nVERSION:3.0\nFN:Иван\nEND:VCARD", QrProblem.NOT_PAYMENT),
        ("WIFI:S:home;T:WPA;P:x;;", QrProblem.NOT_PAYMENT),
        ("просто текст", QrProblem.NOT_PAYMENT),
        (b"\xff\xfe\x00\x01", QrProblem.NOT_PAYMENT),
        ("", QrProblem.EMPTY),
        (b"\r\n\x00", QrProblem.EMPTY),
        ("ST00014|Name=x", QrProblem.BAD_ENCODING),
        ("ST00012|Name=ООО|Sum=100", QrProblem.MISSING_FIELDS),
        ("ST00012", QrProblem.MISSING_FIELDS),
    ],
)
def test_not_payment_codes_are_refused_clearly(data: bytes | str, reason: QrProblem) -> None:
    with pytest.raises(NotAPaymentQr) as error:
        parse_payment_qr(data)
    assert error.value.reason is reason


@dataclass(frozen=True)
class Code:
    text: str
    raw: bytes


def test_handler_skips_a_url_code_and_reads_the_payment_code() -> None:
    payment = f"ST00012|{PAYEE}|Sum=100"
    url = Code("https://mos.ru", b"https://mos.ru")
    found = _payment_qr([url, Code(payment, payment.encode())])
    assert not isinstance(found, QrProblem) and found.personal_acc == ACC


def test_handler_prefers_missing_fields_over_not_payment() -> None:
    found = _payment_qr([Code("x", b"x"), Code("ST00012|Name=x", b"ST00012|Name=x")])
    assert found is QrProblem.MISSING_FIELDS
