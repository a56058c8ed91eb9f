"""The last error handler: an error no handler put into words (handlers/errors.py).

It lives in bot/ because what it decides is the wiring's: whether the failure is transient
(`bot.failures.classify`, shared with the de-duplication middleware and the webhook) and the
`bot_errors_total` counter. `build_dispatcher` includes its router after every handler's
router, so the handlers' own error handlers (domain errors, stale buttons) are asked first."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiogram import BaseMiddleware, Router
from aiogram.exceptions import TelegramForbiddenError
from aiogram.types import ErrorEvent, TelegramObject
from aiogram.types.update import UpdateTypeLookupError

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
    if _resident_gone(event):
        # The resident blocked the bot (or deleted their account) while their update was
        # handled: nothing is wrong with the bot and nobody is left to tell. Handled, so the
        # update is done; the outbox meets the same 403 on its own and stops the chat.
        log.info("update.resident_blocked_bot", error=str(error)[:200])
        return
    if classify(error).transient:
        log.warning("update.transient_failure", error=type(error).__name__)
        if not telegram_retries:
            await tell_quietly(event, tr("error-generic"))
        raise error
    log.exception("update.failed", exc_info=error)
    ERRORS.inc()
    await tell_quietly(event, tr("error-generic"))
    raise error


def _resident_gone(event: ErrorEvent) -> bool:
    """A 403 (Telegram's «bot was blocked by the user», «user is deactivated») for the chat of
    the update's own sender: a private chat's id is its user's. A 403 for any other chat (the
    staff supergroup, another resident) is the operator's to see and stays an error."""
    error = event.exception
    if not isinstance(error, TelegramForbiddenError):
        return False
    try:
        sender = getattr(event.update.event, "from_user", None)
    except UpdateTypeLookupError:  # an update of a type aiogram does not know: no sender
        return False
    chat = getattr(error.method, "chat_id", None)
    return sender is not None and chat == sender.id


class ErrorPathGuard(BaseMiddleware):
    """The outermost middleware of the errors observer (`build_dispatcher`): when telling of an
    update's transient failure fails in turn — aiogram-dialog's error middleware reloads the
    dialog stack from the same dry pool and ends in its own error — the update's failure is
    raised, not the error path's, so the update is retried (`bot.failures.classify`) instead
    of being marked done and lost. (`classify` follows explicit causes only: a bug raised in a
    handler's `except` block is still a bug.) Any other failure of the error path is raised
    as it is."""

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        try:
            return await handler(event, data)
        except Exception as failure:
            if not isinstance(event, ErrorEvent) or failure is event.exception:
                raise
            original = event.exception
            if classify(original).transient and not classify(failure).transient:
                log.warning(
                    "update.error_path_failed",
                    error=type(original).__name__,
                    error_path=type(failure).__name__,
                )
                raise original from failure
            raise


def build_router() -> Router:
    """Include it last: an error handler without a filter answers every error it is asked."""
    router = Router(name="unexpected")
    router.errors.register(unexpected)
    return router
