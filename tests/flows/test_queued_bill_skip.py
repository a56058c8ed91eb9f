"""«Не оплачивать автоплатежом» under a «Пришёл счёт» queued for an on-issue autopay: a queued
bill is charged the moment the bill before it is done, so this notice is the resident's only
chance to stop it. Pressed in time, the bill is not charged and stays the resident's to pay;
pressed late, they are told it cannot be stopped; a forged or repeated press changes nothing."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.jobs import run_autopays
from handlers.bill_notice import BillAutopaySkip
from handlers.buttons import item_ref
from sandbox.data import BillStatus
from sandbox.oauth import DATA_KEY
from tests.flows.conftest import Harness
from tests.flows.test_bill_discovery import (
    FULL,
    MSK,
    deliver,
    discover,
    issue,
    ledger,
    linked,
    notices,
    set_up_bill_autopay,
)
from tests.flows.test_hostile_input import forge
from tests.flows.test_hostile_text import assert_clean

SKIP = "Не оплачивать автоплатежом"


async def two_bills(harness: Harness):  # type: ignore[no-untyped-def]
    """Maria's on-issue ЕПД autopay; two bills at once: the first handed over, the second
    queued behind it. Returns her chat and the two bills' ids."""
    harness.clock.now = datetime(2026, 11, 30, 12, 0, tzinfo=MSK)
    maria = await linked(harness, 100001, "demo-full")
    await discover(harness)  # baseline
    await set_up_bill_autopay(maria, "10000")
    first = issue(harness, FULL, 300_000, title="ЕПД за 12.2026 (кв. 1)")
    second = issue(harness, FULL, 400_000, title="ЕПД за 12.2026 (кв. 2)")
    assert await discover(harness) == 2
    await deliver(harness)
    return maria, first, second


async def charge_day(harness: Harness) -> None:
    harness.clock.now = datetime(2026, 12, 1, 10, 0, 5, tzinfo=MSK)
    await run_autopays(harness.app, harness.clock)  # type: ignore[arg-type]
    await run_autopays(harness.app, harness.clock)  # type: ignore[arg-type]


async def test_a_queued_bill_skipped_in_time_is_not_charged_and_stays_payable(
    harness: Harness,
) -> None:
    maria, first, second = await two_bills(harness)
    queued = next(t for t in notices(maria) if "сразу после счёта" in t)
    assert "кв. 2" in queued
    assert SKIP in maria.buttons, maria.buttons
    reply = await maria.press(SKIP)
    assert "оплачивать не будет" in reply.text, reply.texts
    assert maria.buttons == ["Оплатить"], maria.buttons
    await charge_day(harness)
    assert [c["amount"] for c in await ledger(harness)] == [300_000]
    data = harness.sandbox.app[DATA_KEY]
    assert data.bill(first).status is BillStatus.PAID
    assert data.bill(second).status is BillStatus.UNPAID
    reply = await maria.press("Оплатить")  # the resident pays it themselves
    assert "4 000,00" in reply.text.replace("\xa0", " "), reply.texts
    assert_clean(maria)


async def test_a_second_tap_changes_nothing(harness: Harness) -> None:
    maria, _, second = await two_bills(harness)
    await maria.press(SKIP)
    assert harness.app is not None
    async with harness.app.uow_factory() as uow:
        [autopay] = await uow.autopays.of_resident(maria.chat_id)
    forged = BillAutopaySkip(autopay=autopay.id, bill=item_ref(second)).pack()
    reply = await forge(maria, forged)
    assert "Что-то пошло не так" not in " ".join(reply.texts)
    await charge_day(harness)
    assert [c["amount"] for c in await ledger(harness)] == [300_000]


async def test_a_queued_bill_handed_over_before_the_tap_is_still_skipped(
    harness: Harness,
) -> None:
    maria, first, second = await two_bills(harness)
    # The first bill paid on the site and the second handed over (as `_take_queued` does when
    # the first is done), its charge not yet started: the tap skips it like «Пропустить».
    harness.sandbox.app[DATA_KEY].update_bill(first, status=BillStatus.PAID)
    assert harness.app is not None
    async with harness.app.uow_factory() as uow:
        [autopay] = await uow.autopays.of_resident(maria.chat_id)
        assert autopay.id is not None
        held = await uow.autopays.lock(autopay.id)
        assert held is not None and held.id is not None
        assert await uow.known_bills.next_queued(held.id) == second
        held.take_bill(second, datetime(2026, 12, 1, 10, 0, tzinfo=MSK))
        await uow.autopays.save_progress(held)
        await uow.commit()
    reply = await maria.press(SKIP)
    assert "оплачивать не будет" in reply.text, reply.texts
    await charge_day(harness)
    harness.clock.now += timedelta(days=1)
    await run_autopays(harness.app, harness.clock)
    assert 400_000 not in [c["amount"] for c in await ledger(harness)]
    assert harness.sandbox.app[DATA_KEY].bill(second).status is BillStatus.UNPAID


async def test_a_tap_after_the_queued_bill_was_charged_says_so(harness: Harness) -> None:
    maria, _, _ = await two_bills(harness)
    await charge_day(harness)
    assert sorted(c["amount"] for c in await ledger(harness)) == [300_000, 400_000]
    reply = await maria.press(SKIP)
    assert "оплачивать не будет" not in reply.text, reply.texts
    assert "оплачен" in reply.text or "уже оплачивает" in reply.text, reply.texts


async def test_another_residents_autopay_id_is_refused(harness: Harness) -> None:
    maria, _, second = await two_bills(harness)
    elena = await linked(harness, 100002, "demo-standard")
    assert harness.app is not None
    async with harness.app.uow_factory() as uow:
        [autopay] = await uow.autopays.of_resident(maria.chat_id)
    reply = await forge(elena, BillAutopaySkip(autopay=autopay.id, bill=item_ref(second)).pack())
    assert "Что-то пошло не так" not in " ".join(reply.texts)
    await charge_day(harness)
    assert sorted(c["amount"] for c in await ledger(harness)) == [300_000, 400_000]
