"""Short-lived shared markers: update de-duplication with leases, per-chat locks with leases,
and flood counters.

In the embedded mode they live in process memory; with Redis they are shared by replicas.

A replica can die at any instant (kill -9, OOM, a node lost) without cleaning up, so nothing
it holds may outlive it by more than a few seconds: an update being handled is marked with a
short lease carrying its owner's token, and the per-chat lock is a short Redis lock; both are
renewed by a heartbeat task while the handler runs. A dead owner stops renewing and its lease
lapses; the next delivery takes the update (or the chat) over."""

from __future__ import annotations

import asyncio
import heapq
import math
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Protocol

import structlog
from aiogram.fsm.storage.base import DEFAULT_DESTINY, KeyBuilder, StorageKey
from aiogram.fsm.storage.redis import RedisEventIsolation
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import LockNotOwnedError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bot.metrics import LEASES_LOST
from storage.fsm import UpdateBatch, current_batch

log = structlog.get_logger(__name__)

# Module defaults, read when a middleware or isolation is built (tests shorten them).
PROCESSING_LEASE = 10.0  # seconds an update's "processing" marker lives without a heartbeat
DONE_TTL = 24 * 3600  # seconds; Telegram does not redeliver after a day
LOCK_LEASE = 5.0  # seconds a per-chat lock lives without a heartbeat (aiogram's default: 60)
LOCK_POLL = 0.05  # seconds between tries of a waiter for a per-chat lock
BUSY_RETRY_AFTER = (1, 5)  # whole seconds: the Retry-After range for an update being handled
MEMORY_MARKERS = 200_000  # markers (and counters) the in-memory store keeps at most
# Seconds to wait before each further attempt at an update's end (`RedisDedup.finish`) when
# Redis did not answer: about 1.75 s in all, well within the leases (renewed meanwhile).
FINISH_RETRIES = (0.05, 0.2, 0.5, 1.0)
# The handler data's key for what the claim read besides (`Claim.also_read`): (the set's key,
# its members). An inner middleware uses it instead of a round trip of its own (`bot.album`).
ALSO_READ = "dedup_also_read"


class ClaimState(StrEnum):
    ACQUIRED = "acquired"  # ours now: handle it
    BUSY = "busy"  # a live lease of another owner: ask Telegram to come back
    DONE = "done"  # handled (or told once) already: answer 2xx, do nothing


class Ended(StrEnum):
    """How an update's end went (`RedisDedup.finish`)."""

    OK = "ok"  # its state written, its locks let go, its marker done (or given back)
    FINISHED = "finished"  # it had ended already (this end sent twice; or another owner's)
    LOST = "lost"  # its marker or a chat lock was no longer ours: nothing written


class LeaseLost(TimeoutError):
    """An update's lease (its marker or one of its per-chat locks) ran out before its end was
    written and another took it over or wrote what the update read meanwhile, so its dialog
    state was not written: it is stale. Transient (a timeout for `bot.failures.classify`):
    the update is handled again, with the state as it is now. (A lapse nobody used is not
    this: `RedisDedup.finish` writes the state then.)"""


@dataclass(frozen=True, slots=True)
class Claim:
    state: ClaimState
    lease_left: float = 0.0  # seconds left on the other owner's lease (BUSY only)
    # The members of the set named with the claim (`also_read`), read in the same round trip
    # when the update is ours: the chat's pending album groups (`bot.album`); None if not asked.
    also_read: tuple[str, ...] | None = None

    def retry_after(self) -> int:
        """Whole seconds for a Retry-After header: the lease left, within BUSY_RETRY_AFTER."""
        low, high = BUSY_RETRY_AFTER
        return min(high, max(low, math.ceil(self.lease_left)))


