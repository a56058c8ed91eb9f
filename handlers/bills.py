"""«Мои счета»: unpaid bills earliest due first, five to a page; pick some or pay them all;
a bill's card with its details. Under the bills, as on mos.ru, a short «Благотворительность»
block: the funds the resident helped, each with «Помочь ещё раз» (the same pay step as the
charity menu's), and «Все фонды». The block is best-effort: a charity endpoint that fails
leaves it out (the bills still show), and so does one slower than `CHARITY_WAIT`."""

from __future__ import annotations

import asyncio
from typing import Any

from aiogram import F
from aiogram.types import CallbackQuery
from aiogram_dialog import Data, Dialog, DialogManager, Window
from aiogram_dialog.widgets.kbd import (
    Button,
    Cancel,
    Column,
    Multiselect,
    Row,
    Select,
    Start,
    SwitchTo,
)
from aiogram_dialog.widgets.text import Format
from markupsafe import Markup

from domain.bills import Bill, unpaid_bills
from domain.charity import PastDonation, past_donations
from domain.errors import DomainError, RelinkRequired
from domain.money import format_rub
from domain.payable import Payable
from handlers.buttons import by_ref, item_ref
from handlers.context import context_of
from handlers.payments import Ctx, pay_bills, pay_data
from handlers.ports import Texts
from handlers.states import BillsSG, CharitySG, PaySG
from handlers.texts import MOSCOW, error_text, format_date, shorten
from handlers.widgets import (
    CurrentPage,
    HintOnText,
    Html,
    NextPage,
    PrevPage,
    ScrollingGroup,
    Tr,
    body,
    one_per_row,
)

PAGE_SIZE = 5
PICKED = "picked"
REFS = "refs"  # dialog data: a bill's button reference → its id, for the bills last shown


# What a bill's button carries instead of its id (`handlers.buttons.item_ref`): a position
# would move when a bill is paid between two taps, and a pick kept by the Multiselect would
# then name another bill.
bill_ref = item_ref


HELPED_SHOWN = 3  # funds under the bills, the latest first («Вы помогали» in charity has all)
HELPED = "helped"  # dialog data: [fund id, fund name] pairs, asked once per visit of the list
# Seconds the charity block may add to «Мои счета» (after the bills, on the same unit of work):
# a slower donations endpoint leaves the block out for this visit instead of holding the list
# for the city's whole deadline.
CHARITY_WAIT = 1.5
# UTF-16 units of a fund's name in the block and on its button (then «…»): three names never
# push a page of bills past one message (Telegram's 4,096), whatever the platform sends.
FUND_NAME_SHOWN = 60


async def _bills(ctx: Ctx) -> list[Bill]:
    """The resident's unpaid bills. A city that refuses our tokens has made us forget them
    (domain.sessions): the rest of this update sees nobody linked."""
    try:
        return await unpaid_bills(ctx.uow, ctx.city, ctx.city, ctx.linked)
    except RelinkRequired:
        ctx.manager.middleware_data["resident"] = None
        raise
    finally:
        await ctx.uow.commit()  # a refreshed token is kept


def _line(tr: Texts, bill: Bill, number: int, today: Any) -> Markup:
    key = "bills-item-overdue" if bill.is_overdue(today) else "bills-item"
    text = tr(
        key,
        title=bill.title,
        provider=bill.provider,
        amount=format_rub(bill.amount),
        due=format_date(bill.due_date),
    )
    return Markup("{}. {}").format(number, text)


