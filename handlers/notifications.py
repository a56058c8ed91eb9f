"""How each kind of outbox notification reads and which buttons it carries, and the buttons
that answer them (a report's confirm/refute lives in my_reports; autopay's skip is here)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from aiogram import Router
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder
from aiogram_dialog import DialogManager
from markupsafe import Markup

from domain.accounts import Resident
from domain.autopay import CHARGE_AT, MOSCOW, AutopayKind, PauseReason
from domain.autopaying import skip_once
from domain.bills import BillKind
from domain.errors import NotFound
from domain.meter_reminders import METER_WINDOW
from domain.money import format_rub
from domain.ports import UnitOfWork
from domain.reporting import REPORT_SENT
from domain.reports import ReportStatus
from domain.support import DASHBOARD_KINDS
from handlers import bill_notice, meter_window
from handlers.autopay import OPEN, SERVICE_KEYS, topup_what
from handlers.buttons import (
    ButtonId,
    Period,
    drop_keyboard,
    first_press,
    forged,
    on_forged,
    remember_press,
)
from handlers.meter_window import render_meter_window
from handlers.my_reports import STATUS_KEYS, answer_keyboard, full_answer_keyboard
from handlers.navigation import start_over_menu
from handlers.ports import Texts
from handlers.states import AutopaySG
from handlers.support import render_dashboard
from handlers.texts import MAX_VALUE, shorten, shown_len

# Bot API sendPhoto: a caption is 0–1,024 characters after entities parsing (UTF-16 units).
CAPTION_LIMIT = 1024
# Each outside value's cut in a caption, tried in turn until the caption fits (three values
# at 60 units and the text's own words always do).
CAPTION_CUTS = (MAX_VALUE, 250, 120, 60)
# Kinds the resident may turn off in «Настройки»; urgent notifications come regardless.
SETTING_KINDS = {
    "report_status": "settings-report-status",
    "autopay_reminder": "settings-autopay-reminder",
    "autopay_paid": "settings-autopay-result",
    METER_WINDOW: "settings-meter-window",
    bill_notice.KIND: "settings-bill-issued",
}
AUTOPAY_KEYS = {
    "autopay_reminder": "notify-autopay-reminder",
    "autopay_paid": "notify-autopay-paid",
    "autopay_over_limit": "notify-autopay-over-limit",
    "autopay_failed": "notify-autopay-failed",
    "autopay_topup_full": "notify-autopay-topup-full",
    "autopay_card_expired": "notify-autopay-card-expired",  # written before pauses existed
    "autopay_missed": "notify-autopay-missed",
}
# «autopay_failed»: what really happened, by the run's failure (declined is the default).
FAILED_KEYS = {
    "declined": "notify-autopay-failed",
    "insufficient_funds": "notify-autopay-failed-funds",
    "canceled": "notify-autopay-failed-canceled",
    "expired_card": "notify-autopay-card-expired",
    "refused": "notify-autopay-failed-refused",
}
# «autopay_paused»: why, and how to fix it.
PAUSED_KEYS = {
    PauseReason.CARD_REMOVED: "notify-autopay-paused-card-removed",
    PauseReason.CARD_EXPIRED: "notify-autopay-paused-card-expired",
    PauseReason.NEEDS_CONFIRMATION: "notify-autopay-paused-needs-confirmation",
    PauseReason.RELINK: "notify-autopay-paused-relink",
    PauseReason.TARGET_GONE: "notify-autopay-paused-target-gone",
    PauseReason.OVER_CEILING: "notify-autopay-paused-over-ceiling",
    PauseReason.TOPUP_LIMITS: "notify-autopay-paused-topup-limits",
    PauseReason.NO_BALANCE: "notify-autopay-paused-no-balance",
}


class AutopaySkip(CallbackData, prefix="as"):
    autopay: ButtonId
    period: Period


class AutopayOpen(CallbackData, prefix="ao"):
    autopay: ButtonId


def _autopay_words(tr: Texts, data: dict[str, Any]) -> dict[str, Markup]:
    if data.get("kind") == AutopayKind.BILL and data.get("bill_kind"):
        what = tr("autopay-what-bill", service=tr(SERVICE_KEYS[BillKind(data["bill_kind"])]))
        how = tr("autopay-how-limit", limit=format_rub(data.get("limit") or 0))
    elif data.get("kind") == AutopayKind.TOPUP:
        what = topup_what(tr, data.get("topup_service"), data.get("topup_account"), plain=False)
        how = tr("autopay-how-amount", amount=format_rub(data.get("amount") or 0))
    else:
        what = tr("autopay-what-fund", fund=data.get("fund_name") or "")
        how = tr("autopay-how-amount", amount=format_rub(data.get("amount") or 0))
    return {"what": what, "how": how}


def charge_moment(data: dict[str, Any]) -> datetime | None:
    """When a reminded charge happens: `charge_at`, or for rows written before it was stored,
    `due` at the charge hour (Moscow time); None when neither reads. The reminder names the
    date, never "tomorrow": quiet hours may hold a reminder written the evening before until
    the morning of the charge."""
    try:
        moment = datetime.fromisoformat(str(data["charge_at"]))
        if moment.tzinfo is not None:
            return moment
    except (KeyError, ValueError):
        pass
    try:
        return datetime.combine(date.fromisoformat(str(data["due"])), CHARGE_AT, MOSCOW)
    except (KeyError, ValueError):
        return None


def _when(tr: Texts, moment: datetime | None) -> Markup:
    if moment is None:
        return tr("notify-autopay-when-unknown")
    local = moment.astimezone(MOSCOW)
    return tr("notify-autopay-when", day=local.strftime("%d.%m"), time=local.strftime("%H:%M"))


def _dates(days: object) -> str:
    """«02.12, 09.12» of the ISO dates a notification names (what does not read is left out)."""
    shown = []
    for day in days if isinstance(days, list) else []:
        try:
            shown.append(date.fromisoformat(str(day)).strftime("%d.%m"))
        except ValueError:
            continue
    return ", ".join(shown)


def render(
    kind: str, data: dict[str, Any], tr: Texts
) -> tuple[Markup, InlineKeyboardMarkup | None, str | None]:
    """(text, buttons, photo URL) for a notification; unknown kinds raise KeyError."""
    if kind in DASHBOARD_KINDS:  # for staff, in the support supergroup's dashboard topic
        return render_dashboard(kind, data, tr), None, None
    if kind == METER_WINDOW:
        return render_meter_window(data, tr)
    if kind == "report_status":
        status = ReportStatus(data["status"])
        answer = str(data.get("text") or "")
        photo = data.get("media_url")
        # With the city's photo the text is its caption (1,024, not 4,096): the outside values
        # are cut shorter until it fits — before, a long theme and answer made Telegram refuse
        # the photo and it was lost (review 35c). Measured as Telegram counts, once parsed:
        # on the HTML, an answer of «&» was cut to half of what fits (review 35d).
        for cut in CAPTION_CUTS:
            shown = shorten(answer, cut)
            text = tr(
                "notify-report-status",
                number=shorten(str(data["report_id"]), cut),
                theme=shorten(str(data.get("theme", "")), cut),
                status=tr(STATUS_KEYS[status]),
                text=Markup("\n") + shown if answer else "",  # `+` escapes it
            )
            if not photo or shown_len(text) <= CAPTION_LIMIT:
                break
        markup = answer_keyboard(tr, data["report_id"]) if data.get("askable") else None
        if shown != answer:  # the whole answer is on the report's card
            markup = full_answer_keyboard(tr, data["report_id"], markup)
        return text, markup, photo
    if kind == REPORT_SENT:  # a send whose answer was lost, settled by discovery
        address = str(data.get("address") or "")
        text = tr(
            "notify-report-sent",
            number=data["report_id"],
            theme=data.get("theme", ""),
            address=Markup("\n📍 ") + shorten(address) if address else "",  # `+` escapes it
        )
        return text, None, None
    if kind == bill_notice.KIND:  # «Пришёл счёт»; «Пропустить этот раз» when its autopay pays
        skip = None
        if data.get("autopay_id") is not None and data.get("period"):
            skip = InlineKeyboardButton(
                text=tr.label("notify-autopay-skip"),
                callback_data=AutopaySkip(
                    autopay=int(data["autopay_id"]), period=str(data["period"])
                ).pack(),
            )
        text, keyboard = bill_notice.render_bill_issued(data, tr, skip)
        return text, keyboard, None
    words = _autopay_words(tr, data)
    charged = data.get("amount_charged")
    if kind == "autopay_paused" and data.get("in_doubt"):  # its last charge is not known yet
        key = "notify-autopay-paused-in-doubt"
    elif kind == "autopay_paused":
        key = PAUSED_KEYS.get(PauseReason(data["reason"]), "notify-autopay-paused-target-gone")
    elif kind == "autopay_failed":
        key = FAILED_KEYS.get(str(data.get("failure")), "notify-autopay-failed")
        if data.get("bill_id"):  # on issue: no schedule follows, the bill is theirs to pay
            key = bill_notice.failed_key(data.get("failure"))
    else:
        key = AUTOPAY_KEYS[kind]
    text = tr(
        key,
        amount=format_rub(charged or data.get("amount") or 0),
        limit=format_rub(data.get("limit") or 0),
        ceiling=format_rub(int(data.get("ceiling") or 0)),
        receipt=str(data.get("receipt") or ""),
        when=_when(tr, charge_moment(data)),
        missed=_dates(data.get("missed")),
        **words,
    )
    markup = None
    if kind == "autopay_reminder":
        builder = InlineKeyboardBuilder()
        builder.button(
            text=tr.label("notify-autopay-skip"),
            callback_data=AutopaySkip(autopay=int(data["autopay_id"]), period=data["period"]),
        )
        markup = builder.as_markup()
    elif kind in ("autopay_failed", "autopay_over_limit") and data.get("bill_id"):
        pay = bill_notice.pay_button(tr, str(data["bill_id"]))  # on issue: that bill
        markup = InlineKeyboardMarkup(inline_keyboard=[[pay]])
    elif kind == "autopay_paused" and data.get("autopay_id") is not None:
        builder = InlineKeyboardBuilder()
        builder.button(
            text=tr.label("notify-autopay-open"),
            callback_data=AutopayOpen(autopay=int(data["autopay_id"])),
        )
        markup = builder.as_markup()
    return text, markup, None


async def on_skip(
    callback: CallbackQuery,
    callback_data: AutopaySkip,
    uow: UnitOfWork,
    tr: Texts,
    state: FSMContext,
    resident: Resident | None = None,
) -> None:
    """«Пропустить этот раз», once: a second tap (or a tap after it worked) gets a short
    answer and changes nothing; another resident's autopay id is refused."""
    key = await first_press(callback, state, tr, resident)
    if key is None or resident is None:
        return
    try:
        skipped = await skip_once(uow, resident, callback_data.autopay, callback_data.period)
    except NotFound:
        await callback.answer(tr.label("error-forged-button"))  # another resident's autopay
        return
    await remember_press(state, key)
    await callback.answer(
        tr.label("notify-autopay-skipped" if skipped else "notify-autopay-skip-late")
    )
    if callback.message is not None:
        await callback.message.answer(
            tr("notify-autopay-skipped" if skipped else "notify-autopay-skip-late")
        )
    await drop_keyboard(callback, state)


async def on_open(
    callback: CallbackQuery,
    callback_data: AutopayOpen,
    dialog_manager: DialogManager,
    tr: Texts,
    resident: Resident | None = None,
) -> None:
    """A paused autopay's «Открыть автоплатёж»: its card in «Автоплатежи» (the dialog checks
    that it is this resident's; another's id shows the list)."""
    if resident is None:
        await callback.answer(tr.label("error-not-linked"), show_alert=True)
        return
    await callback.answer()
    await start_over_menu(dialog_manager, AutopaySG.list, {OPEN: callback_data.autopay})


def build_router() -> Router:
    router = Router(name="notification_answers")
    router.callback_query.register(on_skip, AutopaySkip.filter())
    router.callback_query.register(on_open, AutopayOpen.filter())
    router.callback_query.register(on_forged, forged(AutopaySkip))
    router.callback_query.register(on_forged, forged(AutopayOpen))
    meter_window.register(router)
    bill_notice.register(router)
    return router
