"""A model-based test of money: hundreds of random resident journeys through the real bot
(Dispatcher, SQL dialog state, outbox, autopay tick) and the city's sandbox over HTTP, judged
against what the resident saw and confirmed. See tests/flows/money_model.py for the rules,
the model and the invariants.

    MONEY_MODEL_SEED=20261007 pytest tests/flows/test_money_model.py -s    # replay one epoch
    MONEY_MODEL_SEED=9004 pytest tests/flows/test_money_model.py -s        # a fixed scenario
    MONEY_MODEL_SEED=20261007 MONEY_MODEL_SHRINK=1 pytest … -s             # and shrink it
    MONEY_MODEL_SHRINK="[2] epd charged twice" …                           # to that violation
    MONEY_MODEL_EPOCHS=100 pytest tests/flows/test_money_model.py           # a longer soak
    MONEY_MODEL_BASE_SEED=random pytest tests/flows/test_money_model.py     # other journeys
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from tests.conftest import POSTGRES_URL, REDIS_URL, fresh_engine, need_service
from tests.flows.money_model import (
    SCENARIO_SEEDS,
    SEED_ENV,
    SHRINK_ENV,
    EpochResult,
    RunConfig,
    render_plan,
    report,
    run_epochs,
    run_epochs_async,
    seeds_from_env,
    shrink,
)

JOURNEYS_PER_EPOCH = int(os.environ.get("MONEY_MODEL_JOURNEYS", "10"))
EPOCHS = int(os.environ.get("MONEY_MODEL_EPOCHS", "20"))  # 20 × 10 = 200 journeys
WORKERS = int(os.environ.get("MONEY_MODEL_WORKERS", str(min(2, os.cpu_count() or 1))))
LANES = int(os.environ.get("MONEY_MODEL_LANES", "3"))  # epochs side by side in one process


def base_seed() -> int:
    raw = os.environ.get("MONEY_MODEL_BASE_SEED", "20261000")
    return random.randrange(10**6, 10**8) if raw == "random" else int(raw)


def _in_workers(seeds: list[int], config: RunConfig) -> list[EpochResult]:
    if WORKERS <= 1:
        return asyncio.run(run_epochs_async(seeds, config))
    chunks = [seeds[index::WORKERS] for index in range(WORKERS)]
    context = multiprocessing.get_context("spawn")  # no fork of a process with threads
    with ProcessPoolExecutor(max_workers=WORKERS, mp_context=context) as pool:
        parts = pool.map(run_epochs, chunks, [config] * len(chunks))
        return sorted((r for part in parts for r in part), key=lambda r: r.seed)


def test_random_journeys_pay_only_what_the_resident_confirmed() -> None:
    replay = seeds_from_env()
    started = time.perf_counter()
    if replay:
        config = RunConfig(journeys=JOURNEYS_PER_EPOCH, lanes=1, verbose=len(replay) == 1)
        wanted = os.environ.get(SHRINK_ENV, "")
        if wanted:  # "1": the epoch's first violation; or a key such as "[2] epd charged twice"
            for seed in replay:
                found = asyncio.run(shrink(seed, config, None if wanted == "1" else wanted))
                if found is not None:
                    plan, violation = found
                    print(f"\nseed {seed}, smallest plan that still breaks:\n{render_plan(plan)}")
                    print(violation.render())
        results = asyncio.run(run_epochs_async(replay, config))
    else:
        first = base_seed()
        seeds = [first + index for index in range(EPOCHS)] + list(SCENARIO_SEEDS)
        config = RunConfig(journeys=JOURNEYS_PER_EPOCH, lanes=LANES)
        results = _in_workers(seeds, config)
    text = report(results, time.perf_counter() - started)
    print("\n" + text)
    journeys = sum(r.journeys for r in results if r.seed >= 0 and r.seed not in SCENARIO_SEEDS)
    if not replay:
        assert journeys >= EPOCHS * JOURNEYS_PER_EPOCH, text
    violations = [v for r in results for v in r.violations]
    assert not violations, f"{text}\n\nReplay one epoch: {SEED_ENV}=<seed> pytest {__file__} -s"


async def test_a_few_journeys_on_postgresql_and_redis(tmp_path: Path) -> None:
    """The same model over the production-like storage: data in PostgreSQL, dialog state and
    de-duplication in Redis (one short epoch; skipped without the services)."""
    from redis.asyncio import Redis

    redis_url = need_service(REDIS_URL, "TEST_REDIS_URL")
    engine = await fresh_engine("postgres", tmp_path)
    await engine.dispose()
    client: Any = Redis.from_url(redis_url)
    await client.flushdb()
    await client.aclose()
    overrides = {"database_url": POSTGRES_URL, "redis_url": redis_url}
    config = RunConfig(journeys=3, lanes=1, settings=overrides)
    started = time.perf_counter()
    results = await run_epochs_async([base_seed() + 777], config)
    text = report(results, time.perf_counter() - started)
    print("\n" + text)
    assert not [v for r in results for v in r.violations], text
