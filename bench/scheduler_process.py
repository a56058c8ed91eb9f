"""One autopay scheduler as its own OS process (started by `bench.autopay`).

`python -m bench.scheduler_process <database url> <sandbox url>`, the token cipher key in
BENCH_CIPHER_KEY. It prints `ready` once connected, waits for a line on stdin, ticks until
nothing is due, and prints its figures as one line of JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import asdict

from bench.autopay import DUE, city_client, scheduler
from bench.common import quiet_logs
from storage.database import create_engine, create_sessionmaker
from storage.token_cipher import TokenCipher
from storage.uow import UnitOfWorkFactory


async def main(database_url: str, sandbox_url: str, key: str) -> None:
    engine = create_engine(database_url)
    city = city_client(sandbox_url)
    factory = UnitOfWorkFactory(create_sessionmaker(engine), TokenCipher([key]))
    try:
        async with engine.connect():
            pass  # connected before the start: the timing is the ticks only
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        stats = await scheduler(factory, city, DUE)
    finally:
        await city.close()
        await engine.dispose()
    print(json.dumps(asdict(stats)), flush=True)


if __name__ == "__main__":
    quiet_logs()
    asyncio.run(main(sys.argv[1], sys.argv[2], os.environ["BENCH_CIPHER_KEY"]))
