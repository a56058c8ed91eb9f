"""Start-up work that keeps the per-update path cheap: aiogram's answer models kept built,
synchronous filters run without a thread hop, and the start-up heap out of the garbage
collector's way.

aiogram parses every Bot API answer as `Response[method.__returning__]`
(aiogram/client/session/base.py, `check_response`). pydantic keeps parametrised generic models
only in a weak-valued cache (`pydantic._internal._generics._GENERIC_TYPES_CACHE`, a
`WeakValueDictionary`), and nothing in aiogram holds the class, so a garbage collection drops it
and the next answer of that type rebuilds the model and its validator: a send then cost 7.1 ms
instead of 0.37 ms. `keep_response_types_alive` holds each `Response[T]` for the life of the
process from its first use on.

A full collection over the objects start-up leaves behind (imports, models, schemas: ~200 000
in the issue's measurement, 319 000 in `bench footprint`'s replica) took 160 ms: the p99
spikes. `lean_heap` collects once, then `gc.freeze()`s what is left, so later collections
never scan it, and raises the young generation's threshold."""

from __future__ import annotations

import gc
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from aiogram import Router
from aiogram.dispatcher.event.handler import FilterObject
from aiogram.methods.base import Response
from pydantic import BaseModel

# Generation thresholds while serving (CPython's defaults: 700, 10, 10). An update through
# aiogram and aiogram-dialog allocates thousands of tracked containers, so a young threshold of
# 700 ran several young collections per update; at 10 000 one runs every few updates and scans
# at most those 10 000 young objects (about a millisecond). The middle and old generations keep
# CPython's 10 and 10: with the start-up heap frozen the old generation holds only what was
# made since, and CPython (3.11) runs a full collection only once the objects waiting to be
# promoted exceed a quarter of the old generation, so full collections stay rare and small.
THRESHOLDS = (10_000, 10, 10)

_KEPT: dict[Any, type[Response[Any]]] = {}  # returning type → its Response class, held for good
_HOOKED = False


def keep_response_types_alive() -> None:
    """Hold every `Response[T]` class for the life of the process from the moment aiogram first
    makes it (the first answer of its type), so a garbage collection never drops it: a hook on
    `Response[...]` keeps what pydantic's cache holds weakly. Built on first use rather than all
    41 up front: with `bot.lazy_models` the types they carry are not built yet, and building
    them all at start-up cost ~40 MB and ~0.6 s for answers most bots never get. The classes
    held are the Bot API's answer types (41 in aiogram 3.31): a bounded set. Idempotent."""
    global _HOOKED
    if _HOOKED:
        return
    make = BaseModel.__dict__["__class_getitem__"].__func__  # pydantic's, a class method

    def held(cls: type[Any], params: Any) -> Any:
        made = make(cls, params)
        if cls is Response and isinstance(made, type):
            _KEPT.setdefault(params, made)
        return made

    Response.__class_getitem__ = classmethod(held)  # type: ignore[assignment,method-assign]
    _HOOKED = True


@contextmanager
def lean_heap(thresholds: tuple[int, int, int] = THRESHOLDS) -> Iterator[int]:
    """Collect once, freeze every object still alive (start-up's modules, models, schemas) so
    no later collection scans it, and use `thresholds` — until the block ends, when the frozen
    objects go back to the old generation and the previous thresholds return (a test process
    starts many applications; a production one ends). Yields how many objects were frozen."""
    previous = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)
    try:
        yield gc.get_freeze_count()
    finally:
        gc.set_threshold(*previous)
        gc.unfreeze()


def inline_sync_filters(router: Router) -> int:
    """Make every synchronous filter of `router` and the routers under it run inline, answering
    how many were changed: the handlers' and routers' filters, and those of aiogram-dialog's
    input widgets (`MessageInput(filter=…)`, its content-type check, `TextInput`'s filter).

    aiogram runs a callable that is not a coroutine function in a worker thread
    (`CallableObject.call`: `asyncio.to_thread`), about 90 µs a hop, and a magic filter such as
    `F.text` or `F.content_type == …` is synchronous: an update checked against a few dozen
    handlers paid it many times. Filters are pure checks of the event (aiogram's magic filters,
    state and data tests, our own predicates), never blocking I/O, so they run on the loop as
    they are. Handlers are left as they are: a synchronous handler may block, and in a thread
    it cannot stall the loop."""
    checks: list[FilterObject] = []
    for each in router.chain_tail:
        for observer in each.observers.values():
            for handler in [*observer.handlers, observer._handler]:  # router-level filters too
                checks += handler.filters or ()
        for window in getattr(each, "windows", {}).values():  # an aiogram-dialog Dialog
            checks += _input_filters(getattr(window, "on_message", None))
    changed = 0
    for check in checks:
        if not check.awaitable:
            check.callback = _inline(check.callback)
            check.awaitable = True
            changed += 1
    return changed


def _input_filters(widget: Any) -> list[FilterObject]:
    """The FilterObjects of an aiogram-dialog input widget and of the inputs it combines."""
    if widget is None:
        return []
    found = [each for each in getattr(widget, "filters", ()) if isinstance(each, FilterObject)]
    single = getattr(widget, "filter", None)
    if isinstance(single, FilterObject):
        found.append(single)
    for inner in getattr(widget, "inputs", ()):  # CombinedInput
        found += _input_filters(inner)
    return found


def _inline(callback: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    async def run(*args: Any, **kwargs: Any) -> Any:
        return callback(*args, **kwargs)

    return run