async def bills_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = Ctx(dialog_manager)
    try:
        bills = await _bills(ctx)
    except DomainError as error:
        return {"error": error_text(ctx.tr, error), "has_bills": False, "empty": False, "bills": []}
    today = ctx.clock().astimezone(MOSCOW).date()
    page = await dialog_manager.find("bills_page").get_page()  # type: ignore[union-attr]
    page = min(page, max(0, (len(bills) - 1) // PAGE_SIZE))
    start = page * PAGE_SIZE
    shown = bills[start : start + PAGE_SIZE]
    picked_widget = dialog_manager.find(PICKED)
    refs = {bill_ref(bill.id): bill.id for bill in bills}
    picked = set(picked_widget.get_checked()) & set(refs)  # type: ignore[union-attr]
    dialog_manager.dialog_data["all_ids"] = [bill.id for bill in bills]
    dialog_manager.dialog_data[REFS] = refs
    return {
        "text": Markup("\n\n").join(
            _line(ctx.tr, b, start + n, today) for n, b in enumerate(shown, 1)
        ),
        "bills": [
            (bill_ref(bill.id), f"{n}. {bill.title} · {format_rub(bill.amount)}")
            for n, bill in enumerate(bills, 1)
        ],
        "count": len(bills),
        "total": format_rub(sum(bill.amount for bill in bills)),
        "selected_count": len(picked),
        "has_selection": bool(picked),
        "has_bills": bool(bills),
        "paged": len(bills) > PAGE_SIZE,
        "empty": not bills,
        "error": "",
    }


async def _helped(manager: DialogManager) -> list[PastDonation]:
    """The funds the resident helped, the latest first; [] when the city cannot say now (a
    failing charity block never hides the bills)."""
    ctx = context_of(manager)
    if ctx.resident is None:
        return []
    try:
        # Not alongside the bills' call: both use the update's one unit of work.
        return (await asyncio.wait_for(past_donations(*ctx.acting), CHARITY_WAIT))[:HELPED_SHOWN]
    except RelinkRequired:
        manager.middleware_data["resident"] = None  # as `_bills`: the city made us forget them
        raise
    except (DomainError, TimeoutError):
        return []


async def list_getter(dialog_manager: DialogManager, **kwargs: Any) -> dict[str, Any]:
    """The bills (`bills_getter`) and the charity block under them. The funds are asked once
    per visit (kept in dialog data until a child dialog — a payment, the charity menu —
    returns), so picking bills and turning pages cost no charity call, and a failing charity
    endpoint is waited for once."""
    shown = await bills_getter(dialog_manager, **kwargs)
    data = dialog_manager.dialog_data
    if shown["error"]:
        helped: list[list[str]] = []
    elif HELPED in data:
        helped = data[HELPED]
    else:
        helped = data[HELPED] = [[d.fund_id, d.fund_name] for d in await _helped(dialog_manager)]
    tr = context_of(dialog_manager).tr
    names = [shorten(name, FUND_NAME_SHOWN) for _, name in helped]
    funds = Markup(", ").join(tr("bills-charity-fund", name=name) for name in names)
    shown["charity"] = tr("bills-charity", funds=funds) if helped else ""
    # A button carries the fund's `item_ref`, never the platform's id (no limit on its length
    # in the contract; Telegram refuses callback data over 64 bytes) nor a position.
    shown["helped"] = [
        (item_ref(fund_id), tr.label("bills-charity-again", name=name))
        for (fund_id, _), name in zip(helped, names, strict=True)
    ]
    return shown


async def on_help_again(
    callback: CallbackQuery, _w: Any, manager: DialogManager, item_id: str
) -> None:
    """«Помочь ещё раз» under the bills (its item: the fund's `item_ref` in the list shown): the
    fund's donation with the last amount, the same pay step as the charity menu's. Checked
    against the resident's own history: a forged button, or one of a fund no longer listed,
    gets the toast and starts nothing."""
    ctx = context_of(manager)
    found = by_ref(manager.dialog_data.get(HELPED, []), item_id, lambda pair: str(pair[0]))
    if found is None:
        await callback.answer(ctx.tr.label("error-forged-button"))
        return
    fund_id = found[0]
    last = {d.fund_id: d for d in await past_donations(*ctx.acting)}.get(fund_id)
    if last is None:
        await callback.answer(ctx.tr.label("error-forged-button"))
        return
    await manager.start(
        PaySG.confirm,
        data=pay_data(
            Payable.donation(last.fund_id), last.last_amount, fund_name=last.fund_name, back=True
        ),
    )


async def on_pay_selected(callback: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    picked = manager.find(PICKED).get_checked()  # type: ignore[union-attr]
    refs: dict[str, str] = manager.dialog_data.get(REFS, {})
    await pay_bills(manager, [refs[ref] for ref in picked if ref in refs], back=True)


async def on_pay_all(callback: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    await pay_bills(manager, manager.dialog_data.get("all_ids", []), back=True)


async def on_card(_c: CallbackQuery, _w: Any, manager: DialogManager, ref: str) -> None:
    # an unknown reference (forged, or from an older list) shows «счёт не найден» on the card
    manager.dialog_data["card"] = manager.dialog_data.get(REFS, {}).get(ref, "")
    await manager.switch_to(BillsSG.card)


async def card_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = Ctx(dialog_manager)
    try:
        bills = {bill.id: bill for bill in await _bills(ctx)}
    except DomainError as error:
        return {"text": error_text(ctx.tr, error), "payable": False}
    bill = bills.get(dialog_manager.dialog_data.get("card", ""))
    if bill is None:  # paid meanwhile, or an id that is not this resident's
        return {"text": ctx.tr("pay-unknown-bill"), "payable": False}
    tr = ctx.tr
    lines = [
        tr("bills-card", title=bill.title, provider=bill.provider,
           amount=format_rub(bill.amount), due=format_date(bill.due_date)),
    ]  # fmt: skip
    if bill.is_overdue(ctx.clock().astimezone(MOSCOW).date()):
        lines.append(tr("bills-card-overdue"))
    if bill.uin:
        lines.append(tr("bills-card-uin", uin=bill.uin))
    if bill.payer_code:
        lines.append(tr("bills-card-payer", payer_code=bill.payer_code, period=bill.period or ""))
    return {"text": Markup("\n").join(lines), "payable": True}


async def on_pay_card(callback: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    await pay_bills(manager, [manager.dialog_data["card"]], back=True)


async def on_paid(_start: Data, _result: Any, manager: DialogManager) -> None:
    """Back from paying: the picks are cleared and the list (fetched again by its getter) is
    shown — never the card of a bill that may have just been paid."""
    await manager.find(PICKED).reset_checked()  # type: ignore[union-attr]
    manager.dialog_data.pop(HELPED, None)  # a donation may have been made: ask again
    if isinstance(_result, dict) and _result.get("refresh"):
        await manager.switch_to(BillsSG.list)


def build_dialog() -> Dialog:
    return Dialog(
        Window(
            Tr("bills-title", when=F["has_bills"]),
            Html("{text}", when=F["has_bills"]),
            Tr("bills-pick-hint", when=F["has_bills"]),
            Tr("bills-empty", when=F["empty"]),
            Html("{error}", when=F["error"]),
            Html("{charity}", when=F["charity"]),
            ScrollingGroup(
                Multiselect(
                    Format("✅ {item[1]}"),
                    Format("{item[1]}"),
                    id=PICKED,
                    item_id_getter=lambda item: item[0],
                    items="bills",
                ),
                id="bills_page",
                width=1,
                height=PAGE_SIZE,
                hide_pager=True,
            ),
            Row(
                PrevPage(scroll="bills_page", text=Tr("pager-prev")),
                CurrentPage(scroll="bills_page", text=Format("{current_page1}/{pages}")),
                NextPage(scroll="bills_page", text=Tr("pager-next")),
                when=F["paged"],
            ),
            Button(
                Tr("bills-pay-selected"),
                id="pay_picked",
                on_click=on_pay_selected,
                when=F["has_selection"],
            ),
            Button(Tr("bills-pay-all"), id="pay_all", on_click=on_pay_all, when=F["has_bills"]),
            SwitchTo(Tr("bills-details"), id="details", state=BillsSG.pick, when=F["has_bills"]),
            one_per_row(
                Select(
                    Format("{item[1]}"),
                    id="help_again",
                    item_id_getter=lambda item: item[0],
                    items="helped",
                    on_click=on_help_again,
                ),
                id="help_again_list",
            ),
            Start(Tr("bills-charity-all"), id="all_funds", state=CharitySG.main),
            Cancel(Tr("nav-back")),
            HintOnText(),
            getter=list_getter,
            state=BillsSG.list,
        ),
        Window(
            Tr("bills-details-pick"),
            Column(
                Select(
                    Format("{item[1]}"),
                    id="card_pick",
                    item_id_getter=lambda item: item[0],
                    items="bills",
                    on_click=on_card,
                )
            ),
            SwitchTo(Tr("nav-back"), id="back", state=BillsSG.list),
            HintOnText(),
            getter=bills_getter,
            state=BillsSG.pick,
        ),
        Window(
            *body("text", "bills_text_1"),
            Button(Tr("bills-card-pay"), id="pay_one", on_click=on_pay_card, when=F["payable"]),
            SwitchTo(Tr("nav-back"), id="back", state=BillsSG.list),
            HintOnText(),
            getter=card_getter,
            state=BillsSG.card,
        ),
        on_process_result=on_paid,
        name="bills",
    )
