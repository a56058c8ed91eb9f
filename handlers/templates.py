"""«Шаблоны»: payment templates (domain/templates.py).

Saving: the pay step's result screen offers «Сохранить как шаблон» after a payment that can be
repeated (`TemplatesSG.save`): a proposed name as a button, or a name typed (plain text, at
most 64 characters, escaped wherever shown).

Paying: «Шаблоны» lists the templates (paged); a tap checks that the payee still takes
payments — the service's bill unpaid *now*, the fund still at the platform — and opens the pay
step's confirmation with the amount (the current bill's, or the last one), «Оплатить» and, for
a template with an amount of its own, «Изменить сумму». So a template is paid in two taps from
the list: the template, then «Оплатить» (three from the main menu, «Шаблоны» first). A payee
that stopped taking payments is told instead, with «Удалить шаблон».

«Переименовать или удалить» lists them again for the template's card (rename; delete after a
confirmation). Every button over a template carries `item_ref` of its id, looked up among the
ids of the list drawn last; a forged one, or a template gone meanwhile, gets a toast."""

from __future__ import annotations

from typing import Any

from aiogram import F
from aiogram.enums import ContentType
from aiogram.types import CallbackQuery, Message
from aiogram_dialog import Data, Dialog, DialogManager, ShowMode, StartMode, Window
from aiogram_dialog.widgets.input import MessageInput
from aiogram_dialog.widgets.kbd import Button, Cancel, Select, SwitchTo
from aiogram_dialog.widgets.text import Format
from markupsafe import Markup

from domain.bills import BillKind
from domain.charity import DonationProblem, parse_donation
from domain.errors import DomainError
from domain.money import MoneyParseError, format_rub, has_foreign_digit, parse_rub
from domain.payable import Payable, PayableKind
from domain.payments import own_intent
from domain.templates import (
    MAX_TEMPLATES,
    NAME_MAX,
    NameProblem,
    NoBillNow,
    NotTemplatable,
    PayeeGone,
    PaymentTemplate,
    TemplateNotFound,
    TemplateUnreadable,
    TooManyTemplates,
    clean_name,
    delete_template,
    proposed_name,
    remember_amount,
    rename_template,
    save_template,
    template_of,
    template_payment,
    template_target,
    templates,
)
from domain.topups import (
    AmountProblem,
    TopupRefused,
    TopupService,
    UnknownTopupAccount,
    can_top_up,
    parse_topup_amount,
    service_of,
    topup_balance,
    topup_services,
)
from handlers.buttons import by_ref, item_ref
from handlers.context import ResidentContext, context_of
from handlers.payments import money_error_key, pay_data
from handlers.ports import Texts
from handlers.states import MenuSG, PaySG, TemplatesSG
from handlers.texts import error_text
from handlers.topups import AMOUNT_KEYS as TOPUP_AMOUNT_KEYS
from handlers.widgets import HintOnText, Html, ScrollingGroup, Tr, body

PAGE = 8
SERVICE_KEYS = {
    BillKind.EPD: "templates-service-epd",
    BillKind.MGTS: "templates-service-mgts",
    BillKind.KINDERGARTEN: "templates-service-kindergarten",
    BillKind.CLUB: "templates-service-club",
}
NAME_KEYS = {NameProblem.EMPTY: "templates-name-empty", NameProblem.TOO_LONG: "templates-name-long"}
DONATION_KEYS = {
    DonationProblem.NOT_A_NUMBER: "templates-amount-bad",
    DonationProblem.TOO_SMALL: "charity-too-small",
    DonationProblem.TOO_LARGE: "charity-too-large",
    DonationProblem.GROUPING: "error-amount-grouping",
}


def _service(tr: Texts, template: PaymentTemplate) -> str:
    kind = template.bill_kind
    return tr.label(SERVICE_KEYS.get(kind, "templates-service-other")) if kind else ""


def _payee(template: PaymentTemplate) -> str:
    """The payee's name as kept (a fund, requisites' payee); "" for other kinds."""
    if template.kind is PayableKind.DONATION:
        return template.display.get("fund_name") or template.name
    if template.kind is PayableKind.REQUISITES:
        return str(template.target.get("requisites", {}).get("payee_name") or "")
    return ""


