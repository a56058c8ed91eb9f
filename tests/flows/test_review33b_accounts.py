"""Review 33b: the account's life and city points, attacked as an attacker and an unlucky
resident would — deep links replayed and reused, accounts switched and unlinked under open
screens, tokens refused by the city in the middle of a transfer or an exchange, hostile
amounts, double taps, stale and forged confirmations. Nothing moves twice or to a target the
resident did not confirm; what the resident reads is true and leads somewhere."""

from __future__ import annotations

from typing import Any

from bot.app import reconcile_payments
from handlers.buttons import item_ref
from sandbox.browser import demo_login, pay_on_page
from sandbox.conversation import Conversation
from sandbox.data import FULL
from sandbox.prizes_api import PRIZES_KEY
from tests.flows.conftest import STALE, START_LINK, Harness
from tests.flows.test_charity_points_meters import linked
from tests.flows.test_hostile_input import CRASH, FORGED, forge, forged_item, no_crash, press_again
from tests.flows.test_payments import bill_buttons
from tests.flows.test_prizes import COFFEE, _open_prize, _prize_debits
from tests.flows.test_review15_prizes_money import NO_ANSWER, _transfer_debits
from tests.flows.test_startup_reconcile import pending_3ds_payment

LINK_BUTTON = "🔑 Привязать аккаунт mos.ru"
RELINK = "Привяжите аккаунт заново"


async def refuse_tokens(harness: Harness, chat: Conversation) -> None:
    """The city stops taking the resident's tokens (consent withdrawn at mos.ru): the refresh
    token is revoked and the access token expired, so the next call gets 401 and the refresh
    is refused."""
    resident = await harness.stored_resident(chat)
    assert resident is not None and harness.app is not None
    await harness.app.city.revoke(resident.tokens.refresh_token)
    await harness.sandbox_call("POST", "/sandbox/tokens/expire")


async def transfer_confirmation(chat: Conversation, fund: int = 1, points: str = "100") -> None:
    if "Перевести баллы в фонд" not in chat.buttons:  # from the menu; else from «Баллы»
        await chat.press("Баллы")
    await chat.press("Перевести баллы в фонд")
    await chat.press(fund)
    await chat.send(points)
    assert "Подтвердить" in chat.buttons, chat.last_text


async def deep_link(harness: Harness, chat: Conversation, login: str = "demo-full") -> str:
    page = await harness.login_page(chat, login)
    match = START_LINK.search(page)
    assert match, page
    return match.group(1)


def said(reply: Any) -> str:
    return reply.text + " ".join(a.text or "" for a in reply.callback_answers)


# ---- typed amounts ---------------------------------------------------------------------------


async def test_hostile_transfer_amounts_are_refused_and_the_balance_is_the_limit(
    harness: Harness,
) -> None:
    chat = await linked(harness)  # 1 250 points
    await transfer_confirmation(chat, points="1 250 баллов")  # exactly the balance is asked
    await chat.press("Отмена")
    await chat.press("Перевести баллы в фонд")
    await chat.press(1)
    for typed in ["1e5", "-5", "0", "10 000", "１００", "²", "7" * 5000, "12.5", "12,5", "1 251"]:
        reply = await chat.send(typed)
        no_crash(reply)
        assert "Подтвердить" not in chat.buttons, typed
        assert "цифр" in reply.text or "число" in reply.text, (typed[:10], reply.text)
    await chat.send("1\u00a0000")
    assert "Перевести 1\u00a0000 баллов" in chat.last_text
    assert _transfer_debits(harness) == []


# ---- confirmations: double taps, stale and forged ---------------------------------------------


async def test_a_transfer_confirmed_three_times_at_once_debits_once(harness: Harness) -> None:
    chat = await linked(harness)
    await transfer_confirmation(chat)
    message = chat.last_message
    assert message is not None
    [yes] = [b for b in message.buttons if b.text == "Подтвердить"]
    queries = []
    for n in range(3):
        query_id = f"tap-{n}"
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
    no_crash(await chat._feed(*queries))
    assert _transfer_debits(harness) == [-100]
    assert sum("получил 100" in t for t in chat.history) == 1


