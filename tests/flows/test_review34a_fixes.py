"""Review 34a: the review 33c/33d/33e fixes attacked — the capital repair rule of receipt
matching, «null» and direction marks in a QR code, UINs typed with labels and stops, the
lost-send settle, Telegram charges no linked resident owns, and the webhook's edges."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from bot.web import WEBHOOK_PATH
from domain.uin import _VALUES, UIN_LENGTHS, check_uin, with_control_digit
from sandbox.open311_api import REQUESTS_KEY
from tests.flows.conftest import Harness
from tests.flows.receipt_codes import qr_png
from tests.flows.test_linking_refusals import callback, login_redirect, open_login
from tests.flows.test_lost_send_settled import SETTLED, lost_send
from tests.flows.test_payments import ledger
from tests.flows.test_receipt_photo import linked
from tests.flows.test_reports import ARBAT_10, photo, start_pothole
from tests.flows.test_review31_reports_faults import (
    at_city,
    calm,
    poll_and_deliver,
    press_send_with_faults,
)
from tests.flows.test_review33d_receipts import (
    EIRC,
    STANDARD_PAYER,
    _bill,
    _paid_requisites,
    _period_code,
    _photo,
)
from tests.flows.test_review33e_web import (
    SECRET,
    bots_own_page,
    greetings,
    hook,
    no_tracebacks,
    post,
    start_update,
    unlink_in_chat,
)
from tests.flows.test_telegram_payments import (
    invoice_for_first_bill,
    pre_checkout,
    successful_payment,
    tg_harness,
)
from tests.flows.test_telegram_refund import refund_events, refund_harness
from tests.money_text import nb

__all__ = ["hook", "refund_harness", "tg_harness"]  # fixtures used here

# ---- receipts: the capital repair rule --------------------------------------------------------


def _epd_with(purpose: str, period: str, amount: int) -> str:
    return (
        f"{EIRC}|Purpose={purpose}|PersAcc={STANDARD_PAYER}|PaymPeriod={_period_code(period)}"
        f"|Sum={amount}|TechCode=02"
    )


# Found: domain/payments.py `match_receipt` calls any receipt whose Purpose mentions капремонт a
# contribution, even the housing ЕПД's own code that says it is «без капремонта» (or includes it):
# it no longer matches the ЕПД bill, is paid by requisites and the bill stays unpaid in «Мои счета».
# Was (review 34a): match_receipt reads «капремонт» anywhere in the ЕПД's Purpose as a contribution:
# the ЕПД is paid by requisites and its bill stays unpaid (a double payment waiting)
@pytest.mark.parametrize(
    "purpose",
    ["Оплата ЖКУ без учёта взноса на капремонт", "Оплата ЖКУ, включая взнос на капитальный ремонт"],
    ids=["without", "including"],
)
async def test_an_epd_whose_purpose_names_capital_repair_still_pays_the_epd_bill(
    harness: Harness, purpose: str
) -> None:
    epd = _bill(harness, "B-2001")
    chat, _card = await _photo(
        harness, "demo-standard", _epd_with(purpose, epd.period or "", epd.amount)
    )
    await chat.press("Оплатить")
    assert "Оплата по реквизитам" not in chat.last_text, chat.last_text
    assert "К оплате 1 счёт" in chat.last_text and "ЕПД за" in chat.last_text


# Found: `_CAPITAL_REPAIR` (domain/payments.py) knows «капитальн… ремонт», «капремонт» and «ФКР»,
# not the abbreviation «кап. ремонт» / «кап.ремонта» receipts print to fit Name's 160 characters:
# the fund's code is again paid as the ЕПД (the review 33d defect, back by another spelling).
# Was (review 34a): _CAPITAL_REPAIR misses «кап. ремонт»: the fund's contribution code pays the ЕПD
# bill
async def test_a_capital_repair_code_spelled_kap_dot_remont_pays_the_fund_not_the_epd(
    harness: Harness,
) -> None:
    epd = _bill(harness, "B-2001")
    receipt = (
        "ST00012|Name=НКО «Фонд кап. ремонта МКД г. Москвы»|PersonalAcc=40604810138000000001"
        "|BankName=ПАО СБЕРБАНК|BIC=044525225|CorrespAcc=30101810400000000225"
        f"|PayeeINN=7701090559|KPP=770101001|Purpose=Взнос на кап.ремонт|PersAcc={STANDARD_PAYER}"
        f"|PaymPeriod={_period_code(epd.period or '')}|Sum=150000|TechCode=02"
    )
    chat, _card = await _photo(harness, "demo-standard", receipt)
    await chat.press("Оплатить")
    assert "ЕПД за" not in chat.last_text, chat.last_text
    assert nb("Итого: 1 500,00 ₽") in chat.last_text


async def test_an_upper_case_fund_receipt_of_a_paid_epd_month_is_not_called_paid(
    harness: Harness,
) -> None:
    """Guard: «ФОНД КАПИТАЛЬНОГО РЕМОНТА» in capitals and «капремонт» with ё-less spelling are the
    contribution, never the paid ЕПД of the same month."""
    paid = _bill(harness, "B-2005")
    receipt = (
        "ST00012|Name=ФОНД КАПИТАЛЬНОГО РЕМОНТА МКД|PersonalAcc=40604810138000000001"
        "|BankName=ПАО СБЕРБАНК|BIC=044525225|CorrespAcc=30101810400000000225"
        f"|PayeeINN=7701090559|Purpose=ВЗНОС|PersAcc={STANDARD_PAYER}"
        f"|PaymPeriod={_period_code(paid.period or '')}|Sum=150000"
    )
    chat, _card = await _photo(harness, "demo-standard", receipt)
    await chat.press("Оплатить")
    assert "уже оплачено" not in chat.last_text
    assert "Оплата по реквизитам" in chat.last_text


# ---- receipts: «null» and direction marks -------------------------------------------------------


async def _again(chat: Any, data: str) -> str:
    """Another receipt photo in the same chat, from the main menu."""
    await chat.send("/start")
    return (await chat.send_photo(qr_png(data.encode()))).text


async def test_a_null_copy_of_the_sum_takes_the_printed_sum_and_nan_asks_it(
    harness: Harness,
) -> None:
    chat, card = await _photo(harness, "demo-full", f"{EIRC}|Sum=null|Purpose=Оплата|Sum=100000")
    assert nb("Сумма: 1 000,00 ₽") in card
    card = await _again(chat, f"{EIRC}|Purpose=Оплата|Sum=NaN")
    assert "NaN" not in card and "Сумма:" not in card
    await chat.press("Оплатить")
    assert "Сколько заплатить" in chat.last_text
    assert _paid_requisites(harness) == []


# Found: domain/payment_qr.py `_DROPPED` lists U+200E/F, U+202A-202E and U+2066-2069 but not
# U+061C ARABIC LETTER MARK, a direction mark domain/typed_text.py drops: it stays in the payee's
# and the bank's names on the card and the confirmation (digits after it read right to left).
# Was (review 34a): payment_qr._DROPPED misses U+061C (Arabic letter mark): it reaches the
# confirmation
async def test_an_arabic_letter_mark_in_the_payee_or_bank_is_not_shown(harness: Harness) -> None:
    receipt = (
        (
            f"{EIRC}|Sum=100000|Purpose=Оплата"
            "|LastName=Иванов\u061c|PayerAddress=ул. Ленина, д. \u061c12 кв. 34"
        )
        .replace("Name=ЕИРЦ", "Name=\u061cЕИРЦ 12 34")
        .replace("BankName=ПАО", "BankName=\u061cПАО")
    )
    chat, card = await _photo(harness, "demo-full", receipt)
    await chat.press("Оплатить")
    for shown in (card, chat.last_text):
        assert "\u061c" not in shown, ascii(shown)


async def test_an_sbp_link_with_spaces_and_capitals_is_told_as_sbp_and_one_in_gost_is_gost(
    harness: Harness,
) -> None:
    chat, text = await _photo(harness, "demo-full", "  HTTPS://QR.NSPK.RU/AS10006?type=01  ")
    assert "СБП" in text and "не платёжный" not in text
    text = await _again(chat, "https://qr.nspk.ru.evil.example/AS1/")
    assert "СБП" not in text and "не платёжный" in text
    gost = f"{EIRC}|Sum=100000|Purpose=https://qr.nspk.ru/AS1000670LSS7DN18SJQ"
    card = await _again(chat, gost)
    assert nb("Сумма: 1 000,00 ₽") in card and "СБП" not in card


# ---- a typed UIN --------------------------------------------------------------------------------

_UIN_CHARS = sorted(_VALUES)


@st.composite
def valid_uins(draw: st.DrawFn) -> str:
    length = draw(st.sampled_from(UIN_LENGTHS))
    body = draw(st.text(alphabet=_UIN_CHARS, min_size=length - 1, max_size=length - 1))
    uin = with_control_digit(body)
    return uin if set(uin) != {"0"} else with_control_digit("1" + body[1:])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(uin=valid_uins(), label=st.sampled_from(["УИН ", "УИН: ", "уин№", "UIN ", "№ ", ""]))
def test_every_valid_uin_is_read_the_same_with_a_label_before_it(uin: str, label: str) -> None:
    expected = check_uin(uin)
    assert expected.ok
    assert check_uin(label + uin) == expected


# Found: domain/uin.py `normalize` strips a stop only when what is left is a whole UIN, before the
# label is taken off: «УИН 1881….» (as an SMS ends its sentence) is 24 characters then, so
# neither goes, and a valid UIN is told «недопустимые символы».
# Was (review 34a): uin.normalize strips a trailing stop before the label: «УИН <uin>.» is refused
@settings(max_examples=100, deadline=None)
@given(uin=valid_uins(), label=st.sampled_from(["УИН ", "УИН: ", "UIN "]))
def test_a_valid_uin_with_a_label_and_a_stop_is_read(uin: str, label: str) -> None:
    assert check_uin(f"{label}{uin}.") == check_uin(uin)


# Found: domain/uin.py `normalize` takes the label off only when a whole UIN is left: a UIN with
# one digit missing, pasted with its label, is counted with the label's three letters, and the
# resident who typed 19 digits is told «В УИН 22 знака».
# Was (review 34a): uin.normalize keeps the label on a short UIN: 19 digits after «УИН» are told as
# 22 characters, or as «лишние символы» after «УИН:»
@pytest.mark.parametrize("label", ["УИН ", "УИН: "])
async def test_a_labelled_uin_missing_a_digit_is_told_its_own_length(
    harness: Harness, label: str
) -> None:
    chat = await linked(harness, "demo-standard")
    await chat.press("Добавить счёт по УИН")
    reply = await chat.send(label + "1881013616110800816")
    assert "В УИН 19 " in reply.text, reply.text


@settings(max_examples=500, deadline=None)
@given(text=st.text())
def test_any_typed_text_is_checked_without_raising_and_never_gets_longer(text: str) -> None:
    checked = check_uin(text)
    if checked.ok:
        assert len(checked.uin) in UIN_LENGTHS
        assert check_uin(checked.uin) == checked  # shown as the number it is


# ---- «Наш город»: the lost-send settle --------------------------------------------------------


# Found: domain/reporting.py `_made_by` compares words and photo only when the draft has them: a
# draft with neither matches a site report of the same theme and place that has both, so a send
# that never reached the city is POSTed again behind the resident's back (a second report) and
# told «отправлено: город его получил».
# Was (review 34a): _made_by skips the words/photo check for a draft without them: a site report
# with words and a photo settles a send that never arrived (a duplicate made)
async def test_a_site_report_with_words_and_a_photo_does_not_settle_a_bare_lost_send(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat, _ = await lost_send(harness, monkeypatch, made=False)
    assert harness.app is not None
    async with harness.app.uow_factory() as uow:
        draft = await uow.drafts.get(chat.chat_id)
    assert draft is not None and draft.point is not None and not draft.description
    book = harness.sandbox.app[REQUESTS_KEY]
    account = (await harness.stored_resident(chat)).city_account_id  # type: ignore[union-attr]
    seed = next(r for r in book.all() if r.submission.theme.code == draft.theme_code)
    location = dataclasses.replace(
        seed.submission.location, lat=draft.point.lat, long=draft.point.long
    )
    book.create(
        dataclasses.replace(
            seed.submission,
            location=location,
            account_id=account,
            description="Яма у третьего подъезда, глубина сантиметров двадцать",
            media=("https://example.org/site-photo.jpg",),
        )
    )
    made = at_city(harness)
    await poll_and_deliver(harness, times=2)
    assert at_city(harness) == made, "the draft was sent behind the resident's back"
    assert not any(SETTLED in t for t in chat.history), chat.history[-3:]


async def test_a_lost_send_with_words_and_a_photo_settles_once_whatever_spaces_the_city_keeps(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Guard: the send's own report, its words given back with other spacing, is settled once."""
    chat = await start_pothole(harness)
    await chat.send_location(*ARBAT_10)
    await chat.send_photo(photo())
    await chat.press("Дальше")
    await chat.send("  Яма  на дороге,\n глубокая ")
    faults = {"fail_after_processing": 5}
    calm(await press_send_with_faults(harness, chat, monkeypatch, faults))
    request = harness.sandbox.app[REQUESTS_KEY].all()[-1]
    request.submission = dataclasses.replace(
        request.submission, description="Яма на дороге, глубокая"
    )
    harness.clock.advance(6 * 60)
    made = at_city(harness)
    await poll_and_deliver(harness, times=3)
    assert at_city(harness) == made
    told = [t for t in chat.history if SETTLED in t and request.id in t]
    assert len(told) == 1, chat.history[-3:]


