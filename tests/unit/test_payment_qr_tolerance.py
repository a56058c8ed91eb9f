"""Receipts as they are printed: a header that names the wrong encoding, stray bytes, the
separator inside a value, a Sum in rubles, keys in any case and with spaces around «=»."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.payment_qr import (
    NotAPaymentQr,
    QrProblem,
    ReceiptProblem,
    parse_payment_qr,
    sum_to_kopecks,
    validate,
)

PAYEE = "PersonalAcc=40702810138000000001|BIC=044525225"
BODY = (
    "|Name=ООО «Ромашка»|PersonalAcc=40702810138000000001|BankName=ПАО СБЕРБАНК"
    "|BIC=044525225|CorrespAcc=30101810400000000225|PayeeINN=7701234567"
    "|Purpose=Оплата за квартиру, Ёлкина ул., кв. 15|Sum=150050"
)
NAME = "ООО «Ромашка»"
PURPOSE = "Оплата за квартиру, Ёлкина ул., кв. 15"


# --- the header names another encoding than the bytes are in -------------------------------


@pytest.mark.parametrize("declared", ["1", "2", "3"])
@pytest.mark.parametrize("codec", ["cp1251", "utf-8"])
def test_declared_encoding_disagrees_with_the_bytes(declared: str, codec: str) -> None:
    """ST00011 over UTF-8 is the common case (generators hard-code the header); ST00012 over
    windows-1251 the next one."""
    qr = parse_payment_qr(f"ST0001{declared}{BODY}".encode(codec))
    assert (qr.name, qr.purpose, qr.amount) == (NAME, PURPOSE, 150050)


@pytest.mark.parametrize("declared", ["2", "3"])
def test_koi8r_bytes_under_another_header(declared: str) -> None:
    body = BODY.replace("«Ромашка»", '"Ромашка"')
    qr = parse_payment_qr(f"ST0001{declared}{body}".encode("koi8_r"))
    assert (qr.name, qr.purpose) == ('ООО "Ромашка"', PURPOSE)


def test_utf8_under_st00011_with_signs_windows_1251_has_not() -> None:
    qr = parse_payment_qr(f"ST00011{BODY}|Category=Холодная вода, 12 м³ × 45 ₽".encode())
    assert (qr.name, qr.category) == (NAME, "Холодная вода, 12 м³ × 45 ₽")


def test_utf8_under_st00011_read_as_latin1_by_the_reader() -> None:
    mojibake = f"ST00011{BODY}".encode().decode("latin-1")
    assert parse_payment_qr(mojibake).name == NAME


def test_utf8_under_st00011_read_right_by_the_reader_is_left_alone() -> None:
    assert parse_payment_qr(f"ST00011{BODY}").name == NAME


def test_a_header_is_believed_when_its_reading_is_russian_letters_too() -> None:
    """The documented limit: KOI8-R bytes without «» or № under ST00011 read as letters in
    windows-1251 as well, so the header wins (KOI8-R is all but unused on receipts)."""
    body = "|Name=ООО Ромашка|" + PAYEE
    qr = parse_payment_qr(f"ST00011{body}".encode("koi8_r"))
    assert qr.name != "ООО Ромашка" and qr.personal_acc == "40702810138000000001"


# --- stray bytes ---------------------------------------------------------------------------


@pytest.mark.parametrize("stray", [b"\x00", b"\r", b"\n", b"\r\n", b"\x1a", b"\x00\x00\x00"])
def test_a_stray_control_byte_after_the_payload(stray: bytes) -> None:
    qr = parse_payment_qr(f"ST00012{BODY}".encode() + stray)
    assert qr.sum == "150050" and qr.amount == 150050


@pytest.mark.parametrize("stray", ["\x00", "\r", "\n", "\x1a", "\t", "\ufeff"])
def test_a_stray_control_character_after_a_value(stray: str) -> None:
    payload = f"ST00012|Name=ООО Ромашка{stray}|PayeeINN=7701234567{stray}|{PAYEE}{stray}|Sum=1"
    for data in (payload, payload.encode()):
        qr = parse_payment_qr(data)
        assert (qr.name, qr.payee_inn, qr.bic, qr.amount) == (
            "ООО Ромашка",
            "7701234567",
            "044525225",
            1,
        )


@pytest.mark.parametrize(
    ("codec", "stray"),
    [
        ("utf-8", b"\xff"),  # never valid in UTF-8
        ("utf-8", b"\xd0"),  # a character cut in half
        ("utf-8", b"\xe2\x84"[:1]),
        ("cp1251", b"\x98"),  # the one byte windows-1251 leaves undefined
    ],
)
def test_one_undecodable_byte_at_the_end_of_a_value_or_of_the_payload(
    codec: str, stray: bytes
) -> None:
    digit = "2" if codec == "utf-8" else "1"
    name = "Name=ООО Ромашка".encode(codec)
    purpose = "Purpose=Оплата по счёту".encode(codec)
    data = f"ST0001{digit}|".encode() + name + stray + b"|" + PAYEE.encode() + b"|" + purpose
    for payload in (data + stray, data + stray + b"\r\n", data):
        qr = parse_payment_qr(payload)
        assert (qr.name, qr.purpose) == ("ООО Ромашка", "Оплата по счёту")


def test_a_reader_lost_byte_at_the_end_of_a_value() -> None:
    qr = parse_payment_qr(f"ST00012|Name=ООО Ромашка\ufffd|{PAYEE}\ufffd")
    assert (qr.name, qr.bic) == ("ООО Ромашка", "044525225")


def test_controls_inside_a_value_go_and_line_breaks_become_spaces() -> None:
    qr = parse_payment_qr(f"ST00012|{PAYEE}|Purpose=Оплата\r\nза\x00 март\x7f")
    assert qr.purpose == "Оплата за март"


# --- the separator inside a value ----------------------------------------------------------


def test_separator_inside_purpose_is_kept_whole() -> None:
    qr = parse_payment_qr(f"ST00012|{PAYEE}|Purpose=Взнос | кв. 12 | март|Sum=100")
    assert qr.purpose == "Взнос | кв. 12 | март"
    assert qr.amount == 100 and qr.extra == {}


def test_separator_inside_name_with_another_separator() -> None:
    qr = parse_payment_qr(
        "ST00012#Name=ТСЖ #1 «Дом на набережной»#PersonalAcc=40703810138000000007"
        "#BIC=044525225#Purpose=Взнос # март"
    )
    assert qr.name == "ТСЖ #1 «Дом на набережной»"
    assert qr.purpose == "Взнос # март"


def test_a_part_with_an_unknown_key_belongs_to_the_value_before_it() -> None:
    qr = parse_payment_qr(
        f"ST00012|{PAYEE}|Purpose=Счёт 17|итого=1500 руб.|Note=срочно|PayeeINN=7701234567"
    )
    assert qr.purpose == "Счёт 17|итого=1500 руб.|Note=срочно"
    assert qr.payee_inn == "7701234567" and qr.extra == {}


def test_an_unknown_field_after_a_code_is_a_field_of_its_own() -> None:
    """Gluing a provider's own ``Key=value`` onto an account or an amount would only spoil it."""
    qr = parse_payment_qr(f"ST00012|{PAYEE}|Sum=100|ExtId=A-17|Purpose=Взнос")
    assert (qr.bic, qr.amount, qr.purpose) == ("044525225", 100, "Взнос")
    assert qr.extra == {"ExtId": "A-17"}


