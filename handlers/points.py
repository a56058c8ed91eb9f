"""«Баллы»: the balance with Russian plurals, recent history, «Как заработать сейчас» that
depends on the date and the resident, «Перевести баллы в фонд» with a confirmation, and
«Обменять»: prizes by category, a prize's card, the exchange (debited once: the key is made
when the confirmation is shown and kept until the platform's answer is known) and «Мои призы»."""

from __future__ import annotations

from typing import Any

from aiogram import F
from aiogram.enums import ContentType
from aiogram.types import CallbackQuery, Message
from aiogram_dialog import Dialog, DialogManager, Window
from aiogram_dialog.widgets.input import MessageInput
from aiogram_dialog.widgets.kbd import (
    Button,
    Cancel,
    Column,
    ScrollingGroup,
    Select,
    Start,
    SwitchTo,
)
from aiogram_dialog.widgets.text import Format
from markupsafe import Markup
from pydantic import TypeAdapter, ValidationError

from domain.charity import funds
from domain.errors import DomainError, NotFound
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
from domain.prizes import (
    PriceChanged,
    PrizeCategory,
    PrizeOutOfStock,
    exchange_prize,
    my_prizes,
    prize,
    prizes,
    shortfall,
)
from handlers.buttons import ButtonId
from handlers.context import ResidentContext, context_of
from handlers.states import MetersSG, PointsSG
from handlers.texts import error_key, format_date, format_datetime
from handlers.widgets import HintOnText, Tr, body

CATEGORY_KEYS = {
    PrizeCategory.SOUVENIRS: "prizes-category-souvenirs",
    PrizeCategory.HOME: "prizes-category-home",
    PrizeCategory.PROMO_CODES: "prizes-category-promo-codes",
    PrizeCategory.TICKETS: "prizes-category-tickets",
}
PRIZES_PAGE = 6
_PRIZE_ID: TypeAdapter[int] = TypeAdapter(ButtonId)


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


# ---------------------------------------------------------------- prizes for points


async def _forged(callback: CallbackQuery, manager: DialogManager) -> None:
    """A button we did not offer (a forged or mangled item id): a short toast, nothing done."""
    await callback.answer(context_of(manager).tr.label("error-forged-button"))


async def categories_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = context_of(dialog_manager)
    tr = ctx.tr
    try:
        account = await points_account(*ctx.acting)
    except DomainError as error:
        return {"text": tr(error_key(error)), "categories": []}
    dialog_manager.dialog_data["balance"] = account.balance
    return {
        "text": tr("prizes-categories", balance=tr("points-count", count=account.balance)),
        "categories": [(c.value, tr.label(key)) for c, key in CATEGORY_KEYS.items()],
    }


async def on_prize_category(
    callback: CallbackQuery, _w: Any, manager: DialogManager, item_id: str
) -> None:
    if item_id not in {c.value for c in PrizeCategory}:
        await _forged(callback, manager)
        return
    manager.dialog_data["prize_category"] = item_id
    await manager.switch_to(PointsSG.prizes)


def _price(ctx: ResidentContext, points: int) -> Markup:
    return ctx.tr("points-count", count=points)


async def prizes_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = context_of(dialog_manager)
    tr = ctx.tr
    category = PrizeCategory(dialog_manager.dialog_data["prize_category"])
    try:
        found = await prizes(*ctx.acting, category)
    except DomainError as error:
        return {"text": tr(error_key(error)), "prizes": []}
    dialog_manager.dialog_data["prize_ids"] = [p.id for p in found]
    title = tr.label(CATEGORY_KEYS[category])
    items = [
        (
            p.id,
            tr.label("prizes-item", name=p.name, price=_price(ctx, p.price))
            if p.available
            else tr.label("prizes-item-sold-out", name=p.name),
        )
        for p in found
    ]
    key = "prizes-list" if found else "prizes-list-empty"
    return {"text": tr(key, category=title), "prizes": items}