def _label(tr: Texts, template: PaymentTemplate) -> str:
    """A template's button: its name and what it pays."""
    if not template.readable:
        return tr.label("templates-button-unreadable", name=template.name)
    if template.amount is None:
        return tr.label("templates-button-bill", name=template.name)
    return tr.label("templates-button", name=template.name, amount=format_rub(template.amount))


def _what(tr: Texts, template: PaymentTemplate) -> Markup:
    amount = format_rub(template.amount) if template.amount is not None else ""
    if not template.readable:
        return tr("templates-what-unreadable")
    if template.kind is PayableKind.BILLS:
        if template.payer_code:
            service, code = _service(tr, template), template.payer_code
            return tr("templates-what-bill", service=service, code=code)
        provider = template.provider or ""
        return tr("templates-what-bill-nocode", service=_service(tr, template), provider=provider)
    if template.kind is PayableKind.DONATION:
        return tr("templates-what-donation", fund=_payee(template), amount=amount)
    if template.kind is PayableKind.REQUISITES:
        return tr("templates-what-requisites", payee=_payee(template), amount=amount)
    shown = next((v for v in template.display.values() if v), "")
    if shown:
        return tr("templates-what-display", what=shown, amount=amount)
    return tr("templates-what-other", amount=amount)


# ---------------------------------------------------------------- the list and paying


async def list_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = context_of(dialog_manager)
    kept = await templates(ctx.uow, ctx.linked)
    dialog_manager.dialog_data["template_ids"] = [str(t.id) for t in kept]
    items = [(item_ref(str(t.id)), _label(ctx.tr, t)) for t in kept]
    text = ctx.tr("templates-title") if kept else ctx.tr("templates-empty")
    return {"text": text, "templates": items, "any": bool(kept)}


async def _picked(
    callback: CallbackQuery, manager: DialogManager, ref: str
) -> tuple[ResidentContext, PaymentTemplate] | None:
    """The template whose button was tapped: among the ids of the list drawn last and still
    the resident's; None (the toast told) for a forged button or a template gone."""
    ctx = context_of(manager)
    shown: list[str] = manager.dialog_data.get("template_ids", [])
    template_id = by_ref(shown, ref, str)
    if template_id is None:
        await callback.answer(ctx.tr.label("error-forged-button"))
        return None
    try:
        template = await template_of(ctx.uow, ctx.linked, int(template_id))
    except TemplateNotFound:
        await callback.answer(ctx.tr.label("templates-gone"))
        return None
    return ctx, template


async def on_template(
    callback: CallbackQuery, _w: Any, manager: DialogManager, item_id: str
) -> None:
    """Tap one: its payee checked, then the pay step's confirmation (the first of two taps)."""
    picked = await _picked(callback, manager, item_id)
    if picked is None:
        return
    ctx, template = picked
    manager.dialog_data["template_id"] = template.id
    try:
        payment = await template_payment(ctx.uow, ctx.city, ctx.linked, template)
    except DomainError as error:
        await _stale(manager, *_unpayable(ctx.tr, template, error))
        return
    provider = payment.bill.provider if payment.bill is not None else None
    await _pay(manager, ctx, template, payment.payable, payment.amount, provider)


def _unpayable(tr: Texts, template: PaymentTemplate, error: DomainError) -> tuple[Markup, bool]:
    """What the resident reads when the template cannot be paid now, and whether that is for
    good (then «Удалить шаблон» is offered): the same on a tap and at «Изменить сумму»."""
    if isinstance(error, TemplateUnreadable):
        return tr("templates-unreadable"), True
    if isinstance(error, NoBillNow):
        return tr("templates-no-bill", service=_service(tr, template)), True
    if isinstance(error, PayeeGone):
        return tr("templates-fund-gone", fund=_payee(template)), True
    if isinstance(error, UnknownTopupAccount | TopupRefused):  # the card or number closed
        return tr("templates-topup-account-gone"), True
    return error_text(tr, error), False


