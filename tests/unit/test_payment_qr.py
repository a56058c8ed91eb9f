"""GOST R 56042-2014 payment codes: reading them (see also test_payment_qr_tolerance.py for
receipts as they are printed, test_payment_qr_validate.py for the check before paying and
test_payment_qr_receipts.py for realistic receipts)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.payment_qr import (
    NotAPaymentQr,
    PaymentQr,
    QrProblem,
    ReceiptProblem,
    parse_payment_qr,
    repair_mojibake,
    validate,
)
from domain.uin import check_uin

EPD = (
    "ST00012|Name=ГБУ «ЕИРЦ города Москвы»|PersonalAcc=40603810938000000001"
    "|BankName=ПАО СБЕРБАНК|BIC=044525225|CorrespAcc=30101810400000000225"
    "|PayeeINN=7701234567|KPP=770101001|PersAcc=1234567890|PaymPeriod=032026|Sum=742350"
    "|Purpose=Оплата ЕПД за 03.2026|PayerAddress=г. Москва, ул. Тверская, д. 1, кв. 15"
    "|Flat=15|Category=ЖКУ|TechCode=02"
)
FINE = (
    "ST00012|Name=УФК по г. Москве (ГУ МВД России по г. Москве)"
    "|PersonalAcc=03100643000000017300|BankName=ГУ Банка России по ЦФО//УФК по г. Москве"
    "|BIC=004525988|CorrespAcc=40102810545370000003|PayeeINN=7707089101|KPP=770731005"
    "|CBC=18811601123010001140|OKTMO=45380000|UIN=18810177200104519116|TechCode=03"
    "|Sum=50000|Purpose=Штраф по постановлению 18810177200104519116|LastName=Иванов"
    "|FirstName=Иван|Phone=+79161234567"
)
CHARITY = (
    "ST00012|Name=Благотворительный фонд «Добрые руки»|PersonalAcc=40703810500000000042"
    "|BankName=АО «АЛЬФА-БАНК»|BIC=044525593|CorrespAcc=30101810200000000593"
    "|PayeeINN=7700000000|KPP=770001001|Purpose=Благотворительное пожертвование"
    "|ServiceName=Детям|TechCode=14"
)
PAYEE = "PersonalAcc=40702810138000000001|BIC=044525225"


def problem_of(data: bytes | str) -> QrProblem:
    with pytest.raises(NotAPaymentQr) as caught:
        parse_payment_qr(data)
    return caught.value.reason


# --- realistic receipts -------------------------------------------------------------------


def test_housing_bill_epd() -> None:
    qr = parse_payment_qr(EPD)
    assert qr == PaymentQr(
        name="ГБУ «ЕИРЦ города Москвы»",
        personal_acc="40603810938000000001",
        bank_name="ПАО СБЕРБАНК",
        bic="044525225",
        corresp_acc="30101810400000000225",
        sum="742350",
        amount=742350,
        purpose="Оплата ЕПД за 03.2026",
        payee_inn="7701234567",
        kpp="770101001",
        pers_acc="1234567890",
        period="03.2026",
        tech_code="02",
        category="ЖКУ",
        payer_address="г. Москва, ул. Тверская, д. 1, кв. 15",
        flat="15",
    )
    assert not qr.has_uin


def test_traffic_fine_with_uin() -> None:
    qr = parse_payment_qr(FINE)
    assert qr.has_uin
    assert qr.uin == "18810177200104519116"
    assert check_uin(qr.uin).ok  # the bot's next step works on what the parser returns
    assert (qr.tech_code, qr.amount, qr.cbc, qr.oktmo) == (
        "03",
        50000,
        "18811601123010001140",
        "45380000",
    )
    assert (qr.last_name, qr.first_name, qr.phone) == ("Иванов", "Иван", "+79161234567")
    assert qr.bank_name == "ГУ Банка России по ЦФО//УФК по г. Москве"
    assert qr.extra == {}


def test_charity_without_amount() -> None:
    qr = parse_payment_qr(CHARITY)
    assert qr.tech_code == "14"
    assert qr.amount is None
    assert qr.service_name == "Детям"
    assert qr.name == "Благотворительный фонд «Добрые руки»"


def test_uin_alone_is_a_usable_payee() -> None:
    qr = parse_payment_qr("ST00012|UIN=0355431010119102401042373|Sum=150000")
    assert qr.uin == "0355431010119102401042373"
    assert qr.personal_acc is None and qr.bic is None
    assert qr.amount == 150000


# --- tolerance -----------------------------------------------------------------------------


def test_lower_and_upper_case_keys() -> None:
    qr = parse_payment_qr(
        "st00012|name=ИП Петров|personalacc=40802810400000012345|bic=044525974"
        "|persAcc=77001234|uin=18810177181044064881|SUM=9900|paymperiod=12.2025|TECHCODE=02"
    )
    assert (qr.name, qr.personal_acc, qr.bic) == ("ИП Петров", "40802810400000012345", "044525974")
    assert (qr.pers_acc, qr.uin, qr.amount) == ("77001234", "18810177181044064881", 9900)
    assert (qr.period, qr.tech_code) == ("12.2025", "02")


def test_corresp_acc_zero_means_none() -> None:
    assert parse_payment_qr(f"ST00012|{PAYEE}|CorrespAcc=0").corresp_acc is None
    assert parse_payment_qr(f"ST00012|{PAYEE}|CorrespAcc={'0' * 20}").corresp_acc is None


def test_another_separator() -> None:
    qr = parse_payment_qr(
        "ST00012#Name=ООО «Ромашка»#PersonalAcc=40702810138000000001#BIC=044525225#Sum=100"
    )
    assert (qr.name, qr.personal_acc, qr.bic, qr.amount) == (
        "ООО «Ромашка»",
        "40702810138000000001",
        "044525225",
        100,
    )


def test_whitespace_empty_values_trailing_separator() -> None:
    qr = parse_payment_qr(
        "  ST00012| Name = ООО Ромашка |PersonalAcc= 40702810138000000001 |BIC=044525225"
        "|LastName=|FirstName=   |Purpose=Оплата по счёту № 17|\r\n"
    )
    assert qr.name == "ООО Ромашка"
    assert qr.personal_acc == "40702810138000000001"
    assert qr.last_name is None and qr.first_name is None
    assert qr.purpose == "Оплата по счёту № 17"
    assert qr.extra == {}


def test_value_with_equals_sign_is_kept_whole() -> None:
    qr = parse_payment_qr(f"ST00012|{PAYEE}|Purpose=Счёт 17 (итого=1500 руб.)|Contract=a=b=c")
    assert qr.purpose == "Счёт 17 (итого=1500 руб.)"
    assert qr.extra == {"Contract": "a=b=c"}


def test_duplicated_keys_first_non_empty_wins() -> None:
    """Words and unknown keys: the first non-empty. A field deciding the amount or the payee
    printed twice with two values believes neither (review 18): the sum is asked."""
    qr = parse_payment_qr(
        f"ST00012|{PAYEE}|Sum=100|SUM=200|Name=|name=Первое|NAME=Второе|Contract=1|contract=2"
    )
    assert qr.amount is None
    assert ReceiptProblem.SUM in validate(qr).problems
    assert qr.name == "Первое"
    assert qr.extra == {"Contract": "1"}


def test_unknown_keys_are_kept_as_printed() -> None:
    qr = parse_payment_qr(f"ST00012|{PAYEE}|Contract=1111|middleName=Иванович|PayeeKPP=780201001")
    assert qr.extra == {"Contract": "1111", "middleName": "Иванович"}
    assert qr.kpp == "780201001"  # a common misspelling of KPP


def test_numbers_printed_in_groups_and_uin_spaces() -> None:
    qr = parse_payment_qr(
        "ST00012|PersonalAcc=4070 2810 1380 0000 0001|BIC=04 45 25 225|Sum=1 500 00"
        "|UIN=1881 0177 2001 0451 9116"
    )
    assert qr.personal_acc == "40702810138000000001"
    assert qr.bic == "044525225"
    assert qr.amount == 150000
    assert qr.uin == "18810177200104519116"


@pytest.mark.parametrize(
    ("raw_sum", "amount"),
    [("0", None), ("000", None), ("000150", 150), ("1", 1), ("9" * 18, 10**18 - 1)],
)
def test_sum_in_kopecks(raw_sum: str, amount: int | None) -> None:
    assert parse_payment_qr(f"ST00012|{PAYEE}|Sum={raw_sum}").amount == amount


@pytest.mark.parametrize(
    ("raw", "period"),
    [
        ("032026", "03.2026"),
        ("03.2026", "03.2026"),
        ("122025", "12.2025"),
        ("3.2026", "03.2026"),
        ("132026", "132026"),  # no month 13: kept as printed (validate leaves it out)
        ("март 2026", "03.2026"),
        ("за март", "за март"),
    ],
)
def test_period_normalised_when_recognisable(raw: str, period: str) -> None:
    assert parse_payment_qr(f"ST00012|{PAYEE}|PaymPeriod={raw}").period == period


def test_uin_zero_means_no_uin() -> None:
    qr = parse_payment_qr(f"ST00012|{PAYEE}|UIN=0")
    assert qr.uin is None and not qr.has_uin


# --- encodings -----------------------------------------------------------------------------

CYRILLIC_PAYLOAD = (
    "ST0001{digit}|Name=ООО «Ромашка»|PersonalAcc=40702810138000000001|BankName=ПАО СБЕРБАНК"
    "|BIC=044525225|CorrespAcc=30101810400000000225|Purpose=Оплата за квартиру, Ёлкина ул."
)


def expected_cyrillic(name: str = "ООО «Ромашка»") -> PaymentQr:
    return PaymentQr(
        name=name,
        personal_acc="40702810138000000001",
        bank_name="ПАО СБЕРБАНК",
        bic="044525225",
        corresp_acc="30101810400000000225",
        purpose="Оплата за квартиру, Ёлкина ул.",
    )


def test_windows_1251_bytes() -> None:
    data = CYRILLIC_PAYLOAD.format(digit=1).encode("cp1251")
    assert parse_payment_qr(data) == expected_cyrillic()


def test_koi8r_bytes() -> None:
    payload = CYRILLIC_PAYLOAD.format(digit=3).replace("«Ромашка»", '"Ромашка"')
    assert parse_payment_qr(payload.encode("koi8_r")) == expected_cyrillic('ООО "Ромашка"')


def test_utf8_bytes_and_text() -> None:
    payload = CYRILLIC_PAYLOAD.format(digit=2)
    assert parse_payment_qr(payload.encode("utf-8")) == expected_cyrillic()
    assert parse_payment_qr(payload) == expected_cyrillic()
    assert parse_payment_qr(b"\xef\xbb\xbf" + payload.encode("utf-8")) == expected_cyrillic()


def test_windows_1251_read_as_latin1_is_repaired() -> None:
    mojibake = CYRILLIC_PAYLOAD.format(digit=1).encode("cp1251").decode("latin-1")
    assert "Ромашка" not in mojibake  # really broken: 'ÎÎÎ «Ðîìàøêà»'
    assert parse_payment_qr(mojibake) == expected_cyrillic()


def test_koi8r_read_as_latin1_is_repaired() -> None:
    payload = CYRILLIC_PAYLOAD.format(digit=3).replace("«Ромашка»", "Ромашка")
    mojibake = payload.encode("koi8_r").decode("latin-1")
    assert parse_payment_qr(mojibake) == expected_cyrillic("ООО Ромашка")


def test_single_byte_read_as_shift_jis_is_repaired() -> None:
    """zxing-cpp guesses Shift_JIS for some KOI8-R runs: 'оплата' comes out as 'ﾏﾐﾌﾁﾔﾁ'."""
    payload = f"ST00013|{PAYEE}|Purpose=оплата за квартиру"
    mojibake = payload.encode("koi8_r").decode("shift_jis")
    assert "ﾏﾐﾌﾁﾔﾁ" in mojibake
    assert parse_payment_qr(mojibake).purpose == "оплата за квартиру"


def test_correct_text_is_not_repaired_again() -> None:
    payload = CYRILLIC_PAYLOAD.format(digit=1)  # already decoded right (the symbol had an ECI)
    assert parse_payment_qr(payload) == expected_cyrillic()
    assert repair_mojibake("ST00011|Purpose=«Test» №5 — ok", "cp1251") == (
        "ST00011|Purpose=«Test» №5 — ok"
    )


def test_utf8_read_as_latin1_is_repaired() -> None:
    payload = CYRILLIC_PAYLOAD.format(digit=2)
    assert parse_payment_qr(payload.encode("utf-8").decode("latin-1")) == expected_cyrillic()


def test_text_with_lost_bytes_is_left_alone() -> None:
    broken = f"ST00011|{PAYEE}|Purpose=\ufffdﾄﾏﾕ\ufffd"
    assert repair_mojibake(broken, "cp1251") == broken
    assert parse_payment_qr(broken).purpose == "ﾄﾏﾕ"  # lost bytes at a value's ends dropped


# --- problems ------------------------------------------------------------------------------


@pytest.mark.parametrize("data", ["", b"", "   \r\n", b"\x00\x00", "\ufeff"])
def test_empty(data: bytes | str) -> None:
    assert problem_of(data) is QrProblem.EMPTY


@pytest.mark.parametrize(
    "data",
    [
        "https://www.mos.ru/pgu/ru/application/",
        "Привет!",
        "ST00022|Name=X",  # another format's header
        b"\x89PNG\r\n",
        f"Name=X|{PAYEE}",  # fields without the header
    ],
)
def test_not_a_payment(data: bytes | str) -> None:
    assert problem_of(data) is QrProblem.NOT_PAYMENT


@pytest.mark.parametrize(
    "data",
    [
        "https://qr.nspk.ru/AS1000670LSS7DN18SJQDNP4B05KLJL2?type=01&bank=100000000001",
        b"https://qr.nspk.ru/BD10005B6CRSTDJ28QDQ1DV3OS2Q5R2P?type=02&bank=100000000111",
        "HTTPS://QR.NSPK.RU/AS1000670LSS7DN18SJQDNP4B05KLJL2",
        "https://sub.nspk.ru/AS1A002K3F4G5H6J7K8L9M0N1B2V3C4X",
        " qr.nspk.ru/AS1000670LSS7DN18SJQDNP4B05KLJL2 ",
    ],
)
def test_a_faster_payments_link_is_told_apart(data: bytes | str) -> None:
    """СБП links are payment codes, but of the bank's app: told as such (review 33d)."""
    assert problem_of(data) is QrProblem.SBP


