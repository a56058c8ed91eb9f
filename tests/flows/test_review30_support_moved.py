"""Review 30: the operator moves the support desk to another supergroup (SUPPORT_CHAT_ID changed,
the bot removed from the old one). Dashboard events written before the move — a Telegram
refund owed to a resident among them — must reach the new chat's «Dashboard», not be retried
in the old chat for ever (every `STAFF_CHAT_AWAY` seconds, refused every time)."""

from __future__ import annotations

from typing import Any

import pytest
from aiogram.methods import SendMessage
from sqlalchemy import select

from bot.jobs import deliver_notifications, support_dashboard
from bot.ratelimit import MemoryLimiter
from domain.support import DASHBOARD_KINDS
from sandbox.telegram_double import Fault, _fault_error, _FaultSpec
from storage.models import NotificationRow
from tests.flows.conftest import Harness
from tests.flows.test_review27_support import (  # noqa: F401 - desk: the fixture
    SUPPORT_CHAT,
    _refund_event,
    desk,
    topic,
)

NEW_CHAT = -1009876543210


@pytest.fixture
async def two_desks(desk: Harness) -> Harness:  # noqa: F811 - the imported fixture
    """Review 27a's desk (the staff supergroup configured), and a second forum to move to."""
    desk.telegram.register_chat(
        {"id": NEW_CHAT, "type": "supergroup", "title": "Поддержка 2", "is_forum": True}
    )
    return desk


def _old_chat_refuses(harness: Harness) -> None:
    """The bot was removed from the old supergroup: every send there is a 403."""
    double = harness.telegram
    original = double._handlers[SendMessage]

    async def refusing(call: Any) -> Any:
        if call.params.get("chat_id") == SUPPORT_CHAT:
            raise _fault_error(
                _FaultSpec(Fault.FORBIDDEN, 0, "Forbidden: bot was kicked from the supergroup chat")
            )
        return await original(call)

    double._handlers[SendMessage] = refusing


def _dashboard_posts(harness: Harness, chat: int) -> list[str]:
    topics = harness.telegram.forum_topics.get(chat, {})
    threads = [t for t, name in topics.items() if name == "Dashboard"]
    return [
        m.text
        for m in harness.telegram.messages(chat)
        if m.payload.get("message_thread_id") in threads
    ]


@pytest.mark.markup_in_values  # the refund events carry hostile charge ids
async def test_dashboard_events_waiting_when_support_moves_reach_the_new_chat(
    two_desks: Harness,
) -> None:
    harness = two_desks
    assert harness.app is not None
    await support_dashboard(harness.app, harness.clock)
    await _refund_event(harness, 1)  # waiting, never tried
    await _refund_event(harness, 2)
    _old_chat_refuses(harness)
    await deliver_notifications(harness.app, harness.clock, MemoryLimiter())  # both refused
    await _refund_event(harness, 3)  # written after the refusal, before the move
    assert _dashboard_posts(harness, SUPPORT_CHAT) == []
    # The operator moves support to another supergroup and restarts.
    harness.settings = harness.settings.model_copy(update={"support_chat_id": NEW_CHAT})
    app = await harness.restart()
    await support_dashboard(app, harness.clock)
    for _ in range(3):
        harness.clock.advance(301)  # past the staff chat's hold of the refused ones
        await deliver_notifications(app, harness.clock, MemoryLimiter())
    posts = _dashboard_posts(harness, NEW_CHAT)
    assert sorted(p.count("Нужен возврат") for p in posts) == [1, 1, 1], posts
    assert all(f"<b>tg-{n}</b>&x" in "".join(posts) for n in (1, 2, 3))
    assert _dashboard_posts(harness, SUPPORT_CHAT) == []
    async with app.uow_factory() as uow:
        claimed = await uow.notifications.claim(harness.clock(), 100)
    assert claimed == []  # nothing left waiting for the old chat


@pytest.mark.markup_in_values
async def test_a_restart_without_a_move_leaves_the_dashboard_events_where_they_are(
    two_desks: Harness,
) -> None:
    harness = two_desks
    assert harness.app is not None
    await support_dashboard(harness.app, harness.clock)
    await _refund_event(harness, 4)
    app = await harness.restart()
    await support_dashboard(app, harness.clock)
    await deliver_notifications(app, harness.clock, MemoryLimiter())
    [post] = _dashboard_posts(harness, SUPPORT_CHAT)
    assert "Нужен возврат" in post
    assert topic(harness, 0) == []  # nothing in a thread that does not exist


async def test_support_turned_off_fails_the_waiting_events_instead_of_retrying_them(
    two_desks: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    harness = two_desks
    assert harness.app is not None
    await support_dashboard(harness.app, harness.clock)
    await _refund_event(harness, 5)
    _old_chat_refuses(harness)
    await deliver_notifications(harness.app, harness.clock, MemoryLimiter())  # refused
    # The operator turns support off (SUPPORT_CHAT_ID unset) and restarts.
    harness.settings = harness.settings.model_copy(update={"support_chat_id": None})
    app = await harness.restart()
    await support_dashboard(app, harness.clock)
    assert "support.events_dropped" in capsys.readouterr().out  # the operator is told
    for _ in range(3):
        harness.clock.advance(301)
        await deliver_notifications(app, harness.clock, MemoryLimiter())
    async with app.uow_factory() as uow:
        statuses = await uow.session.scalars(
            select(NotificationRow.status).where(NotificationRow.kind.in_(DASHBOARD_KINDS))
        )
        assert list(statuses) == ["failed"]  # kept for the record, never tried again