def test_a_fragment_without_a_key_after_a_code_spoils_the_code_and_is_reported() -> None:
    """``Sum=1500|50``: neither 1500 nor 150050 kopecks is certain, so no amount."""
    qr = parse_payment_qr(f"ST00012|{PAYEE}|Sum=1500|50")
    assert qr.amount is None and qr.sum == "1500|50"
    assert ReceiptProblem.SUM in validate(qr).problems


def test_gost_keys_of_any_case_always_start_a_field() -> None:
    qr = parse_payment_qr(f"ST00012|{PAYEE}|Purpose=Взнос | CONTRACT=17 | persacc=42")
    assert qr.purpose == "Взнос"
    assert qr.pers_acc == "42" and qr.extra == {"CONTRACT": "17"}


def test_fragments_before_any_key_are_dropped() -> None:
    qr = parse_payment_qr(f"ST00012|мусор|{PAYEE}")
    assert qr.personal_acc == "40702810138000000001" and qr.extra == {}


# --- Sum -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("printed", "kopecks"),
    [
        ("150050", 150050),  # the standard: kopecks
        ("1500.50", 150050),  # rubles with a point
        ("1500,50", 150050),  # rubles with a comma
        ("1500.5", 150050),
        ("1 500,50", 150050),
        ("1500.00", 150000),
        ("0.01", 1),
        ("0", 0),
        ("0,00", 0),
        ("9" * 18, 10**18 - 1),
        ("9" * 16 + ".99", 10**18 - 1),
    ],
)
def test_sum_to_kopecks(printed: str, kopecks: int) -> None:
    assert sum_to_kopecks(printed) == kopecks


