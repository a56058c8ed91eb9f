"""aiogram routers and dialogs: presentation only. `build_router` fixes their order.

The handler modules are imported by `build_router`, not here: a light module of this package
(`handlers.texts`, `handlers.ports`) can be imported by bot/ without loading every dialog."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiogram import Router


def build_router() -> Router:
    """A fresh tree for each Dispatcher (a router can belong to one parent only): errors at the
    top, the staff supergroup's commands, then — in private chats only (`handlers.chats`) —
    the resident's commands, dialogs and the catch-all fallback; then other chats."""
    from aiogram import Router
    from aiogram_dialog import Dialog

    from handlers import (
        account,
        autopay,
        bills,
        charity,
        chats,
        edits,
        errors,
        fallback,
        fines,
        history,
        menu,
        meters,
        my_reports,
        notifications,
        payments,
        points,
        receipts,
        reports,
        settings,
        start,
        support,
        telegram_pay,
        templates,
        topups,
        uin,
    )
    from handlers.widgets import explain_other_input, plain_labels

    resident = chats.private_only(Router(name="resident"))  # their screens: private chat only
    resident.include_routers(
        start.build_router(),
        fallback.build_command_router(),  # any other command: never read as a step's value
        support.build_router(),  # ahead of receipts: photos in support are not receipts
        receipts.build_router(),
        telegram_pay.build_router(),
        my_reports.build_router(),
        notifications.build_router(),
        chats.build_service_router(),  # a pin, a timer: nobody wrote, nothing is answered
        edits.build_router(),  # an edit of a message already taken: told, never silence
        menu.build_dialog(),
        bills.build_dialog(),
        payments.build_dialog(),
        uin.build_dialog(),
        fines.build_dialog(),
        topups.build_dialog(),
        history.build_dialog(),
        charity.build_dialog(),
        points.build_dialog(),
        meters.build_dialog(),
        reports.build_dialog(),
        my_reports.build_dialog(),
        autopay.build_dialog(),
        settings.build_dialog(),
        receipts.build_dialog(),
        account.build_dialog(),
        templates.build_dialog(),
        support.build_dialog(),
        fallback.build_router(),
    )
    root = Router(name="root")
    root.include_routers(
        errors.build_router(),
        support.build_staff_router(),  # the staff supergroup's messages stop here
        resident,
        chats.build_router(),  # groups, and presses without a chat
    )
    for router in resident.sub_routers:  # button texts are plain text, not HTML
        if isinstance(router, Dialog):
            plain_labels(router)
            explain_other_input(router)  # a sticker where text is asked is told so
    return root
