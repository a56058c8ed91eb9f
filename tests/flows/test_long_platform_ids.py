"""Platform ids of any length and any characters never go into a button. Telegram refuses a
whole message whose inline button carries callback data over 64 bytes (BUTTON_DATA_INVALID;
the strict double does too), and the contract sets no limit on a fund's, a saved card's or a
meter's id, on a theme code's letters or on a question's choice keys. So the lists of funds
and cards (autopay set-up, the pay step), meters, themes and choices carry references (12 hex
digits of the id's SHA-256, `handlers.buttons.item_ref`); the handler looks the reference up in
the list as it is now, and one not there (forged: zeros, a position, not hex, another
resident's item) gets the forged-button toast.

Each test serves a 100-character id (Cyrillic, with «:» and «|») from the sandbox and checks
that the screen renders, that no button carries more than 64 bytes, and that the button
still does its work with the real id."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from handlers.buttons import item_ref
from sandbox import SandboxServer, open311_api
from sandbox import cards as sandbox_cards
from sandbox import funds as sandbox_funds
from sandbox import themes as sandbox_themes
from sandbox.conversation import Conversation
from sandbox.data import FULL, BillStatus
from sandbox.meters_api import METERS_KEY
from sandbox.oauth import DATA_KEY
from sandbox.payments_api import PAYMENTS_KEY
from tests.conftest import POSTGRES_URL, fresh_engine
from tests.contract.sandbox_client import FakeClock
from tests.flows.conftest import Harness, _harness, settings_for
from tests.flows.test_autopay_setup import SET_UP_AT, stored
from tests.flows.test_charity_points_meters import linked
from tests.flows.test_hostile_input import forge, forged_item, no_crash
from tests.flows.test_hostile_text import assert_clean
from tests.flows.test_meter_readings import in_the_window
from tests.flows.test_report_questions import send
from tests.flows.test_reports import ARBAT_10, photo

FORGED = "Эта кнопка не работает. Откройте нужный раздел из меню."
# 100 characters, 186 bytes in UTF-8: Cyrillic with the separators aiogram-dialog and
# aiogram's CallbackData use («:», «|»); no «/» (it is a path part in the city's URLs).
LONG_ID = ("идентификатор:|" * 7)[:100]
assert len(LONG_ID) == 100 and ":" in LONG_ID and "|" in LONG_ID


def _short_buttons(chat: Conversation) -> None:
    """Every button of the latest message fits Telegram's 64 bytes and carries no id of ours."""
    message = chat.last_message
    assert message is not None
    for button in message.buttons:
        data = button.callback_data or ""
        assert len(data.encode()) <= 64, data
        assert "идентификатор" not in data, data


# --- funds: «Автоплатежи» → «Пожертвование фонду» ------------------------------------------


@pytest.fixture
def long_fund(monkeypatch: pytest.MonkeyPatch) -> str:
    """The first fund of «Детям» gets a 100-character id; its name is returned."""
    first = sandbox_funds.funds_in("children")[0]
    long = dataclasses.replace(first, id=LONG_ID)
    funds = tuple(long if f.id == first.id else f for f in sandbox_funds.FUNDS)
    monkeypatch.setattr(sandbox_funds, "FUNDS", funds)
    monkeypatch.setattr(sandbox_funds, "_BY_ID", {f.id: f for f in funds})
    return first.name


async def _autopay_funds(harness: Harness) -> Conversation:
    chat = await linked(harness)
    harness.clock.now = SET_UP_AT
    await chat.press("Автоплатежи")
    await chat.press("Подключить автоплатёж")
    await chat.press("Пожертвование фонду")
    return chat


@pytest.fixture(params=["sqlite", "postgres"])
async def both_databases(
    request: pytest.FixtureRequest, tmp_path: Path, sandbox: SandboxServer, clock: FakeClock
) -> AsyncIterator[Harness]:
    """The embedded SQLite and PostgreSQL: a long id must also fit the tables it is kept in
    (PostgreSQL enforces the columns' lengths, SQLite does not)."""
    overrides: dict[str, Any] = {}
    if request.param == "postgres":
        engine = await fresh_engine("postgres", tmp_path)
        await engine.dispose()
        overrides["database_url"] = POSTGRES_URL
    async for h in _harness(settings_for(tmp_path, **overrides), sandbox, clock, request):
        yield h


