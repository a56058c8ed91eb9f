"""Review 33a: the bot under Telegram's real answers and an operator's restarts — the outbox
facing 429, 403, 400s, a migrated support chat and lost answers; the same update or press twice;
a restart in the middle of a money screen."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from aiogram.exceptions import TelegramNetworkError
from aiogram.methods import EditMessageText, SendMessage
from aiogram.types import Update
from sqlalchemy import select

from bot.album import install_first
from bot.failures import UpdateBusy
from bot.jobs import deliver_notifications, support_dashboard
from bot.middlewares import TransientRetryMiddleware
from bot.ratelimit import MemoryLimiter
from sandbox.conversation import Conversation
from sandbox.telegram_double import Fault, _ApiError
from storage.models import NotificationRow
from tests.flows.conftest import Harness
from tests.flows.test_autopay_and_outbox import note
from tests.flows.test_autopay_setup import stored
from tests.flows.test_hostile_input import CRASH, press_again
from tests.flows.test_review27_support import (  # noqa: F401 - desk: the fixture
    SUPPORT_CHAT,
    _refund_event,
    desk,
)
from tests.flows.test_review30_notice_buttons import SKIP, donation_reminded
from tests.flows.test_review31_stale_screens import FLOWS, said_plainly, world

ANNA = 100002


async def ledger(harness: Harness) -> list[dict[str, Any]]:
    return (await harness.sandbox_call("GET", "/sandbox/ledger"))["charges"]


async def rows(harness: Harness, chat: int) -> list[tuple[str, str, int]]:
    """(dedupe key, status, attempts) of the chat's outbox rows, oldest first."""
    assert harness.app is not None
    async with harness.app.uow_factory() as uow:
        result = await uow.session.execute(
            select(NotificationRow.dedupe_key, NotificationRow.status, NotificationRow.attempts)
            .where(NotificationRow.telegram_user_id == chat)
            .order_by(NotificationRow.id)
        )
        return [tuple(r) for r in result.all()]  # type: ignore[misc]


async def ticks(harness: Harness, n: int = 8, step: float = 40) -> None:
    """The scheduler's sender, `n` times, the clock moving on between them (a fresh limiter
    each time: the memory limiter keeps real time, not the test's clock)."""
    assert harness.app is not None
    for _ in range(n):
        await deliver_notifications(harness.app, harness.clock, MemoryLimiter())
        harness.clock.advance(step)


def copies(chat: Conversation, needle: str) -> int:
    return sum(1 for t in chat.history if needle in t)


def sends_to(harness: Harness, chat: int) -> int:
    return sum(1 for c in harness.telegram.calls_of(SendMessage) if c.chat_id == chat)


def answer_of(harness: Harness, chat: int, error: _ApiError, times: int = 1) -> None:
    """The next `times` sendMessage calls to `chat` are answered with `error`."""
    double = harness.telegram
    original = double._handlers[SendMessage]
    left = [times]

    async def answering(call: Any) -> Any:
        if call.params.get("chat_id") == chat and left[0] > 0:
            left[0] -= 1
            raise error
        return await original(call)

    double._handlers[SendMessage] = answering


def no_crash_anywhere(chat: Conversation) -> None:
    shown = chat.history + [
        e.answer.text or "" for e in chat.telegram.events if e.answer is not None
    ]
    assert not [t for t in shown for c in CRASH if c in t]


# ---- the outbox ---------------------------------------------------------------------------------


async def test_a_lost_answer_after_telegram_took_it_is_sent_at_most_twice(
    harness: Harness,
) -> None:
    chat = harness.chat()
    await harness.link(chat)
    await note(harness, chat, "NG-10")
    double = harness.telegram
    original = double._handlers[SendMessage]
    lost = [1]

    async def taken_then_lost(call: Any) -> Any:
        result = await original(call)
        if lost[0]:
            lost[0] -= 1
            raise TelegramNetworkError(method=call.method, message="ServerDisconnectedError")
        return result

    double._handlers[SendMessage] = taken_then_lost
    await ticks(harness)
    assert 1 <= copies(chat, "NG-10") <= 2
    assert [s for _, s, _ in await rows(harness, chat.chat_id)] == ["sent"]