# ---- Telegram charges no linked resident owns -------------------------------------------------


async def _unowned_payment(chat: Any, payload: str, amount: int, charge: str, currency: str) -> str:
    reply = await chat.feed(
        {
            "message": {
                "message_id": 20_000 + len(chat.telegram.calls),
                "date": 0,
                "chat": {"id": chat.chat_id, "type": "private", "first_name": "Мария"},
                "from": {"id": chat.chat_id, "is_bot": False, "first_name": "Мария"},
                "successful_payment": {
                    "currency": currency,
                    "total_amount": amount,
                    "invoice_payload": payload,
                    "telegram_payment_charge_id": charge,
                    "provider_payment_charge_id": "yk-" + charge,
                },
            }
        }
    )
    return reply.text


async def test_the_same_unowned_charge_delivered_twice_is_one_dashboard_event(
    refund_harness: Harness,
) -> None:
    chat, bill, payload = await invoice_for_first_bill(refund_harness)
    assert (await pre_checkout(chat, payload, bill["amount"])).ok is True
    await unlink_in_chat(chat)
    first = await successful_payment(chat, payload, bill["amount"], "tg-34a-twice")
    second = await successful_payment(chat, payload, bill["amount"], "tg-34a-twice")
    assert "Деньги вернём" in first and second
    events = await refund_events(refund_harness)
    assert [(e["charge_id"], e["amount"]) for e in events] == [("tg-34a-twice", bill["amount"])]
    assert await ledger(refund_harness) == []


