"""Bill discovery (issue 15, part 1): a new bill at the sandbox → one «Пришёл счёт» per
resident, never twice (also with two job runs at once on PostgreSQL), none for the bills a
resident had when first scanned; «Оплатить» opens the pay step for that bill; autopay «по
выставленному счёту» is set up without a schedule and pays the discovered bill once within
its limit, asks above it; a muted kind is not sent; hostile titles render."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.jobs import deliver_notifications, run_autopays
from bot.ratelimit import MemoryLimiter
from domain.autopaying import tick as autopay_tick
from domain.bill_discovery import discover_bills
from domain.reporting import DiscoveryCursor
from handlers.bill_notice import BillPay
from handlers.buttons import item_ref
from sandbox.conversation import Conversation
from sandbox.data import BillKind, BillStatus, CityBill
from sandbox.oauth import DATA_KEY
from storage.models import KnownBillRow, NotificationRow
from tests.flows.conftest import Harness
from tests.flows.test_hostile_input import forge
from tests.flows.test_hostile_text import assert_clean
from tests.money_text import nb

MSK = timezone(timedelta(hours=3))
FULL, STANDARD = "C-100003", "C-100002"
NOTICE = "Пришёл счёт"


def issue(
    harness: Harness,
    account: str,
    amount: int,
    *,
    title: str = "ЕПД за 11.2026",
    due: date = date(2026, 12, 15),
    kind: BillKind = BillKind.EPD,
    bill_id: str | None = None,
) -> str:
    """The city issues a bill to `account` (as the sandbox's UIN and fines searches add them)."""
    data = harness.sandbox.app[DATA_KEY]
    bill = CityBill(
        id=bill_id or data.new_bill_id(),
        account_id=account,
        kind=kind,
        title=title,
        provider="ГБУ «Жилищник»",
        amount=amount,
        due_date=due,
        status=BillStatus.UNPAID,
        payer_code="4703159826" if kind is BillKind.EPD else None,
        period="11.2026",
    )
    data.add_bill(bill)
    return bill.id


async def discover(harness: Harness, cursor: DiscoveryCursor | None = None) -> int:
    assert harness.app is not None
    result = await discover_bills(
        harness.app.uow_factory, harness.app.city, harness.clock(), cursor or DiscoveryCursor()
    )
    assert not result.halted
    return result.notices


async def deliver(harness: Harness) -> None:
    """The outbox until empty (one message a second per chat: the clock moves on)."""
    assert harness.app is not None
    while await deliver_notifications(harness.app, harness.clock, MemoryLimiter()):
        harness.clock.now += timedelta(seconds=2)


async def ledger(harness: Harness) -> list[dict[str, Any]]:
    return (await harness.sandbox_call("GET", "/sandbox/ledger"))["charges"]


async def notices_stored(harness: Harness) -> int:
    assert harness.app is not None
    async with harness.app.engine.connect() as connection:
        return int(
            (
                await connection.execute(
                    select(func.count())
                    .select_from(NotificationRow)
                    .where(NotificationRow.kind == "bill_issued")
                )
            ).scalar_one()
        )


def notices(chat: Conversation) -> list[str]:
    return [t for t in chat.history if NOTICE in t]


async def linked(harness: Harness, user_id: int, login: str) -> Conversation:
    chat = harness.chat(user_id=user_id)
    await harness.link(chat, login)
    return chat


async def test_a_new_bill_is_told_once_per_resident_and_paid_from_the_notice(
    harness: Harness,
) -> None:
    maria = await linked(harness, 100001, "demo-full")
    elena = await linked(harness, 100002, "demo-standard")
    harness.clock.now = datetime(2026, 11, 30, 12, 0, tzinfo=MSK)

    assert await discover(harness) == 0  # the first scan: the bills they have are the baseline
    await deliver(harness)
    assert notices(maria) == notices(elena) == []

    first = issue(harness, FULL, 812_450)
    second = issue(harness, STANDARD, 623_790, title="ЕПД за 11.2026 (Елена)")
    assert await discover(harness) == 2
    assert await discover(harness) == 0  # never twice across ticks
    assert await discover(harness, DiscoveryCursor(after=100001)) == 0  # any place in the round
    await deliver(harness)
    [told] = notices(maria)
    assert told == nb("🧾 Пришёл счёт: ЕПД за 11.2026 — 8 124,50 ₽, оплатить до 15.12")
    assert maria.buttons == ["Оплатить"]
    assert len(notices(elena)) == 1 and nb("6 237,90 ₽") in notices(elena)[0]

    # «Оплатить» → the same pay step as «Мои счета», for that bill only.
    await maria.press("Оплатить")
    assert "ЕПД за 11.2026" in maria.last_text and nb("8 124,50 ₽") in maria.last_text
    pay = [b for b in maria.buttons if b.startswith("Оплатить")]
    await maria.press(pay[0])
    assert "Оплачено" in maria.last_text
    assert [c["amount"] for c in await ledger(harness)] == [812_450]
    assert harness.sandbox.app[DATA_KEY].bill(first).status is BillStatus.PAID
    assert harness.sandbox.app[DATA_KEY].bill(second).status is BillStatus.UNPAID

    # The old notice's button on a paid bill: told politely, nothing started, nothing paid.
    reply = await forge(maria, BillPay(bill=item_ref(first)).pack())
    assert "уже оплачен или больше не выставлен" in reply.text
    # Forged references: the toast, never an error.
    for data in ("bp:" + "0" * 12, "bp:<b>", "bp:", "bp:" + "a" * 5000):
        await forge(maria, data)
    assert [c["amount"] for c in await ledger(harness)] == [812_450]
    assert_clean(maria)

    # Muted «Новые счета» in «Настройки»: written, never sent to Елена.
    await elena.send("/start")
    await elena.press("Настройки")
    await elena.press("Новые счета")
    assert any(b.startswith("❌") and "Новые счета" in b for b in elena.buttons), elena.buttons
    issue(harness, STANDARD, 100_000, title="ЕПД за 12.2026")
    assert await discover(harness) == 1
    await deliver(harness)
    harness.clock.now += timedelta(days=1)  # not deferred either: muted is muted
    await deliver(harness)
    assert len(notices(elena)) == 1

    # Unlinking forgets the known bills: a relink takes a fresh baseline, no flood.
    assert harness.app is not None
    await maria.send("/start")
    await maria.press("Отвязать аккаунт")
    assert "Аккаунт отвязан" in (await maria.press("Да, отвязать")).text
    async with harness.app.engine.connect() as connection:
        rows = await connection.execute(
            select(KnownBillRow).where(KnownBillRow.telegram_user_id == 100001)
        )
        assert rows.all() == []
    await harness.link(maria)
    assert await discover(harness) == 0  # the relink's first scan is a baseline again


async def set_up_bill_autopay(chat: Conversation, limit: str) -> None:
    """Autopay «по выставленному счёту»: the service, the limit, the card — no «Как часто?»."""
    await chat.press("Автоплатежи")
    await chat.press("Подключить автоплатёж")
    await chat.press("Счёт за услугу, когда он придёт")
    await chat.press("ЕПД (квартплата)")
    assert "До какой суммы платить без вопросов?" in chat.last_text  # no frequency, no day
    assert "Раз в месяц" not in chat.buttons
    assert "Не понял сумму" in (await chat.send("1e5")).text
    assert "Не понял сумму" in (await chat.send("-5")).text
    await chat.send(limit)
    await chat.press("•• 4242")
    summary = chat.last_text
    assert "когда придёт счёт" in summary and "на следующий день после нового счёта" in summary
    reply = await chat.press("Подключить")
    assert "Когда придёт новый счёт" in reply.text
    await chat.press(1)  # its card: no day to change
    assert "✏️ День списания" not in chat.buttons and "✏️ Сумма или лимит" in chat.buttons
    assert "когда придёт счёт" in chat.last_text
    assert "на следующий день после нового счёта" in chat.last_text
    await chat.send("/start")


async def test_autopay_on_issue_pays_the_discovered_bill_once_and_asks_above_its_limit(
    harness: Harness,
) -> None:
    assert harness.app is not None
    harness.clock.now = datetime(2026, 11, 30, 12, 0, tzinfo=MSK)
    maria = await linked(harness, 100001, "demo-full")
    await discover(harness)  # baseline: the ЕПД she has now is not paid by the autopay
    await set_up_bill_autopay(maria, "10000")

    bill = issue(harness, FULL, 812_450)
    assert await discover(harness) == 1
    await deliver(harness)
    [told] = notices(maria)
    assert nb("Пришёл счёт: ЕПД за 11.2026 — 8 124,50 ₽") in told
    assert "Его оплатит автоплатёж 01.12 в 10:00" in told
    assert maria.buttons == ["Пропустить этот раз"]  # no «Оплатить»: the autopay pays it

    await run_autopays(harness.app, harness.clock)  # not before 10:00 tomorrow
    assert await ledger(harness) == []
    harness.clock.now = datetime(2026, 12, 1, 10, 0, 5, tzinfo=MSK)
    await run_autopays(harness.app, harness.clock)
    await run_autopays(harness.app, harness.clock)  # a repeated run finds the run done
    charges = await ledger(harness)
    assert [c["amount"] for c in charges] == [812_450]
    assert harness.sandbox.app[DATA_KEY].bill(bill).status is BillStatus.PAID
    await deliver(harness)
    assert nb("списано 8 124,50 ₽") in maria.last_text

    # Above the limit: asked, with the amount and the limit, and «Оплатить»; nothing charged.
    big = issue(harness, FULL, 1_500_000, title="ЕПД за 12.2026")
    assert await discover(harness) == 1
    await deliver(harness)
    told = notices(maria)[-1]
    assert nb("15 000,00 ₽") in told and nb("больше лимита автоплатежа (10 000,00 ₽)") in told
    assert maria.buttons == ["Оплатить"]
    harness.clock.now += timedelta(days=2)
    await run_autopays(harness.app, harness.clock)
    assert len(await ledger(harness)) == 1
    assert harness.sandbox.app[DATA_KEY].bill(big).status is BillStatus.UNPAID

    # Two bills at once (two flats: the autopay covers any payer code): the second waits for
    # the first, each is paid once — two periods, two charges, never the big one.
    a = issue(harness, FULL, 300_000, title="ЕПД за 12.2026 (кв. 1)")
    b = issue(harness, FULL, 400_000, title="ЕПД за 12.2026 (кв. 2)")
    assert await discover(harness) == 2
    await deliver(harness)
    last_two = " ".join(notices(maria)[-2:])
    assert "сразу после счёта, который он оплачивает сейчас" in last_two
    assert "Его оплатит автоплатёж" in last_two
    harness.clock.now += timedelta(days=1)
    harness.clock.now = harness.clock.now.replace(hour=10, minute=0, second=5)
    await run_autopays(harness.app, harness.clock)
    await run_autopays(harness.app, harness.clock)
    amounts = sorted(c["amount"] for c in await ledger(harness))
    assert amounts == [300_000, 400_000, 812_450]
    data = harness.sandbox.app[DATA_KEY]
    assert data.bill(a).status is data.bill(b).status is BillStatus.PAID
    assert data.bill(big).status is BillStatus.UNPAID
    keys = [c["idempotence_key"] for c in await ledger(harness)]
    assert len(set(keys)) == 3
    assert_clean(maria)


async def test_skip_this_time_from_the_notice(harness: Harness) -> None:
    assert harness.app is not None
    harness.clock.now = datetime(2026, 11, 30, 12, 0, tzinfo=MSK)
    maria = await linked(harness, 100001, "demo-full")
    await discover(harness)
    await set_up_bill_autopay(maria, "10000")
    issue(harness, FULL, 812_450)
    await discover(harness)
    await deliver(harness)
    reply = await maria.press("Пропустить этот раз")
    assert "в этот раз не спишем" in reply.text
    harness.clock.now = datetime(2026, 12, 1, 10, 0, 5, tzinfo=MSK)
    await run_autopays(harness.app, harness.clock)
    assert await ledger(harness) == []
    # The next bill is paid as usual.
    issue(harness, FULL, 700_000, title="ЕПД за 12.2026")
    await discover(harness)
    harness.clock.now = datetime(2026, 12, 2, 10, 0, 5, tzinfo=MSK)
    await run_autopays(harness.app, harness.clock)
    assert [c["amount"] for c in await ledger(harness)] == [700_000]


@pytest.mark.markup_in_values
async def test_hostile_bill_names_and_amounts_render(harness: Harness) -> None:
    harness.clock.now = datetime(2026, 11, 30, 12, 0, tzinfo=MSK)
    maria = await linked(harness, 100001, "demo-full")
    await discover(harness)
    hostile = "<b>Газ & свет</b> «²» 1e5 😀"
    issue(harness, FULL, 1, title=hostile)
    issue(harness, FULL, 99_999_999_999, title=("Очень & <длинное> " * 400)[:5000])
    assert await discover(harness) == 2
    await deliver(harness)
    told = notices(maria)
    assert len(told) == 2
    assert any(hostile in t and nb("0,01 ₽") in t for t in told), told
    assert all(len(t) <= 4096 for t in told)
    assert_clean(maria)


# --- two schedulers at once, on PostgreSQL -------------------------------------------------


async def test_two_schedulers_at_once_write_one_notice_and_charge_once(
    pg_harness: Harness,
) -> None:
    harness = pg_harness
    assert harness.app is not None
    harness.clock.now = datetime(2026, 11, 30, 12, 0, tzinfo=MSK)
    maria = await linked(harness, 100001, "demo-full")
    elena = await linked(harness, 100002, "demo-standard")
    await discover(harness)
    await set_up_bill_autopay(maria, "10000")
    issue(harness, FULL, 812_450)
    issue(harness, STANDARD, 623_790)
    app = harness.app

    async def scheduler() -> int:
        result = await discover_bills(
            app.uow_factory, app.city, harness.clock(), DiscoveryCursor(), concurrency=2
        )
        return result.notices

    for _ in range(3):
        written = await asyncio.gather(scheduler(), scheduler(), scheduler())
        assert sum(written) <= 2
    assert await notices_stored(harness) == 2
    await deliver(harness)
    assert len(notices(maria)) == len(notices(elena)) == 1

    harness.clock.now = datetime(2026, 12, 1, 10, 0, 5, tzinfo=MSK)
    await asyncio.gather(
        *(autopay_tick(app.uow_factory, app.city, harness.clock()) for _ in range(3))
    )
    assert [c["amount"] for c in await ledger(harness)] == [812_450]


async def test_a_failing_city_stops_the_tick_and_the_batch_comes_again(harness: Harness) -> None:
    assert harness.app is not None
    harness.clock.now = datetime(2026, 11, 30, 12, 0, tzinfo=MSK)
    maria = await linked(harness, 100001, "demo-full")
    await discover(harness)
    issue(harness, FULL, 812_450)
    await harness.sandbox_call(
        "PUT", "/sandbox/faults", json={"status": 503, "paths": ["/api/v1/bills"]}
    )
    cursor = DiscoveryCursor()
    app = harness.app
    result = await discover_bills(app.uow_factory, app.city, harness.clock(), cursor)
    assert result.halted and result.notices == 0 and cursor.after == 0  # no crash, rewound
    await harness.sandbox_call("PUT", "/sandbox/faults", json={})
    assert (await discover_bills(app.uow_factory, app.city, harness.clock(), cursor)).notices == 1
    await deliver(harness)
    assert len(notices(maria)) == 1
