"""aiogram's `Response[T]` answer models outlive garbage collections once made."""

from __future__ import annotations

import gc
import inspect
import weakref
from typing import Any, Generic, TypeVar

from aiogram import methods
from aiogram.methods import SendMessage, SendPhoto
from aiogram.methods.base import Response, TelegramMethod
from aiogram.types import Message
from pydantic import BaseModel

from bot.warmup import keep_response_types_alive

T = TypeVar("T")


def method_returning_types() -> list[Any]:
    """Every distinct `__returning__` of aiogram's Bot API methods (a type, `list[...]` or a
    union; 41 in aiogram 3.31): the answer types aiogram makes `Response[T]` for."""
    seen: dict[Any, None] = {}
    for name in dir(methods):
        method = getattr(methods, name)
        if inspect.isclass(method) and issubclass(method, TelegramMethod):
            returning = getattr(method, "__returning__", None)
            if returning is not None and not isinstance(returning, property):  # the abstract base
                seen.setdefault(returning, None)
    return list(seen)


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


def test_every_methods_response_class_survives_a_collection_once_made() -> None:
    keep_response_types_alive()
    returning = method_returning_types()
    assert len(returning) > 30  # every Bot API method's answer type
    assert SendMessage.__returning__ in returning and SendPhoto.__returning__ in returning
    dropped = [repr(k) for k, kept in zip(returning, survivors(returning), strict=True) if not kept]
    assert dropped == []


class Box(BaseModel, Generic[T]):
    """A generic model nobody holds: what `Response` is without the warm-up's hook."""

    item: T


def test_pydantic_drops_a_parametrised_model_nobody_holds() -> None:
    """pydantic's own cache is weak: the hook is what keeps `Response[...]` alive."""
    keep_response_types_alive()
    box = weakref.ref(Box[int])
    gc.collect()
    assert box() is None  # dropped: the next Box[int] is built again
    assert survivors([tuple[Message, ...]]) == [True]  # any Response made is held


def test_the_hook_builds_nothing_up_front_and_is_installed_once() -> None:
    keep_response_types_alive()
    keep_response_types_alive()
    built = Response[list[Message]]
    assert Response[list[Message]] is built  # the held class, not a second one
    assert Response.__dict__["__class_getitem__"].__func__.__name__ == "held"
