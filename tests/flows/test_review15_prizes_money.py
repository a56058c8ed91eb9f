"""Review of issue 15 («Обменять»): the exchange's money side attacked — lost answers followed by
ordinary resident moves, stale confirmations, concurrency, restarts, exact balances."""

from __future__ import annotations

from sandbox.conversation import Conversation
from sandbox.data import FULL
from sandbox.points import PointsKind
from sandbox.points_api import POINTS_KEY
from sandbox.prizes_api import PRIZES_KEY
from tests.flows.conftest import STALE, Harness
from tests.flows.test_charity_points_meters import linked
from tests.flows.test_hostile_input import no_crash, press_again
from tests.flows.test_hostile_text import assert_clean
from tests.flows.test_prizes import COFFEE, _open_prize, _prize_debits
from tests.money_text import nb

BOOK = "Промокод в книжный"  # 250 points
BOOK_NAME = "Промокод в книжный «Москва»"
NO_ANSWER = {"fail_after_processing": 10}  # every attempt is made by the city, no answer comes


async def _lost_exchange(harness: Harness, chat: Conversation, category: str, name: str) -> None:
    """The exchange of `name` is made at the city but the bot never hears the answer."""
    await _open_prize(chat, category, name)
    await chat.press("Обменять на баллы")
    await harness.sandbox_call("PUT", "/sandbox/faults", json=NO_ANSWER)
    await chat.press("Подтвердить")
    await harness.sandbox_call("PUT", "/sandbox/faults", json={})
    assert "Код:" not in chat.last_text
    assert _prize_debits(harness) == [-200]  # made once at the city


# Fixed (review 15, then the late review of kept keys): the unknown exchange's key is kept
# outside the dialog (the chat's FSM data). It is never sent again on its own — opening the
# catalogue or «Мои призы» only says the outcome is unknown (with «Забыть») — and it is sent
# again, with the price it was sent with, when the resident repeats the same exchange and
# confirms it: the platform replays the coffee made, never a second one.


def _made_code(harness: Harness) -> str:
    [got] = harness.sandbox.app[PRIZES_KEY].of(FULL.account_id)
    return got.code


async def _catalogue_says_unknown(harness: Harness, chat: Conversation) -> None:
    """The catalogue opened after a lost answer says the outcome is unknown (sends nothing)."""
    assert nb(f"Обмен на «{COFFEE}» за 200 баллов: пока не знаем") in chat.last_text
    assert f"Забыть: {COFFEE}" in chat.buttons
    assert "Код:" not in chat.last_text
    assert _prize_debits(harness) == [-200], "one confirmed exchange, debited twice"


async def _retry_at_the_prize_tells_the_outcome(
    harness: Harness, chat: Conversation, category: str
) -> None:
    """The resident opens the coffee again and presses «Обменять на баллы»: the confirmation
    carries the kept key and price; «Подтвердить» shows the code of the coffee made — nothing
    debited twice."""
    await _open_prize(chat, category, COFFEE)
    assert "пока не знаем" in chat.last_text  # the card says so too
    await chat.press("Обменять на баллы")
    assert nb("Обменять 200 баллов") in chat.last_text
    await chat.press("Подтвердить")
    assert f"Код: {_made_code(harness)}" in chat.last_text
    assert _prize_debits(harness) == [-200], "one confirmed exchange, debited twice"


async def test_lost_answer_then_back_to_the_menu_and_again_debits_twice(harness: Harness) -> None:
    """The resident is told the outcome is not known yet; they go back to the menu (the points
    dialog closes) and try again a minute later."""
    chat = await linked(harness)
    await _lost_exchange(harness, chat, "Промокоды", COFFEE)
    assert "пока не знаем, прошёл ли обмен" in chat.last_text
    assert "Ничего не потеряно" not in chat.last_text
    await chat.press("‹ Назад")  # prize_done → «Баллы»
    await chat.press("‹ Назад")  # «Баллы» → the main menu: the dialog (and its key) is gone
    await chat.press("Баллы")
    await chat.press("Обменять")
    await _catalogue_says_unknown(harness, chat)


