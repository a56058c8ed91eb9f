"""«Показания счётчиков»: the meters with their last readings; a reading per meter, checked
before sending (a plain number within what the dial shows, not below the last one; a huge
jump is confirmed); outside the window the bot says when it opens; after acceptance the points
credited are shown. A reading sent this period can be corrected while the window is open
(«Исправить показание»): the value is replaced, no points are credited again. A meter's
button carries the meter's reference (`handlers.buttons.item_ref`), never the platform's id
(any length) nor a position (it would name another meter once the list changed)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from aiogram import F
from aiogram.enums import ContentType
from aiogram.types import CallbackQuery, Message
from aiogram_dialog import Dialog, DialogManager, ShowMode, Window
from aiogram_dialog.widgets.input import MessageInput
from aiogram_dialog.widgets.kbd import Button, Cancel, Select, SwitchTo
from aiogram_dialog.widgets.text import Format
from markupsafe import Markup

from domain.errors import DomainError
from domain.meters import (
    MAX_READING,
    Meter,
    MeterKind,
    NothingToCorrect,
    ReadingAlreadySubmitted,
    ReadingBelowPrevious,
    ReadingProblem,
    WindowClosed,
    check_correction,
    check_reading,
    correct_reading,
    format_reading,
    moscow_date,
    new_correction_nonce,
    parse_reading,
    reading_this_period,
    resident_meters,
    submit_reading,
)
from domain.money import has_foreign_digit
from handlers.buttons import by_ref, item_ref
from handlers.context import ResidentContext, context_of
from handlers.ports import Texts
from handlers.states import MetersSG
from handlers.texts import error_text, format_date
from handlers.widgets import HintOnText, Tr, body, one_per_row

KIND_KEYS = {
    MeterKind.COLD_WATER: "meter-cold-water",
    MeterKind.HOT_WATER: "meter-hot-water",
    MeterKind.ELECTRICITY: "meter-electricity",
}
UNIT_KEYS = {"m3": "unit-m3", "kWh": "unit-kwh"}
PROBLEM_KEYS = {
    ReadingProblem.NOT_A_NUMBER: "meters-not-a-number",
    ReadingProblem.NEGATIVE: "meters-negative",
    ReadingProblem.TOO_PRECISE: "meters-too-precise",
    ReadingProblem.TOO_LARGE: "meters-too-large",
}
# dialog_data keys
METER, VALUE, USED, RESULT = "meter", "value", "used", "result"
CORRECTION = "correction"  # the nonce of the correction under way; absent: a new reading
OVER_SENT = "over_sent"  # a correction asked about: the period of the reading it replaces
CAN_CORRECT = "can_correct"  # the done window offers «Исправить показание»
SHOWN = "meter_ids"  # the platform's ids of the meters listed, in the order of their buttons


def _unit(tr: Texts, meter: Meter) -> str:
    return tr(UNIT_KEYS.get(meter.unit, "unit-m3"))


def _water(meter: Meter) -> str:
    return "yes" if meter.kind.is_water else "no"


def _last(tr: Texts, meter: Meter) -> str:
    if meter.last_reading is None:
        return tr("meters-no-last")
    return tr(
        "meters-last",
        value=format_reading(meter.kind, meter.last_reading.value),
        unit=_unit(tr, meter),
        period=meter.last_reading.period,
    )


async def _meters(ctx: ResidentContext) -> dict[str, Meter]:
    return {m.id: m for m in await resident_meters(*ctx.acting)}


def _already_sent(tr: Texts, meter: Meter, period: str, value: Decimal) -> Markup:
    return tr(
        "meters-already-sent",
        name=tr(KIND_KEYS[meter.kind]),
        serial=meter.serial,
        value=format_reading(meter.kind, value),
        unit=_unit(tr, meter),
        period=period,
        closes_on=format_date(meter.window.closes_on),
    )


async def list_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = context_of(dialog_manager)
    tr = ctx.tr
    try:
        meters = list((await _meters(ctx)).values())
    except DomainError as error:
        return {"text": error_text(tr, error), "meters": []}
    if not meters:
        return {"text": tr("meters-none"), "meters": []}
    today = moscow_date(ctx.now)
    lines = [tr("meters-title")]
    for meter in meters:
        line = tr("meters-line", name=tr(KIND_KEYS[meter.kind]), serial=meter.serial,
                  last=_last(tr, meter))  # fmt: skip
        is_open = meter.window.contains(today)  # the city's window: it may keep one open longer
        if meter.submitted_this_period and is_open:
            status = tr("meters-sent-fixable", period=meter.current_period,
                        closes_on=format_date(meter.window.closes_on))  # fmt: skip
        elif meter.submitted_this_period:
            status = tr("meters-sent", period=meter.current_period)
        elif is_open:
            status = tr("meters-window-open", closes_on=format_date(meter.window.closes_on))
        else:
            status = tr("meters-window-closed", opens_on=format_date(meter.window.opens_on))
        lines.append(line + "\n" + status)
    # A button carries the meter's `item_ref`, never the platform's id (no limit on its
    # length in the contract; Telegram refuses callback data over 64 bytes).
    dialog_manager.dialog_data[SHOWN] = [m.id for m in meters]
    buttons = [(item_ref(m.id), f"{tr.label(KIND_KEYS[m.kind])} № {m.serial}") for m in meters]
    return {"text": Markup("\n\n").join(lines), "meters": buttons}


async def on_meter(callback: CallbackQuery, _w: Any, manager: DialogManager, item_id: str) -> None:
    """A meter (its item: the meter's `item_ref`); a meter not in the list drawn last is a
    forged or outdated button: the toast, nothing opened."""
    meter_id = by_ref(manager.dialog_data.get(SHOWN, []), item_id, str)
    if meter_id is None:
        await callback.answer(context_of(manager).tr.label("error-forged-button"))
        return
    manager.dialog_data[METER] = meter_id
    manager.dialog_data.pop(CORRECTION, None)
    await manager.switch_to(MetersSG.input)


async def on_correct(_c: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    """«Исправить показание»: a new correction (its own idempotency nonce), then the value."""
    manager.dialog_data[CORRECTION] = new_correction_nonce()
    manager.dialog_data.pop(CAN_CORRECT, None)
    await manager.switch_to(MetersSG.input)


async def input_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = context_of(dialog_manager)
    tr = ctx.tr
    try:
        meter = (await _meters(ctx)).get(dialog_manager.dialog_data.get(METER, ""))
    except DomainError as error:
        return {"text": error_text(tr, error), "can_correct": False}
    if meter is None:
        return {"text": tr("error-not-found"), "can_correct": False}
    if not meter.window.contains(moscow_date(ctx.now)):
        opens_on = format_date(meter.window.opens_on)
        return {"text": tr("meters-closed", opens_on=opens_on), "can_correct": False}
    current = reading_this_period(meter)
    if current is not None and CORRECTION in dialog_manager.dialog_data:
        text = tr(
            "meters-correct-ask",
            name=tr(KIND_KEYS[meter.kind]),
            serial=meter.serial,
            value=format_reading(meter.kind, current.value),
            unit=_unit(tr, meter),
            period=current.period,
            water=_water(meter),
        )
        return {"text": text, "can_correct": False}
    if current is not None:
        return {
            "text": _already_sent(tr, meter, current.period, current.value),
            "can_correct": True,
        }
    text = tr("meters-ask", name=tr(KIND_KEYS[meter.kind]), serial=meter.serial,
              last=_last(tr, meter), water=_water(meter))  # fmt: skip
    return {"text": text, "can_correct": False}


def _problem_text(tr: Texts, meter: Meter, problem: ReadingProblem) -> str:
    if problem is ReadingProblem.TOO_LARGE:
        most = format_reading(meter.kind, MAX_READING[meter.kind])
        return tr("meters-too-large", most=most, unit=_unit(tr, meter), water=_water(meter))
    return tr(PROBLEM_KEYS.get(problem, "meters-not-a-number"), water=_water(meter))


async def on_value(message: Message, _w: MessageInput, manager: DialogManager) -> None:
    ctx = context_of(manager)
    tr = ctx.tr
    try:
        meter = (await _meters(ctx)).get(manager.dialog_data.get(METER, ""))
    except DomainError as error:
        await message.answer(error_text(tr, error))
        return
    if meter is None:
        await message.answer(tr("error-not-found"))
        return
    if not meter.window.contains(moscow_date(ctx.now)):
        await message.answer(tr("meters-closed", opens_on=format_date(meter.window.opens_on)))
        return
    value = parse_reading(meter.kind, message.text or "")
    if isinstance(value, ReadingProblem):
        if has_foreign_digit(message.text or ""):  # «١٢٣», «12²»: say which digits, then how
            await message.answer(tr("input-foreign-digits"))
        await message.answer(_problem_text(tr, meter, value))
        return  # still waiting for a reading: the resident types it again
    current = reading_this_period(meter)
    nonce = manager.dialog_data.get(CORRECTION)
    if current is not None and nonce is None:
        await message.answer(tr("meters-press-correct", period=current.period))
        return
    if current is not None and nonce is not None:
        problem = check_correction(meter, value)
        if problem is ReadingProblem.UNCHANGED:
            await message.answer(tr("meters-correct-same", period=current.period))
            return
        if problem is ReadingProblem.IMPLAUSIBLE:  # a typo's extra digit: asked first
            manager.dialog_data[VALUE] = format_reading(meter.kind, value)
            manager.dialog_data[USED] = format_reading(meter.kind, value - current.value)
            manager.dialog_data[OVER_SENT] = current.period
            await manager.switch_to(MetersSG.confirm, show_mode=ShowMode.SEND)
            return
        await _send(manager, meter, value, correction=str(nonce), typed=message)
        return
    last = meter.last_reading.value if meter.last_reading else None
    problem = check_reading(meter.kind, value, last)
    if problem is ReadingProblem.BELOW_PREVIOUS and last is not None:
        await message.answer(tr("meters-below", last=format_reading(meter.kind, last)))
        return
    manager.dialog_data[VALUE] = format_reading(meter.kind, value)
    if problem is ReadingProblem.IMPLAUSIBLE and last is not None:
        manager.dialog_data[USED] = format_reading(meter.kind, value - last)
        manager.dialog_data.pop(OVER_SENT, None)
        await manager.switch_to(MetersSG.confirm, show_mode=ShowMode.SEND)
        return
    await _send(manager, meter, value, typed=message)


async def confirm_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = context_of(dialog_manager)
    try:
        meter = (await _meters(ctx)).get(dialog_manager.dialog_data.get(METER, ""))
    except DomainError as error:
        return {"text": error_text(ctx.tr, error)}
    unit = ctx.tr(UNIT_KEYS.get(meter.unit if meter else "m3", "unit-m3"))
    used = dialog_manager.dialog_data.get(USED, "")
    period = dialog_manager.dialog_data.get(OVER_SENT)
    if period is not None:  # a correction: how far above the reading already sent
        return {
            "text": ctx.tr("meters-implausible-correction", used=used, unit=unit, period=period)
        }
    return {"text": ctx.tr("meters-implausible", used=used, unit=unit)}


async def on_confirm(_c: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    ctx = context_of(manager)
    meter = (await _meters(ctx)).get(manager.dialog_data.get(METER, ""))
    if meter is None:
        return
    # The value was checked when typed and kept as the platform reads it; read it back the
    # same strict way (never Decimal() of whatever the stored state holds).
    value = parse_reading(meter.kind, str(manager.dialog_data.get(VALUE, "")))
    if not isinstance(value, Decimal):
        return
    nonce = manager.dialog_data.get(CORRECTION)
    if nonce is not None and reading_this_period(meter) is not None:  # a correction confirmed
        await _send(manager, meter, value, correction=str(nonce))
    else:
        await _send(manager, meter, value)


async def _send(
    manager: DialogManager,
    meter: Meter,
    value: Decimal,
    correction: str | None = None,
    typed: Message | None = None,
) -> None:
    """Send the reading (or the correction, with its nonce) and show the outcome. A value the
    platform finds below the last period's, when it was typed, is answered where it was typed:
    the resident stays in the input and types it again."""
    ctx = context_of(manager)
    tr = ctx.tr
    can_correct = False
    try:
        if correction is None:
            accepted = await submit_reading(*ctx.acting, meter, value)
        else:
            accepted = await correct_reading(*ctx.acting, meter, value, correction)
    except WindowClosed as error:
        result = tr("meters-closed", opens_on=format_date(error.opens_on))
    except ReadingBelowPrevious as error:
        result = tr("meters-below", last=format_reading(meter.kind, error.last_value))
        if typed is not None:
            await typed.answer(result)
            return
    except ReadingAlreadySubmitted as error:
        result = _already_sent(tr, meter, error.period, error.value)
        can_correct = True
    except NothingToCorrect:
        result = tr("meters-nothing-to-correct")
    except DomainError as error:
        result = error_text(tr, error)
    else:
        unit = _unit(tr, meter)
        shown = format_reading(meter.kind, accepted.value)
        key = "meters-corrected" if correction is not None else "meters-accepted"
        lines = [tr(key, value=shown, unit=unit, period=accepted.period)]
        if accepted.points_credited:
            points = tr("points-count", count=accepted.points_credited)
            lines.append(tr("meters-points", points=points))
        else:
            lines.append(tr("meters-no-points"))
        result = Markup("\n").join(lines)
        can_correct = True  # a mistake seen only now is still corrected in this period
    manager.dialog_data[RESULT] = result
    manager.dialog_data[CAN_CORRECT] = can_correct
    manager.dialog_data.pop(CORRECTION, None)
    await manager.switch_to(MetersSG.done, show_mode=ShowMode.SEND)


async def done_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    data = dialog_manager.dialog_data
    return {"text": Markup(data.get(RESULT, "")), "can_correct": bool(data.get(CAN_CORRECT))}


def build_dialog() -> Dialog:
    return Dialog(
        Window(
            *body("text", "meters_text_1"),
            one_per_row(
                Select(
                    Format("{item[1]}"),
                    id="meter",
                    item_id_getter=lambda i: i[0],
                    items="meters",
                    on_click=on_meter,
                ),
                id="meter_list",
            ),
            Cancel(Tr("nav-back")),
            HintOnText(),
            getter=list_getter,
            state=MetersSG.list,
        ),
        Window(
            *body("text", "meters_text_2"),
            MessageInput(on_value, content_types=ContentType.TEXT),
            Button(Tr("meters-correct"), id="correct", on_click=on_correct, when=F["can_correct"]),
            SwitchTo(Tr("nav-back"), id="back", state=MetersSG.list),
            getter=input_getter,
            state=MetersSG.input,
        ),
        Window(
            *body("text", "meters_text_3"),
            Button(Tr("meters-confirm-yes"), id="yes", on_click=on_confirm),
            SwitchTo(Tr("meters-confirm-no"), id="fix", state=MetersSG.input),
            HintOnText(),
            getter=confirm_getter,
            state=MetersSG.confirm,
        ),
        Window(
            *body("text", "meters_text_4"),
            Button(Tr("meters-correct"), id="correct", on_click=on_correct, when=F["can_correct"]),
            SwitchTo(Tr("nav-back"), id="back", state=MetersSG.list),
            HintOnText(),
            getter=done_getter,
            state=MetersSG.done,
        ),
        name="meters",
    )
