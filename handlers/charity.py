"""«Благотворительность»: categories, «Все программы», funds five to a page, a fund's card,
amounts as buttons or «Другая сумма» (50 ₽ minimum), the pay step, «Вы помогали» with
«Помочь ещё раз».

The platform's ids (categories, funds) never go into a button: the contract sets no limit on
their length, and Telegram refuses a whole message whose button carries over 64 bytes. A list's
buttons carry the item's reference (`handlers.buttons.item_ref`), looked up among the ids of the
list drawn last, kept in dialog data: a tap on an older message names the item that button
showed (a position would name what is there now), and an item no longer in the list, or a
forged button, gets a toast and nothing is done."""

from __future__ import annotations

from typing import Any

from aiogram import F
from aiogram.enums import ContentType
from aiogram.types import CallbackQuery, Message
from aiogram_dialog import Dialog, DialogManager, ShowMode, Window
from aiogram_dialog.widgets.input import MessageInput
from aiogram_dialog.widgets.kbd import (
    Button,
    Cancel,
    Column,
    Group,
    Select,
    SwitchTo,
    Url,
)
from aiogram_dialog.widgets.text import Format
from markupsafe import Markup

from domain.charity import (
    PRESET_AMOUNTS,
    DonationProblem,
    fund,
    fund_categories,
    funds,
    parse_donation,
    past_donations,
)
from domain.errors import DomainError
from domain.money import format_rub, has_foreign_digit
from domain.payable import Payable
from handlers.buttons import by_ref, item_ref
from handlers.context import context_of
from handlers.payments import pay_data
from handlers.states import CharitySG, PaySG
from handlers.texts import button_int, error_text, format_datetime
from handlers.widgets import HintOnText, Html, ScrollingGroup, Tr, body, one_per_row

FUNDS_PAGE = 6
PROBLEM_KEYS = {
    DonationProblem.NOT_A_NUMBER: "charity-not-a-number",
    DonationProblem.TOO_SMALL: "charity-too-small",
    DonationProblem.TOO_LARGE: "charity-too-large",
    DonationProblem.GROUPING: "error-amount-grouping",
}


async def main_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = context_of(dialog_manager)
    try:
        categories = await fund_categories(*ctx.acting)
        helped = await past_donations(*ctx.acting)
    except DomainError as error:
        return {"error": error_text(ctx.tr, error), "categories": [], "helped": False}
    labels = [
        (item_ref(c.id), ctx.tr.label("charity-category", title=c.title, count=c.count))
        for c in categories
    ]
    dialog_manager.dialog_data["category_ids"] = [c.id for c in categories]
    dialog_manager.dialog_data["titles"] = {c.id: c.title for c in categories}
    return {"categories": labels, "helped": bool(helped), "error": ""}


def _shown(manager: DialogManager, key: str, ref: str) -> str | None:
    """The platform's id whose `item_ref` is `ref` in the list of ids kept under `key`; None
    for an id not in the list drawn last (forged, or no longer offered)."""
    shown: list[str] = manager.dialog_data.get(key, [])
    return by_ref(shown, ref, str)


async def _forged(callback: CallbackQuery, manager: DialogManager) -> None:
    await callback.answer(context_of(manager).tr.label("error-forged-button"))


async def on_category(
    callback: CallbackQuery, _w: Any, manager: DialogManager, item_id: str
) -> None:
    category = _shown(manager, "category_ids", item_id)
    if category is None:
        await _forged(callback, manager)
        return
    manager.dialog_data["category"] = category
    await manager.switch_to(CharitySG.funds)