async def test_lost_answer_then_back_to_the_menu_and_the_same_prize(harness: Harness) -> None:
    chat = await linked(harness)
    await _lost_exchange(harness, chat, "Промокоды", COFFEE)
    await chat.press("‹ Назад")
    await chat.press("‹ Назад")
    await _retry_at_the_prize_tells_the_outcome(harness, chat, "Промокоды")


async def test_lost_answer_then_slash_start_and_again_debits_twice(harness: Harness) -> None:
    chat = await linked(harness)
    await _lost_exchange(harness, chat, "Промокоды", COFFEE)
    await chat.send("/start")
    await _retry_at_the_prize_tells_the_outcome(harness, chat, "Промокоды")


async def test_lost_answer_then_slash_start_and_my_prizes(harness: Harness) -> None:
    chat = await linked(harness)
    await _lost_exchange(harness, chat, "Промокоды", COFFEE)
    await chat.send("/start")
    await chat.press("Баллы")
    assert nb(f"Обмен на «{COFFEE}» за 200 баллов: пока не знаем") in chat.last_text
    await chat.press("Мои призы")
    # The city made it: the list has the code; the kept key stays until a repeat or «Забыть».
    assert nb(f"Обмен на «{COFFEE}» за 200 баллов: пока не знаем") in chat.last_text
    assert chat.last_text.count(_made_code(harness)) == 1
    assert _prize_debits(harness) == [-200]


async def test_lost_answer_then_a_look_at_another_prize_drops_the_key(harness: Harness) -> None:
    """Still inside the dialog: a glance at another prize's confirmation (then «Отмена») no
    longer replaces the kept key: it lives outside the dialog, per prize."""
    chat = await linked(harness)
    await _lost_exchange(harness, chat, "Промокоды", COFFEE)
    exchange = "/api/v1/points/prizes/301/exchange"
    await harness.sandbox_call("PUT", "/sandbox/faults", json={"status": 503, "paths": [exchange]})
    await chat.press("Другие призы")
    await chat.press("Промокоды")
    await chat.press(next(b for b in chat.buttons if b.startswith(BOOK)))
    await chat.press("Обменять на баллы")
    await chat.press("Отмена")  # changed their mind about the book
    await chat.press("‹ Назад")
    await harness.sandbox_call("PUT", "/sandbox/faults", json={})
    await chat.press(next(b for b in chat.buttons if b.startswith(COFFEE)))
    await chat.press("Обменять на баллы")
    await chat.press("Подтвердить")
    assert f"Код: {_made_code(harness)}" in chat.last_text
    assert _prize_debits(harness) == [-200], "one confirmed coffee, debited twice"


async def test_lost_answer_then_a_new_price_debits_twice(harness: Harness) -> None:
    """The first exchange was made at 200; the price becomes 210 before the resident retries:
    the kept key is sent again with the price it was sent with (200), so the platform replays
    the coffee made — no second coffee."""
    chat = await linked(harness)
    await _lost_exchange(harness, chat, "Промокоды", COFFEE)
    coffee = harness.sandbox.app[PRIZES_KEY].prize("301")
    assert coffee is not None
    coffee.price = 210
    await chat.press("Другие призы")
    await _catalogue_says_unknown(harness, chat)
    await chat.press("Промокоды")
    await chat.press(next(b for b in chat.buttons if b.startswith(COFFEE)))
    await chat.press("Обменять на баллы")
    assert nb("Обменять 200 баллов") in chat.last_text  # the kept exchange, its own price
    await chat.press("Подтвердить")
    assert f"Код: {_made_code(harness)}" in chat.last_text
    assert _prize_debits(harness) == [-200], "the resident paid for two coffees"
    await chat.press("Другие призы")  # settled: nothing kept any more
    assert "пока не знаем" not in chat.last_text
    await chat.press("Промокоды")
    await chat.press(next(b for b in chat.buttons if b.startswith(COFFEE)))
    await chat.press("Обменять на баллы")
    assert nb("Обменять 210 баллов") in chat.last_text  # a second coffee, knowingly