async def _stale(
    manager: DialogManager, text: Markup, gone: bool = True, show_mode: ShowMode | None = None
) -> None:
    manager.dialog_data.update(stale=str(text), gone=gone)
    await manager.switch_to(TemplatesSG.stale, show_mode=show_mode)


async def _pay(
    manager: DialogManager,
    ctx: ResidentContext,
    template: PaymentTemplate,
    payable: Payable,
    amount: int | None,
    provider: str | None = None,
) -> None:
    """The pay step's confirmation; `provider`: the bill's, shown there (which kindergarten)."""
    if provider:
        note = ctx.tr("templates-paying-bill", name=template.name, provider=provider)
    else:
        note = ctx.tr("templates-paying", name=template.name)
    data = pay_data(
        payable,
        amount,
        **template.display,
        note=str(note),
        template_id=template.id,
        back=True,
    )
    await manager.start(PaySG.confirm, data=data)


async def on_pay_result(_start: Data, result: Any, manager: DialogManager) -> None:
    """Back from the pay step: «Изменить сумму» asks the amount; after «Готово» a payment
    that went through makes its amount the template's last one."""
    if manager.current_context().state not in (TemplatesSG.list, TemplatesSG.amount):
        return  # not a payment started here
    if isinstance(result, dict) and result.get("template_amount"):
        await manager.switch_to(TemplatesSG.amount)
        return
    await manager.switch_to(TemplatesSG.list)  # «Отмена», «Готово»: the list, drawn afresh
    template_id = manager.dialog_data.get("template_id")
    intent_id = result.get("intent_id") if isinstance(result, dict) else None
    if isinstance(template_id, int) and isinstance(intent_id, int):
        ctx = context_of(manager)
        intent = await own_intent(ctx.uow, ctx.linked, intent_id)
        await remember_amount(ctx.uow, ctx.linked, template_id, intent, ctx.now)
        await ctx.uow.commit()


async def stale_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    data = dialog_manager.dialog_data
    return {"text": Markup(data.get("stale", "")), "gone": bool(data.get("gone"))}


async def on_amount(message: Message, _w: MessageInput, manager: DialogManager) -> None:
    """«Изменить сумму»: a new amount for this payment (the template keeps it once paid)."""
    ctx = context_of(manager)
    text = message.text or ""
    if has_foreign_digit(text):
        await message.answer(ctx.tr("input-foreign-digits"))
        return
    try:
        template = await template_of(ctx.uow, ctx.linked, int(manager.dialog_data["template_id"]))
    except (TemplateNotFound, KeyError, TypeError, ValueError):
        await message.answer(ctx.tr("templates-gone"))
        await manager.switch_to(TemplatesSG.list, show_mode=ShowMode.SEND)
        return
    if not template.readable:
        await message.answer(ctx.tr("templates-unreadable"))
        return
    if template.kind is PayableKind.TOPUP:
        try:
            checked = await _topup_amount(ctx, template, text)
        except DomainError as error:
            await _unpayable_now(message, manager, ctx, template, error)
            return
        if isinstance(checked, Markup):
            await message.answer(checked)
            return
        amount = checked
    elif template.kind is PayableKind.DONATION:
        donation = parse_donation(text, ctx.limits.donation)
        if isinstance(donation, DonationProblem):
            ceiling = format_rub(ctx.limits.donation)
            await message.answer(ctx.tr(DONATION_KEYS[donation], ceiling=ceiling))
            return
        amount = donation
    else:
        try:
            amount = parse_rub(text)
        except MoneyParseError as error:
            await message.answer(ctx.tr(money_error_key(error, "templates-amount-bad")))
            return
        if amount <= 0:
            await message.answer(ctx.tr("templates-amount-bad"))
            return
        if amount > ctx.limits.payment:
            ceiling = format_rub(ctx.limits.payment)
            await message.answer(ctx.tr("error-amount-too-large", ceiling=ceiling))
            return
    try:
        payment = await template_payment(ctx.uow, ctx.city, ctx.linked, template)
    except DomainError as error:
        await _unpayable_now(message, manager, ctx, template, error)
        return
    manager.show_mode = ShowMode.SEND
    await _pay(manager, ctx, template, payment.payable, amount)


