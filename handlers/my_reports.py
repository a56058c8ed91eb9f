"""«Мои обращения»: reports with statuses and history; «Подтвердить» / «Не устранено» while
the 15-day window is open — from the card or from the status notification."""

from __future__ import annotations

import io
import re
from datetime import datetime
from typing import Any, Literal

from aiogram import F, Router
from aiogram.enums import ContentType
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder
from aiogram_dialog import Data, Dialog, DialogManager, ShowMode, Window
from aiogram_dialog.widgets.input import MessageInput
from aiogram_dialog.widgets.kbd import Button, Cancel, Select, SwitchTo
from aiogram_dialog.widgets.text import Format
from markupsafe import Markup

from domain.accounts import Resident
from domain.errors import DomainError, NotFound
from domain.ports import City, UnitOfWork
from domain.reporting import (
    ConfirmWindowClosed,
    ReportAlreadyClosed,
    confirm_fix,
    my_report,
    my_reports,
    refutable_report,
    refute_fix,
)
from domain.reports import MAX_DESCRIPTION, ReportStatus, ReportUpdate, clean_description
from domain.typed_text import visible
from handlers.buttons import (
    ITEM_REF,
    REPORT_NUMBER,
    ReportNumber,
    by_ref,
    drop_keyboard,
    forged,
    item_ref,
    on_forged,
    press_key,
    pressed_before,
    remember_press,
)
from handlers.navigation import start_over_menu
from handlers.payments import Ctx
from handlers.ports import Texts
from handlers.states import MyReportsSG
from handlers.texts import error_text, format_date, format_datetime, whole
from handlers.widgets import HintOnText, Html, Paged, PagerRow, ScrollingGroup, Tr, body

STATUS_KEYS = {
    ReportStatus.MODERATION: "report-status-moderation",
    ReportStatus.IN_WORK: "report-status-in-work",
    ReportStatus.ANSWERED: "report-status-answered",
    ReportStatus.REJECTED: "report-status-rejected",
    ReportStatus.CLOSED: "report-status-closed",
    ReportStatus.RETURNED: "report-status-returned",
}
PAGE_SIZE = 8  # reports per page of «Мои обращения»
LISTED = "listed"  # dialog data: the numbers of the reports «Мои обращения» lists
_NUMBER = re.compile(REPORT_NUMBER)
_REF = re.compile(ITEM_REF)


class ReportAction(CallbackData, prefix="ra"):
    """A button under a status notification: ids only; checked against the presser."""

    # "ok", "no" or "show" (the card, for an answer too long for a notification)
    action: Literal["ok", "no", "show"]
    # The report's number, or — for a number callback data cannot carry (Open311 sets no
    # limit on its length, callback data has 64 bytes: a 41-character number made its notice
    # fail to render, never sent, review 35c) — its `item_ref` (which the same pattern takes),
    # looked up among the presser's followed reports (`_report_pressed`). The number itself
    # where it fits, so a press on a report the presser no longer follows (another
    # account's) still names it and is told why.
    report: ReportNumber


def _report_value(report_id: str) -> str:
    """What a notice's button carries for the report `report_id` (`ReportAction.report`)."""
    return report_id if _NUMBER.fullmatch(report_id) else item_ref(report_id)


def answer_keyboard(tr: Texts, report_id: str) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    ref = _report_value(report_id)
    builder.button(
        text=tr.label("report-confirm"), callback_data=ReportAction(action="ok", report=ref)
    )
    builder.button(
        text=tr.label("report-refute"), callback_data=ReportAction(action="no", report=ref)
    )
    return builder.as_markup()


async def _report_pressed(
    uow: UnitOfWork, city: City, resident: Resident, value: str, now: datetime
) -> str:
    """The number of the report a notice's button names (`_report_value`): a number itself,
    or the report whose `item_ref` it is — among the presser's followed reports, else among
    the account's reports at the city (followed reports are forgotten at unlinking, so a
    notice of before it named nothing, review 35d). NotFound when none is: a reference is
    never sent to the city as if it were a number."""
    followed = await uow.tracked_reports.of_resident(resident.telegram_user_id)
    found = by_ref(followed, value, lambda report: report.report_id)
    if found is not None:
        return found.report_id
    if _REF.fullmatch(value) is None or any(r.report_id == value for r in followed):
        return value  # a number (the city tells whether it is the presser's)
    reports = await my_reports(uow, city, resident, now)
    account = by_ref(reports, value, lambda r: r.id) or next(
        (r for r in reports if r.id == value),
        None,  # a number that looks like a reference
    )
    if account is None:
        raise NotFound()
    return account.id


