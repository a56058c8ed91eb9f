"""«Баллы» → «Обменять»: prizes by category, a prize's card, the exchange debited once, the code
shown and kept in «Мои призы»; not enough points, a sold-out prize, hostile names, forged
buttons."""

from __future__ import annotations

import pytest

from sandbox.conversation import Conversation
from sandbox.data import FULL, STANDARD
from sandbox.points import PointsKind
from sandbox.points_api import POINTS_KEY
from sandbox.prizes_api import PRIZES_KEY
from tests.flows.conftest import Harness
from tests.flows.test_charity_points_meters import linked
from tests.flows.test_hostile_input import forge, forged_item, no_crash, press_again
from tests.flows.test_hostile_text import assert_clean
from tests.money_text import nb

COFFEE = "Промокод на кофе в «Кофемании»"  # 200 points, category promo codes
FULL_BALANCE = 1_250
FORGED = "Эта кнопка не работает. Откройте нужный раздел из меню."
STALE = "Этот экран устарел — продолжайте в последнем сообщении."  # review 33b


def _balance(harness: Harness, account_id: str = FULL.account_id) -> int:
    return harness.sandbox.app[POINTS_KEY].balance(account_id)


def _prize_debits(harness: Harness, account_id: str = FULL.account_id) -> list[int]:
    book = harness.sandbox.app[POINTS_KEY]
    return [
        e.amount for e in book.entries if e.account_id == account_id and e.kind is PointsKind.PRIZE
    ]


async def _open_prize(chat: Conversation, category: str, name: str) -> None:
    if "Обменять" not in chat.buttons:  # from the menu; else from «Баллы» already
        await chat.press("Баллы")
    await chat.press("Обменять")
    await chat.press(category)
    await chat.press(next(b for b in chat.buttons if b.startswith(name)))


async def test_a_promo_code_confirmed_twice_is_debited_once_and_kept(harness: Harness) -> None:
    chat = await linked(harness)
    await chat.press("Баллы")
    await chat.press("Обменять")
    assert nb("У вас 1 250 баллов") in chat.last_text
    for category in ("Сувениры", "Для дома", "Промокоды", "Билеты в театры и музеи"):
        assert category in chat.buttons
    await chat.press("Промокоды")
    assert nb(f"{COFFEE} · 200 баллов") in chat.buttons
    await chat.press(nb(f"{COFFEE} · 200 баллов"))
    assert COFFEE in chat.last_text and nb("Цена: 200 баллов.") in chat.last_text
    await chat.press("Обменять на баллы")
    assert nb(f"Обменять 200 баллов на «{COFFEE}»?") in chat.last_text
    confirmation = chat.last_message
    assert confirmation is not None
    payload = dict(confirmation.payload)
    [yes] = [b for b in confirmation.buttons if b.text == "Подтвердить"]

    await chat.press("Подтвердить")
    again = await press_again(chat, payload, yes.callback_data or "")  # a second update

    no_crash(again)
    [got] = harness.sandbox.app[PRIZES_KEY].of(FULL.account_id)
    assert got.code.startswith("MOS-")
    shown = "\n".join(chat.history)
    assert f"Код: {got.code}" in shown and nb("Осталось 1 050 баллов") in shown
    assert _prize_debits(harness) == [-200]
    assert _balance(harness) == FULL_BALANCE - 200
    await chat.press("Мои призы")
    assert COFFEE in chat.last_text and got.code in chat.last_text
    assert_clean(chat)


async def test_a_lost_answer_is_retried_with_the_same_key(harness: Harness) -> None:
    chat = await linked(harness)
    await _open_prize(chat, "Промокоды", COFFEE)
    await chat.press("Обменять на баллы")
    # The platform makes the exchange and the answer is lost: the client retries the POST
    # with the same Idempotence-Key and gets the same prize back.
    await harness.sandbox_call("PUT", "/sandbox/faults", json={"fail_after_processing": 1})
    await chat.press("Подтвердить")
    await harness.sandbox_call("PUT", "/sandbox/faults", json={})
    [got] = harness.sandbox.app[PRIZES_KEY].of(FULL.account_id)
    assert f"Код: {got.code}" in chat.last_text
    assert _prize_debits(harness) == [-200]


