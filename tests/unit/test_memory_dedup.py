"""The in-memory dedup store (the embedded mode) costs the markers that expired, not the day's
markers: a call never walks every marker, markers still expire, and the store is bounded."""

from __future__ import annotations

from bot.dedup import DONE_TTL, ClaimState, MemoryDedup


class ProbeKey(str):
    """A key that counts how often it is hashed: rebuilding or rehashing the markers (a scan
    of all of them) hashes every key again."""

    hashed = 0

    def __hash__(self) -> int:
        ProbeKey.hashed += 1
        return str.__hash__(self)

    def __eq__(self, other: object) -> bool:
        return str.__eq__(self, other)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_claim_touches_only_the_markers_that_expired() -> None:
    clock = Clock()
    store = MemoryDedup(clock)
    markers = 120_000  # above the old store's sweep threshold (100 000)
    for n in range(markers):
        clock.now += 0.001
        await store.done(ProbeKey(f"u:{n}"))
    clock.now += DONE_TTL - markers * 0.001 + 0.0105  # the first ten are past DONE_TTL

    ProbeKey.hashed = 0
    for n in range(50):  # fifty updates, each a claim and a done
        assert (await store.claim(f"new:{n}", "me", 10.0)).state is ClaimState.ACQUIRED
        await store.done(f"new:{n}")
    assert ProbeKey.hashed <= 10 * 2, ProbeKey.hashed  # only the ten expired ones

    assert (await store.claim("u:0", "me", 10.0)).state is ClaimState.ACQUIRED  # expired
    assert (await store.claim(f"u:{markers - 1}", "me", 10.0)).state is ClaimState.DONE


async def test_markers_still_expire_and_leases_still_lapse() -> None:
    clock = Clock()
    store = MemoryDedup(clock)
    assert (await store.claim("a", "one", 10.0)).state is ClaimState.ACQUIRED
    busy = await store.claim("a", "two", 10.0)
    assert busy.state is ClaimState.BUSY and busy.lease_left == 10.0
    clock.now += 5
    assert await store.renew("a", "one", 10.0)  # the lease now runs to +15
    clock.now += 9
    assert (await store.claim("a", "two", 10.0)).state is ClaimState.BUSY
    clock.now += 2  # the renewed lease lapsed: a dead owner's update is taken over
    assert (await store.claim("a", "two", 10.0)).state is ClaimState.ACQUIRED
    assert not await store.renew("a", "one", 10.0)
    await store.done("a")
    clock.now += DONE_TTL - 1
    assert (await store.claim("a", "three", 10.0)).state is ClaimState.DONE
    clock.now += 1
    assert (await store.claim("a", "three", 10.0)).state is ClaimState.ACQUIRED


async def test_the_store_is_bounded_and_keeps_live_leases() -> None:
    clock = Clock()
    store = MemoryDedup(clock, limit=1_000)
    assert (await store.claim("live", "me", 10.0)).state is ClaimState.ACQUIRED
    for n in range(5_000):
        clock.now += 0.0001
        await store.done(f"u:{n}")
        await store.hit(f"chat:{n}", 60)
    assert len(store._done.values) == 1_000 and len(store._counts.values) == 1_000
    assert (await store.claim(f"u:{4_999}", "me", 10.0)).state is ClaimState.DONE  # newest kept
    assert (await store.claim("u:0", "me", 10.0)).state is ClaimState.ACQUIRED  # oldest dropped
    assert (await store.claim("live", "other", 10.0)).state is ClaimState.BUSY


async def test_hit_counts_within_its_window() -> None:
    clock = Clock()
    store = MemoryDedup(clock)
    assert [await store.hit("k", 60) for _ in range(3)] == [1, 2, 3]
    clock.now += 61
    assert await store.hit("k", 60) == 1


async def test_the_same_owner_takes_its_lease_back_and_another_waits() -> None:
    """As `RedisDedup`'s claim script: polling's attempts at one update share an owner
    (`TransientRetryMiddleware`), so a lease an earlier attempt left is theirs again."""
    clock = Clock()
    store = MemoryDedup(clock)
    assert (await store.claim("u:1", "attempts-of-1", 10)).state is ClaimState.ACQUIRED
    assert (await store.claim("u:1", "attempts-of-1", 10)).state is ClaimState.ACQUIRED
    busy = await store.claim("u:1", "someone-else", 10)
    assert busy.state is ClaimState.BUSY
    await store.done("u:1")
    assert (await store.claim("u:1", "attempts-of-1", 10)).state is ClaimState.DONE
