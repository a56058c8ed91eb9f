"""The check before «Оплатить»: every field the city validates is valid or left out, and what
``validate`` calls usable the city accepts (its own validator is called to prove it)."""

from __future__ import annotations

from dataclasses import asdict

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from domain.payable import Requisites
from domain.payment_qr import (
    PERIOD_FORMAT,
    NotAPaymentQr,
    PaymentQr,
    ReceiptCheck,
    ReceiptProblem,
    normalise_period,
    parse_payment_qr,
    validate,
)
from domain.uin import check_uin, with_control_digit
from sandbox.payments import InvalidPaymentRequest, _requisites

GOOD = {
    "Name": "ООО «Ромашка»",
    "PersonalAcc": "40702810138000000001",
    "BIC": "044525225",
    "PayeeINN": "7701234567",
    "Purpose": "Оплата по счёту № 17",
}


def payload(**fields: str | None) -> str:
    merged = {**GOOD, **fields}
    return "ST00012|" + "|".join(f"{k}={v}" for k, v in merged.items() if v is not None)


def check_of(**fields: str | None) -> ReceiptCheck:
    return validate(parse_payment_qr(payload(**fields)))


def city_accepts(requisites: Requisites) -> None:
    """The sandbox's own validator of ``PaymentRequest.requisites`` (answers 400 otherwise)."""
    accepted = _requisites(asdict(requisites))
    assert asdict(accepted) == asdict(requisites)


def test_a_good_receipt() -> None:
    check = check_of()
    assert check.problems == () and check.requisites_usable and check.can_pay
    assert check.uin is None
    assert check.requisites == Requisites(
        payee_name="ООО «Ромашка»",
        payee_inn="7701234567",
        personal_acc="40702810138000000001",
        bic="044525225",
        purpose="Оплата по счёту № 17",
    )
    assert check.requisites is not None
    city_accepts(check.requisites)


# --- PayeeINN, PersonalAcc, BIC: needed to pay by requisites -------------------------------


@pytest.mark.parametrize("inn", ["7701234567", "770123456789", "7701 234 567"])
def test_inn_of_10_or_12_digits(inn: str) -> None:
    check = check_of(PayeeINN=inn)
    assert check.requisites_usable and check.qr.payee_inn == inn.replace(" ", "")


@pytest.mark.parametrize(
    "inn",
    ["770123456", "77012345678", "7701234567890", "77012345б7", "770123456²",
     "７７０１２３４５６７", "7701-234567", "ИНН 7701234567"],
)  # fmt: skip
def test_inn_of_another_length_or_not_ascii_digits_is_a_problem(inn: str) -> None:
    check = check_of(PayeeINN=inn)
    assert check.problems == (ReceiptProblem.PAYEE_INN,)
    assert check.qr.payee_inn is None  # never padded, never passed on
    assert not check.requisites_usable and check.requisites is None and not check.can_pay


def test_no_inn_means_no_requisites_but_a_valid_uin_still_pays() -> None:
    check = check_of(PayeeINN=None, UIN="18810177200104519116")
    assert check.problems == (ReceiptProblem.PAYEE_INN,)
    assert not check.requisites_usable and check.requisites is None
    assert check.uin == "18810177200104519116" and check.can_pay


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"PersonalAcc": "4070281013800000000"}, ReceiptProblem.PERSONAL_ACC),
        ({"PersonalAcc": "407028101380000000012"}, ReceiptProblem.PERSONAL_ACC),
        ({"PersonalAcc": "4070281013800000000X"}, ReceiptProblem.PERSONAL_ACC),
        ({"PersonalAcc": "40702810138000000001", "UIN": "18810177200104519116", "BIC": None},
         ReceiptProblem.BIC),
        ({"BIC": "04452522"}, ReceiptProblem.BIC),
        ({"BIC": "0445252255"}, ReceiptProblem.BIC),
        ({"BIC": "04452522٥"}, ReceiptProblem.BIC),
        ({"Name": None}, ReceiptProblem.NAME),
    ],
)  # fmt: skip
def test_requisites_the_city_needs(fields: dict[str, str | None], problem: ReceiptProblem) -> None:
    check = check_of(**fields)
    assert check.problems == (problem,)
    assert not check.requisites_usable and check.requisites is None


# --- fields that are tolerated when malformed (left out) -----------------------------------


