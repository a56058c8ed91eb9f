"""A charge's outcome never overwrites a record another writer made of its run while the city
answered (`AutopayRun.stored`, review 36c): unlinking's settlement, the stranded-run
reconciliation, or a scheduler that took the run over after this one's lease may record it
first. The charge then writes nothing — not the run, not a notice, not the schedule — and only
its lease ends («settled»). Every answer the city can give a charge, on the batched path of
plain donations and on the general path; both databases, the city sandbox."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from city.client import CityClient
from domain import autopaying
from domain.autopay import AutopayRun, RunStatus
from domain.autopaying import SETTLED, tick
from domain.payments import Payment
from storage.models import AutopayRow
from storage.uow import UnitOfWorkFactory
from tests.integration.test_autopay_batched import notices
from tests.integration.test_autopay_job import DUE, add, leased

ELSEWHERE = "recorded_elsewhere"  # the other writer's failure, to tell its record by

CARDS = {
    "pm-full-4242": RunStatus.SUCCEEDED,  # paid
    "pm-full-0002": RunStatus.RETRYING,  # declined: tried again tomorrow
    "pm-full-9995": RunStatus.RETRYING,  # insufficient funds
    "pm-full-3220": RunStatus.FAILED,  # 3-D Secure wanted: the autopay is paused
}


class RecordedMeanwhile:
    """The sandbox client: once the city has answered a charge, another writer records the
    charge's run (FAILED, ELSEWHERE) before the job can — the interleaving forced."""

    def __init__(self, city: CityClient, factory: UnitOfWorkFactory) -> None:
        self._city, self._factory = city, factory
        self.answers: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._city, name)

    async def create_payment(self, session: Any, key: str, **kwargs: Any) -> Payment:
        payment = await self._city.create_payment(session, key, **kwargs)
        self.answers.append(payment.status.value)
        async with self._factory() as uow:
            autopay_id = int(key.split("-")[1])  # ap-<id>-<period>-<attempt>
            [run] = await uow.autopays.runs(autopay_id)
            assert (run.status, run.key) == (RunStatus.STARTED, key)
            run.status, run.failure = RunStatus.FAILED, ELSEWHERE
            assert await uow.autopays.save_run(run, DUE)
            await uow.commit()
        return payment


async def runs(factory: UnitOfWorkFactory, autopay_id: int) -> list[tuple[str, str | None]]:
    async with factory() as uow:
        return [(r.status.value, r.failure) for r in await uow.autopays.runs(autopay_id)]


async def due_at(engine: AsyncEngine, autopay_id: int) -> Any:
    async with engine.connect() as connection:
        return await connection.scalar(
            select(AutopayRow.next_due_at).where(AutopayRow.id == autopay_id)
        )


async def with_card(factory: UnitOfWorkFactory, autopay_id: int, card: str) -> None:
    async with factory() as uow:
        autopay = await uow.autopays.get(autopay_id)
        assert autopay is not None
        autopay.method_id = card
        await uow.autopays.save(autopay)
        await uow.commit()


@pytest.mark.parametrize("general", [False, True], ids=["batched", "general"])
@pytest.mark.parametrize("card", list(CARDS))
async def test_a_run_recorded_while_the_city_answered_keeps_that_record(
    engine: AsyncEngine,
    factory: UnitOfWorkFactory,
    city: CityClient,
    monkeypatch: pytest.MonkeyPatch,
    card: str,
    general: bool,
) -> None:
    if general:  # every autopay by `_charge`, one at a time
        monkeypatch.setattr(autopaying, "_plain", lambda _autopay: False)
    [autopay_id] = await add(factory, 1)
    await with_card(factory, autopay_id, card)
    before = await due_at(engine, autopay_id)
    meanwhile = RecordedMeanwhile(city, factory)
    outcomes: list[str] = []
    assert await tick(factory, meanwhile, DUE, outcomes) == 1
    assert len(meanwhile.answers) == 1  # the city was asked once, and answered
    assert await runs(factory, autopay_id) == [("failed", ELSEWHERE)]
    # a success on the batched path is counted when the city answers, before its record
    paid_batched = CARDS[card] is RunStatus.SUCCEEDED and not general
    assert outcomes == [RunStatus.SUCCEEDED.value if paid_batched else SETTLED]
    assert not [k for k in await notices(engine) if k.startswith("autopay")]
    assert await due_at(engine, autopay_id) == before  # the schedule is that writer's to move
    assert await leased(engine) == 0  # the lease ended: nothing waits for it to expire


async def test_the_run_as_the_job_recorded_it_without_another_writer(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient
) -> None:
    """The check above is not what decides: with nobody writing meanwhile, each answer is
    recorded as the job records it."""
    ids = await add(factory, len(CARDS))
    for autopay_id, card in zip(ids, CARDS, strict=True):
        await with_card(factory, autopay_id, card)
    assert await tick(factory, city, DUE) == len(CARDS)
    recorded = [(await runs(factory, i))[0][0] for i in ids]
    assert recorded == [status.value for status in CARDS.values()]


async def test_a_stale_copy_of_a_run_writes_nothing(factory: UnitOfWorkFactory) -> None:
    """The store's rule itself: of two copies read alike, the second to write finds the run
    moved on and writes nothing; a copy read again writes."""
    [autopay_id] = await add(factory, 1)
    async with factory() as uow:
        made = await uow.autopays.run_for(autopay_id, "2026-11", "ap-x-1", DUE)
        await uow.commit()
    async with factory() as uow:
        first, second = (await uow.autopays.runs(autopay_id))[0], made
        first.status, first.failure = RunStatus.FAILED, ELSEWHERE
        assert await uow.autopays.save_run(first, DUE)
        second.status, second.attempts = RunStatus.RETRYING, 1
        assert not await uow.autopays.save_run(second, DUE + timedelta(seconds=1))
        await uow.commit()
    assert await runs(factory, autopay_id) == [("failed", ELSEWHERE)]
    async with factory() as uow:
        [fresh] = await uow.autopays.runs(autopay_id)
        fresh.status = RunStatus.RETRYING
        assert await uow.autopays.save_run(fresh, DUE)
        await uow.commit()
    assert await runs(factory, autopay_id) == [("retrying", ELSEWHERE)]


def test_a_copy_not_read_from_the_store_carries_no_version() -> None:
    assert AutopayRun(1, "2026-11", "k", RunStatus.STARTED).stored is None