@pytest.mark.parametrize("unset", ["null", "NULL", "Null", "undefined", "None", "NaN"])
def test_unset_values_read_as_not_printed(unset: str) -> None:
    """Java and JavaScript generators print a field they have no value for as «null» (review
    33d): never shown as «Назначение: null», never sent as a payer code."""
    qr = parse_payment_qr(
        f"ST00012|{PAYEE}|Purpose={unset}|PersAcc={unset}|Sum={unset}|UIN={unset}|KPP={unset}"
    )
    assert (qr.purpose, qr.pers_acc, qr.sum, qr.uin, qr.kpp) == (None, None, None, None, None)


@pytest.mark.parametrize("mark", ["\u202e", "\u202d", "\u200f", "\u200e", "\u2066", "\u2069"])
def test_direction_marks_are_dropped_from_values(mark: str) -> None:
    """A payee's name must read on the confirmation as it will be paid (review 33d)."""
    qr = parse_payment_qr(f"ST00012|Name=ООО {mark}Ромашка{mark}|{PAYEE}|Purpose={mark}Оплата")
    assert (qr.name, qr.purpose) == ("ООО Ромашка", "Оплата")


@pytest.mark.parametrize("data", ["https://qr.nspk.ru.evil.example/x", "see qr.nspk.ru/x"])
def test_a_link_that_only_mentions_the_faster_payments_host_is_not_one(data: str) -> None:
    assert problem_of(data) is QrProblem.NOT_PAYMENT


