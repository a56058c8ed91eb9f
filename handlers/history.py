"""«История платежей»: the last payments at the city with their receipts."""

from __future__ import annotations

from typing import Any

from aiogram_dialog import Dialog, DialogManager, Window
from aiogram_dialog.widgets.kbd import Cancel
from aiogram_dialog.widgets.text import Format

from domain.errors import DomainError
from domain.money import format_rub
from domain.payments import PaymentStatus, history
from handlers.payments import Ctx
from handlers.states import HistorySG
from handlers.texts import error_key, format_datetime
from handlers.widgets import HintOnText, Tr

STATUS_KEYS = {
    PaymentStatus.SUCCEEDED: "history-status-succeeded",
    PaymentStatus.PENDING: "history-status-pending",
}


async def history_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = Ctx(dialog_manager)
    tr = ctx.tr
    try:
        payments = await history(ctx.uow, ctx.city, ctx.city, ctx.linked)
    except DomainError as error:
        return {"text": tr(error_key(error))}
    if not payments:
        return {"text": tr("history-empty")}
    blocks = [tr("history-title")]
    for payment in payments:
        status = tr(STATUS_KEYS.get(payment.status, "history-status-failed"))
        line = tr(
            "history-line",
            date=format_datetime(payment.created_at),
            amount=format_rub(payment.amount),
            status=status,
        )
        if payment.receipt is not None:
            line += ", " + tr("history-receipt", number=payment.receipt.number)
            line += "".join(
                "\n" + tr("pay-receipt-line", title=item.title, amount=format_rub(item.amount))
                for item in payment.receipt.lines
            )
        blocks.append(line)
    return {"text": "\n\n".join(blocks)}


def build_dialog() -> Dialog:
    return Dialog(
        Window(
            Format("{text}"),
            Cancel(Tr("nav-back")),
            HintOnText(),
            getter=history_getter,
            state=HistorySG.list,
        ),
        name="history",
    )
