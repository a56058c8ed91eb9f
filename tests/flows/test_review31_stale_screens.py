"""Review 31a: a screen drawn earlier is pressed after the world changed under it — after
unlinking and linking another mos.ru account (or the same one again), after just unlinking,
after a restart. Nothing is charged, transferred, sent or exchanged for an account other than
the one linked at the press, nor without a fresh confirmation; at most once; the resident is
told what happened and has a way on."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from bot.jobs import deliver_notifications, poll_reports
from bot.ratelimit import MemoryLimiter
from sandbox import cards as sandbox_cards
from sandbox import funds as sandbox_funds
from sandbox.conversation import Conversation, Reply
from sandbox.data import FULL, STANDARD, BillStatus
from sandbox.meters_api import METERS_KEY
from sandbox.oauth import DATA_KEY
from sandbox.open311_api import REQUESTS_KEY
from sandbox.points_api import POINTS_KEY
from sandbox.prizes_api import PRIZES_KEY
from tests.flows.conftest import Harness
from tests.flows.test_autopay_setup import stored
from tests.flows.test_charity_points_meters import at
from tests.flows.test_hostile_input import CRASH, no_crash, press_again
from tests.flows.test_meter_readings import next_month, open_meter
from tests.flows.test_receipt_photo import epd_qr, receipt_photo
from tests.flows.test_reports import ARBAT_10, advance


@dataclass
class Drawn:
    """The old screen: the message as the client still has it, and the button to press."""

    payload: dict[str, Any]
    data: str
    label: str


def drawn(chat: Conversation, label: str) -> Drawn:
    message = chat.telegram.last_message(chat.chat_id, with_keyboard=True)
    assert message is not None
    matches = [b for b in message.buttons if b.text.startswith(label) or label in b.text]
    assert len(matches) == 1, (label, [b.text for b in message.buttons])
    assert matches[0].callback_data is not None
    return Drawn(dict(message.payload), matches[0].callback_data, matches[0].text)


def pay_button(chat: Conversation) -> str:
    return next(b for b in chat.buttons if b.startswith("Оплатить "))


# ---- the screens just before the city write ----------------------------------------------------


async def bills_one(harness: Harness, chat: Conversation) -> Drawn:
    await chat.press("Мои счета")
    await chat.press(1)
    await chat.press("Оплатить выбранные")
    return drawn(chat, pay_button(chat))


async def bills_all(harness: Harness, chat: Conversation) -> Drawn:
    await chat.press("Мои счета")
    await chat.press("Оплатить все")
    return drawn(chat, pay_button(chat))


async def bill_card(harness: Harness, chat: Conversation) -> Drawn:
    await chat.press("Мои счета")
    await chat.press("Подробнее о счёте")
    await chat.press(1)
    return drawn(chat, "Оплатить этот счёт")


async def fines(harness: Harness, chat: Conversation) -> Drawn:
    await chat.press("Штрафы по СТС")
    await chat.send("77 АВ 123456")
    await chat.press("Оплатить штрафы")
    return drawn(chat, pay_button(chat))


async def receipt(harness: Harness, chat: Conversation) -> Drawn:
    await chat.send_photo(receipt_photo(epd_qr()))
    await chat.press("Оплатить")
    return drawn(chat, pay_button(chat))


async def fund(harness: Harness, chat: Conversation) -> Drawn:
    await chat.press("Благотворительность")
    await chat.press("Детям")
    await chat.press(1)
    await chat.press(2)  # 100 ₽
    return drawn(chat, pay_button(chat))


async def troika(harness: Harness, chat: Conversation) -> Drawn:
    await chat.press("Пополнить")
    await chat.press("Тройка")
    await chat.send("0012 345 678")
    await chat.press(1)
    return drawn(chat, pay_button(chat))


async def points_transfer(harness: Harness, chat: Conversation) -> Drawn:
    await chat.press("Баллы")
    await chat.press("Перевести баллы в фонд")
    await chat.press(1)
    await chat.send("100")
    return drawn(chat, "Подтвердить")


async def prize(harness: Harness, chat: Conversation) -> Drawn:
    await chat.press("Баллы")
    await chat.press("Обменять")
    await chat.press(1)
    await chat.press(1)
    label = next(b for b in chat.buttons if "Обменять" in b or "Получить" in b)
    await chat.press(label)
    return drawn(chat, "Подтвердить")


async def autopay_setup(harness: Harness, chat: Conversation) -> Drawn:
    await chat.press("Автоплатежи")
    await chat.press("Подключить автоплатёж")
    await chat.press("Пожертвование фонду")
    await chat.press(1)
    await chat.press("Раз в месяц")
    await chat.send("25")
    await chat.send("150")
    await chat.press("•• 4242")
    return drawn(chat, "Подключить")


async def report_send(harness: Harness, chat: Conversation) -> Drawn:
    await chat.press("Сообщить о проблеме")
    await chat.send("яма на дороге")
    await chat.press("Яма на дороге")
    await chat.send_location(*ARBAT_10)
    await chat.press("Пропустить")
    await chat.press("Пропустить")
    return drawn(chat, "Отправить")


async def report_confirm_notice(harness: Harness, chat: Conversation) -> Drawn:
    screen = await report_send(harness, chat)
    number = (await press_again(chat, screen.payload, screen.data)).text.split("№ ")[1].split()[0]
    assert harness.app is not None
    await advance(harness, number, to="answered", status_notes="Яму заделали")
    await poll_reports(harness.app, harness.clock)
    await deliver_notifications(harness.app, harness.clock, MemoryLimiter())
    return drawn(chat, "Подтвердить")


FLOWS: dict[str, Callable[[Harness, Conversation], Awaitable[Drawn]]] = {
    "bills one": bills_one,
    "bills all": bills_all,
    "bill card": bill_card,
    "fines": fines,
    "receipt": receipt,
    "fund": fund,
    "troika": troika,
    "points transfer": points_transfer,
    "prize": prize,
    "autopay set-up": autopay_setup,
    "report send": report_send,
    "report confirm (notice)": report_confirm_notice,
}


# ---- what really moved ---------------------------------------------------------------------------


async def world(harness: Harness, chat: Conversation) -> dict[str, Any]:
    app = harness.sandbox.app
    ledger = (await harness.sandbox_call("GET", "/sandbox/ledger"))["charges"]
    accounts = (FULL.account_id, STANDARD.account_id)
    return {
        "charges": [(c["account_id"], c["amount"]) for c in ledger],
        "points": [app[POINTS_KEY].balance(a) for a in accounts],
        "prizes": [len(app[PRIZES_KEY].of(a)) for a in accounts],
        "readings": [[len(m.readings) for m in app[METERS_KEY].meters_of(a)] for a in accounts],
        "reports": len(app[REQUESTS_KEY].all()),  # (review 35e: read `requests`, always 0)
        "paid": sorted(b.id for b in app[DATA_KEY].bills if b.status.value == "paid"),
        "autopays": len(await stored(harness, chat)),
    }


def said_plainly(reply: Reply) -> None:
    for text in CRASH:
        assert text not in reply.text, reply.text
        assert all(text not in (a.text or "") for a in reply.callback_answers)
    assert reply.answered
    told = reply.text + " ".join(a.text or "" for a in reply.callback_answers)
    assert any("а" <= ch.lower() <= "я" for ch in told), told  # something said, in Russian


async def unlink(chat: Conversation) -> None:
    await chat.send("/start")
    await chat.press("Отвязать аккаунт")
    assert "Аккаунт отвязан" in (await chat.press("Да, отвязать")).text


SCENARIOS = ["another", "same", "unlinked"]


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("flow", list(FLOWS))
async def test_an_old_screen_after_the_link_changed_moves_nothing(
    harness: Harness, flow: str, scenario: str
) -> None:
    chat = harness.chat()
    await harness.link(chat, "demo-full")
    screen = await FLOWS[flow](harness, chat)
    before = await world(harness, chat)
    await unlink(chat)
    if scenario == "another":
        await harness.link(chat, "demo-standard")
    elif scenario == "same":
        await harness.link(chat, "demo-full")
    after_link = await world(harness, chat)
    reply = await press_again(chat, screen.payload, screen.data)
    said_plainly(reply)
    again = await press_again(chat, screen.payload, screen.data)
    said_plainly(again)
    now = await world(harness, chat)
    if scenario == "same" and flow == "report confirm (notice)":
        # The account's own report, the same account linked: «Подтвердить» may still say it
        # (once) — the notice was the confirmation shown for this very account.
        now["points"][0] = after_link["points"][0]
    assert now == after_link, (before, now)
    assert chat.buttons, "a way on"


@pytest.mark.parametrize("flow", list(FLOWS))
async def test_an_old_screen_after_a_restart_acts_once_for_the_account_linked(
    harness: Harness, flow: str
) -> None:
    chat = harness.chat()
    await harness.link(chat, "demo-full")
    screen = await FLOWS[flow](harness, chat)
    before = await world(harness, chat)
    await harness.restart()
    chat = Conversation(
        harness.app.dispatcher,
        harness.app.bot,
        user_id=chat.chat_id,
        first_name="Мария",
        first_update_id=900_000,
    )
    reply = await press_again(chat, screen.payload, screen.data)
    said_plainly(reply)
    assert "устарела" not in reply.text, reply.text
    first = await world(harness, chat)
    for _ in range(2):
        later = await press_again(chat, screen.payload, screen.data)
        no_crash(later)
    now = await world(harness, chat)
    new = now["charges"][len(before["charges"]) :]
    assert len(new) <= 1 and all(a == FULL.account_id for a, _ in new), new
    assert now["points"][1] == before["points"][1] and now["prizes"][1] == before["prizes"][1]
    assert {k: v for k, v in now.items() if k != "paid"} == {
        k: v for k, v in first.items() if k != "paid"
    }


# ---- (e) the world changed at the city ---------------------------------------------------------


def card_gone(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default card (•• 4242, the one every confirmation shows) removed at the city."""
    left = tuple(c for c in sandbox_cards.SAVED_CARDS if c.id != "pm-full-4242")
    monkeypatch.setattr(sandbox_cards, "SAVED_CARDS", left)