async def test_429_over_and_over_never_gives_a_notification_up_nor_holds_another_chat(
    harness: Harness,
) -> None:
    maria, anna = harness.chat(), harness.chat(user_id=ANNA, first_name="Анна")
    await harness.link(maria)
    await harness.link(anna, "demo-standard")
    await note(harness, maria, "NG-21")
    await note(harness, anna, "NG-22")
    too_many = _ApiError(429, "Too Many Requests: retry after 30", retry_after=30)
    answer_of(harness, maria.chat_id, too_many, times=8)  # more than MAX_ATTEMPTS
    await ticks(harness, n=1)
    assert copies(anna, "NG-22") == 1  # Maria's wait is not Anna's
    await ticks(harness, n=12)
    assert copies(maria, "NG-21") == 1
    assert [s for _, s, _ in await rows(harness, maria.chat_id)] == ["sent"]


async def test_a_blocked_resident_is_tried_once_and_heard_again_after_coming_back(
    harness: Harness,
) -> None:
    chat = harness.chat()
    await harness.link(chat)
    for n in range(3):
        await note(harness, chat, f"NG-3{n}")
    harness.telegram.block_chat(chat.chat_id)
    before = sends_to(harness, chat.chat_id)
    await ticks(harness)
    assert sends_to(harness, chat.chat_id) - before == 1  # the others stop without a try
    assert {s for _, s, _ in await rows(harness, chat.chat_id)} == {"failed"}
    harness.telegram.unblock_chat(chat.chat_id)
    await chat.send("/start")
    await note(harness, chat, "NG-39")
    await ticks(harness, n=2)
    assert copies(chat, "NG-39") == 1
    assert copies(chat, "NG-30") == 0  # what was given up is not sent late


async def test_chat_not_found_gives_up_that_notification_alone_and_others_go(
    desk: Harness,  # noqa: F811 - the imported fixture
) -> None:
    harness = desk
    assert harness.app is not None
    await support_dashboard(harness.app, harness.clock)
    maria, anna = harness.chat(), harness.chat(user_id=ANNA, first_name="Анна")
    await harness.link(maria)
    await harness.link(anna, "demo-standard")
    await note(harness, maria, "NG-41")
    await note(harness, anna, "NG-42")
    answer_of(harness, maria.chat_id, _ApiError(400, "Bad Request: chat not found"), times=99)
    await ticks(harness)
    assert copies(anna, "NG-42") == 1
    assert [(s, a) for _, s, a in await rows(harness, maria.chat_id)] == [("failed", 1)]
    assert sends_to(harness, maria.chat_id) >= 1
    posts = [m.text for m in harness.telegram.messages(SUPPORT_CHAT)]
    assert any("не доставлено" in p for p in posts), posts


async def test_a_message_too_long_is_given_up_alone_and_the_residents_next_one_goes(
    harness: Harness,
) -> None:
    chat = harness.chat()
    await harness.link(chat)
    await note(harness, chat, "NG-51")
    await note(harness, chat, "NG-52")
    answer_of(harness, chat.chat_id, _ApiError(400, "Bad Request: message is too long"))
    await ticks(harness)
    assert copies(chat, "NG-51") == 0 and copies(chat, "NG-52") == 1
    assert [s for _, s, _ in await rows(harness, chat.chat_id)] == ["failed", "sent"]


class _Migrated(_ApiError):
    def __init__(self, to: int) -> None:
        super().__init__(400, "Bad Request: group chat was upgraded to a supergroup chat")
        self.to = to

    def body(self) -> dict[str, Any]:
        return {**super().body(), "parameters": {"migrate_to_chat_id": self.to}}


STAFF_REFUSALS = {
    "migrated": _Migrated(-1009999999999),
    "topic closed": _ApiError(400, "Bad Request: TOPIC_CLOSED"),
    "rights taken": _ApiError(
        400, "Bad Request: not enough rights to send text messages to the chat"
    ),
}


# Was (review 33a): a 400 from the staff supergroup (migrated, topic closed, send rights taken)
# dead-letters a refund owed at once, telling no one; only a 403 holds staff's events
@pytest.mark.markup_in_values  # the refund events carry hostile charge ids
@pytest.mark.parametrize("refusal", list(STAFF_REFUSALS))
async def test_a_refund_owed_is_kept_when_the_support_chat_refuses_with_a_400(
    desk: Harness,  # noqa: F811 - the imported fixture
    refusal: str,
) -> None:
    harness = desk
    assert harness.app is not None
    await support_dashboard(harness.app, harness.clock)
    await _refund_event(harness, 7)
    answer_of(harness, SUPPORT_CHAT, STAFF_REFUSALS[refusal], times=99)
    await ticks(harness, n=3)
    assert [s for k, s, _ in await rows(harness, SUPPORT_CHAT) if "tgrefund" in k] == ["pending"]


