"""Resident Bot benchmarks: they print figures and assert nothing.

delivery  the outbox sender against a fake Bot API enforcing Telegram's limits
autopay   autopay ticks on PostgreSQL against the city sandbox, 1 then 2 schedulers
updates   updates a second through the whole bot (SQLite; PostgreSQL + Redis), bare aiogram
footprint a fresh replica's RSS idle and time to ready, against importing aiogram alone
all       all four (the default)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time

from bench import autopay, delivery, footprint, updates
from bench.common import bench_services, quiet_logs
from bench.fake_telegram import Faults


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "which",
        nargs="?",
        choices=["delivery", "autopay", "updates", "footprint", "all"],
        default="all",
    )
    parser.add_argument(
        "--notifications", type=_positive, default=3_000, metavar="N", help="default 3000"
    )
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        metavar="MS",
        help="delivery: every Bot API answer takes this long (50: about the distance to Telegram)",
    )
    parser.add_argument(
        "--chats", type=_positive, default=None, metavar="M", help="default N / 3 (3 a chat)"
    )
    parser.add_argument(
        "--order",
        choices=["interleaved", "grouped"],
        default="interleaved",
        help="outbox order: chats taking turns (default), or each chat's messages together",
    )
    parser.add_argument(
        "--sequential", action="store_true", help="delivery backends one after another"
    )
    parser.add_argument(
        "--server-errors", type=_share, default=0.02, metavar="SHARE", help="injected 500s"
    )
    parser.add_argument(
        "--injected-429", type=_share, default=0.01, metavar="SHARE", help="injected 429s"
    )
    parser.add_argument(
        "--give-up-after",
        type=float,
        default=None,
        metavar="S",
        help=f"seconds of sending per backend (default min(60 + N/15, {delivery.MAX_SECONDS}))",
    )
    parser.add_argument(
        "--autopays", type=_positive, default=10_000, metavar="K", help="default 10000"
    )
    parser.add_argument(
        "--schedulers-as",
        choices=["processes", "tasks"],
        default="processes",
        help="autopay schedulers as OS processes (default) or asyncio tasks of this process",
    )
    parser.add_argument(
        "--residents", type=_positive, default=50, metavar="N", help="updates: default 50"
    )
    parser.add_argument(
        "--seconds",
        type=_seconds,
        default=20.0,
        metavar="S",
        help="updates: seconds of chatting for each of the three (default 20)",
    )
    return parser.parse_args(argv)


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def _seconds(value: str) -> float:
    seconds = float(value)
    if not 0 < seconds < float("inf"):
        raise argparse.ArgumentTypeError("a positive number of seconds")
    return seconds


def _share(value: str) -> float:
    share = float(value)
    if not 0 <= share < 1:
        raise argparse.ArgumentTypeError("a share from 0 to 1, e.g. 0.02")
    return share


async def main(args: argparse.Namespace) -> None:
    services = await bench_services()
    print(f"Resident Bot benchmarks — Python {platform.python_version()}, {os.cpu_count()} CPUs")
    print(services.describe())
    if args.which in ("delivery", "all"):
        chats = args.chats or max(1, args.notifications // 3)
        plan = delivery.Plan(
            count=args.notifications,
            chats=chats,
            order=args.order,
            faults=Faults(
                server_errors=args.server_errors,
                too_many_requests=args.injected_429,
                latency=args.latency_ms / 1000,
            ),
            give_up_after=args.give_up_after,
        )
        await delivery.run(services, plan, args.sequential)
    if args.which in ("autopay", "all"):
        await autopay.run(services, args.autopays, args.schedulers_as)
    if args.which in ("updates", "all"):
        await updates.run(services, args.residents, args.seconds)
    if args.which in ("footprint", "all"):
        await footprint.run(services)


if __name__ == "__main__":
    arguments = parse(sys.argv[1:])
    quiet_logs()
    started = time.perf_counter()
    asyncio.run(main(arguments))
    print(f"\n(all done in {time.perf_counter() - started:.0f} s)")
