"""Issue 15 part 1: a bill above its on-issue autopay's limit (asked, not handed over) gets one
more notice at 10:00 Moscow the day before its due date — «Напоминаем: завтра, 15.12, срок
оплаты счёта …» with «Оплатить» — only if still unpaid then (the outbox asks the city again; a
city that does not answer sends it as written), never twice, none when that moment has passed
at discovery; a row due later is held by the quiet hours as one written when it comes due."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from bot.jobs import run_autopays
from domain.bill_discovery import discover_bills, reminder_key
from domain.reporting import DiscoveryCursor
from sandbox.conversation import Conversation
from sandbox.data import BillStatus
from sandbox.oauth import DATA_KEY
from storage.models import NotificationRow
from tests.flows.conftest import Harness
from tests.flows.test_bill_discovery import (
    FULL,
    deliver,
    discover,
    issue,
    ledger,
    linked,
    notices,
    set_up_bill_autopay,
)
from tests.flows.test_hostile_text import assert_clean
from tests.money_text import nb

MSK = timezone(timedelta(hours=3))
REMINDER = "Напоминаем"
DUE = date(2026, 12, 15)


def reminders(chat: Conversation) -> list[str]:
    return [t for t in chat.history if REMINDER in t]


async def press_on(chat: Conversation, text: str, button: str) -> None:
    """`button` under the latest message containing `text`."""
    message = next(m for m in reversed(chat.messages) if text in m.text)
    await chat.press(button, message_id=message.message_id)


async def reminder_rows(harness: Harness) -> list[NotificationRow]:
    assert harness.app is not None
    async with harness.app.engine.connect() as connection:
        rows = await connection.execute(
            select(NotificationRow).where(NotificationRow.dedupe_key.like("bill-due:%"))
        )
        return list(rows.all())


@pytest.mark.markup_in_values
async def test_an_over_limit_bill_is_reminded_the_day_before_once_if_still_unpaid(
    harness: Harness,
) -> None:
    assert harness.app is not None
    harness.clock.now = datetime(2026, 11, 30, 12, 0, tzinfo=MSK)
    maria = await linked(harness, 100001, "demo-full")
    await discover(harness)  # the baseline
    await set_up_bill_autopay(maria, "10000")

    harness.clock.now = datetime(2026, 12, 1, 12, 0, tzinfo=MSK)
    big = issue(harness, FULL, 1_500_000, title="ЕПД за 12.2026", due=DUE)
    hostile = "<b>Газ & свет</b> «²» 1e5 😀"
    issue(harness, FULL, 1_600_000, title=hostile, due=DUE)
    long_title = ("Очень & <длинное> " * 400)[:5000]
    issue(harness, FULL, 99_999_999_999, title=long_title, due=DUE)
    mine = issue(harness, FULL, 1_100_000, title="Оплачу сам", due=DUE)
    issue(harness, FULL, 1_200_000, title="Срок завтра", due=date(2026, 12, 2))
    issue(harness, FULL, 500_000, title="В лимите", due=DUE)  # handed to the autopay
    assert await discover(harness) == 6
    assert await discover(harness) == 0
    # Four over the limit with a day before that is still ahead; none for «Срок завтра» (its
    # 10:00 the day before has passed), none for the one the autopay pays.
    rows = await reminder_rows(harness)
    assert len(rows) == 4
    assert {row.due_at for row in rows} == {datetime(2026, 12, 14, 7, 0, tzinfo=UTC)}
    assert all(not row.urgent for row in rows)
    await deliver(harness)
    assert len(notices(maria)) == 6 and reminders(maria) == []

    # She pays one herself from its first notice before the 14th.
    await press_on(maria, "Оплачу сам", "Оплатить")
    await maria.press(next(b for b in maria.buttons if b.startswith("Оплатить")))
    assert "Оплачено" in maria.last_text
    harness.clock.now = datetime(2026, 12, 2, 10, 0, 5, tzinfo=MSK)
    await run_autopays(harness.app, harness.clock)  # «В лимите» paid by the autopay
    assert sorted(c["amount"] for c in await ledger(harness)) == [500_000, 1_100_000]
    await deliver(harness)  # «списано» (the clock moves on a little while sending)

    # Nothing more until 10:00 on the 14th.
    harness.clock.now = datetime(2026, 12, 14, 9, 59, 59, tzinfo=MSK)
    await deliver(harness)
    assert reminders(maria) == []

    harness.clock.now = datetime(2026, 12, 14, 10, 0, tzinfo=MSK)
    await deliver(harness)
    told = reminders(maria)
    assert len(told) == 3, told  # not «Оплачу сам»: paid, the city says so at send time
    first = next(t for t in told if "ЕПД за 12.2026" in t)
    assert first == nb(
        "⏰ Напоминаем: завтра, 15.12, срок оплаты счёта: ЕПД за 12.2026 — 15 000,00 ₽\n"
        "Автоплатёж его не оплатит: это больше его лимита (10 000,00 ₽). "
        "Проверьте счёт и оплатите, если всё верно."
    )
    assert any(hostile in t and nb("16 000,00 ₽") in t for t in told), told
    assert all(len(t) <= 4096 for t in told)
    assert not any("Оплачу сам" in t or "Срок завтра" in t for t in told)
    assert_clean(maria)
    # The paid one's row is closed (obsolete), none is left waiting.
    assert {row.status for row in await reminder_rows(harness)} == {"sent"}
    harness.clock.now += timedelta(days=1)
    await deliver(harness)
    assert len(reminders(maria)) == 3  # never twice

    # «Оплатить» under the reminder opens the pay step for that bill.
    await press_on(maria, "ЕПД за 12.2026 — 15", "Оплатить")
    assert "ЕПД за 12.2026" in maria.last_text and nb("15 000,00 ₽") in maria.last_text
    await maria.press(next(b for b in maria.buttons if b.startswith("Оплатить")))
    assert "Оплачено" in maria.last_text
    assert harness.sandbox.app[DATA_KEY].bill(big).status is BillStatus.PAID
    assert harness.sandbox.app[DATA_KEY].bill(mine).status is BillStatus.PAID
    assert sorted(c["amount"] for c in await ledger(harness)) == [500_000, 1_100_000, 1_500_000]


async def test_a_city_that_does_not_answer_sends_the_reminder_and_unlinking_drops_it(
    harness: Harness,
) -> None:
    assert harness.app is not None
    harness.clock.now = datetime(2026, 11, 30, 12, 0, tzinfo=MSK)
    maria = await linked(harness, 100001, "demo-full")
    await discover(harness)
    await set_up_bill_autopay(maria, "10000")
    harness.clock.now = datetime(2026, 12, 1, 12, 0, tzinfo=MSK)
    issue(harness, FULL, 1_500_000, title="ЕПД за 12.2026", due=DUE)
    assert await discover(harness) == 1
    await deliver(harness)

    # Late (the bot was down): sent on the due date itself, the city down — as written.
    await harness.sandbox_call(
        "PUT", "/sandbox/faults", json={"status": 503, "paths": ["/api/v1/bills"]}
    )
    harness.clock.now = datetime(2026, 12, 15, 10, 0, tzinfo=MSK)
    await deliver(harness)
    await harness.sandbox_call("PUT", "/sandbox/faults", json={})
    [told] = reminders(maria)
    assert told.startswith("⏰ Напоминаем: сегодня, 15.12, последний день оплаты счёта")
    assert maria.buttons == ["Оплатить"]

    # A second over-limit bill, then unlinking: its pending reminder is gone with the rest.
    harness.clock.now = datetime(2026, 12, 16, 12, 0, tzinfo=MSK)
    issue(harness, FULL, 1_700_000, title="ЕПД за 01.2027", due=date(2027, 1, 15))
    assert await discover(harness) == 1
    assert [row.status for row in await reminder_rows(harness)] == ["sent", "pending"]
    await maria.send("/start")
    await maria.press("Отвязать аккаунт")
    await maria.press("Да, отвязать")
    assert await reminder_rows(harness) == []


# --- two schedulers at once, and the quiet hours, on PostgreSQL ----------------------------


async def test_two_schedulers_write_one_reminder_not_held_by_the_night_it_was_written_in(
    pg_harness: Harness,
) -> None:
    harness = pg_harness
    app = harness.app
    assert app is not None
    harness.clock.now = datetime(2026, 11, 30, 12, 0, tzinfo=MSK)
    maria = await linked(harness, 100001, "demo-full")
    await discover(harness)
    await set_up_bill_autopay(maria, "10000")
    harness.clock.now = datetime(2026, 12, 1, 23, 30, tzinfo=MSK)  # her quiet hours
    bill = issue(harness, FULL, 1_500_000, title="ЕПД за 12.2026", due=DUE)

    async def scheduler() -> int:
        result = await discover_bills(app.uow_factory, app.city, harness.clock(), DiscoveryCursor())
        return result.notices

    for _ in range(2):
        assert sum(await asyncio.gather(scheduler(), scheduler(), scheduler())) <= 1
    [row] = await reminder_rows(harness)
    assert row.dedupe_key == reminder_key(100001, bill)

    # Claimed at 10:00 on the 14th, it is a row written then: not held for a digest.
    harness.clock.now = datetime(2026, 12, 14, 10, 0, tzinfo=MSK)
    async with app.uow_factory() as uow:
        claimed = await uow.notifications.claim_to_send(harness.clock(), 10)
        await uow.rollback()
    mine = [c for c in claimed if c.notification.data.get("reminder")]
    assert len(mine) == 1 and not mine[0].held
    assert mine[0].written_at == harness.clock()
    await deliver(harness)
    await deliver(harness)
    assert len(reminders(maria)) == 1 and len(notices(maria)) == 1
