"""The pay step shared by every way to pay: confirm the total and the card, pay, show the
result and the receipt. Started with `pay_data(payable, amount, **display)`: bills, requisites,
a donation (display: `fund_name`) or a top-up (display: `topup_line`).

A saved card's button carries the card's reference (`handlers.buttons.item_ref`), looked up
in the list kept in dialog data, never the platform's id (any length: Telegram refuses a whole
message over 64 bytes of callback data) nor a position (it would name another card once the
list changed)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from aiogram import F
from aiogram.types import CallbackQuery
from aiogram_dialog import Data, Dialog, DialogManager, StartMode, Window
from aiogram_dialog.widgets.kbd import Button, Cancel, Select, SwitchTo, Url
from aiogram_dialog.widgets.text import Format
from markupsafe import Markup

from domain.accounts import Resident
from domain.autopay import BILL_KINDS, AutopayKind
from domain.bills import Bill, BillKind
from domain.errors import DomainError, NotLinked
from domain.limits import DEFAULT_LIMITS, AmountLimits
from domain.money import format_rub
from domain.payable import Payable, PayableKind
from domain.payments import (
    TELEGRAM_METHOD,
    OutcomeKind,
    PaymentIntent,
    available_methods,
    change_method,
    check_payment,
    default_method,
    earlier_payment,
    outcome_of,
    own_intent,
    paid_record,
    pay,
    prepare_bills_payment,
    prepare_donation,
    prepare_requisites_payment,
    prepare_topup,
)
from domain.points import epd_cashback
from domain.ports import City, UnitOfWork
from domain.sessions import ResidentSession
from domain.templates import templatable
from domain.topups import TopupService
from handlers.buttons import by_ref, item_ref
from handlers.ports import Texts
from handlers.states import AutopaySG, MenuSG, PaySG, TemplatesSG
from handlers.telegram_pay import send_invoice
from handlers.texts import error_key, error_text, format_datetime, format_time
from handlers.widgets import HintOnText, Tr, body, one_per_row

INVOICE_SENT = "invoice_sent"
RETRY_WITH_OTHER_CARD = {
    OutcomeKind.DECLINED,
    OutcomeKind.INSUFFICIENT_FUNDS,
    OutcomeKind.EXPIRED_CARD,
    OutcomeKind.CANCELED,
}
OUTCOME_KEYS = {
    OutcomeKind.NEEDS_CONFIRMATION: "pay-needs-confirmation",
    OutcomeKind.DECLINED: "pay-declined",
    OutcomeKind.INSUFFICIENT_FUNDS: "pay-insufficient-funds",
    OutcomeKind.EXPIRED_CARD: "pay-expired-card",
    OutcomeKind.CANCELED: "pay-canceled",
    OutcomeKind.ALREADY_PAID: "pay-already-paid",
    OutcomeKind.AMOUNT_CHANGED: "pay-amount-changed",
    OutcomeKind.UNKNOWN: "pay-unknown",
    OutcomeKind.IN_PROGRESS: "pay-in-progress",
}


# The city's reason for refusing a payment request → what the resident is told.
REFUSAL_KEYS = {
    "invalid_request": "pay-refused-requisites",
    "unknown_payment_method": "pay-refused-card",
    "unknown_bill": "pay-refused-bill",
    "unknown_fund": "pay-refused-fund",
    "below_minimum": "charity-amount-too-small",
    "unknown_account": "pay-refused-account",
    "invalid_account": "pay-refused-account",
    "amount_out_of_limits": "pay-refused-topup-limits",
}


class Ctx:
    """What every handler here needs from the update, in one place."""

    def __init__(self, manager: DialogManager) -> None:
        data = manager.middleware_data
        self.manager = manager
        self.uow: UnitOfWork = data["uow"]
        self.city: City = data["city"]
        self.tr: Texts = data["tr"]
        self.clock: Callable[[], datetime] = data["clock"]
        self.resident: Resident | None = data.get("resident")

    @property
    def linked(self) -> Resident:
        if self.resident is None:
            raise NotLinked()
        return self.resident


def pay_data(payable: Payable, amount: int | None = None, **display: Any) -> dict[str, Any]:
    """Start data of the pay dialog: the payable (the one thing that will be charged), the
    amount for requisites and donations (bills are priced by the city), display-only extras
    (`fund_name`)."""
    return {"payable": payable.to_json(), "amount": amount, **display}


async def pay_bills(manager: DialogManager, bill_ids: Any, **display: Any) -> None:
    """Start the pay step for these bill ids; none picked: nothing to pay, nothing started."""
    ids = [str(b) for b in (bill_ids or []) if b]
    if ids:
        await manager.start(PaySG.confirm, data=pay_data(Payable.bills(ids), **display))


async def paid_text(ctx: Ctx, bill: Bill | None) -> str:
    """«уже оплачено <дата>» with the receipt when the bot or the city knows them."""
    session = ResidentSession(ctx.linked, ctx.city, ctx.uow)
    record = await paid_record(ctx.uow, ctx.city, ctx.linked, session, bill)
    if record.paid_at is None:
        return ctx.tr("pay-paid-before")
    return ctx.tr(
        "pay-paid-before-on",
        date=format_datetime(record.paid_at),
        number=record.receipt_number or "—",
    )


def money_error_key(error: Exception, default: str) -> str:
    """A typed amount that could not be read: a hint for digits grouped wrongly («1500 50»),
    else the step's own «не понял сумму»."""
    return "error-amount-grouping" if getattr(error, "reason", None) == "grouping" else default


