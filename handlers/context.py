"""One update's resident context: what a resident's handlers share, built once per update.

bot/middlewares.py (`UnitOfWorkMiddleware`) opens the update's unit of work, loads the
resident and puts a `ResidentContext` in the handler data under `CONTEXT_KEY`; a handler takes
it with `context_of(manager)` instead of picking five values out of `middleware_data`, and
passes `*ctx.acting` to the resident's use cases instead of `uow, city, city, resident`."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from domain.errors import NotLinked
from domain.limits import DEFAULT_LIMITS, AmountLimits

if TYPE_CHECKING:
    from aiogram_dialog import DialogManager

    from domain.accounts import Resident
    from domain.ports import City, UnitOfWork
    from handlers.ports import Texts

CONTEXT_KEY = "resident_context"


@dataclass(frozen=True, slots=True)
class ResidentContext:
    """The update's unit of work, the city (every port), the texts, the resident who sent it
    (None: not linked), the moment it is handled (`now`, read once from the clock) and the
    operator's ceilings on amounts."""

    uow: UnitOfWork
    city: City
    tr: Texts
    resident: Resident | None
    now: datetime
    limits: AmountLimits = DEFAULT_LIMITS

    @property
    def linked(self) -> Resident:
        """The resident; raises `NotLinked` (told by handlers/errors.py) when there is none."""
        if self.resident is None:
            raise NotLinked()
        return self.resident

    @property
    def acting(self) -> tuple[UnitOfWork, City, City, Resident]:
        """`(uow, auth, api, resident)`: the first arguments of every use case that calls the
        city for the resident (`funds(*ctx.acting, category)`). Raises `NotLinked`."""
        return self.uow, self.city, self.city, self.linked


def context_of(manager: DialogManager) -> ResidentContext:
    """The update's context. `data["resident"]` stays the one place a handler changes who is
    linked during an update (linking, unlinking, a city that refused the tokens): the context
    follows it, so a dialog started afterwards in the same update sees the new resident."""
    data: dict[str, Any] = manager.middleware_data
    ctx: ResidentContext = data[CONTEXT_KEY]
    resident = data.get("resident")
    if resident is not ctx.resident:
        ctx = data[CONTEXT_KEY] = replace(ctx, resident=resident)
    return ctx
