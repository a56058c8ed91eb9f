"""Hostile values the other flow tests do not drive (found by a reviewer breaking the work):
bill titles, fund names, forged fund ids with path parts, a double tap on «Оплатить»."""

from __future__ import annotations

import dataclasses

import pytest

from sandbox import funds as sandbox_funds
from sandbox.oauth import DATA_KEY
from tests.flows.conftest import Harness
from tests.flows.test_charity_points_meters import linked
from tests.flows.test_hostile_input import forge, forged_item, no_crash
from tests.flows.test_hostile_text import assert_clean
from tests.money_text import nb

HOSTILE = "Газ & <свет> «²» 😀 <бк"


def _hostile_bills(harness: Harness, title: str) -> None:
    data = harness.sandbox.app[DATA_KEY]
    data.bills[:] = [dataclasses.replace(b, title=f"{title} {n}") for n, b in enumerate(data.bills)]


async def test_hostile_bill_titles_in_list_pay_and_history(harness: Harness) -> None:
    _hostile_bills(harness, HOSTILE)
    chat = await linked(harness)
    await chat.press("Мои счета")
    assert HOSTILE in chat.last_text, chat.last_text[:500]
    labels = [b for b in chat.buttons if "Газ" in b]
    assert labels and all("&amp;" not in b and "<свет>" in b for b in labels), labels
    await chat.press(labels[0])
    await chat.press("Оплатить выбранные")
    assert HOSTILE in chat.last_text, chat.last_text[:500]
    pay = [b for b in chat.buttons if b.startswith("Оплатить")]
    await chat.press(pay[0])
    assert "Оплачено" in chat.last_text, chat.last_text[:500]
    assert HOSTILE in chat.last_text
    await chat.send("/start")
    await chat.press("История платежей")
    assert HOSTILE in chat.last_text, chat.last_text[:500]
    assert_clean(chat)


async def test_very_long_bill_titles_page_the_confirmation_and_pay(harness: Harness) -> None:
    """12 bills with 5 000-character titles: «Оплатить все» must still show (page by page) and
    pay — before, the confirmation passed 4 096 characters and Telegram refused it."""
    _hostile_bills(harness, ("Очень & длинное <название> " * 300)[:5000])
    chat = await linked(harness)
    await chat.press("Мои счета")
    assert_clean(chat)
    await chat.press("Оплатить все")
    assert_clean(chat)
    first = chat.last_text
    assert "Очень & длинное <название>" in first and "›" in chat.buttons, chat.buttons
    pay = [b for b in chat.buttons if b.startswith("Оплатить")]
    assert pay, chat.buttons
    await chat.press("›")  # the next page of the same confirmation, same buttons
    assert chat.last_text != first and pay[0] in chat.buttons
    await chat.press(pay[0])
    assert "Оплачено" in chat.last_text, chat.last_text[:300]
    assert_clean(chat)


@pytest.fixture
def hostile_fund(monkeypatch: pytest.MonkeyPatch) -> str:
    first = sandbox_funds.funds_in("children")[0]
    name = "Фонд «Дети» & <Ко> <"
    evil = dataclasses.replace(
        first, name=name, description="Описание & <x> " * 200, programs=("A & B", "<C>")
    )
    funds = tuple(evil if f.id == first.id else f for f in sandbox_funds.FUNDS)
    monkeypatch.setattr(sandbox_funds, "FUNDS", funds)
    monkeypatch.setattr(sandbox_funds, "_BY_ID", {f.id: f for f in funds})
    return name


async def test_hostile_fund_name_card_donation_and_again(
    harness: Harness, hostile_fund: str
) -> None:
    chat = await linked(harness)
    await chat.press("Благотворительность")
    await chat.press("Детям")
    assert hostile_fund in chat.buttons, chat.buttons
    await chat.press(hostile_fund)
    assert hostile_fund in chat.last_text, chat.last_text[:300]
    await chat.press(nb("300,00 ₽"))
    assert hostile_fund in chat.last_text, chat.last_text[:300]
    await chat.press("Оплатить")
    assert hostile_fund in chat.last_text, chat.last_text[:300]
    await chat.send("/start")
    await chat.press("Благотворительность")
    assert_clean(chat)


@pytest.mark.parametrize(
    "item", ["../../accounts/me", "..", "%2e%2e", "x?y=1", "../../../oauth/token"]
)
async def test_forged_fund_id_with_path_parts(harness: Harness, item: str) -> None:
    chat = await linked(harness)
    await chat.press("Благотворительность")
    await chat.press("Детям")
    first = chat.last_message.buttons[0].text if chat.last_message else ""
    reply = await forge(chat, forged_item(chat, first, item))
    no_crash(reply)
    assert reply.answered
    assert_clean(chat)


@pytest.mark.parametrize("item", ["../../accounts/me", "<b>", "x" * 30])
async def test_forged_charity_category(harness: Harness, item: str) -> None:
    chat = await linked(harness)
    await chat.press("Благотворительность")
    label = next(b for b in chat.buttons if "Детям" in b)
    reply = await forge(chat, forged_item(chat, label, item))
    no_crash(reply)
    assert reply.answered
    assert_clean(chat)


async def test_pay_pressed_twice_pays_once(harness: Harness) -> None:
    from tests.flows.test_hostile_input import press_again

    chat = await linked(harness)
    await chat.press("Мои счета")
    pay_all = next(b for b in chat.buttons if b.startswith("Оплатить все"))
    await chat.press(pay_all)
    message = chat.last_message
    assert message is not None
    payload = dict(message.payload)
    [button] = [b for b in message.buttons if b.text.startswith("Оплатить ")]
    await chat.press(button.text)
    assert "Оплачено" in chat.last_text, chat.last_text[:300]
    reply = await press_again(chat, payload, button.callback_data or "")
    no_crash(reply)
    from sandbox.payments_api import PAYMENTS_KEY

    book = harness.sandbox.app[PAYMENTS_KEY]
    assert len(book.payments) == 1, list(book.payments)
    assert_clean(chat)
