"""«Автоплатежи»: list, set up (kind → what → schedule → amount or limit → card → summary; a
bill's autopay is «по выставленному счёту» and asks no schedule: service → limit → card),
pause, resume, change the amount, the day or the card, delete; also opened from «Подключить
автоплатёж» on a receipt or a thank-you, and from a paused autopay's notification.

Every set-up and every change runs in its own dialog context, started with explicit start
data (`manager.start` of this dialog's state): its dialog data begins empty and is dropped when
it is done, so nothing chosen in one set-up (a fund, an amount) can leak into the next.

The platform's fund and card ids never go into a button (the contract sets no limit on their
length, and Telegram refuses a whole message whose button carries over 64 bytes): those lists'
buttons carry the item's reference (`handlers.buttons.item_ref`), looked up in a ref → item map
of the list drawn last, kept in dialog data. A reference names the same item in every list, so
a tap on an older message picks what that button showed, or — when the item is no longer
offered (or the button is forged) — gets a toast and nothing is done.
"""

from __future__ import annotations

import contextlib
import dataclasses
from datetime import datetime
from typing import Any

from aiogram import F
from aiogram.enums import ContentType
from aiogram.types import CallbackQuery, Message
from aiogram_dialog import Data, Dialog, DialogManager, ShowMode, Window
from aiogram_dialog.widgets.input import MessageInput
from aiogram_dialog.widgets.kbd import Button, Cancel, Column, Group, Select, SwitchTo
from aiogram_dialog.widgets.text import Format
from markupsafe import Markup

from domain.autopay import (
    BILL_KINDS,
    IDLE,
    Autopay,
    AutopayKind,
    AutopayStatus,
    AutopayTarget,
    Frequency,
    PauseReason,
    Schedule,
    next_due,
)
from domain.autopaying import (
    AutopayExists,
    AutopayTooSmall,
    TopupDoesNotFit,
    UnsuitableCard,
    autopay_for,
    autopay_methods,
    change,
    change_card,
    check_money,
    check_topup,
    check_topup_amount,
    highest_threshold,
    money_ceiling,
    own_autopay,
    set_status,
    set_up,
)
from domain.bills import BillKind, unpaid_bills
from domain.charity import fund as fund_at_city
from domain.charity import funds
from domain.errors import DomainError, NotFound
from domain.limits import DEFAULT_LIMITS, AmountLimits, AmountTooLarge
from domain.money import MoneyParseError, format_rub, has_foreign_digit, parse_rub
from domain.topups import (
    AmountProblem,
    TopupLimits,
    TopupService,
    advances_bill,
    check_account,
    fixed_amount_service,
    service_of,
    shown_account,
    topup_services,
)
from domain.typed_text import visible
from handlers.buttons import item_ref
from handlers.payments import Ctx
from handlers.ports import Texts
from handlers.states import AutopaySG
from handlers.texts import button_int, error_text, format_datetime
from handlers.widgets import HintOnText, SelectIds, Tr, body, one_per_row

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
# The card's status line of a paused autopay: why, and what to press to fix it.
PAUSED_KEYS = {
    PauseReason.BY_RESIDENT: "autopay-state-paused",
    PauseReason.CARD_REMOVED: "autopay-state-card-removed",
    PauseReason.CARD_EXPIRED: "autopay-state-card-expired",
    PauseReason.NEEDS_CONFIRMATION: "autopay-state-needs-confirmation",
    PauseReason.RELINK: "autopay-state-relink",
    PauseReason.TARGET_GONE: "autopay-state-target-gone",
    PauseReason.OVER_CEILING: "autopay-state-over-ceiling",
    PauseReason.TOPUP_LIMITS: "autopay-state-topup-limits",
    PauseReason.NO_BALANCE: "autopay-state-no-balance",
}
# A top-up autopay's amount outside the service's limits for one payment: told as «Пополнить»
# tells it (its texts, with the figures); one that would overfill the card: its own text.
TOPUP_PROBLEM_KEYS = {
    AmountProblem.TOO_SMALL: "topup-too-small",
    AmountProblem.TOO_LARGE: "topup-too-large",
}
TOPUP_KEYS = {
    TopupService.TROIKA: "autopay-topup-troika",
    TopupService.PARKING: "autopay-topup-parking",
    TopupService.MGTS: "autopay-topup-mgts",
}
# Dialog data of a set-up whose bill service also takes a fixed amount (МГТС): the platform's
# service for it, {"bill_kind", "service", "accounts", "min", "max"}, kept from «За какую
# услугу?» to «Как платить?» and, chosen «Фиксированная сумма», on to the amount.
ADVANCE = "advance"
# Start data of a context of this dialog (small scalars only: it is JSON in Redis).
FROM_LIST = "from_list"  # a set-up started by «➕» on the list: done → back to the list
EDIT = "edit"  # a change of an existing autopay (its id): done → back to its card
OPEN = "open"  # a notification's «Открыть автоплатёж» (its id): the card at once
# Dialog data of a set-up refused because the resident already has an autopay for that service
# or fund: {"id", "text", "resume"} of that one. The summary then offers to open it instead.
EXISTS = "exists"
# Paused for these reasons, an autopay is fixed by something else than «Возобновить».
NOT_RESUMABLE = {
    PauseReason.CARD_REMOVED,
    PauseReason.CARD_EXPIRED,
    PauseReason.NEEDS_CONFIRMATION,
    PauseReason.OVER_CEILING,
    PauseReason.TOPUP_LIMITS,
}


def topup_what(tr: Texts, service: str | None, account: str | None, *, plain: bool) -> Any:
    """«Пополнение «Тройки» № 0012 345 678» (the account as the resident would write it)."""
    key = TOPUP_KEYS.get(TopupService(service)) if service in set(TopupService) else None
    say = tr.label if plain else tr
    return say(key or "autopay-topup-other", account=shown_account(service or "", account or ""))


