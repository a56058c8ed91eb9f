"""Review of issue 14's autopay job: a resident who pauses, deletes or changes an autopay while a
run holds it (claimed in a batch, waiting its turn or being charged) must be obeyed. The run
works on the copy it claimed; the sandbox's ledger and the stored row are the judges."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from city.client import CityClient
from domain.autopay import MOSCOW, AutopayStatus, Frequency, PauseReason, RunStatus, Schedule
from domain.autopaying import change, change_card, set_status, tick
from domain.payments import Payment
from sandbox import SandboxServer
from storage.uow import UnitOfWorkFactory
from tests.integration.test_autopay_job import DUE, RESIDENT, add, charged, leased, ledger

# The job tests' fixtures, used here under the same names.


class Meanwhile:
    """The real sandbox client; `before(n)` runs before the n-th create_payment (from 1) goes
    out: what the resident does in the bot while the run is under way."""

    def __init__(self, city: CityClient, before: Callable[[int], Awaitable[None]]) -> None:
        self._city, self._before, self.calls = city, before, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._city, name)

    async def create_payment(self, *args: Any, **kwargs: Any) -> Payment:
        self.calls += 1
        await self._before(self.calls)
        return await self._city.create_payment(*args, **kwargs)


async def resident_of(factory: UnitOfWorkFactory) -> Any:
    async with factory() as uow:
        return await uow.residents.get(RESIDENT)


async def test_an_autopay_paused_while_it_waits_in_a_claimed_batch_is_not_charged(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    first, second = await add(factory, 2)
    resident = await resident_of(factory)

    async def pause_the_second(call: int) -> None:
        if call == 1:  # the second is claimed, waiting for the one worker
            async with factory() as uow:
                await set_status(uow, resident, second, AutopayStatus.PAUSED, DUE)

    await tick(factory, Meanwhile(city, pause_the_second), DUE, concurrency=1)
    async with factory() as uow:
        stored = await uow.autopays.get(second)
    assert stored is not None and stored.status is AutopayStatus.PAUSED  # the resident's word
    assert charged(await ledger(sandbox)) == [first]  # the paused one is not charged


async def test_an_autopay_deleted_while_it_waits_in_a_claimed_batch_is_not_charged(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    first, second = await add(factory, 2)
    resident = await resident_of(factory)

    async def delete_the_second(call: int) -> None:
        if call == 1:
            async with factory() as uow:
                await set_status(uow, resident, second, AutopayStatus.DELETED, DUE)

    await tick(factory, Meanwhile(city, delete_the_second), DUE, concurrency=1)
    assert charged(await ledger(sandbox)) == [first]


async def test_a_pause_made_while_the_charge_is_in_flight_survives_the_runs_end(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    """This period's charge has gone out and cannot be called back; the pause is for the
    next ones — the run must not write its stale ACTIVE copy over it."""
    (only,) = await add(factory, 1)
    resident = await resident_of(factory)

    async def pause(call: int) -> None:
        async with factory() as uow:
            await set_status(uow, resident, only, AutopayStatus.PAUSED, DUE)

    await tick(factory, Meanwhile(city, pause), DUE, concurrency=1)
    async with factory() as uow:
        stored = await uow.autopays.get(only)
    assert stored is not None
    assert stored.status is AutopayStatus.PAUSED  # else next month is charged again


async def test_a_new_amount_set_while_the_charge_is_in_flight_is_kept(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    (only,) = await add(factory, 1)
    resident = await resident_of(factory)

    async def new_amount(call: int) -> None:
        async with factory() as uow:
            await change(uow, resident, only, DUE, money=20_000)

    await tick(factory, Meanwhile(city, new_amount), DUE, concurrency=1)
    async with factory() as uow:
        stored = await uow.autopays.get(only)
    assert stored is not None and stored.amount == 20_000  # the resident's edit is not lost


async def test_a_new_day_and_card_set_while_the_charge_is_in_flight_are_kept(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    """The 25th's charge has gone out; the resident moves the autopay to the 28th and to
    another card meanwhile. Both stand, this period is not charged again on the 28th, and
    December's charge comes on the 28th."""
    (only,) = await add(factory, 1)
    resident = await resident_of(factory)

    async def new_day_and_card(call: int) -> None:
        async with factory() as uow:
            await change(uow, resident, only, DUE, schedule=Schedule(Frequency.MONTHLY, 28))
        async with factory() as uow:
            await change_card(uow, city, city, resident, only, "pm-full-9995", DUE)

    await tick(factory, Meanwhile(city, new_day_and_card), DUE, concurrency=1)
    async with factory() as uow:
        stored = await uow.autopays.get(only)
    assert stored is not None
    assert (stored.schedule.day, stored.method_id) == (28, "pm-full-9995")
    await tick(factory, city, datetime(2026, 11, 28, 10, 0, 1, tzinfo=MOSCOW))
    await tick(factory, city, datetime(2026, 12, 25, 10, 0, 1, tzinfo=MOSCOW))  # the old day
    async with factory() as uow:  # November is paid already, December is not due
        assert [r.period for r in await uow.autopays.runs(only)] == ["2026-11"]
    await tick(factory, city, datetime(2026, 12, 28, 10, 0, 1, tzinfo=MOSCOW))
    async with factory() as uow:
        runs = await uow.autopays.runs(only)
    # December is tried on the 28th, with the new card (the sandbox's «insufficient funds»).
    assert [(r.period, r.status, r.failure) for r in runs] == [
        ("2026-11", RunStatus.SUCCEEDED, None),
        ("2026-12", RunStatus.RETRYING, "insufficient_funds"),
    ]