async def _unpayable_now(
    message: Message,
    manager: DialogManager,
    ctx: ResidentContext,
    template: PaymentTemplate,
    error: DomainError,
) -> None:
    """The template turned unpayable while its new amount was typed: said as a tap says it
    (with «Удалить шаблон» when for good); a passing failure (the city down) is said and the
    amount can be typed again."""
    text, gone = _unpayable(ctx.tr, template, error)
    if gone:
        await _stale(manager, text, gone, ShowMode.SEND)
    else:
        await message.answer(text)


async def _topup_amount(ctx: ResidentContext, template: PaymentTemplate, text: str) -> int | Markup:
    """A top-up template's new amount, checked as the top-up step checks it
    (`parse_topup_amount`: the service's limits, the room left in the wallet now, the
    operator's ceiling); or what the resident is told. Raises the city's DomainErrors (the
    account unknown now, the city down) for the caller to tell."""
    topup = Payable.from_json(template.target).topup
    assert topup is not None
    try:
        service = TopupService(topup.service)
        info = service_of(await topup_services(*ctx.acting), service)
        if info is None:
            return ctx.tr("templates-topup-gone")
        balance = (await topup_balance(*ctx.acting, service, topup.account)).balance
    except ValueError:
        return ctx.tr("templates-topup-gone")
    limits = info.limits
    if not can_top_up(limits, balance, ctx.limits.payment):
        return ctx.tr("topup-full", ceiling=format_rub(limits.max_balance or 0))
    amount = parse_topup_amount(text, limits, balance, ctx.limits.payment)
    if isinstance(amount, AmountProblem):
        most = min(limits.max_amount, ctx.limits.payment)
        if amount is AmountProblem.OVER_BALANCE:
            most = min(most, limits.most(balance))
        return ctx.tr(
            TOPUP_AMOUNT_KEYS[amount],
            min=format_rub(limits.min_amount),
            max=format_rub(max(most, 0)),
        )
    return amount


# ---------------------------------------------------------------- rename and delete


async def on_manage(callback: CallbackQuery, _w: Any, manager: DialogManager, item_id: str) -> None:
    picked = await _picked(callback, manager, item_id)
    if picked is not None:
        manager.dialog_data["template_id"] = picked[1].id
        await manager.switch_to(TemplatesSG.card)


async def _current(manager: DialogManager) -> PaymentTemplate | None:
    ctx = context_of(manager)
    template_id = manager.dialog_data.get("template_id")
    if not isinstance(template_id, int):
        return None
    try:
        return await template_of(ctx.uow, ctx.linked, template_id)
    except TemplateNotFound:
        return None


async def card_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    tr: Texts = context_of(dialog_manager).tr
    template = await _current(dialog_manager)
    if template is None:
        return {"text": tr("templates-gone"), "ok": False, "renamable": False, "name": ""}
    text = tr("templates-card", name=template.name, what=_what(tr, template))
    # one this version cannot read is only deleted
    return {"text": text, "ok": True, "renamable": template.readable, "name": template.name}


async def on_rename(message: Message, _w: MessageInput, manager: DialogManager) -> None:
    ctx = context_of(manager)
    name = clean_name(message.text or "")
    if isinstance(name, NameProblem):
        await message.answer(ctx.tr(NAME_KEYS[name], max=NAME_MAX))
        return
    template = await _current(manager)
    if template is None or template.id is None:
        await message.answer(ctx.tr("templates-gone"))
        await manager.switch_to(TemplatesSG.manage, show_mode=ShowMode.SEND)
        return
    await rename_template(ctx.uow, ctx.linked, template.id, name, ctx.now)
    await ctx.uow.commit()
    await message.answer(ctx.tr("templates-renamed", name=name))
    await manager.switch_to(TemplatesSG.card, show_mode=ShowMode.SEND)