@pytest.mark.parametrize(
    "data",
    [
        # 0x98 is not a windows-1251 character, and it is inside the value, not a stray byte
        # after it; the other encodings read box-drawing characters, not Russian text
        b"ST00011|Name=\x98\x98x|" + PAYEE.encode(),
        b"ST00012|Name=\xd0\xd0\x98x|" + PAYEE.encode(),
        f"ST00019|{PAYEE}",  # no such encoding
        f"ST0001|{PAYEE}",  # the encoding digit is missing
        f"ST0001X|{PAYEE}".encode(),
    ],
)
def test_bad_encoding(data: bytes | str) -> None:
    assert problem_of(data) is QrProblem.BAD_ENCODING


@pytest.mark.parametrize(
    "data",
    [
        "ST00012",
        "ST00012|",
        "ST00012|Name=ООО Ромашка|BankName=ПАО СБЕРБАНК|Sum=100",
        "ST00012|PersonalAcc=40702810138000000001|Sum=100",  # no BIC
        "ST00012|BIC=044525225|Sum=100",  # no account
        "ST00012|PersonalAcc=40702810138000000001|BIC=|UIN=0",
        "ST00012|just text, no pairs",
    ],
)
def test_missing_fields(data: str) -> None:
    assert problem_of(data) is QrProblem.MISSING_FIELDS


