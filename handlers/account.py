"""«Отвязать аккаунт»: confirm, revoke at the city, forget the resident."""

from __future__ import annotations

from aiogram.types import CallbackQuery
from aiogram_dialog import Dialog, DialogManager, ShowMode, StartMode, Window
from aiogram_dialog.widgets.kbd import Button, Cancel, Row

from bot.i18n import Translator
from domain.accounts import Resident
from domain.linking import unlink
from domain.ports import CityAuth, UnitOfWork
from handlers.states import MenuSG, UnlinkSG
from handlers.widgets import HintOnText, Tr


async def on_unlink(callback: CallbackQuery, _button: Button, manager: DialogManager) -> None:
    data = manager.middleware_data
    uow: UnitOfWork = data["uow"]
    city: CityAuth = data["city"]
    tr: Translator = data["tr"]
    resident: Resident | None = data.get("resident")
    if resident is not None:
        revoked = await unlink(uow, city, resident)
        await uow.commit()
        data["resident"] = None
        assert callback.message is not None
        await callback.message.answer(tr("unlink-done" if revoked else "unlink-done-city-down"))
    await manager.start(MenuSG.main, mode=StartMode.RESET_STACK, show_mode=ShowMode.SEND)


def build_dialog() -> Dialog:
    return Dialog(
        Window(
            Tr("unlink-confirm"),
            Row(
                Button(Tr("unlink-yes"), id="yes", on_click=on_unlink),
                Cancel(Tr("unlink-no")),
            ),
            HintOnText(),
            state=UnlinkSG.confirm,
        ),
        name="unlink",
    )
