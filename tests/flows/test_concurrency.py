"""Many residents at once on the embedded defaults: every update is answered.

Dialog state once shared the unit of work's connection pool; 15 concurrent updates each held
one connection and waited for a second, and the bot froze (found by bench/updates.py)."""

from __future__ import annotations

import asyncio

from tests.flows.conftest import Harness


async def test_thirty_residents_at_once_are_all_answered(harness: Harness) -> None:
    chats = [harness.chat(user_id=300_000 + n, first_name="Житель") for n in range(30)]
    replies = await asyncio.wait_for(
        asyncio.gather(*(chat.send("/start") for chat in chats)), timeout=20
    )
    assert all("Здравствуйте" in reply.text for reply in replies)