def limits_of(manager: DialogManager) -> AmountLimits:
    """The operator's ceilings (settings), or the defaults where none were wired."""
    limits = manager.middleware_data.get("limits")
    return limits if isinstance(limits, AmountLimits) else DEFAULT_LIMITS


async def _prepare(ctx: Ctx, method_id: str | None) -> PaymentIntent:
    """A new intent for exactly the start data's payable; the lines the resident confirms are
    computed here from the same payable (and the city's bills for it)."""
    start: dict[str, Any] = ctx.manager.start_data or {}  # type: ignore[assignment]
    payable = Payable.from_json(start["payable"])
    now, limits, data = ctx.clock(), limits_of(ctx.manager), ctx.manager.dialog_data
    data["epd_total"], data["autopay_kind"] = 0, None
    if payable.kind is PayableKind.DONATION:
        assert payable.fund_id is not None
        amount = int(start["amount"])
        # The lines are kept plain (they also make the invoice's description); shown, they
        # are values of «pay-line», escaped there.
        fund_line = ctx.tr.label("charity-donation-line", fund=start.get("fund_name", ""))
        data["lines"] = [[fund_line, format_rub(amount)]]
        return await prepare_donation(
            ctx.uow, ctx.linked, payable.fund_id, amount, method_id, now, limits
        )
    if payable.kind is PayableKind.TOPUP:
        assert payable.topup is not None
        amount = int(start["amount"])
        data["lines"] = [[start.get("topup_line") or payable.topup.account, format_rub(amount)]]
        service = TopupService(payable.topup.service)
        return await prepare_topup(
            ctx.uow, ctx.linked, service, payable.topup.account, amount, method_id, now, limits
        )
    if payable.kind is PayableKind.REQUISITES:
        assert payable.requisites is not None
        amount = int(start["amount"])
        data["lines"] = [[payable.requisites.purpose, format_rub(amount)]]
        return await prepare_requisites_payment(
            ctx.uow, ctx.linked, payable.requisites, amount, method_id, now, limits
        )
    intent, bills = await prepare_bills_payment(
        ctx.uow, ctx.city, ctx.city, ctx.linked, payable.bill_ids, method_id, now, limits
    )
    data["lines"] = [[b.title, format_rub(b.amount)] for b in bills]
    data["epd_total"] = sum(b.amount for b in bills if b.kind is BillKind.EPD)
    autopayable = [b.kind.value for b in bills if b.kind in BILL_KINDS]
    data["autopay_kind"] = autopayable[0] if len(bills) == 1 and autopayable else None
    data["bill_service"] = (  # a template of it: the service, the payer code, the provider
        [bills[0].kind.value, bills[0].payer_code, bills[0].provider] if len(bills) == 1 else None
    )
    return intent