def test_problem_values_are_stable_strings() -> None:
    assert [p.value for p in QrProblem] == [
        "empty",
        "not_payment",
        "bad_encoding",
        "missing_fields",
        "sbp",
    ]


# --- properties ----------------------------------------------------------------------------

HEADERS = st.sampled_from(["ST00011|", "ST00012|", "ST00013|", "st00012#", "ST00012;", "ST0001"])
KEYS = st.sampled_from(
    ["Name", "PersonalAcc", "BIC", "CorrespAcc", "Sum", "UIN", "PaymPeriod", "sum", "x", ""]
)


@given(st.binary(max_size=300))
def test_random_bytes_only_ever_raise_not_a_payment(data: bytes) -> None:
    parse_or_refuse(data)


@given(st.text(max_size=300))
def test_random_text_only_ever_raises_not_a_payment(data: str) -> None:
    parse_or_refuse(data)


@given(HEADERS, st.binary(max_size=300))
def test_random_bytes_after_a_header(header: str, body: bytes) -> None:
    parse_or_refuse(header.encode() + body)


@given(HEADERS, st.lists(st.tuples(KEYS, st.text(max_size=25)), max_size=8), st.booleans())
def test_random_pairs_after_a_header(
    header: str, pairs: list[tuple[str, str]], as_bytes: bool
) -> None:
    text = header + "|".join(f"{key}={value}" for key, value in pairs)
    parse_or_refuse(text.encode("utf-8", errors="surrogatepass") if as_bytes else text)