async def test_an_autopay_for_a_fund_with_a_long_id(
    both_databases: Harness, long_fund: str
) -> None:
    harness = both_databases
    chat = await _autopay_funds(harness)
    assert long_fund in chat.buttons, chat.buttons  # the list rendered (Telegram took it)
    _short_buttons(chat)
    await chat.press(long_fund)
    await chat.press("Раз в месяц")
    await chat.send("25")
    await chat.send("150")
    await chat.press("•• 4242")
    assert long_fund in chat.last_text
    reply = await chat.press("Подключить")
    assert "Автоплатёж подключён" in reply.text
    [autopay] = await stored(harness, chat)
    assert autopay.fund_id == LONG_ID and autopay.fund_name == long_fund
    assert_clean(chat)


# References no list holds: zeros, a position (what buttons carried before), not hex, too short.
NOT_SHOWN = ["0" * 12, "1", "zzzzzzzzzzzz", "١" * 12, "", "0" * 11]


@pytest.mark.parametrize("item", [*NOT_SHOWN, item_ref("no-such-fund")])
async def test_an_autopay_fund_reference_not_shown_gets_the_toast(
    harness: Harness, item: str
) -> None:
    chat = await _autopay_funds(harness)
    first = chat.last_message.buttons[0].text if chat.last_message else ""
    screen = chat.last_text
    reply = await forge(chat, forged_item(chat, first, item))
    no_crash(reply)
    assert [a.text for a in reply.callback_answers] == [FORGED]
    assert chat.last_text == screen and first in chat.buttons  # still picking a fund


# --- saved cards: the pay step and the autopay's card ----------------------------------------


@pytest.fixture
def long_card(monkeypatch: pytest.MonkeyPatch) -> None:
    """demo-full's saved cards get 100-character ids (each its own)."""
    renamed = tuple(
        dataclasses.replace(card, id=f"{LONG_ID[:-2]}{n:02d}")
        for n, card in enumerate(sandbox_cards.SAVED_CARDS)
    )
    monkeypatch.setattr(sandbox_cards, "SAVED_CARDS", renamed)


def _card_id(last4: str) -> str:
    """The (long) id of demo-full's saved card ending in `last4`."""
    return next(
        c.id
        for c in sandbox_cards.SAVED_CARDS
        if c.account_id == FULL.account_id and c.number.endswith(last4)
    )


async def test_the_pay_step_with_long_card_ids(both_databases: Harness, long_card: None) -> None:
    harness = both_databases
    chat = await linked(harness)
    await chat.press("Мои счета")
    await chat.press(next(b for b in chat.buttons if b.startswith("Оплатить все")))
    await chat.press("Другой способ оплаты")
    assert "Visa •• 4242" in chat.buttons, chat.buttons  # the list rendered
    _short_buttons(chat)
    await chat.press("Visa •• 9995")
    assert "9995" in chat.last_text  # the confirmation names the card chosen
    await chat.press("Другой способ оплаты")
    await chat.press("Visa •• 4242")
    assert "4242" in chat.last_text
    await chat.press(next(b for b in chat.buttons if b.startswith("Оплатить")))
    assert "Оплачено" in chat.last_text, chat.last_text[:300]
    [payment] = harness.sandbox.app[PAYMENTS_KEY].payments.values()
    assert payment.request.payment_method_id == _card_id("4242")
    assert_clean(chat)


@pytest.mark.parametrize("item", [*NOT_SHOWN, "pm-full-4242", item_ref("pm-std-4242")])
async def test_a_card_reference_not_shown_gets_the_toast(harness: Harness, item: str) -> None:
    chat = await linked(harness)
    await chat.press("Мои счета")
    await chat.press(next(b for b in chat.buttons if b.startswith("Оплатить все")))
    await chat.press("Другой способ оплаты")
    screen = chat.last_text
    reply = await forge(chat, forged_item(chat, "Visa •• 4242", item))
    no_crash(reply)
    assert [a.text for a in reply.callback_answers] == [FORGED]
    assert chat.last_text == screen  # still choosing how to pay
    assert not harness.sandbox.app[PAYMENTS_KEY].payments


