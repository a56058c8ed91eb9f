"""«Баллы»: the balance with Russian plurals, recent history, «Как заработать сейчас» that
depends on the date and the resident, «Перевести баллы в фонд» with a confirmation, and
«Обменять»: prizes by category, a prize's card, the exchange (debited once: the key is made
when the confirmation is shown and kept until the platform's answer is known) and «Мои призы»."""

from __future__ import annotations

import hashlib
from typing import Any, TypeVar

from aiogram import F
from aiogram.enums import ContentType
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram_dialog import Dialog, DialogManager, Window
from aiogram_dialog.widgets.input import MessageInput
from aiogram_dialog.widgets.kbd import (
    Button,
    Cancel,
    Column,
    Select,
    Start,
    SwitchTo,
)
from aiogram_dialog.widgets.kbd.select import OnItemClick
from aiogram_dialog.widgets.text import Format
from markupsafe import Markup

from domain.charity import funds
from domain.errors import DomainError, NotFound, RelinkRequired
from domain.meters import moscow_date, resident_meters
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
    CATALOGUE_CATEGORIES,
    PriceChanged,
    PrizeCategory,
    PrizeOutOfStock,
    exchange_prize,
    my_prizes,
    prize,
    prizes,
    shortfall,
)
from handlers.buttons import by_ref, item_ref
from handlers.context import ResidentContext, context_of
from handlers.states import MetersSG, PointsSG
from handlers.texts import error_text, format_date, format_datetime, whole
from handlers.widgets import HintOnText, ScrollingGroup, Tr, body

CATEGORY_KEYS = {
    PrizeCategory.SOUVENIRS: "prizes-category-souvenirs",
    PrizeCategory.HOME: "prizes-category-home",
    PrizeCategory.PROMO_CODES: "prizes-category-promo-codes",
    PrizeCategory.TICKETS: "prizes-category-tickets",
    PrizeCategory.OTHER: "prizes-category-other",
}
PRIZES_PAGE = 6
T = TypeVar("T")


# ------------------------------------------------ operations whose outcome is unknown
#
# A transfer or an exchange sent to the city whose answer was lost may have been made. Its key
# (with what it was sent with) is kept in the chat's aiogram FSM data — outside every dialog:
# aiogram-dialog keeps its stacks under other destinies, and nothing in handlers/ clears this
# data, so closing the dialog, /start and a restart keep it (unlinking forgets it with the rest
# of the chat's state). It is written before the call and dropped once the outcome is known.
# It is never sent again on its own (opening a screen is not a confirmation): it is sent again
# only when the resident repeats the same operation and confirms it — the same prize (at the
# price it was sent with), the same fund and amount — under the same key and body, so the
# platform replays the answer and never debits twice. Until then «Баллы», the catalogue and
# «Мои призы» say its outcome is unknown, with «Забыть» (after a warning) to drop it.
# Layout: {"unsettled": {account id: {kind: {target id:
# {"key", "amount", "name"}}}}}, at most one per prize or fund.

UNSETTLED = "unsettled"
PRIZE = "prize"
TRANSFER = "transfer"


def _state(manager: DialogManager) -> FSMContext:
    state: FSMContext = manager.middleware_data["state"]
    return state


async def _unsettled(manager: DialogManager, kind: str) -> dict[str, dict[str, Any]]:
    """{target id: {"key", "amount", "name"}} of the resident's account."""
    account = context_of(manager).linked.city_account_id
    data = await _state(manager).get_data()
    kept: dict[str, dict[str, Any]] = data.get(UNSETTLED, {}).get(account, {}).get(kind, {})
    return dict(kept)


async def _keep(manager: DialogManager, kind: str, target: str, record: dict[str, Any]) -> None:
    await _change(manager, kind, target, record)


async def _drop(manager: DialogManager, kind: str, target: str) -> None:
    await _change(manager, kind, target, None)


