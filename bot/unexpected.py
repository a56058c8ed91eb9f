"""The last error handler: an error no handler put into words (handlers/errors.py).

It lives in bot/ because what it decides is the wiring's: whether the failure is transient
(`bot.failures.classify`, shared with the de-duplication middleware and the webhook) and the
`bot_errors_total` counter. `build_dispatcher` includes its router after every handler's
router, so the handlers' own error handlers (domain errors, stale buttons) are asked first."""

from __future__ import annotations

import structlog
from aiogram import Router
from aiogram.types import ErrorEvent

from bot.failures import classify
from bot.metrics import ERRORS
from handlers.errors import tell_quietly
from handlers.ports import Texts

log = structlog.get_logger(__name__)


async def unexpected(event: ErrorEvent, tr: Texts, telegram_retries: bool = False) -> None:
    """Any other error, re-raised after this so that the de-duplication middleware and the
    webhook decide the update's fate with the same `bot.failures.classify`:

    - transient (the database, Redis, Telegram or the city unreachable): when Telegram will
      deliver the update again (`telegram_retries`, set by the webhook) nothing is said — the
      redelivery is handled once they are back, and a message per retry would be spam; polling
      retries the update itself (`TransientRetryMiddleware`, also `telegram_retries` until its
      last attempt), and after the last attempt — or in the console — the resident is told to
      try later;
    - deterministic (a Bot API 400, a bug): logged, counted (`bot_errors_total`) and told
      once; the update is then marked done and answered 2xx, so a redelivery says nothing."""
    error = event.exception
    if classify(error).transient:
        log.warning("update.transient_failure", error=type(error).__name__)
        if not telegram_retries:
            await tell_quietly(event, tr("error-generic"))
        raise error
    log.exception("update.failed", exc_info=error)
    ERRORS.inc()
    await tell_quietly(event, tr("error-generic"))
    raise error


def build_router() -> Router:
    """Include it last: an error handler without a filter answers every error it is asked."""
    router = Router(name="unexpected")
    router.errors.register(unexpected)
    return router
