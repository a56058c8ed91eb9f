"""A resident half-way through a flow survives a restart: new Dispatcher, same storage."""

from __future__ import annotations

from sqlalchemy import text

from tests.flows.conftest import Harness


async def test_half_way_through_unlinking_survives_a_restart(any_state_harness: Harness) -> None:
    harness = any_state_harness
    chat = harness.chat()
    await harness.link(chat)
    await chat.press("Мои счета")
    await chat.press("›")  # page 2 of the bills
    page_two = chat.last_text
    await chat.press("‹ Назад")
    await chat.press("Отвязать аккаунт")
    assert "Отвязать аккаунт mos.ru?" in chat.last_text

    await harness.restart()
    chat = harness.chat()  # the same resident and chat, talking to the new process

    reply = await chat.press("Да, отвязать")
    assert "Аккаунт отвязан" in reply.text
    assert harness.app is not None
    async with harness.app.engine.connect() as connection:
        assert (await connection.execute(text("SELECT count(*) FROM residents"))).scalar() == 0
    assert page_two  # the pages were real before the restart


async def test_the_bills_page_survives_a_restart(any_state_harness: Harness) -> None:
    harness = any_state_harness
    chat = harness.chat()
    await harness.link(chat)
    await chat.press("Мои счета")
    await chat.press("›")
    assert "2/3" in chat.buttons

    await harness.restart()
    chat = harness.chat()
    await chat.press("›")
    assert "3/3" in chat.buttons