def parse_or_refuse(data: bytes | str) -> None:
    try:
        result = parse_payment_qr(data)
    except NotAPaymentQr as refused:
        assert isinstance(refused.reason, QrProblem)
    else:
        assert isinstance(result, PaymentQr)
        assert (result.personal_acc and result.bic) or result.uin


# Round trip: whatever a generator writes within the standard comes back field by field.

CODECS = {"1": "cp1251", "2": "utf-8", "3": "koi8_r"}
ALPHABET = (
    "абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ"
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,-=/()\"'"
)
GOST_KEYS = {
    "name": "Name",
    "personal_acc": "PersonalAcc",
    "bank_name": "BankName",
    "bic": "BIC",
    "corresp_acc": "CorrespAcc",
    "amount": "Sum",
    "purpose": "Purpose",
    "payee_inn": "PayeeINN",
    "kpp": "KPP",
    "cbc": "CBC",
    "oktmo": "OKTMO",
    "pers_acc": "PersAcc",
    "period": "PaymPeriod",
    "uin": "UIN",
    "tech_code": "TechCode",
    "category": "Category",
    "service_name": "ServiceName",
    "last_name": "LastName",
    "first_name": "FirstName",
    "payer_address": "PayerAddress",
    "flat": "Flat",
    "phone": "Phone",
}


def digits(length: int) -> st.SearchStrategy[str]:
    return st.text("0123456789", min_size=length, max_size=length)