@pytest.mark.markup_in_values
async def test_a_refund_owed_held_by_a_403_reaches_the_desk_once_the_bot_is_back(
    desk: Harness,  # noqa: F811 - the imported fixture
) -> None:
    harness = desk
    assert harness.app is not None
    await support_dashboard(harness.app, harness.clock)
    await _refund_event(harness, 8)
    kicked = _ApiError(403, "Forbidden: bot was kicked from the supergroup chat")
    answer_of(harness, SUPPORT_CHAT, kicked, times=2)
    await ticks(harness, n=2, step=301)
    await ticks(harness, n=2, step=301)
    posts = [m.text for m in harness.telegram.messages(SUPPORT_CHAT)]
    assert sum(p.count("Нужен возврат") for p in posts) == 1, posts


# ---- the same press twice -------------------------------------------------------------------


@pytest.mark.parametrize("flow", ["bills one", "fund", "troika", "points transfer"])
async def test_a_money_button_tapped_twice_at_once_moves_money_once(
    harness: Harness, flow: str
) -> None:
    chat = harness.chat()
    await harness.link(chat, "demo-full")
    screen = await FLOWS[flow](harness, chat)
    before = await world(harness, chat)
    await asyncio.gather(
        press_again(chat, screen.payload, screen.data),
        press_again(chat, screen.payload, screen.data),
    )
    now = await world(harness, chat)
    assert len(now["charges"]) - len(before["charges"]) <= 1
    moved = now["points"][0] - before["points"][0]
    assert moved in (0, -100), moved
    assert now != before  # one of them did it
    no_crash_anywhere(chat)


async def test_a_pay_press_whose_answer_is_too_old_still_pays_once_and_says_so(
    harness: Harness,
) -> None:
    chat = harness.chat()
    await harness.link(chat, "demo-full")
    screen = await FLOWS["fund"](harness, chat)
    harness.telegram.callback_query_timeout = -1  # every answerCallbackQuery: «query is too old»
    reply = await press_again(chat, screen.payload, screen.data)
    again = await press_again(chat, screen.payload, screen.data)
    assert len(await ledger(harness)) == 1
    assert "Спасибо! Вы помогли фонду" in reply.text, reply.text
    assert "Спасибо! Вы помогли фонду" not in again.text  # not told it was paid twice
    no_crash_anywhere(chat)


@pytest.mark.parametrize("mode", ["polling", "webhook"])
@pytest.mark.parametrize("fault", [Fault.NETWORK_ERROR, Fault.SERVER_ERROR, Fault.RETRY_AFTER])
async def test_telegram_failing_the_thanks_screen_redelivers_the_press_without_a_second_charge(
    harness: Harness, fault: Fault, mode: str
) -> None:
    chat = harness.chat()
    await harness.link(chat, "demo-full")
    screen = await FLOWS["fund"](harness, chat)
    app = harness.app
    assert app is not None
    if mode == "polling":  # polling's own retry in front, as bot.runners installs it
        install_first(app.dispatcher, TransientRetryMiddleware((0.1, 0.1, 0.1)))
    harness.telegram.fail_next(EditMessageText, fault, retry_after=1)  # after the payment
    chat.telegram.open_callback_query("q-1")
    query = {
        "id": "q-1",
        "from": dict(chat.user),
        "message": screen.payload,
        "chat_instance": f"local-{chat.chat_id}",
        "data": screen.data,
    }
    update = Update.model_validate(
        {"update_id": 9_200_001, "callback_query": query}, context={"bot": app.bot}
    )
    for _ in range(2):  # the webhook answered non-2xx: Telegram delivers it again
        try:
            await app.dispatcher.feed_update(app.bot, update, telegram_retries=mode == "webhook")
            break
        except Exception as error:
            assert mode == "webhook", error
    assert len(await ledger(harness)) == 1
    assert "Спасибо! Вы помогли фонду" in chat.last_text
    no_crash_anywhere(chat)


