"""«Приостановить» and «Удалить» tell whether the period's charge was already on its way
(`StatusSet.charge_under_way`, review 36c): true only while the period's run holds a key
that may have reached the bank (STARTED, attempts ≥ 1); never for a run not begun, one
settled either way, or one waiting for its next attempt; never for a resume. Both databases,
the city sandbox."""

from __future__ import annotations

from datetime import timedelta

import pytest

from city.client import CityClient
from domain.autopay import AutopayStatus, RunStatus
from domain.autopaying import set_status, tick
from storage.uow import UnitOfWorkFactory
from tests.integration.test_autopay_job import DUE, add
from tests.integration.test_autopay_stranded_runs import crashed, resident, runs

LATER = DUE + timedelta(minutes=1)


async def status_set(factory: UnitOfWorkFactory, autopay_id: int, status: AutopayStatus) -> bool:
    who = await resident(factory)
    async with factory() as uow:
        done = await set_status(uow, who, autopay_id, status, LATER)
    assert done.autopay.status is status
    return done.charge_under_way


@pytest.mark.parametrize("status", [AutopayStatus.PAUSED, AutopayStatus.DELETED])
async def test_a_key_on_record_is_a_charge_under_way(
    factory: UnitOfWorkFactory, city: CityClient, status: AutopayStatus
) -> None:
    autopay_id = await crashed(factory, city, charged=False)  # the key recorded, city not told
    assert await status_set(factory, autopay_id, status)


async def test_a_pause_then_a_resume_is_not_a_charge_under_way(
    factory: UnitOfWorkFactory, city: CityClient
) -> None:
    autopay_id = await crashed(factory, city, charged=False)
    assert await status_set(factory, autopay_id, AutopayStatus.PAUSED)
    assert not await status_set(factory, autopay_id, AutopayStatus.ACTIVE)


async def test_no_run_yet_is_no_charge_under_way(factory: UnitOfWorkFactory) -> None:
    [autopay_id] = await add(factory, 1)
    assert not await status_set(factory, autopay_id, AutopayStatus.PAUSED)


async def test_a_period_charged_is_no_charge_under_way(
    factory: UnitOfWorkFactory, city: CityClient
) -> None:
    [autopay_id] = await add(factory, 1)
    assert await tick(factory, city, DUE) == 1
    assert [run.status for run in await runs(factory, autopay_id)] == [RunStatus.SUCCEEDED]
    assert not await status_set(factory, autopay_id, AutopayStatus.PAUSED)


@pytest.mark.parametrize("settled", [RunStatus.RETRYING, RunStatus.FAILED, RunStatus.SKIPPED])
async def test_a_run_waiting_or_settled_is_no_charge_under_way(
    factory: UnitOfWorkFactory, city: CityClient, settled: RunStatus
) -> None:
    autopay_id = await crashed(factory, city, charged=False)
    [run] = await runs(factory, autopay_id)
    run.status = settled
    async with factory() as uow:
        await uow.autopays.save_run(run, LATER)
        await uow.commit()
    assert not await status_set(factory, autopay_id, AutopayStatus.DELETED)