async def on_delete(callback: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    """«Да, удалить»: deletes once; a second tap finds nothing and changes nothing."""
    ctx = context_of(manager)
    template_id = manager.dialog_data.get("template_id")
    deleted = isinstance(template_id, int) and await delete_template(
        ctx.uow, ctx.linked, template_id
    )
    await ctx.uow.commit()
    await callback.answer(ctx.tr.label("templates-deleted" if deleted else "templates-gone"))
    manager.dialog_data.pop("template_id", None)
    await manager.switch_to(TemplatesSG.list)


# ---------------------------------------------------------------- saving after a payment


def _proposal(tr: Texts, start: dict[str, Any], payable: Payable) -> str:
    """The name proposed for a template of what was just paid."""
    display: dict[str, Any] = start.get("display") or {}
    if payable.kind is PayableKind.BILLS:
        kind, code, provider = [*(start.get("bill") or []), None, None, None][:3]
        service = tr.label(SERVICE_KEYS.get(BillKind(kind), "templates-service-other"))
        if not code:  # the provider tells one kindergarten from another
            return proposed_name(service, provider)
        return proposed_name(tr.label("templates-name-bill", service=service, code=code))
    if payable.kind is PayableKind.DONATION:
        return proposed_name(str(display.get("fund_name") or ""))
    if payable.kind is PayableKind.REQUISITES and payable.requisites is not None:
        return proposed_name(payable.requisites.payee_name)
    shown = next((str(v) for v in display.values() if v), "")  # a new kind's own line
    return proposed_name(shown) or proposed_name(
        tr.label("templates-name-other", amount=format_rub(start["amount"]))
    )


def _new_template(manager: DialogManager, name: str) -> PaymentTemplate:
    """The template of the payment in the start data (built by payments.on_save_template);
    raises NotTemplatable, or KeyError/ValueError for anything else."""
    start: dict[str, Any] = manager.start_data or {}  # type: ignore[assignment]
    payable = Payable.from_json(start["payable"])
    kind, code, provider = [*(start.get("bill") or []), None, None, None][:3]
    target = template_target(payable, BillKind(kind) if kind else None, code, provider)
    amount = None if payable.kind is PayableKind.BILLS else int(start["amount"])
    display = {k: str(v) for k, v in (start.get("display") or {}).items()}
    return PaymentTemplate(0, name, payable.kind, target, amount, display)


async def save_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = context_of(dialog_manager)
    start: dict[str, Any] = dialog_manager.start_data or {}  # type: ignore[assignment]
    try:
        _new_template(dialog_manager, "-")
        proposal = _proposal(ctx.tr, start, Payable.from_json(start["payable"]))
    except (NotTemplatable, KeyError, TypeError, ValueError):
        return {"text": ctx.tr("templates-not-templatable"), "proposal": "", "ok": False}
    dialog_manager.dialog_data["proposal"] = proposal
    return {"text": ctx.tr("templates-save-ask", max=NAME_MAX), "proposal": proposal,
            "ok": bool(proposal)}  # fmt: skip


async def _save(manager: DialogManager, name: str) -> Markup:
    """Keeps the template; returns what the resident is told."""
    ctx = context_of(manager)
    try:
        template = _new_template(manager, name)
        kept, replaced = await save_template(ctx.uow, ctx.linked, template, ctx.now)
    except TooManyTemplates:
        return ctx.tr("templates-too-many", max=MAX_TEMPLATES)
    except (NotTemplatable, KeyError, TypeError, ValueError):
        return ctx.tr("templates-not-templatable")
    await ctx.uow.commit()
    return ctx.tr("templates-updated" if replaced else "templates-saved", name=kept.name)


async def on_save_proposed(_c: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    proposal = clean_name(manager.dialog_data.get("proposal", ""))
    if isinstance(proposal, NameProblem):
        return
    manager.dialog_data["saved"] = str(await _save(manager, proposal))
    await manager.switch_to(TemplatesSG.saved)


async def on_save_typed(message: Message, _w: MessageInput, manager: DialogManager) -> None:
    ctx = context_of(manager)
    name = clean_name(message.text or "")
    if isinstance(name, NameProblem):
        await message.answer(ctx.tr(NAME_KEYS[name], max=NAME_MAX))
        return
    manager.dialog_data["saved"] = str(await _save(manager, name))
    await manager.switch_to(TemplatesSG.saved, show_mode=ShowMode.SEND)


async def saved_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    return {"text": Markup(dialog_manager.dialog_data.get("saved", ""))}  # a tr text


async def on_to_menu(_c: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    await manager.start(MenuSG.main, mode=StartMode.RESET_STACK)


def _templates_group(select_id: str, on_click: Any) -> ScrollingGroup:
    return ScrollingGroup(
        Select(
            Format("{item[1]}"),
            id=select_id,
            item_id_getter=lambda i: i[0],
            items="templates",
            on_click=on_click,
        ),
        id=f"{select_id}_page",
        width=1,
        height=PAGE,
        hide_on_single_page=True,
    )


def build_dialog() -> Dialog:
    return Dialog(
        Window(
            *body("text", "templates_text_1"),
            _templates_group("tpl", on_template),
            SwitchTo(Tr("templates-manage"), id="manage", state=TemplatesSG.manage, when=F["any"]),
            Cancel(Tr("nav-back")),
            HintOnText(),
            getter=list_getter,
            state=TemplatesSG.list,
        ),
        Window(
            Tr("templates-manage-title"),
            _templates_group("mng", on_manage),
            SwitchTo(Tr("nav-back"), id="back", state=TemplatesSG.list),
            HintOnText(),
            getter=list_getter,
            state=TemplatesSG.manage,
        ),
        Window(
            *body("text", "templates_text_2"),
            SwitchTo(
                Tr("templates-rename"), id="rename", state=TemplatesSG.rename, when=F["renamable"]
            ),
            SwitchTo(Tr("templates-delete"), id="delete", state=TemplatesSG.delete, when=F["ok"]),
            SwitchTo(Tr("nav-back"), id="back", state=TemplatesSG.manage),
            HintOnText(),
            getter=card_getter,
            state=TemplatesSG.card,
        ),
        Window(
            Tr("templates-rename-ask"),
            MessageInput(on_rename, content_types=ContentType.TEXT),
            SwitchTo(Tr("nav-back"), id="back", state=TemplatesSG.card),
            getter=card_getter,
            state=TemplatesSG.rename,
        ),
        Window(
            Tr("templates-delete-ask"),
            Button(Tr("templates-delete-yes"), id="yes", on_click=on_delete, when=F["ok"]),
            SwitchTo(Tr("templates-delete-no"), id="no", state=TemplatesSG.card),
            HintOnText(),
            getter=card_getter,
            state=TemplatesSG.delete,
        ),
        Window(
            Html("{text}"),
            SwitchTo(
                Tr("templates-stale-delete"), id="del", state=TemplatesSG.delete, when=F["gone"]
            ),
            SwitchTo(Tr("nav-back"), id="back", state=TemplatesSG.list),
            HintOnText(),
            getter=stale_getter,
            state=TemplatesSG.stale,
        ),
        Window(
            Tr("templates-amount-ask"),
            MessageInput(on_amount, content_types=ContentType.TEXT),
            SwitchTo(Tr("nav-back"), id="back", state=TemplatesSG.list),
            state=TemplatesSG.amount,
        ),
        Window(
            Html("{text}"),
            Button(
                Tr("templates-save-proposed"),
                id="proposed",
                on_click=on_save_proposed,
                when=F["ok"],
            ),
            MessageInput(on_save_typed, content_types=ContentType.TEXT),
            Cancel(Tr("pay-cancel")),
            getter=save_getter,
            state=TemplatesSG.save,
        ),
        Window(
            Html("{text}"),
            Button(Tr("pay-done"), id="done", on_click=on_to_menu),
            HintOnText(),
            getter=saved_getter,
            state=TemplatesSG.saved,
        ),
        on_process_result=on_pay_result,
        name="templates",
    )
