"""«Пополнить»: a «Тройка» card or a parking account («Московский паркинг»).

The service; the account — typed (spaces allowed, checked the carrier's way, a bad one told and
asked again) or one of the resident's own accounts from the profile at the platform (a button
carries its `item_ref`, never the number); the platform is asked for the balance, which also
tells whether the account exists; the amount — a preset within the limits or typed (the money
parser's rules) — and then the pay step every payment ends in (`PaySG`, a TOPUP payable)."""

from __future__ import annotations

from typing import Any

from aiogram import F
from aiogram.enums import ContentType
from aiogram.types import CallbackQuery, Message
from aiogram_dialog import Dialog, DialogManager, Window
from aiogram_dialog.widgets.input import MessageInput
from aiogram_dialog.widgets.kbd import Button, Cancel, Group, Select, SwitchTo
from aiogram_dialog.widgets.text import Format
from markupsafe import Markup

from domain.errors import DomainError
from domain.money import format_rub, has_foreign_digit
from domain.payable import Payable
from domain.topups import (
    AccountProblem,
    AmountProblem,
    Closed,
    ServiceInfo,
    TopupLimits,
    TopupRefused,
    TopupService,
    UnknownTopupAccount,
    check_account,
    closed,
    parse_topup_amount,
    presets,
    shown_account,
    topup_balance,
    topup_services,
)
from handlers.buttons import by_ref, item_ref
from handlers.context import context_of
from handlers.payments import pay_data
from handlers.ports import Texts
from handlers.states import PaySG, TopupSG
from handlers.texts import button_int, error_text
from handlers.widgets import HintOnText, Html, Tr, body, one_per_row

ASK_KEYS = {TopupService.TROIKA: "topup-ask-troika", TopupService.PARKING: "topup-ask-parking"}
OWN_KEYS = {TopupService.TROIKA: "topup-own-troika", TopupService.PARKING: "topup-own-parking"}
FOR_KEYS = {TopupService.TROIKA: "topup-for-troika", TopupService.PARKING: "topup-for-parking"}
LINE_KEYS = {TopupService.TROIKA: "topup-line-troika", TopupService.PARKING: "topup-line-parking"}
UNKNOWN_KEYS = {
    TopupService.TROIKA: "topup-unknown-troika",
    TopupService.PARKING: "topup-unknown-parking",
}
AMOUNT_KEYS = {
    AmountProblem.NOT_A_NUMBER: "topup-not-a-number",
    AmountProblem.GROUPING: "error-amount-grouping",
    AmountProblem.DIGITS: "input-foreign-digits",
    AmountProblem.TOO_SMALL: "topup-too-small",
    AmountProblem.TOO_LARGE: "topup-too-large",
    AmountProblem.OVER_BALANCE: "topup-over-balance",
}


def _bad_account_key(service: TopupService, problem: AccountProblem) -> str:
    if problem is AccountProblem.DIGITS:
        return "input-foreign-digits"
    if service is TopupService.PARKING:
        return "topup-bad-phone"
    return "topup-bad-troika-range" if problem is AccountProblem.RANGE else "topup-bad-troika"


# ---------------------------------------------------------------- dialog data


def _keep(service: ServiceInfo) -> dict[str, Any]:
    limits = service.limits
    return {
        "min": limits.min_amount,
        "max": limits.max_amount,
        "ceiling": limits.max_balance,
        "own": list(service.own_accounts),
    }


def _service(manager: DialogManager) -> TopupService:
    return TopupService(manager.dialog_data["service"])


def _info(manager: DialogManager) -> dict[str, Any]:
    info: dict[str, Any] = manager.dialog_data["services"][manager.dialog_data["service"]]
    return info


def _limits(manager: DialogManager) -> TopupLimits:
    info = _info(manager)
    return TopupLimits(int(info["min"]), int(info["max"]), info["ceiling"])


# ---------------------------------------------------------------- the service


async def services_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = context_of(dialog_manager)
    try:
        services = await topup_services(*ctx.acting)
    except DomainError as error:
        return {"error": error_text(ctx.tr, error), "troika": False, "parking": False}
    dialog_manager.dialog_data["services"] = {s.code.value: _keep(s) for s in services}
    codes = {s.code for s in services}
    return {
        "error": "" if codes else ctx.tr("topup-none"),
        "troika": TopupService.TROIKA in codes,
        "parking": TopupService.PARKING in codes,
    }