async def on_prize(callback: CallbackQuery, _w: Any, manager: DialogManager, item_id: str) -> None:
    """A prize of the list: its id must be a ButtonId and one of the prizes shown."""
    try:
        _PRIZE_ID.validate_python(item_id)
    except ValidationError:
        await _forged(callback, manager)
        return
    if item_id not in manager.dialog_data.get("prize_ids", []):
        await _forged(callback, manager)
        return
    manager.dialog_data["prize"] = item_id
    await manager.switch_to(PointsSG.prize)


async def prize_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = context_of(dialog_manager)
    tr = ctx.tr
    try:
        card = await prize(*ctx.acting, dialog_manager.dialog_data["prize"])
    except NotFound:
        return {"text": tr("prizes-unknown"), "can_exchange": False}
    except DomainError as error:
        return {"text": tr(error_key(error)), "can_exchange": False}
    lines = [
        tr("prizes-card", name=card.name, description=card.description,
           price=_price(ctx, card.price)),
    ]  # fmt: skip
    if not card.available:
        lines.append(tr("prizes-sold-out"))
    return {"text": Markup("\n\n").join(lines), "can_exchange": card.available}


async def on_take(callback: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    """«Обменять»: the prize and the balance are read again; not enough points → what is
    missing, nothing asked; else the confirmation with its key. A key whose exchange got no
    answer is kept for the same prize and price (pressing again cannot debit twice)."""
    ctx = context_of(manager)
    tr = ctx.tr
    data = manager.dialog_data
    try:
        card = await prize(*ctx.acting, data["prize"])
        account = await points_account(*ctx.acting)
    except NotFound:
        data["prize_result"] = tr("prizes-unknown")
        await manager.switch_to(PointsSG.prize_done)
        return
    except DomainError as error:
        data["prize_result"] = tr(error_key(error))
        await manager.switch_to(PointsSG.prize_done)
        return
    if not card.available:
        data["prize_result"] = tr("prizes-sold-out")
        await manager.switch_to(PointsSG.prize_done)
        return
    missing = shortfall(account.balance, card.price)
    if missing:
        data["prize_result"] = _not_enough(ctx, account.balance, card.price)
        await manager.switch_to(PointsSG.prize_done)
        return
    pending = data.get("prize_pending")
    if not (pending and pending["prize"] == card.id and pending["price"] == card.price):
        # One key per confirmation: pressing «Подтвердить» twice debits once.
        data["prize_pending"] = {"prize": card.id, "price": card.price, "key": new_key()}
    data["prize_name"] = card.name
    await manager.switch_to(PointsSG.prize_confirm)


def _not_enough(ctx: ResidentContext, balance: int, price: int) -> str:
    return ctx.tr(
        "prizes-not-enough",
        balance=_price(ctx, balance),
        missing=_price(ctx, shortfall(balance, price)),
        price=_price(ctx, price),
    )


async def prize_confirm_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = context_of(dialog_manager)
    data = dialog_manager.dialog_data
    pending = data.get("prize_pending") or {}
    price = _price(ctx, pending.get("price", 0))
    return {"text": ctx.tr("prizes-confirm", name=data.get("prize_name", ""), price=price)}


async def on_exchange(callback: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    """«Подтвердить»: the exchange under the confirmation's key. The key is dropped once the
    platform's answer is known (the prize, or a refusal); without an answer it is kept."""
    ctx = context_of(manager)
    tr = ctx.tr
    data = manager.dialog_data
    pending = data.get("prize_pending")
    if not pending:  # exchanged already: a second tap of an old confirmation
        await callback.answer(tr.label("button-already-done"))
        return
    price = pending["price"]
    try:
        done = await exchange_prize(*ctx.acting, pending["key"], pending["prize"], price)
    except InsufficientPoints as error:
        data["prize_result"] = _not_enough(ctx, error.balance, price)
    except PrizeOutOfStock:
        data["prize_result"] = tr("prizes-sold-out")
    except PriceChanged as error:
        data["prize_result"] = tr("prizes-price-changed", price=_price(ctx, error.price))
    except NotFound:
        data["prize_result"] = tr("prizes-unknown")
    except DomainError as error:  # no answer: the key stays for the next press
        data["prize_result"] = tr(error_key(error))
        await manager.switch_to(PointsSG.prize_done)
        return
    else:
        got = done.prize
        data["prize_result"] = tr(
            "prizes-done",
            name=got.name,
            code=got.code,
            until=format_date(got.valid_until),
            balance=_price(ctx, done.balance),
        )
    data.pop("prize_pending", None)
    await manager.switch_to(PointsSG.prize_done)


async def prize_done_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    return {"text": Markup(dialog_manager.dialog_data.get("prize_result", ""))}  # a tr text


async def my_prizes_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = context_of(dialog_manager)
    tr = ctx.tr
    try:
        owned = await my_prizes(*ctx.acting)
    except DomainError as error:
        return {"text": tr(error_key(error))}
    if not owned:
        return {"text": tr("prizes-mine-empty")}
    lines = [tr("prizes-mine-title")] + [
        tr(
            "prizes-mine-line",
            name=p.name,
            code=p.code,
            until=format_date(p.valid_until),
            date=format_datetime(p.created_at),
        )
        for p in owned
    ]
    return {"text": Markup("\n\n").join(lines)}


def _prize_windows() -> list[Window]:
    return [
        Window(
            *body("text", "prizes_text_1"),
            Column(
                Select(
                    Format("{item[1]}"),
                    id="prize_cat",
                    item_id_getter=lambda i: i[0],
                    items="categories",
                    on_click=on_prize_category,
                )
            ),
            SwitchTo(Tr("prizes-mine"), id="mine", state=PointsSG.my_prizes),
            SwitchTo(Tr("nav-back"), id="back", state=PointsSG.main),
            HintOnText(),
            getter=categories_getter,
            state=PointsSG.prize_categories,
        ),
        Window(
            *body("text", "prizes_text_2"),
            ScrollingGroup(
                Select(
                    Format("{item[1]}"),
                    id="prize",
                    item_id_getter=lambda i: i[0],
                    items="prizes",
                    on_click=on_prize,
                ),
                id="prizes_page",
                width=1,
                height=PRIZES_PAGE,
                hide_on_single_page=True,
            ),
            SwitchTo(Tr("nav-back"), id="back", state=PointsSG.prize_categories),
            HintOnText(),
            getter=prizes_getter,
            state=PointsSG.prizes,
        ),
        Window(
            *body("text", "prizes_text_3"),
            Button(Tr("prizes-take"), id="prize_take", on_click=on_take, when=F["can_exchange"]),
            SwitchTo(Tr("nav-back"), id="back", state=PointsSG.prizes),
            HintOnText(),
            getter=prize_getter,
            state=PointsSG.prize,
        ),
        Window(
            *body("text", "prizes_text_4"),
            Button(Tr("points-transfer-yes"), id="prize_yes", on_click=on_exchange),
            SwitchTo(Tr("pay-cancel"), id="no", state=PointsSG.prize),
            HintOnText(),
            getter=prize_confirm_getter,
            state=PointsSG.prize_confirm,
        ),
        Window(
            *body("text", "prizes_text_5"),
            SwitchTo(Tr("prizes-mine"), id="mine", state=PointsSG.my_prizes),
            SwitchTo(Tr("prizes-more"), id="more", state=PointsSG.prize_categories),
            SwitchTo(Tr("nav-back"), id="back", state=PointsSG.main),
            HintOnText(),
            getter=prize_done_getter,
            state=PointsSG.prize_done,
        ),
        Window(
            *body("text", "prizes_text_6"),
            SwitchTo(Tr("prizes-exchange"), id="prizes", state=PointsSG.prize_categories),
            SwitchTo(Tr("nav-back"), id="back", state=PointsSG.main),
            HintOnText(),
            getter=my_prizes_getter,
            state=PointsSG.my_prizes,
        ),
    ]


def build_dialog() -> Dialog:
    return Dialog(
        Window(
            *body("text", "points_text_1"),
            SwitchTo(Tr("points-earn"), id="earn", state=PointsSG.earn),
            SwitchTo(Tr("points-transfer"), id="transfer", state=PointsSG.pick_fund),
            SwitchTo(Tr("prizes-exchange"), id="prizes", state=PointsSG.prize_categories),
            SwitchTo(Tr("prizes-mine"), id="mine", state=PointsSG.my_prizes),
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
        *_prize_windows(),
        name="points",
    )