def bills_paid(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every bill of the account paid elsewhere (at a bank's app)."""
    data = harness.sandbox.app[DATA_KEY]
    for bill in data.bills_of(FULL.account_id):
        data.update_bill(bill.id, status=BillStatus.PAID)


def funds_closed(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox_funds, "FUNDS", ())
    monkeypatch.setattr(sandbox_funds, "_BY_ID", {})


CHANGES = {
    "card gone": (
        card_gone,
        ["bills one", "bills all", "fines", "receipt", "fund", "troika", "autopay set-up"],
    ),
    "bills paid": (bills_paid, ["bills one", "bills all", "bill card", "fines"]),
    "funds closed": (funds_closed, ["fund", "points transfer", "autopay set-up"]),
}
# «Подключить» re-checks only a top-up service (handlers/autopay.py on_confirm): a card removed at
# the city, or a fund closed, since the set-up's card list / fund list was drawn is stored as is
# and told «✅ Автоплатёж подключён» — the first charge then fails, weeks later.
SETUP_CARD = "autopay set-up stores a card removed at the city meanwhile and says «подключён»"
SETUP_FUND = "autopay set-up stores a fund closed meanwhile and says «подключён»"
# Was (review 31a): SETUP_CARD and SETUP_FUND, pinned as strict xfails of the two cases below;
# fixed, «Подключить» asks the city about the card and the fund again.
WAS = {
    ("card gone", "autopay set-up"): SETUP_CARD,
    ("funds closed", "autopay set-up"): SETUP_FUND,
}
CASES = [
    pytest.param(change, flow, id=f"{change}-{flow}")
    for change, (_, flows) in CHANGES.items()
    for flow in flows
]


@pytest.mark.parametrize(("change", "flow"), CASES)
async def test_an_old_screen_after_the_city_changed_moves_nothing_and_says_why(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, change: str, flow: str
) -> None:
    chat = harness.chat()
    await harness.link(chat, "demo-full")
    screen = await FLOWS[flow](harness, chat)
    before = await world(harness, chat)
    CHANGES[change][0](harness, monkeypatch)
    reply = await press_again(chat, screen.payload, screen.data)
    said_plainly(reply)
    now = await world(harness, chat)
    assert now["charges"] == before["charges"] and now["points"] == before["points"]
    assert now["autopays"] == before["autopays"]
    assert chat.buttons, "a way on"
    assert "подключён" not in reply.text, reply.text


# «Перевести баллы» to a fund closed since the confirmation: nothing moves, but the resident reads
# the catch-all «Не нашли этого в городском сервисе», not that the fund no longer takes help (as
# a donation to it is told: «Этот фонд больше не принимает пожертвования»).
# Was (review 31a): a points transfer to a fund closed meanwhile is told as «Не нашли этого»
async def test_a_points_transfer_to_a_fund_closed_meanwhile_says_the_fund_is_closed(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat = harness.chat()
    await harness.link(chat, "demo-full")
    screen = await points_transfer(harness, chat)
    before = await world(harness, chat)
    funds_closed(harness, monkeypatch)
    reply = await press_again(chat, screen.payload, screen.data)
    said_plainly(reply)
    assert (await world(harness, chat))["points"] == before["points"]
    assert "больше не принимает" in reply.text, reply.text


# «Помочь ещё раз» drawn, then the fund closes: the platform's «Вы помогали» no longer lists it,
# so `on_again` (handlers/charity.py) takes the real button for a forged one: the toast «Эта
# кнопка не работает» and a bare «Вы помогали:» with nothing under it — never that the fund closed.
# Was (review 31a): «Помочь ещё раз» for a fund closed meanwhile gets the forged-button toast
async def test_help_again_for_a_fund_closed_meanwhile_says_the_fund_is_closed(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat = harness.chat()
    await harness.link(chat, "demo-full")
    await fund(harness, chat)
    await chat.press("Оплатить")
    await chat.send("/start")
    await chat.press("Благотворительность")
    await chat.press("Вы помогали")
    again = drawn(chat, "Помочь ещё раз")
    before = await world(harness, chat)
    funds_closed(harness, monkeypatch)
    reply = await press_again(chat, again.payload, again.data)
    said_plainly(reply)
    if any(b.startswith("Оплатить ") for b in chat.buttons):
        reply = await chat.press(pay_button(chat))
        said_plainly(reply)
    assert (await world(harness, chat))["charges"] == before["charges"]
    told = reply.text + " ".join(a.text or "" for a in reply.callback_answers)
    assert "больше не принимает" in told, told


async def test_a_reading_typed_after_the_window_closed_is_refused_and_told(
    harness: Harness,
) -> None:
    chat = harness.chat()
    await harness.link(chat, "demo-full")
    await at(harness, next_month(harness, 26, 23))  # electricity's last evening
    last = await open_meter(chat, "Электричество")
    before = await world(harness, chat)
    await at(harness, next_month(harness, 27, 0, 30))  # the window closed
    reply = await chat.send(f"{last + 60:.0f}")
    no_crash(reply)
    assert "принято" not in reply.text and "откроется" in reply.text, reply.text
    assert (await world(harness, chat))["readings"] == before["readings"]