async def test_an_autopays_card_with_a_long_id(harness: Harness, long_card: None) -> None:
    chat = await _autopay_funds(harness)
    await chat.press(chat.last_message.buttons[0].text if chat.last_message else "")
    await chat.press("Раз в месяц")
    await chat.send("25")
    await chat.send("150")
    assert "Visa •• 4242" in chat.buttons, chat.buttons  # the list rendered
    _short_buttons(chat)
    await chat.press("•• 4242")
    assert "•• 4242" in chat.last_text
    assert "Автоплатёж подключён" in (await chat.press("Подключить")).text
    [autopay] = await stored(harness, chat)
    assert autopay.method_id == _card_id("4242")
    # «Сменить карту» over the same long ids, and a forged reference there (another
    # resident's card).
    await chat.press(next(b for b in chat.buttons if "150" in b))  # back on the list: its card
    await chat.press("💳 Сменить карту")
    _short_buttons(chat)
    reply = await forge(chat, forged_item(chat, "Visa •• 4242", item_ref("pm-std-4242")))
    assert [a.text for a in reply.callback_answers] == [FORGED]
    [autopay] = await stored(harness, chat)
    assert autopay.method_id == _card_id("4242")


# --- meters --------------------------------------------------------------------------------


@pytest.fixture
def long_meter(harness: Harness) -> str:
    """demo-full's cold water meter gets a 100-character id at the platform."""
    book = harness.sandbox.app[METERS_KEY]
    meter = book.meters.pop("M-3101")
    meter.id = LONG_ID
    book.meters[LONG_ID] = meter
    return f"Холодная вода № {meter.serial}"


async def test_a_meter_with_a_long_id(harness: Harness, long_meter: str) -> None:
    chat = await linked(harness)
    period = await in_the_window(harness)
    reply = await chat.press("Показания счётчиков")
    no_crash(reply)
    assert long_meter in chat.buttons, chat.buttons  # the list rendered
    _short_buttons(chat)
    await chat.press(long_meter)
    last = float(chat.last_text.split("Прошлое показание: ")[1].split()[0].replace(",", "."))
    reply = await chat.send(f"{last + 3.25:.3f}".replace(".", ","))
    assert f"за {period} принято" in reply.text, reply.text
    book = harness.sandbox.app[METERS_KEY]
    assert len(book.meters[LONG_ID].readings) == 4  # three seeded, one sent now


@pytest.mark.parametrize("item", [*NOT_SHOWN, "M-3101", item_ref("M-2101")])
async def test_a_meter_reference_not_shown_gets_the_toast(harness: Harness, item: str) -> None:
    chat = await linked(harness)
    await in_the_window(harness)
    await chat.press("Показания счётчиков")
    label = next(b for b in chat.buttons if b.startswith("Холодная вода"))
    screen = chat.last_text
    reply = await forge(chat, forged_item(chat, label, item))
    no_crash(reply)
    assert [a.text for a in reply.callback_answers] == [FORGED]
    assert chat.last_text == screen


# --- «Сообщить о проблеме»: themes and choices -----------------------------------------------

PLAYGROUND = "Повреждена детская площадка"


@pytest.fixture
def long_theme(monkeypatch: pytest.MonkeyPatch) -> None:
    """The playground theme gets a 100-character code and choice keys of 100 characters."""
    theme = sandbox_themes.theme_by_name(PLAYGROUND)
    attributes = tuple(
        dataclasses.replace(
            a,
            values=tuple(
                dataclasses.replace(v, key=f"{LONG_ID[: -len(v.key)]}{v.key}") for v in a.values
            ),
        )
        for a in theme.attributes
    )
    long = dataclasses.replace(theme, code=LONG_ID, attributes=attributes)
    themes = tuple(long if t.code == theme.code else t for t in sandbox_themes.THEMES)
    monkeypatch.setattr(sandbox_themes, "THEMES", themes)
    monkeypatch.setattr(sandbox_themes, "_BY_CODE", {t.code: t for t in themes})
    monkeypatch.setattr(open311_api, "THEMES", themes)


async def _to_the_question(chat: Conversation) -> None:
    await chat.send_location(*ARBAT_10)
    await chat.send_photo(photo())
    await chat.press("Дальше")
    await chat.press("Пропустить")
    assert "Что повреждено" in chat.last_text