@pytest.mark.parametrize(
    ("printed", "normalised", "problems"),
    [
        ("30101810400000000225", "30101810400000000225", ()),
        ("3010 1810 4000 0000 0225", "30101810400000000225", ()),
        ("0", None, ()),
        ("00000000000000000000", None, ()),
        (None, None, ()),
        ("301018104000000002", None, (ReceiptProblem.CORRESP_ACC,)),
        ("-", None, (ReceiptProblem.CORRESP_ACC,)),
    ],
)
def test_corresp_acc(
    printed: str | None, normalised: str | None, problems: tuple[ReceiptProblem, ...]
) -> None:
    check = check_of(CorrespAcc=printed)
    assert (check.qr.corresp_acc, check.problems) == (normalised, problems)
    assert check.requisites_usable  # the city does not take it


@pytest.mark.parametrize(
    ("printed", "normalised", "problems"),
    [
        ("770101001", "770101001", ()),
        ("7701AB001", "7701AB001", ()),  # positions 5-6 may be capital Latin letters
        ("0", None, ()),
        ("77010100", None, (ReceiptProblem.KPP,)),
        ("7701аб001", None, (ReceiptProblem.KPP,)),
    ],
)
def test_kpp(printed: str, normalised: str | None, problems: tuple[ReceiptProblem, ...]) -> None:
    check = check_of(KPP=printed)
    assert (check.qr.kpp, check.problems) == (normalised, problems)


# --- UIN -----------------------------------------------------------------------------------

SCHOOL_UIN = "0349347501810000000132623"
FINE_UIN = "18810177200104519116"


@pytest.mark.parametrize(
    ("printed", "uin"),
    [
        (FINE_UIN, FINE_UIN),
        (SCHOOL_UIN, SCHOOL_UIN),
        ("1881 0177 2001 0451 9116", FINE_UIN),
        ("0", None),
        ("0" * 20, None),
        ("0" * 26, None),
        (SCHOOL_UIN + "0", None),  # 26 characters: a valid UIN and one too many: no UIN
        (SCHOOL_UIN + "X", None),
    ],
)
def test_uin_read_or_left_out_without_a_problem(printed: str, uin: str | None) -> None:
    check = check_of(UIN=printed)
    assert (check.uin, check.qr.uin, check.problems) == (uin, uin, ())


@pytest.mark.parametrize(
    "printed",
    [
        "18810177200718000123",  # the DIT description: the control digit should be 7
        "18810177220123456789",
        "1881017720010451911",  # 19
        "18810177200104519116" + "123456",  # 26, no valid UIN in its first 25
        "10349347501810000000132623",  # 26, a valid UIN after a digit too many: not guessed
        "188101772001045191１６",  # full-width digits
        "1881017720010451911²",
        "УИН отсутствует",
    ],
)
def test_an_invalid_uin_is_a_problem_and_never_passed_on(printed: str) -> None:
    check = check_of(UIN=printed)
    assert check.problems == (ReceiptProblem.UIN,)
    assert check.uin is None and check.qr.uin is None
    assert check.requisites_usable  # paying by requisites is still possible
    assert check.requisites is not None and check.requisites.uin is None


def test_a_20_character_uin_equal_to_the_kbk_is_not_a_uin() -> None:
    kbk = with_control_digit("1881160112301000114")
    check = check_of(UIN=kbk, CBC=kbk)
    assert check.problems == (ReceiptProblem.UIN,) and check.uin is None


def test_a_valid_uin_goes_with_the_requisites() -> None:
    check = check_of(UIN=FINE_UIN)
    assert check.requisites is not None and check.requisites.uin == FINE_UIN
    city_accepts(check.requisites)


# --- period --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("printed", "period"),
    [
        ("03.2026", "03.2026"),
        ("3.2026", "03.2026"),
        ("03/2026", "03.2026"),
        ("03-2026", "03.2026"),
        ("2026-03", "03.2026"),
        ("2026.03", "03.2026"),
        ("032026", "03.2026"),
        ("202603", "03.2026"),
        ("03.26", "03.2026"),
        ("01.03.2026", "03.2026"),
        ("март 2026", "03.2026"),
        ("Март 2026 г.", "03.2026"),
        ("марта 2026 года", "03.2026"),
        ("МАРТ 2026", "03.2026"),
        ("мар. 26", "03.2026"),
        ("за март 2026", "03.2026"),
        ("за 03.2026", "03.2026"),
        ("Период: 12.2025", "12.2025"),
        ("май 2026", "05.2026"),
        ("декабрь 2025", "12.2025"),
        ("сентябрь, 2026", "09.2026"),
    ],
)
def test_period_forms(printed: str, period: str) -> None:
    assert normalise_period(printed) == period
    check = check_of(PaymPeriod=printed)
    assert (check.qr.period, check.problems) == (period, ())