async def test_lost_answer_refused_later_is_dropped_and_told(harness: Harness) -> None:
    """The exchange was NOT made (a 503 before the platform did anything), and the price went
    up meanwhile: sent again with its old price, it is refused (409 price_changed) — the
    resident is told nothing was debited, and the next exchange is an ordinary one."""
    chat = await linked(harness)
    await _open_prize(chat, "Промокоды", COFFEE)
    await chat.press("Обменять на баллы")
    await harness.sandbox_call("PUT", "/sandbox/faults", json={"status": 503})
    await chat.press("Подтвердить")
    await harness.sandbox_call("PUT", "/sandbox/faults", json={})
    assert "пока не знаем, прошёл ли обмен" in chat.last_text
    coffee = harness.sandbox.app[PRIZES_KEY].prize("301")
    assert coffee is not None
    coffee.price = 210
    await chat.send("/start")
    await chat.press("Баллы")
    await chat.press("Обменять")
    await chat.press("Промокоды")
    await chat.press(next(b for b in chat.buttons if b.startswith(COFFEE)))
    await chat.press("Обменять на баллы")
    assert nb("Обменять 200 баллов") in chat.last_text  # the repeat: its key and price
    await chat.press("Подтвердить")
    assert nb("теперь 210 баллов") in chat.last_text  # refused: nothing debited, key dropped
    assert _prize_debits(harness) == []
    await chat.press("Другие призы")
    assert "пока не знаем" not in chat.last_text
    await chat.press("Промокоды")
    await chat.press(next(b for b in chat.buttons if b.startswith(COFFEE)))
    await chat.press("Обменять на баллы")
    await chat.press("Подтвердить")
    assert f"Код: {_made_code(harness)}" in chat.last_text
    assert _prize_debits(harness) == [-210]


async def test_an_old_confirmation_confirms_the_prize_on_screen_now(harness: Harness) -> None:
    """The confirmation of the coffee (200) stays in the chat as its own message (the resident
    typed something, the window came back below). Later the resident opens the book (250) and
    its confirmation; a tap on the OLD coffee message's «Подтвердить» (sent by a client that
    still shows its keyboard) buys the book: the button does not say what it confirms."""
    chat = await linked(harness)
    await _open_prize(chat, "Промокоды", COFFEE)
    await chat.press("Обменять на баллы")
    old = chat.last_message
    assert old is not None and COFFEE in old.text
    old_payload = dict(old.payload)
    [yes] = [b for b in old.buttons if b.text == "Подтвердить"]
    await chat.send("а это точно кофе?")  # a hint, the window again below as a new message
    assert chat.last_message is not None and chat.last_message.message_id != old.message_id
    await chat.press("Отмена")
    await chat.press("‹ Назад")
    await chat.press(next(b for b in chat.buttons if b.startswith(BOOK)))
    await chat.press("Обменять на баллы")
    still = chat.telegram.message(chat.chat_id, old.message_id)
    assert still is not None
    # The bot took the old keyboard off; a client that has not applied that edit yet (a slow
    # phone, a second device, a tap in flight) still sends the old «Подтвердить»:
    assert COFFEE in still.text and still.buttons == []
    reply = await press_again(chat, old_payload, yes.callback_data or "")
    no_crash(reply)
    got = [e.name for e in harness.sandbox.app[PRIZES_KEY].of(FULL.account_id)]
    assert got in ([], [COFFEE]), f"the coffee's confirmation bought {got}"
    # Fixed (review 15): the button carries a tag of its confirmation's key; a stale one gets
    # the toast and does nothing — the book's confirmation on screen stays usable.
    assert got == []
    # Since review 33b the press is refused before it: the message is not the current one.
    assert [a.text for a in reply.callback_answers] == [STALE]
    await chat.press("Подтвердить")
    assert [e.name for e in harness.sandbox.app[PRIZES_KEY].of(FULL.account_id)] == [BOOK_NAME]


