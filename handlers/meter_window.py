"""The reminder that a meter-reading window opened (domain/meter_reminders.py writes it): which
meters still lack this period's reading, and «Передать показания», which opens «Счётчики»."""

from __future__ import annotations

from datetime import date
from typing import Any

from aiogram import Router
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder
from aiogram_dialog import DialogManager
from markupsafe import Markup

from domain.accounts import Resident
from domain.meter_reminders import SHOWN_METERS
from domain.meters import MeterKind
from handlers.buttons import forged, on_forged
from handlers.meters import KIND_KEYS
from handlers.navigation import start_over_menu
from handlers.ports import Texts
from handlers.states import MetersSG
from handlers.texts import format_date, shorten


class MeterWindowOpen(CallbackData, prefix="mw"):
    pass


SERIAL_SHOWN = 64  # UTF-16 units of a meter's serial in the reminder (then «…»)


def render_meter_window(
    data: dict[str, Any], tr: Texts
) -> tuple[Markup, InlineKeyboardMarkup | None, None]:
    meters = list(data.get("meters") or [])
    lines = [
        tr(
            "notify-meter-window-line",
            name=tr(KIND_KEYS[MeterKind(meter["kind"])]),
            # a serial is a short code; the city's data is not trusted to keep it one: ten
            # lines must fit in one message with their words
            serial=shorten(str(meter.get("serial") or ""), SERIAL_SHOWN),
            closes_on=format_date(date.fromisoformat(meter["closes_on"])),
        )
        for meter in meters[:SHOWN_METERS]
    ]
    if len(meters) > SHOWN_METERS:
        lines.append(tr("notify-meter-window-more", count=len(meters) - SHOWN_METERS))
    text = tr(
        "notify-meter-window", period=str(data.get("period") or ""), meters=Markup("\n").join(lines)
    )
    builder = InlineKeyboardBuilder()
    builder.button(text=tr.label("notify-meter-window-open"), callback_data=MeterWindowOpen())
    return text, builder.as_markup(), None


async def on_open_meters(
    callback: CallbackQuery,
    dialog_manager: DialogManager,
    tr: Texts,
    resident: Resident | None = None,
) -> None:
    """«Передать показания»: «Счётчики», as from the menu."""
    if resident is None:
        await callback.answer(tr.label("error-not-linked"), show_alert=True)
        return
    await callback.answer()
    await start_over_menu(dialog_manager, MetersSG.list)


def register(router: Router) -> None:
    router.callback_query.register(on_open_meters, MeterWindowOpen.filter())
    router.callback_query.register(on_forged, forged(MeterWindowOpen))