def full_answer_keyboard(
    tr: Texts, report_id: str, markup: InlineKeyboardMarkup | None
) -> InlineKeyboardMarkup:
    """«Показать полностью» under a notification whose city answer was shortened: the
    report's card in «Мои обращения» shows it whole, page by page."""
    builder = InlineKeyboardBuilder()
    show = ReportAction(action="show", report=_report_value(report_id))
    builder.button(text=tr.label("report-show-full"), callback_data=show)
    if markup is not None:
        builder.attach(InlineKeyboardBuilder(markup=markup.inline_keyboard))
    return builder.as_markup()


async def list_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = Ctx(dialog_manager)
    tr = ctx.tr
    try:
        reports = await my_reports(ctx.uow, ctx.city, ctx.linked, ctx.clock())
    except DomainError as error:
        return {"text": error_text(tr, error), "reports": []}
    if not reports:
        return {"text": tr("my-reports-empty"), "reports": []}
    # A button carries the report's `item_ref`, not its number (no limit on its length, 64
    # bytes of callback data: review 35c); the numbers listed are kept to look it up.
    dialog_manager.dialog_data[LISTED] = [r.id for r in reports]
    items = [
        (
            item_ref(r.id),
            tr.label(
                "my-reports-line", number=r.id, theme=r.theme_name, status=tr(STATUS_KEYS[r.status])
            ),
        )
        for r in reports
    ]
    return {"text": tr("my-reports-title"), "reports": items}


async def on_report(callback: CallbackQuery, _w: Any, manager: DialogManager, ref: str) -> None:
    report_id = by_ref(manager.dialog_data.get(LISTED, []), ref, str)
    if report_id is None:  # not a report of the list drawn: forged
        await callback.answer(Ctx(manager).tr.label("error-forged-button"))
        return
    manager.dialog_data["report"] = report_id
    await manager.switch_to(MyReportsSG.card)


async def card_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = Ctx(dialog_manager)
    tr = ctx.tr
    report_id = dialog_manager.dialog_data.get("report", "")
    try:
        report = await my_report(ctx.uow, ctx.city, ctx.linked, report_id)
    except DomainError as error:  # a foreign id (ForeignReport) shows nothing of it
        return {"text": error_text(tr, error), "askable": False, "failed": True}
    updates = await ctx.city.report_updates(report.id)
    # The card is paged: the city's answer and the history are shown whole.
    lines: list[str] = [
        tr("report-card", number=report.id, theme=whole(report.theme_name),
           address=whole(report.address or "—"), status=tr(STATUS_KEYS[report.status]))
    ]  # fmt: skip
    if report.expected_at and not report.status.final:
        lines.append(tr("report-card-expected", expected=format_date(report.expected_at.date())))
    if report.status_notes:  # the latest update's text: the city's, or the resident's own
        own_words = bool(updates) and _own_words(updates[-1])
        notes_key = "report-card-own-notes" if own_words else "report-card-notes"
        lines.append(tr(notes_key, notes=whole(report.status_notes)))
    askable = report.can_confirm(ctx.clock()) and report.account_id == ctx.linked.city_account_id
    if askable and report.confirm_until is not None:
        lines.append(tr("report-confirm-until", until=format_datetime(report.confirm_until)))
    if updates:
        lines += ["", tr("report-history")] + [
            tr("report-history-own-line" if _own_words(u) else "report-history-line",
               date=format_datetime(u.at), status=tr(STATUS_KEYS[u.status]),
               text=Markup(": ") + whole(u.description) if u.description else "")
            for u in updates
        ]  # fmt: skip
    return {"text": Markup("\n").join(lines), "askable": askable}


