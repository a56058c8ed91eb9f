"""Review 30d: a notification's buttons pressed late and out of context — days later, after
the autopay or the bill changed, after a relink, twice at once, forged, after a restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.jobs import deliver_notifications, poll_reports, run_autopays
from bot.ratelimit import MemoryLimiter
from sandbox import SandboxServer
from sandbox.conversation import Conversation, Reply
from sandbox.data import BillStatus
from sandbox.oauth import DATA_KEY
from tests.conftest import REDIS_URL, migrated_sqlite_file, need_service
from tests.contract.sandbox_client import FakeClock
from tests.flows.conftest import Harness, _harness, settings_for
from tests.flows.test_autopay_and_outbox import MSK, set_up_donation
from tests.flows.test_bill_discovery import FULL, discover, issue, set_up_bill_autopay
from tests.flows.test_hostile_input import CRASH, press_again
from tests.flows.test_hostile_text import assert_clean
from tests.flows.test_reports import advance, sent_report
from tests.flows.test_review15_quiet import donation
from tests.flows.test_review19_bug_reports import GROUP_CHAT

SKIP = "Пропустить этот раз"
SKIPPED = "в этот раз не спишем"


async def ledger(harness: Harness) -> list[dict[str, Any]]:
    return (await harness.sandbox_call("GET", "/sandbox/ledger"))["charges"]


async def deliver(harness: Harness) -> None:
    assert harness.app is not None
    while await deliver_notifications(harness.app, harness.clock, MemoryLimiter()):
        harness.clock.now += timedelta(seconds=2)


async def tick(harness: Harness) -> None:
    assert harness.app is not None
    await run_autopays(harness.app, harness.clock)


def calm(reply: Reply) -> None:
    for text in CRASH:
        assert text not in reply.text
        assert all(text not in (a.text or "") for a in reply.callback_answers)
    assert reply.answered


def keyboards(chat: Conversation) -> list[int]:
    return [m.message_id for m in chat.messages if m.buttons]


def notice_with(chat: Conversation, button: str) -> int:
    """The message id of the latest bot message carrying `button`."""
    for message in reversed(chat.messages):
        if any(button in b.text for b in message.buttons):
            return message.message_id
    raise AssertionError(f"no message with {button!r}")


async def donation_reminded(harness: Harness, chat: Conversation, day: int = 25) -> int:
    """A monthly donation on `day`, set up on 24.11; the reminder of the 25.11 charge sent."""
    await harness.link(chat)
    harness.clock.now = datetime(2026, 11, day - 1, 12, 0, tzinfo=MSK)
    await set_up_donation(harness, chat, day)
    await tick(harness)
    await deliver(harness)
    assert f"{day}.11 в 10:00 спишем по автоплатежу" in chat.last_text
    return notice_with(chat, SKIP)


async def change_day(chat: Conversation, day: int) -> None:
    await chat.send("/start")
    await chat.press("Автоплатежи")
    await chat.press(1)
    await chat.press("День списания")
    await chat.press("Раз в месяц")
    await chat.send(str(day))
    assert f"каждое {day}-е число" in chat.last_text, chat.last_text


# ---- «Пропустить этот раз» after the charge went ----------------------------------------------


# A reminder's skip checks only that the autopay is on the period it named and that the period's
# run has not a key in flight (STARTED): a run already SUCCEEDED for that period passes, and the
# resident is told «не спишем» of money that went three days before.
# Was (review 30d): skip_once accepts a period whose run already SUCCEEDED (day moved later in the
# month): «в этот раз не спишем» after the charge went
async def test_skip_after_the_charge_went_and_the_day_moved_later_is_told_late(
    harness: Harness,
) -> None:
    chat = harness.chat()
    notice = await donation_reminded(harness, chat)
    harness.clock.now = datetime(2026, 11, 25, 10, 0, 5, tzinfo=MSK)
    await tick(harness)
    assert [c["amount"] for c in await ledger(harness)] == [15_000]
    harness.clock.now = datetime(2026, 11, 25, 12, 0, tzinfo=MSK)
    await change_day(chat, 28)  # later in the month already charged: the same period

    reply = await chat.press(SKIP, message_id=notice)

    calm(reply)
    assert SKIPPED not in reply.text  # November's 150 ₽ went on 25.11: nothing to skip
    assert "уже прошёл" in reply.text
    harness.clock.now = datetime(2026, 11, 28, 10, 0, 5, tzinfo=MSK)
    await tick(harness)
    assert [c["amount"] for c in await ledger(harness)] == [15_000]


async def test_skip_racing_the_charge_tells_what_happened(pg_harness: Harness) -> None:
    """«Пропустить этот раз» pressed at the very moment of the charge: either the skip is seen
    (nothing charged, «не спишем») or the charge went and the resident is told it went."""
    harness = pg_harness
    chat = harness.chat()
    notice = await donation_reminded(harness, chat)
    harness.clock.now = datetime(2026, 11, 25, 10, 0, 5, tzinfo=MSK)
    reply, _ = await asyncio.gather(chat.press(SKIP, message_id=notice), tick(harness))
    calm(reply)
    charged = [c["amount"] for c in await ledger(harness)]
    assert charged in ([], [15_000])
    assert (SKIPPED in reply.text) == (charged == []), (charged, reply.text)
    harness.clock.now += timedelta(days=1)
    await tick(harness)
    assert [c["amount"] for c in await ledger(harness)] == charged


# ---- «Пришёл счёт» handed to an autopay: its «Пропустить этот раз» ---------------------------


async def bill_notice_with_skip(harness: Harness, chat: Conversation) -> tuple[str, int]:
    harness.clock.now = datetime(2026, 11, 30, 12, 0, tzinfo=MSK)
    await harness.link(chat)
    await discover(harness)
    await set_up_bill_autopay(chat, "10000")
    bill = issue(harness, FULL, 812_450)
    assert await discover(harness) == 1
    await deliver(harness)
    return bill, notice_with(chat, SKIP)


async def test_bill_skip_racing_the_charge_tells_what_happened(pg_harness: Harness) -> None:
    harness = pg_harness
    chat = harness.chat()
    bill, notice = await bill_notice_with_skip(harness, chat)
    harness.clock.now = datetime(2026, 12, 1, 10, 0, 5, tzinfo=MSK)
    reply, _ = await asyncio.gather(chat.press(SKIP, message_id=notice), tick(harness))
    calm(reply)
    charged = [c["amount"] for c in await ledger(harness)]
    assert charged in ([], [812_450])
    assert (SKIPPED in reply.text) == (charged == []), (charged, reply.text)
    paid = harness.sandbox.app[DATA_KEY].bill(bill).status is BillStatus.PAID
    assert paid == bool(charged)


# ---- «Оплатить» after a relink to another mos.ru account ---------------------------------------


async def unlink_and_link(harness: Harness, chat: Conversation, login: str) -> None:
    await chat.send("/start")
    await chat.press("Отвязать аккаунт")
    assert "Аккаунт отвязан" in (await chat.press("Да, отвязать")).text
    await harness.link(chat, login)


async def test_an_old_bill_notice_never_pays_for_the_account_linked_before(
    harness: Harness,
) -> None:
    """«Оплатить» under demo-full's «Пришёл счёт», pressed after the chat was relinked to
    demo-standard, and the confirmation screen it had opened before the relink: nothing is
    paid, the resident is told and has the menu."""
    harness.clock.now = datetime(2026, 11, 30, 12, 0, tzinfo=MSK)
    chat = harness.chat()
    await harness.link(chat, "demo-full")
    await discover(harness)
    bill = issue(harness, FULL, 812_450)
    await discover(harness)
    await deliver(harness)
    notice = notice_with(chat, "Оплатить")
    told = next(m for m in chat.messages if m.message_id == notice)
    told_payload, [bill_pay] = dict(told.payload), [b.callback_data for b in told.buttons]
    assert bill_pay is not None
    await chat.press("Оплатить", message_id=notice)
    confirm = chat.last_message
    assert confirm is not None and "ЕПД за 11.2026" in confirm.text
    payload = dict(confirm.payload)
    [pay] = [b.callback_data for b in confirm.buttons if b.text.startswith("Оплатить")]
    assert pay is not None

    await unlink_and_link(harness, chat, "demo-standard")
    late = await press_again(chat, told_payload, bill_pay)
    calm(late)
    assert "уже оплачен или больше не выставлен" in late.text
    stale = await press_again(chat, payload, pay)
    calm(stale)

    assert await ledger(harness) == []
    assert harness.sandbox.app[DATA_KEY].bill(bill).status is BillStatus.UNPAID
    assert keyboards(chat)
    assert_clean(chat)


async def test_pay_from_a_notice_tapped_twice_at_once_charges_once(harness: Harness) -> None:
    harness.clock.now = datetime(2026, 11, 30, 12, 0, tzinfo=MSK)
    chat = harness.chat()
    await harness.link(chat, "demo-full")
    await discover(harness)
    issue(harness, FULL, 812_450)
    await discover(harness)
    await deliver(harness)
    notice = chat.last_message
    assert notice is not None
    payload = dict(notice.payload)
    [pay] = [b.callback_data for b in notice.buttons]
    assert pay is not None
    await asyncio.gather(press_again(chat, payload, pay), press_again(chat, payload, pay))
    screens = [
        (m.message_id, dict(m.payload), b.callback_data)
        for m in chat.messages
        if m.message_id != notice.message_id
        for b in m.buttons
        if b.text.startswith("Оплатить ")
    ]
    assert screens
    for _, screen, data in reversed(screens):  # each confirmation screen's «Оплатить N ₽»
        assert data is not None
        calm(await press_again(chat, screen, data))
    assert [c["amount"] for c in await ledger(harness)] == [812_450]
    assert_clean(chat)


# ---- restart, state gone ----------------------------------------------------------------------


@pytest.fixture
async def redis_harness(
    request: pytest.FixtureRequest, tmp_path: Path, sandbox: SandboxServer, clock: FakeClock
) -> AsyncIterator[Harness]:
    """Data in SQLite, dialog state in Redis (which the test wipes)."""
    from redis.asyncio import Redis

    url = need_service(REDIS_URL, "TEST_REDIS_URL")
    client = Redis.from_url(url)
    await client.flushdb()
    await client.aclose()
    await migrated_sqlite_file(tmp_path / "bot.sqlite3")
    async for h in _harness(settings_for(tmp_path, redis_url=url), sandbox, clock, request):
        yield h


async def restart_without_state(harness: Harness) -> Conversation:
    from redis.asyncio import Redis

    await harness.restart()
    client = Redis.from_url(str(harness.settings.redis_url))
    await client.flushdb()
    await client.aclose()
    return harness.chat()


async def test_notice_buttons_work_after_a_restart_with_the_state_gone(
    redis_harness: Harness,
) -> None:
    """The press arrives in a new process with no dialog context at all: the skip skips that
    period once (a second press after another wipe changes nothing), «Оплатить» opens the pay
    step and pays once."""
    harness = redis_harness
    chat = harness.chat()
    notice = await donation_reminded(harness, chat)
    chat = await restart_without_state(harness)
    reply = await chat.press(SKIP, message_id=notice)
    calm(reply)
    assert SKIPPED in reply.text
    harness.clock.now = datetime(2026, 11, 25, 10, 0, 5, tzinfo=MSK)
    await tick(harness)
    assert await ledger(harness) == []

    harness.clock.now = datetime(2026, 11, 30, 12, 0, tzinfo=MSK)
    await discover(harness)
    issue(harness, FULL, 812_450)
    await discover(harness)
    await deliver(harness)
    notice = notice_with(chat, "Оплатить")
    chat = await restart_without_state(harness)
    reply = await chat.press("Оплатить", message_id=notice)
    calm(reply)
    assert "ЕПД за 11.2026" in chat.last_text
    reply = await chat.press(next(b for b in chat.buttons if b.startswith("Оплатить ")))
    assert "Оплачено" in reply.text
    assert [c["amount"] for c in await ledger(harness)] == [812_450]


# ---- a notice's button pressed under a message in a group --------------------------------------


async def test_a_notice_button_pressed_in_a_group_does_nothing(harness: Harness) -> None:
    chat = harness.chat()
    notice = await donation_reminded(harness, chat)
    message = next(m for m in chat.messages if m.message_id == notice)
    [skip] = [b.callback_data for b in message.buttons]
    harness.telegram.register_chat(GROUP_CHAT)
    for data in (skip, "ao:1", "mw", "bp:" + "0" * 12):
        query_id = f"group-{len(harness.telegram.events)}"
        harness.telegram.open_callback_query(query_id)
        query = {
            "id": query_id,
            "from": dict(chat.user),
            "message": {**dict(message.payload), "chat": dict(GROUP_CHAT)},
            "chat_instance": "group-instance",
            "data": data,
        }
        reply = await chat.feed({"callback_query": query})
        assert [a.text for a in reply.callback_answers] == [
            "Я работаю только в личном чате. Откройте чат со мной и отправьте /start."
        ], data
        assert reply.messages == [] and reply.edits == []
    harness.clock.now = datetime(2026, 11, 25, 10, 0, 5, tzinfo=MSK)
    await tick(harness)
    assert [c["amount"] for c in await ledger(harness)] == [15_000]  # not skipped


# ---- the quiet hours' digest: numbered buttons pressed at once -------------------------------


# `drop_keyboard` takes the pressed item's buttons off the keyboard the press CARRIED
# (`callback.message.reply_markup`), not off what the message shows now: two taps on one
# digest before the first edit arrives both carry the whole keyboard, and the second edit puts
# back the first item's spent button.
# Was (review 30d): digest: two items' buttons pressed before the first edit arrived — the second
# edit restores the first item's spent «Пропустить этот раз»
async def test_two_items_of_a_digest_pressed_at_once_leave_no_spent_button(
    harness: Harness,
) -> None:
    chat = harness.chat()
    await harness.link(chat)
    harness.clock.now = datetime(2026, 11, 23, 12, 0, tzinfo=MSK)
    await donation(chat, 1, 25)
    await donation(chat, 2, 25)
    harness.clock.now = datetime(2026, 11, 24, 0, 0, 30, tzinfo=MSK)
    await tick(harness)
    await deliver(harness)
    harness.clock.now = datetime(2026, 11, 24, 9, 0, tzinfo=MSK)
    await deliver(harness)
    digest = chat.last_message
    assert digest is not None and "Пока шли тихие часы, пришло 2" in digest.text
    payload = dict(digest.payload)
    data = {b.text: b.callback_data for b in digest.buttons}
    first, second = data["1 · Пропустить этот раз"], data["2 · Пропустить этот раз"]
    assert first is not None and second is not None

    one, two = await asyncio.gather(
        press_again(chat, payload, first), press_again(chat, payload, second)
    )
    calm(one)
    calm(two)
    assert sum(SKIPPED in t for t in chat.history) == 2  # both autopays skipped, once each
    now = next(m for m in chat.messages if m.message_id == digest.message_id)
    assert [b.text for b in now.buttons] == []  # both items spent: no button left to press


# ---- a report's «Не устранено» after a relink to another account -------------------------------


async def report_answered_then_relinked(harness: Harness) -> tuple[Conversation, int]:
    chat, number = await sent_report(harness)
    assert harness.app is not None
    await advance(harness, number, to="answered", status_notes="Яму заделали")
    await poll_reports(harness.app, harness.clock)
    await deliver(harness)
    notice = notice_with(chat, "Не устранено")
    await unlink_and_link(harness, chat, "demo-standard")
    return chat, notice


# `on_notification_button` starts the refute dialog for any report number («no»), unchecked; the
# ownership check (`_own_report`) comes only in `refute_fix`, after the comment and the photo.
# Was (review 30d): «Не устранено» of a report of the account linked before asks for a comment that
# refute_fix then refuses
async def test_refute_of_the_previous_accounts_report_is_refused_at_the_press(
    harness: Harness,
) -> None:
    chat, notice = await report_answered_then_relinked(harness)
    reply = await chat.press("Не устранено", message_id=notice)
    calm(reply)
    assert "Что не так?" not in reply.text  # not asked to write what will not be sent
    assert keyboards(chat)


# `_refute` stores the refusal as the card's «result», and the card's getter, which cannot show
# that report either (NotFound, or the city down), renders its own error under it.
# Was (review 30d): a refused «Не устранено» shows the same error twice in one message (result +
# card_getter's error)
async def test_a_refused_refute_says_so_once(harness: Harness) -> None:
    # Since the fix of the test above the refusal comes at the press (`refutable_report`),
    # through the same card window (`result_getter`), whose own error is now left out.
    chat, notice = await report_answered_then_relinked(harness)
    reply = await chat.press("Не устранено", message_id=notice)
    calm(reply)
    [text] = reply.texts
    lines = [line for line in text.split("\n") if line.strip()]
    assert len(lines) == len(set(lines)), text


# Every notice button that opens a screen goes through `handlers.navigation.start_over_menu`
# (bill_notice «Оплатить», meter_window «Передать показания», notifications «Открыть
# автоплатёж», my_reports «Не устранено» / «Весь ответ»); its `manager.start(…, SEND)` answering
# a callback makes aiogram-dialog take the keyboard off the pressed message
# (`ManagerImpl._get_message_from_callback` → `remove_kbd`): in a digest that is every item's.
# Was (review 30d): «N · Оплатить» in a digest opens the pay step and aiogram-dialog strips the
# whole digest keyboard: the other autopay's «Пропустить этот раз» is gone
async def test_paying_from_a_digest_keeps_the_other_items_skip(harness: Harness) -> None:
    chat = harness.chat()
    await harness.link(chat)
    harness.clock.now = datetime(2026, 11, 23, 12, 0, tzinfo=MSK)
    await discover(harness)
    await donation(chat, 1, 25)
    harness.clock.now = datetime(2026, 11, 24, 0, 0, 30, tzinfo=MSK)  # quiet hours: held
    issue(harness, FULL, 812_450)
    assert await discover(harness) == 1
    await tick(harness)  # the reminder of the 25.11 donation
    await deliver(harness)
    harness.clock.now = datetime(2026, 11, 24, 9, 0, tzinfo=MSK)
    await deliver(harness)
    digest = chat.last_message
    assert digest is not None and "Пока шли тихие часы, пришло 2" in digest.text
    labels = [b.text for b in digest.buttons]
    pay = next(label for label in labels if label.endswith("Оплатить"))
    skip = next(label for label in labels if label.endswith(SKIP))

    reply = await chat.press(pay, message_id=digest.message_id)
    calm(reply)
    assert "ЕПД за 11.2026" in reply.text  # the pay step for that bill
    now = next(m for m in chat.messages if m.message_id == digest.message_id)
    assert skip in [b.text for b in now.buttons]  # the donation can still be skipped