async def test_an_autopay_moved_to_a_later_day_while_it_waits_is_charged_on_that_day(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    first, second = await add(factory, 2)
    resident = await resident_of(factory)

    async def move_the_second(call: int) -> None:
        if call == 1:
            async with factory() as uow:
                await change(uow, resident, second, DUE, schedule=Schedule(Frequency.MONTHLY, 28))

    outcomes: list[str] = []
    await tick(factory, Meanwhile(city, move_the_second), DUE, outcomes, concurrency=1)
    assert outcomes == ["succeeded", "inactive"]
    assert charged(await ledger(sandbox)) == [first]
    await tick(factory, city, datetime(2026, 11, 28, 10, 0, 1, tzinfo=MOSCOW))
    assert charged(await ledger(sandbox)) == [first, second]


async def test_a_lease_another_run_took_after_it_expired_is_neither_charged_nor_freed(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    """This run is slow: its leases expire while it charges the first autopay, and another
    scheduler claims both. The second is the other's now: this run does not charge it, nor
    end the other's leases (a third would take them and work beside it)."""
    first, second = await add(factory, 2)

    async def another_scheduler_claims(call: int) -> None:
        if call == 1:
            async with factory() as uow:
                taken = await uow.autopays.claim_due(DUE + timedelta(minutes=6), 5)
                await uow.commit()
            assert {a.id for a in taken} == {first, second}

    outcomes: list[str] = []
    await tick(factory, Meanwhile(city, another_scheduler_claims), DUE, outcomes, concurrency=1)
    assert outcomes == ["succeeded", "inactive"]
    assert charged(await ledger(sandbox)) == [first]
    assert await leased(engine) == 2  # both still the other scheduler's


async def test_a_pause_made_during_a_charge_the_city_then_refuses_stays_the_residents(
    engine: AsyncEngine, factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    """The card asks for 3-D Secure, so the run would pause the autopay itself; the resident
    had paused it already: their pause (and its reason) stands."""
    (only,) = await add(factory, 1)
    resident = await resident_of(factory)
    async with factory() as uow:
        autopay = await uow.autopays.get(only)
        assert autopay is not None
        autopay.method_id = "pm-full-3220"  # 3-D Secure on every charge
        await uow.autopays.save(autopay)
        await uow.commit()

    async def pause(call: int) -> None:
        async with factory() as uow:
            await set_status(uow, resident, only, AutopayStatus.PAUSED, DUE)

    outcomes: list[str] = []
    await tick(factory, Meanwhile(city, pause), DUE, outcomes, concurrency=1)
    async with factory() as uow:
        stored = await uow.autopays.get(only)
    assert outcomes == ["paused"]  # the run did meet the refusal
    assert stored is not None
    assert (stored.status, stored.paused_reason) == (AutopayStatus.PAUSED, PauseReason.BY_RESIDENT)


async def kill_other_connections() -> None:
    from sqlalchemy import text

    from storage.database import create_engine
    from tests.conftest import POSTGRES_URL

    killer = create_engine(POSTGRES_URL, pool_size=1)
    try:
        async with killer.begin() as connection:
            await connection.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
    finally:
        await killer.dispose()


async def test_the_database_gone_between_the_charge_and_its_record_charges_once_and_tells_once(
    pg_engine: AsyncEngine, city: CityClient, sandbox: SandboxServer
) -> None:
    """PostgreSQL drops every connection while the city charges (a restart, a failover). The
    outcome cannot be recorded; the lease is kept; a run after it expired sends the same key:
    one charge in the ledger, the run SUCCEEDED, one «paid» notification, the lease ended."""
    from datetime import timedelta

    from sqlalchemy import func, select

    from domain.autopay import RunStatus
    from storage.models import NotificationRow
    from tests.integration.test_autopay_job import leased, linked

    factory = await linked(pg_engine, city)
    (only,) = await add(factory, 1)

    async def kill_after_the_charge(call: int) -> None:
        if call == 1:
            await kill_other_connections()  # the charge below goes out on the city's side

    outcome: BaseException | None = None
    try:
        await tick(factory, Meanwhile(city, kill_after_the_charge), DUE, concurrency=1)
    except Exception as error:
        outcome = error
    print("first run:", type(outcome).__name__ if outcome else "returned")
    outcomes: list[str] = []
    await tick(factory, city, DUE + timedelta(minutes=6), outcomes)  # the lease expired
    print("second run outcomes:", outcomes)
    assert charged(await ledger(sandbox)) == [only]
    async with factory() as uow:
        runs = await uow.autopays.runs(only)
        notes = await uow.session.scalar(
            select(func.count())
            .select_from(NotificationRow)
            .where(NotificationRow.kind == "autopay_paid")
        )
    assert [run.status for run in runs] == [RunStatus.SUCCEEDED]
    assert notes == 1
    assert await leased(pg_engine) == 0
