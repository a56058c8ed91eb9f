"""«Благотворительность» under «Мои счета»: the funds the resident helped with «Помочь ещё раз»
(the fund's payment confirmation), «Все фонды» (the charity menu); the bills still show when
the city's charity endpoints fail."""

from __future__ import annotations

import pytest

from sandbox.conversation import Conversation
from tests.flows.conftest import Harness
from tests.flows.test_charity_points_meters import linked, open_first_fund
from tests.flows.test_hostile_input import forge, forged_item, no_crash
from tests.flows.test_hostile_text import assert_clean
from tests.flows.test_payments import ledger
from tests.money_text import nb

CHARITY_MENU = "Кому помочь? Выберите направление"
FORGED = "Эта кнопка не работает. Откройте нужный раздел из меню."


async def _donated(harness: Harness) -> tuple[Conversation, str]:
    """demo-standard gave 500 ₽ to the first children's fund; back at the menu."""
    chat = await linked(harness, "demo-standard")
    name = await open_first_fund(chat)
    await chat.press(nb("500,00 ₽"))
    await chat.press("Оплатить")
    await chat.press("Готово")
    while "Вы помогали" not in chat.buttons:  # back to the charity menu…
        await chat.press("‹ Назад")
    await chat.press("‹ Назад")  # …and to the main menu
    assert "Мои счета" in " ".join(chat.buttons)
    return chat, name


async def test_never_donated_shows_only_all_funds(harness: Harness) -> None:
    chat = await linked(harness, "demo-standard")
    await chat.press("Мои счета")
    assert "Благотворительность" not in chat.last_text
    assert not [b for b in chat.buttons if b.startswith("Помочь ещё раз")]
    assert "Все фонды" in chat.buttons
    await chat.press("Все фонды")
    assert CHARITY_MENU in chat.last_text
    assert_clean(chat)


async def test_a_fund_helped_is_under_the_bills_and_help_again_pays_it(
    harness: Harness,
) -> None:
    chat, name = await _donated(harness)
    await chat.press("Мои счета")
    text = chat.last_text
    assert "ЕПД" in text  # the bills first
    assert f"Благотворительность: вы помогали «{name}»" in text
    assert text.index("ЕПД") < text.index("Благотворительность")
    await chat.press(f"Помочь ещё раз: {name}")
    assert nb(f"Пожертвование фонду «{name}» — 500,00 ₽") in chat.last_text
    await chat.press("Оплатить")
    assert [c["amount"] for c in await ledger(harness)] == [50_000, 50_000]
    await chat.press("Готово")
    assert f"Помочь ещё раз: {name}" in chat.buttons  # back at the bills list
    assert_clean(chat)


async def test_all_funds_opens_the_charity_menu(harness: Harness) -> None:
    chat, _ = await _donated(harness)
    await chat.press("Мои счета")
    await chat.press("Все фонды")
    assert CHARITY_MENU in chat.last_text
    assert "Вы помогали" in chat.buttons


async def test_the_bills_show_when_the_charity_endpoints_fail(harness: Harness) -> None:
    chat, name = await _donated(harness)
    await harness.sandbox_call(
        "PUT", "/sandbox/faults", json={"status": 503, "paths": ["/api/v1/donations"]}
    )
    await chat.press("Мои счета")
    text = chat.last_text
    assert "ЕПД" in text and "Оплатить все" in " ".join(chat.buttons)
    assert "Благотворительность" not in text
    assert f"Помочь ещё раз: {name}" not in chat.buttons
    assert "Все фонды" in chat.buttons
    assert_clean(chat)


@pytest.mark.parametrize("item", ["F-999", "../../accounts/me", "<b>", ""])
async def test_a_forged_fund_under_the_bills_gets_the_toast(harness: Harness, item: str) -> None:
    chat, name = await _donated(harness)
    await chat.press("Мои счета")
    reply = await forge(chat, forged_item(chat, f"Помочь ещё раз: {name}", item))
    no_crash(reply)
    assert [a.text for a in reply.callback_answers] == [FORGED]
    assert "Пожертвование фонду" not in chat.last_text
    assert [c["amount"] for c in await ledger(harness)] == [50_000]


async def test_a_first_donation_from_all_funds_appears_under_the_bills(harness: Harness) -> None:
    chat = await linked(harness, "demo-standard")
    await chat.press("Мои счета")
    assert "Благотворительность" not in chat.last_text
    await chat.press("Все фонды")
    await chat.press("Детям")
    await chat.press(1)
    name = chat.last_text.splitlines()[0]
    await chat.press(nb("300,00 ₽"))
    await chat.press("Оплатить")
    await chat.press("Готово")
    while CHARITY_MENU not in chat.last_text:
        await chat.press("‹ Назад")
    await chat.press("‹ Назад")  # the charity menu closes: back at the bills
    assert f"Благотворительность: вы помогали «{name}»" in chat.last_text
    assert f"Помочь ещё раз: {name}" in chat.buttons
