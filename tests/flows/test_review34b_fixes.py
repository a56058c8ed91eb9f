"""Review 34b: the review 33f and 34a fixes attacked — the capital repair fund told by its payee
when a receipt is matched to a bill, a UIN read with its label and stop, the console's hold on
DATA_DIR, its questions at the end of input and its log level, and the lost-send settle when the
city gives a photo's address back in another form."""

from __future__ import annotations

import dataclasses
import os
import signal
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.payments import _capital_repair
from domain.uin import _VALUES, UIN_LENGTHS, check_uin
from sandbox import oauth
from sandbox.data import BillKind, BillStatus, CityBill
from sandbox.open311_api import REQUESTS_KEY
from tests.flows.conftest import Harness
from tests.flows.receipt_codes import qr_png
from tests.flows.test_lost_send_settled import SETTLED
from tests.flows.test_reports import ARBAT_10, photo, start_pothole
from tests.flows.test_review31_reports_faults import (
    at_city,
    calm,
    poll_and_deliver,
    press_send_with_faults,
)
from tests.flows.test_review33d_receipts import (
    CAPITAL_REPAIR,
    EIRC,
    STANDARD_PAYER,
    _bill,
    _paid_requisites,
    _period_code,
    _photo,
)
from tests.flows.test_review33f_console import FAST, LINKED, clean, console
from tests.flows.test_review34a_fixes import valid_uins
from tests.money_text import nb

__all__ = ["console"]  # a fixture used here

# ---- receipts: the capital repair fund told by its payee --------------------------------------


def _housing_receipt(name: str, period: str, amount: int) -> str:
    """The housing part of an ЕПД (TechCode 02, the flat's payer code and month), its payee
    `name` and an INN that is not the fund's."""
    return (
        EIRC.replace("Name=ЕИРЦ «Городской расчётный центр»", f"Name={name}")
        + f"|Purpose=Оплата ЖКУ|PersAcc={STANDARD_PAYER}|PaymPeriod={_period_code(period)}"
        f"|Sum={amount}|TechCode=02"
    )


# Found: domain/payments.py `_CAPITAL_REPAIR` reads «кап…ремонт» anywhere in a payee's name, with
# no word start and with the INN not the fund's: a housing payee such as a УК «Жилкапремонт» or an
# МУП «… по содержанию и капитальному ремонту жилфонда» is taken for the fund, so its ЕПД code no
# longer matches the resident's own ЕПД bill — it is paid by requisites and the bill stays unpaid.
# Was (review 34b): payments._capital_repair takes a housing payee whose name holds «кап…ремонт» for
# the fund: its ЕПД is paid by requisites and the bill stays unpaid
@pytest.mark.parametrize(
    "payee",
    ["ООО «УК Жилкапремонт»", "МУП «Служба по содержанию и капитальному ремонту жилфонда»"],
    ids=["uk-zhilkapremont", "mup-soderzhanie-i-kapremont"],
)
async def test_a_housing_payee_named_with_kap_remont_still_pays_the_epd_bill(
    harness: Harness, payee: str
) -> None:
    epd = _bill(harness, "B-2001")
    chat, _card = await _photo(
        harness, "demo-standard", _housing_receipt(payee, epd.period or "", epd.amount)
    )
    await chat.press("Оплатить")
    assert "Оплата по реквизитам" not in chat.last_text, chat.last_text
    assert "К оплате 1 счёт" in chat.last_text and "ЕПД за" in chat.last_text


@pytest.mark.parametrize(
    ("payee", "fund"),
    [
        ("ГБУ «Жилищник района Капотня»", False),
        ("ГКУ «Центр координации ГУ ИС»", False),
        ("ГБУ МФЦ города Москвы", False),
        ("ЕИРЦ «Городской расчётный центр»", False),
        ("ООО «Ремонт и сервис»", False),
        ("ТСЖ «Капитан»", False),
        ("ООО «УК Капитал-Ремонт»", False),
        ("Фонд капитального ремонта многоквартирных домов города Москвы", True),
        ("НКО «Фонд кап. ремонта МКД г. Москвы»", True),
        ("ФКР Москвы", True),
        ("Фонд капремонта", True),
    ],
)
def test_housing_payees_of_moscow_are_not_the_fund_and_the_funds_names_are(
    payee: str, fund: bool
) -> None:
    assert _capital_repair(payee) is fund


