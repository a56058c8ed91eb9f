"""«Баллы»: the balance with Russian plurals, recent history, «Как заработать сейчас» that
depends on the date and the resident, and «Перевести баллы в фонд» with a confirmation."""

from __future__ import annotations

from typing import Any

from aiogram.enums import ContentType
from aiogram.types import CallbackQuery, Message
from aiogram_dialog import Dialog, DialogManager, Window
from aiogram_dialog.widgets.input import MessageInput
from aiogram_dialog.widgets.kbd import Button, Cancel, ScrollingGroup, Select, Start, SwitchTo
from aiogram_dialog.widgets.text import Format
from markupsafe import Markup

from domain.charity import funds
from domain.errors import DomainError
from domain.meters import MeterKind, moscow_date, resident_meters
from domain.money import has_foreign_digit
from domain.payments import new_key
from domain.points import (
    InsufficientPoints,
    MeterState,
    PointsParseError,
    PointsProblem,
    TipKind,
    how_to_earn_now,
    parse_points,
    points_account,
    transfer_points,
)
from handlers.context import context_of
from handlers.states import MetersSG, PointsSG
from handlers.texts import error_key, format_date, format_datetime
from handlers.widgets import HintOnText, Tr, body


async def main_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = context_of(dialog_manager)
    tr = ctx.tr
    try:
        account = await points_account(*ctx.acting)
    except DomainError as error:
        return {"text": tr(error_key(error))}
    dialog_manager.dialog_data["balance"] = account.balance
    lines = [tr("points-balance", balance=account.balance)]
    if account.pending_total:
        lines.append(tr("points-pending", pending=account.pending_total))
    lines.append(Markup())
    if account.entries:
        lines.append(tr("points-history-title"))
        lines += [
            tr(
                "points-entry",
                date=format_datetime(entry.created_at),
                amount=f"{entry.amount:+d}",
                reason=entry.reason,
            )
            for entry in account.entries
        ]
    else:
        lines.append(tr("points-empty-history"))
    return {"text": Markup("\n").join(lines)}


async def earn_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = context_of(dialog_manager)
    tr = ctx.tr
    try:
        meters = await resident_meters(*ctx.acting)
    except DomainError as error:
        return {"text": tr(error_key(error)), "has_meters": False}
    states = [MeterState(MeterKind(m.kind), m.submitted_this_period) for m in meters]
    today = moscow_date(ctx.now)
    lines = []
    for tip in how_to_earn_now(today, ctx.linked.account_level, states):
        if tip.kind is TipKind.READINGS_NOW and tip.until is not None:
            lines.append(
                tr("points-earn-readings", meters=tip.meters, points=tip.points,
                   until=format_date(tip.until))
            )  # fmt: skip
        elif tip.kind is TipKind.READINGS_LATER and tip.opens_on is not None:
            lines.append(tr("points-earn-readings-later", opens_on=format_date(tip.opens_on)))
        elif tip.kind is TipKind.EPD_CASHBACK:
            lines.append(tr("points-earn-epd", points=tip.points))
    return {"text": Markup("\n\n").join(lines), "has_meters": bool(meters)}


async def pick_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = context_of(dialog_manager)
    try:
        found = await funds(*ctx.acting, None)
    except DomainError as error:
        return {"text": ctx.tr(error_key(error)), "funds": []}
    dialog_manager.dialog_data["fund_names"] = {f.id: f.name for f in found}
    return {"text": ctx.tr("points-transfer-pick"), "funds": [(f.id, f.name) for f in found]}


async def on_fund(_c: CallbackQuery, _w: Any, manager: DialogManager, fund_id: str) -> None:
    name = manager.dialog_data.get("fund_names", {}).get(fund_id)
    if name is None:
        return  # not a fund we offered
    manager.dialog_data.update(fund=fund_id, fund_name=name)
    await manager.switch_to(PointsSG.amount)


async def amount_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = context_of(dialog_manager)
    data = dialog_manager.dialog_data
    balance = ctx.tr("points-count", count=data.get("balance", 0))
    return {"text": ctx.tr("points-transfer-ask", fund=data["fund_name"], balance=balance)}


