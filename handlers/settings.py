"""«Настройки»: which kinds of notifications the resident receives."""

from __future__ import annotations

from typing import Any

from aiogram.types import CallbackQuery
from aiogram_dialog import Dialog, DialogManager, Window
from aiogram_dialog.widgets.kbd import Cancel, Column, Select
from aiogram_dialog.widgets.text import Format

from handlers.notifications import SETTING_KINDS
from handlers.payments import Ctx
from handlers.states import SettingsSG
from handlers.widgets import HintOnText, Tr


async def settings_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = Ctx(dialog_manager)
    muted = await ctx.uow.notification_settings.muted(ctx.linked.telegram_user_id)
    kinds = [
        (
            kind,
            ctx.tr.label(
                "settings-kind-off" if kind in muted else "settings-kind-on", name=ctx.tr(key)
            ),
        )
        for kind, key in SETTING_KINDS.items()
    ]
    return {"kinds": kinds}


async def on_toggle(_c: CallbackQuery, _w: Any, manager: DialogManager, kind: str) -> None:
    if kind not in SETTING_KINDS:
        return
    ctx = Ctx(manager)
    user = ctx.linked.telegram_user_id
    muted = await ctx.uow.notification_settings.muted(user)
    await ctx.uow.notification_settings.set_muted(user, muted ^ {kind})
    await ctx.uow.commit()


def build_dialog() -> Dialog:
    return Dialog(
        Window(
            Tr("settings-title"),
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
            Cancel(Tr("nav-back")),
            HintOnText(),
            getter=settings_getter,
            state=SettingsSG.main,
        ),
        name="settings",
    )
