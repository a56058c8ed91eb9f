"""The event loop a replica runs on: uvloop where it is installed, else asyncio's own.

uvloop (libuv under asyncio's API) makes the loop's own work — callbacks, sockets, timers —
cheaper; on this project's workloads it is most of what is left between a task's awaits:
`make bench` measures the autopay job a third faster a second with it. `EVENT_LOOP=asyncio`
chooses asyncio's loop (a fallback should uvloop ever misbehave); where uvloop cannot be
installed (Windows) asyncio's is used and said so once at start-up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

T = TypeVar("T")

Choice = Literal["uvloop", "asyncio"]


def loop_factory(choice: Choice = "uvloop") -> tuple[Callable[[], asyncio.AbstractEventLoop], str]:
    """(a factory of new event loops, the name of the loop it makes) for `choice`; uvloop asked
    for and not installed gives asyncio's, named «asyncio (uvloop not installed)»."""
    if choice == "uvloop":
        try:
            import uvloop
        except ImportError:
            return asyncio.new_event_loop, "asyncio (uvloop not installed)"
        return uvloop.new_event_loop, "uvloop"
    return asyncio.new_event_loop, "asyncio"


def run(main: Coroutine[Any, Any, T], choice: Choice = "uvloop") -> T:
    """`asyncio.run(main)` on the chosen loop (`asyncio.Runner` with its factory)."""
    factory, _ = loop_factory(choice)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


def running() -> str:
    """The running loop's kind: «uvloop» or «asyncio»."""
    loop = asyncio.get_running_loop()
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