# Found: handlers/telegram_pay.py `_taken` shows a non-RUB charge as «{total_amount} {currency}»,
# the smallest units Telegram gives: 10.00 USD is told «Платёж на 1000 USD получен».
# Was (review 34a): _taken prints a foreign charge in its smallest units: 10 USD is told as «1000
# USD»
async def test_an_unowned_charge_in_another_currency_is_told_at_its_real_size(
    refund_harness: Harness,
) -> None:
    chat, _bill, payload = await invoice_for_first_bill(refund_harness)
    await unlink_in_chat(chat)
    text = await _unowned_payment(chat, payload, 1000, "tg-34a-usd", "USD")
    events = await refund_events(refund_harness)
    assert [(e["taken"], e["currency"]) for e in events] == [(1000, "USD")]
    assert "1000 USD" not in text and "1 000 USD" not in text, text


# Found: `_owe_back_unowned` (handlers/telegram_pay.py) tells «Деньги вернём: поддержка уже знает»
# whatever `telegram_charge_unowned` answers; with no support chat configured it wrote nothing
# (domain/support.py `_post` returns False), so the money is owed with only a log line.
# Was (review 34a): with no support chat the unowned charge is recorded nowhere yet the resident is
# told «поддержка уже знает»
async def test_an_unowned_charge_without_a_support_chat_does_not_say_support_knows(
    tg_harness: Harness,
) -> None:
    chat, bill, payload = await invoice_for_first_bill(tg_harness)
    await unlink_in_chat(chat)
    text = await successful_payment(chat, payload, bill["amount"], "tg-34a-nodesk")
    assert text and "зачислен" not in text
    assert "поддержка уже знает" not in text.lower(), text


