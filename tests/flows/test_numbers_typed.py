"""Numbers as residents type them, through the real Dispatcher: an amount with a stray space
(«1500 50») is not read as 150 050 ₽, and a UIN or a СТС with «²», Arabic-Indic or full-width
digits is refused before any call to the city."""

from __future__ import annotations

from typing import Any

import pytest

from tests.flows.conftest import Harness
from tests.flows.test_charity_points_meters import linked, open_first_fund
from tests.flows.test_payments import ledger
from tests.flows.test_receipt_photo import epd_qr, receipt_photo
from tests.money_text import nb


async def test_a_stray_space_in_a_donation_gets_a_hint_and_charges_nothing(
    harness: Harness,
) -> None:
    chat = await linked(harness)
    name = await open_first_fund(chat)
    await chat.press("Другая сумма")

    for typed in ("1500 50", "15 00", "1 5000", "1500\u00a050"):
        reply = await chat.send(typed)
        assert "Не понял сумму" in reply.text and nb("1 500,50") in reply.text, typed
        assert "похожа на опечатку" not in reply.text  # not read as 150 050 ₽
        assert "Пожертвование фонду" not in reply.text

    await chat.send("1 500 руб.")
    assert nb(f"Пожертвование фонду «{name}» — 1 500,00 ₽") in chat.last_text
    assert await ledger(harness) == []  # nothing is charged before «Оплатить»


async def test_a_stray_space_in_a_receipts_amount_gets_a_hint_and_charges_nothing(
    harness: Harness,
) -> None:
    chat = await linked(harness)
    await chat.send_photo(receipt_photo(epd_qr(Sum=None)))
    await chat.press("Оплатить")
    assert "Сколько заплатить" in chat.last_text

    reply = await chat.send("1500 50")

    assert "Не понял сумму" in reply.text and nb("1 500,50") in reply.text
    assert "Сумма:" not in reply.text
    for typed in ("1e5", "-1500", "1_500"):
        assert "Не понял сумму" in (await chat.send(typed)).text, typed
    assert "обычными цифрами 0–9" in (await chat.send("１５００")).text
    await chat.send("1 500 ₽")
    assert nb("Сумма: 1 500,00 ₽") in chat.last_text
    assert await ledger(harness) == []


@pytest.fixture
def lookups(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The UINs the bot asked the city about."""
    assert harness.app is not None
    asked: list[str] = []
    real_lookup = harness.app.city.lookup_bill

    async def spy(session: Any, uin: str) -> Any:
        asked.append(uin)
        return await real_lookup(session, uin)

    monkeypatch.setattr(harness.app.city, "lookup_bill", spy)
    return asked


@pytest.mark.parametrize(
    "typed",
    [
        "1881013616110800816²",  # a superscript two as the control digit
        "１８８１０１３６１６１１０８００８１６１",  # full-width digits
        "١٨٨١٠١٣٦١٦١١٠٨٠٠٨١٦١",  # Arabic-Indic digits
        "18810136161108008１61",  # one full-width digit among ASCII ones
        "Ё0007229740048364Z55",  # Ё is not in the DIT table
    ],
)
async def test_a_uin_with_foreign_digits_is_refused_before_the_city(
    harness: Harness, lookups: list[str], typed: str
) -> None:
    chat = await linked(harness, "demo-standard")
    await chat.press("Добавить счёт по УИН")

    reply = await chat.send(typed)

    assert "УИН состоит из цифр" in reply.text
    assert lookups == []
    assert "Введите УИН" in chat.last_text or "УИН состоит из цифр" in chat.last_text


async def test_a_uin_with_letters_is_checked_by_the_dit_table(
    harness: Harness, lookups: list[str]
) -> None:
    chat = await linked(harness, "demo-standard")
    await chat.press("Добавить счёт по УИН")

    wrong = await chat.send("М00007229740048364Z4")  # Cyrillic М, control digit should be 5
    cyrillic = await chat.send("м00007229740048364z5")  # typed in lower case
    await chat.press("‹ Назад")
    latin = await chat.send("M00007229730048364Z9")  # Latin M: a look-alike, the Cyrillic value

    assert "не сходится" in wrong.text
    assert "Нашли начисление" in cyrillic.text and "Нашли начисление" in latin.text
    assert lookups == ["М00007229740048364Z5", "M00007229730048364Z9"]


async def test_a_certificate_with_full_width_digits_is_refused_before_the_city(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat = await linked(harness)
    assert harness.app is not None
    asked: list[Any] = []

    async def spy(*args: Any, **kwargs: Any) -> Any:
        asked.append(args)
        raise AssertionError("the city must not be asked")

    monkeypatch.setattr(harness.app.city, "find_fines", spy)
    await chat.press("Штрафы по СТС")

    for typed in ("７７АВ１２３４５６", "77АВ12345²", "٧٧АВ123456"):
        assert "обычными цифрами 0–9" in (await chat.send(typed)).text, typed
    assert asked == []