async def on_service(callback: CallbackQuery, button: Button, manager: DialogManager) -> None:
    if button.widget_id not in manager.dialog_data.get("services", {}):
        await callback.answer(context_of(manager).tr.label("error-forged-button"))
        return
    manager.dialog_data["service"] = button.widget_id
    await manager.switch_to(TopupSG.account)


# ---------------------------------------------------------------- the account


async def account_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = context_of(dialog_manager)
    service = _service(dialog_manager)
    own: list[str] = _info(dialog_manager)["own"]
    lines = [ctx.tr(ASK_KEYS[service])]
    if own:
        lines.append(ctx.tr(OWN_KEYS[service]))
    return {
        "text": Markup("\n\n").join(lines),
        "own": [(item_ref(a), shown_account(service, a)) for a in own],
    }


async def on_own_account(
    callback: CallbackQuery, _w: Any, manager: DialogManager, item_id: str
) -> None:
    """One of the profile's accounts (its reference among those shown)."""
    account = by_ref(_info(manager)["own"], item_id, str)
    if account is None:
        await callback.answer(context_of(manager).tr.label("error-forged-button"))
        return
    answer = await _choose(manager, account)
    if answer is not None and callback.message is not None:
        await callback.message.answer(answer)


async def on_account_text(message: Message, _w: MessageInput, manager: DialogManager) -> None:
    ctx = context_of(manager)
    service = _service(manager)
    checked = check_account(service, message.text or "")
    if isinstance(checked, AccountProblem):
        await message.answer(ctx.tr(_bad_account_key(service, checked)))
        return  # the resident stays in the step and types again
    answer = await _choose(manager, checked)
    if answer is not None:
        await message.answer(answer)


async def _choose(manager: DialogManager, account: str) -> Markup | None:
    """Ask the platform for the account's balance; on to the amount, or the sentence that
    says why not (the resident stays where they are)."""
    ctx = context_of(manager)
    service = _service(manager)
    try:
        balance = await topup_balance(*ctx.acting, service, account)
    except UnknownTopupAccount:
        return ctx.tr(UNKNOWN_KEYS[service], account=shown_account(service, account))
    except TopupRefused:
        return ctx.tr(_bad_account_key(service, AccountProblem.FORMAT))
    except DomainError as error:
        return error_text(ctx.tr, error)
    manager.dialog_data["account"] = account
    manager.dialog_data["balance"] = balance.balance
    await manager.switch_to(TopupSG.amount)
    return None


# ---------------------------------------------------------------- the amount


def _closed_text(
    tr: Texts, limits: TopupLimits, balance: int | None, ceiling: int
) -> Markup | None:
    """Why no amount can be paid now, in the resident's words (None: some amount can)."""
    reason = closed(limits, balance, ceiling)
    if reason is None:
        return None
    if reason is Closed.FULL and limits.max_balance is not None:
        return tr("topup-full", ceiling=format_rub(limits.max_balance))
    if reason is Closed.CEILING:
        return tr("topup-over-ceiling", min=format_rub(limits.min_amount), max=format_rub(ceiling))
    return tr("topup-closed")


async def amount_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = context_of(dialog_manager)
    data = dialog_manager.dialog_data
    service, limits, balance = _service(dialog_manager), _limits(dialog_manager), data["balance"]
    ceiling = ctx.limits.payment
    lines = [ctx.tr(FOR_KEYS[service], account=shown_account(service, data["account"]))]
    if balance is not None:
        lines.append(ctx.tr("topup-balance", balance=format_rub(balance)))
    elif service is TopupService.TROIKA:
        lines.append(ctx.tr("topup-balance-hidden"))
    most = min(limits.max_amount, ceiling)
    shut = _closed_text(ctx.tr, limits, balance, ceiling)
    open_ = shut is None
    if shut is not None:
        lines.append(shut)
    else:
        lines.append(
            ctx.tr("topup-limits", min=format_rub(limits.min_amount), max=format_rub(most))
        )
        if limits.max_balance is not None and balance is not None:
            lines.append(
                ctx.tr(
                    "topup-ceiling",
                    ceiling=format_rub(limits.max_balance),
                    room=format_rub(limits.most(balance)),
                )
            )
        lines.append(Markup(""))
        lines.append(ctx.tr("topup-ask-amount"))
    amounts = presets(service, limits, balance, ceiling) if open_ else []
    return {
        "text": Markup("\n").join(lines),
        "amounts": [(str(a), ctx.tr.label("topup-amount", amount=format_rub(a))) for a in amounts],
        "open": open_,
    }