def describe(tr: Texts, autopay: Autopay, *, for_button: bool = False) -> dict[str, str]:
    """What / how / when of an autopay, in words (also used by notifications): Markup for a
    message text, plain text for a button."""
    say = tr.label if for_button else tr
    if autopay.kind is AutopayKind.BILL and autopay.bill_kind is not None:
        what = say("autopay-what-bill", service=tr(SERVICE_KEYS[autopay.bill_kind]))
        how = say("autopay-how-limit", limit=format_rub(autopay.limit or 0))
    elif autopay.kind is AutopayKind.TOPUP:
        what = topup_what(tr, autopay.topup_service, autopay.topup_account, plain=for_button)
        how = say("autopay-how-amount", amount=format_rub(autopay.amount or 0))
    else:
        what = say("autopay-what-fund", fund=autopay.fund_name or "")
        how = say("autopay-how-amount", amount=format_rub(autopay.amount or 0))
    if autopay.schedule.frequency is Frequency.ON_ISSUE:
        when = say("autopay-when-on-issue")
    elif autopay.schedule.frequency is Frequency.BELOW:
        when = say("autopay-when-below", threshold=format_rub(autopay.threshold or 0))
    elif autopay.schedule.frequency is Frequency.MONTHLY:
        when = say("autopay-when-monthly", day=str(autopay.schedule.day))
    else:
        when = say("autopay-when-weekly", weekday=tr(WEEKDAY_KEYS[autopay.schedule.day]))
    return {"what": what, "how": how, "when": when}


def next_charge(tr: Texts, autopay: Autopay) -> str:
    """When it charges next, in words: a moment, or (on issue, waiting for a bill) «на
    следующий день после нового счёта»."""
    if autopay.on_issue and autopay.next_due_at >= IDLE:
        return tr("autopay-next-on-issue")
    if autopay.below:
        return tr("autopay-next-below")
    return format_datetime(autopay.next_due_at)


def _limits(manager: DialogManager) -> AmountLimits:
    limits = manager.middleware_data.get("limits")
    return limits if isinstance(limits, AmountLimits) else DEFAULT_LIMITS


def _start(manager: DialogManager) -> dict[str, Any]:
    data = manager.start_data
    return data if isinstance(data, dict) else {}


def _money_problem(tr: Texts, error: DomainError, bill: bool, topup: bool = False) -> Markup:
    if isinstance(error, AmountTooLarge):
        return tr("autopay-money-too-large", ceiling=format_rub(error.ceiling))
    if topup:  # no 50 ₽ minimum: the service's own limits are checked next (`_topup_refusal`)
        return tr("autopay-topup-amount-bad")
    return tr("autopay-limit-bad" if bill else "autopay-amount-bad")


async def list_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = Ctx(dialog_manager)
    autopays = await ctx.uow.autopays.of_resident(ctx.linked.telegram_user_id)
    items = []
    for autopay in autopays:
        words = describe(ctx.tr, autopay, for_button=True)
        paused_now = autopay.status is AutopayStatus.PAUSED
        paused = ctx.tr.label("autopay-paused-mark") if paused_now else ""
        items.append((str(autopay.id), ctx.tr.label("autopay-line", paused=paused, **words)))
    return {"text": ctx.tr("autopay-title" if items else "autopay-none"), "autopays": items}


async def on_autopay(_c: CallbackQuery, _w: Any, manager: DialogManager, autopay_id: str) -> None:
    """An autopay on the list: its card. An id that is not a number, or not one of the
    resident's autopays (forged, or deleted meanwhile), leaves the list as it is."""
    number = button_int(autopay_id)
    if number is None:
        return
    ctx = Ctx(manager)
    try:
        await own_autopay(ctx.uow, ctx.linked, number)
    except NotFound:
        return
    manager.dialog_data["autopay"] = number
    await manager.switch_to(AutopaySG.card)


