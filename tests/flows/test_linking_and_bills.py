"""The walking skeleton as a resident lives it: /start, link, «Мои счета», unlink."""

from __future__ import annotations

import aiohttp
import pytest
from sqlalchemy import text

from tests.flows.conftest import LINKED_MENU, START_LINK, Harness


async def test_start_explains_what_the_bot_does_and_stores(harness: Harness) -> None:
    chat = harness.chat()
    reply = await chat.send("/start")
    assert "Здравствуйте" in reply.text
    assert "Что я храню" in reply.text and "зашифрованный" in reply.text
    # Not linked yet: the menu offers linking only, nothing that would not work.
    assert chat.buttons == ["🔑 Привязать аккаунт mos.ru"]


async def test_link_then_bills_then_pages(harness: Harness) -> None:
    chat = harness.chat()
    said = await harness.link(chat, "demo-full")
    assert "Аккаунт привязан: Мария В., учётная запись полная" in said
    assert chat.buttons == LINKED_MENU

    reply = await chat.press("Мои счета")
    assert "У вас 12 неоплаченных счетов" in reply.text
    first_page = chat.last_text
    assert first_page.count("\u00a0₽\n") == 5  # five bills to a page
    assert "⚠️" in first_page and "просрочен с" in first_page  # earliest due first: overdue
    assert "1/3" in chat.buttons

    await chat.press("›")
    assert "2/3" in chat.buttons and chat.last_text != first_page
    await chat.press("‹ Назад")
    assert chat.buttons == LINKED_MENU


async def test_a_resident_without_bills_sees_a_friendly_empty_state(harness: Harness) -> None:
    chat = harness.chat()
    said = await harness.link(chat, "demo-simple")
    assert "учётная запись упрощённая" in said
    await chat.press("Мои счета")
    assert "Неоплаченных счетов нет" in chat.last_text


async def test_unlink_revokes_and_forgets(harness: Harness) -> None:
    chat = harness.chat()
    await harness.link(chat)
    resident = await harness.stored_resident(chat)
    assert resident is not None and harness.app is not None

    await chat.press("Отвязать аккаунт")
    assert "Отвязать аккаунт mos.ru?" in chat.last_text
    reply = await chat.press("Да, отвязать")
    assert "Аккаунт отвязан, данные удалены" in reply.text
    assert chat.buttons == ["🔑 Привязать аккаунт mos.ru"]

    async with harness.app.engine.connect() as connection:
        rows = (await connection.execute(text("SELECT count(*) FROM residents"))).scalar()
    assert rows == 0
    async with aiohttp.ClientSession() as http:  # the city no longer accepts the old token
        headers = {"Authorization": f"Bearer {resident.tokens.access_token}"}
        async with http.get(harness.sandbox.url + "/api/v1/profile", headers=headers) as answer:
            assert answer.status == 401


async def test_unknown_text_gets_a_hint_and_the_menu(harness: Harness) -> None:
    chat = harness.chat()
    await chat.send("/start")
    reply = await chat.send("привет, где мои деньги?")
    assert "не понимаю свободный текст" in reply.text
    assert chat.buttons == ["🔑 Привязать аккаунт mos.ru"]


async def test_a_button_whose_dialog_is_gone_brings_the_menu_back(harness: Harness) -> None:
    chat = harness.chat()
    await harness.link(chat)
    assert harness.app is not None
    async with harness.app.engine.begin() as connection:  # state lost (e.g. an old deployment)
        await connection.execute(text("DELETE FROM fsm_state"))
    reply = await chat.press("Мои счета")
    assert "Эта кнопка устарела" in reply.text
    assert chat.buttons == LINKED_MENU


async def test_city_down_or_slow_says_temporarily_unavailable(harness: Harness) -> None:
    chat = harness.chat()
    await harness.link(chat)
    for faults in ({"status": 503}, {"delay_seconds": 5}):
        await harness.sandbox_call("PUT", "/sandbox/faults", json=faults)
        reply = await chat.press("Мои счета")
        assert "Сервис города временно недоступен" in reply.text
        await chat.press("‹ Назад")
    await harness.sandbox_call("PUT", "/sandbox/faults", json={})
    await chat.press("Мои счета")
    assert "неоплаченных счетов" in chat.last_text


async def test_tokens_revoked_behind_our_back_ask_to_link_again(harness: Harness) -> None:
    chat = harness.chat()
    await harness.link(chat)
    resident = await harness.stored_resident(chat)
    assert resident is not None and harness.app is not None
    await harness.app.city.revoke(resident.tokens.refresh_token)

    await chat.press("Мои счета")
    assert "Привяжите аккаунт заново" in chat.last_text
    await chat.press("‹ Назад")
    assert chat.buttons == ["🔑 Привязать аккаунт mos.ru"]


async def test_the_login_link_is_shown_as_a_button_to_the_sandbox(harness: Harness) -> None:
    chat = harness.chat()
    await chat.send("/start")
    await chat.press("Привязать")
    url = chat.url_of("mos.ru")
    assert url.startswith(harness.sandbox.url + "/oauth/authorize?")
    assert "code_challenge_method=S256" in url
    page = await harness.login_page(chat)
    assert START_LINK.search(page)


@pytest.mark.parametrize(
    "entry",
    ["📜 История платежей", "⭐ Баллы", "🔢 Показания счётчиков"],
)
async def test_revoked_tokens_anywhere_lead_to_linking_again(harness: Harness, entry: str) -> None:
    """Whichever screen meets the city's refusal, the resident is told and gets the way
    forward at once: the menu of someone not linked, with its button — never a dead end with
    the old menu whose every button fails the same way."""
    chat = harness.chat()
    await harness.link(chat)
    resident = await harness.stored_resident(chat)
    assert resident is not None and harness.app is not None
    await harness.app.city.revoke(resident.tokens.refresh_token)

    reply = await chat.press(entry)
    assert "Привяжите аккаунт заново" in reply.text
    assert await harness.stored_resident(chat) is None  # the refused tokens are forgotten
    if chat.buttons != ["🔑 Привязать аккаунт mos.ru"]:  # said inside the screen: one step back
        await chat.press("‹ Назад")
    assert chat.buttons == ["🔑 Привязать аккаунт mos.ru"], chat.last_text