async def on_preset(callback: CallbackQuery, _w: Any, manager: DialogManager, amount: str) -> None:
    ctx = context_of(manager)
    value = button_int(amount)
    limits, balance = _limits(manager), manager.dialog_data["balance"]
    if value is None or value not in presets(
        _service(manager), limits, balance, ctx.limits.payment
    ):
        await callback.answer(ctx.tr.label("error-forged-button"))  # forged or no longer fits
        return
    await _pay(manager, value)


async def on_amount_text(message: Message, _w: MessageInput, manager: DialogManager) -> None:
    ctx = context_of(manager)
    text = message.text or ""
    limits, balance = _limits(manager), manager.dialog_data["balance"]
    shut = _closed_text(ctx.tr, limits, balance, ctx.limits.payment)
    if shut is not None:
        await message.answer(shut)
        return
    if has_foreign_digit(text):
        await message.answer(ctx.tr("input-foreign-digits"))
        return
    amount = parse_topup_amount(text, limits, balance, ctx.limits.payment)
    if isinstance(amount, AmountProblem):
        most = min(limits.max_amount, ctx.limits.payment)  # one payment's maximum
        if amount is AmountProblem.OVER_BALANCE:
            most = min(most, limits.most(balance))  # the room left in the wallet
        await message.answer(
            ctx.tr(
                AMOUNT_KEYS[amount],
                min=format_rub(limits.min_amount),
                max=format_rub(max(most, 0)),
            )
        )
        return  # the resident stays in the amount step and types again
    await _pay(manager, amount)


async def _pay(manager: DialogManager, amount: int) -> None:
    ctx = context_of(manager)
    service, account = _service(manager), manager.dialog_data["account"]
    line = ctx.tr.label(LINE_KEYS[service], account=shown_account(service, account))
    await manager.start(
        PaySG.confirm,
        data=pay_data(Payable.top_up(service.value, account), amount, topup_line=line),
    )


def history_line_key(service: str) -> str | None:
    """How «История платежей» names a top-up without a receipt (None: not a service we know)."""
    if service == TopupService.TROIKA:
        return "history-topup-troika"
    if service == TopupService.PARKING:
        return "history-topup-parking"
    if service == TopupService.MGTS:  # a fixed-amount autopay of МГТС (not in this menu)
        return "history-topup-mgts"
    return None


def build_dialog() -> Dialog:
    return Dialog(
        Window(
            Tr("topup-title"),
            Html("{error}", when=F["error"]),
            Button(
                Tr("topup-troika"),
                id=TopupService.TROIKA.value,
                on_click=on_service,
                when=F["troika"],
            ),
            Button(
                Tr("topup-parking"),
                id=TopupService.PARKING.value,
                on_click=on_service,
                when=F["parking"],
            ),
            Cancel(Tr("nav-back")),
            HintOnText(),
            getter=services_getter,
            state=TopupSG.service,
        ),
        Window(
            *body("text", "topups_text_1"),
            one_per_row(
                Select(
                    Format("{item[1]}"),
                    id="own",
                    item_id_getter=lambda i: i[0],
                    items="own",
                    on_click=on_own_account,
                ),
                id="own_list",
            ),
            MessageInput(on_account_text, content_types=ContentType.TEXT),
            SwitchTo(Tr("nav-back"), id="back", state=TopupSG.service),
            getter=account_getter,
            state=TopupSG.account,
        ),
        Window(
            *body("text", "topups_text_2"),
            Group(
                Select(
                    Format("{item[1]}"),
                    id="amount",
                    item_id_getter=lambda i: i[0],
                    items="amounts",
                    on_click=on_preset,
                ),
                width=2,
            ),
            MessageInput(on_amount_text, content_types=ContentType.TEXT),
            SwitchTo(Tr("nav-back"), id="back", state=TopupSG.account),
            getter=amount_getter,
            state=TopupSG.amount,
        ),
        name="topups",
    )