async def on_add(_c: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    """«➕»: a set-up of its own, from nothing."""
    await manager.start(AutopaySG.kind, data={FROM_LIST: True})


async def card_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = Ctx(dialog_manager)
    autopay = await own_autopay(ctx.uow, ctx.linked, dialog_manager.dialog_data["autopay"])
    active = autopay.status is AutopayStatus.ACTIVE
    reason = autopay.paused_reason or PauseReason.BY_RESIDENT
    text = ctx.tr(
        "autopay-card",
        next=next_charge(ctx.tr, autopay),
        state=ctx.tr("autopay-state-active" if active else PAUSED_KEYS[reason]),
        **describe(ctx.tr, autopay),
    )
    return {"text": text, "active": active, "on_issue": not autopay.schedule.dated}


def _edit(state: Any) -> Any:
    """A change of the autopay on the card, in a context of its own."""

    async def handler(_c: CallbackQuery, _b: Button, manager: DialogManager) -> None:
        await manager.start(state, data={EDIT: int(manager.dialog_data["autopay"])})

    return handler


def _status(status: AutopayStatus) -> Any:
    async def handler(callback: CallbackQuery, _b: Button, manager: DialogManager) -> None:
        ctx = Ctx(manager)
        autopay_id = manager.dialog_data["autopay"]
        try:
            done = await set_status(
                ctx.uow, ctx.linked, autopay_id, status, ctx.clock(), _limits(manager)
            )
        except AmountTooLarge as error:  # resuming an amount above today's ceiling
            if callback.message is not None:
                await callback.message.answer(_money_problem(ctx.tr, error, bill=False))
            manager.show_mode = ShowMode.SEND
            return
        if done.charge_under_way and callback.message is not None:  # not stopped: said so
            await callback.message.answer(ctx.tr("autopay-charge-under-way"))
            manager.show_mode = ShowMode.SEND  # the card below what was said
        if status is AutopayStatus.DELETED:
            if callback.message is not None:
                await callback.message.answer(ctx.tr("autopay-deleted"))
            await manager.switch_to(AutopaySG.list, show_mode=ShowMode.SEND)

    return handler


# --- setting up and changing ---------------------------------------------------------------


async def on_start(data: Data, manager: DialogManager) -> None:
    """A new context: the list (no data), a set-up (from the list, or from a receipt or a
    thank-you with what to pay already known), a change of one autopay, or its card."""
    if not isinstance(data, dict):
        return
    if OPEN in data or EDIT in data:
        ctx = Ctx(manager)
        number = button_int(str(data.get(OPEN) or data.get(EDIT)))
        try:
            if number is None:
                raise NotFound("autopay")
            autopay = await own_autopay(ctx.uow, ctx.linked, number)
        except NotFound:  # another resident's id, or deleted meanwhile: the list instead
            await manager.switch_to(AutopaySG.list)
            return
        manager.dialog_data.update(autopay=autopay.id, kind=autopay.kind.value)
        if OPEN in data:
            await manager.switch_to(AutopaySG.card)
        return
    # A set-up: only what its kind names is taken; a missing part is asked for.
    kind = data.get("kind")
    if kind == AutopayKind.BILL:
        manager.dialog_data["kind"] = AutopayKind.BILL.value
        if data.get("bill_kind") in {k.value for k in BILL_KINDS}:
            manager.dialog_data["bill_kind"] = data["bill_kind"]
            await _after_service(manager)
        else:
            await manager.switch_to(AutopaySG.service)
    elif kind == AutopayKind.TOPUP:
        await _start_topup(manager, data)
    elif kind == AutopayKind.FIXED:
        manager.dialog_data["kind"] = AutopayKind.FIXED.value
        if data.get("fund_id"):
            manager.dialog_data.update(
                fund_id=str(data["fund_id"]), fund_name=str(data.get("fund_name") or "")
            )
            if isinstance(data.get("amount"), int):
                manager.dialog_data["amount"] = data["amount"]
            if not await _already_set_up(manager):
                await manager.switch_to(AutopaySG.frequency)
        else:
            await manager.switch_to(AutopaySG.fund)


async def _start_topup(manager: DialogManager, data: dict[str, Any]) -> None:
    """A top-up autopay for the card or parking account just paid: the account is checked
    again as typed input would be (start data is never trusted further than that)."""
    manager.dialog_data["kind"] = AutopayKind.TOPUP.value
    service = data.get("topup_service")
    if service not in set(TopupService):
        await manager.switch_to(AutopaySG.topup)
        return
    account = check_account(TopupService(service), str(data.get("topup_account") or ""))
    if not isinstance(account, str):
        await manager.switch_to(AutopaySG.topup)
        return
    manager.dialog_data.update(topup_service=service, topup_account=account)
    if type(data.get("amount")) is int:
        manager.dialog_data["amount"] = data["amount"]
    if not await _already_set_up(manager):
        await manager.switch_to(AutopaySG.frequency)


async def on_result(_start: Data, result: Any, manager: DialogManager) -> None:
    """A set-up started from this list ended with «Открыть автоплатёж» of the autopay the
    resident already had: its card, here."""
    if isinstance(result, dict) and isinstance(result.get(OPEN), int):
        manager.dialog_data["autopay"] = result[OPEN]
        await manager.switch_to(AutopaySG.card)


def _target(data: dict[str, Any]) -> AutopayTarget | None:
    """What the set-up in `data` is for, once it is chosen."""
    if data.get("kind") == AutopayKind.BILL and data.get("bill_kind"):
        return AutopayTarget(AutopayKind.BILL, bill_kind=BillKind(data["bill_kind"]))
    if data.get("kind") == AutopayKind.FIXED and data.get("fund_id"):
        return AutopayTarget(AutopayKind.FIXED, fund_id=str(data["fund_id"]))
    if data.get("kind") == AutopayKind.TOPUP and data.get("topup_account"):
        return AutopayTarget(
            AutopayKind.TOPUP,
            topup_service=str(data["topup_service"]),
            topup_account=str(data["topup_account"]),
        )
    return None


async def _already_set_up(manager: DialogManager) -> bool:
    """As soon as the service or fund is known: if the resident already has an autopay for
    it, say so (and offer to open it) instead of asking the rest of a set-up that
    `set_up` would refuse."""
    target = _target(manager.dialog_data)
    if target is None:
        return False
    ctx = Ctx(manager)
    existing = await autopay_for(ctx.uow, ctx.linked.telegram_user_id, target)
    if existing is None:
        return False
    await _show_existing(manager, existing)
    return True


async def _show_existing(manager: DialogManager, existing: Autopay) -> None:
    """«У вас уже есть автоплатёж за …» on the summary, with «Открыть автоплатёж» (and
    «Возобновить» for one paused for a reason resuming fixes) instead of «Подключить»."""
    tr = Ctx(manager).tr
    words = describe(tr, existing)
    if existing.kind is AutopayKind.BILL and existing.bill_kind is not None:
        target = tr("autopay-exists-bill", service=tr(SERVICE_KEYS[existing.bill_kind]))
    elif existing.kind is AutopayKind.TOPUP:
        target = topup_what(tr, existing.topup_service, existing.topup_account, plain=False)
    else:
        target = tr("autopay-exists-fund", fund=existing.fund_name or "")
    paused = existing.status is AutopayStatus.PAUSED
    lines = [
        tr("autopay-exists-paused" if paused else "autopay-exists", target=target),
        tr("autopay-exists-now", how=words["how"], when=words["when"]),
    ]
    reason = existing.paused_reason or PauseReason.BY_RESIDENT
    if paused:
        lines.append(tr(PAUSED_KEYS[reason]))
    manager.dialog_data[EXISTS] = {
        "id": existing.id,
        "text": Markup("\n").join(lines),  # stored: read back as Markup by summary_getter
        "resume": paused and reason not in NOT_RESUMABLE,
    }
    await manager.switch_to(AutopaySG.summary)


async def _open_existing(manager: DialogManager, autopay_id: int) -> None:
    """The card of the autopay the resident already had: in the list's context when this
    set-up was started from it, else here (the set-up is over)."""
    if FROM_LIST in _start(manager):
        await manager.done(result={OPEN: autopay_id})
        return
    manager.dialog_data.clear()
    manager.dialog_data["autopay"] = autopay_id
    await manager.switch_to(AutopaySG.card)


async def on_exists_open(_c: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    exists = manager.dialog_data.get(EXISTS)
    if not isinstance(exists, dict) or not isinstance(exists.get("id"), int):
        return  # «Открыть автоплатёж» is not shown then: a forged press
    ctx = Ctx(manager)
    try:
        await own_autopay(ctx.uow, ctx.linked, exists["id"])
    except NotFound:  # deleted meanwhile (in another message): the set-up is over
        await _close(manager)
        return
    await _open_existing(manager, exists["id"])


async def on_exists_resume(callback: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    exists = manager.dialog_data.get(EXISTS)
    if not isinstance(exists, dict) or not exists.get("resume") or not exists.get("id"):
        return
    ctx = Ctx(manager)
    autopay_id = int(exists["id"])
    try:
        await set_status(
            ctx.uow, ctx.linked, autopay_id, AutopayStatus.ACTIVE, ctx.clock(), _limits(manager)
        )
    except AmountTooLarge as error:  # above today's ceiling: its card says what to change
        if callback.message is not None:
            await callback.message.answer(_money_problem(ctx.tr, error, bill=False))
        manager.show_mode = ShowMode.SEND
    except NotFound:  # deleted meanwhile (in another chat window)
        await _close(manager)
        return
    await _open_existing(manager, autopay_id)


async def _close(manager: DialogManager) -> None:
    """A change or a set-up is done: back where it was started — the card or the list. A
    set-up started elsewhere (a receipt, a thank-you) shows the list in its own context."""
    start = _start(manager)
    if EDIT in start or FROM_LIST in start:
        await manager.done(show_mode=ShowMode.SEND)
        return
    manager.dialog_data.clear()
    await manager.switch_to(AutopaySG.list, show_mode=ShowMode.SEND)


async def on_kind_bill(_c: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    manager.dialog_data["kind"] = AutopayKind.BILL.value
    await manager.switch_to(AutopaySG.service)


async def on_kind_topup(_c: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    manager.dialog_data.pop(ADVANCE, None)  # «Назад» from an МГТС number's list: any account
    manager.dialog_data["kind"] = AutopayKind.TOPUP.value
    await manager.switch_to(AutopaySG.topup)


async def topups_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    """The resident's own cards and parking accounts (from their profile at the platform); an
    МГТС fixed amount's set-up: the resident's МГТС numbers only (a bill service's advance is
    offered under its bills, «Как платить?», not among the wallets)."""
    ctx = Ctx(dialog_manager)
    try:
        services = await topup_services(ctx.uow, ctx.city, ctx.city, ctx.linked)
    except DomainError as error:
        return {"text": error_text(ctx.tr, error), "accounts": [], "advance": False}
    advance = _advance(dialog_manager)
    if advance is not None:
        services = [s for s in services if s.code == advance["service"]]
    else:
        services = [s for s in services if not advances_bill(s.code)]
    shown = {
        item_ref(f"{s.code.value}:{a}"): [s.code.value, a] for s in services for a in s.own_accounts
    }
    dialog_manager.dialog_data["topups_shown"] = shown
    items = [(ref, topup_what(ctx.tr, s, a, plain=True)) for ref, (s, a) in shown.items()]
    if advance is not None:
        text = ctx.tr("autopay-advance-which" if items else "autopay-advance-no-account")
    else:
        text = ctx.tr("autopay-topup-ask" if items else "autopay-topup-none")
    return {"text": text, "accounts": items, "advance": advance is not None}


def _advance(manager: DialogManager) -> dict[str, Any] | None:
    """The fixed-amount service of the bill service chosen, once «Фиксированная сумма по
    расписанию» made this set-up a TOPUP one (None otherwise)."""
    advance = manager.dialog_data.get(ADVANCE)
    if manager.dialog_data.get("kind") != AutopayKind.TOPUP or not isinstance(advance, dict):
        return None
    return advance


async def on_topup_account(
    callback: CallbackQuery, _w: Any, manager: DialogManager, item_id: str
) -> None:
    chosen = _shown(manager, "topups_shown", item_id)
    if chosen is None:
        await _forged(callback, manager)
        return
    manager.dialog_data.update(topup_service=chosen[0], topup_account=chosen[1])
    if not await _already_set_up(manager):
        await manager.switch_to(AutopaySG.frequency)


async def on_below(callback: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    """«Когда баланс ниже суммы»: shown only in a top-up's set-up (not in a change of one, nor
    for a donation, where a forged press would build an autopay that cannot exist)."""
    if not (await frequency_getter(manager))["topup"]:
        await _forged(callback, manager)
        return
    manager.dialog_data.update(frequency=Frequency.BELOW.value, day=0)
    await manager.switch_to(AutopaySG.threshold)


async def frequency_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    """«Когда баланс ниже суммы» is offered for a wallet («Тройка», parking) only: an МГТС
    fixed amount is paid monthly or weekly."""
    data = dialog_manager.dialog_data
    return {
        "topup": data.get("kind") == AutopayKind.TOPUP
        and EDIT not in _start(dialog_manager)
        and not advances_bill(str(data.get("topup_service") or ""))
    }


async def on_threshold(message: Message, _w: MessageInput, manager: DialogManager) -> None:
    """«Когда баланс ниже N ₽»: a positive amount by the payments' rules (`parse_rub`)."""
    ctx = Ctx(manager)
    if has_foreign_digit(message.text or ""):
        await message.answer(ctx.tr("input-foreign-digits"))
        return
    try:
        threshold = parse_rub(message.text or "")
    except MoneyParseError:
        threshold = 0
    if threshold <= 0:
        await message.answer(ctx.tr("autopay-threshold-bad"))
        return
    limits = await _topup_limits(manager)
    if limits is not None:
        too_high = _threshold_too_high(ctx.tr, threshold, limits)
        if too_high is not None:  # no top-up could ever fit under it: asked again
            await message.answer(too_high)
            return
        amount = manager.dialog_data.get("amount")
        if type(amount) is int and not _topup_fits(manager, amount, threshold, limits):
            manager.dialog_data.pop("amount")  # brought from a receipt: asked for instead
    manager.dialog_data["threshold"] = threshold
    await _after_schedule(manager)


async def _topup_limits(manager: DialogManager) -> TopupLimits | None:
    """The limits of the top-up service this set-up is for, as the platform gives them now
    (None: it does not say now, or no longer offers the service — «Подключить» checks again)."""
    service = str(manager.dialog_data.get("topup_service") or "")
    ctx = Ctx(manager)
    try:
        found = service_of(await topup_services(ctx.uow, ctx.city, ctx.city, ctx.linked), service)
    except DomainError:
        return None
    return found.limits if found is not None else None


def _threshold_too_high(tr: Texts, threshold: int, limits: TopupLimits) -> Markup | None:
    """Why no top-up fits under this threshold (`highest_threshold`: the card's ceiling less
    the service's minimum), with the figures; None when one does."""
    highest = highest_threshold(limits)
    if highest is None or limits.max_balance is None or threshold <= highest:
        return None
    return tr(
        "autopay-threshold-too-high",
        ceiling=format_rub(limits.max_balance),
        min=format_rub(limits.min_amount),
        most=format_rub(max(highest, 0)),
    )


def _topup_ceiling(manager: DialogManager) -> int:
    return money_ceiling(AutopayKind.TOPUP, _limits(manager))[1]


def _topup_fits(
    manager: DialogManager, amount: int, threshold: int | None, limits: TopupLimits
) -> bool:
    try:
        check_topup_amount(amount, threshold, limits, _topup_ceiling(manager))
    except TopupDoesNotFit:
        return False
    return True


def _topup_refusal(
    tr: Texts, problem: AmountProblem, limits: TopupLimits, ceiling: int, threshold: int | None
) -> Markup:
    """Why a top-up autopay's amount does not fit (`check_topup`), with the figures: the
    service's minimum or maximum for one payment as «Пополнить» says them, or — by threshold —
    the most that fits under the card's ceiling."""
    if problem is AmountProblem.OVER_BALANCE and limits.max_balance is not None:
        return tr(
            "autopay-topup-over-balance",
            ceiling=format_rub(limits.max_balance),
            threshold=format_rub(threshold or 0),
            max=format_rub(max(limits.max_balance - (threshold or 0), 0)),
        )
    return tr(
        TOPUP_PROBLEM_KEYS.get(problem, "topup-too-large"),
        min=format_rub(limits.min_amount),
        max=format_rub(min(limits.max_amount, ceiling)),
    )


def _set_threshold(manager: DialogManager) -> int | None:
    """The threshold of this set-up, when it is «Когда баланс ниже суммы»."""
    data = manager.dialog_data
    if data.get("frequency") != Frequency.BELOW or type(data.get("threshold")) is not int:
        return None
    return int(data["threshold"])


async def on_kind_fund(_c: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    manager.dialog_data["kind"] = AutopayKind.FIXED.value
    await manager.switch_to(AutopaySG.fund)


async def services_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = Ctx(dialog_manager)
    try:
        kinds = {b.kind for b in await unpaid_bills(ctx.uow, ctx.city, ctx.city, ctx.linked)}
    except DomainError as error:
        return {"text": error_text(ctx.tr, error), "services": []}
    services = [(k.value, ctx.tr.label(SERVICE_KEYS[k])) for k in BILL_KINDS if k in kinds]
    dialog_manager.dialog_data["services_shown"] = [k for k, _ in services]
    return {
        "text": ctx.tr("autopay-service-ask" if services else "autopay-no-services"),
        "services": services,
    }


async def on_service(callback: CallbackQuery, _w: Any, manager: DialogManager, kind: str) -> None:
    """A service of the list drawn last; any other item (forged) gets the toast."""
    if kind not in manager.dialog_data.get("services_shown", ()):
        await _forged(callback, manager)
        return
    manager.dialog_data["bill_kind"] = kind
    await _after_service(manager)


async def _after_service(manager: DialogManager) -> None:
    """The bill service is chosen: the autopay the resident has for it, if any; else «Как
    платить?» when the platform takes a fixed amount for it too (`fixed_amount_service`:
    МГТС), else its limit («по выставленному счёту», on issue: no schedule to ask)."""
    manager.dialog_data.pop(ADVANCE, None)  # another service's, chosen before «Назад»
    if await _already_set_up(manager):  # by bill, or a fixed amount to its account
        return
    bill_kind = str(manager.dialog_data["bill_kind"])
    ctx = Ctx(manager)
    try:
        services = await topup_services(ctx.uow, ctx.city, ctx.city, ctx.linked)
    except DomainError:  # the platform does not say now: its bill, as ever
        services = []
    service = fixed_amount_service(services, bill_kind)
    if service is None:  # ЕПД, a kindergarten, a club: only their issued bill
        await manager.switch_to(AutopaySG.money)
        return
    manager.dialog_data[ADVANCE] = {
        "bill_kind": bill_kind,
        "service": service.code.value,
        "accounts": list(service.own_accounts),
        "min": service.limits.min_amount,
        "max": service.limits.max_amount,
    }
    await manager.switch_to(AutopaySG.how)


async def how_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    tr: Texts = dialog_manager.middleware_data["tr"]
    bill_kind = BillKind(dialog_manager.dialog_data["bill_kind"])
    return {"text": tr("autopay-how-ask", service=tr(SERVICE_KEYS[bill_kind]))}


async def on_how_bill(_c: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    """«По выставленному счёту»: the bill autopay, on to its limit."""
    manager.dialog_data.pop(ADVANCE, None)
    await manager.switch_to(AutopaySG.money)


async def on_how_fixed(callback: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    """«Фиксированная сумма по расписанию»: a TOPUP autopay of the platform's service for this
    bill service, to the resident's account there (the profile's МГТС number). Only after
    «Как платить?» offered it for the service chosen: otherwise (forged) the toast."""
    data = manager.dialog_data
    advance = data.get(ADVANCE)
    if not isinstance(advance, dict) or advance.get("bill_kind") != data.get("bill_kind"):
        await _forged(callback, manager)
        return
    accounts = [str(a) for a in advance["accounts"]]
    if not accounts:  # no number in the profile to pay: said, and asked again
        if callback.message is not None:
            await callback.message.answer(Ctx(manager).tr("autopay-advance-no-account"))
        manager.show_mode = ShowMode.SEND
        return
    data.pop("bill_kind")
    data.update(kind=AutopayKind.TOPUP.value, topup_service=advance["service"])
    if len(accounts) > 1:  # which number: the list of this service's accounts
        await manager.switch_to(AutopaySG.topup)
        return
    data["topup_account"] = accounts[0]
    if not await _already_set_up(manager):
        await manager.switch_to(AutopaySG.frequency)


def _shown(manager: DialogManager, key: str, ref: str) -> Any:
    """The entry for the reference `ref` (`item_ref` of a platform id: what a list's buttons
    carry) in the ref → entry map kept under `key` in dialog data by the list's getter; None
    for an item not in the list drawn last (forged, or no longer offered)."""
    shown: dict[str, Any] = manager.dialog_data.get(key, {})
    return shown.get(ref)


async def _forged(callback: CallbackQuery, manager: DialogManager) -> None:
    await callback.answer(Ctx(manager).tr.label("error-forged-button"))


async def funds_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = Ctx(dialog_manager)
    found = await funds(ctx.uow, ctx.city, ctx.city, ctx.linked, None)
    dialog_manager.dialog_data["funds_shown"] = {item_ref(f.id): [f.id, f.name] for f in found}
    return {"funds": [(item_ref(f.id), f.name) for f in found]}


async def on_fund(callback: CallbackQuery, _w: Any, manager: DialogManager, item_id: str) -> None:
    """A fund (its item: the fund's `item_ref`, looked up among the funds offered now)."""
    fund = _shown(manager, "funds_shown", item_id)
    if fund is None:
        await _forged(callback, manager)
        return
    manager.dialog_data.update(fund_id=fund[0], fund_name=fund[1])
    if not await _already_set_up(manager):
        await manager.switch_to(AutopaySG.frequency)


async def on_monthly(_c: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    manager.dialog_data["frequency"] = Frequency.MONTHLY.value
    await manager.switch_to(AutopaySG.day)


async def on_weekly(_c: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    manager.dialog_data["frequency"] = Frequency.WEEKLY.value
    await manager.switch_to(AutopaySG.weekday)


def _prefilled_amount_fits(manager: DialogManager) -> bool:
    """A donation's amount brought from a thank-you, if it is allowed for an autopay."""
    data = manager.dialog_data
    if data.get("kind") not in (AutopayKind.FIXED, AutopayKind.TOPUP) or not data.get("amount"):
        return False
    try:
        check_money(AutopayKind(data["kind"]), int(data["amount"]), _limits(manager))
    except DomainError:
        data.pop("amount")  # asked again, with the ceiling in the answer to a too large one
        return False
    return True


async def _after_schedule(manager: DialogManager) -> None:
    data = manager.dialog_data
    if EDIT in _start(manager):  # a new day for an existing autopay
        ctx = Ctx(manager)
        schedule = Schedule(Frequency(data["frequency"]), int(data["day"]))
        with contextlib.suppress(ValueError):  # on issue: no day to change (a forged press)
            await change(ctx.uow, ctx.linked, data["autopay"], ctx.clock(), schedule=schedule)
        await _close(manager)
        return
    await manager.switch_to(
        AutopaySG.method if _prefilled_amount_fits(manager) else AutopaySG.money,
        show_mode=ShowMode.SEND,
    )


async def on_day(message: Message, _w: MessageInput, manager: DialogManager) -> None:
    text = visible(message.text or "")  # pasted: direction marks at the ends go
    if has_foreign_digit(text):
        await message.answer(Ctx(manager).tr("input-foreign-digits"))
        return  # the frequency (and the rest) chosen so far stay
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 31:
        await message.answer(Ctx(manager).tr("autopay-day-bad"))
        return
    manager.dialog_data["day"] = int(text)
    await _after_schedule(manager)


async def weekdays_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    tr: Texts = dialog_manager.middleware_data["tr"]
    return {"weekdays": [(str(n), tr.label(key)) for n, key in enumerate(WEEKDAY_KEYS)]}


async def on_weekday(_c: CallbackQuery, _w: Any, manager: DialogManager, day: str) -> None:
    number = button_int(day)
    if number is not None and 0 <= number <= 6:
        manager.dialog_data["day"] = number
        await _after_schedule(manager)


async def money_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    tr: Texts = dialog_manager.middleware_data["tr"]
    bill = dialog_manager.dialog_data.get("kind") == AutopayKind.BILL
    topup = dialog_manager.dialog_data.get("kind") == AutopayKind.TOPUP
    ask = "autopay-limit-ask" if bill else "autopay-topup-amount-ask" if topup else ""
    advance = _advance(dialog_manager)
    if advance is not None:  # МГТС's fixed amount: within what it takes in one payment
        text = tr(
            "autopay-advance-amount-ask",
            min=format_rub(advance["min"]),
            max=format_rub(advance["max"]),
        )
    else:
        text = tr(ask or "autopay-amount-ask")
    if topup and advance is None and EDIT not in _start(dialog_manager):
        limits = await _topup_limits(dialog_manager)  # as «Пополнить» shows them
        if limits is not None:
            most = min(limits.max_amount, _topup_ceiling(dialog_manager))
            line = tr("topup-limits", min=format_rub(limits.min_amount), max=format_rub(most))
            text = Markup("\n").join([text, line])
    return {
        "text": text,
        "editing": EDIT in _start(dialog_manager),
        "bill": bill,
    }


async def on_money(message: Message, _w: MessageInput, manager: DialogManager) -> None:
    """The amount (FIXED) or limit (BILL): the payments' rules for what may be typed
    (`parse_rub`), at least 50 ₽ for a donation, at most the operator's ceiling."""
    ctx = Ctx(manager)
    if has_foreign_digit(message.text or ""):
        await message.answer(ctx.tr("input-foreign-digits"))
        return  # the payee and schedule chosen so far stay
    kind = AutopayKind(manager.dialog_data["kind"])
    bill, topup = kind is AutopayKind.BILL, kind is AutopayKind.TOPUP
    try:
        amount = check_money(kind, parse_rub(message.text or ""), _limits(manager))
    except MoneyParseError:
        await message.answer(_money_problem(ctx.tr, AutopayTooSmall(), bill, topup))
        return
    except (AutopayTooSmall, AmountTooLarge) as error:
        await message.answer(_money_problem(ctx.tr, error, bill, topup))
        return
    if EDIT in _start(manager):  # a new amount or limit for an existing autopay
        if topup and not await _topup_change_fits(manager, message, amount):
            return
        await change(
            ctx.uow,
            ctx.linked,
            manager.dialog_data["autopay"],
            ctx.clock(),
            money=amount,
            limits=_limits(manager),
        )
        await _close(manager)
        return
    if topup and not await _topup_setup_fits(manager, message, amount):
        return  # asked again
    manager.dialog_data["limit" if bill else "amount"] = amount
    await manager.switch_to(AutopaySG.method, show_mode=ShowMode.SEND)


async def _topup_setup_fits(manager: DialogManager, message: Message, amount: int) -> bool:
    """A set-up's top-up amount checked when typed, as «Подключить» will (`check_topup`): the
    service's limits for one payment (МГТС's fixed amount: those kept from «Как платить?»),
    the autopay ceiling and, by threshold, the card's ceiling; told with the figures."""
    tr = Ctx(manager).tr
    advance = _advance(manager)
    if advance is not None:
        limits: TopupLimits | None = TopupLimits(int(advance["min"]), int(advance["max"]))
    else:
        limits = await _topup_limits(manager)
    if limits is None:  # the platform does not say now: «Подключить» checks
        return True
    threshold = _set_threshold(manager)
    try:
        check_topup_amount(amount, threshold, limits, _topup_ceiling(manager))
    except TopupDoesNotFit as error:
        if advance is not None:
            low, high = format_rub(advance["min"]), format_rub(advance["max"])
            await message.answer(tr("autopay-advance-out-of-limits", min=low, max=high))
        else:
            ceiling = _topup_ceiling(manager)
            await message.answer(_topup_refusal(tr, error.problem, limits, ceiling, threshold))
        return False
    return True


async def _topup_change_fits(manager: DialogManager, message: Message, amount: int) -> bool:
    """A top-up autopay's new amount checked as at its set-up (`check_topup`: the service's
    limits for one payment and, by threshold, threshold + amount within the card's ceiling —
    `change` checks only the autopay ceiling); if it does not fit the resident is told and
    asked again."""
    ctx = Ctx(manager)
    autopay = await own_autopay(ctx.uow, ctx.linked, manager.dialog_data["autopay"])
    services = await topup_services(ctx.uow, ctx.city, ctx.city, ctx.linked)
    service = service_of(services, autopay.topup_service or "")
    if service is None:  # the service closed: its runs pause the autopay and say so
        return True
    ceiling = money_ceiling(autopay.kind, _limits(manager))[1]
    try:
        check_topup(dataclasses.replace(autopay, amount=amount), service.limits, ceiling)
    except TopupDoesNotFit as error:
        refusal = _topup_refusal(ctx.tr, error.problem, service.limits, ceiling, autopay.threshold)
        await message.answer(refusal)
        return False
    return True


async def methods_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    """Only cards an autopay can charge unattended; a sentence says why the others are not
    offered (their bank asks for 3-D Secure on every charge)."""
    ctx = Ctx(dialog_manager)
    suitable, confirming = await autopay_methods(ctx.uow, ctx.city, ctx.city, ctx.linked)
    dialog_manager.dialog_data["cards"] = {m.id: m.last4 for m in suitable}
    dialog_manager.dialog_data["card_ids"] = {item_ref(m.id): m.id for m in suitable}
    items = [
        (
            item_ref(m.id),
            ctx.tr.label("pay-method-button", brand=m.brand.capitalize(), last4=m.last4),
        )
        for m in suitable
    ]
    text = ctx.tr("autopay-card-ask" if items else "autopay-no-cards")
    if confirming:
        cards = ", ".join(f"•• {m.last4}" for m in confirming)
        text = Markup("\n\n").join([text, ctx.tr("autopay-card-3ds-note", cards=cards)])
    return {"text": text, "methods": items}


async def on_method(callback: CallbackQuery, _w: Any, manager: DialogManager, item_id: str) -> None:
    """A card (its item: the card's `item_ref`, looked up among the cards offered now)."""
    method_id = _shown(manager, "card_ids", item_id)
    if method_id is None or method_id not in manager.dialog_data.get("cards", {}):
        await _forged(callback, manager)
        return
    if EDIT not in _start(manager):
        manager.dialog_data["method_id"] = method_id
        await manager.switch_to(AutopaySG.summary)
        return
    ctx = Ctx(manager)  # «Сменить карту»
    assert callback.message is not None
    try:
        autopay, resumed = await change_card(
            ctx.uow,
            ctx.city,
            ctx.city,
            ctx.linked,
            manager.dialog_data["autopay"],
            method_id,
            ctx.clock(),
        )
    except UnsuitableCard:  # removed or changed at the city since the list was shown
        await callback.message.answer(ctx.tr("autopay-card-unsuitable"))
        manager.show_mode = ShowMode.SEND
        return
    last4 = manager.dialog_data["cards"][method_id]
    if resumed:
        next_at = next_charge(ctx.tr, autopay)
        text = ctx.tr("autopay-card-changed-resumed", last4=last4, next=next_at)
    else:
        text = ctx.tr("autopay-card-changed", last4=last4)
    await callback.message.answer(text)
    await _close(manager)


def _draft(manager: DialogManager, now: datetime) -> Autopay:
    """The autopay this set-up describes: the fields of its kind only."""
    data = manager.dialog_data
    kind = AutopayKind(data["kind"])
    if kind is AutopayKind.BILL:  # «по выставленному счёту»: when its bill is discovered
        schedule = Schedule.on_issue()
    else:
        schedule = Schedule(Frequency(data["frequency"]), int(data["day"]))
    common: dict[str, Any] = {
        "telegram_user_id": Ctx(manager).linked.telegram_user_id,
        "kind": kind,
        "schedule": schedule,
        "method_id": data["method_id"],
        "next_due_at": next_due(schedule, now),
    }
    if kind is AutopayKind.BILL:
        return Autopay(**common, limit=data.get("limit"), bill_kind=BillKind(data["bill_kind"]))
    if kind is AutopayKind.TOPUP:
        return Autopay(
            **common,
            amount=data["amount"],
            topup_service=data["topup_service"],
            topup_account=data["topup_account"],
            threshold=data.get("threshold") if schedule.is_below else None,
        )
    return Autopay(
        **common, amount=data["amount"], fund_id=data["fund_id"], fund_name=data["fund_name"]
    )


async def summary_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    exists = dialog_manager.dialog_data.get(EXISTS)
    if isinstance(exists, dict):  # the resident already has one for this service or fund
        text = Markup(exists["text"])  # a tr text, stored by _show_existing
        return {"text": text, "exists": True, "resume": bool(exists.get("resume"))}
    ctx = Ctx(dialog_manager)
    autopay = _draft(dialog_manager, ctx.clock())
    last4 = dialog_manager.dialog_data["cards"][autopay.method_id]
    first = next_charge(ctx.tr, autopay)
    text = ctx.tr("autopay-summary", last4=last4, first=first, **describe(ctx.tr, autopay))
    return {"text": text, "exists": False, "resume": False}


async def on_confirm(callback: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    ctx = Ctx(manager)
    assert callback.message is not None
    if EXISTS in manager.dialog_data:  # «Подключить» is not shown then: a forged press
        return
    draft = _draft(manager, ctx.clock())
    service = None
    try:
        # What the summary showed is checked with the city again: the card may have been
        # removed, the fund closed, while it was on screen (review 31a).
        suitable, _ = await autopay_methods(ctx.uow, ctx.city, ctx.city, ctx.linked)
        if draft.method_id not in {method.id for method in suitable}:
            raise UnsuitableCard(draft.method_id)
        if draft.fund_id:
            await fund_at_city(ctx.uow, ctx.city, ctx.city, ctx.linked, draft.fund_id)  # gone: 404
        if draft.kind is AutopayKind.TOPUP:  # checked against the service's limits now
            services = await topup_services(ctx.uow, ctx.city, ctx.city, ctx.linked)
            service = service_of(services, draft.topup_service or "")
            if service is None:
                await callback.message.answer(ctx.tr("autopay-topup-closed"))
                await _close(manager)
                return
        await set_up(
            ctx.uow,
            draft,
            ctx.clock(),
            _limits(manager),
            topup_limits=service.limits if service else None,
        )
    except TopupDoesNotFit as error:  # the service's limits changed since they were typed
        assert service is not None
        too_high = _threshold_too_high(ctx.tr, draft.threshold or 0, service.limits)
        if draft.threshold is not None and too_high is not None:  # no amount fits: threshold
            await callback.message.answer(too_high)
            await manager.switch_to(AutopaySG.threshold, show_mode=ShowMode.SEND)
            return
        ceiling = _topup_ceiling(manager)
        refusal = _topup_refusal(ctx.tr, error.problem, service.limits, ceiling, draft.threshold)
        await callback.message.answer(refusal)
        await manager.switch_to(AutopaySG.money, show_mode=ShowMode.SEND)
        return
    except AutopayExists as error:  # set up meanwhile (another set-up, in another message)
        await _show_existing(manager, error.autopay)
        return
    except UnsuitableCard:  # removed at the city, or its bank now asks 3-D Secure each time
        await callback.message.answer(ctx.tr("autopay-card-unsuitable"))
        await manager.switch_to(AutopaySG.method, show_mode=ShowMode.SEND)
        return
    except NotFound:  # the fund closed while the summary was on screen
        await callback.message.answer(ctx.tr("autopay-fund-closed"))
        await manager.switch_to(AutopaySG.fund, show_mode=ShowMode.SEND)
        return
    except (AutopayTooSmall, AmountTooLarge) as error:
        bill = manager.dialog_data.get("kind") == AutopayKind.BILL
        topup = manager.dialog_data.get("kind") == AutopayKind.TOPUP
        await callback.message.answer(_money_problem(ctx.tr, error, bill, topup))
        await manager.switch_to(AutopaySG.money, show_mode=ShowMode.SEND)
        return
    on_issue = manager.dialog_data.get("kind") == AutopayKind.BILL
    created = "autopay-created-below" if draft.below else "autopay-created"
    await callback.message.answer(ctx.tr("autopay-created-on-issue" if on_issue else created))
    await _close(manager)


def build_dialog() -> Dialog:
    pick: SelectIds = {"item_id_getter": lambda i: i[0]}
    return Dialog(
        Window(
            *body("text", "autopay_text_1"),
            one_per_row(
                Select(Format("{item[1]}"), id="ap", items="autopays", on_click=on_autopay, **pick),
                id="ap_list",
            ),
            Button(Tr("autopay-add"), id="add", on_click=on_add),
            Cancel(Tr("nav-back")),
            HintOnText(),
            getter=list_getter,
            state=AutopaySG.list,
        ),
        Window(
            *body("text", "autopay_text_2"),
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
            Button(Tr("autopay-edit-card"), id="new_card", on_click=_edit(AutopaySG.method)),
            Button(Tr("autopay-edit-money"), id="money", on_click=_edit(AutopaySG.money)),
            Button(
                Tr("autopay-edit-day"),
                id="day",
                on_click=_edit(AutopaySG.frequency),
                when=~F["on_issue"],
            ),
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
            Button(Tr("autopay-kind-topup"), id="topup", on_click=on_kind_topup),
            Cancel(Tr("nav-back")),
            HintOnText(),
            state=AutopaySG.kind,
        ),
        Window(
            *body("text", "autopay_text_3"),
            one_per_row(
                Select(
                    Format("{item[1]}"), id="svc", items="services", on_click=on_service, **pick
                ),
                id="svc_list",
            ),
            SwitchTo(Tr("nav-back"), id="back", state=AutopaySG.kind),
            HintOnText(),
            getter=services_getter,
            state=AutopaySG.service,
        ),
        Window(
            *body("text", "autopay_text_8"),
            Button(Tr("autopay-how-bill"), id="by_bill", on_click=on_how_bill),
            Button(Tr("autopay-how-fixed"), id="fixed", on_click=on_how_fixed),
            SwitchTo(Tr("nav-back"), id="back", state=AutopaySG.service),
            HintOnText(),
            getter=how_getter,
            state=AutopaySG.how,
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
            Button(Tr("autopay-below"), id="below", on_click=on_below, when="topup"),
            Cancel(Tr("pay-cancel")),
            HintOnText(),
            getter=frequency_getter,
            state=AutopaySG.frequency,
        ),
        Window(
            Tr("autopay-threshold-ask"),
            MessageInput(on_threshold, content_types=ContentType.TEXT),
            SwitchTo(Tr("nav-back"), id="back", state=AutopaySG.frequency),
            state=AutopaySG.threshold,
        ),
        Window(
            *body("text", "autopay_text_7"),
            one_per_row(
                Select(
                    Format("{item[1]}"),
                    id="tacc",
                    items="accounts",
                    on_click=on_topup_account,
                    **pick,
                ),
                id="tacc_list",
            ),
            SwitchTo(Tr("nav-back"), id="back", state=AutopaySG.kind, when=~F["advance"]),
            Cancel(Tr("pay-cancel"), id="cancel", when="advance"),
            HintOnText(),
            getter=topups_getter,
            state=AutopaySG.topup,
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
            *body("text", "autopay_text_4"),
            MessageInput(on_money, content_types=ContentType.TEXT),
            SwitchTo(
                Tr("nav-back"),
                id="back",
                state=AutopaySG.frequency,
                when=~F["editing"] & ~F["bill"],
            ),
            SwitchTo(
                Tr("nav-back"),
                id="back_svc",
                state=AutopaySG.service,
                when=~F["editing"] & F["bill"],
            ),
            Cancel(Tr("nav-back"), id="cancel", when=F["editing"]),
            getter=money_getter,
            state=AutopaySG.money,
        ),
        Window(
            *body("text", "autopay_text_5"),
            one_per_row(
                Select(Format("{item[1]}"), id="card", items="methods", on_click=on_method, **pick),
                id="card_list",
            ),
            Cancel(Tr("pay-cancel")),
            HintOnText(),
            getter=methods_getter,
            state=AutopaySG.method,
        ),
        Window(
            *body("text", "autopay_text_6"),
            Button(Tr("autopay-confirm"), id="confirm", on_click=on_confirm, when=~F["exists"]),
            Button(Tr("autopay-exists-open"), id="open", on_click=on_exists_open, when="exists"),
            Button(Tr("autopay-resume"), id="resume", on_click=on_exists_resume, when="resume"),
            Cancel(Tr("pay-cancel")),
            HintOnText(),
            getter=summary_getter,
            state=AutopaySG.summary,
        ),
        on_start=on_start,
        on_process_result=on_result,
        name="autopay",
    )
