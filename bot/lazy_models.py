"""aiogram's Bot API types and methods built on first use instead of at import.

aiogram declares its ~330 types with pydantic's `defer_build=True`, then the end of
`aiogram/types/__init__.py` calls `model_rebuild(_types_namespace=...)` on every one of them,
which builds them all at once: each type's validator carries its own copy of every type it can
nest (a `Message` holds most of the Bot API). Its ~170 methods (`SendMessage`, …) are built as
their classes are made, each with the schemas of what it carries. Importing aiogram took ~2.6 s
and 155 MB here (aiogram's own tracker: issues #1513, #1876 and #1891, open or closed without a
change to this). A bot validates a handful of them (`Update`, the calls it makes, their answers).

`install()` puts an import hook in front of two modules. While `aiogram.types` executes, a
`model_rebuild` given the types' namespace resolves the model's field annotations from it as
before but does not build the validator; it leaves the namespace on the model
(`__pydantic_parent_namespace__`, where pydantic's own deferred build looks for names), and
pydantic builds the model the first time it validates or serialises one — the same schema, from
the same names. Once `aiogram.methods.base` has executed, its `TelegramMethod` gets pydantic's
`defer_build`, so every method made after it is built on its first call. Measured here: aiogram
imports in ~1 s and 57 MB; the first `Update` then costs ~0.1 s and ~4 MB. Nothing else of
pydantic or aiogram changes, and once both modules have run the hook is gone. If pydantic's
`model_rebuild` no longer takes `_types_namespace` or its field helpers move (a future release),
the types build eagerly, as aiogram would.

Why not a library: pydantic's `defer_build` is what this relies on; aiogram offers no switch
for the loop that undoes it.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import inspect
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any

TYPES_MODULE = "aiogram.types"
METHODS_BASE = "aiogram.methods.base"


@contextmanager
def _rebuilds_deferred() -> Iterator[None]:
    """While the block runs, `BaseModel.model_rebuild(_types_namespace=ns)` on a model not yet
    built resolves the model's field annotations from `ns` (cheap: the names, not the
    validator) and keeps `ns` for its first use, then returns None (pydantic's «not rebuilt»).
    The fields must be resolved now: a model that nests this one (an aiogram method such as
    `SendMessage`, built at its import) reads them from here, in a module without these names."""
    from pydantic import BaseModel

    original = BaseModel.__dict__["model_rebuild"]
    rebuild = original.__func__
    try:  # pydantic's private helpers for the field step: a release without them builds eagerly
        from pydantic._internal._config import ConfigWrapper
        from pydantic._internal._fields import rebuild_model_fields
        from pydantic._internal._generics import get_model_typevars_map
        from pydantic._internal._namespace_utils import NsResolver
    except ImportError:
        yield
        return
    if "_types_namespace" not in inspect.signature(rebuild).parameters:
        yield
        return

    def deferred(cls: type[BaseModel], **kwargs: Any) -> bool | None:
        namespace = kwargs.get("_types_namespace")
        if namespace is None or kwargs.get("force") or cls.__pydantic_complete__:
            return rebuild(cls, **kwargs)  # type: ignore[no-any-return]
        # aiogram passes one namespace dict to every type: kept as it is, not copied 330 times
        shared = namespace if isinstance(namespace, dict) else dict(namespace)
        cls.__pydantic_parent_namespace__ = shared
        if not cls.__pydantic_fields_complete__:
            cls.__pydantic_fields__, cls.__pydantic_extra_info__ = rebuild_model_fields(
                cls,
                config_wrapper=ConfigWrapper(cls.model_config, check=False),
                ns_resolver=NsResolver(parent_namespace=shared),
                typevars_map=get_model_typevars_map(cls),
            )
        return None

    BaseModel.model_rebuild = classmethod(deferred)  # type: ignore[method-assign,assignment,arg-type]
    try:
        yield
    finally:
        BaseModel.model_rebuild = original  # type: ignore[method-assign]


def _defer_methods(base: ModuleType) -> None:
    """aiogram's Bot API methods (`SendMessage`, …: ~170 models, each with the schemas of the
    types it carries) are built when their classes are made, right after `aiogram.methods.base`.
    Their base's config gets pydantic's `defer_build` before any of them is made, so each is
    built on its first call instead; their annotations name real imports, resolved as usual."""
    method = getattr(base, "TelegramMethod", None)
    config = getattr(method, "model_config", None)
    if isinstance(config, dict):
        config["defer_build"] = True


class _DeferredLoader(importlib.abc.Loader):
    """The real loader of `aiogram.types` (executed with model rebuilds deferred) or of
    `aiogram.methods.base` (its methods' build deferred once it has run)."""

    def __init__(self, loader: importlib.abc.Loader, name: str) -> None:
        self._loader, self._name = loader, name

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        if self._name == TYPES_MODULE:
            with _rebuilds_deferred():
                self._loader.exec_module(module)
        else:
            self._loader.exec_module(module)
            _defer_methods(module)

    def __getattr__(self, name: str) -> Any:  # get_source, get_code, …: the real loader's
        return getattr(self._loader, name)


class _TypesFinder(importlib.abc.MetaPathFinder):
    """Finds `aiogram.types` and `aiogram.methods.base` with the other finders and hands each
    the deferring loader; then leaves `sys.meta_path` (each module is imported once)."""

    def __init__(self) -> None:
        self.pending = {TYPES_MODULE, METHODS_BASE}

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.pending:
            return None
        self.pending.discard(fullname)
        if not self.pending:
            _uninstall()
        for finder in sys.meta_path:
            if isinstance(finder, _TypesFinder):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _DeferredLoader(spec.loader, fullname)
                return spec
        return None


def _uninstall() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _TypesFinder)]


def install() -> bool:
    """Defer the building of aiogram's types to their first use (see the module's text).
    Returns False when `aiogram.types` is imported already (built eagerly: nothing to do),
    True when the hook is in place or was already. Idempotent; cheap (imports nothing)."""
    if TYPES_MODULE in sys.modules or METHODS_BASE in sys.modules:
        return False
    if not any(isinstance(f, _TypesFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _TypesFinder())
    return True


def built(model: type[Any]) -> bool:
    """Whether a pydantic model has its validator already (a deferred one: after first use)."""
    return bool(getattr(model, "__pydantic_complete__", False))
