"""A heartbeat that finds its update's lease lapsed (a stall longer than the lease) and free
takes it back, in the embedded store as in Redis (`RedisDedup.renew_update`, tested in
tests/integration/test_lapsed_lease_answers_once.py): a delivery arriving now waits instead of
handling the update beside it, which would answer the resident a second time."""

from __future__ import annotations

from bot.dedup import ClaimState, MemoryDedup


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_heartbeat_takes_back_a_lapsed_lease_nobody_took() -> None:
    clock = Clock()
    store = MemoryDedup(clock)
    assert (await store.claim("a", "one", 10.0)).state is ClaimState.ACQUIRED
    clock.now += 11  # lapsed: nobody renewed it
    assert await store.renew("a", "one", 10.0)
    assert (await store.claim("a", "two", 10.0)).state is ClaimState.BUSY


async def test_a_heartbeat_takes_back_neither_another_owners_lease_nor_an_ended_update() -> None:
    clock = Clock()
    store = MemoryDedup(clock)
    await store.claim("a", "one", 10.0)
    clock.now += 11
    assert (await store.claim("a", "two", 10.0)).state is ClaimState.ACQUIRED  # taken over
    assert not await store.renew("a", "one", 10.0)
    await store.done("a")
    assert not await store.renew("a", "one", 10.0)  # ended: not taken back
    assert (await store.claim("a", "three", 10.0)).state is ClaimState.DONE
