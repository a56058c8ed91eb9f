"""«Пришёл счёт» (outbox kind `bill_issued`, written by domain/bill_discovery.py): how it reads,
and its «Оплатить», which opens the same pay step as «Мои счета» for that bill. The day-before
reminder of a bill above its autopay's limit is the same kind (`data["reminder"]`): «Напоминаем:
завтра, 15.12, срок оплаты счёта …» with the same «Оплатить».

The button carries the bill's reference (`handlers.buttons.item_ref`), never its id (the
platform's ids have no length limit; callback data has 64 bytes). A press looks the reference
up among the resident's unpaid bills at the city *now*: a bill paid meanwhile (by its autopay,
on the site) or no longer issued is told politely, and nothing is started."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from aiogram import Router
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup
from aiogram_dialog import DialogManager
from markupsafe import Markup

from domain.accounts import Resident
from domain.autopaying import BillSkip, skip_bill
from domain.bill_discovery import KIND, AutopayPlan
from domain.bills import unpaid_bills
from domain.errors import DomainError, NotFound
from domain.money import format_rub
from domain.payable import Payable
from domain.ports import UnitOfWork
from handlers.buttons import (
    ButtonId,
    ItemRef,
    by_ref,
    drop_keyboard,
    first_press,
    forged,
    item_ref,
    on_forged,
    remember_press,
)
from handlers.context import context_of
from handlers.navigation import start_over_menu
from handlers.payments import pay_data
from handlers.ports import Texts
from handlers.states import PaySG
from handlers.texts import MOSCOW, error_text

__all__ = ["KIND", "BillPay", "failed_key", "pay_button", "register", "render_bill_issued"]

PLAN_KEYS = {
    AutopayPlan.NONE: None,
    AutopayPlan.WILL_PAY: "notify-bill-autopay",
    AutopayPlan.QUEUED: "notify-bill-autopay-queued",
    AutopayPlan.OVER_LIMIT: "notify-bill-over-limit",
}


# An on-issue autopay's failed charge (`autopay_failed`, by the run's failure): no schedule
# follows, the bill is the resident's to pay now («Оплатить»).
FAILED_KEYS = {
    "declined": "notify-bill-autopay-failed",
    "insufficient_funds": "notify-bill-autopay-failed-funds",
    "canceled": "notify-bill-autopay-failed-canceled",
    "refused": "notify-bill-autopay-failed-refused",
    "amount_changed": "notify-bill-autopay-failed-changed",
}


class BillPay(CallbackData, prefix="bp"):
    bill: ItemRef


class BillAutopaySkip(CallbackData, prefix="bs"):
    """«Не оплачивать автоплатежом» under a «Пришёл счёт» queued for an on-issue autopay."""

    autopay: ButtonId
    bill: ItemRef


def failed_key(failure: object) -> str:
    """The text of an on-issue autopay's failed charge, by the run's failure."""
    return FAILED_KEYS.get(str(failure), "notify-bill-autopay-failed-refused")


def pay_button(tr: Texts, bill_id: str) -> InlineKeyboardButton:
    """«Оплатить» for one bill (its reference, never its id): the pay step, if still unpaid."""
    return InlineKeyboardButton(
        text=tr.label("notify-bill-pay"), callback_data=BillPay(bill=item_ref(bill_id)).pack()
    )


def skip_bill_button(tr: Texts, autopay_id: int, bill_id: str) -> InlineKeyboardButton:
    """«Не оплачивать автоплатежом» for one bill queued for the autopay (its reference)."""
    return InlineKeyboardButton(
        text=tr.label("notify-bill-skip"),
        callback_data=BillAutopaySkip(autopay=autopay_id, bill=item_ref(bill_id)).pack(),
    )


def _day_month(value: object) -> str:
    try:
        return date.fromisoformat(str(value)).strftime("%d.%m")
    except ValueError:
        return ""


def _charge_at(value: object) -> tuple[str, str]:
    """(day.month, HH:MM) in Moscow time of the autopay's charge."""
    try:
        moment = datetime.fromisoformat(str(value)).astimezone(MOSCOW)
    except ValueError:
        return "", ""
    return moment.strftime("%d.%m"), moment.strftime("%H:%M")


def _when(data: dict[str, Any]) -> str:
    """The reminder's day (`sent_on`) against the due date: tomorrow, today or other."""
    try:
        due = date.fromisoformat(str(data.get("due")))
        sent_on = date.fromisoformat(str(data.get("sent_on")))
    except ValueError:
        return "other"
    if sent_on == due - timedelta(days=1):
        return "tomorrow"
    return "today" if sent_on == due else "other"


def render_due_reminder(data: dict[str, Any], tr: Texts) -> tuple[Markup, InlineKeyboardMarkup]:
    """«⏰ Напоминаем: завтра, 15.12, срок оплаты счёта: ЕПД за 11.2026 — 15 000,00 ₽», why the
    autopay does not pay it, and «Оплатить»."""
    lines = [
        tr(
            "notify-bill-due-reminder",
            when=_when(data),
            title=str(data.get("title") or ""),
            amount=format_rub(int(data.get("amount") or 0)),
            due=_day_month(data.get("due")),
        )
    ]
    if data.get("limit") is not None:
        lines.append(tr("notify-bill-due-over-limit", limit=format_rub(int(data["limit"]))))
    keyboard = [[pay_button(tr, str(data.get("bill_id") or ""))]]
    return Markup("\n").join(lines), InlineKeyboardMarkup(inline_keyboard=keyboard)


