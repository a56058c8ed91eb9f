"""«История платежей»: the last payments at the city with their receipts."""

from __future__ import annotations

from typing import Any

from aiogram.types import CallbackQuery
from aiogram_dialog import Dialog, DialogManager, Window
from aiogram_dialog.widgets.kbd import Cancel, Column, Select
from aiogram_dialog.widgets.text import Format
from markupsafe import Markup

from domain.errors import DomainError
from domain.money import format_rub
from domain.payments import IntentStatus, PaymentStatus, history
from domain.topups import shown_account
from handlers.payments import Ctx
from handlers.states import HistorySG, PaySG
from handlers.texts import button_int, error_text, format_datetime
from handlers.topups import history_line_key
from handlers.widgets import HintOnText, Html, Paged, PagerRow, Tr

STATUS_KEYS = {
    PaymentStatus.SUCCEEDED: "history-status-succeeded",
    PaymentStatus.PENDING: "history-status-pending",
    PaymentStatus.UNKNOWN: "history-status-unknown",
}


async def history_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = Ctx(dialog_manager)
    tr = ctx.tr
    try:
        payments = await history(ctx.uow, ctx.city, ctx.city, ctx.linked)
    except DomainError as error:
        return {"text": error_text(tr, error)}
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
        topup = payment.payable.topup if payment.payable is not None else None
        topup_key = history_line_key(topup.service) if topup is not None else None
        if payment.receipt is None and topup is not None and topup_key is not None:
            # no receipt yet (waiting, failed): what the top-up was for, as a receipt names it
            line += "\n" + tr(topup_key, account=shown_account(topup.service, topup.account))
        if payment.receipt is not None:
            line += Markup(", ") + tr("history-receipt", number=payment.receipt.number)
            line += Markup("").join(
                "\n" + tr("pay-receipt-line", title=item.title, amount=format_rub(item.amount))
                for item in payment.receipt.lines
            )
        blocks.append(line)
    return {"text": Markup("\n\n").join(blocks)}  # paged: any number of payments fits


async def open_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    """Payments started in the bot that still wait for the bank: each can be resumed."""
    ctx = Ctx(dialog_manager)
    intents = await ctx.uow.payment_intents.recent(ctx.linked.telegram_user_id, 20)
    waiting = [
        (str(i.id), ctx.tr.label("history-resume", amount=format_rub(i.amount),
                           date=format_datetime(i.created_at)))
        for i in intents
        if i.status in (IntentStatus.SUBMITTED, IntentStatus.PENDING)
    ]  # fmt: skip
    return {"waiting": waiting}


async def on_resume(_c: CallbackQuery, _w: Any, manager: DialogManager, intent_id: str) -> None:
    """The pay step opens at its result: the bank's page, «Проверить оплату»."""
    value = button_int(intent_id)
    if value is not None:  # a forged id is ignored; another resident's is refused by the step
        await manager.start(PaySG.result, data={"resume": value})


def build_dialog() -> Dialog:
    return Dialog(
        Window(
            Paged(Html("{text}"), id="history_page"),
            PagerRow("history_page"),
            Column(
                Select(
                    Format("{item[1]}"),
                    id="resume",
                    item_id_getter=lambda item: item[0],
                    items="waiting",
                    on_click=on_resume,
                )
            ),
            Cancel(Tr("nav-back")),
            HintOnText(),
            getter=[history_getter, open_getter],
            state=HistorySG.list,
        ),
        name="history",
    )