# Was (review 33b): an old «Подтвердить» of a points transfer (100 to one fund) confirms the
# transfer pending now (500 to another fund): the button carries no tag of its confirmation, as
# prizes' do
async def test_an_old_transfer_confirmation_does_not_send_another_amount_to_another_fund(
    harness: Harness,
) -> None:
    """The confirmation «100 баллов → the first fund» stays as its own message (the resident
    typed a question, the window came back below); they cancel and confirm 500 to the second
    fund. A client still showing the old keyboard sends the old «Подтвердить»."""
    chat = await linked(harness)
    await transfer_confirmation(chat, fund=1, points="100")
    old = chat.last_message
    assert old is not None
    [yes] = [b for b in old.buttons if b.text == "Подтвердить"]
    payload = dict(old.payload)
    await chat.send("а точно?")  # the window again below, as a new message
    await chat.press("Отмена")
    await chat.press("Перевести баллы в фонд")
    await chat.press(2)
    await chat.send("500")
    still = chat.telegram.message(chat.chat_id, old.message_id)
    assert still is not None and "Перевести 100 баллов" in still.text
    reply = await press_again(chat, payload, yes.callback_data or "")
    no_crash(reply)
    assert _transfer_debits(harness) in ([], [-100]), "the 100-point screen sent 500 elsewhere"
    assert _transfer_debits(harness) == []  # refused as a stale screen, told so
    assert [a.text for a in reply.callback_answers] == [STALE]
    await chat.press("Подтвердить")  # the confirmation on screen now still works
    assert _transfer_debits(harness) == [-500]


async def test_another_residents_transfer_confirmation_moves_nothing(harness: Harness) -> None:
    owner = await linked(harness)
    await transfer_confirmation(owner)
    message = owner.last_message
    assert message is not None
    [yes] = [b for b in message.buttons if b.text == "Подтвердить"]
    other = harness.chat(100002, "Олег")
    await harness.link(other, "demo-standard")
    await other.press("Баллы")
    reply = await forge(other, yes.callback_data or "")
    no_crash(reply)
    assert reply.answered and any("а" <= ch <= "я" for ch in said(reply).lower())
    assert _transfer_debits(harness) == []
    assert other.buttons, "a way on"


async def test_forged_forget_buttons_drop_nothing(harness: Harness) -> None:
    """A transfer whose answer was lost is kept with «Забыть»; forged «Забыть» items (the
    fund's reference under the exchange's letter, another fund) and a forged «Да, забыть»
    without its warning get a toast and keep it."""
    chat = await linked(harness)
    await transfer_confirmation(chat)
    await harness.sandbox_call("PUT", "/sandbox/faults", json=NO_ANSWER)
    await chat.press("Подтвердить")
    await harness.sandbox_call("PUT", "/sandbox/faults", json={})
    await chat.press("‹ Назад")
    [forget] = [b for b in chat.buttons if b.startswith("Забыть: ")]
    message = chat.last_message
    assert message is not None
    [kept] = [b for b in message.buttons if b.text == forget]
    own = (kept.callback_data or "").rpartition(":")[2]
    assert own.startswith("t")
    for item in ["p" + own[1:], "t" + item_ref("fund-nope"), "t", "x" * 40]:
        reply = await forge(chat, forged_item(chat, forget, item))
        no_crash(reply)
        assert [(a.text or "")[: len(FORGED)] for a in reply.callback_answers] == [FORGED], item
    head = (kept.callback_data or "").partition("\x1d")[0]
    reply = await forge(chat, f"{head}\x1dforget_yes")
    no_crash(reply)
    await chat.send("/start")
    await chat.press("Баллы")
    assert forget in chat.buttons and "пока не знаем" in chat.last_text
    assert _transfer_debits(harness) == [-100]


# ---- the city refuses the tokens mid-operation -------------------------------------------------


