"""aiogram's `Response[T]` answer models outlive garbage collections once warmed up."""

from __future__ import annotations

import gc
import weakref
from typing import Any

from aiogram.methods import SendMessage, SendPhoto
from aiogram.methods.base import Response
from aiogram.types import Message

from bot.warmup import keep_response_types_alive, method_returning_types


def survivors(kinds: list[Any]) -> list[bool]:
    """For each returning type, whether `Response[kind]`, as aiogram builds it for an answer,
    is the same class object after one full garbage collection (rather than dropped and
    rebuilt). One collection for all: a full one over the test process's heap is slow."""
    built = [weakref.ref(Response[kind]) for kind in kinds]
    gc.collect()
    return [
        ref() is not None and Response[kind] is ref()
        for kind, ref in zip(kinds, built, strict=True)
    ]


def test_every_methods_response_class_survives_a_collection_after_warm_up() -> None:
    held = keep_response_types_alive()
    returning = method_returning_types()
    assert held == len(returning) > 30  # every Bot API method's answer type
    assert SendMessage.__returning__ in returning and SendPhoto.__returning__ in returning
    dropped = [repr(k) for k, kept in zip(returning, survivors(returning), strict=True) if not kept]
    assert dropped == []


def test_a_response_class_nobody_holds_is_dropped_and_rebuilt() -> None:
    """pydantic's own cache is weak: without the warm-up's references the check above fails."""
    keep_response_types_alive()
    assert survivors([tuple[Message, ...]]) == [False]  # no Bot API method answers this
