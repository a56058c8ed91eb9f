"""Reviewer probe (3d7d6d0): a fund button carries its position in the list of the LAST render,
not of the message tapped. A client still showing an older keyboard (the threat model of
test_an_old_confirmation_confirms_the_prize_on_screen_now: a slow phone, a second device, a
tap in flight) then picks another fund than the one on the tapped button."""

from __future__ import annotations

import pytest

from sandbox import funds as sandbox_funds
from sandbox.data import FULL
from tests.flows.conftest import STALE, Harness
from tests.flows.test_autopay_setup import stored
from tests.flows.test_hostile_input import no_crash, press_again
from tests.flows.test_long_platform_ids import _autopay_funds


async def test_an_old_fund_button_after_the_list_changed(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat = await _autopay_funds(harness)
    old = chat.last_message
    assert old is not None
    payload = dict(old.payload)
    tapped = old.buttons[1]  # the second fund, as the old message labels it
    # The platform drops the first fund of the list (closed, or reordered) …
    gone = sandbox_funds.funds_in(None)[0]
    funds = tuple(f for f in sandbox_funds.FUNDS if f.id != gone.id)
    monkeypatch.setattr(sandbox_funds, "FUNDS", funds)
    monkeypatch.setattr(sandbox_funds, "_BY_ID", {f.id: f for f in funds})
    # … and the window is rendered again (the resident typed something: hint + window below).
    await chat.send("а какой фонд лучше?")
    # The tap on the OLD message's second button arrives: refused as a stale screen (review
    # 33b), the list below stays, and the fund is picked there.
    reply = await press_again(chat, payload, tapped.callback_data or "")
    no_crash(reply)
    assert [a.text for a in reply.callback_answers] == [STALE]
    assert "Раз в месяц" not in chat.buttons
    await chat.press(tapped.text)
    await chat.press("Раз в месяц")
    await chat.send("25")
    await chat.send("150")
    await chat.press("•• 4242")
    await chat.press("Подключить")
    [autopay] = await stored(harness, chat)
    assert (
        tapped.text.startswith(autopay.fund_name or "") or (autopay.fund_name or "") in tapped.text
    ), f"tapped «{tapped.text}», the autopay pays «{autopay.fund_name}»"


async def test_an_old_card_button_after_the_cards_changed(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The autopay's card step: the first saved card goes away (removed in the bank's app),
    the window is rendered again; a tap on the OLD message's second card charges another."""
    from sandbox import cards as sandbox_cards

    chat = await _autopay_funds(harness)
    await chat.press(1)
    await chat.press("Раз в месяц")
    await chat.send("25")
    await chat.send("150")
    old = chat.last_message
    assert old is not None
    payload = dict(old.payload)
    print("\n[old cards]", [b.text for b in old.buttons])
    tapped = old.buttons[1]
    first = sandbox_cards.SAVED_CARDS[0]
    monkeypatch.setattr(
        sandbox_cards, "SAVED_CARDS", tuple(c for c in sandbox_cards.SAVED_CARDS if c is not first)
    )
    await chat.send("а какая карта лучше?")
    print("[new cards]", chat.buttons)
    reply = await press_again(chat, payload, tapped.callback_data or "")
    no_crash(reply)
    assert [a.text for a in reply.callback_answers] == [STALE]  # review 33b
    assert "Подключить" not in chat.buttons  # still the card list
    await chat.press(tapped.text)  # the tapped card is still there
    assert "Подключить" in chat.buttons, chat.buttons
    await chat.press("Подключить")
    [autopay] = await stored(harness, chat)
    assert (autopay.method_id or "")[-4:] in tapped.text, (
        f"tapped «{tapped.text}», the autopay charges {autopay.method_id}"
    )


async def test_an_old_card_button_changes_an_autopays_card_without_a_confirmation(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """«Сменить карту» applies at the tap (no summary screen): a stale position changes the
    running autopay to a card the resident did not tap."""
    from sandbox import cards as sandbox_cards

    chat = await _autopay_funds(harness)
    await chat.press(1)
    await chat.press("Раз в месяц")
    await chat.send("25")
    await chat.send("150")
    await chat.press("•• 4242")
    await chat.press("Подключить")
    await chat.send("/start")
    await chat.press("Автоплатежи")
    await chat.press(1)
    await chat.press("Сменить карту")
    old = chat.last_message
    assert old is not None
    payload = dict(old.payload)
    print("\n[old cards]", [b.text for b in old.buttons])
    tapped = next(b for b in old.buttons if "0002" in b.text)
    # the resident saves a new card at the city (second in the list, after the default one)
    cards = list(sandbox_cards.SAVED_CARDS)
    cards.insert(
        1, sandbox_cards.SavedCard("pm-full-1111", FULL.account_id, "4111111111111111", "01/2030")
    )
    monkeypatch.setattr(sandbox_cards, "SAVED_CARDS", tuple(cards))
    await chat.send("какую выбрать?")
    print("[new cards]", chat.buttons)
    reply = await press_again(chat, payload, tapped.callback_data or "")
    no_crash(reply)
    print("[told]", [m.text for m in reply.messages], [a.text for a in reply.callback_answers])
    [autopay] = await stored(harness, chat)
    assert autopay.method_id in ("pm-full-0002", "pm-full-4242"), (
        f"tapped «{tapped.text}», the autopay now charges {autopay.method_id}"
    )
