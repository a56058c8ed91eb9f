"""One place where errors become words: domain errors, stale dialog buttons, the unexpected."""

from __future__ import annotations

from typing import Any

import structlog
from aiogram import Router
from aiogram.enums import ChatType
from aiogram.filters import ExceptionTypeFilter
from aiogram.types import ErrorEvent
from aiogram_dialog import DialogManager, ShowMode, StartMode
from aiogram_dialog.api.exceptions import OutdatedIntent, UnknownIntent, UnknownState

from domain.errors import DomainError, NotLinked, RelinkRequired
from domain.reporting import DraftGone
from handlers.ports import Texts
from handlers.states import MenuSG
from handlers.texts import error_text

log = structlog.get_logger(__name__)


async def _tell(event: ErrorEvent, text: str) -> None:
    update = event.update
    if update.callback_query is not None:
        await update.callback_query.answer()
        if update.callback_query.message is not None:
            await update.callback_query.message.answer(text)
    elif update.message is not None:
        await update.message.answer(text)


async def stale_dialog(event: ErrorEvent, tr: Texts, dialog_manager: DialogManager) -> None:
    """A button from before a restart (or a long-gone dialog): bring the menu back."""
    log.info("dialog.stale", error=type(event.exception).__name__)
    await _tell(event, tr("error-stale-button"))
    await dialog_manager.start(MenuSG.main, mode=StartMode.RESET_STACK, show_mode=ShowMode.SEND)


def in_other_chat(event: ErrorEvent) -> bool:
    """The failed update came from a chat other than a private one (a group: `handlers.chats`)."""
    update = event.update
    message = update.message or (
        update.callback_query.message if update.callback_query is not None else None
    )
    return message is not None and message.chat.type != ChatType.PRIVATE


async def stale_elsewhere(event: ErrorEvent, tr: Texts) -> None:
    """A press under a dialog's message in a group (aiogram-dialog finds no dialog there): the
    toast pointing to the private chat, and no menu — a resident's screens stay private."""
    log.info("dialog.stale_elsewhere", error=type(event.exception).__name__)
    if event.update.callback_query is not None:
        await event.update.callback_query.answer(
            tr.label("chat-private-only-toast"), show_alert=True
        )


async def outdated_button(event: ErrorEvent, tr: Texts) -> None:
    """A button of a dialog still open lower in the stack — typically the second tap of a
    double tap that already opened the next step. The step on top stays as it is (resetting
    to the menu would lose it and what the resident typed); the press gets a short answer."""
    log.info("dialog.outdated_button")
    update = event.update
    if update.callback_query is not None:
        await update.callback_query.answer(tr.label("error-outdated-button"))
    elif update.message is not None:  # pragma: no cover - aiogram-dialog raises it for presses
        await update.message.answer(tr("error-outdated-button"))


async def domain_error(event: ErrorEvent, tr: Texts, **data: Any) -> None:
    error = event.exception
    log.info("domain.error", error=type(error).__name__)
    # The link is already forgotten (domain.sessions) — or gone under an open screen whose
    # getter needs it (NotLinked): the words, then the way forward, or every «Назад» says the
    # same and leads nowhere (review 33b).
    # A report screen whose draft went (DraftGone) goes back to the menu too: its steps have
    # nothing left to write into.
    if isinstance(error, (RelinkRequired, NotLinked, DraftGone)):
        await _tell(event, error_text(tr, error))
        dialog_manager: DialogManager | None = data.get("dialog_manager")
        if dialog_manager is not None:  # the way forward at once: the menu with «Привязать»
            if not isinstance(error, DraftGone):  # the link is gone: the menu offers it
                dialog_manager.middleware_data["resident"] = None  # `data` is aiogram's copy
            await dialog_manager.start(
                MenuSG.main, mode=StartMode.RESET_STACK, show_mode=ShowMode.SEND
            )
        return
    assert isinstance(error, DomainError)
    await _tell(event, error_text(tr, error))


async def tell_quietly(event: ErrorEvent, text: str) -> None:
    """Say `text` in the update's chat; a failure to say it (Telegram down) is only logged."""
    try:
        await _tell(event, text)
    except Exception:  # telling may fail too (Telegram down); the original error matters
        log.warning("update.could_not_tell")


def build_router() -> Router:
    """The errors handlers can put into words. Any other error is left to the last error
    handler, which bot/ includes after every handler's router (`bot.unexpected`): whether it
    is transient, and counting it, are the wiring's business."""
    router = Router(name="errors")
    dialogs = ExceptionTypeFilter(OutdatedIntent, UnknownIntent, UnknownState)
    router.errors.register(stale_elsewhere, dialogs, in_other_chat)
    router.errors.register(outdated_button, ExceptionTypeFilter(OutdatedIntent))
    router.errors.register(stale_dialog, ExceptionTypeFilter(UnknownIntent, UnknownState))
    router.errors.register(domain_error, ExceptionTypeFilter(DomainError))
    return router
