"""Paying bills as a resident does it, with the sandbox's ledger as the judge of every charge."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from domain.uin import with_control_digit
from handlers.bills import bill_ref
from sandbox.browser import pay_on_page
from sandbox.conversation import Conversation
from tests.flows.conftest import Harness

CARD_OK = "4242424242424242"
CARD_DECLINED = "4000000000000002"


async def ledger(harness: Harness) -> list[dict[str, Any]]:
    return (await harness.sandbox_call("GET", "/sandbox/ledger"))["charges"]


async def city_bills(harness: Harness, chat: Conversation) -> list[dict[str, Any]]:
    """The resident's unpaid bills as the city sees them (through the bot's own client)."""
    resident = await harness.stored_resident(chat)
    assert resident is not None and harness.app is not None
    from domain.linking import StaticSession

    bills = await harness.app.city.unpaid_bills(StaticSession(resident.tokens))
    return [{"id": b.id, "amount": b.amount} for b in bills]


async def open_bills(harness: Harness, login: str = "demo-full") -> Conversation:
    chat = harness.chat()
    await harness.link(chat, login)
    await chat.press("Мои счета")
    return chat


def bill_buttons(chat: Conversation) -> list[str]:
    return [b for b in chat.buttons if b[:1].isdigit() or b.startswith("✅")]


async def test_paying_two_of_three_bills(harness: Harness) -> None:
    chat = await open_bills(harness)
    before = await city_bills(harness, chat)
    first, second = bill_buttons(chat)[:2]
    await chat.press(first)
    await chat.press(second)
    assert sum(b.startswith("✅") for b in chat.buttons) == 2
    await chat.press("Оплатить выбранные (2)")
    confirm = chat.last_text
    total = before[0]["amount"] + before[1]["amount"]
    assert "К оплате 2 счёта" in confirm and "карта Visa •• 4242" in confirm

    reply = await chat.press("Оплатить")
    assert "✅ Оплачено" in reply.text and "Квитанция №" in reply.text
    charges = await ledger(harness)
    assert [c["amount"] for c in charges] == [total]
    after = await city_bills(harness, chat)
    assert {b["id"] for b in before} - {b["id"] for b in after} == {
        before[0]["id"],
        before[1]["id"],
    }
    await chat.press("Готово")
    assert "У вас 10 неоплаченных счетов" in chat.last_text
    assert not any(b.startswith("✅") for b in chat.buttons)  # the picks are cleared


async def test_pay_all(harness: Harness) -> None:
    chat = await open_bills(harness, "demo-standard")
    before = await city_bills(harness, chat)
    await chat.press("Оплатить все")
    assert f"К оплате {len(before)} счёта" in chat.last_text
    await chat.press("Оплатить")
    assert "✅ Оплачено" in chat.last_text
    assert [c["amount"] for c in await ledger(harness)] == [sum(b["amount"] for b in before)]
    assert await city_bills(harness, chat) == []


@pytest.mark.parametrize(
    ("card", "message"),
    [("•• 0002", "Банк отклонил платёж"), ("•• 9995", "недостаточно средств")],
)
async def test_a_refused_card_charges_nothing(harness: Harness, card: str, message: str) -> None:
    chat = await open_bills(harness)
    before = await city_bills(harness, chat)
    await chat.press(bill_buttons(chat)[0])
    await chat.press("Оплатить выбранные")
    await chat.press("Другой способ оплаты")
    await chat.press(card)
    assert card in chat.last_text
    reply = await chat.press("Оплатить")
    assert message in reply.text
    assert await ledger(harness) == []
    assert await city_bills(harness, chat) == before

    await chat.press("Выбрать другую карту")  # nothing lost: another card, same bill
    await chat.press("•• 4242")
    await chat.press("Оплатить")
    assert "✅ Оплачено" in chat.last_text
    assert [c["amount"] for c in await ledger(harness)] == [before[0]["amount"]]


@pytest.mark.parametrize(
    ("card", "expected", "charges"),
    [(CARD_OK, "✅ Оплачено", 1), (CARD_DECLINED, "Банк отклонил платёж", 0)],
)
async def test_a_new_card_on_the_hosted_page(
    harness: Harness, card: str, expected: str, charges: int
) -> None:
    chat = await open_bills(harness)
    await chat.press(bill_buttons(chat)[0])
    await chat.press("Оплатить выбранные")
    await chat.press("Другой способ оплаты")
    await chat.press("Новая карта")
    assert "новая карта" in chat.last_text
    reply = await chat.press("Оплатить")
    assert "подтвердить оплату на странице банка" in reply.text
    page = await pay_on_page(chat.url_of("Перейти к оплате"), card_number=card)
    assert page.status == 200
    reply = await chat.press("Проверить оплату")
    assert expected in reply.text
    assert len(await ledger(harness)) == charges


async def test_a_bill_paid_elsewhere_is_not_charged(harness: Harness) -> None:
    chat = await open_bills(harness)
    bill = (await city_bills(harness, chat))[0]
    await chat.press(bill_buttons(chat)[0])
    await chat.press("Оплатить выбранные")
    await harness.sandbox_call("PATCH", f"/sandbox/bills/{bill['id']}", json={"status": "paid"})
    reply = await chat.press("Оплатить")
    assert "уже оплачен — мы ничего не списали" in reply.text
    assert await ledger(harness) == []


async def test_a_changed_amount_is_confirmed_again(harness: Harness) -> None:
    chat = await open_bills(harness)
    bill = (await city_bills(harness, chat))[0]
    await chat.press(bill_buttons(chat)[0])
    await chat.press("Оплатить выбранные")
    new_amount = bill["amount"] + 10000
    await harness.sandbox_call("PATCH", f"/sandbox/bills/{bill['id']}", json={"amount": new_amount})
    reply = await chat.press("Оплатить")
    assert "Сумма изменилась" in reply.text and "Ничего не списано" in reply.text
    assert await ledger(harness) == []
    await chat.press("Оплатить ")  # «Оплатить <new amount>»
    await chat.press("Оплатить")
    assert "✅ Оплачено" in chat.last_text
    assert [c["amount"] for c in await ledger(harness)] == [new_amount]


async def test_two_presses_at_once_charge_once(harness: Harness) -> None:
    chat = await open_bills(harness)
    await chat.press("Оплатить все")
    pay_button = next(b for b in chat.buttons if b.startswith("Оплатить"))
    await asyncio.gather(chat.press(pay_button), chat.press(pay_button))
    assert len(await ledger(harness)) == 1
    assert "✅ Оплачено" in chat.last_text


async def test_a_lost_answer_is_retried_with_the_same_key(harness: Harness) -> None:
    chat = await open_bills(harness)
    await chat.press("Оплатить все")
    await harness.sandbox_call("PUT", "/sandbox/faults", json={"fail_after_processing": 1})
    reply = await chat.press("Оплатить")
    assert "✅ Оплачено" in reply.text
    charges = await ledger(harness)
    assert len(charges) == 1


async def test_no_answer_at_all_is_checked_later_without_paying_twice(harness: Harness) -> None:
    chat = await open_bills(harness)
    await chat.press("Оплатить все")
    await harness.sandbox_call("PUT", "/sandbox/faults", json={"fail_after_processing": 5})
    reply = await chat.press("Оплатить")
    assert "Не оплачивайте повторно" in reply.text
    await harness.sandbox_call("PUT", "/sandbox/faults", json={})
    reply = await chat.press("Проверить оплату")
    assert "✅ Оплачено" in reply.text
    assert len(await ledger(harness)) == 1


class Crash(BaseException):
    """The process dies: not an Exception, so no handler catches it."""


async def test_a_crash_after_the_charge_is_reconciled_on_start_up(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.app import reconcile_payments

    chat = await open_bills(harness)
    await chat.press("Оплатить все")
    assert harness.app is not None
    real_create = harness.app.city.create_payment

    async def charge_then_die(*args: Any, **kwargs: Any) -> Any:
        await real_create(*args, **kwargs)
        raise Crash()

    monkeypatch.setattr(harness.app.city, "create_payment", charge_then_die)
    with pytest.raises(Crash):
        await chat.press("Оплатить")
    assert len(await ledger(harness)) == 1  # charged, but the bot never recorded it

    app = await harness.restart()
    harness.clock.advance(60)
    assert await reconcile_payments(app, harness.clock) == 1
    chat = harness.chat()
    assert "Платёж на" in chat.last_text and "прошёл" in chat.last_text
    assert await reconcile_payments(app, harness.clock) == 0  # settled once
    assert len(await ledger(harness)) == 1


async def test_a_forged_bill_id_pays_nothing(harness: Harness) -> None:
    other = harness.chat(200002, "Олег")
    await harness.link(other, "demo-standard")
    foreign = bill_ref((await city_bills(harness, other))[0]["id"])  # what its button carries

    chat = await open_bills(harness)
    message = chat.last_message
    assert message is not None
    button = next(b for b in message.buttons if b.text[:1].isdigit())
    assert button.callback_data is not None
    forged = button.callback_data.rsplit(":", 1)[0] + ":" + foreign
    await chat.feed(
        {
            "callback_query": {
                "id": "forged-1",
                "from": {"id": chat.chat_id, "is_bot": False, "first_name": "Мария"},
                "message": dict(message.payload),
                "chat_instance": "forged",
                "data": forged,
            }
        }
    )
    assert not any(b.startswith("Оплатить выбранные") for b in chat.buttons)  # not shown as picked
    real = bill_buttons(chat)[0]
    await chat.press(real)  # one real pick next to the forged one
    await chat.press("Оплатить выбранные (1)")  # the forged one was never counted
    assert real.split(". ", 1)[1].split(" · ")[0] in chat.last_text  # the confirmation: ours
    assert await ledger(harness) == []


def uin_with_rule(digit: str) -> str:
    """A valid UIN whose digit before the control digit selects the sandbox's lookup rule."""
    return with_control_digit("188101772011290000" + digit)


