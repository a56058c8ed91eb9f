"""A tap on an older message after its list changed never picks what the list drawn since has at
the same place. List buttons carry references of the platform's ids (`handlers.buttons.item_ref`),
not positions (3d7d6d0 carried positions: a fund gone moved every later fund up by one); and
since review 33b a press on any message that is not the dialog's current one is refused as a
stale screen (`bot.middlewares.StaleScreenMiddleware`) before it reaches a list at all."""

from __future__ import annotations

import pytest

from sandbox import funds as sandbox_funds
from tests.flows.conftest import STALE, Harness
from tests.flows.test_charity_points_meters import linked
from tests.flows.test_hostile_input import no_crash, press_again
from tests.flows.test_long_platform_ids import PLAYGROUND


async def test_an_old_charity_fund_button_is_refused_as_a_stale_screen(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat = await linked(harness)
    await chat.press("Благотворительность")
    await chat.press("Детям")
    old = chat.last_message
    assert old is not None and len(old.buttons) > 2
    payload = dict(old.payload)
    tapped = old.buttons[1]  # the second fund of «Детям»
    gone = sandbox_funds.funds_in("children")[0]  # the platform drops the first one …
    funds = tuple(f for f in sandbox_funds.FUNDS if f.id != gone.id)
    monkeypatch.setattr(sandbox_funds, "FUNDS", funds)
    monkeypatch.setattr(sandbox_funds, "_BY_ID", {f.id: f for f in funds})
    await chat.send("какой фонд лучше?")  # … and the list is drawn again below
    assert gone.name not in chat.buttons
    screen = chat.last_text
    reply = await press_again(chat, payload, tapped.callback_data or "")
    no_crash(reply)
    # Was: the old message opened the fund it showed; now refused, the list below stays.
    assert [a.text for a in reply.callback_answers] == [STALE]
    assert chat.last_text == screen and not reply.messages
    await chat.press(tapped.text)  # the same fund from the current list
    assert chat.last_text.splitlines()[0] == tapped.text


async def test_an_old_charity_fund_button_of_a_fund_gone_gets_the_toast(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat = await linked(harness)
    await chat.press("Благотворительность")
    await chat.press("Детям")
    old = chat.last_message
    assert old is not None
    payload = dict(old.payload)
    tapped = old.buttons[0]
    gone = sandbox_funds.funds_in("children")[0]
    assert tapped.text == gone.name
    funds = tuple(f for f in sandbox_funds.FUNDS if f.id != gone.id)
    monkeypatch.setattr(sandbox_funds, "FUNDS", funds)
    monkeypatch.setattr(sandbox_funds, "_BY_ID", {f.id: f for f in funds})
    await chat.send("какой фонд лучше?")
    screen = chat.last_text
    reply = await press_again(chat, payload, tapped.callback_data or "")
    no_crash(reply)
    assert [a.text for a in reply.callback_answers] == [STALE]
    assert chat.last_text == screen  # still the list: no fund's card opened


async def test_a_theme_of_an_earlier_search_is_not_taken_from_the_new_results(
    harness: Harness,
) -> None:
    chat = await linked(harness)
    await chat.press("Сообщить о проблеме")
    await chat.send("детская площадка")
    old = chat.last_message
    assert old is not None
    payload = dict(old.payload)
    [tapped] = [b for b in old.buttons if b.text == PLAYGROUND]
    await chat.send("не работает лифт")  # another search: other themes at the same places
    assert PLAYGROUND not in chat.buttons, chat.buttons
    screen = chat.last_text
    reply = await press_again(chat, payload, tapped.callback_data or "")
    no_crash(reply)
    assert [a.text for a in reply.callback_answers] == [STALE]
    assert chat.last_text == screen and "Где это?" not in chat.last_text