class DedupStore(Protocol):
    async def claim(self, key: str, owner: str, lease: float) -> Claim:
        """Take the update for `owner` with a lease of `lease` seconds, unless it is done or
        another owner's lease is live. An expired lease (a dead owner) is taken over."""
        ...

    async def renew(self, key: str, owner: str, lease: float) -> bool:
        """Extend `owner`'s lease to `lease` seconds from now; a lease that lapsed and that
        nobody took (nor ended) meanwhile is taken back. False when another owner holds it."""
        ...

    async def done(self, key: str) -> None:
        """Handled: redeliveries for a day are answered without handling."""
        ...

    async def release(self, key: str, owner: str) -> None:
        """Give the update back (it failed and will be redelivered) if the lease is ours."""
        ...

    async def hit(self, key: str, window: int) -> int:
        """Count an event in a window of `window` seconds; the count so far."""
        ...


_DONE = "done"


def _processing(owner: str) -> str:
    return f"processing:{owner}"


class _Expiring:
    """Values with a moment of expiry, dropped in O(1) amortised: a heap of (until, key) is
    popped from the front only while its head has expired (an entry whose value was
    overwritten since is skipped), so a call touches only what expired, never every value.
    Above `limit` values the soonest to expire are dropped first."""

    def __init__(self, limit: int) -> None:
        self.values: dict[str, tuple[Any, float]] = {}  # key → (value, until)
        self._heap: list[tuple[float, str]] = []
        self._limit = limit

    def get(self, key: str, now: float) -> tuple[Any, float] | None:
        found = self.values.get(key)
        return None if found is None or found[1] <= now else found

    def put(self, key: str, value: Any, until: float, now: float) -> None:
        self.expire(now)
        self.values[key] = (value, until)
        heapq.heappush(self._heap, (until, key))
        while len(self.values) > self._limit:
            self._drop_head()
        if len(self._heap) > 2 * len(self.values) + 64:  # many renewals: rebuild once
            self._heap = [(until, key) for key, (_, until) in self.values.items()]
            heapq.heapify(self._heap)

    def pop(self, key: str) -> None:
        self.values.pop(key, None)  # its heap entry is skipped when it comes up

    def expire(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            self._drop_head()

    def _drop_head(self) -> None:
        until, key = heapq.heappop(self._heap)
        found = self.values.get(key)
        if found is not None and found[1] == until:
            del self.values[key]


class MemoryDedup:
    """The same semantics within one process (the embedded mode and tests). Each call costs
    O(log n) plus the markers that expired since the last call (no scan of the day's markers);
    at most `limit` done markers, `limit` leases and `limit` counters are kept (apart, so a
    day of done markers never pushes out a live lease), the soonest to expire dropped first."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, limit: int = MEMORY_MARKERS
    ) -> None:
        self._clock = clock
        self._leases = _Expiring(limit)  # key → owner's processing marker
        self._done = _Expiring(limit)  # key → _DONE
        self._counts = _Expiring(limit)  # key → count in its window

    async def claim(self, key: str, owner: str, lease: float) -> Claim:
        now = self._clock()
        self._done.expire(now)
        if self._done.get(key, now) is not None:
            return Claim(ClaimState.DONE)
        held = self._leases.get(key, now)
        if held is not None and held[0] != _processing(owner):  # the same owner: ours again
            return Claim(ClaimState.BUSY, held[1] - now)
        self._leases.put(key, _processing(owner), now + lease, now)
        return Claim(ClaimState.ACQUIRED)

    async def renew(self, key: str, owner: str, lease: float) -> bool:
        now = self._clock()
        held = self._leases.get(key, now)
        if held is None and self._done.get(key, now) is None:  # lapsed, nobody took it
            held = (_processing(owner), now)  # taken back, as RedisDedup's heartbeat does
        if held is None or held[0] != _processing(owner):
            return False
        self._leases.put(key, held[0], now + lease, now)
        return True

    async def done(self, key: str) -> None:
        now = self._clock()
        self._leases.pop(key)
        self._done.put(key, _DONE, now + DONE_TTL, now)

    async def release(self, key: str, owner: str) -> None:
        held = self._leases.get(key, self._clock())
        if held is not None and held[0] == _processing(owner):
            self._leases.pop(key)

    async def hit(self, key: str, window: int) -> int:
        now = self._clock()
        found = self._counts.get(key, now)
        count, expires = (0, now + window) if found is None else found
        self._counts.put(key, count + 1, expires, now)
        return count + 1


# Atomic on Redis: read and take in one step, so two replicas never both get ACQUIRED.
# A marker equal to our own value is our own claim sent again by redis-py's retry (the script
# ran, its answer was lost): still ours.
# KEYS[2], when given, names a set whose members are answered with an acquired claim (`also_read`).
_CLAIM = """
local value = redis.call('GET', KEYS[1])
if not value or value == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  if KEYS[2] then return {'acquired', 0, redis.call('SMEMBERS', KEYS[2])} end
  return {'acquired', 0}
end
if value == 'done' then
  return {'done', 0}
end
return {'busy', redis.call('PTTL', KEYS[1])}
"""
_RENEW = """
local marker = redis.call('GET', KEYS[1])
if marker == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if not marker then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
# A flood counter's hit: counted and given its TTL (ARGV[1] s) in one step, so no failure
# between two round trips can leave a counter that never expires (one without a TTL, whatever
# left it so, gets one).
_HIT = """
local count = redis.call('INCR', KEYS[1])
if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


# The claim with the update's flood count (ThrottlingMiddleware) in the same round trip.
# KEYS: the marker, the flood counter's window bucket, and optionally a set whose members are
# answered with an acquired claim (`also_read`). ARGV: marker, lease ms, bucket TTL s.
# Our own claim sent again (redis-py's retry after a lost answer) is still ours and is not
# counted again: the bucket's count is answered as it is (it may include later updates).
_CLAIM_COUNTED = """
local value = redis.call('GET', KEYS[1])
if value == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  local count = tonumber(redis.call('GET', KEYS[2]))
  if not count then
    count = redis.call('INCR', KEYS[2])
    redis.call('EXPIRE', KEYS[2], ARGV[3])
  end
  if KEYS[3] then return {'acquired', 0, count, redis.call('SMEMBERS', KEYS[3])} end
  return {'acquired', 0, count}
end
if not value then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  local count = redis.call('INCR', KEYS[2])
  if count == 1 then redis.call('EXPIRE', KEYS[2], ARGV[3]) end
  if KEYS[3] then return {'acquired', 0, count, redis.call('SMEMBERS', KEYS[3])} end
  return {'acquired', 0, count}
end
if value == 'done' then
  return {'done', 0, 0}
end
return {'busy', redis.call('PTTL', KEYS[1]), 0}
"""
# The end of an update, in one step: its dialog state written, its locks let go, its marker
# set to done or given back — if nothing it read can have changed under it. That holds when its
# marker and every one of its per-chat locks are still ours, and also, for a handled update
# ('done'), when a lease lapsed (the process stalled past it) but nobody took anything over:
# the marker is ours or gone, each lock ours or gone, and every key the update read (its
# batch's `read`) still holds the value it read. Handling such an update again would only
# answer the resident a second time. (A failed update given back, 'release', is handled again
# anyway: a lapse writes nothing for it, as a replay by redis-py of an end that ran must not.)
# Otherwise (another owner holds the marker or a lock, or a key read was written meanwhile:
# another update of the chat ran in between) nothing is written (the state was read stale),
# only what is still ours is let go, others' untouched.
# A lease that lapsed and was taken back by a heartbeat (`_RENEW_UPDATE`, `_RENEW_ALL`) is
# checked the same way: someone may have used it in between.
# KEYS: the marker, the written keys, the locks, the keys read. ARGV: 'done' | 'release', the
# marker's owner value, done TTL s, number of writes, number of locks, '1' when a lease was
# taken back ('0' if not), then per write: value (or '' with a ttl of -1: delete), ttl s
# (0: none); then per lock: its token; then per key read: '1' and its value, or '0' and ''
# (it was not there).
# Returns {outcome, how many of the locks were no longer ours, 1 if the marker was not}: 'ok'
# (all done; the counts say what lapsed uncontested), 'finished' (the marker is done already:
# this end sent again by redis-py after a lost answer, or another owner ended the update;
# nothing done) or 'lost' (taken over or written meanwhile; nothing written).
_FINISH = """
local writes, locks, h = tonumber(ARGV[4]), tonumber(ARGV[5]), 6
local marker = redis.call('GET', KEYS[1])
local ours, lapsed, taken = {}, 0, false
for i = 1, locks do
  local value = redis.call('GET', KEYS[1 + writes + i])
  if value == ARGV[h + 2 * writes + i] then
    ours[#ours + 1] = KEYS[1 + writes + i]
  else
    lapsed = lapsed + 1
    if value then taken = true end
  end
end
local mine = marker == ARGV[2]
if marker == 'done' then
  for _, name in ipairs(ours) do redis.call('DEL', name) end
  return {'finished', lapsed, 0}
end
if marker and not mine then taken = true end
if ARGV[1] ~= 'done' and (lapsed > 0 or not mine) then taken = true end
if not taken and (lapsed > 0 or not mine or ARGV[6] == '1') then
  local base = 1 + writes + locks
  local at = h + 2 * writes + locks
  for i = 1, #KEYS - base do
    local value = redis.call('GET', KEYS[base + i])
    local was = ARGV[at + 2 * i - 1] == '1' and ARGV[at + 2 * i] or false
    if value ~= was then
      taken = true
      break
    end
  end
end
if taken then
  for _, name in ipairs(ours) do redis.call('DEL', name) end
  if mine then redis.call('DEL', KEYS[1]) end
  return {'lost', lapsed, mine and 0 or 1}
end
for i = 1, writes do
  local value, ttl = ARGV[h + 2 * i - 1], tonumber(ARGV[h + 2 * i])
  if ttl < 0 then
    redis.call('DEL', KEYS[1 + i])
  elseif ttl > 0 then
    redis.call('SET', KEYS[1 + i], value, 'EX', ttl)
  else
    redis.call('SET', KEYS[1 + i], value)
  end
end
for _, name in ipairs(ours) do redis.call('DEL', name) end
if ARGV[1] == 'done' then
  redis.call('SET', KEYS[1], 'done', 'EX', ARGV[3])
elseif mine then
  redis.call('DEL', KEYS[1])
end
return {'ok', lapsed, mine and 0 or 1}
"""
# An update's lease and its per-chat locks' renewed together (its heartbeat). A marker or a
# lock that lapsed (a stall longer than its lease) and that nobody took meanwhile is taken
# back: the update goes on as its owner, and a delivery or an update of the chat arriving now
# waits for it instead of running beside it (its end still checks what it read: `_FINISH`).
# KEYS: the marker, the locks. ARGV: the marker's owner value, lease ms, locks' lease ms, then
# per lock its token. Returns {1 while the marker is ours (or done: ended meanwhile, the end's
# answer not read yet), else 0 (another owner's), how many leases were taken back}; a lock
# another holds is left alone.
_RENEW_UPDATE = """
local marker = redis.call('GET', KEYS[1])
if marker == 'done' then return {1, 0} end
if marker and marker ~= ARGV[1] then return {0, 0} end
local back = 0
if not marker then back = 1 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
for i = 2, #KEYS do
  local value = redis.call('GET', KEYS[i])
  if value == ARGV[2 + i] then
    redis.call('PEXPIRE', KEYS[i], ARGV[3])
  elseif not value then
    redis.call('SET', KEYS[i], ARGV[2 + i], 'PX', ARGV[3])
    back = back + 1
  end
end
return {1, back}
"""
# A chat's locks taken together (all or none) and its dialog state read under them.
# KEYS: the locks, then the keys to read. ARGV: number of locks, token, lease ms, the
# position (among the keys read, from 1) of aiogram-dialog's stack or 0, then the stack's
# last context's key: its text before and after the intent id.
# Returns {0} when a lock is taken by another, else {1, value per key read..., the context's
# key, its value} (false where there is none).
_TAKE = """
local locks = tonumber(ARGV[1])
for i = 1, locks do
  if not redis.call('SET', KEYS[i], ARGV[2], 'NX', 'PX', ARGV[3]) then
    for j = 1, i - 1 do redis.call('DEL', KEYS[j]) end
    return {0}
  end
end
local found = {1}
for i = locks + 1, #KEYS do
  found[#found + 1] = redis.call('GET', KEYS[i])
end
local context, value = false, false
local stack = tonumber(ARGV[4])
if stack > 0 and found[1 + stack] then
  local ok, decoded = pcall(cjson.decode, found[1 + stack])
  if ok and type(decoded) == 'table' and type(decoded['intents']) == 'table' then
    local last = decoded['intents'][#decoded['intents']]
    if type(last) == 'string' then
      context = ARGV[5] .. last .. ARGV[6]
      value = redis.call('GET', context)
    end
  end
end
found[#found + 1] = context
found[#found + 1] = value
return found
"""
# Extend our locks' lease; one that lapsed and is free is taken back (as `_RENEW_UPDATE`).
# KEYS: locks. ARGV: their tokens, then the lease ms. Returns {how many are ours, how many of
# them were taken back}.
_RENEW_ALL = """
local kept, back = 0, 0
for i = 1, #KEYS do
  local value = redis.call('GET', KEYS[i])
  if value == ARGV[i] then
    redis.call('PEXPIRE', KEYS[i], ARGV[#KEYS + 1])
    kept = kept + 1
  elseif not value then
    redis.call('SET', KEYS[i], ARGV[i], 'PX', ARGV[#KEYS + 1])
    kept, back = kept + 1, back + 1
  end
end
return {kept, back}
"""


def _claim(state: Any, left_ms: Any, members: list[Any], also_read: str | None) -> Claim:
    """A claim script's answer: its state, the other owner's lease left (ms) and, when a set
    was named (`also_read`) and the claim acquired, the set's members."""
    found = ClaimState(_text(state))
    read = None
    if also_read is not None and found is ClaimState.ACQUIRED:
        read = tuple(sorted(_text(m) for m in (members[0] if members else [])))
    return Claim(found, max(0, int(left_ms)) / 1000, read)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class RedisDedup:
    """Markers shared by replicas. A marker is `processing:<owner token>` with a PX lease
    (Redis drops it when the lease lapses: a dead owner's update is free again), or `done`
    for DONE_TTL seconds."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._claim = redis.register_script(_CLAIM)
        self._claim_counted = redis.register_script(_CLAIM_COUNTED)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)
        self._hit = redis.register_script(_HIT)
        self._finish = redis.register_script(_FINISH)
        self._renew_update = redis.register_script(_RENEW_UPDATE)

    async def claim_counted(
        self,
        key: str,
        owner: str,
        lease: float,
        flood: str,
        window: int,
        also_read: str | None = None,
    ) -> tuple[Claim, int]:
        """`claim`, and when the update is ours, `hit(flood, window)` too, in one round trip:
        (the claim, the count so far — 0 when the update is not ours). With `also_read` (a
        set's key), an acquired claim carries its members (`Claim.also_read`)."""
        bucket = f"{flood}:{int(time.time() // window)}"
        keys = [key, bucket] if also_read is None else [key, bucket, also_read]
        state, left_ms, count, *members = await self._claim_counted(
            keys=keys, args=[_processing(owner), _ms(lease), window * 2]
        )
        return _claim(state, left_ms, members, also_read), int(count)

    async def finish(
        self,
        key: str,
        owner: str,
        *,
        done: bool,
        batch: UpdateBatch,
        lease: float | None = None,
        retries: tuple[float, ...] | None = None,
    ) -> Ended:
        """The end of an update, one round trip: if its marker and all its locks are still
        `owner`'s, the batch's writes sent, its locks let go, then the update marked `done`
        (or given back, `release`, when not `done`). When `done`, the same if a lease lapsed
        (the process stalled past it) but nothing was taken over or written meanwhile — the
        marker and each lock ours or free, each key the batch read (`batch.read`) as it was
        read (checked too when a heartbeat took a lapsed lease back, `batch.lapsed`) — logged
        `lease.lapsed_uncontested`: the update ran as if alone, and handling it again would
        only answer the resident twice. Otherwise nothing is written, what is still ours let go
        (`Ended.LOST`, logged `lease.lock_lapsed` for a lapsed lock). An end
        that finds the marker done already is `Ended.FINISHED` — redis-py sending it again
        after a lost answer finds exactly that, so a replay writes nothing twice.

        Redis unreachable (redis-py's ConnectionError / TimeoutError): tried again after each
        of `retries` seconds (FINISH_RETRIES by default), the marker's lease (`lease` seconds,
        PROCESSING_LEASE by default) and the locks' renewed by a heartbeat meanwhile; the last
        error is raised (the leases then lapse by themselves). The batch's writes and locks
        are cleared only once the script ran."""
        writes = list(batch.writes.items())
        locks = list(batch.locks.items())
        reads = list(batch.read.items())
        args: list[Any] = ["done" if done else "release", _processing(owner), DONE_TTL]
        args += [len(writes), len(locks), "1" if batch.lapsed else "0"]
        for _, (value, ttl) in writes:
            args += ["", -1] if value is None else [value, ttl or 0]
        args += [token for _, token in locks]
        for _, value in reads:
            args += ["0", ""] if value is None else ["1", value]
        keys = [
            key,
            *(name for name, _ in writes),
            *(name for name, _ in locks),
            *(name for name, _ in reads),
        ]
        try:
            outcome, lapsed, marker_lapsed = await self._finish(keys=keys, args=args)
        except (RedisConnectionError, RedisTimeoutError) as error:
            retries = FINISH_RETRIES if retries is None else retries
            if not retries:
                raise
            outcome, lapsed, marker_lapsed = await self._finish_again(
                key, owner, keys, args, batch, lease, retries, error
            )
        batch.writes.clear()
        batch.locks.clear()
        ended = Ended(_text(outcome))
        lapsed, marker_lapsed = int(lapsed), bool(int(marker_lapsed))
        if ended is Ended.FINISHED:  # a replay finds its own locks gone: nothing lapsed
            log.info("dedup.finished_already")
        elif ended is Ended.OK and (lapsed or marker_lapsed or batch.lapsed):  # nobody came
            log.warning(
                "lease.lapsed_uncontested",
                locks=lapsed,
                marker=marker_lapsed,
                taken_back=batch.lapsed,
            )
        elif ended is Ended.LOST and lapsed:  # held past a stalled heartbeat, then taken
            log.warning("lease.lock_lapsed", locks=lapsed)
            LEASES_LOST.labels(what="chat-lock").inc()
        elif ended is Ended.LOST:
            log.warning("lease.lost", what="update")
            LEASES_LOST.labels(what="update").inc()
        return ended

    async def _finish_again(
        self,
        key: str,
        owner: str,
        keys: list[str],
        args: list[Any],
        batch: UpdateBatch,
        lease: float | None,
        retries: tuple[float, ...],
        error: RedisError,
    ) -> Any:
        """`finish`'s script tried again after each of `retries` seconds, with the leases
        renewed meanwhile; its reply, or the last error raised."""
        lease = PROCESSING_LEASE if lease is None else lease
        every = min(lease, batch.lock_lease or lease) / 3

        async def renew() -> bool:
            return await self.renew_update(key, owner, lease, batch)

        # The first try may have run and let the marker and locks go, and the heartbeat may
        # then take them back: a retry always checks what the update read (ARGV[6]), so a
        # take-back never passes for a lease held all along (a stale write, or one twice).
        args = [*args[:5], "1", *args[6:]]
        async with heartbeat(renew, every, "update"):
            for attempt, delay in enumerate(retries, start=2):
                log.warning(
                    "dedup.finish_retry",
                    attempt=attempt,
                    error=type(error).__name__,
                    in_seconds=delay,
                )
                await asyncio.sleep(delay)
                try:
                    return await self._finish(keys=keys, args=args)
                except (RedisConnectionError, RedisTimeoutError) as again:
                    error = again
        raise error

    async def renew_update(self, key: str, owner: str, lease: float, batch: UpdateBatch) -> bool:
        """Extend `owner`'s lease on the update to `lease` seconds and the batch's locks
        still ours to their lease (`batch.lock_lease`), one round trip; a marker or lock that
        lapsed and is free is taken back. False when another owner holds the marker."""
        locks = list(batch.locks.items())
        try:
            ours, back = await self._renew_update(
                keys=[key, *(name for name, _ in locks)],
                args=[
                    _processing(owner),
                    _ms(lease),
                    _ms(batch.lock_lease or LOCK_LEASE),
                    *(token for _, token in locks),
                ],
            )
        except RedisError:  # it may have run, taken a lease back, and its answer been lost
            batch.lapsed = True
            raise
        if int(back):  # someone may have used it meanwhile: the end checks what was read
            batch.lapsed = True
        return bool(int(ours))

    async def claim(
        self, key: str, owner: str, lease: float, also_read: str | None = None
    ) -> Claim:
        """`DedupStore.claim`; with `also_read` (a set's key), an acquired claim carries its
        members (`Claim.also_read`), read in the same round trip."""
        keys = [key] if also_read is None else [key, also_read]
        state, left_ms, *members = await self._claim(
            keys=keys, args=[_processing(owner), _ms(lease)]
        )
        return _claim(state, left_ms, members, also_read)

    async def renew(self, key: str, owner: str, lease: float) -> bool:
        return bool(await self._renew(keys=[key], args=[_processing(owner), _ms(lease)]))

    async def done(self, key: str) -> None:
        await self._redis.set(key, _DONE, ex=DONE_TTL)

    async def release(self, key: str, owner: str) -> None:
        await self._release(keys=[key], args=[_processing(owner)])

    async def hit(self, key: str, window: int) -> int:
        bucket = f"{key}:{int(time.time() // window)}"
        return int(await self._hit(keys=[bucket], args=[window * 2]))


@asynccontextmanager
async def heartbeat(
    renew: Callable[[], Awaitable[bool]], every: float, what: str
) -> AsyncIterator[None]:
    """Call `renew` every `every` seconds while the block runs. A renewal that fails (Redis
    unreachable for a moment) is logged and tried again at the next beat; one that finds the
    lease gone (this process stalled longer than the lease, and another may have taken over)
    is logged and the beating stops. The block itself is never interrupted."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(every)
            try:
                kept = await renew()
            except Exception as error:  # logged; the lease may still hold
                log.warning("lease.renew_failed", what=what, error=type(error).__name__)
                continue
            if not kept:
                log.warning("lease.lost", what=what)
                LEASES_LOST.labels(what=what).inc()
                return

    task = asyncio.create_task(beat(), name=f"heartbeat-{what}")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class LeasedRedisEventIsolation(RedisEventIsolation):
    """aiogram's per-chat lock (RedisEventIsolation), with a short lease instead of its 60 s
    timeout: the lock lives `lease` seconds (LOCK_LEASE by default) and is renewed every
    `heartbeat` seconds (a third of the lease by default) while the handler runs, so a long
    handler (city calls up to CITY_DEADLINE) keeps it and a replica killed while holding it
    freezes the chat for at most `lease` seconds. Waiters poll every LOCK_POLL seconds.

    Inside an update (an open `storage.fsm.UpdateBatch`: UpdateDedupMiddleware with Redis)
    a lock is not let go when its block ends but with the update's end, after the update's
    dialog state is written (`RedisDedup.finish`, one script). A private chat's lock is taken
    with aiogram-dialog's stack lock (all or none), and the chat's state, its stack and the
    stack's last context are read in the same script (`BatchedRedisStorage` answers the
    update's reads from them). Taken by another: waited for as usual, then held the same way.
    The script reads a key it computes (the context's) — fine on one Redis, not on a cluster.

    The same object is given to aiogram-dialog's `setup_dialogs(events_isolation=…)`."""

    def __init__(
        self,
        redis: Redis,
        key_builder: KeyBuilder | None = None,
        *,
        lease: float | None = None,
        heartbeat: float | None = None,
    ) -> None:
        super().__init__(redis, key_builder)
        self.lease = LOCK_LEASE if lease is None else lease
        self.heartbeat = self.lease / 3 if heartbeat is None else heartbeat
        self._take_script = redis.register_script(_TAKE)
        self._renew_all = redis.register_script(_RENEW_ALL)

    @asynccontextmanager
    async def lock(self, key: StorageKey) -> AsyncIterator[None]:
        batch = current_batch()
        if batch is None:  # outside an update (its de-duplication middleware)
            async with self._waiting_lock(key):
                yield None
            return
        name = self.key_builder.build(key, "lock")
        batch.lock_lease = self.lease  # the update's heartbeat renews them with this lease
        if name not in batch.locks and not await self._take(batch, key):
            # Another holds it: wait for it as aiogram does, then hold it like the others.
            lock = self.redis.lock(name, timeout=self.lease, sleep=LOCK_POLL, thread_local=False)
            await lock.acquire()
            batch.locks[name] = _text(lock.local.token)
        # Ours until the update's end (RedisDedup.finish lets it go after the writes); renewed
        # while a block runs, by this block unless an enclosing one already renews it.
        idle = {n: t for n, t in batch.locks.items() if n not in batch.renewed}
        if not idle:
            yield None
            return
        renew_all, lease = self._renew_all, _ms(self.lease)

        async def renew() -> bool:
            try:
                kept, back = await renew_all(keys=list(idle), args=[*idle.values(), lease])
            except RedisError:  # it may have run, taken a lock back, and its answer been lost
                batch.lapsed = True
                raise
            if int(back):  # someone may have used it meanwhile: the end checks what was read
                batch.lapsed = True
            return bool(int(kept))

        batch.renewed.update(idle)
        try:
            async with heartbeat(renew, self.heartbeat, "chat-lock"):
                yield None
        finally:
            batch.renewed.difference_update(idle)

    async def _take(self, batch: UpdateBatch, key: StorageKey) -> list[str]:
        """One round trip: the lock of `key` taken, and for a private chat's own key also
        aiogram-dialog's stack lock, with the chat's state, its stack and the stack's last
        context read into the batch. Returns the locks taken (none: another holds one)."""
        locks = [self.key_builder.build(key, "lock")]
        reads: list[str] = []
        stack = 0
        context = ("", "")
        private = key.user_id == key.chat_id and key.thread_id is None
        dialogs = getattr(self.key_builder, "with_destiny", False)  # aiogram-dialog's keys
        if (
            dialogs
            and key.destiny == DEFAULT_DESTINY
            and private
            and key.business_connection_id is None
        ):
            stack_key = replace(key, destiny="aiogd:stack:")  # aiogram-dialog's StorageProxy
            locks.append(self.key_builder.build(stack_key, "lock"))
            reads = [
                self.key_builder.build(key, "state"),
                self.key_builder.build(stack_key, "data"),
            ]
            stack = 2
            marker = "\x00"
            built = self.key_builder.build(replace(key, destiny=f"aiogd:context:{marker}"), "data")
            before, _, after = built.partition(marker)
            context = (before, after)
        token = uuid.uuid4().hex
        found = await self._take_script(
            keys=[*locks, *reads], args=[len(locks), token, _ms(self.lease), stack, *context]
        )
        if not int(found[0]):
            return []
        for name in locks:
            batch.locks[name] = token
        values = [None if v is None else _text(v) for v in found[1:]]
        for name, value in zip(reads, values, strict=False):
            batch.known.setdefault(name, value)
            batch.read.setdefault(name, value)
        context_key, context_value = values[len(reads)], values[len(reads) + 1]
        if context_key is not None:
            batch.known.setdefault(context_key, context_value)
            batch.read.setdefault(context_key, context_value)
        return locks

    @asynccontextmanager
    async def _waiting_lock(self, key: StorageKey) -> AsyncIterator[None]:
        name = self.key_builder.build(key, "lock")
        lock = self.redis.lock(name, timeout=self.lease, sleep=LOCK_POLL, thread_local=False)
        await lock.acquire()

        async def renew() -> bool:
            try:
                await lock.reacquire()
            except LockNotOwnedError:
                return False
            return True

        try:
            async with heartbeat(renew, self.heartbeat, "chat-lock"):
                yield None
        finally:
            try:
                await lock.release()
            except LockNotOwnedError:
                log.warning("lease.lock_lapsed")  # held longer than a stalled heartbeat allowed
            except RedisError as error:  # it lapses by itself within the lease
                log.warning("lease.unlock_failed", error=type(error).__name__)