async def _change(
    manager: DialogManager, kind: str, target: str, record: dict[str, Any] | None
) -> None:
    account = context_of(manager).linked.city_account_id
    state = _state(manager)
    everyone = dict((await state.get_data()).get(UNSETTLED, {}))
    mine = {k: dict(v) for k, v in everyone.get(account, {}).items()}
    kept = mine.setdefault(kind, {})
    if record is None:
        kept.pop(target, None)
    else:
        kept[target] = record
    mine = {k: v for k, v in mine.items() if v}
    if mine:
        everyone[account] = mine
    else:
        everyone.pop(account, None)
    await state.update_data({UNSETTLED: everyone})


PENDING_KEYS = {TRANSFER: "points-transfer-pending", PRIZE: "prizes-pending"}
FORGETTING = "forgetting"  # dialog data: the «Забыть» pressed, its warning shown


def _kept_text(ctx: ResidentContext, kind: str, record: dict[str, Any]) -> Markup:
    points = ctx.tr("points-count", count=record["amount"])
    return ctx.tr(PENDING_KEYS[kind], name=record["name"], points=points)


async def _kept_ops(manager: DialogManager, kinds: tuple[str, ...]) -> list[tuple[str, str, str]]:
    """(button item: the kind's letter and `item_ref` of the target, kind, target id) of every
    kept operation of `kinds`."""
    return [
        (kind[0] + item_ref(target), kind, target)
        for kind in kinds
        for target in await _unsettled(manager, kind)
    ]


async def _kept_notices(manager: DialogManager, kinds: tuple[str, ...]) -> dict[str, Any]:
    """What a screen says of the operations of `kinds` whose outcome is unknown: a line each
    and a «Забыть» button each — or, after one was pressed, its warning (`forget_text`) with
    «Да, забыть» and «Отмена». Getter data: "kept_lines", "kept" (buttons), "forget_text"."""
    ctx = context_of(manager)
    ops = await _kept_ops(manager, kinds)
    lines, buttons = [], []
    for item, kind, target in ops:
        record = (await _unsettled(manager, kind))[target]
        lines.append(_kept_text(ctx, kind, record))
        buttons.append((item, ctx.tr.label("unsettled-forget", name=record["name"])))
    forgetting = manager.dialog_data.get(FORGETTING)
    chosen = next((op for op in ops if op[0] == forgetting), None)
    if chosen is None:
        manager.dialog_data.pop(FORGETTING, None)
        return {"kept_lines": lines, "kept": buttons, "forget_text": None}
    record = (await _unsettled(manager, chosen[1]))[chosen[2]]
    warning = ctx.tr("unsettled-forget-warning", operation=_kept_text(ctx, chosen[1], record))
    return {"kept_lines": [], "kept": [], "forget_text": warning}


async def on_forget(callback: CallbackQuery, _w: Any, manager: DialogManager, item_id: str) -> None:
    """«Забыть» under an unknown operation: its warning first (nothing dropped yet)."""
    if item_id not in {op[0] for op in await _kept_ops(manager, (TRANSFER, PRIZE))}:
        await _forged(callback, manager)  # forged, or forgotten or settled meanwhile
        return
    manager.dialog_data[FORGETTING] = item_id