async def test_double_tap_at_once_debits_once(harness: Harness) -> None:
    """Two callback queries of «Подтвердить» handled concurrently (two updates in flight)."""
    chat = await linked(harness)
    await _open_prize(chat, "Промокоды", COFFEE)
    await chat.press("Обменять на баллы")
    message = chat.last_message
    assert message is not None
    [yes] = [b for b in message.buttons if b.text == "Подтвердить"]
    queries = []
    for n in range(3):
        query_id = f"triple-{n}"
        chat.telegram.open_callback_query(query_id)
        queries.append(
            {
                "callback_query": {
                    "id": query_id,
                    "from": dict(chat.user),
                    "message": dict(message.payload),
                    "chat_instance": f"local-{chat.chat_id}",
                    "data": yes.callback_data,
                }
            }
        )
    reply = await chat._feed(*queries)
    no_crash(reply)
    assert _prize_debits(harness) == [-200]
    assert len(harness.sandbox.app[PRIZES_KEY].of(FULL.account_id)) == 1
    assert_clean(chat)


async def test_restart_between_confirmation_and_tap_debits_once(harness: Harness) -> None:
    chat = await linked(harness)
    await _open_prize(chat, "Промокоды", COFFEE)
    await chat.press("Обменять на баллы")
    message = chat.last_message
    assert message is not None
    payload = dict(message.payload)
    [yes] = [b for b in message.buttons if b.text == "Подтвердить"]
    await harness.restart()
    chat = harness.chat()  # the same resident: user id 100001
    reply = await press_again(chat, payload, yes.callback_data or "")
    no_crash(reply)
    again = await press_again(chat, payload, yes.callback_data or "")
    no_crash(again)
    assert _prize_debits(harness) == [-200]


async def test_restart_after_a_lost_answer_keeps_the_key(harness: Harness) -> None:
    chat = await linked(harness)
    await _lost_exchange(harness, chat, "Промокоды", COFFEE)
    screen = chat.last_message
    assert screen is not None
    await harness.restart()
    chat = harness.chat()  # the same resident, the same dialog (its data is stored)
    await chat.press("Другие призы", message_id=screen.message_id)
    await chat.press("Промокоды")
    await chat.press(next(b for b in chat.buttons if b.startswith(COFFEE)))
    await chat.press("Обменять на баллы")
    await chat.press("Подтвердить")
    assert "Код:" in chat.last_text
    assert _prize_debits(harness) == [-200]


async def test_exactly_the_balance_and_then_zero(harness: Harness) -> None:
    book = harness.sandbox.app[POINTS_KEY]
    book.add(FULL.account_id, -(book.balance(FULL.account_id) - 200), PointsKind.TRANSFER, "x")
    chat = await linked(harness)
    await _open_prize(chat, "Промокоды", COFFEE)
    await chat.press("Обменять на баллы")
    assert "Подтвердить" in chat.buttons
    await chat.press("Подтвердить")
    assert nb("Осталось 0 баллов") in chat.last_text
    await chat.press("Другие призы")
    assert nb("У вас 0 баллов") in chat.last_text
    await chat.press("Промокоды")
    await chat.press(next(b for b in chat.buttons if b.startswith(COFFEE)))
    await chat.press("Обменять на баллы")
    assert "Баллов пока не хватает" in chat.last_text
    assert _prize_debits(harness) == [-200]
    assert_clean(chat)


