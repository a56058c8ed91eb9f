"""«Автоплатежи»: list, set up (kind → what → schedule → amount or limit → card → summary),
pause, resume, delete; also opened from «Подключить автоплатёж» on a receipt or a thank-you."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiogram import F
from aiogram.enums import ContentType
from aiogram.types import CallbackQuery, Message
from aiogram_dialog import Data, Dialog, DialogManager, ShowMode, Window
from aiogram_dialog.widgets.input import MessageInput
from aiogram_dialog.widgets.kbd import Button, Cancel, Column, Group, Select, SwitchTo
from aiogram_dialog.widgets.text import Format

from bot.i18n import Translator
from domain.autopay import (
    BILL_KINDS,
    MOSCOW,
    Autopay,
    AutopayKind,
    AutopayStatus,
    Frequency,
    Schedule,
    next_due,
)
from domain.autopaying import change, own_autopay, set_status, set_up
from domain.bills import BillKind, unpaid_bills
from domain.charity import MIN_DONATION, funds
from domain.errors import DomainError
from domain.money import MoneyParseError, format_rub, parse_rub
from domain.payments import available_methods
from handlers.payments import Ctx
from handlers.states import AutopaySG
from handlers.texts import error_key, format_datetime
from handlers.widgets import HintOnText, Tr

SERVICE_KEYS = {
    BillKind.EPD: "service-epd",
    BillKind.MGTS: "service-mgts",
    BillKind.KINDERGARTEN: "service-kindergarten",
    BillKind.CLUB: "service-club",
}
WEEKDAY_KEYS = (
    "weekday-0",
    "weekday-1",
    "weekday-2",
    "weekday-3",
    "weekday-4",
    "weekday-5",
    "weekday-6",
)


def describe(tr: Translator, autopay: Autopay) -> dict[str, str]:
    """What / how / when of an autopay, in words (also used by notifications)."""
    if autopay.kind is AutopayKind.BILL and autopay.bill_kind is not None:
        what = tr("autopay-what-bill", service=tr(SERVICE_KEYS[autopay.bill_kind]))
        how = tr("autopay-how-limit", limit=format_rub(autopay.limit or 0))
    else:
        what = tr("autopay-what-fund", fund=autopay.fund_name or "")
        how = tr("autopay-how-amount", amount=format_rub(autopay.amount or 0))
    if autopay.schedule.frequency is Frequency.MONTHLY:
        when = tr("autopay-when-monthly", day=str(autopay.schedule.day))
    else:
        when = tr("autopay-when-weekly", weekday=tr(WEEKDAY_KEYS[autopay.schedule.day]))
    return {"what": what, "how": how, "when": when}


async def list_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = Ctx(dialog_manager)
    autopays = await ctx.uow.autopays.of_resident(ctx.linked.telegram_user_id)
    items = []
    for autopay in autopays:
        words = describe(ctx.tr, autopay)
        paused = ctx.tr("autopay-paused-mark") if autopay.status is AutopayStatus.PAUSED else ""
        items.append((str(autopay.id), ctx.tr("autopay-line", paused=paused, **words)))
    return {"text": ctx.tr("autopay-title" if items else "autopay-none"), "autopays": items}


async def on_autopay(_c: CallbackQuery, _w: Any, manager: DialogManager, autopay_id: str) -> None:
    manager.dialog_data["autopay"] = int(autopay_id)
    await manager.switch_to(AutopaySG.card)


async def card_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = Ctx(dialog_manager)
    autopay = await own_autopay(ctx.uow, ctx.linked, dialog_manager.dialog_data["autopay"])
    active = autopay.status is AutopayStatus.ACTIVE
    text = ctx.tr(
        "autopay-card",
        next=format_datetime(autopay.next_due_at),
        state=ctx.tr("autopay-state-active" if active else "autopay-state-paused"),
        **describe(ctx.tr, autopay),
    )
    return {"text": text, "active": active}


async def on_edit_money(_c: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    ctx = Ctx(manager)
    autopay = await own_autopay(ctx.uow, ctx.linked, manager.dialog_data["autopay"])
    manager.dialog_data.update(editing=autopay.id, kind=autopay.kind.value)
    await manager.switch_to(AutopaySG.money)


async def on_edit_day(_c: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    manager.dialog_data["editing"] = manager.dialog_data["autopay"]
    await manager.switch_to(AutopaySG.frequency)


def _status(status: AutopayStatus) -> Any:
    async def handler(_c: CallbackQuery, _b: Button, manager: DialogManager) -> None:
        ctx = Ctx(manager)
        await set_status(ctx.uow, ctx.linked, manager.dialog_data["autopay"], status, ctx.clock())
        if status is AutopayStatus.DELETED:
            if _c.message is not None:
                await _c.message.answer(ctx.tr("autopay-deleted"))
            await manager.switch_to(AutopaySG.list, show_mode=ShowMode.SEND)

    return handler


# --- setting up ---------------------------------------------------------------------------


async def on_start(data: Data, manager: DialogManager) -> None:
    """Opened from a receipt or a thank-you: what to pay is already known."""
    if not isinstance(data, dict):
        return
    manager.dialog_data.update({k: v for k, v in data.items() if k in _PREFILL})
    if data.get("kind") in (AutopayKind.BILL, AutopayKind.FIXED):
        await manager.switch_to(AutopaySG.frequency)


_PREFILL = {"kind", "bill_kind", "fund_id", "fund_name", "amount"}


async def on_kind_bill(_c: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    manager.dialog_data["kind"] = AutopayKind.BILL.value
    await manager.switch_to(AutopaySG.service)


async def on_kind_fund(_c: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    manager.dialog_data["kind"] = AutopayKind.FIXED.value
    await manager.switch_to(AutopaySG.fund)


async def services_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = Ctx(dialog_manager)
    try:
        kinds = {b.kind for b in await unpaid_bills(ctx.uow, ctx.city, ctx.city, ctx.linked)}
    except DomainError as error:
        return {"text": ctx.tr(error_key(error)), "services": []}
    services = [(k.value, ctx.tr(SERVICE_KEYS[k])) for k in BILL_KINDS if k in kinds]
    return {
        "text": ctx.tr("autopay-service-ask" if services else "autopay-no-services"),
        "services": services,
    }


async def on_service(_c: CallbackQuery, _w: Any, manager: DialogManager, kind: str) -> None:
    if kind in {k.value for k in BILL_KINDS}:
        manager.dialog_data["bill_kind"] = kind
        await manager.switch_to(AutopaySG.frequency)


async def funds_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = Ctx(dialog_manager)
    found = await funds(ctx.uow, ctx.city, ctx.city, ctx.linked, None)
    dialog_manager.dialog_data["fund_names"] = {f.id: f.name for f in found}
    return {"funds": [(f.id, f.name) for f in found]}


async def on_fund(_c: CallbackQuery, _w: Any, manager: DialogManager, fund_id: str) -> None:
    name = manager.dialog_data.get("fund_names", {}).get(fund_id)
    if name is not None:
        manager.dialog_data.update(fund_id=fund_id, fund_name=name)
        await manager.switch_to(AutopaySG.frequency)


async def on_monthly(_c: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    manager.dialog_data["frequency"] = Frequency.MONTHLY.value
    await manager.switch_to(AutopaySG.day)


async def on_weekly(_c: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    manager.dialog_data["frequency"] = Frequency.WEEKLY.value
    await manager.switch_to(AutopaySG.weekday)


async def _after_schedule(manager: DialogManager) -> None:
    data = manager.dialog_data
    if data.get("editing"):  # a new day for an existing autopay
        ctx = Ctx(manager)
        schedule = Schedule(Frequency(data["frequency"]), int(data["day"]))
        await change(ctx.uow, ctx.linked, data.pop("editing"), ctx.clock(), schedule=schedule)
        await manager.switch_to(AutopaySG.card, show_mode=ShowMode.SEND)
        return
    prefilled = data.get("kind") == AutopayKind.FIXED and data.get("amount")
    await manager.switch_to(
        AutopaySG.method if prefilled else AutopaySG.money, show_mode=ShowMode.SEND
    )


async def on_day(message: Message, _w: MessageInput, manager: DialogManager) -> None:
    text = (message.text or "").strip()
    if not text.isdigit() or not 1 <= int(text) <= 31:
        await message.answer(Ctx(manager).tr("autopay-day-bad"))
        return
    manager.dialog_data["day"] = int(text)
    await _after_schedule(manager)


async def weekdays_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    tr: Translator = dialog_manager.middleware_data["tr"]
    return {"weekdays": [(str(n), tr(key)) for n, key in enumerate(WEEKDAY_KEYS)]}


async def on_weekday(_c: CallbackQuery, _w: Any, manager: DialogManager, day: str) -> None:
    if day.isdigit() and 0 <= int(day) <= 6:
        manager.dialog_data["day"] = int(day)
        await _after_schedule(manager)


async def money_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    tr: Translator = dialog_manager.middleware_data["tr"]
    bill = dialog_manager.dialog_data.get("kind") == AutopayKind.BILL
    return {"text": tr("autopay-limit-ask" if bill else "autopay-amount-ask")}


async def on_money(message: Message, _w: MessageInput, manager: DialogManager) -> None:
    ctx = Ctx(manager)
    bill = manager.dialog_data.get("kind") == AutopayKind.BILL
    try:
        amount = parse_rub(message.text or "")
    except MoneyParseError:
        amount = 0
    if amount <= 0 or (not bill and amount < MIN_DONATION):
        await message.answer(ctx.tr("autopay-limit-bad" if bill else "autopay-amount-bad"))
        return
    if manager.dialog_data.get("editing"):  # a new amount or limit for an existing autopay
        await change(
            ctx.uow, ctx.linked, manager.dialog_data.pop("editing"), ctx.clock(), money=amount
        )
        await manager.switch_to(AutopaySG.card, show_mode=ShowMode.SEND)
        return
    manager.dialog_data["limit" if bill else "amount"] = amount
    await manager.switch_to(AutopaySG.method, show_mode=ShowMode.SEND)


async def methods_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = Ctx(dialog_manager)
    methods = await available_methods(ctx.uow, ctx.city, ctx.city, ctx.linked)
    dialog_manager.dialog_data["cards"] = {m.id: m.last4 for m in methods}
    items = [
        (m.id, ctx.tr("pay-method-button", brand=m.brand.capitalize(), last4=m.last4))
        for m in methods
    ]
    return {"text": ctx.tr("autopay-card-ask" if items else "autopay-no-cards"), "methods": items}


async def on_method(_c: CallbackQuery, _w: Any, manager: DialogManager, method_id: str) -> None:
    if method_id in manager.dialog_data.get("cards", {}):
        manager.dialog_data["method_id"] = method_id
        await manager.switch_to(AutopaySG.summary)


def _draft(manager: DialogManager, now: datetime) -> Autopay:
    data = manager.dialog_data
    schedule = Schedule(Frequency(data["frequency"]), int(data["day"]))
    return Autopay(
        telegram_user_id=Ctx(manager).linked.telegram_user_id,
        kind=AutopayKind(data["kind"]),
        schedule=schedule,
        method_id=data["method_id"],
        next_due_at=next_due(schedule, now),
        amount=data.get("amount"),
        limit=data.get("limit"),
        fund_id=data.get("fund_id"),
        fund_name=data.get("fund_name"),
        bill_kind=BillKind(data["bill_kind"]) if data.get("bill_kind") else None,
    )


async def summary_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = Ctx(dialog_manager)
    autopay = _draft(dialog_manager, ctx.clock())
    last4 = dialog_manager.dialog_data["cards"][autopay.method_id]
    first = format_datetime(autopay.next_due_at.astimezone(MOSCOW))
    return {
        "text": ctx.tr("autopay-summary", last4=last4, first=first, **describe(ctx.tr, autopay))
    }


async def on_confirm(callback: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    ctx = Ctx(manager)
    await set_up(ctx.uow, _draft(manager, ctx.clock()), ctx.clock())
    assert callback.message is not None
    await callback.message.answer(ctx.tr("autopay-created"))
    await manager.switch_to(AutopaySG.list, show_mode=ShowMode.SEND)


def build_dialog() -> Dialog:
    pick = {"item_id_getter": lambda i: i[0]}
    return Dialog(
        Window(
            Format("{text}"),
            Column(
                Select(Format("{item[1]}"), id="ap", items="autopays", on_click=on_autopay, **pick)
            ),
            SwitchTo(Tr("autopay-add"), id="add", state=AutopaySG.kind),
            Cancel(Tr("nav-back")),
            HintOnText(),
            getter=list_getter,
            state=AutopaySG.list,
        ),
        Window(
            Format("{text}"),
            Button(
                Tr("autopay-pause"),
                id="pause",
                on_click=_status(AutopayStatus.PAUSED),
                when=F["active"],
            ),
            Button(
                Tr("autopay-resume"),
                id="resume",
                on_click=_status(AutopayStatus.ACTIVE),
                when=~F["active"],
            ),
            Button(Tr("autopay-edit-money"), id="money", on_click=on_edit_money),
            Button(Tr("autopay-edit-day"), id="day", on_click=on_edit_day),
            Button(Tr("autopay-delete"), id="delete", on_click=_status(AutopayStatus.DELETED)),
            SwitchTo(Tr("nav-back"), id="back", state=AutopaySG.list),
            HintOnText(),
            getter=card_getter,
            state=AutopaySG.card,
        ),
        Window(
            Tr("autopay-kind-ask"),
            Button(Tr("autopay-kind-bill"), id="bill", on_click=on_kind_bill),
            Button(Tr("autopay-kind-fund"), id="fund", on_click=on_kind_fund),
            SwitchTo(Tr("nav-back"), id="back", state=AutopaySG.list),
            HintOnText(),
            state=AutopaySG.kind,
        ),
        Window(
            Format("{text}"),
            Column(
                Select(Format("{item[1]}"), id="svc", items="services", on_click=on_service, **pick)
            ),
            SwitchTo(Tr("nav-back"), id="back", state=AutopaySG.kind),
            HintOnText(),
            getter=services_getter,
            state=AutopaySG.service,
        ),
        Window(
            Tr("autopay-fund-ask"),
            Column(Select(Format("{item[1]}"), id="fund", items="funds", on_click=on_fund, **pick)),
            SwitchTo(Tr("nav-back"), id="back", state=AutopaySG.kind),
            HintOnText(),
            getter=funds_getter,
            state=AutopaySG.fund,
        ),
        Window(
            Tr("autopay-frequency-ask"),
            Button(Tr("autopay-monthly"), id="monthly", on_click=on_monthly),
            Button(Tr("autopay-weekly"), id="weekly", on_click=on_weekly),
            Cancel(Tr("pay-cancel")),
            HintOnText(),
            state=AutopaySG.frequency,
        ),
        Window(
            Tr("autopay-day-ask"),
            MessageInput(on_day, content_types=ContentType.TEXT),
            SwitchTo(Tr("nav-back"), id="back", state=AutopaySG.frequency),
            state=AutopaySG.day,
        ),
        Window(
            Tr("autopay-weekday-ask"),
            Group(
                Select(Format("{item[1]}"), id="wd", items="weekdays", on_click=on_weekday, **pick),
                width=2,
            ),
            SwitchTo(Tr("nav-back"), id="back", state=AutopaySG.frequency),
            HintOnText(),
            getter=weekdays_getter,
            state=AutopaySG.weekday,
        ),
        Window(
            Format("{text}"),
            MessageInput(on_money, content_types=ContentType.TEXT),
            SwitchTo(Tr("nav-back"), id="back", state=AutopaySG.frequency),
            getter=money_getter,
            state=AutopaySG.money,
        ),
        Window(
            Format("{text}"),
            Column(
                Select(Format("{item[1]}"), id="card", items="methods", on_click=on_method, **pick)
            ),
            Cancel(Tr("pay-cancel")),
            HintOnText(),
            getter=methods_getter,
            state=AutopaySG.method,
        ),
        Window(
            Format("{text}"),
            Button(Tr("autopay-confirm"), id="confirm", on_click=on_confirm),
            Cancel(Tr("pay-cancel")),
            HintOnText(),
            getter=summary_getter,
            state=AutopaySG.summary,
        ),
        on_start=on_start,
        name="autopay",
    )
