"""Charity, points and meter readings as a resident uses them."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta, timezone

import pytest

from sandbox import funds as sandbox_funds
from sandbox.conversation import Conversation
from tests.flows.conftest import Harness
from tests.flows.test_payments import ledger
from tests.money_text import nb

MSK = timezone(timedelta(hours=3))


async def at(harness: Harness, moment: datetime) -> None:
    """Both clocks, the bot's and the city's, at the same Moscow moment."""
    harness.clock.now = moment
    await harness.sandbox_call("PUT", "/sandbox/clock", json={"now": moment.isoformat()})


async def linked(harness: Harness, login: str = "demo-full") -> Conversation:
    chat = harness.chat()
    await harness.link(chat, login)
    return chat


async def open_first_fund(chat: Conversation) -> str:
    await chat.press("Благотворительность")
    await chat.press("Детям")
    await chat.press(1)
    return chat.last_text.splitlines()[0]  # the fund's name heads its card


async def test_donate_to_a_fund_chosen_by_category(harness: Harness) -> None:
    chat = await linked(harness)
    name = await open_first_fund(chat)
    assert "Программы:" in chat.last_text
    assert chat.url_of("Отчёт за").startswith(harness.sandbox.url + "/reports/")
    await chat.press(nb("300,00 ₽"))
    assert nb(f"Пожертвование фонду «{name}» — 300,00 ₽") in chat.last_text
    reply = await chat.press("Оплатить")
    assert nb(f"Спасибо! Вы помогли фонду «{name}» — 300,00 ₽") in reply.text
    assert [c["amount"] for c in await ledger(harness)] == [30000]


async def test_other_amounts_are_checked_and_nothing_is_lost(harness: Harness) -> None:
    chat = await linked(harness)
    await open_first_fund(chat)
    await chat.press("Другая сумма")
    for text, answer in [
        ("49", "Минимальное пожертвование — 50\u00a0₽"),
        ("0", "Минимальное пожертвование — 50\u00a0₽"),
        ("-100", "Минимальное пожертвование — 50\u00a0₽"),
        ("сто рублей", "Не понял сумму"),
        ("99999999", "похожа на опечатку"),
    ]:
        assert answer in (await chat.send(text)).text
        assert "Сколько пожертвовать?" in chat.last_text or answer in chat.last_text
    await chat.send("150")
    assert nb("150,00 ₽") in chat.last_text and "Пожертвование фонду" in chat.last_text
    assert await ledger(harness) == []


async def test_help_again_appears_after_a_first_donation(harness: Harness) -> None:
    chat = await linked(harness, "demo-standard")
    await chat.press("Благотворительность")
    assert "Вы помогали" not in chat.buttons
    await chat.press("‹ Назад")
    name = await open_first_fund(chat)
    await chat.press(nb("500,00 ₽"))
    await chat.press("Оплатить")
    await chat.press("Готово")
    await chat.press("‹ Назад")
    await chat.press("‹ Назад")
    assert "Вы помогали" in chat.buttons
    await chat.press("Вы помогали")
    assert name in chat.last_text and nb("500,00 ₽") in chat.last_text
    await chat.press("Помочь ещё раз")
    assert nb(f"Пожертвование фонду «{name}» — 500,00 ₽") in chat.last_text
    await chat.press("Оплатить")
    assert [c["amount"] for c in await ledger(harness)] == [50000, 50000]


async def test_points_balance_history_and_tips(harness: Harness) -> None:
    chat = await linked(harness, "demo-standard")
    await at(harness, datetime(2026, 11, 28, 12, 0, tzinfo=MSK))
    await chat.press("Баллы")
    assert "У вас 120 баллов." in chat.last_text
    assert "Последние начисления" in chat.last_text
    await chat.press("Как заработать сейчас")
    assert "Передайте показания 2 счётчиков до 03.12.2026 — это +40 баллов" in chat.last_text


async def test_points_go_to_a_fund_once_even_when_confirmed_twice(harness: Harness) -> None:
    chat = await linked(harness)
    await chat.press("Баллы")
    before = chat.last_text.splitlines()[0]
    await chat.press("Перевести баллы в фонд")
    await chat.press(1)
    assert "Сколько баллов перевести" in chat.last_text
    assert "Напишите целое число" in (await chat.send("миллион")).text
    await chat.send("100")
    assert "Перевести 100 баллов" in chat.last_text
    await asyncio.gather(chat.press("Подтвердить"), chat.press("Подтвердить"))
    assert "получил 100 баллов" in "\n".join(chat.history)
    await chat.press("‹ Назад")
    balance = int(re.sub(r"\D", "", before))
    after = int(re.sub(r"\D", "", chat.last_text.splitlines()[0]))
    assert after == balance - 100


async def test_meter_readings_in_the_window(harness: Harness) -> None:
    chat = await linked(harness)
    await at(harness, datetime(2026, 11, 20, 10, 0, tzinfo=MSK))
    await chat.press("Показания счётчиков")
    assert "Холодная вода" in chat.last_text and "приём до 03.12.2026" in chat.last_text
    await chat.press("Холодная вода")
    ask = chat.last_text
    last = float(ask.split("Прошлое показание: ")[1].split()[0])
    assert "меньше прошлого" in (await chat.send(f"{last - 1:.3f}".replace(".", ","))).text
    reply = await chat.send(f"{last + 500:.3f}")
    assert "очень много" in reply.text
    await chat.press("Исправить")
    reply = await chat.send(f"{last + 4.2:.3f}")
    assert "принято" in reply.text and "+20 баллов" in reply.text
    await chat.press("‹ Назад")
    await chat.press("Холодная вода")
    assert "уже передано" in chat.last_text
    reply = await chat.send(f"{last + 4.5:.3f}")
    assert "нажмите «Исправить показание»" in reply.text  # a second reading is not sent
    await chat.press("Исправить показание")
    reply = await chat.send(f"{last + 4.5:.3f}")
    assert "исправлено" in reply.text
    assert "уже начислены" in reply.text  # one credit per meter per period


async def test_outside_the_window_the_bot_says_when_it_opens(harness: Harness) -> None:
    chat = await linked(harness)
    await at(harness, datetime(2026, 11, 27, 10, 0, tzinfo=MSK))
    await chat.press("Показания счётчиков")
    await chat.press("Электричество")
    assert "откроется 15.12.2026" in chat.last_text


async def test_a_standard_account_earns_twenty_points(harness: Harness) -> None:
    chat = await linked(harness, "demo-standard")
    await at(harness, datetime(2026, 11, 20, 10, 0, tzinfo=MSK))
    await chat.press("Показания счётчиков")
    await chat.press("Горячая вода")
    found = re.search(r"Прошлое показание: ([\d.]+)", chat.last_text)
    last = float(found.group(1)) if found else 0.0  # a meter without readings yet
    reply = await chat.send(f"{last + 1:.3f}")
    assert "+20 баллов" in reply.text  # simple: 10 (sandbox contract tests; no meters here)


async def test_the_epd_receipt_says_how_many_points_come_back(harness: Harness) -> None:
    chat = await linked(harness)
    await chat.press("Мои счета")
    epd = next(b for b in chat.buttons if "ЕПД" in b)
    await chat.press(epd)
    await chat.press("Оплатить выбранные")
    reply = await chat.press("Оплатить")
    assert "За ЕПД вернётся" in reply.text and "в течение 7 дней" in reply.text


async def test_an_old_fund_button_of_the_points_transfer_after_the_list_changed(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """«Перевести баллы в фонд»: a fund button carries `item_ref` of the fund's id, not its
    position. The first fund goes away and the list is drawn again; taps on the OLD message
    are refused as a stale screen (review 33b), and the current list asks about the fund."""
    from tests.flows.test_hostile_input import no_crash, press_again  # it imports this module

    chat = await linked(harness)
    await chat.press("Баллы")
    await chat.press("Перевести баллы в фонд")
    old = chat.last_message
    assert old is not None
    payload = dict(old.payload)
    gone_button, tapped = old.buttons[0], old.buttons[1]
    gone = sandbox_funds.funds_in(None)[0]
    assert gone_button.text == gone.name
    funds = tuple(f for f in sandbox_funds.FUNDS if f.id != gone.id)
    monkeypatch.setattr(sandbox_funds, "FUNDS", funds)
    monkeypatch.setattr(sandbox_funds, "_BY_ID", {f.id: f for f in funds})
    await chat.send("а какой фонд лучше?")  # a hint: the window drawn again, without it
    assert gone.name not in chat.buttons
    late = await press_again(chat, payload, gone_button.callback_data or "")
    no_crash(late)
    stale = "Этот экран устарел — продолжайте в последнем сообщении."  # review 33b
    assert [a.text for a in late.callback_answers] == [stale]
    reply = await press_again(chat, payload, tapped.callback_data or "")
    no_crash(reply)
    assert [a.text for a in reply.callback_answers] == [stale]  # before: asked the amount
    reply = await chat.press(tapped.text)  # the current list
    assert f"фонду «{tapped.text}»" in reply.text