async def test_city_down_during_the_exchange_then_back(harness: Harness) -> None:
    chat = await linked(harness)
    await _open_prize(chat, "Промокоды", COFFEE)
    await chat.press("Обменять на баллы")
    await harness.sandbox_call("PUT", "/sandbox/faults", json={"status": 503})
    await chat.press("Подтвердить")
    assert "пока не знаем, прошёл ли обмен" in chat.last_text
    await harness.sandbox_call("PUT", "/sandbox/faults", json={})
    await chat.press("‹ Назад")
    await _open_prize(chat, "Промокоды", COFFEE)
    await chat.press("Обменять на баллы")
    await chat.press("Подтвердить")
    assert "Код:" in chat.last_text
    assert _prize_debits(harness) == [-200]


async def test_price_up_between_card_and_confirm(harness: Harness) -> None:
    chat = await linked(harness)
    await _open_prize(chat, "Промокоды", COFFEE)
    await chat.press("Обменять на баллы")
    coffee = harness.sandbox.app[PRIZES_KEY].prize("301")
    assert coffee is not None
    coffee.price = 260
    await chat.press("Подтвердить")
    assert nb("теперь 260 баллов") in chat.last_text
    assert _prize_debits(harness) == []


async def test_a_tap_in_flight_after_cancel_does_not_exchange(harness: Harness) -> None:
    """«Отмена» on the confirmation, then a second «Подтвердить» of the same message arriving
    late (a double tap: cancel first, confirm in flight)."""
    chat = await linked(harness)
    await _open_prize(chat, "Промокоды", COFFEE)
    await chat.press("Обменять на баллы")
    message = chat.last_message
    assert message is not None
    payload = dict(message.payload)
    [yes] = [b for b in message.buttons if b.text == "Подтвердить"]
    await chat.press("Отмена")
    assert "Цена:" in chat.last_text
    reply = await press_again(chat, payload, yes.callback_data or "")
    no_crash(reply)
    print(
        "\nafter «Отмена», a late «Подтвердить»:",
        reply.texts,
        [a.text for a in reply.callback_answers],
    )
    assert _prize_debits(harness) == []


async def test_restart_after_a_lost_answer_in_every_state_store(any_state_harness: Harness) -> None:
    harness = any_state_harness
    chat = await linked(harness)
    await _lost_exchange(harness, chat, "Промокоды", COFFEE)
    screen = chat.last_message
    assert screen is not None
    await harness.restart()
    chat = harness.chat()
    await chat.press("Другие призы", message_id=screen.message_id)
    await chat.press("Промокоды")
    await chat.press(next(b for b in chat.buttons if b.startswith(COFFEE)))
    await chat.press("Обменять на баллы")
    await chat.press("Подтвердить")
    assert "Код:" in chat.last_text
    assert _prize_debits(harness) == [-200]


# ---------------------------------------------------------------- the points transfer


def _transfer_debits(harness: Harness) -> list[int]:
    book = harness.sandbox.app[POINTS_KEY]
    return [
        e.amount
        for e in book.entries
        if e.account_id == FULL.account_id and e.kind is PointsKind.TRANSFER
    ]


async def _lost_transfer(harness: Harness, chat: Conversation) -> None:
    """100 points to the first fund: made at the city, the answer never comes."""
    await chat.press("Баллы")
    await chat.press("Перевести баллы в фонд")
    await chat.press(1)
    await chat.send("100")
    await harness.sandbox_call("PUT", "/sandbox/faults", json=NO_ANSWER)
    await chat.press("Подтвердить")
    await harness.sandbox_call("PUT", "/sandbox/faults", json={})
    assert "пока не знаем, прошёл ли перевод" in chat.last_text
    assert _transfer_debits(harness) == [-100]