def _add_fund_bill(harness: Harness, period: str) -> CityBill:
    """demo-standard's capital repair contribution as its own city bill, the fund its provider."""
    data = harness.sandbox.app[oauth.DATA_KEY]
    epd = _bill(harness, "B-2001")
    fund = CityBill(
        id="B-2901",
        account_id=epd.account_id,
        kind=BillKind.OTHER,
        title="Взнос на капитальный ремонт",
        provider="Фонд капитального ремонта многоквартирных домов города Москвы",
        amount=150_000,
        due_date=date.today(),
        status=BillStatus.UNPAID,
        payer_code=STANDARD_PAYER,
        period=period,
    )
    data.bills.append(fund)
    return fund


async def test_with_a_fund_bill_in_the_city_each_code_of_the_epd_pays_its_own_bill(
    harness: Harness,
) -> None:
    """Guard, both directions: the fund's code pays the fund's bill, the housing code the ЕПД."""
    epd = _bill(harness, "B-2001")
    _add_fund_bill(harness, epd.period or "")
    fund_code = (
        f"{CAPITAL_REPAIR}|Purpose=Взнос на капитальный ремонт|PersAcc={STANDARD_PAYER}"
        f"|PaymPeriod={_period_code(epd.period or '')}|Sum=150000|TechCode=02"
    )
    chat, _card = await _photo(harness, "demo-standard", fund_code)
    await chat.press("Оплатить")
    assert "Взнос на капитальный ремонт" in chat.last_text, chat.last_text
    assert "ЕПД за" not in chat.last_text and "Оплата по реквизитам" not in chat.last_text
    await chat.send("/start")
    housing = _housing_receipt("ЕИРЦ «Городской расчётный центр»", epd.period or "", epd.amount)
    await chat.send_photo(qr_png(housing.encode()))
    await chat.press("Оплатить")
    assert "ЕПД за" in chat.last_text and "капитальный" not in chat.last_text
    assert nb("6 237,90 ₽") in chat.last_text
    assert _paid_requisites(harness) == []


# ---- a typed UIN --------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    uin=valid_uins(),
    label=st.sampled_from(["УИН ", "УИН:", "уин №", "UIN#", ""]),
    stop=st.sampled_from(["", ".", ","]),
)
def test_every_valid_uin_reads_the_same_with_any_label_and_stop(
    uin: str, label: str, stop: str
) -> None:
    assert check_uin(label + uin + stop) == check_uin(uin)


_ANY_UIN_CHAR = sorted(_VALUES)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    label=st.sampled_from(["УИН ", "УИН:", "уин №", "UIN#", "УИН", "uin"]),
    body=st.text(alphabet=_ANY_UIN_CHAR, min_size=15, max_size=28),
    tail=st.text(max_size=4),
)
def test_a_labelled_text_is_accepted_only_as_the_valid_uin_after_the_label(
    label: str, body: str, tail: str
) -> None:
    """Guard: whatever follows a label, an accepted UIN is of table characters and of a UIN's
    length, and what follows the label is itself that valid UIN — unless the label is glued and
    its letters begin the UIN (a UIN may start with У, И, Н)."""
    checked = check_uin(label + body + tail)
    if checked.ok:
        assert len(checked.uin) in UIN_LENGTHS and set(checked.uin) <= set(_VALUES)
        glued = label in {"УИН", "uin"} and checked.uin.startswith(label.upper())
        assert glued or check_uin(body + tail) == checked


# ---- the console ---------------------------------------------------------------------------