async def on_start(_data: Data, manager: DialogManager) -> None:
    ctx = Ctx(manager)
    start: dict[str, Any] = manager.start_data or {}  # type: ignore[assignment]
    try:
        if "resume" in start:  # «История платежей» → a payment still waiting for the bank
            intent = await own_intent(ctx.uow, ctx.linked, int(start["resume"]))
            manager.dialog_data["intent_id"] = intent.id
            await manager.switch_to(PaySG.result)
            return
        methods = await available_methods(ctx.uow, ctx.city, ctx.city, ctx.linked)
        chosen = default_method(methods)
        manager.dialog_data["methods"] = [[m.id, m.brand.capitalize(), m.last4] for m in methods]
        manager.dialog_data["method_id"] = chosen.id if chosen else None
        manager.dialog_data["telegram"] = bool(manager.middleware_data.get("telegram_payments"))
        payable = Payable.from_json(start["payable"])
        amount = start.get("amount")
        earlier = await earlier_payment(
            ctx.uow,
            ctx.city,
            ctx.city,
            ctx.linked,
            payable,
            None if amount is None else int(amount),
        )
        if earlier is not None:  # paid or still in flight: never a second key unasked
            manager.dialog_data["earlier"] = {
                "settled": earlier.settled,
                "amount": earlier.amount,
                "when": earlier.when.isoformat(),
                "number": earlier.receipt_number,
                "intent_id": earlier.intent_id,
            }
            await manager.switch_to(PaySG.earlier)
            return
        intent = await _prepare(ctx, manager.dialog_data["method_id"])
    except DomainError as error:
        manager.dialog_data["error_text"] = error_text(ctx.tr, error)
        await manager.switch_to(PaySG.error)
        return
    await ctx.uow.commit()
    manager.dialog_data["intent_id"] = intent.id


async def earlier_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = Ctx(dialog_manager)
    earlier = dialog_manager.dialog_data["earlier"]
    settled = bool(earlier["settled"])
    text = ctx.tr(
        "pay-earlier-paid" if settled else "pay-earlier-unsettled",
        date=format_datetime(datetime.fromisoformat(earlier["when"])),
        amount=format_rub(int(earlier["amount"])),
        number=earlier["number"] or "—",
    )
    return {"text": text, "settled": settled, "unsettled": not settled}