async def on_forget_yes(callback: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    """«Да, забыть»: the kept key of the warned operation is dropped — a repeat gets a new key."""
    item = manager.dialog_data.pop(FORGETTING, None)
    chosen = next((op for op in await _kept_ops(manager, (TRANSFER, PRIZE)) if op[0] == item), None)
    if chosen is None:
        await callback.answer(context_of(manager).tr.label("button-already-done"))
        return
    await _drop(manager, chosen[1], chosen[2])


async def on_forget_no(callback: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    manager.dialog_data.pop(FORGETTING, None)


def _with_notices(notices: dict[str, Any], text: Markup, sep: str = "\n\n") -> Markup:
    """`text` under the warning or the kept operations' lines of `_kept_notices`."""
    if notices["forget_text"] is not None:
        return Markup(sep).join([notices["forget_text"], text])
    return Markup(sep).join([*notices["kept_lines"], text])


def _forget_widgets() -> list[Any]:
    """The «Забыть» buttons of `_kept_notices`, or «Да, забыть» / «Отмена» under its warning."""
    return [
        Column(_choice("forget", "kept", on_forget)),
        Button(Tr("unsettled-forget-yes"), id="forget_yes", on_click=on_forget_yes,
               when=F["forget_text"]),
        Button(Tr("unsettled-forget-no"), id="forget_no", on_click=on_forget_no,
               when=F["forget_text"]),
    ]  # fmt: skip


async def main_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = context_of(dialog_manager)
    tr = ctx.tr
    notices = await _kept_notices(dialog_manager, (TRANSFER, PRIZE))
    try:
        account = await points_account(*ctx.acting)
    except DomainError as error:
        dialog_manager.dialog_data.pop("balance", None)  # not known now: read again if needed
        return {**notices, "text": _with_notices(notices, error_text(tr, error))}
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
    return {**notices, "text": _with_notices(notices, Markup("\n").join(lines))}


async def earn_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = context_of(dialog_manager)
    tr = ctx.tr
    try:
        meters = await resident_meters(*ctx.acting)
    except DomainError as error:
        return {"text": error_text(tr, error), "has_meters": False}
    states = [MeterState(m.kind, m.submitted_this_period, m.window) for m in meters]
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
        return {"text": error_text(ctx.tr, error), "funds": []}
    # A button carries the fund's `item_ref` (never a position: the list may change before
    # the tap; never the platform's id: no length limit, callback data has 64 bytes).
    dialog_manager.dialog_data["fund_list"] = [[f.id, f.name] for f in found]
    return {
        "text": ctx.tr("points-transfer-pick"),
        "funds": [(item_ref(f.id), f.name) for f in found],
    }


async def on_fund(callback: CallbackQuery, _w: Any, manager: DialogManager, item_id: str) -> None:
    picked = by_ref(manager.dialog_data.get("fund_list", []), item_id, lambda f: str(f[0]))
    if picked is None:
        await _forged(callback, manager)  # not a fund we offered
        return
    fund_id, name = picked
    manager.dialog_data.update(fund=fund_id, fund_name=name)
    await manager.switch_to(PointsSG.amount)


async def amount_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    """The question, with the balance when it is known: read again here when «Баллы» could not
    load it (never shown as 0: review 27)."""
    ctx = context_of(dialog_manager)
    data = dialog_manager.dialog_data
    if "balance" not in data:
        try:
            data["balance"] = (await points_account(*ctx.acting)).balance
        except DomainError:
            return {"text": ctx.tr("points-transfer-ask-unknown", fund=data["fund_name"])}
    balance = ctx.tr("points-count", count=data["balance"])
    return {"text": ctx.tr("points-transfer-ask", fund=data["fund_name"], balance=balance)}


async def on_amount(message: Message, _w: MessageInput, manager: DialogManager) -> None:
    """How many points: digits grouped in threes like every other number the bot asks for
    («1 500», «1 500 баллов»; `parse_points`), at most the balance."""
    ctx = context_of(manager)
    if has_foreign_digit(message.text or ""):
        await message.answer(ctx.tr("input-foreign-digits"))
        return  # nothing entered so far is lost: the step waits for the number again
    balance: int | None = manager.dialog_data.get("balance")  # None: the city did not say
    key, unknown = "points-transfer-bad", "points-transfer-bad-unknown"
    try:
        points = parse_points(message.text or "")
    except PointsParseError as error:
        points = None
        if error.reason is PointsProblem.GROUPING:
            key, unknown = "points-transfer-grouping", "points-transfer-grouping-unknown"
    fund = manager.dialog_data["fund"]
    kept = (await _unsettled(manager, TRANSFER)).get(fund)
    # The repeat of a kept transfer is not held to the balance shown: if the lost one was
    # made, the balance already lacks it (the platform replays it under its key).
    repeat = kept is not None and kept["amount"] == points
    if points is None or (balance is not None and points > balance and not repeat):
        if balance is None:
            await message.answer(ctx.tr(unknown))
        else:
            await message.answer(ctx.tr(key, balance=ctx.tr("points-count", count=balance)))
        return
    if kept is not None and kept["amount"] != points:
        # A transfer to this fund whose outcome is unknown: a different amount under a new
        # key could debit both; the same amount repeats it, «Забыть» drops it.
        kept_points = ctx.tr("points-count", count=kept["amount"])
        await message.answer(ctx.tr("points-transfer-pending-other", points=kept_points))
        return
    # One key per confirmation screen: pressing «Подтвердить» twice debits once; the repeat
    # of the kept transfer (same fund and amount) goes under its key and body.
    key = kept["key"] if kept is not None else new_key()
    manager.dialog_data.update(points=points, key=key)
    await manager.switch_to(PointsSG.confirm)


async def confirm_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = context_of(dialog_manager)
    data = dialog_manager.dialog_data
    points = ctx.tr("points-count", count=data["points"])
    return {"text": ctx.tr("points-transfer-confirm", points=points, fund=data["fund_name"])}


async def on_confirm(callback: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    """«Подтвердить»: the transfer under the confirmation's key, kept outside the dialog
    (`_keep`) until the platform's answer is known."""
    ctx = context_of(manager)
    data = manager.dialog_data
    fund, points = data["fund"], data["points"]
    record = {"key": data["key"], "amount": points, "name": data["fund_name"]}
    await _keep(manager, TRANSFER, fund, record)
    try:
        transfer = await transfer_points(*ctx.acting, data["key"], fund, points)
    except InsufficientPoints as error:
        await _drop(manager, TRANSFER, fund)
        data["result"] = ctx.tr(
            "points-transfer-insufficient", balance=ctx.tr("points-count", count=error.balance)
        )
    except NotFound:  # the fund closed while the confirmation was on screen
        await _drop(manager, TRANSFER, fund)
        data["result"] = ctx.tr("points-transfer-fund-closed", fund=data["fund_name"])
    except RelinkRequired:  # the link is gone: «Привяжите заново» and the menu (handlers.errors)
        raise  # the key stays: an earlier try under it may have gone before the 401 (review 33b)
    except DomainError:  # no answer: it may have been made; the key stays
        data["result"] = ctx.tr("points-transfer-unknown")
    else:
        await _drop(manager, TRANSFER, fund)
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
    """The catalogue's categories, under the exchanges whose outcome is unknown
    (`_kept_notices`)."""
    ctx = context_of(dialog_manager)
    tr = ctx.tr
    data = dialog_manager.dialog_data
    notices = await _kept_notices(dialog_manager, (PRIZE,))
    try:
        account = await points_account(*ctx.acting)
    except DomainError as error:
        return {**notices, "text": _with_notices(notices, error_text(tr, error)), "categories": []}
    data["balance"] = account.balance
    text = tr("prizes-categories", balance=tr("points-count", count=account.balance))
    return {
        **notices,
        "text": _with_notices(notices, text),
        "categories": [(c.value, tr.label(CATEGORY_KEYS[c])) for c in CATALOGUE_CATEGORIES],
    }


async def on_prize_category(
    callback: CallbackQuery, _w: Any, manager: DialogManager, item_id: str
) -> None:
    if item_id not in {c.value for c in CATALOGUE_CATEGORIES}:
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
        return {"text": error_text(tr, error), "prizes": []}
    # A button carries the prize's `item_ref`, never its position (as `pick_getter`).
    dialog_manager.dialog_data["prize_ids"] = [p.id for p in found]
    title = tr.label(CATEGORY_KEYS[category])
    items = [
        (
            item_ref(p.id),
            tr.label("prizes-item", name=p.name, price=_price(ctx, p.price))
            if p.available
            else tr.label("prizes-item-sold-out", name=p.name),
        )
        for p in found
    ]
    key = "prizes-list" if found else "prizes-list-empty"
    return {"text": tr(key, category=title), "prizes": items}


async def on_prize(callback: CallbackQuery, _w: Any, manager: DialogManager, item_id: str) -> None:
    """A prize of the list: `item_ref` of one of the prizes shown."""
    picked = by_ref(manager.dialog_data.get("prize_ids", []), item_id, str)
    if picked is None:
        await _forged(callback, manager)
        return
    manager.dialog_data["prize"] = picked
    await manager.switch_to(PointsSG.prize)


async def prize_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = context_of(dialog_manager)
    tr = ctx.tr
    try:
        card = await prize(*ctx.acting, dialog_manager.dialog_data["prize"])
    except NotFound:
        return {"text": tr("prizes-unknown"), "can_exchange": False}
    except DomainError as error:
        return {"text": error_text(tr, error), "can_exchange": False}
    lines = [
        tr("prizes-card", name=card.name, description=whole(card.description),
           price=_price(ctx, card.price)),
    ]  # fmt: skip
    kept = (await _unsettled(dialog_manager, PRIZE)).get(card.id)
    if kept is not None:
        lines.append(_kept_text(ctx, PRIZE, kept))
    elif not card.available:
        lines.append(tr("prizes-sold-out"))
    # The kept exchange can be repeated even when the prize looks sold out (it may be ours).
    return {"text": Markup("\n\n").join(lines), "can_exchange": card.available or bool(kept)}


async def on_take(callback: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    """«Обменять»: an exchange of this prize whose outcome is unknown is repeated — its
    confirmation carries the kept key and price (nothing is sent before «Подтвердить»; the
    platform then replays it or makes it once). Else the prize and the balance are read again;
    not enough points → what is missing, nothing asked; else the confirmation with its key
    (kept for the same prize and price while the dialog lives: pressing again cannot debit
    twice)."""
    ctx = context_of(manager)
    tr = ctx.tr
    data = manager.dialog_data
    try:
        card = await prize(*ctx.acting, data["prize"])
        kept = (await _unsettled(manager, PRIZE)).get(card.id)
        if kept is not None:
            data["prize_pending"] = {"prize": card.id, "price": kept["amount"], "key": kept["key"]}
            data["prize_name"] = kept["name"]
            await manager.switch_to(PointsSG.prize_confirm)
            return
        account = await points_account(*ctx.acting)
    except NotFound:
        data["prize_result"] = tr("prizes-unknown")
        await manager.switch_to(PointsSG.prize_done)
        return
    except DomainError as error:
        data["prize_result"] = error_text(tr, error)
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


def _key_tag(key: str) -> str:
    """What a confirmation's «Подтвердить» carries: 8 hex digits of its key's hash, so a stale
    confirmation (another prize, another price) is told from the one pending now."""
    return hashlib.sha256(key.encode()).hexdigest()[:8]


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
    yes = [(_key_tag(pending["key"]), ctx.tr.label("points-transfer-yes"))] if pending else []
    return {
        "text": ctx.tr("prizes-confirm", name=data.get("prize_name", ""), price=price),
        "yes": yes,
    }


async def on_exchange(
    callback: CallbackQuery, _w: Any, manager: DialogManager, item_id: str
) -> None:
    """«Подтвердить» (its item: `_key_tag` of the confirmation's key): the exchange under the
    confirmation's key, kept outside the dialog (`_keep`) before the call and dropped once the
    platform's answer is known (the prize, or a refusal); without an answer it stays, and the
    resident is told the outcome is not known yet. A stale confirmation's button (another
    prize or price than the one pending now) gets the toast and does nothing."""
    ctx = context_of(manager)
    tr = ctx.tr
    data = manager.dialog_data
    pending = data.get("prize_pending")
    if not pending:  # exchanged already: a second tap of an old confirmation
        await callback.answer(tr.label("button-already-done"))
        return
    if item_id != _key_tag(pending["key"]):
        await _forged(callback, manager)
        return
    price, prize_id = pending["price"], pending["prize"]
    record = {"key": pending["key"], "amount": price, "name": data.get("prize_name", "")}
    await _keep(manager, PRIZE, prize_id, record)
    try:
        done = await exchange_prize(*ctx.acting, pending["key"], prize_id, price)
    except InsufficientPoints as error:
        data["prize_result"] = _not_enough(ctx, error.balance, price)
    except PrizeOutOfStock:
        data["prize_result"] = tr("prizes-sold-out")
    except PriceChanged as error:
        data["prize_result"] = tr("prizes-price-changed", price=_price(ctx, error.price))
    except NotFound:
        data["prize_result"] = tr("prizes-unknown")
    except RelinkRequired:  # as for a transfer: the menu with «Привязать», the key kept
        raise
    except DomainError:  # no answer: it may have been made; the key stays (kept above)
        data["prize_result"] = tr("prizes-unknown-outcome")
        await manager.switch_to(PointsSG.prize_done)
        return
    else:
        got = done.prize
        data["prize_result"] = tr(
            "prizes-done",
            name=got.name,
            code=whole(got.code),
            until=format_date(got.valid_until),
            balance=_price(ctx, done.balance),
        )
    await _drop(manager, PRIZE, prize_id)
    data.pop("prize_pending", None)
    await manager.switch_to(PointsSG.prize_done)


async def prize_done_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    return {"text": Markup(dialog_manager.dialog_data.get("prize_result", ""))}  # a tr text


async def my_prizes_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    """«Мои призы», under the exchanges whose outcome is unknown (`_kept_notices`)."""
    ctx = context_of(dialog_manager)
    tr = ctx.tr
    notices = await _kept_notices(dialog_manager, (PRIZE,))
    try:
        owned = await my_prizes(*ctx.acting)
    except DomainError as error:
        return {**notices, "text": _with_notices(notices, error_text(tr, error))}
    if not owned:
        return {**notices, "text": _with_notices(notices, tr("prizes-mine-empty"))}
    lines = [tr("prizes-mine-title")] + [
        tr(
            "prizes-mine-line",
            name=p.name,
            code=whole(p.code),
            until=format_date(p.valid_until),
            date=format_datetime(p.created_at),
        )
        for p in owned
    ]
    return {**notices, "text": _with_notices(notices, Markup("\n\n").join(lines))}


def _choice(id: str, items: str, on_click: OnItemClick[Any, str]) -> Select[str]:
    """Buttons for the getter's `items`, (item id, label) pairs: the label shown, the item id
    passed to `on_click`."""
    return Select(
        Format("{item[1]}"), id=id, item_id_getter=lambda i: i[0], items=items, on_click=on_click
    )


def _scrolled(choice: Select[str], id: str, height: int) -> ScrollingGroup:
    """`choice` one button a row, `height` rows a page (no pager on a single page)."""
    return ScrollingGroup(choice, id=id, width=1, height=height, hide_on_single_page=True)


def _prize_windows() -> list[Window]:
    return [
        Window(
            *body("text", "prizes_text_1"),
            *_forget_widgets(),
            Column(_choice("prize_cat", "categories", on_prize_category)),
            SwitchTo(Tr("prizes-mine"), id="mine", state=PointsSG.my_prizes),
            SwitchTo(Tr("nav-back"), id="back", state=PointsSG.main),
            HintOnText(),
            getter=categories_getter,
            state=PointsSG.prize_categories,
        ),
        Window(
            *body("text", "prizes_text_2"),
            _scrolled(_choice("prize", "prizes", on_prize), "prizes_page", PRIZES_PAGE),
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
            _choice("prize_yes", "yes", on_exchange),
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
            *_forget_widgets(),
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
            *_forget_widgets(),
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
            _scrolled(_choice("fund", "funds", on_fund), "funds_page", 6),
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
