"""The main menu dialog; it shows only what works for this resident."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from aiogram import F
from aiogram.types import CallbackQuery
from aiogram_dialog import Dialog, DialogManager, Window
from aiogram_dialog.widgets.kbd import Button, Start, SwitchTo, Url
from aiogram_dialog.widgets.text import Format

from domain.accounts import Resident
from domain.linking import start_link
from domain.ports import CityAuth, UnitOfWork
from handlers.ports import Texts
from handlers.states import (
    AutopaySG,
    BillsSG,
    CharitySG,
    FinesSG,
    HistorySG,
    MenuSG,
    MetersSG,
    MyReportsSG,
    PointsSG,
    ReportSG,
    SettingsSG,
    SupportSG,
    TemplatesSG,
    TopupSG,
    UinSG,
    UnlinkSG,
)
from handlers.texts import LEVEL_KEYS
from handlers.widgets import HintOnText, Tr


async def menu_getter(
    dialog_manager: DialogManager,
    tr: Texts,
    resident: Resident | None = None,
    support_chat_id: int | None = None,
    **_: Any,
) -> dict[str, Any]:
    support = support_chat_id is not None  # «Поддержка» only where staff can answer
    if resident is None:
        return {"linked": False, "support": support}
    return {
        "linked": True,
        "support": support,
        "name": resident.masked_name,
        "level": tr(LEVEL_KEYS[resident.account_level]),
    }


async def on_link(callback: CallbackQuery, _button: Button, manager: DialogManager) -> None:
    data = manager.middleware_data
    uow: UnitOfWork = data["uow"]
    city: CityAuth = data["city"]
    clock: Callable[[], datetime] = data["clock"]
    assert callback.message is not None
    url = await start_link(
        uow,
        city,
        telegram_user_id=callback.from_user.id,
        chat_id=callback.message.chat.id,
        now=clock(),
    )
    await uow.commit()
    manager.dialog_data["login_url"] = url
    await manager.switch_to(MenuSG.login)


async def login_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    return {"login_url": dialog_manager.dialog_data.get("login_url", "")}


def build_dialog() -> Dialog:
    return Dialog(
        Window(
            Tr("menu-linked", when=F["linked"]),
            Tr("menu-unlinked", when=~F["linked"]),
            Tr("menu-qr-hint", when=F["linked"]),
            Start(Tr("menu-bills"), id="bills", state=BillsSG.list, when=F["linked"]),
            Start(Tr("menu-uin"), id="uin", state=UinSG.input, when=F["linked"]),
            Start(Tr("menu-fines"), id="fines", state=FinesSG.input, when=F["linked"]),
            Start(Tr("menu-topup"), id="topup", state=TopupSG.service, when=F["linked"]),
            Start(Tr("menu-history"), id="history", state=HistorySG.list, when=F["linked"]),
            Start(Tr("menu-templates"), id="templates", state=TemplatesSG.list, when=F["linked"]),
            Start(Tr("menu-charity"), id="charity", state=CharitySG.main, when=F["linked"]),
            Start(Tr("menu-points"), id="points", state=PointsSG.main, when=F["linked"]),
            Start(Tr("menu-meters"), id="meters", state=MetersSG.list, when=F["linked"]),
            Start(Tr("menu-report"), id="report", state=ReportSG.theme, when=F["linked"]),
            Start(Tr("menu-my-reports"), id="myrep", state=MyReportsSG.list, when=F["linked"]),
            Start(Tr("menu-autopay"), id="autopay", state=AutopaySG.list, when=F["linked"]),
            Start(Tr("menu-settings"), id="settings", state=SettingsSG.main, when=F["linked"]),
            Button(Tr("menu-link"), id="link", on_click=on_link, when=~F["linked"]),
            Start(Tr("menu-support"), id="support", state=SupportSG.chat, when=F["support"]),
            Start(Tr("menu-unlink"), id="unlink", state=UnlinkSG.confirm, when=F["linked"]),
            HintOnText(),
            getter=menu_getter,
            state=MenuSG.main,
        ),
        Window(
            Tr("link-open"),
            Url(Tr("link-login-button"), Format("{login_url}"), id="login"),
            SwitchTo(Tr("nav-back"), id="back", state=MenuSG.main),
            HintOnText(),
            getter=login_getter,
            state=MenuSG.login,
        ),
        name="menu",
    )