def not_zeros(length: int) -> st.SearchStrategy[str]:
    return digits(length).filter(lambda value: set(value) != {"0"})


# what the parser makes of free text: whitespace runs become one space
# «null» and its kin are a generator's «not printed» (test_unset_values_read_as_not_printed).
UNSET = {"null", "undefined", "none", "nan"}
words = (
    st.text(ALPHABET, min_size=1, max_size=40)
    .map(lambda w: " ".join(w.split()))
    .filter(lambda w: bool(w) and w.casefold() not in UNSET)
)
COMPACTED = {"payee_inn", "kpp", "cbc", "oktmo"}  # numbers: printed spaces are dropped


def as_printed(word: str) -> tuple[str, str]:
    return word, word


def compacted(word: str) -> tuple[str, str]:
    return word, "".join(word.split())


periods = st.tuples(st.integers(1, 12), st.integers(2000, 2099), st.booleans())

# field → strategy of (printed value, parsed value)
REQUIRED: dict[str, st.SearchStrategy[tuple[str, Any]]] = {
    "name": words.map(lambda w: (w, w)),
    "personal_acc": digits(20).map(lambda d: (d, d)),
    "bic": digits(9).map(lambda d: (d, d)),
}
OPTIONAL: dict[str, st.SearchStrategy[tuple[str, Any]]] = {
    "corresp_acc": not_zeros(20).map(lambda d: (d, d)),
    "amount": st.integers(1, 10**18 - 1).map(lambda n: (str(n), n)),
    "uin": st.one_of(not_zeros(20), not_zeros(25)).map(lambda d: (d, d)),
    "period": periods.map(
        lambda p: (f"{p[0]:02d}{'.' if p[2] else ''}{p[1]}", f"{p[0]:02d}.{p[1]}")
    ),
    **{
        name: words.map(compacted if name in COMPACTED else as_printed)
        for name in GOST_KEYS
        if name not in {"name", "personal_acc", "bic", "corresp_acc", "amount", "uin", "period"}
    },
}
EXTRA = st.dictionaries(
    st.sampled_from(["Contract", "MiddleName", "DocNo", "AddAmount", "RuleId"]), words, max_size=3
)

SPELLINGS: dict[str, Callable[[str], str]] = {
    "as in the standard": lambda key: key,
    "lower": str.lower,
    "upper": str.upper,
}


@st.composite
def payloads(draw: st.DrawFn) -> tuple[str, str, PaymentQr]:
    digit = draw(st.sampled_from(sorted(CODECS)))
    separator = draw(st.sampled_from("|#;"))
    fields = draw(st.fixed_dictionaries(REQUIRED, optional=OPTIONAL))
    extra = draw(EXTRA)
    spell = SPELLINGS[draw(st.sampled_from(sorted(SPELLINGS)))]
    pairs = [f"{spell(GOST_KEYS[name])}={printed}" for name, (printed, _) in fields.items()]
    pairs += [f"{key}={value}" for key, value in extra.items()]
    pairs = draw(st.permutations(pairs))
    trailing = separator if draw(st.booleans()) else ""
    text = f"ST0001{digit}{separator}" + separator.join(pairs) + trailing
    parsed = {name: value for name, (_, value) in fields.items()}
    if "amount" in fields:
        parsed["sum"] = fields["amount"][0]
    expected = PaymentQr(**parsed, extra=extra)
    return text, CODECS[digit], expected


@given(payloads())
def test_round_trip_bytes_text_and_mojibake(case: tuple[str, str, PaymentQr]) -> None:
    text, codec, expected = case
    assert parse_payment_qr(text.encode(codec)) == expected
    assert parse_payment_qr(text) == expected
    # what zxing-cpp makes of single-byte Cyrillic without ECI: every byte as a Latin-1 char
    assert parse_payment_qr(text.encode(codec).decode("latin-1")) == expected


def test_payment_qr_is_immutable_and_extra_defaults_empty() -> None:
    qr = PaymentQr()
    assert qr.extra == {} and qr.extra is not PaymentQr().extra
    with pytest.raises(dataclasses.FrozenInstanceError):
        qr.name = "x"  # type: ignore[misc]
