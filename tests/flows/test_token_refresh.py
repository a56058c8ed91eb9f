"""An access token expires while the resident is away: the next action refreshes it at the
city, keeps the new tokens (the city rotates the refresh token, so losing them means linking
again) and goes on as if nothing happened — on SQLite too, where the update's open write and
the dialog state's own connection must not wait for each other."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from domain.sessions import ResidentSession
from sandbox import SandboxServer, create_app
from tests.contract.sandbox_client import FakeClock
from tests.flows.conftest import LINKED_MENU, Harness

HOURS = 3600


@pytest.fixture
async def sandbox(clock: FakeClock) -> AsyncIterator[SandboxServer]:
    """The city on the test's clock: its tokens expire when the clock says so."""
    async with SandboxServer(create_app(clock=clock)) as server:
        yield server


async def test_an_expired_access_token_is_refreshed_and_kept(harness: Harness) -> None:
    chat = harness.chat()
    await harness.link(chat, "demo-full")
    before = await harness.stored_resident(chat)
    assert before is not None
    harness.clock.advance(2 * HOURS)  # past the access token's hour

    reply = await asyncio.wait_for(chat.press("Мои счета"), 10)  # not the 30 s busy timeout
    assert "неоплаченных счетов" in reply.text
    after = await harness.stored_resident(chat)
    assert after is not None
    assert after.tokens.access_token != before.tokens.access_token
    await asyncio.wait_for(chat.press("‹ Назад"), 10)
    assert chat.buttons == LINKED_MENU


async def test_refreshed_tokens_survive_a_rollback_of_the_action(harness: Harness) -> None:
    """The refresh is kept even when what needed it is rolled back: the old refresh token is
    spent at the city, so losing the new ones would force the resident to link again."""
    chat = harness.chat()
    await harness.link(chat, "demo-full")
    before = await harness.stored_resident(chat)
    assert before is not None and harness.app is not None
    harness.clock.advance(2 * HOURS)
    async with harness.app.uow_factory() as uow:
        resident = await uow.residents.get(chat.chat_id)
        assert resident is not None
        await ResidentSession(resident, harness.app.city, uow).refresh()
        await uow.rollback()  # the action that needed the refresh failed
    after = await harness.stored_resident(chat)
    assert after is not None and after.tokens.access_token != before.tokens.access_token
    reply = await asyncio.wait_for(chat.press("Мои счета"), 10)
    assert "неоплаченных счетов" in reply.text


async def test_an_expired_token_in_the_middle_of_a_dialog_does_not_lock_the_database(
    harness: Harness,
) -> None:
    chat = harness.chat()
    await harness.link(chat, "demo-full")
    await chat.press("Автоплатежи")
    await chat.press("Подключить автоплатёж")
    harness.clock.advance(2 * HOURS)
    await asyncio.wait_for(chat.press("Пожертвование фонду"), 10)
    reply = await asyncio.wait_for(chat.press(chat.buttons[0]), 10)
    assert "Как часто" in reply.text or "Раз в месяц" in chat.buttons, reply.text