@pytest.mark.parametrize(
    "printed",
    ["за март", "март", "2026", "13.2026", "00.2026", "03.1899", "1 квартал 2026",
     "03.2026-04.2026", "2026-13", "03/2026²", "０３.２０２６", "весна 2026", "март 20266"],
)  # fmt: skip
def test_an_unreadable_period_is_left_out(printed: str) -> None:
    assert normalise_period(printed) is None
    check = check_of(PaymPeriod=printed)
    assert check.qr.period is None and check.problems == (ReceiptProblem.PERIOD,)
    assert check.requisites is not None and check.requisites.period is None


# --- Sum -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("printed", "amount"), [("0", None), ("0.00", None), (None, None)])
def test_no_amount(printed: str | None, amount: int | None) -> None:
    check = check_of(Sum=printed)
    assert (check.amount, check.qr.sum, check.problems) == (amount, None, ())


def test_an_amount_built_by_hand_out_of_range_is_a_problem() -> None:
    qr = PaymentQr(personal_acc="40702810138000000001", bic="044525225", amount=-5)
    assert validate(qr).amount is None
    assert ReceiptProblem.SUM in validate(qr).problems


# --- purpose -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "purpose"),
    [
        ({}, "Оплата по счёту № 17"),
        ({"Purpose": None, "ServiceName": "Вывоз мусора"}, "Вывоз мусора"),
        ({"Purpose": None, "ServiceName": "1001"}, "ООО «Ромашка»"),  # a service code
        ({"Purpose": None, "CBC": "18811601123010001140", "TechCode": "03"}, "ООО «Ромашка»"),
        ({"Purpose": None}, "ООО «Ромашка»"),
    ],
)
def test_purpose_a_resident_understands(fields: dict[str, str | None], purpose: str) -> None:
    check = check_of(**fields)
    assert check.qr.purpose == purpose
    assert check.requisites is not None
    city_accepts(check.requisites)


def test_problems_are_stable_strings_in_field_order() -> None:
    assert [p.value for p in ReceiptProblem] == [
        "name",
        "personal_acc",
        "bic",
        "corresp_acc",
        "payee_inn",
        "kpp",
        "sum",
        "period",
        "uin",
        "pers_acc",
    ]
    check = check_of(UIN="1", PaymPeriod="x", Sum="x", PayeeINN="1", BIC="1", Name=None)
    assert check.problems == (
        ReceiptProblem.NAME,
        ReceiptProblem.BIC,
        ReceiptProblem.PAYEE_INN,
        ReceiptProblem.SUM,
        ReceiptProblem.PERIOD,
        ReceiptProblem.UIN,
    )


def test_validate_is_idempotent() -> None:
    check = check_of(PaymPeriod="март 2026", Sum="1500,50", UIN=SCHOOL_UIN + "0", KPP="0")
    assert validate(check.qr) == check


# --- properties ----------------------------------------------------------------------------


def digits(low: int, high: int | None = None) -> st.SearchStrategy[str]:
    return st.text("0123456789", min_size=low, max_size=low if high is None else high)


JUNK = st.text(max_size=12).filter(lambda t: "|" not in t and "=" not in t)
NOT_ASCII_DIGITS = st.sampled_from(["²", "٣", "５", "߂", "๑"])
words = st.text("абвгдеёжзийклмнопрстуфхцчшщъыьэюя АБВГДЕЁЖЗ«»№.,-0123456789", max_size=30)
valid_uins = st.one_of(
    st.integers(1, 10**19 - 1).map("{:019d}".format),
    st.integers(1, 10**24 - 1).map("{:024d}".format),
).map(with_control_digit)
periods_printed = st.tuples(
    st.integers(0, 13),
    st.integers(1890, 2110),
    st.sampled_from(["{m:02d}.{y}", "{m}/{y}", "{y}-{m:02d}", "{m:02d}{y}", "{m:02d}.{yy:02d}",
                     "за {m:02d}.{y}", "{y}{m:02d}", "{m:02d} {y} г."]),
).map(lambda p: p[2].format(m=p[0], y=p[1], yy=p[1] % 100))  # fmt: skip


def mostly(
    valid: st.SearchStrategy[str], invalid: st.SearchStrategy[str | None]
) -> st.SearchStrategy[str | None]:
    """Valid four times in five (or missing, or malformed), so that usable receipts are common."""
    return st.integers(0, 9).flatmap(lambda roll: valid if roll < 8 else invalid)


