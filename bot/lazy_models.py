"""aiogram's Bot API types built on first use instead of at import.

aiogram declares its ~330 types with pydantic's `defer_build=True`, then the end of
`aiogram/types/__init__.py` calls `model_rebuild(_types_namespace=...)` on every one of them,
which builds them all at once: each type's validator carries its own copy of every type it can
nest (a `Message` holds most of the Bot API), so importing aiogram took ~2.5 s and 166 MB here
(aiogram's own tracker: issues #1513, #1876 and #1891, open or closed without a change to this
loop). A bot validates a handful of them (`Update` and what its calls return).

`install()` puts an import hook in front of `aiogram.types`: while that one module executes, a
`model_rebuild` given the types' namespace does not build; it leaves the namespace on the model
(`__pydantic_parent_namespace__`, where pydantic's own deferred build looks for names), and
pydantic builds the model the first time it validates or serialises one — the same schema, from
the same names. Measured here: the import in 0.8 s and 60 MB; the first `Update` then costs
~0.1 s and ~4 MB. Nothing else of pydantic or aiogram changes, and once `aiogram.types` has
run the hook is gone. If pydantic's `model_rebuild` no longer takes `_types_namespace` (a
future release), the hook stands aside and aiogram builds as before.

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
        cls.__pydantic_parent_namespace__ = dict(namespace)
        if not cls.__pydantic_fields_complete__:
            cls.__pydantic_fields__, cls.__pydantic_extra_info__ = rebuild_model_fields(
                cls,
                config_wrapper=ConfigWrapper(cls.model_config, check=False),
                ns_resolver=NsResolver(parent_namespace=dict(namespace)),
                typevars_map=get_model_typevars_map(cls),
            )
        return None

    BaseModel.model_rebuild = classmethod(deferred)  # type: ignore[method-assign,assignment,arg-type]
    try:
        yield
    finally:
        BaseModel.model_rebuild = original  # type: ignore[method-assign]


class _DeferredLoader(importlib.abc.Loader):
    """The real loader of `aiogram.types`, executing it with model rebuilds deferred."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        with _rebuilds_deferred():
            self._loader.exec_module(module)

    def __getattr__(self, name: str) -> Any:  # get_source, get_code, …: the real loader's
        return getattr(self._loader, name)


class _TypesFinder(importlib.abc.MetaPathFinder):
    """Finds `aiogram.types` with the other finders and hands it the deferring loader; then
    leaves `sys.meta_path` (the module is imported once)."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != TYPES_MODULE:
            return None
        _uninstall()
        for finder in sys.meta_path:
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _DeferredLoader(spec.loader)
                return spec
        return None


def _uninstall() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _TypesFinder)]


def install() -> bool:
    """Defer the building of aiogram's types to their first use (see the module's text).
    Returns False when `aiogram.types` is imported already (built eagerly: nothing to do),
    True when the hook is in place or was already. Idempotent; cheap (imports nothing)."""
    if TYPES_MODULE in sys.modules:
        return False
    if not any(isinstance(f, _TypesFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _TypesFinder())
    return True


def built(model: type[Any]) -> bool:
    """Whether a pydantic model has its validator already (a deferred one: after first use)."""
    return bool(getattr(model, "__pydantic_complete__", False))