async def test_lost_transfer_then_the_menu_and_the_same_transfer_debits_once(
    harness: Harness,
) -> None:
    """The same design as the exchange had: a lost answer, back to the menu (the dialog and
    its key gone), the same amount to the same fund again — confirmed, under the kept key."""
    chat = await linked(harness)
    await _lost_transfer(harness, chat)
    await chat.press("‹ Назад")  # done → «Баллы»
    await chat.press("‹ Назад")  # «Баллы» → the main menu
    await chat.press("Баллы")
    await chat.press("Перевести баллы в фонд")
    await chat.press(1)
    await chat.send("100")
    await chat.press("Подтвердить")
    assert nb("получил 100 баллов") in chat.last_text
    assert _transfer_debits(harness) == [-100], "one confirmed transfer, debited twice"
    await chat.press("‹ Назад")
    assert "пока не знаем" not in chat.last_text  # settled: the key is dropped


async def test_lost_transfer_is_told_when_points_open_again(harness: Harness) -> None:
    """«Баллы» says the transfer's outcome is unknown and sends nothing; another amount to the
    same fund is refused (it could debit both) until the same one is repeated or forgotten."""
    chat = await linked(harness)
    await _lost_transfer(harness, chat)
    await chat.send("/start")
    await chat.press("Баллы")
    assert nb("на 100 баллов: пока не знаем, прошёл ли он") in chat.last_text
    assert _transfer_debits(harness) == [-100]
    await chat.press("Перевести баллы в фонд")
    await chat.press(1)
    reply = await chat.send("50")
    assert "Подтвердить" not in chat.buttons
    assert nb("повторите его на ту же сумму — 100 баллов") in reply.text
    assert _transfer_debits(harness) == [-100]


async def test_forget_warns_then_drops_the_kept_transfer(harness: Harness) -> None:
    """«Забыть»: a warning first («Не забывать» keeps it); «Да, забыть» drops the key — the
    next transfer to that fund is an ordinary one, with a new key (it debits again)."""
    chat = await linked(harness)
    await _lost_transfer(harness, chat)
    await chat.send("/start")
    await chat.press("Баллы")
    [forget] = [b for b in chat.buttons if b.startswith("Забыть: ")]
    await chat.press(forget)
    assert "баллы могут списаться ещё раз" in chat.last_text
    await chat.press("Не забывать")
    assert forget in chat.buttons  # still kept
    await chat.press(forget)
    await chat.press("Да, забыть")
    assert "пока не знаем" not in chat.last_text
    assert not [b for b in chat.buttons if b.startswith("Забыть")]
    await chat.press("Перевести баллы в фонд")
    await chat.press(1)
    await chat.send("50")
    await chat.press("Подтвердить")
    assert nb("получил 50 баллов") in chat.last_text
    assert _transfer_debits(harness) == [-100, -50]


async def test_forget_of_an_exchange_in_my_prizes(harness: Harness) -> None:
    chat = await linked(harness)
    await _lost_exchange(harness, chat, "Промокоды", COFFEE)
    await chat.press("Мои призы")
    await chat.press(f"Забыть: {COFFEE}")
    assert "Забыть его?" in chat.last_text
    await chat.press("Да, забыть")
    assert "пока не знаем" not in chat.last_text
    assert _made_code(harness) in chat.last_text  # the list itself is unchanged


async def test_lost_answer_survives_start_and_a_restart_in_every_state_store(
    any_state_harness: Harness,
) -> None:
    """The kept key is in the chat's FSM data, not the dialog's: /start closes every dialog,
    the process restarts, and the catalogue still knows the exchange is unknown (SQLite,
    PostgreSQL, Redis); repeating it shows the code of the one made."""
    harness = any_state_harness
    chat = await linked(harness)
    await _lost_exchange(harness, chat, "Промокоды", COFFEE)
    await chat.send("/start")
    await harness.restart()
    chat = harness.chat()
    await chat.send("/start")
    await chat.press("Баллы")
    await chat.press("Обменять")
    await _catalogue_says_unknown(harness, chat)
    await chat.press("‹ Назад")  # «Баллы»
    await _retry_at_the_prize_tells_the_outcome(harness, chat, "Промокоды")