async def on_amount(message: Message, _w: MessageInput, manager: DialogManager) -> None:
    """How many points: digits grouped in threes like every other number the bot asks for
    («1 500», «1 500 баллов»; `parse_points`), at most the balance."""
    ctx = context_of(manager)
    if has_foreign_digit(message.text or ""):
        await message.answer(ctx.tr("input-foreign-digits"))
        return  # nothing entered so far is lost: the step waits for the number again
    balance = manager.dialog_data.get("balance", 0)
    key = "points-transfer-bad"
    try:
        points = parse_points(message.text or "")
    except PointsParseError as error:
        points = None
        if error.reason is PointsProblem.GROUPING:
            key = "points-transfer-grouping"
    if points is None or points > balance:
        await message.answer(ctx.tr(key, balance=ctx.tr("points-count", count=balance)))
        return
    # One key per confirmation screen: pressing «Подтвердить» twice debits once.
    manager.dialog_data.update(points=points, key=new_key())
    await manager.switch_to(PointsSG.confirm)


async def confirm_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = context_of(dialog_manager)
    data = dialog_manager.dialog_data
    points = ctx.tr("points-count", count=data["points"])
    return {"text": ctx.tr("points-transfer-confirm", points=points, fund=data["fund_name"])}


async def on_confirm(callback: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    ctx = context_of(manager)
    data = manager.dialog_data
    try:
        transfer = await transfer_points(*ctx.acting, data["key"], data["fund"], data["points"])
    except InsufficientPoints as error:
        data["result"] = ctx.tr(
            "points-transfer-insufficient", balance=ctx.tr("points-count", count=error.balance)
        )
    except DomainError as error:
        data["result"] = ctx.tr(error_key(error))
    else:
        data["result"] = ctx.tr(
            "points-transfer-done",
            fund=transfer.fund_name,
            points=ctx.tr("points-count", count=transfer.points),
            balance=ctx.tr("points-count", count=transfer.balance),
        )
    await manager.switch_to(PointsSG.done)


async def done_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    return {"text": Markup(dialog_manager.dialog_data.get("result", ""))}  # a tr text


def build_dialog() -> Dialog:
    return Dialog(
        Window(
            *body("text", "points_text_1"),
            SwitchTo(Tr("points-earn"), id="earn", state=PointsSG.earn),
            SwitchTo(Tr("points-transfer"), id="transfer", state=PointsSG.pick_fund),
            Cancel(Tr("nav-back")),
            HintOnText(),
            getter=main_getter,
            state=PointsSG.main,
        ),
        Window(
            *body("text", "points_text_2"),
            Start(Tr("points-earn-send"), id="meters", state=MetersSG.list),
            SwitchTo(Tr("nav-back"), id="back", state=PointsSG.main),
            HintOnText(),
            getter=earn_getter,
            state=PointsSG.earn,
        ),
        Window(
            *body("text", "points_text_3"),
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
                height=6,
                hide_on_single_page=True,
            ),
            SwitchTo(Tr("nav-back"), id="back", state=PointsSG.main),
            HintOnText(),
            getter=pick_getter,
            state=PointsSG.pick_fund,
        ),
        Window(
            *body("text", "points_text_4"),
            MessageInput(on_amount, content_types=ContentType.TEXT),
            SwitchTo(Tr("nav-back"), id="back", state=PointsSG.pick_fund),
            getter=amount_getter,
            state=PointsSG.amount,
        ),
        Window(
            *body("text", "points_text_5"),
            Button(Tr("points-transfer-yes"), id="yes", on_click=on_confirm),
            SwitchTo(Tr("pay-cancel"), id="no", state=PointsSG.main),
            HintOnText(),
            getter=confirm_getter,
            state=PointsSG.confirm,
        ),
        Window(
            *body("text", "points_text_6"),
            SwitchTo(Tr("nav-back"), id="back", state=PointsSG.main),
            HintOnText(),
            getter=done_getter,
            state=PointsSG.done,
        ),
        name="points",
    )