def test_console_second_instance_leaves_the_first_working_with_its_data(
    console, tmp_path: Path
) -> None:
    first = console(**FAST)
    assert LINKED in first.link()
    second = console(tmp_path)
    code = second.process.wait(60)
    assert code == 2 and "another console" in second.err, second.err
    assert "Traceback" not in second.err
    assert (tmp_path / "console.lock").read_text().strip() == str(first.process.pid)
    menu = first.say("/start", "Отвязать аккаунт", timeout=20)  # still linked, still answering
    assert "Мои счета" in menu
    clean(first.out)


def test_console_killed_with_sigkill_starts_again_in_the_same_directory(
    console, tmp_path: Path
) -> None:
    first = console(**FAST)
    first.link()
    os.kill(first.process.pid, signal.SIGKILL)
    first.process.wait(10)
    again = console(tmp_path, **FAST)
    banner = again.wait_for(timeout=60)
    assert "восстановлен" in banner or "новый" in banner, banner
    assert "Cannot start" not in again.err
    assert "Отвязать аккаунт" in again.say("/start", "Отвязать аккаунт", timeout=20)


# Found: bot/runners.py `_data_dir_lock` (and before it bot/config.py `encryption_keys`) make
# DATA_DIR with mkdir and open the lock unguarded: a DATA_DIR that cannot be made or written
# (a file, a read-only place) ends `python -m bot` with a Python traceback and exit 1, where
# every other start-up problem is one «Cannot start: …» line and exit 2.
# Was (review 34b): an unusable DATA_DIR ends the console with a traceback (exit 1), not one «Cannot
# start» line
@pytest.mark.parametrize("keys", [False, True], ids=["key-file", "lock-file"])
def test_console_with_a_data_dir_that_cannot_be_written_says_so_in_one_line(
    console, tmp_path: Path, keys: bool
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    env = {"DATA_DIR": str(blocker)}
    if keys:
        env["TOKEN_ENCRYPTION_KEYS"] = "DLr45WR9y3ksIVQlPJ8mOQorS18ttD1CETpRon7XbLo="
    bot = console(tmp_path, **env)
    code = bot.process.wait(60)
    assert "Traceback" not in bot.err, bot.err[-1500:]
    assert code == 2 and "Cannot start" in bot.err and "DATA_DIR" in bot.err


def test_console_log_level_info_set_explicitly_shows_info_lines(console, tmp_path: Path) -> None:
    for name in ("quiet", "loud"):
        (tmp_path / name).mkdir()
    quiet = console(tmp_path / "quiet")
    quiet.wait_for(timeout=60)
    loud = console(tmp_path / "loud", LOG_LEVEL="INFO")
    loud.wait_for(timeout=60)
    assert quiet.eof() == 0 and loud.eof() == 0
    assert "bot.started" in loud.err, loud.err[-1500:]
    assert "bot.started" not in quiet.err and "[info" not in quiet.err + quiet.out


def test_console_eof_at_the_3ds_question_and_at_number_pays_and_links_nothing(
    console, tmp_path: Path
) -> None:
    for name in ("pay", "login"):
        (tmp_path / name).mkdir()
    bot = console(tmp_path / "pay", **FAST)
    bot.link()
    bot.say("#7", "Кому помочь?")
    bot.say("#1", "Фонды: Детям")
    bot.say("#1", "Другая сумма")
    bot.say("#2", "Оплатить 100")
    bot.say("#2", "Новая карта")
    bot.say("#5", "новая карта")
    bot.say("#1", "Перейти к оплате", timeout=20)
    bot.say("#1", "Номер карты")
    bot.say("4000000000003220", "3-D Secure", timeout=20)
    assert bot.eof() == 0
    assert "! page left (end of input)" in bot.out and "Спасибо!" not in bot.out
    assert "подтверждена" not in bot.out.lower() and "(статус: succeeded)" not in bot.out
    clean(bot.out + bot.err)
    login = console(tmp_path / "login")
    login.wait_for(timeout=60)
    login.say("/start", "Привязать аккаунт")
    login.say("#1", "Войти через mos.ru")
    login.say("#1", "Номер: ")
    assert login.eof() == 0
    assert "! page left (end of input)" in login.out and LINKED not in login.out
    clean(login.out + login.err)


# Found: bot/runners.py `sandbox_login_opener` checks «Номер:» with isdigit() and then int(): a
# line of more than 4300 digits makes int() raise ValueError (CPython's limit on integer
# strings), printed as «! the bot failed to process that:» and a traceback.
# Was (review 34b): runners.sandbox_login_opener: int() of a 5000-digit «Номер:» raises ValueError,
# shown as a traceback
def test_console_a_five_thousand_digit_number_at_the_login_is_refused_in_words(console) -> None:
    bot = console()
    bot.wait_for(timeout=60)
    bot.say("/start", "Привязать аккаунт")
    bot.say("#1", "Войти через mos.ru")
    bot.say("#1", "Номер: ")
    answer = bot.say("9" * 5000, "Номер: ", timeout=20)
    assert "Нет такого номера" in answer and "Traceback" not in answer, answer[-1500:]


# Found: sandbox/console.py `parse_line` takes «#» and any run of ASCII digits as a press, and
# `_execute` calls int() on it: «#» and 5000 digits raise ValueError (more than 4300 digits),
# printed as «! the bot failed to process that:» and a traceback instead of «! no button #…».
# Was (review 34b): console._execute: int() of a 5000-digit «#N» raises ValueError, shown as a
# traceback
def test_console_a_press_of_five_thousand_digits_is_refused_in_one_line(console) -> None:
    bot = console()
    bot.wait_for(timeout=60)
    bot.say("/start", "Привязать аккаунт")
    answer = bot.say("#" + "9" * 5000)
    assert "! no button #" in answer and "Traceback" not in answer, answer[-1500:]


# ---- «Наш город»: the lost-send settle ---------------------------------------------------------


async def _lost_send_with_photo(harness: Harness, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """A pothole with a photo and words sent once: the city made it and every answer was lost."""
    chat = await start_pothole(harness)
    await chat.send_location(*ARBAT_10)
    await chat.send_photo(photo())
    await chat.press("Дальше")
    await chat.send("Яма на дороге, глубокая")
    calm(await press_send_with_faults(harness, chat, monkeypatch, {"fail_after_processing": 5}))
    return chat, harness.sandbox.app[REQUESTS_KEY].all()[-1]


# Found: domain/reporting.py `_same_media` compares the photo's address by equality or one
# ending with the other: the city giving it back with a query string (a CDN's «?w=1024») or
# another scheme does not match, so the send's own report is adopted as one made elsewhere and
# the resident is never told it arrived (the draft stays «неотправленное»).
# Was (review 34b): reporting._same_media: the photo's address given back with a query string or
# another scheme does not match, and the lost send is never settled
@pytest.mark.parametrize("form", ["query", "scheme"])
async def test_a_lost_send_settles_when_the_city_gives_the_photo_back_in_another_form(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    chat, request = await _lost_send_with_photo(harness, monkeypatch)
    [sent] = request.submission.media
    kept = sent + "?w=1024" if form == "query" else sent.replace("http://", "https://", 1)
    request.submission = dataclasses.replace(request.submission, media=(kept,))
    harness.clock.advance(6 * 60)
    made = at_city(harness)
    await poll_and_deliver(harness, times=3)
    assert at_city(harness) == made
    told = [t for t in chat.history if SETTLED in t and request.id in t]
    assert len(told) == 1, chat.history[-3:]


async def test_a_lost_send_settles_once_when_the_city_gives_the_photo_back_as_a_path(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Guard: the upload answered an absolute address, the city lists the path only."""
    chat, request = await _lost_send_with_photo(harness, monkeypatch)
    [sent] = request.submission.media
    path = "/" + sent.split("//", 1)[1].split("/", 1)[1]
    request.submission = dataclasses.replace(request.submission, media=(path,))
    harness.clock.advance(6 * 60)
    made = at_city(harness)
    await poll_and_deliver(harness, times=3)
    assert at_city(harness) == made
    told = [t for t in chat.history if SETTLED in t and request.id in t]
    assert len(told) == 1, chat.history[-3:]