async def on_check_earlier(_c: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    """The earlier payment (the resident's own intent) is checked first; its result is shown
    like any other."""
    manager.dialog_data["intent_id"] = manager.dialog_data["earlier"]["intent_id"]
    manager.dialog_data["lines"] = []
    await on_check(_c, _b, manager)
    await manager.switch_to(PaySG.result)


async def on_pay_again(_c: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    """The resident saw the earlier payment and asked explicitly for a new one."""
    await _confirm_anew(Ctx(manager), manager.dialog_data.get("method_id"))


async def _confirm_anew(ctx: Ctx, method_id: str | None) -> None:
    """A new intent for the start data's payable, shown for confirmation (or the error)."""
    try:
        intent = await _prepare(ctx, method_id)
    except DomainError as error:
        ctx.manager.dialog_data["error_text"] = error_text(ctx.tr, error)
        await ctx.manager.switch_to(PaySG.error)
        return
    await ctx.uow.commit()
    ctx.manager.dialog_data["intent_id"] = intent.id
    await ctx.manager.switch_to(PaySG.confirm)


async def confirm_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = Ctx(dialog_manager)
    intent = await own_intent(ctx.uow, ctx.linked, dialog_manager.dialog_data["intent_id"])
    lines = dialog_manager.dialog_data.get("lines", [])
    tr = ctx.tr
    start: dict[str, Any] = dialog_manager.start_data or {}  # type: ignore[assignment]
    payable = intent.payable  # the very object that will be charged
    if payable.kind is PayableKind.REQUISITES:
        assert payable.requisites is not None
        header = [
            tr("pay-confirm-requisites"),
            tr("receipt-payee", payee=payable.requisites.payee_name),
        ]
        if payable.requisites.pers_acc:
            header.append(tr("receipt-payer-code", payer_code=payable.requisites.pers_acc))
        if payable.requisites.period:
            header.append(tr("receipt-period", period=payable.requisites.period))
    elif payable.kind is PayableKind.DONATION:
        header = [tr("pay-confirm-donation")]
    elif payable.kind is PayableKind.TOPUP:
        header = [tr("pay-confirm-topup")]
    else:
        header = [tr("pay-confirm", count=len(payable.bill_ids))]
    text = [
        *([Markup(start["note"])] if start.get("note") else []),  # a tr text (receipts)
        *header,
        *(tr("pay-line", title=title, amount=amount) for title, amount in lines),
        "",
        tr("pay-total", total=format_rub(intent.amount)),
        _method_text(tr, dialog_manager, intent.method_id),
    ]
    return {
        "text": Markup("\n").join(text),
        "total": format_rub(intent.amount),
        # a template's own amount can be changed (handlers/templates.py asks it)
        "template_amount": bool(start.get("template_id")) and payable.kind is not PayableKind.BILLS,
    }


def _method_text(tr: Texts, manager: DialogManager, method_id: str | None) -> Markup:
    if method_id == TELEGRAM_METHOD:
        return tr("pay-method-telegram")
    for mid, brand, last4 in manager.dialog_data.get("methods", []):
        if mid == method_id:
            return tr("pay-method-card", brand=brand, last4=last4)
    return tr("pay-method-new")


async def on_pay(callback: CallbackQuery, _button: Button, manager: DialogManager) -> None:
    ctx = Ctx(manager)
    intent = await own_intent(ctx.uow, ctx.linked, manager.dialog_data["intent_id"])
    token = manager.middleware_data.get("telegram_payments")
    if intent.method_id == TELEGRAM_METHOD and token and callback.message is not None:
        lines = [title for title, _amount in manager.dialog_data.get("lines", [])]
        assert callback.bot is not None
        await send_invoice(callback.bot, ctx.tr, token, callback.message.chat.id, intent, lines)
        manager.dialog_data["outcome"] = INVOICE_SENT
        await manager.switch_to(PaySG.result)
        return
    outcome = await pay(
        ctx.uow, ctx.city, ctx.city, ctx.linked, manager.dialog_data["intent_id"], ctx.clock()
    )
    manager.dialog_data["new_amount"] = outcome.new_amount
    manager.dialog_data["outcome"] = outcome.kind.value
    await manager.switch_to(PaySG.result)


async def on_check(_callback: CallbackQuery, _button: Button, manager: DialogManager) -> None:
    """«Проверить оплату» always answers: the result, or «ещё ждём» with the time of the check
    (so the message visibly changes even when the bank has not moved)."""
    ctx = Ctx(manager)
    try:
        outcome = await check_payment(
            ctx.uow, ctx.city, ctx.city, ctx.linked, manager.dialog_data["intent_id"], ctx.clock()
        )
    except DomainError as error:
        manager.dialog_data["checked"] = [error_key(error), ctx.clock().isoformat()]
        return
    manager.dialog_data["outcome"] = outcome.kind.value
    manager.dialog_data["checked"] = ["pay-check-waiting", ctx.clock().isoformat()]


def _chosen_method(manager: DialogManager, item_id: str) -> tuple[bool, str | None]:
    """What a «card» button means: (shown, method id). A saved card's button carries its
    `item_ref`, found among the cards kept in dialog data (never the platform's id: no length
    limit in the contract, and Telegram refuses a whole message whose button carries over 64
    bytes); «new» is a new card (None), `TELEGRAM_METHOD` a Telegram invoice when offered."""
    if item_id == "new":
        return True, None
    if item_id == TELEGRAM_METHOD:
        return bool(manager.dialog_data.get("telegram")), TELEGRAM_METHOD
    method = by_ref(manager.dialog_data.get("methods", []), item_id, lambda m: str(m[0]))
    if method is None:
        return False, None
    return True, str(method[0])


async def on_method(
    callback: CallbackQuery, _widget: Any, manager: DialogManager, item_id: str
) -> None:
    ctx = Ctx(manager)
    shown, method_id = _chosen_method(manager, item_id)
    if not shown:  # a forged or stale button: nothing changes
        await callback.answer(ctx.tr.label("error-forged-button"))
        return
    intent = await change_method(
        ctx.uow, ctx.linked, manager.dialog_data["intent_id"], method_id, ctx.clock()
    )
    await ctx.uow.commit()
    manager.dialog_data["intent_id"] = intent.id
    await manager.switch_to(PaySG.confirm)


async def on_new_amount(_callback: CallbackQuery, _button: Button, manager: DialogManager) -> None:
    """The amount changed: a new intent for the same bills, confirmed again by the resident."""
    ctx = Ctx(manager)
    old = await own_intent(ctx.uow, ctx.linked, manager.dialog_data["intent_id"])
    await _confirm_anew(ctx, old.method_id)


async def on_done(_c: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    """«Готово» leads somewhere fresh, never back to a screen that still offers to pay what may
    have just been paid: «Мои счета» gets its list fetched again and a fund's card may be
    given to again (both start the pay step with `back`); every other road (a UIN, fines, a
    receipt) goes to the menu."""
    start: dict[str, Any] = manager.start_data or {}  # type: ignore[assignment]
    if start.get("back"):
        await manager.done({"refresh": True, "intent_id": manager.dialog_data.get("intent_id")})
        return
    await manager.start(MenuSG.main, mode=StartMode.RESET_STACK)


async def on_autopay(_c: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    """«Подключить автоплатёж» under a receipt or a thank-you: what to pay is known already."""
    start: dict[str, Any] = manager.start_data or {}  # type: ignore[assignment]
    payable = Payable.from_json(start["payable"])  # the very thing just paid, nothing stale
    if payable.kind is PayableKind.DONATION:
        data = {
            "kind": AutopayKind.FIXED.value,
            "fund_id": payable.fund_id,
            "fund_name": start.get("fund_name", ""),
            "amount": int(start["amount"]),
        }
    elif payable.topup is not None:  # «Пополнять» this card or parking account
        data = {
            "kind": AutopayKind.TOPUP.value,
            "topup_service": payable.topup.service,
            "topup_account": payable.topup.account,
            "amount": int(start["amount"]),
        }
    else:
        data = {"kind": AutopayKind.BILL.value, "bill_kind": manager.dialog_data["autopay_kind"]}
    await manager.start(AutopaySG.frequency, data=data)


async def on_save_template(_c: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    """«Сохранить как шаблон» under a receipt: what was just paid (the intent's payable and
    amount, the bill's service and payer code, display values such as `fund_name`)."""
    ctx = Ctx(manager)
    intent = await own_intent(ctx.uow, ctx.linked, manager.dialog_data["intent_id"])
    start: dict[str, Any] = manager.start_data or {}  # type: ignore[assignment]
    display = {
        key: value
        for key, value in start.items()
        if isinstance(value, str) and key not in ("note", "payable", "amount", "back")
    }
    bill = manager.dialog_data.get("bill_service")
    data = {"payable": intent.payable.to_json(), "amount": intent.amount, "bill": bill}
    await manager.start(TemplatesSG.save, data={**data, "display": display})


async def on_template_amount(_c: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    """«Изменить сумму» of a template's payment: back to «Шаблоны», which asks it."""
    await manager.done({"template_amount": True})


async def methods_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    tr: Texts = dialog_manager.middleware_data["tr"]
    methods = [
        (item_ref(mid), tr.label("pay-method-button", brand=brand, last4=last4))
        for mid, brand, last4 in dialog_manager.dialog_data.get("methods", [])
    ]
    if dialog_manager.dialog_data.get("telegram"):
        methods.append((TELEGRAM_METHOD, tr.label("pay-method-telegram-button")))
    return {"methods": [*methods, ("new", tr.label("pay-new-card"))]}


async def result_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = Ctx(dialog_manager)
    intent = await own_intent(ctx.uow, ctx.linked, dialog_manager.dialog_data["intent_id"])
    if dialog_manager.dialog_data.get("outcome") == INVOICE_SENT and intent.status.value == "new":
        return {"text": ctx.tr("tgpay-invoice-sent"), "url": "", "new_amount": "",
                "confirm": False, "checkable": False, "other_card": True,
                "amount_changed": False}  # fmt: skip
    outcome = outcome_of(intent)  # the stored intent is the truth, whatever was pressed before
    kind = outcome.kind
    new_amount = dialog_manager.dialog_data.get("new_amount")
    tr = ctx.tr
    start: dict[str, Any] = dialog_manager.start_data or {}  # type: ignore[assignment]
    if kind is OutcomeKind.PAID and intent.receipt is not None and intent.fund_id:
        text = tr(
            "charity-thanks",
            fund=start.get("fund_name", ""),
            total=format_rub(intent.receipt.total),
            number=intent.receipt.number,
        )
    elif kind is OutcomeKind.PAID and intent.receipt is not None:
        receipt = intent.receipt
        lines = [
            tr("pay-paid", total=format_rub(receipt.total), number=receipt.number,
               issued=format_datetime(receipt.issued_at)),
            *(tr("pay-receipt-line", title=line.title, amount=format_rub(line.amount))
              for line in receipt.lines),
        ]  # fmt: skip
        if receipt.card_last4:
            lines.append(tr("pay-receipt-card", last4=receipt.card_last4))
        if cashback := epd_cashback(dialog_manager.dialog_data.get("epd_total", 0)):
            lines.append(tr("pay-epd-points", points=tr("points-count", count=cashback)))
        text = Markup("\n").join(lines)
    elif kind is OutcomeKind.REFUSED:
        text = tr(REFUSAL_KEYS.get(outcome.refusal or "", "pay-refused"))
    else:
        amount = format_rub(new_amount) if new_amount is not None else ""
        text = tr(OUTCOME_KEYS.get(kind, "pay-declined"), new_amount=amount)
    checked = dialog_manager.dialog_data.get("checked")
    if checked and not intent.status.final:
        text += "\n\n" + tr(checked[0], time=format_time(datetime.fromisoformat(checked[1])))
    return {
        "text": text,
        "url": intent.confirmation_url or "",
        "new_amount": format_rub(new_amount) if new_amount is not None else "",
        "confirm": kind is OutcomeKind.NEEDS_CONFIRMATION and bool(intent.confirmation_url),
        "checkable": kind
        in (OutcomeKind.NEEDS_CONFIRMATION, OutcomeKind.UNKNOWN, OutcomeKind.IN_PROGRESS),
        "other_card": kind in RETRY_WITH_OTHER_CARD,
        "amount_changed": kind is OutcomeKind.AMOUNT_CHANGED,
        "autopay": kind is OutcomeKind.PAID
        and "payable" in start  # not for a payment resumed from the history
        and bool(
            intent.fund_id
            or intent.payable.topup is not None
            or dialog_manager.dialog_data.get("autopay_kind")
        ),
        "template": kind is OutcomeKind.PAID
        and "payable" in start
        and not start.get("template_id")  # paid from a template: it is one already
        and templatable(intent.payable, dialog_manager.dialog_data.get("bill_service")),
    }


async def error_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    tr: Texts = dialog_manager.middleware_data["tr"]
    text = dialog_manager.dialog_data.get("error_text")  # a tr text, stored by on_start
    if text:
        return {"text": Markup(text)}
    return {"text": tr(dialog_manager.dialog_data.get("error", "error-generic"))}


def build_dialog() -> Dialog:
    return Dialog(
        Window(
            *body("text", "payments_text_1"),
            Button(Tr("pay-button"), id="pay", on_click=on_pay),
            SwitchTo(Tr("pay-change-method"), id="method", state=PaySG.method),
            Button(
                Tr("templates-change-amount"),
                id="tpl_amount",
                on_click=on_template_amount,
                when=F["template_amount"],
            ),
            Cancel(Tr("pay-cancel")),
            HintOnText(),
            getter=confirm_getter,
            state=PaySG.confirm,
        ),
        Window(
            Tr("pay-choose-method"),
            one_per_row(
                Select(
                    Format("{item[1]}"),
                    id="card",
                    item_id_getter=lambda item: item[0],
                    items="methods",
                    on_click=on_method,
                ),
                id="card_list",
            ),
            SwitchTo(Tr("nav-back"), id="back", state=PaySG.confirm),
            HintOnText(),
            getter=methods_getter,
            state=PaySG.method,
        ),
        Window(
            *body("text", "payments_text_2"),
            Url(Tr("pay-open-page"), Format("{url}"), id="page", when=F["confirm"]),
            Button(Tr("pay-check"), id="check", on_click=on_check, when=F["checkable"]),
            SwitchTo(Tr("pay-other-card"), id="other", state=PaySG.method, when=F["other_card"]),
            Button(
                Tr("pay-pay-new-amount"),
                id="again",
                on_click=on_new_amount,
                when=F["amount_changed"],
            ),
            Button(Tr("autopay-connect"), id="autopay", on_click=on_autopay, when=F["autopay"]),
            Button(
                Tr("templates-save-button"), id="tpl", on_click=on_save_template, when=F["template"]
            ),
            Button(Tr("pay-done"), id="done", on_click=on_done),
            HintOnText(),
            getter=result_getter,
            state=PaySG.result,
        ),
        Window(
            *body("text", "payments_text_3"),
            Cancel(Tr("nav-back")),
            HintOnText(),
            getter=error_getter,
            state=PaySG.error,
        ),
        Window(
            *body("text", "payments_text_4"),
            Button(
                Tr("pay-check"), id="check_earlier", on_click=on_check_earlier, when=F["unsettled"]
            ),
            Button(Tr("pay-again"), id="pay_again", on_click=on_pay_again, when=F["settled"]),
            Cancel(Tr("nav-back")),
            HintOnText(),
            getter=earlier_getter,
            state=PaySG.earlier,
        ),
        on_start=on_start,
        name="pay",
    )
