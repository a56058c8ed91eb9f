"""Review of the lazily built aiogram models (bot.lazy_models): every kind of update goes
through the real dispatcher. Found on the way: a callback query without a message (a button
under an inline-mode message, a game's «Play») reaches the fallback handler, which needs a
dialog manager aiogram-dialog gives only to callbacks that carry a message."""

from __future__ import annotations

from typing import Any

import pytest
from aiogram.methods import AnswerCallbackQuery

from tests.flows.conftest import Harness

GENERIC = "Что-то пошло не так"


def _without_message(user: dict[str, Any], kind: str) -> dict[str, Any]:
    query: dict[str, Any] = {"id": f"cq-{kind}", "from": user, "chat_instance": "ci"}
    if kind == "inline":
        query |= {"inline_message_id": "AAQAAA-inline", "data": "pay:1"}
    else:
        query |= {"game_short_name": "city"}
    return {"callback_query": query}


@pytest.mark.parametrize("kind", ["inline", "game"])
async def test_a_callback_query_without_a_message_is_answered_not_crashed(
    harness: Harness, kind: str
) -> None:
    chat = harness.chat()
    await chat.send("/start")
    harness.telegram.open_callback_query(f"cq-{kind}")
    # today: TypeError: unknown_button() missing 1 required positional argument 'dialog_manager'
    reply = await chat.feed(_without_message(chat.user, kind))
    answers = harness.telegram.calls_of(AnswerCallbackQuery)
    assert [a.callback_query_id for a in answers][-1:] == [f"cq-{kind}"]  # the spinner stops
    assert not any(GENERIC in text for text in reply.texts)
