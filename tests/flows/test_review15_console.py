"""Review 15, found in the terminal console (DATA_DIR on a fresh temporary directory, the
resident's journeys typed by hand) and pinned here as flows:

- a top-up autopay's threshold at or above what the card can hold («Тройка»: 3 000 ₽) is taken
  when typed; «Подключить» then refuses every amount («карта переполнится») and asks only
  for the amount again — no amount can ever fit, and the screen offers no way to the
  threshold but «‹ Назад» to «Как часто?»;
- a top-up autopay's amount outside the service's limits for one payment (parking: 10 …
  15 000 ₽) is taken when typed and refused only at «Подключить», without the limit;
- the bill the resident has just looked up by UIN (the sandbox adds it to their account) comes
  back a moment later as «🧾 Пришёл счёт» from bill discovery.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.autopay import Frequency
from domain.autopaying import TopupDoesNotFit, check_topup_amount, highest_threshold
from domain.topups import TopupLimits, TopupService
from tests.flows.conftest import Harness
from tests.flows.test_autopay_setup import linked, stored
from tests.flows.test_autopay_topups import to_frequency
from tests.flows.test_bill_discovery import MSK, deliver, discover, notices
from tests.flows.test_hostile_input import no_crash
from tests.money_text import nb

PARKING = "Пополнение парковочного счёта +7 916 123-45-67"
FOUND_UIN = "18810770123456789033"  # rule digit 3: found, a 500 ₽ traffic fine


async def test_a_threshold_the_card_cannot_hold_is_refused_when_typed(harness: Harness) -> None:
    chat = await linked(harness)
    await to_frequency(chat)
    await chat.press("Когда баланс ниже суммы")
    reply = await chat.send("5 000")  # the «Тройка» holds 3 000 ₽ at most
    no_crash(reply)
    # Now: «На сколько пополнять?» → card → «Подключить» → «карта переполнится» → amount
    # again, for every amount (threshold alone is over the ceiling): a loop.
    assert "На сколько пополнять?" not in chat.last_text, chat.last_text
    assert "ниже какой суммы" in chat.last_text
    assert nb("3 000,00 ₽") in reply.text  # told what the card holds
    # the highest threshold some top-up fits under: 3 000 ₽ less the 1 ₽ minimum
    assert nb("2 999,00 ₽") in reply.text
    for typed in ["3 000", "2 999,01", "1e5", "-1", "9" * 5000]:
        no_crash(await chat.send(typed))
        assert "ниже какой суммы" in chat.last_text, typed[:20]
    await chat.send("2 999")
    # the amount question names the service's limits as «Пополнить» does
    assert "На сколько пополнять?" in chat.last_text
    assert "За один раз — от " + nb("1,00 ₽ до 3 000,00 ₽") in chat.last_text
    reply = await chat.send("1,01")  # 2 999 ₽ + 1,01 ₽: over the ceiling, said when typed
    assert "карта переполнится" in reply.text and nb("1,00 ₽") in reply.text
    assert "На сколько пополнять?" in chat.last_text
    await chat.send("1")  # exactly 3 000 ₽ fits
    await chat.press("•• 4242")
    assert "Автоплатёж подключён" in (await chat.press("Подключить")).text
    [autopay] = await stored(harness, chat)
    assert (autopay.threshold, autopay.amount) == (299_900, 100)


async def test_a_threshold_refused_at_connect_asks_for_the_threshold_again(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The card's ceiling dropped (the platform's limits changed) between the typing and
    «Подключить»: the threshold no longer leaves room for any top-up, so the threshold is
    asked again — not the amount, which no amount could satisfy."""
    chat = await linked(harness)
    await to_frequency(chat)
    await chat.press("Когда баланс ниже суммы")
    await chat.send("2 500")
    await chat.send("400")
    await chat.press("•• 4242")
    assert harness.app is not None
    real = harness.app.city.topup_services

    async def smaller_card(session: Any) -> Any:
        services = await real(session)
        return [
            dataclasses.replace(s, limits=dataclasses.replace(s.limits, max_balance=200_000))
            if s.code is TopupService.TROIKA
            else s
            for s in services
        ]

    monkeypatch.setattr(harness.app.city, "topup_services", smaller_card)
    reply = await chat.press("Подключить")
    no_crash(reply)
    assert nb("2 000,00 ₽") in reply.text and nb("1 999,00 ₽") in reply.text
    assert "ниже какой суммы" in chat.last_text
    assert await stored(harness, chat) == []
    await chat.send("1 500")  # 1 500 ₽ + the 400 ₽ kept fit 2 000 ₽: on to the card
    assert "С какой карты списывать?" in chat.last_text
    await chat.press("•• 4242")
    assert nb("когда баланс ниже 1 500,00 ₽") in chat.last_text
    assert "Автоплатёж подключён" in (await chat.press("Подключить")).text
    [autopay] = await stored(harness, chat)
    assert autopay.schedule.frequency is Frequency.BELOW
    assert (autopay.threshold, autopay.amount) == (150_000, 40_000)