def _own_words(update: ReportUpdate) -> bool:
    """The resident's own comment (a «Не устранено»): an update by the author that did not
    close the report — a confirmation's text is the platform's note, not theirs."""
    return update.by_resident and update.status is not ReportStatus.CLOSED


async def _confirm(
    uow: UnitOfWork, city: City, resident: Resident, tr: Texts, report_id: str, now: Any
) -> tuple[str, bool]:
    """(the answer, whether the button is spent: confirmed, or the window has closed). The
    platform credits the points with the confirmation and says how many in its answer."""
    try:
        report = await confirm_fix(uow, city, resident, report_id, now)
    except ReportAlreadyClosed:
        return tr("report-already-closed"), True
    except ConfirmWindowClosed:
        return tr("report-window-closed"), True
    except DomainError as error:
        return error_text(tr, error), False
    if report.points_credited > 0:
        return tr("report-confirmed-points", points=report.points_credited), True
    return tr("report-confirmed"), True


async def on_confirm(callback: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    """The card's «Подтвердить», once per report: a second tap gets a short answer."""
    ctx = Ctx(manager)
    report_id = manager.dialog_data["report"]
    if manager.dialog_data.get("confirmed") == report_id:
        await callback.answer(ctx.tr.label("button-already-done"))
        return
    text, spent = await _confirm(ctx.uow, ctx.city, ctx.linked, ctx.tr, report_id, ctx.clock())
    if spent:
        manager.dialog_data["confirmed"] = report_id
    assert callback.message is not None
    await callback.message.answer(text)
    manager.show_mode = ShowMode.SEND


async def on_refute_start(data: Data, manager: DialogManager) -> None:
    """A notice's «Весь ответ» (the card) or «Не устранено»: the latter is checked first
    (`refutable_report`), so a report of the account linked before, or one closed meanwhile,
    is refused at the press — not after the resident wrote why and chose a photo."""
    if not isinstance(data, dict) or "report" not in data:
        return
    manager.dialog_data["report"] = data["report"]
    if data.get("show"):
        await manager.switch_to(MyReportsSG.card)
        return
    ctx = Ctx(manager)
    try:
        await refutable_report(ctx.uow, ctx.city, ctx.linked, data["report"], ctx.clock())
    except DomainError as error:
        manager.dialog_data["result"] = _refusal(ctx.tr, error)
        await manager.switch_to(MyReportsSG.card)
        return
    await manager.switch_to(MyReportsSG.refute)


def _refusal(tr: Texts, error: DomainError) -> str:
    """Why «Не устранено» cannot be said of the report."""
    if isinstance(error, ReportAlreadyClosed):
        return str(tr("report-already-closed"))
    if isinstance(error, ConfirmWindowClosed):
        return str(tr("report-window-closed"))
    return str(error_text(tr, error))


async def on_refute_comment(message: Message, _w: MessageInput, manager: DialogManager) -> None:
    # As a report's description (the city's rules are the same): plain text, angle brackets
    # turned (the city refuses HTML), up to MAX_DESCRIPTION, never cut without a word.
    ctx = Ctx(manager)
    comment = clean_description(message.text or "")
    if comment is None:
        length = str(len(visible(message.text or "")))
        await message.answer(ctx.tr("report-refute-long", max=str(MAX_DESCRIPTION), length=length))
        return
    if not comment:  # only what shows nothing: the city would refuse an empty description
        await message.answer(ctx.tr("input-no-visible-text"))
        return
    manager.dialog_data["comment"] = comment
    await manager.switch_to(MyReportsSG.refute_photo, show_mode=ShowMode.SEND)


async def _refute(manager: DialogManager, message: Message | None) -> None:
    ctx = Ctx(manager)
    photo = None
    if message is not None and message.photo and message.bot is not None:
        buffer = io.BytesIO()
        await message.bot.download(message.photo[-1].file_id, destination=buffer)
        photo = (buffer.getvalue(), "image/jpeg")
    try:
        await refute_fix(ctx.uow, ctx.city, ctx.linked, manager.dialog_data["report"],
                         manager.dialog_data.get("comment", ""), photo, ctx.clock())  # fmt: skip
    except DomainError as error:
        manager.dialog_data["result"] = _refusal(ctx.tr, error)
    else:
        manager.dialog_data["result"] = ctx.tr("report-refuted")
    await manager.switch_to(MyReportsSG.card, show_mode=ShowMode.SEND)


async def on_refute_photo(message: Message, _w: MessageInput, manager: DialogManager) -> None:
    await _refute(manager, message)


async def on_refute_no_photo(_c: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    await _refute(manager, None)


async def result_getter(dialog_manager: DialogManager, **kwargs: Any) -> dict[str, Any]:
    """The card with the outcome of «Не устранено» above it — alone when the card cannot be
    shown (the report is not this account's, the city down): that error is the outcome's
    own reason, and said twice it read as two failures."""
    data = await card_getter(dialog_manager, **kwargs)
    result = Markup(dialog_manager.dialog_data.pop("result", ""))  # a tr text (_refusal)
    if not result:
        return data
    if data.get("failed"):
        return {**data, "text": result}
    return {**data, "text": result + "\n\n" + data["text"]}


def build_dialog() -> Dialog:
    return Dialog(
        Window(
            *body("text", "my_reports_text_1"),
            ScrollingGroup(
                Select(
                    Format("{item[1]}"),
                    id="report",
                    item_id_getter=lambda i: i[0],
                    items="reports",
                    on_click=on_report,
                ),
                id="reports_page",
                width=1,
                height=PAGE_SIZE,
                hide_on_single_page=True,
            ),
            Cancel(Tr("nav-back")),
            HintOnText(),
            getter=list_getter,
            state=MyReportsSG.list,
        ),
        Window(
            Paged(Html("{text}"), id="card_page"),
            PagerRow("card_page"),
            Button(Tr("report-confirm"), id="ok", on_click=on_confirm, when=F["askable"]),
            SwitchTo(Tr("report-refute"), id="no", state=MyReportsSG.refute, when=F["askable"]),
            SwitchTo(Tr("nav-back"), id="back", state=MyReportsSG.list),
            HintOnText(),
            getter=result_getter,
            state=MyReportsSG.card,
        ),
        Window(
            Tr("report-refute-ask"),
            MessageInput(on_refute_comment, content_types=ContentType.TEXT),
            SwitchTo(Tr("nav-back"), id="back", state=MyReportsSG.card),
            state=MyReportsSG.refute,
        ),
        Window(
            Tr("report-refute-photo"),
            MessageInput(on_refute_photo, content_types=ContentType.PHOTO),
            Button(Tr("report-refute-no-photo"), id="nophoto", on_click=on_refute_no_photo),
            state=MyReportsSG.refute_photo,
        ),
        on_start=on_refute_start,
        name="my_reports",
    )


async def on_notification_button(
    callback: CallbackQuery,
    callback_data: ReportAction,
    uow: UnitOfWork,
    city: City,
    tr: Texts,
    clock: Any,
    dialog_manager: DialogManager,
    state: FSMContext,
    resident: Resident | None = None,
) -> None:
    """«Подтвердить» / «Не устранено» under a status notification. «Подтвердить» works once:
    a second tap gets a short answer and asks the city nothing."""
    if resident is None:
        await callback.answer(tr.label("error-not-linked"), show_alert=True)
        return
    report_id = await _report_pressed(uow, city, resident, callback_data.report, clock())
    if callback_data.action in ("no", "show"):
        await callback.answer()
        await start_over_menu(
            dialog_manager,
            MyReportsSG.refute,
            {"report": report_id, "show": callback_data.action == "show"},
        )
        return
    key = press_key(callback)
    if await pressed_before(state, key):
        await callback.answer(tr.label("button-already-done"))
        await drop_keyboard(callback, state)
        return
    text, spent = await _confirm(uow, city, resident, tr, report_id, clock())
    await callback.answer()
    if spent:
        await remember_press(state, key)
    if callback.message is not None:
        await callback.message.answer(text)
        if spent:
            await drop_keyboard(callback, state)


def build_router() -> Router:
    router = Router(name="report_answers")
    router.callback_query.register(on_notification_button, ReportAction.filter())
    router.callback_query.register(on_forged, forged(ReportAction))
    return router