async def test_no_answer_at_all_keeps_the_key_for_the_next_press(harness: Harness) -> None:
    chat = await linked(harness)
    await _open_prize(chat, "Промокоды", COFFEE)
    await chat.press("Обменять на баллы")
    # Every attempt's answer is lost: the exchange was made once, the resident is told the
    # city did not answer; pressing again (card → «Обменять» → «Подтвердить») reuses the key.
    await harness.sandbox_call("PUT", "/sandbox/faults", json={"fail_after_processing": 10})
    await chat.press("Подтвердить")
    await harness.sandbox_call("PUT", "/sandbox/faults", json={})
    assert "Код:" not in chat.last_text
    await chat.press("‹ Назад")
    await _open_prize(chat, "Промокоды", COFFEE)
    await chat.press("Обменять на баллы")
    await chat.press("Подтвердить")
    [got] = harness.sandbox.app[PRIZES_KEY].of(FULL.account_id)
    assert f"Код: {got.code}" in chat.last_text
    assert _prize_debits(harness) == [-200]


async def test_not_enough_points_says_what_is_missing_and_debits_nothing(
    harness: Harness,
) -> None:
    chat = await linked(harness, "demo-standard")  # 120 points
    await _open_prize(chat, "Промокоды", COFFEE)
    await chat.press("Обменять на баллы")
    text = chat.last_text
    assert "Баллов пока не хватает" in text
    assert nb("стоит 200 баллов, у вас 120 баллов — не хватает ещё 80 баллов") in text
    assert "Подтвердить" not in chat.buttons
    assert _prize_debits(harness, STANDARD.account_id) == []
    assert _balance(harness, STANDARD.account_id) == 120
    assert harness.sandbox.app[PRIZES_KEY].of(STANDARD.account_id) == []


async def test_points_spent_meanwhile_are_refused_at_the_confirmation(harness: Harness) -> None:
    chat = await linked(harness)
    await _open_prize(chat, "Сувениры", "Футболка")  # 1 500 points
    assert nb("Цена: 1 500 баллов.") in chat.last_text
    assert "Баллов пока не хватает" in (await chat.press("Обменять на баллы")).text
    harness.sandbox.app[POINTS_KEY].add(FULL.account_id, 300, PointsKind.WELCOME, "Бонус")
    await chat.press("‹ Назад")
    await _open_prize(chat, "Сувениры", "Футболка")
    await chat.press("Обменять на баллы")
    assert "Подтвердить" in chat.buttons
    harness.sandbox.app[POINTS_KEY].add(FULL.account_id, -100, PointsKind.TRANSFER, "Фонду")
    await chat.press("Подтвердить")
    assert nb("у вас 1 450 баллов — не хватает ещё 50 баллов") in chat.last_text
    assert _prize_debits(harness) == []


async def test_a_sold_out_prize_says_so(harness: Harness) -> None:
    chat = await linked(harness)
    await chat.press("Баллы")
    await chat.press("Обменять")
    await chat.press("Билеты")
    label = next(b for b in chat.buttons if b.startswith("Экскурсия в Музей Москвы"))
    assert label.endswith("закончился")
    await chat.press(label)
    assert "Этот приз закончился" in chat.last_text
    assert "Обменять на баллы" not in chat.buttons
    assert _prize_debits(harness) == []


async def test_a_prize_sold_out_while_confirming_is_not_debited(harness: Harness) -> None:
    chat = await linked(harness)
    await _open_prize(chat, "Билеты", "Билет в Театр на Таганке")
    await chat.press("Обменять на баллы")
    harness.sandbox.app[PRIZES_KEY].prize("401").stock = 0  # type: ignore[union-attr]
    await chat.press("Подтвердить")
    assert "Этот приз закончился" in chat.last_text
    assert _prize_debits(harness) == []


async def test_a_ticket_is_shown_with_its_number(harness: Harness) -> None:
    chat = await linked(harness)
    await _open_prize(chat, "Билеты", "Билет в Третьяковскую галерею")
    await chat.press("Обменять на баллы")
    await chat.press("Подтвердить")
    [got] = harness.sandbox.app[PRIZES_KEY].of(FULL.account_id)
    assert got.code.startswith("T-") and f"Код: {got.code}" in chat.last_text
    await chat.press("Мои призы")
    assert got.code in chat.last_text


async def test_my_prizes_empty(harness: Harness) -> None:
    chat = await linked(harness)
    await chat.press("Баллы")
    await chat.press("Мои призы")
    assert "Призов пока нет" in chat.last_text