REQUISITES = {
    "Name": mostly(words.filter(str.strip), st.one_of(JUNK, st.none())),
    "PersonalAcc": mostly(digits(20), st.one_of(digits(18, 22), JUNK, st.none())),
    "BIC": mostly(digits(9), st.one_of(digits(7, 11), JUNK, st.none())),
    "PayeeINN": mostly(
        st.one_of(digits(10), digits(12)),
        st.one_of(digits(9), digits(11), st.tuples(digits(9), NOT_ASCII_DIGITS).map("".join),
                  JUNK, st.none()),
    ),
}  # fmt: skip
FIELDS = {
    "KPP": st.one_of(digits(9), digits(1, 10), JUNK),
    "CorrespAcc": st.one_of(st.just("0"), digits(20), digits(1, 21), JUNK),
    "Sum": st.one_of(digits(1, 19), st.decimals(0, 10**7, places=2).map(str), JUNK),
    "Purpose": st.one_of(words, JUNK),
    "ServiceName": st.one_of(words, digits(1, 4)),
    "PersAcc": st.one_of(words, digits(1, 12)),
    "PaymPeriod": st.one_of(periods_printed, words, JUNK),
    "UIN": st.one_of(valid_uins, valid_uins.map(lambda u: u + "7"), digits(20), digits(25),
                     digits(26), st.just("0"), JUNK),
    "CBC": digits(20),
}  # fmt: skip


@settings(max_examples=400)
@given(
    st.fixed_dictionaries(REQUISITES),
    st.fixed_dictionaries({}, optional=FIELDS),
    st.sampled_from(["1", "2"]),
)
def test_what_validate_calls_usable_the_city_accepts(
    requisites: dict[str, str | None], fields: dict[str, str], digit: str
) -> None:
    pairs = {**requisites, **fields}.items()
    text = f"ST0001{digit}|" + "|".join(f"{k}={v}" for k, v in pairs if v is not None)
    try:
        qr = parse_payment_qr(text.encode("cp1251" if digit == "1" else "utf-8", "replace"))
    except NotAPaymentQr:
        return
    check = validate(qr)
    normalised = check.qr
    event(f"usable={check.requisites_usable} uin={check.uin is not None}")
    if check.requisites_usable:
        assert check.requisites is not None
        city_accepts(check.requisites)
    else:
        assert check.requisites is None
        assert {
            ReceiptProblem.NAME,
            ReceiptProblem.PERSONAL_ACC,
            ReceiptProblem.BIC,
            ReceiptProblem.PAYEE_INN,
        } & set(check.problems)
    if check.uin is not None:
        assert check_uin(check.uin).ok and check.uin == check_uin(check.uin).uin
    assert check.uin == normalised.uin
    assert normalised.period is None or PERIOD_FORMAT.fullmatch(normalised.period)
    assert normalised.amount is None or 0 < normalised.amount < 10**18
    assert len(set(check.problems)) == len(check.problems)
    unread_budget_uin = ReceiptProblem.UIN in check.problems and check.budget_payee
    assert check.can_pay == (
        check.uin is not None or (check.requisites_usable and not unread_budget_uin)
    )


def test_the_city_refuses_what_validate_refuses() -> None:
    """The other direction, for the cases that broke: the city says 400 to each raw value."""
    raw = {
        "payee_name": "ТСЖ",
        "payee_inn": "770123456",
        "personal_acc": "40703810138000000007",
        "bic": "044525225",
        "purpose": "Взнос",
    }
    for name, value in [
        ("payee_inn", "770123456"),
        ("period", "март 2026"),
        ("uin", SCHOOL_UIN + "0"),
        ("payee_inn", ""),
    ]:
        with pytest.raises(InvalidPaymentRequest):
            _requisites({**raw, "payee_inn": "7701234567", name: value})


@given(st.sampled_from(["ST00011|", "ST00012|", "ST00013|", "ST00012#"]), st.binary(max_size=200))
def test_any_bytes_parse_or_refuse_and_validate_never_raises(header: str, body: bytes) -> None:
    try:
        qr = parse_payment_qr(header.encode() + body)
    except NotAPaymentQr:
        return
    check = validate(qr)
    if check.requisites is not None:
        city_accepts(check.requisites)


@given(st.text(max_size=200))
def test_any_text_after_a_header_validates(body: str) -> None:
    try:
        qr = parse_payment_qr("ST00012|PersonalAcc=40702810138000000001|BIC=044525225|" + body)
    except NotAPaymentQr:
        return
    check = validate(qr)
    if check.requisites is not None:
        city_accepts(check.requisites)
