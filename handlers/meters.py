"""«Показания счётчиков»: the meters with their last readings; a reading per meter, checked
before sending (not below the last one; a huge jump is confirmed); outside the window the bot
says when it opens; after acceptance the points credited are shown."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from aiogram.enums import ContentType
from aiogram.types import CallbackQuery, Message
from aiogram_dialog import Dialog, DialogManager, ShowMode, Window
from aiogram_dialog.widgets.input import MessageInput
from aiogram_dialog.widgets.kbd import Button, Cancel, Column, Select, SwitchTo
from aiogram_dialog.widgets.text import Format

from bot.i18n import Translator
from domain.errors import DomainError
from domain.meters import (
    Meter,
    MeterKind,
    ReadingBelowPrevious,
    ReadingProblem,
    WindowClosed,
    check_reading,
    format_reading,
    moscow_date,
    open_window,
    parse_reading,
    resident_meters,
    submit_reading,
)
from handlers.payments import Ctx
from handlers.states import MetersSG
from handlers.texts import error_key, format_date
from handlers.widgets import HintOnText, Tr

KIND_KEYS = {
    MeterKind.COLD_WATER: "meter-cold-water",
    MeterKind.HOT_WATER: "meter-hot-water",
    MeterKind.ELECTRICITY: "meter-electricity",
}
UNIT_KEYS = {"m3": "unit-m3", "kWh": "unit-kwh"}


def _last(tr: Translator, meter: Meter) -> str:
    if meter.last_reading is None:
        return tr("meters-no-last")
    return tr(
        "meters-last",
        value=format_reading(meter.kind, meter.last_reading.value),
        unit=tr(UNIT_KEYS.get(meter.unit, "unit-m3")),
        period=meter.last_reading.period,
    )


async def _meters(ctx: Ctx) -> dict[str, Meter]:
    return {m.id: m for m in await resident_meters(ctx.uow, ctx.city, ctx.city, ctx.linked)}


async def list_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = Ctx(dialog_manager)
    tr = ctx.tr
    try:
        meters = list((await _meters(ctx)).values())
    except DomainError as error:
        return {"text": tr(error_key(error)), "meters": []}
    if not meters:
        return {"text": tr("meters-none"), "meters": []}
    today = moscow_date(ctx.clock())
    lines = [tr("meters-title")]
    for meter in meters:
        line = tr("meters-line", name=tr(KIND_KEYS[meter.kind]), serial=meter.serial,
                  last=_last(tr, meter))  # fmt: skip
        if meter.submitted_this_period:
            status = tr("meters-sent", period=meter.current_period)
        elif open_window(meter.kind, today):
            status = tr("meters-window-open", closes_on=format_date(meter.window.closes_on))
        else:
            status = tr("meters-window-closed", opens_on=format_date(meter.window.opens_on))
        lines.append(f"{line}\n{status}")
    buttons = [(m.id, f"{tr(KIND_KEYS[m.kind])} № {m.serial}") for m in meters]
    return {"text": "\n\n".join(lines), "meters": buttons}


async def on_meter(_c: CallbackQuery, _w: Any, manager: DialogManager, meter_id: str) -> None:
    manager.dialog_data["meter"] = meter_id
    await manager.switch_to(MetersSG.input)


async def input_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = Ctx(dialog_manager)
    tr = ctx.tr
    meter = (await _meters(ctx)).get(dialog_manager.dialog_data.get("meter", ""))
    if meter is None:
        return {"text": tr("error-not-found")}
    if open_window(meter.kind, moscow_date(ctx.clock())) is None:
        return {"text": tr("meters-closed", opens_on=format_date(meter.window.opens_on))}
    return {
        "text": tr(
            "meters-ask",
            name=tr(KIND_KEYS[meter.kind]),
            serial=meter.serial,
            last=_last(tr, meter),
            water="yes" if meter.kind.is_water else "no",
        )
    }


async def on_value(message: Message, _w: MessageInput, manager: DialogManager) -> None:
    ctx = Ctx(manager)
    tr = ctx.tr
    meter = (await _meters(ctx)).get(manager.dialog_data.get("meter", ""))
    if meter is None:
        await message.answer(tr("error-not-found"))
        return
    if open_window(meter.kind, moscow_date(ctx.clock())) is None:
        await message.answer(tr("meters-closed", opens_on=format_date(meter.window.opens_on)))
        return
    value = parse_reading(meter.kind, message.text or "")
    if value is ReadingProblem.NOT_A_NUMBER or value is ReadingProblem.TOO_PRECISE:
        key = (
            "meters-not-a-number" if value is ReadingProblem.NOT_A_NUMBER else "meters-too-precise"
        )
        await message.answer(tr(key))
        return
    assert isinstance(value, Decimal)
    last = meter.last_reading.value if meter.last_reading else None
    problem = check_reading(meter.kind, value, last)
    if problem is ReadingProblem.BELOW_PREVIOUS and last is not None:
        await message.answer(tr("meters-below", last=format_reading(meter.kind, last)))
        return
    manager.dialog_data["value"] = str(value)
    if problem is ReadingProblem.IMPLAUSIBLE and last is not None:
        manager.dialog_data["used"] = format_reading(meter.kind, value - last)
        await manager.switch_to(MetersSG.confirm, show_mode=ShowMode.SEND)
        return
    await _send(manager, meter, value)


async def confirm_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = Ctx(dialog_manager)
    meter = (await _meters(ctx)).get(dialog_manager.dialog_data.get("meter", ""))
    unit = ctx.tr(UNIT_KEYS.get(meter.unit if meter else "m3", "unit-m3"))
    return {
        "text": ctx.tr("meters-implausible", used=dialog_manager.dialog_data["used"], unit=unit)
    }


async def on_confirm(_c: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    ctx = Ctx(manager)
    meter = (await _meters(ctx)).get(manager.dialog_data.get("meter", ""))
    if meter is not None:
        await _send(manager, meter, Decimal(manager.dialog_data["value"]))


async def _send(manager: DialogManager, meter: Meter, value: Decimal) -> None:
    ctx = Ctx(manager)
    tr = ctx.tr
    try:
        accepted = await submit_reading(ctx.uow, ctx.city, ctx.city, ctx.linked, meter, value)
    except WindowClosed as error:
        result = tr("meters-closed", opens_on=format_date(error.opens_on))
    except ReadingBelowPrevious as error:
        result = tr("meters-below", last=format_reading(meter.kind, error.last_value))
    except DomainError as error:
        result = tr(error_key(error))
    else:
        unit = tr(UNIT_KEYS.get(meter.unit, "unit-m3"))
        lines = [tr("meters-accepted", value=format_reading(meter.kind, accepted.value),
                    unit=unit, period=accepted.period)]  # fmt: skip
        if accepted.points_credited:
            points = tr("points-count", count=accepted.points_credited)
            lines.append(tr("meters-points", points=points))
        else:
            lines.append(tr("meters-no-points"))
        result = "\n".join(lines)
    manager.dialog_data["result"] = result
    await manager.switch_to(MetersSG.done, show_mode=ShowMode.SEND)


async def done_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    return {"text": dialog_manager.dialog_data.get("result", "")}


def build_dialog() -> Dialog:
    return Dialog(
        Window(
            Format("{text}"),
            Column(
                Select(
                    Format("{item[1]}"),
                    id="meter",
                    item_id_getter=lambda i: i[0],
                    items="meters",
                    on_click=on_meter,
                )
            ),
            Cancel(Tr("nav-back")),
            HintOnText(),
            getter=list_getter,
            state=MetersSG.list,
        ),
        Window(
            Format("{text}"),
            MessageInput(on_value, content_types=ContentType.TEXT),
            SwitchTo(Tr("nav-back"), id="back", state=MetersSG.list),
            getter=input_getter,
            state=MetersSG.input,
        ),
        Window(
            Format("{text}"),
            Button(Tr("meters-confirm-yes"), id="yes", on_click=on_confirm),
            SwitchTo(Tr("meters-confirm-no"), id="fix", state=MetersSG.input),
            HintOnText(),
            getter=confirm_getter,
            state=MetersSG.confirm,
        ),
        Window(
            Format("{text}"),
            SwitchTo(Tr("nav-back"), id="back", state=MetersSG.list),
            HintOnText(),
            getter=done_getter,
            state=MetersSG.done,
        ),
        name="meters",
    )