@pytest.mark.markup_in_values  # the name holds tags on purpose: shown as the text it is
@pytest.mark.parametrize("name", ["Кофе <b>& «2+2»</b> <i", "Я" * 5_000])
async def test_hostile_prize_names_render(harness: Harness, name: str) -> None:
    shop = harness.sandbox.app[PRIZES_KEY]
    coffee = shop.prize("301")
    assert coffee is not None
    coffee.name = name
    coffee.description = f"{name} — описание"
    chat = await linked(harness)
    await chat.press("Баллы")
    await chat.press("Обменять")
    await chat.press("Промокоды")
    [label] = [b for b in chat.buttons if b.startswith(name[:20])]
    card = await chat.press(label)
    confirm = await chat.press("Обменять на баллы")
    done = await chat.press("Подтвердить")
    if len(name) < 100:
        assert name in card.text and f"«{name}»" in confirm.text and f"«{name}»" in done.text
    await chat.press("Мои призы")
    if len(name) < 100:
        assert name in chat.last_text
    else:
        assert "Я" * 400 in chat.last_text and "…" in chat.last_text
    assert _prize_debits(harness) == [-200]
    assert_clean(chat)


@pytest.mark.parametrize("item", ["999", "abc", "١", "-1", "<b>", "", "0", "9" * 25])
async def test_forged_prize_ids_get_the_toast_and_debit_nothing(
    harness: Harness, item: str
) -> None:
    chat = await linked(harness)
    await chat.press("Баллы")
    await chat.press("Обменять")
    await chat.press("Промокоды")
    label = nb(f"{COFFEE} · 200 баллов")
    reply = await forge(chat, forged_item(chat, label, item))
    no_crash(reply)
    assert reply.answered
    assert label in chat.buttons  # still the list
    assert [a.text for a in reply.callback_answers] == [FORGED]
    assert _prize_debits(harness) == []
    assert_clean(chat)


@pytest.mark.parametrize("item", ["gifts", "../prizes", "<b>"])
async def test_forged_prize_category_gets_the_toast(harness: Harness, item: str) -> None:
    chat = await linked(harness)
    await chat.press("Баллы")
    await chat.press("Обменять")
    reply = await forge(chat, forged_item(chat, "Промокоды", item))
    no_crash(reply)
    assert [a.text for a in reply.callback_answers] == [FORGED]
    assert "Промокоды" in chat.buttons
    assert_clean(chat)


@pytest.mark.parametrize(
    ("price", "shown"),
    [(1, "1 балл"), (2, "2 балла"), (5, "5 баллов"), (21, "21 балл"), (1_500, "1 500 баллов")],
)
async def test_prices_are_in_points_with_russian_plurals(
    harness: Harness, price: int, shown: str
) -> None:
    coffee = harness.sandbox.app[PRIZES_KEY].prize("301")
    assert coffee is not None
    coffee.price = price
    chat = await linked(harness)
    await chat.press("Баллы")
    await chat.press("Обменять")
    await chat.press("Промокоды")
    assert nb(f"{COFFEE} · {shown}") in chat.buttons
    await chat.press(nb(f"{COFFEE} · {shown}"))
    assert nb(f"Цена: {shown}.") in chat.last_text


async def test_an_old_prize_button_after_the_list_changed(harness: Harness) -> None:
    """A prize button carries `item_ref` of the prize's id, not its position: the first
    prize of the category goes away and the list is drawn again; taps on the OLD message are
    refused as a stale screen (review 33b; before, its second prize opened that prize), and
    the current list opens the same prize."""
    chat = await linked(harness)
    await chat.press("Баллы")
    await chat.press("Обменять")
    await chat.press("Промокоды")
    old = chat.last_message
    assert old is not None
    payload = dict(old.payload)
    gone_button, tapped = old.buttons[0], old.buttons[1]
    assert gone_button.text.startswith(COFFEE)
    shop = harness.sandbox.app[PRIZES_KEY]
    shop.catalogue = [p for p in shop.catalogue if p.id != "301"]
    await chat.send("а что лучше?")  # a hint: the window drawn again, without the coffee
    assert not any(b.startswith(COFFEE) for b in chat.buttons)
    gone = await press_again(chat, payload, gone_button.callback_data or "")
    no_crash(gone)
    assert [a.text for a in gone.callback_answers] == [STALE]
    assert _prize_debits(harness) == []
    reply = await press_again(chat, payload, tapped.callback_data or "")
    no_crash(reply)
    assert [a.text for a in reply.callback_answers] == [STALE]
    reply = await chat.press(tapped.text)
    name = tapped.text.split(" · ")[0]
    assert name in reply.text and "Цена:" in reply.text  # the tapped prize's card