async def test_a_theme_and_choices_with_long_codes_by_search(
    harness: Harness, long_theme: None
) -> None:
    chat = await linked(harness)
    await chat.press("Сообщить о проблеме")
    await chat.send("детская площадка")
    assert PLAYGROUND in chat.buttons, chat.buttons  # the results rendered
    _short_buttons(chat)
    await chat.press(PLAYGROUND)
    assert "Где это?" in chat.last_text
    await _to_the_question(chat)
    _short_buttons(chat)
    await chat.press("Горка")
    await chat.press("Качели")
    assert "✅ Качели" in chat.buttons and "✅ Горка" in chat.buttons
    await chat.press("Готово")
    assert "Что повреждено: Качели, Горка" in chat.last_text
    number = (await send(chat)).split("№ ")[1].split()[0]
    request = harness.sandbox.app[open311_api.REQUESTS_KEY].get(number)
    assert request is not None and request.submission.theme.code == LONG_ID
    assert dict(request.submission.attributes) == {
        "elements": (f"{LONG_ID[:-5]}swing", f"{LONG_ID[:-5]}slide")
    }


async def test_a_theme_with_a_long_code_from_its_group(harness: Harness, long_theme: None) -> None:
    chat = await linked(harness)
    await chat.press("Сообщить о проблеме")
    await chat.press("Выбрать из разделов")
    await chat.press("Дворы")
    while PLAYGROUND not in chat.buttons and "›" in chat.buttons:
        _short_buttons(chat)
        await chat.press("›")
    assert PLAYGROUND in chat.buttons, chat.buttons
    _short_buttons(chat)
    reply = await forge(chat, forged_item(chat, PLAYGROUND, "0" * 12))
    assert [a.text for a in reply.callback_answers] == [FORGED]
    await chat.press(PLAYGROUND)
    assert "Где это?" in chat.last_text


# «slide» and its bare reference: a choice's reference is of its question's code and its key.
@pytest.mark.parametrize("item", [*NOT_SHOWN, "slide", item_ref("slide")])
async def test_a_theme_or_choice_reference_not_shown_gets_the_toast(
    harness: Harness, item: str
) -> None:
    chat = await linked(harness)
    await chat.press("Сообщить о проблеме")
    await chat.send("детская площадка")
    screen = chat.last_text
    reply = await forge(chat, forged_item(chat, PLAYGROUND, item))
    no_crash(reply)
    assert [a.text for a in reply.callback_answers] == [FORGED]
    assert chat.last_text == screen
    await chat.press(PLAYGROUND)
    await _to_the_question(chat)
    reply = await forge(chat, forged_item(chat, "Горка", item))
    no_crash(reply)
    assert [a.text for a in reply.callback_answers] == [FORGED]
    assert "✅" not in " ".join(chat.buttons)  # nothing was picked


# --- bills: «Мои счета» -----------------------------------------------------------------------


@pytest.fixture
def long_bill(harness: Harness) -> str:
    """The resident's earliest unpaid bill gets a 100-character id; its title is returned."""
    data = harness.sandbox.app[DATA_KEY]
    unpaid = data.bills_of(FULL.account_id, BillStatus.UNPAID)
    first = min(unpaid, key=lambda bill: bill.due_date)
    data.bills[:] = [dataclasses.replace(b, id=LONG_ID) if b is first else b for b in data.bills]
    return first.title


async def test_bills_with_a_long_id_are_listed_picked_and_opened(
    harness: Harness, long_bill: str
) -> None:
    """A bill's button carries a hash of its id (a position would name another bill after one
    is paid between two taps), so the list renders, a pick pays that bill, and its card opens."""
    chat = await linked(harness)
    await chat.press("Мои счета")
    _short_buttons(chat)
    await chat.press(long_bill)  # picked
    reply = await chat.press("Оплатить выбранные")
    assert long_bill in reply.text, reply.text  # the confirmation names the long-id bill
    await chat.press("Отмена")
    await chat.press("Подробнее о счёте")
    _short_buttons(chat)
    reply = await chat.press(long_bill)
    assert long_bill in reply.text and "Оплатить этот счёт" in chat.buttons, reply.text


async def test_a_bill_reference_not_shown_opens_no_card(harness: Harness) -> None:
    chat = await linked(harness)
    await chat.press("Мои счета")
    await chat.press("Подробнее о счёте")
    card = chat.last_message
    assert card is not None
    button = next(b for b in card.buttons if b.callback_data and "card_pick" in b.callback_data)
    assert button.callback_data is not None
    forged = button.callback_data.rsplit(":", 1)[0] + ":" + "0" * 12
    reply = await forge(chat, forged)
    assert "Оплатить этот счёт" not in chat.buttons, reply
