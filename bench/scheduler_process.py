"""One autopay scheduler as its own OS process (started by `bench.autopay`).

`python -m bench.scheduler_process <database url> <sandbox url> [job|endpoint] [calls] [tag]`,
the token cipher key in BENCH_CIPHER_KEY. It prints `ready` once connected, waits for a line
on stdin, then runs the autopay job until nothing is due (`job`, the default) or makes `calls`
create_payment calls straight at the sandbox (`endpoint`, keys tagged `tag`), and prints its
figures as one line of JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import asdict
from typing import cast

from bench.autopay import Work, city_client, work
from bench.common import quiet_logs
from storage.database import create_engine, create_sessionmaker
from storage.token_cipher import TokenCipher
from storage.uow import UnitOfWorkFactory


async def main(
    database_url: str, sandbox_url: str, key: str, what: Work, calls: int, tag: str
) -> None:
    engine = create_engine(database_url)
    city = city_client(sandbox_url)
    factory = UnitOfWorkFactory(create_sessionmaker(engine), TokenCipher([key]))
    try:
        async with engine.connect():
            pass  # connected before the start: the timing is the ticks only
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        stats = await work(what, factory, city, calls, tag)
    finally:
        await city.close()
        await engine.dispose()
    print(json.dumps(asdict(stats)), flush=True)


if __name__ == "__main__":
    quiet_logs()
    what, calls, tag = (sys.argv[3:] + ["job", "0", "0"][len(sys.argv[3:]) :])[:3]
    assert what in ("job", "endpoint"), what
    asyncio.run(
        main(
            sys.argv[1],
            sys.argv[2],
            os.environ["BENCH_CIPHER_KEY"],
            cast(Work, what),
            int(calls),
            tag,
        )
    )