async def test_a_topup_amount_outside_the_services_limits_is_told_when_typed(
    harness: Harness,
) -> None:
    chat = await linked(harness)
    await chat.press("Автоплатежи")
    await chat.press("➕ Подключить автоплатёж")
    await chat.press("Пополнять «Тройку» или парковку")
    await chat.press(PARKING)
    await chat.press("Раз в неделю")
    await chat.press("суббота")
    assert "На сколько пополнять?" in chat.last_text
    reply = await chat.send("15 001")  # parking takes 10 … 15 000 ₽ in one payment
    no_crash(reply)
    # Now: taken, the card is asked, and only «Подключить» says «Это больше, чем сервис
    # принимает» — without the limit.
    assert "На сколько пополнять?" in chat.last_text, chat.last_text
    assert nb("15 000,00 ₽") in reply.text
    assert "За один раз — от " + nb("10,00 ₽ до 15 000,00 ₽") in chat.last_text
    reply = await chat.send("9,99")
    assert nb("от 10,00 ₽") in reply.text and "На сколько пополнять?" in chat.last_text
    for typed in ["1e5", "0", "-10", "<b>1</b> & 2", "²"]:
        no_crash(await chat.send(typed))
        assert "На сколько пополнять?" in chat.last_text, typed
    await chat.send("15 000")
    assert "С какой карты списывать?" in chat.last_text


async def test_a_bill_just_looked_up_by_uin_is_not_announced_as_new(harness: Harness) -> None:
    chat = await linked(harness)
    harness.clock.now = datetime(2026, 11, 30, 12, 0, tzinfo=MSK)
    assert await discover(harness) == 0  # the baseline
    await chat.press("Добавить счёт по УИН")
    await chat.send(FOUND_UIN)
    assert "Нашли начисление" in chat.last_text
    harness.clock.now += timedelta(minutes=5)
    await discover(harness)
    await deliver(harness)
    # Now: «🧾 Пришёл счёт: Штраф ГИБДД — 500,00 ₽» for the fine the resident opened.
    assert notices(chat) == []
    # the same for a fine found by СТС in «Штрафы» (the sandbox adds it to the account too)
    await chat.send("/start")
    await chat.press("Штрафы по СТС")
    await chat.send("77АВ123457")  # an odd last digit: one fine found
    assert "Оплатить" in " ".join(chat.buttons), chat.last_text
    harness.clock.now += timedelta(minutes=5)
    await discover(harness)
    await deliver(harness)
    assert notices(chat) == []


@given(
    st.integers(1, 10_000), st.integers(0, 10_000), st.integers(0, 20_000), st.integers(1, 20_000)
)
def test_a_threshold_is_refused_exactly_when_no_topup_fits_under_it(
    low: int, extra: int, room: int, threshold: int
) -> None:
    """`highest_threshold` (what the threshold question refuses above) agrees with
    `check_topup_amount` (what «Подключить» refuses): under a threshold it lets through, the
    service's minimum fits; above it, no amount does — so no set-up can loop."""
    limits = TopupLimits(low, low + extra, low + room)
    highest = highest_threshold(limits)
    assert highest is not None
    if threshold <= highest:
        check_topup_amount(low, threshold, limits, low + extra)
        return
    for amount in (low, low + extra):  # the least and the most one payment takes
        with pytest.raises(TopupDoesNotFit):
            check_topup_amount(amount, threshold, limits, low + extra)
