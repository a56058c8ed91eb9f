"""Resident Bot benchmarks: they print figures and assert nothing.

delivery  the outbox sender against a fake Bot API enforcing Telegram's limits
autopay   autopay ticks on PostgreSQL against the city sandbox, 1 then 2 schedulers
updates   updates a second through the whole bot (SQLite; PostgreSQL + Redis), bare aiogram
footprint a fresh replica's RSS idle and time to ready, against importing aiogram alone
burst     N residents' /start at once through polling and the webhook (SQLite; PostgreSQL + Redis)
plans     production-size PostgreSQL: EXPLAIN of every query an update and the jobs make
all       all but plans, then one summary of the ratios (the default; `make bench`)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from dataclasses import dataclass, field, replace

from bench import autopay, burst, delivery, footprint, plans, updates
from bench.autopay import InstantResult
from bench.common import bench_services, heading, quiet_logs, table
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
        choices=["delivery", "autopay", "updates", "footprint", "burst", "plans", "all"],
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
        "--fault-free-latencies-ms",
        type=_latencies,
        default=(),
        metavar="MS,MS",
        help="delivery: also run without injected faults at each of these latencies (the "
        "issue's targets: 50,100)",
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
    parser.add_argument(
        "--burst-residents",
        type=_positive,
        default=10_000,
        metavar="N",
        help="burst: residents sending /start at once (default 10000)",
    )
    parser.add_argument(
        "--burst-paths",
        choices=["polling", "webhook", "both"],
        default="both",
        help="burst: through long polling, the webhook, or both (default)",
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        metavar="X",
        help="plans: share of production size to seed (default 1: 100k residents, 1M outbox…)",
    )
    parser.add_argument(
        "--reseed", action="store_true", help="plans: seed again although the data is there"
    )
    parser.add_argument("--all-plans", action="store_true", help="plans: print every plan")
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


def _latencies(value: str) -> tuple[float, ...]:
    try:
        found = tuple(float(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError("milliseconds, comma-separated, e.g. 50,100") from None
    if any(not 0 <= each < 10_000 for each in found):
        raise argparse.ArgumentTypeError("milliseconds from 0 to 10000")
    return found


def _share(value: str) -> float:
    share = float(value)
    if not 0 <= share < 1:
        raise argparse.ArgumentTypeError("a share from 0 to 1, e.g. 0.02")
    return share


async def main(args: argparse.Namespace) -> None:
    services = await bench_services()
    print(f"Resident Bot benchmarks — Python {platform.python_version()}, {os.cpu_count()} CPUs")
    print(services.describe())
    found = Found()
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
        found.delivery = await delivery.run(services, plan, args.sequential)
        for latency_ms in args.fault_free_latencies_ms:  # the conditions, as they are
            clean = replace(plan, faults=Faults(0.0, 0.0, latency=latency_ms / 1000))
            found.delivery += await delivery.run(services, clean, args.sequential)
    if args.which in ("autopay", "all"):
        found.autopay, found.instant = await autopay.run(
            services, args.autopays, args.schedulers_as
        )
    if args.which in ("updates", "all"):
        found.updates = await updates.run(services, args.residents, args.seconds)
    if args.which in ("footprint", "all"):
        found.footprint = await footprint.run(services)
    if args.which in ("burst", "all"):
        paths = burst.PATHS if args.burst_paths == "both" else (args.burst_paths,)
        found.burst = await burst.run(services, args.burst_residents, paths)
    if args.which == "plans":
        await plans.run(services, args.scale, args.reseed, args.all_plans)
    if args.which == "all":
        summarise(found, args)


@dataclass
class Found:
    """What each benchmark of the run returned, for the summary."""

    delivery: list[delivery.DeliveryResult] = field(default_factory=list)
    autopay: list[autopay.AutopayResult] = field(default_factory=list)
    instant: InstantResult | None = None
    updates: list[updates.UpdatesResult] = field(default_factory=list)
    footprint: footprint.FootprintResult | None = None
    burst: list[burst.BurstResult] = field(default_factory=list)


def summarise(found: Found, args: argparse.Namespace) -> None:
    """One table of the ratios the issue asks for, from the results above."""
    heading("Summary")
    rows: list[list[object]] = []
    if found.updates:
        *stacks, floor, bare = found.updates
        for r in stacks:
            rows.append(
                [
                    f"updates, {r.name}",
                    f"{r.rate:,.0f}/s = {_part(r.rate, bare.rate)} of bare's {bare.rate:,.0f}/s; "
                    f"CPU {_times(r.cpu_ms, bare.cpu_ms)} bare's "
                    f"({_times(r.cpu_ms, floor.cpu_ms)} {updates.FLOOR}'s, itself "
                    f"{_times(floor.cpu_ms, bare.cpu_ms)} bare's); p99 {_ms(r.latency_ms(0.99))}"
                    + (
                        f" (paced, {updates.THINK_SECONDS:g} s between updates: "
                        f"{r.paced.rate:,.0f}/s, p99 {_ms(r.paced.latency_ms(0.99))})"
                        if r.paced
                        else ""
                    ),
                    "≥ 30 %, ≤ 3×, ≤ 50 ms",
                ]
            )
    for result in found.autopay:
        rows.append(
            [
                f"autopay job, {result.schedulers} scheduler(s)",
                f"{result.rate:,.0f} autopays/s = {_part(result.rate, result.endpoint_rate)} of "
                f"the sandbox endpoint's {result.endpoint_rate:,.0f} charges/s",
                "",
            ]
        )
    if found.instant is not None:
        rows.append(
            [
                "autopay job alone, 1 scheduler",
                f"{found.instant.rate:,.0f} autopays/s with a city answering at once; "
                f"CPU {found.instant.cpu_ms:.2f} ms an autopay",
                "≥ 1,000/s",
            ]
        )
    for d in found.delivery:
        latency = f"{d.latency_ms:g} ms" if d.latency_ms else "0 ms (use --latency-ms 50)"
        rows.append(
            [
                f"outbox, {d.backend}",
                f"{d.rate:,.1f} msg/s ({d.steady:,.1f} steady) at Bot API latency {latency}, "
                + (d.faults if d.faults else "no injected faults")
                + f"; busiest second {d.peak}",
                "≥ 29/s, ≤ 30 in any second",
            ]
        )
    if found.footprint:
        f = found.footprint
        rows.append(
            [
                f"footprint, {f.where}",
                f"{f.rss:,.0f} MB idle ({f.rss / f.aiogram_rss:.1f}× aiogram alone), "
                f"ready in {f.ready:.1f} s",
                "",
            ]
        )
    for b in found.burst:
        rows.append(
            [
                f"burst, {b.stack}, {b.path}",
                b.summary(),
                "all answered, 0 unhandled, bot RSS ≤ 250 MB",
            ]
        )
    table(["", "figures", "target"], rows)


def _part(part: float, whole: float | None) -> str:
    return f"{part / whole:.0%}" if whole else "-"


def _ms(value: float | str) -> str:
    return f"{value:,.0f} ms" if isinstance(value, float) else value


def _times(part: float, whole: float) -> str:
    return f"{part / whole:.1f}×" if whole else "-"


if __name__ == "__main__":
    arguments = parse(sys.argv[1:])
    quiet_logs()
    started = time.perf_counter()
    asyncio.run(main(arguments))
    print(f"\n(all done in {time.perf_counter() - started:.0f} s)")