# ---- the webhook and the callback ---------------------------------------------------------------


async def _raw_post(harness: Harness, secret: bytes) -> int:
    """A webhook POST written by hand: the header's bytes as given (not UTF-8)."""
    assert harness.app is not None
    host, port = harness.app.web_url.split("//")[1].split(":")
    body = b'{"update_id": 1}'
    reader, writer = await asyncio.open_connection(host, int(port.rstrip("/")))
    writer.write(
        b"POST " + WEBHOOK_PATH.encode() + b" HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nX-Telegram-Bot-Api-Secret-Token: " + secret + b"\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body
    )
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 30)
    writer.close()
    return int(status_line.split()[1])


# Found: bot/web.py `telegram_webhook` encodes the header with `secret.encode()`; aiohttp reads
# header bytes that are not UTF-8 with surrogateescape, so the encode raises UnicodeEncodeError:
# anyone without the secret gets a 500 and aiohttp.server logs a traceback (review 33e's fix
# covered non-ASCII UTF-8 only).
# Was (review 34a): a non-UTF-8 secret header makes secret.encode() raise in telegram_webhook: a 500
@pytest.mark.parametrize(
    "secret",
    [b"\xff\xfe\xfd", SECRET.encode() + b"\xc3", "секрет".encode("cp1251")],
    ids=["not-utf8", "secret-plus-a-stray-byte", "cp1251"],
)
async def test_a_secret_header_of_bytes_that_are_not_utf8_is_refused_not_crashed(
    hook: Harness, secret: bytes
) -> None:
    structlog.configure(cache_logger_on_first_use=False)
    with capture_logs() as logs:
        status = await _raw_post(hook, secret)
    assert status == 401
    no_tracebacks(logs)
    assert greetings(hook) == 0
    assert await post(hook, start_update(hook.chat(), 700_500)) == 200


async def test_a_twenty_kib_callback_still_links_only_with_its_own_state(
    harness: Harness,
) -> None:
    structlog.configure(cache_logger_on_first_use=False)
    _chat, url = await open_login(harness)
    query = await login_redirect(harness, url)
    with capture_logs() as logs:
        status, page = await callback(harness, "state=" + "s" * 20_000 + "&code=" + "c" * 1_000)
        bots_own_page(status, page)
        assert status == 400 and "t.me" not in page
        status, page = await callback(harness, f"{query}&junk={'j' * 20_000}")
    assert status == 200 and "t.me" in page, page[:300]
    no_tracebacks(logs)