def render_bill_issued(
    data: dict[str, Any], tr: Texts, skip: InlineKeyboardButton | None
) -> tuple[Markup, InlineKeyboardMarkup]:
    """«Пришёл счёт: ЕПД за 11.2026 — 8 124,50 ₽, оплатить до 15.12» and what the autopay for
    it does; «Оплатить» unless the autopay pays it (then `skip`, «Пропустить этот раз»). The
    day-before reminder (`data["reminder"]`) reads as `render_due_reminder`."""
    if data.get("reminder") is True:
        return render_due_reminder(data, tr)
    amount = format_rub(int(data.get("amount") or 0))
    lines = [
        tr(
            "notify-bill-issued",
            title=str(data.get("title") or ""),
            amount=amount,
            due=_day_month(data.get("due")),
        )
    ]
    plan = str(data.get("autopay") or AutopayPlan.NONE)
    key = PLAN_KEYS.get(plan)
    if key is not None:
        day, time = _charge_at(data.get("charge_at"))
        lines.append(
            tr(
                key,
                amount=amount,
                limit=format_rub(int(data.get("limit") or 0)),
                day=day,
                time=time,
            )
        )
    pay = pay_button(tr, str(data.get("bill_id") or ""))
    if plan == AutopayPlan.WILL_PAY and skip is not None:
        rows = [[skip]]
    elif plan == AutopayPlan.QUEUED and data.get("autopay_id") is not None:
        # Charged the moment the bill before it is done: the one chance to stop it (review 33).
        rows = [[skip_bill_button(tr, int(data["autopay_id"]), str(data.get("bill_id") or ""))]]
    elif plan == AutopayPlan.QUEUED:
        rows = []
    else:
        rows = [[pay]]
    return Markup("\n").join(lines), InlineKeyboardMarkup(inline_keyboard=rows)


async def on_bill_pay(
    callback: CallbackQuery, callback_data: BillPay, dialog_manager: DialogManager, tr: Texts
) -> None:
    """«Оплатить» on a «Пришёл счёт»: the pay step for that bill if it is still among the
    resident's unpaid bills; otherwise a polite word and nothing else."""
    ctx = context_of(dialog_manager)
    if ctx.resident is None:
        await callback.answer(tr.label("error-not-linked"), show_alert=True)
        return
    try:
        bills = await unpaid_bills(*ctx.acting)
    except DomainError as error:
        await callback.answer()
        if callback.message is not None:
            await callback.message.answer(error_text(tr, error))
        return
    bill = by_ref(bills, callback_data.bill, lambda b: b.id)
    if bill is None:  # paid meanwhile, no longer issued, or another resident's
        await callback.answer()
        if callback.message is not None:
            await callback.message.answer(tr("notify-bill-stale"))
        return
    await callback.answer()
    await start_over_menu(dialog_manager, PaySG.confirm, pay_data(Payable.bills([bill.id])))


SKIP_KEYS = {
    BillSkip.SKIPPED: "notify-bill-skipped",
    BillSkip.UNDER_WAY: "notify-bill-skip-late",
    BillSkip.NOT_WAITING: "notify-bill-skip-not-waiting",
}


async def on_bill_skip(
    callback: CallbackQuery,
    callback_data: BillAutopaySkip,
    uow: UnitOfWork,
    tr: Texts,
    state: FSMContext,
    resident: Resident | None = None,
) -> None:
    """«Не оплачивать автоплатежом»: the queued bill is left for the resident to pay (with
    «Оплатить»), or they are told why it cannot be stopped; a second tap changes nothing;
    another resident's autopay id is refused."""
    key = await first_press(callback, state, tr, resident)
    if key is None or resident is None:
        return
    try:
        outcome = await skip_bill(
            uow, resident, callback_data.autopay, lambda bill: item_ref(bill) == callback_data.bill
        )
    except NotFound:
        await callback.answer(tr.label("error-forged-button"))  # another resident's autopay
        return
    await remember_press(state, key)
    await callback.answer()
    if callback.message is not None:
        pay = BillPay(bill=callback_data.bill).pack()
        keyboard = InlineKeyboardMarkup(
            inline_keyboard=[
                [InlineKeyboardButton(text=tr.label("notify-bill-pay"), callback_data=pay)]
            ]
        )
        await callback.message.answer(
            tr(SKIP_KEYS[outcome]),
            reply_markup=keyboard if outcome is not BillSkip.UNDER_WAY else None,
        )
    await drop_keyboard(callback, state)


def register(router: Router) -> None:
    router.callback_query.register(on_bill_pay, BillPay.filter())
    router.callback_query.register(on_bill_skip, BillAutopaySkip.filter())
    router.callback_query.register(on_forged, forged(BillPay))
    router.callback_query.register(on_forged, forged(BillAutopaySkip))