async def on_all(_c: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    manager.dialog_data["category"] = None
    await manager.switch_to(CharitySG.funds)


async def funds_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = context_of(dialog_manager)
    category = dialog_manager.dialog_data.get("category")
    try:
        found = await funds(*ctx.acting, category)
    except DomainError as error:
        return {"title": error_text(ctx.tr, error), "funds": []}
    title = dialog_manager.dialog_data.get("titles", {}).get(category) or ctx.tr("charity-all")
    dialog_manager.dialog_data["fund_ids"] = [f.id for f in found]
    return {
        "title": ctx.tr("charity-funds", category=title),
        "funds": [(item_ref(f.id), f.name) for f in found],
    }


async def on_fund(callback: CallbackQuery, _w: Any, manager: DialogManager, item_id: str) -> None:
    fund_id = _shown(manager, "fund_ids", item_id)
    if fund_id is None:
        await _forged(callback, manager)
        return
    manager.dialog_data["fund"] = fund_id
    await manager.switch_to(CharitySG.fund)


async def fund_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = context_of(dialog_manager)
    try:
        card = await fund(*ctx.acting, dialog_manager.dialog_data["fund"])
    except DomainError as error:
        return {"text": error_text(ctx.tr, error), "amounts": [], "report_url": "", "ok": False}
    dialog_manager.dialog_data["fund_name"] = card.name
    text = ctx.tr(
        "charity-fund-card",
        name=card.name,
        description=card.description,
        programs=", ".join(card.programs),
    )
    return {
        "text": text,
        "amounts": [
            (str(a), ctx.tr.label("charity-amount", amount=format_rub(a))) for a in PRESET_AMOUNTS
        ],
        "report_url": card.report_url,
        "period": card.report_period,
        "ok": True,
    }


async def _donate(manager: DialogManager, amount: int) -> None:
    data = manager.dialog_data
    await manager.start(
        PaySG.confirm,
        data=pay_data(
            Payable.donation(data["fund"]), amount, fund_name=data.get("fund_name", ""), back=True
        ),
    )


async def on_amount(_c: CallbackQuery, _w: Any, manager: DialogManager, amount: str) -> None:
    value = button_int(amount)
    if value is not None and value in PRESET_AMOUNTS:  # a forged amount is ignored
        await _donate(manager, value)


async def on_other_amount(message: Message, _w: MessageInput, manager: DialogManager) -> None:
    ctx = context_of(manager)
    if has_foreign_digit(message.text or ""):
        await message.answer(ctx.tr("input-foreign-digits"))
        return  # nothing entered so far is lost: the step waits for the number again
    ceiling = ctx.limits.donation
    amount = parse_donation(message.text or "", ceiling)
    if isinstance(amount, DonationProblem):
        await message.answer(ctx.tr(PROBLEM_KEYS[amount], ceiling=format_rub(ceiling)))
        return  # the resident stays in the amount step and types again
    await _donate(manager, amount)


async def helped_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = context_of(dialog_manager)
    try:
        donations = await past_donations(*ctx.acting)
    except DomainError as error:
        return {"text": error_text(ctx.tr, error), "again": []}
    if not donations:  # e.g. the only fund helped has closed: the city lists it no more
        dialog_manager.dialog_data["helped_ids"] = []
        return {"text": ctx.tr("charity-helped-none"), "again": []}
    lines = [ctx.tr("charity-helped-title")] + [
        ctx.tr(
            "charity-helped-line",
            name=d.fund_name,
            amount=format_rub(d.last_amount),
            date=format_datetime(d.last_donated_at),
        )
        for d in donations
    ]
    again = [
        (
            item_ref(d.fund_id),
            f"{d.fund_name}: " + ctx.tr.label("charity-again", amount=format_rub(d.last_amount)),
        )
        for d in donations
    ]
    dialog_manager.dialog_data["helped_ids"] = [d.fund_id for d in donations]
    return {"text": Markup("\n").join(lines), "again": again}


async def on_again(callback: CallbackQuery, _w: Any, manager: DialogManager, item_id: str) -> None:
    """«Помочь ещё раз» (its item: the fund's `item_ref` in the list shown): the same fund, the
    last amount preselected — checked against the resident's own history, so a forged or
    outdated button repeats nothing."""
    ctx = context_of(manager)
    fund_id = _shown(manager, "helped_ids", item_id)
    if fund_id is None:
        await _forged(callback, manager)
        return
    donations = {d.fund_id: d for d in await past_donations(*ctx.acting)}
    last = donations.get(fund_id)
    if last is None:  # shown, and gone from the city's list since: the fund has closed
        await callback.answer()
        assert callback.message is not None
        await callback.message.answer(ctx.tr("charity-fund-closed"))
        manager.show_mode = ShowMode.SEND  # the list again, as it is now, below the answer
        return
    manager.dialog_data.update(fund=last.fund_id, fund_name=last.fund_name)
    await _donate(manager, last.last_amount)


def build_dialog() -> Dialog:
    return Dialog(
        Window(
            Tr("charity-title"),
            Html("{error}", when=F["error"]),
            one_per_row(
                Select(
                    Format("{item[1]}"),
                    id="cat",
                    item_id_getter=lambda i: i[0],
                    items="categories",
                    on_click=on_category,
                ),
                id="cat_list",
            ),
            Button(Tr("charity-all"), id="all", on_click=on_all),
            SwitchTo(Tr("charity-helped"), id="helped", state=CharitySG.helped, when=F["helped"]),
            Cancel(Tr("nav-back")),
            HintOnText(),
            getter=main_getter,
            state=CharitySG.main,
        ),
        Window(
            Html("{title}"),
            ScrollingGroup(
                Select(
                    Format("{item[1]}"),
                    id="fund",
                    item_id_getter=lambda i: i[0],
                    items="funds",
                    on_click=on_fund,
                ),
                id="funds_page",
                width=1,
                height=FUNDS_PAGE,
                hide_on_single_page=True,
            ),
            SwitchTo(Tr("nav-back"), id="back", state=CharitySG.main),
            HintOnText(),
            getter=funds_getter,
            state=CharitySG.funds,
        ),
        Window(
            *body("text", "charity_text_1"),
            Url(Tr("charity-report"), Format("{report_url}"), id="report", when=F["ok"]),
            Group(
                Select(
                    Format("{item[1]}"),
                    id="amount",
                    item_id_getter=lambda i: i[0],
                    items="amounts",
                    on_click=on_amount,
                ),
                width=3,
            ),
            SwitchTo(Tr("charity-other-amount"), id="other", state=CharitySG.amount, when=F["ok"]),
            SwitchTo(Tr("nav-back"), id="back", state=CharitySG.funds),
            HintOnText(),
            getter=fund_getter,
            state=CharitySG.fund,
        ),
        Window(
            Tr("charity-ask-amount"),
            MessageInput(on_other_amount, content_types=ContentType.TEXT),
            SwitchTo(Tr("nav-back"), id="back", state=CharitySG.fund),
            state=CharitySG.amount,
        ),
        Window(
            *body("text", "charity_text_2"),
            Column(
                Select(
                    Format("{item[1]}"),
                    id="again",
                    item_id_getter=lambda i: i[0],
                    items="again",
                    on_click=on_again,
                )
            ),
            SwitchTo(Tr("nav-back"), id="back", state=CharitySG.main),
            HintOnText(),
            getter=helped_getter,
            state=CharitySG.helped,
        ),
        name="charity",
    )