# Was (review 33b): tokens refused at the transfer's «Подтвердить» are told as «Сервис города не
# ответил… пока не знаем, прошёл ли перевод», not «привяжите аккаунт заново», and no way to link
async def test_tokens_refused_at_the_transfers_confirmation_ask_to_link_again(
    harness: Harness,
) -> None:
    chat = await linked(harness)
    await transfer_confirmation(chat)
    await refuse_tokens(harness, chat)
    reply = await chat.press("Подтвердить")
    no_crash(reply)
    assert _transfer_debits(harness) == []
    assert await harness.stored_resident(chat) is None
    assert "не ответил" not in reply.text, reply.text
    assert RELINK in reply.text and chat.buttons == [LINK_BUTTON]


# Was (review 33b): tokens refused at the exchange's «Подтвердить» are told as «Сервис города не
# ответил… пока не знаем, прошёл ли обмен», not «привяжите аккаунт заново», and no way to link
async def test_tokens_refused_at_the_exchanges_confirmation_ask_to_link_again(
    harness: Harness,
) -> None:
    chat = await linked(harness)
    await _open_prize(chat, "Промокоды", COFFEE)
    await chat.press("Обменять на баллы")
    await refuse_tokens(harness, chat)
    reply = await chat.press("Подтвердить")
    no_crash(reply)
    assert _prize_debits(harness) == []
    assert "не ответил" not in reply.text, reply.text
    assert RELINK in reply.text and chat.buttons == [LINK_BUTTON]


# Was (review 33b): after the city refused the tokens inside «Баллы», «‹ Назад» answers «Сначала
# привяжите аккаунт — кнопка в меню» again and again and never shows that menu
async def test_after_tokens_refused_inside_points_back_leads_to_linking(harness: Harness) -> None:
    chat = await linked(harness)
    await transfer_confirmation(chat)
    await refuse_tokens(harness, chat)
    await chat.press("Подтвердить")
    for _ in range(3):
        if LINK_BUTTON in chat.buttons:
            break
        no_crash(await chat.press("‹ Назад"))
    assert chat.buttons == [LINK_BUTTON], (chat.last_text, chat.buttons)


# ---- linking: deep links replayed, reused, older attempts -------------------------------------


async def test_the_deep_link_pressed_again_after_linking_keeps_the_link(harness: Harness) -> None:
    chat = harness.chat()
    await chat.send("/start")
    await chat.press("Привязать")
    link = await deep_link(harness, chat)
    assert "Аккаунт привязан" in (await chat.send(f"/start {link}")).text
    again = await chat.send(f"/start {link}")
    no_crash(again)
    assert "Если аккаунт не привязался" in again.text  # not a flat «failed»
    assert "Баллы" in " ".join(chat.buttons)  # still linked, the linked menu
    assert await harness.stored_resident(chat) is not None


async def test_a_deep_link_from_before_unlinking_links_nothing(harness: Harness) -> None:
    """Two logins begun; the second linked, then «Отвязать»: the first login's deep link
    (authorized, never used) must not bring any account back."""
    chat = harness.chat()
    await chat.send("/start")
    await chat.press("Привязать")
    first = await deep_link(harness, chat, "demo-full")
    await chat.send("/start")
    await chat.press("Привязать")
    await chat.send(f"/start {await deep_link(harness, chat, 'demo-standard')}")
    await chat.press("Отвязать аккаунт")
    await chat.press("Да, отвязать")
    reply = await chat.send(f"/start {first}")
    no_crash(reply)
    assert "не подошла" in reply.text
    assert await harness.stored_resident(chat) is None
    assert chat.buttons == [LINK_BUTTON]