async def test_add_a_bill_by_uin_and_pay_it(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat = harness.chat()
    await harness.link(chat, "demo-standard")
    assert harness.app is not None
    lookups: list[str] = []
    real_lookup = harness.app.city.lookup_bill

    async def spy(session: Any, uin: str) -> Any:
        lookups.append(uin)
        return await real_lookup(session, uin)

    monkeypatch.setattr(harness.app.city, "lookup_bill", spy)
    await chat.press("Добавить счёт по УИН")
    assert "Введите УИН" in chat.last_text
    assert "а должно быть 20 или 25" in (await chat.send("1881 0177")).text
    assert "похоже на опечатку" in (await chat.send("18810177200718000123")).text
    assert "из цифр" in (await chat.send("1881017720071800012!")).text
    assert lookups == []  # the offline check stopped all of them before the network
    assert "не найдено" in (await chat.send(uin_with_rule("7"))).text
    assert "уже оплачено" in (await chat.send(uin_with_rule("9"))).text
    reply = await chat.send(uin_with_rule("3"))
    assert "Нашли начисление" in reply.text and uin_with_rule("3") in reply.text
    await chat.press("Оплатить этот счёт")
    await chat.press("Оплатить")
    assert "✅ Оплачено" in chat.last_text
    assert len(await ledger(harness)) == 1


async def test_fines_by_vehicle_certificate(harness: Harness) -> None:
    chat = harness.chat()
    await harness.link(chat)
    await chat.press("Штрафы по СТС")
    assert "не похоже на номер СТС" in (await chat.send("12345")).text
    reply = await chat.send("77 ав 123456")
    assert "Нашли" in reply.text and "штраф" in reply.text
    await chat.press("Оплатить штрафы")
    await chat.press("Оплатить")
    assert "✅ Оплачено" in chat.last_text
    assert len(await ledger(harness)) == 1


async def test_history_shows_receipts(harness: Harness) -> None:
    chat = await open_bills(harness)
    await chat.press(bill_buttons(chat)[0])
    await chat.press("Оплатить выбранные")
    reply = await chat.press("Оплатить")
    number = reply.text.split("Квитанция № ")[1].split()[0]
    await chat.press("Готово")
    await chat.press("‹ Назад")
    await chat.press("История платежей")
    assert "Последние платежи" in chat.last_text and number in chat.last_text


async def test_a_bill_card_shows_its_details(harness: Harness) -> None:
    chat = await open_bills(harness)
    await chat.press("Подробнее о счёте")
    await chat.press(1)
    card = chat.last_text
    assert "Получатель:" in card and "Срок оплаты:" in card
    await chat.press("Оплатить этот счёт")
    assert "К оплате 1 счёт" in chat.last_text