async def test_the_same_transfer_update_on_two_replicas_at_once_moves_points_once(
    any_state_harness: Harness,
) -> None:
    harness = any_state_harness
    chat = harness.chat()
    await harness.link(chat, "demo-full")
    screen = await FLOWS["points transfer"](harness, chat)
    before = await world(harness, chat)
    chat.telegram.open_callback_query("dup-1")
    payload = {
        "update_id": 9_100_001,
        "callback_query": {
            "id": "dup-1",
            "from": dict(chat.user),
            "message": screen.payload,
            "chat_instance": f"local-{chat.chat_id}",
            "data": screen.data,
        },
    }
    app = harness.app
    assert app is not None

    async def deliver() -> None:
        update = Update.model_validate(payload, context={"bot": app.bot})
        with contextlib.suppress(UpdateBusy):  # the webhook's non-2xx: delivered again later
            await app.dispatcher.feed_update(app.bot, update)

    await asyncio.gather(deliver(), deliver())
    await deliver()  # Telegram's retry of the refused one
    now = await world(harness, chat)
    assert now["points"][0] == before["points"][0] - 100
    no_crash_anywhere(chat)


async def test_autopay_skip_tapped_twice_at_once_skips_once_and_says_so_plainly(
    harness: Harness,
) -> None:
    chat = harness.chat()
    notice = await donation_reminded(harness, chat)
    message = harness.telegram.message(chat.chat_id, notice)
    assert message is not None
    [skip] = [b.callback_data for b in message.buttons if SKIP in b.text]
    assert skip is not None
    one, two = await asyncio.gather(
        press_again(chat, dict(message.payload), skip),
        press_again(chat, dict(message.payload), skip),
    )
    for reply in (one, two):
        said_plainly(reply)
    [autopay] = await stored(harness, chat)
    assert autopay.skip_period is not None  # skipped, once


# ---- a restart in the middle -----------------------------------------------------------------


async def restarted(harness: Harness, chat: Conversation) -> Conversation:
    app = await harness.restart()
    return Conversation(
        app.dispatcher,
        app.bot,
        user_id=chat.chat_id,
        first_name="Мария",
        first_update_id=900_000,
    )


async def test_a_donation_amount_typed_after_a_restart_pays_that_fund_that_sum(
    harness: Harness,
) -> None:
    chat = harness.chat()
    await harness.link(chat, "demo-full")
    await chat.press("Благотворительность")
    await chat.press("Детям")
    await chat.press(1)
    fund_screen = chat.last_text
    await chat.press("Другая сумма")
    chat = await restarted(harness, chat)
    reply = await chat.send("275")
    assert "275" in reply.text, reply.text
    await chat.press(next(b for b in chat.buttons if b.startswith("Оплатить ")))
    [charge] = await ledger(harness)
    assert charge["amount"] == 27_500
    assert fund_screen  # the same fund: the confirmation named it
    no_crash_anywhere(chat)


async def test_an_autopay_set_up_across_a_restart_keeps_the_day_typed_before_it(
    harness: Harness,
) -> None:
    chat = harness.chat()
    await harness.link(chat, "demo-full")
    await chat.press("Автоплатежи")
    await chat.press("Подключить автоплатёж")
    await chat.press("Пожертвование фонду")
    await chat.press(1)
    await chat.press("Раз в месяц")
    await chat.send("17")
    chat = await restarted(harness, chat)
    await chat.send("150")
    await chat.press("•• 4242")
    assert "каждое 17-е число" in chat.last_text, chat.last_text
    assert "Автоплатёж подключён" in (await chat.press("Подключить")).text
    [autopay] = await stored(harness, chat)
    assert autopay.amount == 15_000
    no_crash_anywhere(chat)


async def test_an_older_confirmation_pressed_after_a_restart_never_pays_the_newer_target(
    harness: Harness,
) -> None:
    chat = harness.chat()
    await harness.link(chat, "demo-full")
    old = await FLOWS["bills one"](harness, chat)
    digits = int("".join(ch for ch in old.label if ch.isdigit()))
    bill_sum = digits if "," in old.label else digits * 100
    await chat.send("/start")
    await FLOWS["fund"](harness, chat)
    chat = await restarted(harness, chat)
    reply = await press_again(chat, old.payload, old.data)
    said_plainly(reply)
    charges = await ledger(harness)
    assert len(charges) <= 1
    assert all(c["amount"] == bill_sum for c in charges), (old.label, charges)
