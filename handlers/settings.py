"""«Настройки»: which kinds of notifications the resident receives, and their quiet hours
(shown; chosen from presets, typed as «23:00–08:00», or off — domain/quiet_hours.py)."""

from __future__ import annotations

from typing import Any

from aiogram.types import CallbackQuery, ContentType, Message
from aiogram_dialog import Dialog, DialogManager, ShowMode, Window
from aiogram_dialog.widgets.input import MessageInput
from aiogram_dialog.widgets.kbd import Button, Cancel, Column, Select, SwitchTo
from aiogram_dialog.widgets.text import Format

from domain.quiet_hours import PRESETS, QuietHours, RangeProblem, by_button_id, parse_range
from handlers.context import context_of
from handlers.notifications import SETTING_KINDS
from handlers.ports import Texts
from handlers.states import SettingsSG
from handlers.widgets import HintOnText, Html, Tr

RANGE_PROBLEMS = {
    RangeProblem.NOT_A_RANGE: "settings-quiet-not-a-range",
    RangeProblem.NO_SUCH_TIME: "settings-quiet-no-such-time",
    RangeProblem.EMPTY: "settings-quiet-empty",
}


def quiet_text(tr: Texts, quiet: QuietHours) -> Any:
    if quiet.off:
        return tr("settings-quiet-off")
    return tr("settings-quiet-on", hours=quiet.label())


async def settings_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = context_of(dialog_manager)
    user = ctx.linked.telegram_user_id
    muted = await ctx.uow.notification_settings.muted(user)
    quiet = await ctx.uow.notification_settings.quiet_hours(user)
    kinds = [
        (
            f"{kind}.{ON if kind in muted else OFF}",
            ctx.tr.label(
                "settings-kind-off" if kind in muted else "settings-kind-on", name=ctx.tr(key)
            ),
        )
        for kind, key in SETTING_KINDS.items()
    ]
    return {"kinds": kinds, "quiet": quiet_text(ctx.tr, quiet)}


async def quiet_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = context_of(dialog_manager)
    quiet = await ctx.uow.notification_settings.quiet_hours(ctx.linked.telegram_user_id)
    presets = [(preset.button_id(), preset.label()) for preset in PRESETS]
    return {"quiet": quiet_text(ctx.tr, quiet), "presets": presets}


ON, OFF = "on", "off"  # what a kind's button sets: its item is «<kind>.on» or «<kind>.off»


async def on_toggle(callback: CallbackQuery, _w: Any, manager: DialogManager, item: str) -> None:
    """A kind's button sets the state it offered when it was drawn (not «the opposite of
    now»): a double tap, or a press on an older copy of the screen, sets it once instead of
    switching it back (review 27)."""
    ctx = context_of(manager)
    user = ctx.linked.telegram_user_id
    muted = await ctx.uow.notification_settings.muted(user)
    if item in SETTING_KINDS:  # a screen drawn before kinds' buttons carried a state
        item = f"{item}.{ON if item in muted else OFF}"
    kind, _, wanted = item.rpartition(".")
    if kind not in SETTING_KINDS or wanted not in (ON, OFF):  # forged
        await callback.answer(ctx.tr.label("error-forged-button"))
        return
    await ctx.uow.notification_settings.set_muted(
        user, muted - {kind} if wanted == ON else muted | {kind}
    )
    await ctx.uow.commit()


async def _store(manager: DialogManager, quiet: QuietHours) -> None:
    """New quiet hours; what the old ones held stays held (comes as one digest at the end of
    the new ones, or at once if they are over), with the change, in one transaction."""
    ctx = context_of(manager)
    user = ctx.linked.telegram_user_id
    before = await ctx.uow.notification_settings.quiet_hours(user)
    await ctx.uow.notifications.hold_written_in(user, before, ctx.now)
    await ctx.uow.notification_settings.set_quiet_hours(user, quiet)
    await ctx.uow.commit()


async def on_preset(callback: CallbackQuery, _w: Any, manager: DialogManager, item: str) -> None:
    quiet = by_button_id(item)
    if quiet is None:  # forged: nothing changes
        await callback.answer(context_of(manager).tr.label("error-forged-button"))
        return
    await _store(manager, quiet)
    await manager.switch_to(SettingsSG.main)


async def on_off(callback: CallbackQuery, _w: Any, manager: DialogManager) -> None:
    await on_preset(callback, _w, manager, "off")


async def on_typed(message: Message, _w: MessageInput, manager: DialogManager) -> None:
    """A typed range: kept when it is one; otherwise the resident is told why, and the screen
    (and the hours in force) stay as they were."""
    tr = context_of(manager).tr
    quiet = parse_range(message.text or "")
    if isinstance(quiet, RangeProblem):
        await message.answer(tr(RANGE_PROBLEMS[quiet]))
        manager.show_mode = ShowMode.SEND  # the screen again below the answer
        return
    await _store(manager, quiet)
    manager.show_mode = ShowMode.SEND
    await manager.switch_to(SettingsSG.main)


def build_dialog() -> Dialog:
    return Dialog(
        Window(
            Tr("settings-title"),
            Html("{quiet}"),
            Tr("settings-urgent-note"),
            Column(
                Select(
                    Format("{item[1]}"),
                    id="kind",
                    item_id_getter=lambda i: i[0],
                    items="kinds",
                    on_click=on_toggle,
                )
            ),
            SwitchTo(Tr("settings-quiet-button"), id="quiet", state=SettingsSG.quiet),
            Cancel(Tr("nav-back")),
            HintOnText(),
            getter=settings_getter,
            state=SettingsSG.main,
        ),
        Window(
            Html("{quiet}"),
            Tr("settings-quiet-explain"),
            Column(
                Select(
                    Format("{item[1]}"),
                    id="preset",
                    item_id_getter=lambda i: i[0],
                    items="presets",
                    on_click=on_preset,
                )
            ),
            Button(Tr("settings-quiet-turn-off"), id="off", on_click=on_off),
            SwitchTo(Tr("nav-back"), id="back", state=SettingsSG.main),
            MessageInput(on_typed, content_types=ContentType.ANY),
            getter=quiet_getter,
            state=SettingsSG.quiet,
        ),
        name="settings",
    )
