"""A message and a button press from one resident reaching two replicas at once end in the
same state as one after the other: dialog state and its lock live in Redis."""

from __future__ import annotations

import asyncio
from pathlib import Path

from redis.asyncio import Redis

from bot.app import create_application
from sandbox import SandboxServer
from sandbox.conversation import Conversation
from tests.conftest import REDIS_URL, need_service
from tests.contract.sandbox_client import FakeClock
from tests.flows.conftest import Harness, settings_for
from tests.flows.test_payments import bill_buttons


async def test_a_press_and_a_message_on_two_replicas(
    tmp_path: Path, sandbox: SandboxServer, clock: FakeClock
) -> None:
    url = need_service(REDIS_URL, "TEST_REDIS_URL")
    client = Redis.from_url(url)
    await client.flushdb()
    await client.aclose()
    settings = settings_for(tmp_path, redis_url=url)
    first = Harness(settings=settings, sandbox=sandbox, clock=clock)
    await first.start()
    assert first.app is not None
    second_app = await create_application(
        settings, bot_session=first.telegram, clock=clock, sandbox=sandbox
    )
    try:
        chat = first.chat()
        await first.link(chat)
        await chat.press("Мои счета")
        pick = bill_buttons(chat)[0]
        other = Conversation(
            second_app.dispatcher,
            second_app.bot,
            user_id=chat.chat_id,
            first_name="Мария",
            first_update_id=900_000,
        )
        # The press reaches replica one and a typed message reaches replica two, together.
        await asyncio.gather(chat.press(pick), other.send("привет"))

        # The state is whole: the bills dialog is still there, the pick was kept, and the
        # typed text got its hint — just as if they had come one after the other.
        assert any("не понимаю свободный текст" in t for t in chat.history)
        assert "✅" in "".join(chat.buttons)
        await chat.press("Оплатить выбранные (1)")
        assert "К оплате 1 счёт" in chat.last_text
    finally:
        await second_app.stop()
        await first.app.stop()