# Was (review 33b): an older login finished with another mos.ru account (no unlinking) keeps the old
# account's open payment under the new one: never settled, offered as «Продолжить оплату»
async def test_an_older_login_with_another_account_leaves_no_foreign_payment_open(
    harness: Harness,
) -> None:
    """The resident pressed «Привязать» twice and linked with the second login; while a card
    payment of that account waits for (and gets) the bank's confirmation, the first login's
    button — still in the chat — is used with a family member's mos.ru account."""
    chat = harness.chat()
    await chat.send("/start")
    await chat.press("Привязать")
    older = chat.url_of("mos.ru")
    await chat.send("/start")
    await chat.press("Привязать")
    await chat.send(f"/start {await deep_link(harness, chat, 'demo-full')}")
    await chat.press("Мои счета")
    await chat.press(bill_buttons(chat)[0])
    await chat.press("Оплатить выбранные")
    await chat.press("Другой способ оплаты")
    await chat.press("•• 3220")
    await chat.press("Оплатить")
    await pay_on_page(chat.url_of("Перейти к оплате"), action="confirm")  # paid at the city
    page = (await demo_login(older, "demo-standard")).text
    match = START_LINK.search(page)
    assert match, page
    assert "Аккаунт привязан" in (await chat.send(f"/start {match.group(1)}")).text
    harness.clock.advance(600)
    assert harness.app is not None
    await reconcile_payments(harness.app, harness.clock)
    await chat.press("История платежей")
    assert not [b for b in chat.buttons if "Продолжить оплату" in b], chat.buttons


# ---- unlinking under open screens; two Telegram users on one account ---------------------------


async def test_unlinking_while_the_bank_confirmation_waits_then_check_moves_nothing(
    harness: Harness,
) -> None:
    chat = await pending_3ds_payment(harness, confirm=False)
    message = chat.last_message
    assert message is not None
    [check] = [b for b in message.buttons if b.text == "Проверить оплату"]
    await chat.send("/start")
    await chat.press("Отвязать аккаунт")
    await chat.press("Да, отвязать")
    ledger = (await harness.sandbox_call("GET", "/sandbox/ledger"))["charges"]
    for _ in range(2):
        reply = await press_again(chat, dict(message.payload), check.callback_data or "")
        no_crash(reply)
        assert reply.answered
    assert chat.buttons == [LINK_BUTTON]
    assert (await harness.sandbox_call("GET", "/sandbox/ledger"))["charges"] == ledger


async def test_two_telegram_users_on_one_account_unlinking_one_leaves_the_other(
    harness: Harness,
) -> None:
    first = harness.chat(100001, "Мария")
    second = harness.chat(100002, "Олег")
    await harness.link(first)
    await harness.link(second)
    await first.send("/start")
    await first.press("Отвязать аккаунт")
    await first.press("Да, отвязать")
    await second.send("/start")
    reply = await second.press("Баллы")
    no_crash(reply)
    assert "У вас 1\u00a0250 баллов" in reply.text
    await transfer_confirmation(second)
    await second.press("Подтвердить")
    assert _transfer_debits(harness) == [-100]


# ---- a lost exchange: one prize, its code shown once it exists ---------------------------------


async def test_a_lost_exchange_makes_one_prize_and_its_code_is_shown(harness: Harness) -> None:
    chat = await linked(harness)
    await _open_prize(chat, "Промокоды", COFFEE)
    await chat.press("Обменять на баллы")
    await harness.sandbox_call("PUT", "/sandbox/faults", json=NO_ANSWER)
    reply = await chat.press("Подтвердить")
    await harness.sandbox_call("PUT", "/sandbox/faults", json={})
    assert "Код:" not in reply.text and "Мои призы" in reply.text
    [made] = harness.sandbox.app[PRIZES_KEY].of(FULL.account_id)
    await chat.press("Мои призы")  # the done screen's own button
    assert chat.last_text.count(made.code) == 1
    await chat.press("Обменять")
    await chat.press("Промокоды")
    await chat.press(next(b for b in chat.buttons if b.startswith(COFFEE)))
    await chat.press("Обменять на баллы")
    await chat.press("Подтвердить")
    assert f"Код: {made.code}" in chat.last_text
    assert _prize_debits(harness) == [-200]
    assert len(harness.sandbox.app[PRIZES_KEY].of(FULL.account_id)) == 1
    for text in CRASH:
        assert all(text not in t for t in chat.history)