@pytest.mark.parametrize(
    "printed",
    ["1.500,50", "1500.505", "1500.", ".50", "-100", "+100", "1e5", "9" * 19, "9" * 17 + ".00",
     "١٢٣", "１２３", "1²", "сто", "100 руб."],
)  # fmt: skip
def test_sum_that_cannot_be_read(printed: str) -> None:
    with pytest.raises(ValueError):
        sum_to_kopecks(printed)
    qr = parse_payment_qr(f"ST00012|{PAYEE}|Sum={printed}".encode())
    assert qr.amount is None
    assert validate(qr).problems == (
        ReceiptProblem.NAME,
        ReceiptProblem.PAYEE_INN,
        ReceiptProblem.SUM,
    )


@pytest.mark.parametrize("printed", ["1500.50", "1500,50"])
def test_sum_in_rubles_in_a_payload(printed: str) -> None:
    qr = parse_payment_qr(f"ST00012|{PAYEE}|Sum={printed}")
    assert qr.amount == 150050
    assert validate(qr).qr.sum == "150050"  # normalised to the standard's kopecks


# --- keys ----------------------------------------------------------------------------------


def test_keys_with_spaces_around_the_equals_sign() -> None:
    qr = parse_payment_qr(
        "ST00012| Name = ООО Ромашка | PersonalAcc =40702810138000000001|BIC= 044525225"
        "|PayeeINN = 7701234567|Sum = 100 |PaymPeriod = 03.2026"
    )
    assert (qr.name, qr.personal_acc, qr.bic, qr.payee_inn) == (
        "ООО Ромашка",
        "40702810138000000001",
        "044525225",
        "7701234567",
    )
    assert (qr.amount, qr.period) == (100, "03.2026")


def test_mixed_case_keys() -> None:
    qr = parse_payment_qr(
        "ST00012|NAME=ООО Ромашка|personalACC=40702810138000000001|Bic=044525225"
        "|payeeinn=7701234567|PAYMPERIOD=032026|Uin=18810177200104519116"
    )
    check = validate(qr)
    assert check.requisites_usable and check.uin == "18810177200104519116"
    assert check.qr.period == "03.2026"


def test_still_not_a_payment() -> None:
    with pytest.raises(NotAPaymentQr) as caught:
        parse_payment_qr("ST00012|Name=ООО Ромашка|Purpose=Взнос")
    assert caught.value.reason is QrProblem.MISSING_FIELDS


# --- property: the common mismatches always come back ---------------------------------------

RECEIPT_WORDS = (
    "Оплата за квартиру ЕПД ГБУ ЕИРЦ города Москвы взнос на капремонт кв. штраф по постановлению "
    "Школа питание Департамент финансов электроэнергии Иванов Пётр «Ромашка» № ул. Тверская д. "
    "ТСЖ Солнечный Родительская плата присмотр и уход услуг коммунальных Благотворительный фонд "
    "Добрые руки Детям Интернет Ёлкина ООО АО ПАО СБЕРБАНК УФК МВД России л/с март 2026 год "
    "Холодная вода горячее водоснабжение отопление пени 15"
).split()
# A real name or purpose has a word of four letters or more; a text of nothing but «№»
# or «и» reads as typical in both encodings (the limit _best_reading's docstring names).
phrases = (
    st.lists(st.sampled_from(RECEIPT_WORDS), min_size=2, max_size=8)
    .filter(lambda words: any(len(word) >= 4 and word.isalpha() for word in words))
    .map(" ".join)
)


@given(phrases, phrases, st.sampled_from([("1", "utf-8"), ("2", "cp1251")]))
def test_a_receipt_in_another_encoding_than_its_header_says(
    name: str, purpose: str, header_and_codec: tuple[str, str]
) -> None:
    """ST00011 over UTF-8 and ST00012 over windows-1251, with any mix of receipt words (KOI8-R
    under ST00012 is read right when it looks clearly Russian: see the examples above)."""
    digit, codec = header_and_codec
    text = f"ST0001{digit}|Name={name}|{PAYEE}|Purpose={purpose}"
    qr = parse_payment_qr(text.encode(codec))
    assert f"Name={qr.name}|{PAYEE}|Purpose={qr.purpose}" in text
