"""The job that settles autopay charges a dead scheduler left unrecorded (`bot.jobs.
reconcile_autopay_runs`), as the scheduler runs it: every RECONCILE_EVERY seconds, one at a
time; a charge made before the resident paused is recorded and the resident told in the chat,
once; a run younger than the charge run's lease is not touched."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from apscheduler.triggers.interval import IntervalTrigger

from bot.app import RECONCILE_EVERY
from bot.jobs import deliver_notifications, reconcile_autopay_runs, run_autopays, start_scheduler
from bot.ratelimit import MemoryLimiter
from domain.autopay import AutopayStatus, RunStatus
from domain.autopaying import set_status
from storage.autopays import LEASE
from tests.flows.conftest import Harness
from tests.flows.test_autopay_and_outbox import ledger, set_up_donation

MSK = timezone(timedelta(hours=3))


class Crash(BaseException):
    """The scheduler process dies."""


async def test_the_job_is_scheduled_like_the_payments_reconciliation(harness: Harness) -> None:
    assert harness.app is not None
    scheduler = start_scheduler(harness.app)
    try:
        [job] = [job for job in scheduler.get_jobs() if job.func is reconcile_autopay_runs]
        assert isinstance(job.trigger, IntervalTrigger)
        assert job.trigger.interval.total_seconds() == RECONCILE_EVERY
        assert job.max_instances == 1
    finally:
        scheduler.shutdown(wait=False)


async def test_a_charge_made_then_paused_is_recorded_and_told_in_the_chat(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat = harness.chat()
    await harness.link(chat)
    harness.clock.now = datetime(2026, 11, 24, 12, 0, tzinfo=MSK)
    await set_up_donation(harness, chat, 25)
    app = harness.app
    assert app is not None
    charge = app.city.create_payment

    async def dies_after_the_charge(*args: Any, **kwargs: Any) -> Any:
        await charge(*args, **kwargs)
        raise Crash()

    harness.clock.now = datetime(2026, 11, 25, 10, 0, 5, tzinfo=MSK)
    with monkeypatch.context() as patch:
        patch.setattr(app.city, "create_payment", dies_after_the_charge)
        with pytest.raises(Crash):
            await run_autopays(app, harness.clock)
    assert len(await ledger(harness)) == 1
    async with app.uow_factory() as uow:
        resident = await uow.residents.get(chat.chat_id)
        assert resident is not None
        [autopay] = await uow.autopays.of_resident(chat.chat_id)
        assert autopay.id is not None
        await set_status(uow, resident, autopay.id, AutopayStatus.PAUSED, harness.clock())
    harness.clock.advance(60)  # the dead scheduler's lease still holds: not touched
    assert await reconcile_autopay_runs(app, harness.clock) == 0
    harness.clock.advance(LEASE.total_seconds())
    assert await reconcile_autopay_runs(app, harness.clock) == 1
    assert await reconcile_autopay_runs(app, harness.clock) == 0  # once
    async with app.uow_factory() as uow:
        assert [r.status for r in await uow.autopays.runs(autopay.id)] == [RunStatus.SUCCEEDED]
    harness.clock.now = harness.clock.now.replace(hour=12)  # out of the quiet hours
    await deliver_notifications(app, harness.clock, MemoryLimiter())
    told = [text for text in chat.history if "Автоплатёж" in text and "списано" in text]
    assert len(told) == 1
    assert len(await ledger(harness)) == 1
