"""A chat's notifications keep their order and its 429 binds all of them (found by a reviewer
breaking the work; driven like test_outbox_faults.py)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.jobs import deliver_notifications
from tests.integration.test_outbox_faults import (
    Clock,
    ScriptedTelegram,
    make_sender,
    report,
    rows,
    write,
)


async def test_retry_after_holds_the_whole_chat(engine: AsyncEngine) -> None:
    """a 429 «retry after 30» for chat X: Telegram asks not to send to X for
    30 s. The chat's other queued notification must not be sent (nor tried) inside those 30 s,
    and must not overtake the deferred one."""
    clock = Clock()
    telegram = ScriptedTelegram(clock)
    sender = make_sender(engine, telegram, clock)
    chat = 7001
    await write(sender, clock, report(chat, 1), report(chat, 2), report(7002, 3))
    telegram.script(1, "429:30")
    started = clock()
    tries: list[tuple[float, int]] = []
    original = telegram.make_request

    async def spy(bot, method, timeout=None):  # type: ignore[no-untyped-def]  # noqa: ASYNC109 - the session API
        if getattr(method, "chat_id", None) == chat:
            text = getattr(method, "text", "") or ""
            tries.append(((clock() - started).total_seconds(), 2 if "T-2" in text else 1))
        return await original(bot, method, timeout)

    telegram.make_request = spy  # type: ignore[method-assign]
    for _ in range(10):
        await deliver_notifications(sender.app(), clock, sender.limiter)
        clock.advance(1)
    stored = await rows(engine)
    # other chats are delivered on the same tick
    assert stored["test:3"].status == "sent"
    inside = [t for t in tries[1:] if t[0] < 30]
    assert inside == [], f"sends to chat {chat} inside retry_after=30: {tries}; " + (
        f"T-2 status {stored['test:2'].status}, T-1 status {stored['test:1'].status}"
    )
    await sender.bot.session.close()


async def test_no_overtaking_after_a_server_error(engine: AsyncEngine) -> None:
    """Order within a chat: a 500 on the first notification backs it off 2 s; does the second
    (a later event) reach the resident first?"""
    clock = Clock()
    telegram = ScriptedTelegram(clock)
    sender = make_sender(engine, telegram, clock)
    chat = 7101
    await write(sender, clock, report(chat, 11), report(chat, 12))
    telegram.script(11, "500")
    for _ in range(10):
        await deliver_notifications(sender.app(), clock, sender.limiter)
        clock.advance(1)
    order = [m.text for m in telegram.messages(chat)]
    assert len(order) == 2
    assert "T-11" in order[0], f"delivered out of order: {order}"
    await sender.bot.session.close()
