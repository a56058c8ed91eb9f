"""aiogram routers and dialogs: presentation only. `build_router` fixes their order.

The handler modules are imported by `build_router`, not here: a light module of this package
(`handlers.texts`, `handlers.ports`) can be imported by bot/ without loading every dialog."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiogram import Router


def build_router() -> Router:
    """A fresh tree for each Dispatcher (a router can belong to one parent only): commands
    first, then dialogs, then the catch-all fallback; errors are handled at the top."""
    from aiogram import Router
    from aiogram_dialog import Dialog

    from handlers import (
        account,
        autopay,
        bills,
        charity,
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
    from handlers.widgets import plain_labels

    root = Router(name="root")
    root.include_routers(
        errors.build_router(),
        support.build_staff_router(),  # the staff supergroup's messages stop here
        start.build_router(),
        support.build_router(),  # ahead of receipts: photos in support are not receipts
        receipts.build_router(),
        telegram_pay.build_router(),
        my_reports.build_router(),
        notifications.build_router(),
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
    for router in root.sub_routers:  # button texts are plain text, not HTML
        if isinstance(router, Dialog):
            plain_labels(router)
    return root
