"""Realistic receipts, modelled on public ones (payees, account layouts, the treasury's accounts
and BIC, the ways fields are misprinted); numbers that identify a person are made up. Each has
the verdict ``validate`` must reach, and what it reaches the city accepts."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import pytest

from domain.payment_qr import ReceiptProblem, parse_payment_qr, validate
from domain.uin import check_uin
from sandbox.payments import _requisites

# The Moscow treasury: a treasury account, the single treasury account as CorrespAcc, its BIC.
TREASURY = (
    "|BankName=ГУ Банка России по ЦФО//УФК по г. Москве г. Москва|BIC=004525988"
    "|CorrespAcc=40102810545370000003"
)
SBER = "|BankName=ПАО СБЕРБАНК|BIC=044525225|CorrespAcc=30101810400000000225"


@dataclass(frozen=True)
class Receipt:
    data: bytes | str
    usable: bool  # by requisites
    uin: str | None = None
    problems: tuple[ReceiptProblem, ...] = ()
    fields: dict[str, object] = field(default_factory=dict)  # normalised PaymentQr fields
    payable: bool | None = None  # «Оплатить» offered, when not `usable or uin`


RECEIPTS = {
    "epd_moscow": Receipt(
        "ST00012|Name=ГБУ «ЕИРЦ города Москвы»|PersonalAcc=40603810938000000001"
        + SBER
        + "|PayeeINN=7701234567|KPP=770101001|PersAcc=2345678901|PaymPeriod=032026"
        "|Sum=742350|Purpose=Оплата ЕПД за 03.2026|Category=ЖКУ|TechCode=02"
        "|PayerAddress=г. Москва, ул. Тверская, д. 1, кв. 15|Flat=15",
        usable=True,
        fields={"pers_acc": "2345678901", "period": "03.2026", "amount": 742350},
    ),
    "school_25_digit_uin": Receipt(
        "ST00012|Name=Департамент финансов города Москвы (ГБОУ Школа № 1234 л/с 2605641000451)"
        "|PersonalAcc=03224643450000007300" + TREASURY + "|PayeeINN=7710168360|KPP=771001001"
        "|CBC=07500000000131131022|OKTMO=45380000|UIN=0349347501810000000132623"
        "|Sum=392000|Purpose=Питание учащегося за март|ChildFio=Петров Пётр|ClassNum=5А"
        "|TechCode=08",
        usable=True,
        uin="0349347501810000000132623",
        fields={"amount": 392000, "purpose": "Питание учащегося за март"},
    ),
    "traffic_fine_20_digit_uin": Receipt(
        "ST00012|Name=УФК по г. Москве (ГУ МВД России по г. Москве)"
        "|PersonalAcc=03100643000000017300" + TREASURY + "|PayeeINN=7707089101|KPP=770731005"
        "|CBC=18811601123010001140|OKTMO=45380000|UIN=18810177200104519116|Sum=50000"
        "|Purpose=Штраф по постановлению 18810177200104519116|TechCode=03|LastName=Иванов",
        usable=True,
        uin="18810177200104519116",
        fields={"amount": 50000, "cbc": "18811601123010001140"},
    ),
    "parking_fine": Receipt(
        "ST00012|Name=Департамент финансов города Москвы (ГКУ «АМПП» л/с 0305531000450)"
        "|PersonalAcc=03100643000000017300" + TREASURY + "|PayeeINN=7704206201|KPP=771001001"
        "|CBC=85511602010020001140|OKTMO=45379000|UIN=0355431010119102401042373"
        "|Sum=500000|Purpose=Административный штраф за неоплату парковки|TechCode=03",
        usable=True,
        uin="0355431010119102401042373",
        fields={"amount": 500000},
    ),
    "kindergarten": Receipt(
        "ST00012|Name=ГБОУ Школа № 2095 (дошкольное отделение)|PersonalAcc=40601810245253000002"
        + TREASURY
        + "|PayeeINN=7729123456|KPP=772901001|PersAcc=0012345"
        "|Purpose=Родительская плата за присмотр и уход|PaymPeriod=03.2026|Sum=240000"
        "|ChildFio=Сидорова Анна|InstNum=2095|ClassNum=Ромашка|TechCode=08",
        usable=True,
        fields={
            "period": "03.2026",
            "extra": {"ChildFio": "Сидорова Анна", "InstNum": "2095", "ClassNum": "Ромашка"},
        },
    ),
    "charity_techcode_14": Receipt(
        "ST00012|Name=Благотворительный фонд «Добрые руки»|PersonalAcc=40703810500000000042"
        "|BankName=АО «АЛЬФА-БАНК»|BIC=044525593|CorrespAcc=30101810200000000593"
        "|PayeeINN=7700000000|KPP=770001001|Purpose=Благотворительное пожертвование"
        "|ServiceName=Детям|TechCode=14",
        usable=True,
        fields={"amount": None, "tech_code": "14"},
    ),
    "windows_1251_electricity": Receipt(
        (
            "ST00011|Name=АО «Мосэнергосбыт»|PersonalAcc=40702810400020001234"
            + SBER
            + "|PayeeINN=7736520080|KPP=997650001|PersAcc=12345-678-90|PaymPeriod=022026"
            "|Sum=184217|Purpose=Оплата электроэнергии, л/с 12345-678-90|TechCode=02"
        ).encode("cp1251"),
        usable=True,
        fields={"name": "АО «Мосэнергосбыт»", "pers_acc": "12345-678-90", "period": "02.2026"},
    ),
    "corresp_acc_0": Receipt(
        "ST00012|Name=УФК по г. Москве (ГУ МВД России по г. Москве)"
        "|PersonalAcc=03100643000000017300|BankName=ГУ Банка России по ЦФО|BIC=004525988"
        "|CorrespAcc=0|PayeeINN=7707089101|KPP=770731005|UIN=18810177190218155028|Sum=150000"
        "|TechCode=03",
        usable=True,
        uin="18810177190218155028",
        fields={"corresp_acc": None, "purpose": "УФК по г. Москве (ГУ МВД России по г. Москве)"},
    ),
    "lower_case_keys": Receipt(
        "st00012|name=ООО «УК Жилсервис»|personalacc=40702810038000054321|bankname=ПАО СБЕРБАНК"
        "|bic=044525225|correspacc=30101810400000000225|payeeinn=7719876543|kpp=771901001"
        "|persAcc=550012|paymPeriod=022026|sum=612300|purpose=Содержание и ремонт жилья"
        "|uin=0",
        usable=True,
        fields={"pers_acc": "550012", "period": "02.2026", "amount": 612300},
    ),
    "uin_of_26_characters": Receipt(
        "ST00012|Name=ГБОУ Школа № 1234|PersonalAcc=03224643450000007300"
        + TREASURY
        + "|PayeeINN=7710168360|KPP=771001001|UIN=03493475018100000001326230|Sum=150000"
        "|Purpose=Кружок робототехники",
        usable=True,  # a valid UIN and one digit too many: not guessed at, paid by requisites
    ),
    "uin_of_26_characters_garbage": Receipt(
        "ST00012|Name=ГБОУ Школа № 1234|PersonalAcc=03224643450000007300"
        + TREASURY
        + "|PayeeINN=7710168360|UIN=18810177200104519116123456|Sum=150000|Purpose=Кружок",
        usable=True,
        problems=(ReceiptProblem.UIN,),
        # A budget payee's printed UIN unread: paid without it, the money is not credited to
        # the charge (Minfin order 107н), so it is not paid by requisites (review 30).
        payable=False,
    ),
    "inn_of_9_digits": Receipt(
        "ST00012|Name=ТСЖ «Солнечный»|PersonalAcc=40703810838000001111"
        + SBER
        + "|PayeeINN=770123456|PersAcc=118|Sum=450000|Purpose=Взнос на капремонт",
        usable=False,
        problems=(ReceiptProblem.PAYEE_INN,),
        fields={"payee_inn": None},
    ),
    "period_in_words": Receipt(
        "ST00012|Name=ТСН «Парковая 7»|PersonalAcc=40703810038000002222"
        + SBER
        + "|PayeeINN=7720123450|PersAcc=77|PaymPeriod=март 2026|Sum=380000"
        "|Purpose=Оплата коммунальных услуг",
        usable=True,
        fields={"period": "03.2026"},
    ),
    "period_without_a_year": Receipt(
        "ST00012|Name=ТСН «Парковая 7»|PersonalAcc=40703810038000002222"
        + SBER
        + "|PayeeINN=7720123450|PaymPeriod=за март|Sum=380000|Purpose=Взнос",
        usable=True,
        problems=(ReceiptProblem.PERIOD,),
        fields={"period": None},
    ),
    "no_payee_inn_no_uin": Receipt(
        "ST00012|Name=СНТ «Берёзка»|PersonalAcc=40703810500000003333"
        + SBER
        + "|Sum=500000|Purpose=Членский взнос за 2026 год",
        usable=False,
        problems=(ReceiptProblem.PAYEE_INN,),
    ),
    "no_payee_inn_with_uin": Receipt(
        "ST00012|Name=УФК по г. Москве (ГУ МВД России по г. Москве)"
        "|PersonalAcc=03100643000000017300" + TREASURY + "|UIN=18810177181044064881|Sum=75000",
        usable=False,
        uin="18810177181044064881",
        problems=(ReceiptProblem.PAYEE_INN,),
    ),
    "no_purpose_service_name": Receipt(
        "ST00012|Name=ООО «Сеть Интернет»|PersonalAcc=40702810700000004444"
        + SBER
        + "|PayeeINN=7705123456|KPP=770501001|PersAcc=inet-90210|ServiceName=Интернет"
        "|Sum=65000|TechCode=09",
        usable=True,
        fields={"purpose": "Интернет"},
    ),
    "no_purpose_service_code": Receipt(
        "ST00012|Name=ПАО «Мосэнерго»|PersonalAcc=40702810400000005555"
        + SBER
        + "|PayeeINN=7705035012|ServiceName=1001|CBC=18811601123010001140|TechCode=02"
        "|Sum=120000",
        usable=True,
        fields={"purpose": "ПАО «Мосэнерго»"},
    ),
    "separator_in_purpose": Receipt(
        "ST00012|Name=ТСЖ «Дом у реки»|PersonalAcc=40703810938000006666"
        + SBER
        + "|PayeeINN=7716123459|Purpose=Взнос на капремонт | кв. 12 | март 2026"
        "|PaymPeriod=03/2026|Sum=321000",
        usable=True,
        fields={"purpose": "Взнос на капремонт | кв. 12 | март 2026", "period": "03.2026"},
    ),
    "st00011_over_utf8_sum_in_rubles": Receipt(
        (
            "ST00011|Name=ООО «Фитнес Парк»|PersonalAcc=40702810400000007777"
            + SBER
            + "|PayeeINN=7743123450|Sum=4500.00|Purpose=Абонемент на апрель|PaymPeriod=2026-04"
        ).encode("utf-8"),
        usable=True,
        fields={"name": "ООО «Фитнес Парк»", "amount": 450000, "period": "04.2026"},
    ),
    "stray_bytes_from_a_scanner": Receipt(
        "ST00012|Name=ООО «Ромашка»|PersonalAcc=40702810138000000001".encode()
        + b"\x00"
        + (SBER + "|PayeeINN=7701234567|Purpose=Оплата по счёту № 17").encode()
        + b"\xd0"
        + b"|Sum=1234567\r\n\x1a",
        usable=True,
        fields={"purpose": "Оплата по счёту № 17", "amount": 1234567},
    ),
}


@pytest.mark.parametrize("name", RECEIPTS)
def test_verdict(name: str) -> None:
    receipt = RECEIPTS[name]
    check = validate(parse_payment_qr(receipt.data))
    assert check.requisites_usable is receipt.usable
    assert check.uin == receipt.uin
    assert check.problems == receipt.problems
    expected = receipt.usable or receipt.uin is not None
    assert check.can_pay == (expected if receipt.payable is None else receipt.payable)
    for key, value in receipt.fields.items():
        assert getattr(check.qr, key) == value, key


@pytest.mark.parametrize("name", RECEIPTS)
def test_what_is_usable_the_city_accepts(name: str) -> None:
    check = validate(parse_payment_qr(RECEIPTS[name].data))
    if check.uin is not None:
        assert check_uin(check.uin).ok
    if check.requisites is None:
        assert not check.requisites_usable
        return
    assert asdict(_requisites(asdict(check.requisites))) == asdict(check.requisites)


def test_enough_realistic_receipts() -> None:
    assert len(RECEIPTS) >= 15
    assert {r.usable for r in RECEIPTS.values()} == {True, False}
