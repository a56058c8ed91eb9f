"""«Мои счета»: the resident's unpaid bills, earliest due first, five to a page."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiogram import F
from aiogram_dialog import Dialog, DialogManager, Window
from aiogram_dialog.widgets.kbd import Cancel, CurrentPage, NextPage, PrevPage, Row
from aiogram_dialog.widgets.text import Format, List

from bot.i18n import Translator
from domain.accounts import Resident
from domain.bills import unpaid_bills
from domain.errors import DomainError, NotLinked, RelinkRequired
from domain.money import format_rub
from domain.ports import CityApi, CityAuth, UnitOfWork
from handlers.states import BillsSG
from handlers.texts import error_key, format_date
from handlers.widgets import HintOnText, Tr

PAGE_SIZE = 5
MOSCOW = ZoneInfo("Europe/Moscow")


async def bills_getter(
    dialog_manager: DialogManager,
    uow: UnitOfWork,
    city: CityApi,
    tr: Translator,
    clock: Callable[[], datetime],
    resident: Resident | None = None,
    **_: Any,
) -> dict[str, Any]:
    auth: CityAuth = dialog_manager.middleware_data["city"]
    try:
        if resident is None:
            raise NotLinked()
        bills = await unpaid_bills(uow, auth, city, resident)
    except DomainError as error:
        if isinstance(error, RelinkRequired) and resident is not None:
            # The city no longer accepts the tokens: forget them so the menu offers linking.
            await uow.residents.delete(resident.telegram_user_id)
            await uow.commit()
            dialog_manager.middleware_data["resident"] = None
        return {"error": tr(error_key(error)), "lines": [], "has_bills": False, "empty": False}
    await uow.commit()  # a refreshed token is kept
    today = clock().astimezone(MOSCOW).date()
    lines = [
        tr(
            "bills-item-overdue" if bill.is_overdue(today) else "bills-item",
            title=bill.title,
            provider=bill.provider,
            amount=format_rub(bill.amount),
            due=format_date(bill.due_date),
        )
        for bill in bills
    ]
    return {
        "lines": lines,
        "count": len(bills),
        "total": format_rub(sum(bill.amount for bill in bills)),
        "has_bills": bool(bills),
        "paged": len(bills) > PAGE_SIZE,
        "empty": not bills,
        "error": "",
    }


def build_dialog() -> Dialog:
    return Dialog(
        Window(
            Tr("bills-title", when=F["has_bills"]),
            List(Format("{item}"), items="lines", id="bills_page", page_size=PAGE_SIZE, sep="\n\n"),
            Tr("bills-empty", when=F["empty"]),
            Format("{error}", when=F["error"]),
            Row(
                PrevPage(scroll="bills_page", text=Tr("pager-prev")),
                CurrentPage(scroll="bills_page", text=Format("{current_page1}/{pages}")),
                NextPage(scroll="bills_page", text=Tr("pager-next")),
                when=F["paged"],
            ),
            Cancel(Tr("nav-back")),
            HintOnText(),
            getter=bills_getter,
            state=BillsSG.list,
        ),
        name="bills",
    )
