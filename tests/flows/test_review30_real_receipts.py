"""Review 30b: payment QR codes as real receipts and real generators print them (GOST R 56042-2014),
replayed through the photographed-receipt flow and the pure parser.

Every payload below is copied from public code (source beside it: a repository and path, or — for
hits of the code index that carry no repository — the stored file id and the text to find it by).
Personal data in them (names, flat numbers) is the sources' own placeholder or shortened; payees,
accounts, BICs and the shapes of the fields are as published.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain.payment_qr import ReceiptProblem, parse_payment_qr, validate
from tests.flows.conftest import Harness
from tests.flows.receipt_codes import qr_png
from tests.flows.test_receipt_photo import linked
from tests.money_text import nb

# ---------------------------------------------------------------- real payloads

# codebude/QRCoder, QRCoderTests/PayloadGeneratorTests/RussiaPaymentOrderTests.cs (code index id
# 14971445561): a generator's own output, with the trailing separator it always writes.
QRCODER = (
    'ST00012|Name=ООО «Три кита»|PersonalAcc=40702810138250123017|BankName=ОАО "БАНК"'
    "|BIC=044525225|CorrespAcc=30101810965770000413|"
)
# aserdobintsev/GOST56042, Tests/GOST56042Tests/GOST56042StringTests.swift: keys in any case.
SWIFT_MIXED_CASE = (
    'ST00012|nAmE=ООО "Ромашка"|peRSonALacC=40702810138250123017|BANKNAME=ОТДЕЛЕНИЕ N1234 ПАО '
    "БАНК|BIC=044525225|correspacc=30101810400000000225|PAYEEinn=1234567890|lastName=Иванов И.И"
    "|payerAddress=пр. Ленина, дом 1|Purpose=За лучшие услуги|sUM=456789"
)
# aserdobintsev/GOST56042, Tests/GOST56042Tests/win1251.txt: windows-1251 bytes, and a stray «§»
# (0xA7) glued to the Sum before the final line feed.
SWIFT_WIN1251 = (
    'ST00011|Name=ООО «Три кита»|PersonalAcc=40702810138250123017|BankName=ОАО "БАНК"'
    "|BIC=044525225|CorrespAcc=30101810400000000225|PayeeINN=6200098765|LastName=Иванов"
    "|FirstName=Иван|MiddleName=Иванович|Purpose=Оплата членского взноса"
    "|PayerAddress=г.Рязань ул.Ленина д.10 кв.15|Sum=100000§\n"
).encode("cp1251")
# ofstudio/qr-gost-56042, qr-gost_test.go: «&» in the purpose, nested quotes in the bank's name.
DANCE_SPB = (
    'ST00012|Name=АНО "Танцующий Петербург"|PersonalAcc=40703810990200000032'
    '|BankName=ПАО "БАНК "САНКТ-ПЕТЕРБУРГ"|BIC=044030790|CorrespAcc=30101810900000000790'
    "|KPP=780201001|PayeeINN=7802532605|Purpose=Оплата за участие в Swing & Snow 2022 REG "
    "6821320/1106|Sum=225000"
)
# Code index id 71475528770 («Реальная строка с квитанции пилотного дома»): a real Rostov
# housing receipt, lower-case keys, an empty PayerINN, a Category of «001».
ROSTOV_UK = (
    'ST00011|Name=ООО "УК Трианон"|PersonalAcc=40702810952090030727|BankName=ПАО Сбербанк'
    "|BIC=046015602|CorrespAcc=30101810600000000602|Sum=381630|Purpose=Оплата за ЖКУ"
    "|PayeeINN=6168108630|PayerINN=|KPP=616801001|lastName=Крутых|firstName=Сергей"
    "|middleName=Валерьевич|payerAddress=344038, Ростовская обл, г Ростов-на-Дону, пр-кт Ленина,"
    " д. 85, к. 3, кв. 27|persAcc=987654331|paymPeriod=042026|category=001"
)
# Code index id 3924191682 (a bank app's tests, «separatedStringWithAccount»): a real power
# supplier's receipt, a space after «Purpose=», provider fields KSK_* and «Amount» after TechCode.
KALUGA_POWER = (
    'ST00012|Name=ПАО "Калужская сбытовая компания"|PersonalAcc=40702810600180000156'
    '|BankName=Тульский филиал АБ "РОССИЯ"|BIC=047003764|CorrespAcc=30101810600000000764'
    "|PersAcc=110110581|Sum=66671|Purpose= лс 110110581 ЭЭ|PayeeINN=4029030252|KPP=402801001"
    "|TechCode=02|Category=1|KSK_PeriodPok=202208|KSK_Type=1|Amount=6835|Any=123"
)
# Same file («separatedStringWithPhone»): Moscow's МГТС, lower-case phone/flat/sum, «sum=000».
MGTS = (
    "ST00012|Name=ПАО МГТС|PersonalAcc=40702810800020106631|BankName= СБЕРБАНК РОССИИ ПАО"
    "|BIC=044525225|CorrespAcc=30101810400000000225|PayeeINN=7710016640|phone=681361979"
    "|flat=716|sum=000"
)
# Same file («separatedStringWithAbNum»): МТК, a provider's «numAbo», a numeric ServiceName.
MTK = (
    "ST00012|Name=АО Московская телекоммуникационная корпорация"
    "|PersonalAcc=40702810038180120552|BankName=ПАО СБЕРБАНК|BIC=044525225"
    "|CorrespAcc=30101810400000000225|PayeeINN=7717020170|KPP=772601001|numAbo=33694934"
    "|Contract=33694934|Purpose=по договору № 33694934|ServiceName=114323159985|Sum=57200"
)
# Code index id 48318544374 (a Yii QR widget's example): Мосэнергосбыт, lower-case persAcc /
# paymPeriod, a «regType».
MOSENERGOSBYT = (
    'ST00012|Name=АО "Мосэнергосбыт"|PersonalAcc=40702810338360027201'
    '|BankName=ПАО "Сбербанк России"|BIC=044525225|CorrespAcc=30101810400000000225'
    "|Purpose=Оплата электроэнергии|Sum=61069|persAcc=2287008779|paymPeriod=022021|regType=6"
    "|TechCode=02|PayeeINN=7736520080|KPP=997650001"
)
# Code index id 22336756998 (a Go parser's comment): Lipetsk РСО, «PaymPeriod=0919» (MMYY),
# a trailing separator.
LIPETSK = (
    "ST00012|Name=РСО АО ЛГЭК|PersonalAcc=40702810435000104067"
    "|BankName=Липецкое отд № 8593 ПАО Сбербанк|BIC=044206604|CorrespAcc=30101810800000000604"
    "|PayeeINN=4825066916|KPP=482501001|Sum=26411|PersAcc=100050001238|PaymPeriod=0919"
    "|TechCode=01|"
)
# open-condo-software/condo, apps/condo/domains/billing/utils/receiptQRCodeUtils.spec.js (an
# earlier version, code index id 18066051759): no Purpose, PayeeINN with a leading zero.
CONDO_EKOGRAD = (
    "ST00011|Name=ООО «УК ЭкоГрад»|PersonalAcc=40902830202010056769|BankName=ПАО СБЕРБАНК"
    "|BIC=048073601|CorrespAcc=30102110300320000206|PayeeINN=0524967340|persAcc=5018435412"
    "|payerAddress=ул.Ивана Спатара, д.14, кв.32|lastName=Иванов|firstName=Иван"
    "|middleName=Иванович|Sum=12351"
)
# Code index id 44453494255 (a C# receipt printer for «Т Плюс»): line breaks inside the payload,
# the misspelt «FitstName», and the Sum of `Convert.ToDouble(...) * 100` printed by .NET in a
# Russian culture — a float artefact with a decimal comma.
T_PLUS = (
    "ST00011|Name=Мордовский филиал ПАО 'Т Плюс'|PersonalAcc=40702810748000001123|\r\n"
    "BankName=Пензенское отделение № 8624 ПАО 'Сбербанк России' г. Пенза|BIC=045655635"
    "|CorrespAcc=30101810000000000635|PayeeINN=6315376946|\r\nCategory=7|PersAcc=1020304"
    "|LastName=Иванов|FitstName=Иван|MiddleName=Иванович\r\n|PayerAddress=Ленина, дом 1, кв. 2"
    "|Sum=28,999999999999996"
).encode("cp1251")
# Code index id 16899512407 (a C# Росреестр receipt): a space after «|», CorrespAcc of 20 zeros,
# a Cyrillic letter inside the name's л/с, PayerIdType in words.
ROSREESTR_PERM = (
    "ST00012|Name=УФК по Пермскому краю (филиал ФГБУ «ФКП Росреестра» по Пермскому краю л/с "
    "20566У86680)| PersonalAcc=40102810145370000048|BankName=Отделение Пермь|BIC=015773997"
    "|CorrespAcc=00000000000000000000|PayeeINN=7705401340|KPP=590343001"
    "|CBC=00000000000000000510|OKTMO=57701000|LastName=Иванов|Purpose=Консультации, в том числе "
    "НДС. По договору 12|PayerAddress=Пермь|PayerIdType=ПАСПОРТ РФ|PayerIdNum=5700123456"
    "|Sum=150000"
)
# Code index id 68456090095 (a test «как на sbqr.ru»): OKTMO=0, a CBC of zeros, PayerIdType.
SBQR = (
    "ST00012|Name=УФК по г. Москве|PersonalAcc=03100643000000017300"
    "|BankName=ГУ Банка России по ЦФО|BIC=004525988|CorrespAcc=40102810545370000003"
    "|PayeeINN=7701234567|KPP=770101001|lastName=Крылов Владимир Георгиевич"
    "|payerAddress=Ореховый проезд|PayerIdType=Паспорт РФ|PayerIdNum=1234567890"
    "|PayerINN=773702700000|Purpose=Назначение 1|CBC=00000000000131131022|OKTMO=0|Sum=150000"
)
# Code index id 4625993520 (an ASP.NET «sberbank» page): every field printed even when empty,
# lower-case «uin», an empty «docIdx», «Field101» etc., and «Sum =» with a space before «=».
SBER_PAGE_FINE = (
    "ST00012|Name=УФК по г. Москве (ГУ МВД России по г. Москве)"
    "|PersonalAcc=03100643000000017300|BankName=ГУ Банка России по ЦФО|BIC=004525988"
    "|CorrespAcc=40102810545370000003|PayeeINN=7707089101|KPP=770731005"
    "|CBC=18811601123010001140|OKTMO=45380000|PayerINN=|lastName=|firstName=|middleName="
    "|payerAddress=|paymTerm=|Field101=|Field106=|Field110=|uin=18810177200104519116|docIdx="
    "|Sum =50000"
)
# Code index id 28466648975 (a PHP fine receipt): «0» for unknown payer fields, «TechCode=3».
PHP_FINE = (
    "ST00012|Name=УФК по г. Москве (ГУ МВД России по г. Москве)"
    "|PersonalAcc=03100643000000017300|BankName=ГУ Банка России по ЦФО|BIC=004525988"
    "|CorrespAcc=40102810545370000003|PayeeINN=7707089101|KPP=770731005"
    "|CBC=18811601123010001140|OKTMO=45380000|LastName=Иванов|FirstName=Иван"
    "|MiddleName=Иванович|PayerAddress=0|PayerIdType=0|PayerIdNum=0|PayerINN=0"
    "|UIN=18810136161108008161|Purpose=Штраф|Sum=50000|TechCode=3"
)
# Code index id 14180141357 (a Flutter app's support payment): a date («до 01.01.2025») in the
# purpose, TechCode=15, Sum as «${sum}00».
TINKOFF_IP = (
    "ST00012|Name=ИП Никитин Павел Александрович|PersonalAcc=40802810900002686224"
    "|BankName=АО «Тинькофф Банк»|BIC=044525974|CorrespAcc=30101810145250000974"
    "|PayeeINN=667341199471|Purpose=Оплата техподдержки электронных табелей посещамости для "
    "МБДОУ № 5 ИНН 6670000000 до 01.01.2025|TechCode=15|Sum=150000"
)
# Code index id 49808407736 (a Laravel invoice): empty LastName/FirstName, «PayerAddress=-»,
# «PayeeKPP», and the invoice's date in the purpose.
VERNER = (
    'ST00012|Name=ООО "ВЕРНЕР ЛОГИСТИКА"|PersonalAcc=40702810455000024248'
    "|BankName=СЕВЕРО-ЗАПАДНЫЙ БАНК ПАО СБЕРБАНК|BIC=044030653|CorrespAcc=30101810500000000653"
    "|LastName=|FirstName=|Purpose=Счёт на оплату № 1207 от 14.03.2023|PayeeINN=7802895380"
    "|PayeeKPP=780201001|PayerAddress=-|Sum=1250000"
)
# Code index id 44392137130 (a C# shop): «Sum={sum}.00» — rubles with a decimal point.
SHOP_RUBLES = (
    "ST00012|Name=ООО Вейп|PersonalAcc=40702810455000024248|BankName=ПАО СБЕРБАНК"
    "|BIC=044525225|CorrespAcc=30101810400000000225|PayeeINN=7802895380|KPP=780201001"
    "|Sum=1500.00|Purpose=Тестовая проверка QR|Contract=1111"
)
# aserdobintsev/GOST56042 GOST56042StringTests.swift testNullFieldReturnNil: «Null» as a value.
NULLS = (
    'ST00012|Name=ООО "АйТи Компания"|PersonalAcc=40702810138250123017'
    "|BankName=ОТДЕЛЕНИЕ №1234 ПАО БАНК|BIC=044525225|CorrespAcc=30101810400000000601"
    "|PayeeINN=7713457897|Sum=Null|UIN=Null"
)
# Code index id 20170962550 (a Python СНТ receipt): no CorrespAcc, lower-case lastName etc. before
# BIC, quotes glued to a word.
SNT = (
    'ST00012|Name=Садоводческое некомерческое товарищество"Приморскре"'
    '|PersonalAcc=40703810416020000062|BankName=Центрально-Черназемный филиал ООО "Экспобанк"'
    "|lastName=Петров|firstName=Пётр|middleName=Петрович|BIC=043807330|KPP=461101001"
    "|PayeeINN=4631011178|Sum=150000"
)
# The 26-digit UIN a real school receipt printed is covered elsewhere; here a fine whose UIN is
# the REFERENCE's invalid public one (control digit should be 7).
FINE_BAD_UIN = (
    "ST00012|Name=УФК по г. Москве (ГУ МВД России по г. Москве)"
    "|PersonalAcc=03100643000000017300|BankName=ГУ Банка России по ЦФО|BIC=004525988"
    "|CorrespAcc=40102810545370000003|PayeeINN=7707089101|KPP=770731005"
    "|CBC=18811601123010001140|OKTMO=45380000|UIN=18810177200718000123|Sum=50000|TechCode=03"
)


def _data(payload: str | bytes) -> bytes:
    return payload if isinstance(payload, bytes) else payload.encode()


# name → (payload, payee, kopecks or None, uin or None, problems)
REAL = {
    "qrcoder": (QRCODER, "ООО «Три кита»", None, None, (ReceiptProblem.PAYEE_INN,)),
    "swift_mixed_case": (SWIFT_MIXED_CASE, 'ООО "Ромашка"', 456789, None, ()),
    "swift_win1251": (SWIFT_WIN1251, "ООО «Три кита»", None, None, (ReceiptProblem.SUM,)),
    "dance_spb": (DANCE_SPB, 'АНО "Танцующий Петербург"', 225000, None, ()),
    "rostov_uk": (ROSTOV_UK.encode("cp1251"), 'ООО "УК Трианон"', 381630, None, ()),
    "kaluga_power": (KALUGA_POWER, 'ПАО "Калужская сбытовая компания"', 66671, None, ()),
    "mgts": (MGTS, "ПАО МГТС", None, None, ()),
    "mtk": (MTK, "АО Московская телекоммуникационная корпорация", 57200, None, ()),
    "mosenergosbyt": (MOSENERGOSBYT, 'АО "Мосэнергосбыт"', 61069, None, ()),
    "lipetsk": (LIPETSK, "РСО АО ЛГЭК", 26411, None, ()),
    "condo_ekograd": (CONDO_EKOGRAD.encode("cp1251"), "ООО «УК ЭкоГрад»", 12351, None, ()),
    "t_plus": (T_PLUS, "Мордовский филиал ПАО 'Т Плюс'", None, None, (ReceiptProblem.SUM,)),
    "rosreestr_perm": (
        ROSREESTR_PERM,
        "УФК по Пермскому краю (филиал ФГБУ «ФКП Росреестра» по Пермскому краю л/с 20566У86680)",
        150000,
        None,
        (),
    ),
    "sbqr": (SBQR, "УФК по г. Москве", 150000, None, ()),
    "sber_page_fine": (
        SBER_PAGE_FINE,
        "УФК по г. Москве (ГУ МВД России по г. Москве)",
        50000,
        "18810177200104519116",
        (),
    ),
    "php_fine": (
        PHP_FINE,
        "УФК по г. Москве (ГУ МВД России по г. Москве)",
        50000,
        "18810136161108008161",
        (),
    ),
    "verner": (VERNER, 'ООО "ВЕРНЕР ЛОГИСТИКА"', 1250000, None, ()),
    "shop_rubles": (SHOP_RUBLES, "ООО Вейп", 150000, None, ()),
    # «Null» is a generator's «not printed» (review 33d): the sum is asked, no UIN is expected.
    "nulls": (NULLS, 'ООО "АйТи Компания"', None, None, ()),
    "snt": (SNT, 'Садоводческое некомерческое товарищество"Приморскре"', 150000, None, ()),
    "tinkoff_ip": (TINKOFF_IP, "ИП Никитин Павел Александрович", 150000, None, ()),
}


@pytest.mark.parametrize("name", REAL)
def test_real_payload_reads_payee_amount_and_uin(name: str) -> None:
    """Payee, kopecks and UIN as printed, and exactly the problems a resident is told about."""
    payload, payee, kopecks, uin, problems = REAL[name]
    check = validate(parse_payment_qr(_data(payload)))
    assert check.qr.name == payee
    assert check.amount == kopecks
    assert check.uin == uin
    assert check.problems == problems


# ---------------------------------------------------------------- through the photo flow


async def _photo(harness: Harness, login: str, payload: str | bytes):
    chat = await linked(harness, login)
    reply = await chat.send_photo(qr_png(_data(payload)))
    return chat, reply.text


async def test_a_fine_with_a_lower_case_uin_and_a_spaced_sum_key_pays_the_fine(
    harness: Harness,
) -> None:
    chat, text = await _photo(harness, "demo-standard", SBER_PAGE_FINE)
    assert "УИН: 18810177200104519116" in text and nb("Сумма: 500,00 ₽") in text
    await chat.press("Оплатить")
    assert "К оплате 1 счёт" in chat.last_text  # the city's charge, not a payment by requisites
    assert "Штраф ГИБДД" in chat.last_text


async def test_ampersand_and_nested_quotes_are_shown_and_paid_as_printed(
    harness: Harness,
) -> None:
    chat, text = await _photo(harness, "demo-full", DANCE_SPB)
    assert "Swing & Snow" in text and 'Получатель: АНО "Танцующий Петербург"' in text
    await chat.press("Оплатить")
    assert "Оплата по реквизитам" in chat.last_text
    assert nb("Итого: 2 250,00 ₽") in chat.last_text


async def test_a_float_sum_with_a_decimal_comma_is_asked_not_guessed(harness: Harness) -> None:
    chat, text = await _photo(harness, "demo-full", T_PLUS)
    assert "Получатель: Мордовский филиал ПАО 'Т Плюс'" in text  # windows-1251, CRLF inside
    assert "Не смог прочитать: сумма" in text and "Сумма: " not in text
    await chat.press("Оплатить")
    assert "Сколько заплатить" in chat.last_text


async def test_an_epd_receipt_without_a_period_is_matched_to_the_bill_by_amount(
    harness: Harness,
) -> None:
    """Guard for the test below: the same receipt without the due date pays the bill."""
    chat, _ = await _photo(harness, "demo-standard", _epd_receipt(purpose="Оплата ЖКУ"))
    await chat.press("Оплатить")
    assert "К оплате 1 счёт" in chat.last_text


def _epd_receipt(*, purpose: str) -> str:
    # demo-standard's unpaid ЕПД: payer code 8215604937, 6 237,90 ₽, last month's period.
    return (
        "ST00012|Name=ЕИРЦ «Городской расчётный центр»|PersonalAcc=40702810938000012345"
        "|BankName=ПАО СБЕРБАНК|BIC=044525225|CorrespAcc=30101810400000000225"
        f"|PayeeINN=7701234567|PersAcc=8215604937|Sum=623790|Purpose={purpose}|TechCode=02"
    )


# Was (review 30): period_in_text reads the month of a date (до 01.01.2025) in Purpose as the
# period
async def test_a_date_in_the_purpose_is_not_shown_or_sent_as_the_period(
    harness: Harness,
) -> None:
    # TINKOFF_IP: «… до 01.01.2025» is the end of a support contract, not a payment period; the
    # receipt has no PaymPeriod. Before the fix the card said «Период: 01.2025» and the
    # requisites sent to the city carried period 01.2025.
    chat, text = await _photo(harness, "demo-full", TINKOFF_IP)
    assert "Период:" not in text
    await chat.press("Оплатить")
    assert "Период:" not in chat.last_text


# Was (review 30): a due date in an ЕПД purpose becomes the period: the bill is not matched,
# paid twice
async def test_an_epd_receipt_with_a_due_date_in_the_purpose_pays_the_residents_bill(
    harness: Harness,
) -> None:
    # The same shape as TINKOFF_IP/VERNER (a date in the purpose), on the resident's ЕПД: the
    # payer code and amount are those of the unpaid bill. Before the fix «оплатить до <date>»
    # made the period next month's, match_receipt found no bill of that period, and the receipt
    # was paid by requisites while the bill stayed unpaid in «Мои счета».
    due = (harness.clock().date() + timedelta(days=10)).strftime("%d.%m.%Y")
    chat, _ = await _photo(
        harness, "demo-standard", _epd_receipt(purpose=f"Оплата ЖКУ, оплатить до {due}")
    )
    await chat.press("Оплатить")
    assert "К оплате 1 счёт" in chat.last_text
    assert "Оплата по реквизитам" not in chat.last_text


# Was (review 30): a fine whose printed UIN is invalid is offered for payment by requisites
# without it
async def test_a_fine_with_an_invalid_uin_is_not_paid_without_its_uin(harness: Harness) -> None:
    # A treasury payee (CBC 188…, TechCode 03) with a UIN that fails the control digit. The UIN
    # is what credits the payment to the fine (Minfin order 107н: «0» only when there is none);
    # paid without it the money reaches the treasury unassigned and the fine stays unpaid. Before:
    # «Не смог прочитать: УИН.» and «Оплатить» goes straight to «Оплата по реквизитам» — 500 ₽
    # with no UIN. Expected: no payment by requisites; the resident is asked to type the UIN.
    chat, text = await _photo(harness, "demo-standard", FINE_BAD_UIN)
    assert "УИН" in text
    if "Оплатить" in chat.buttons:
        await chat.press("Оплатить")
    assert "Оплата по реквизитам" not in chat.last_text
    assert "Ввести УИН" in chat.buttons or "Введите УИН" in chat.last_text
