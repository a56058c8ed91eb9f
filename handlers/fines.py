"""«Штрафы по СТС»: a vehicle certificate (or a driver's licence) → unpaid fines → pay."""

from __future__ import annotations

from typing import Any

from aiogram import F
from aiogram.enums import ContentType
from aiogram.types import CallbackQuery, Message
from aiogram_dialog import Dialog, DialogManager, Window
from aiogram_dialog.widgets.input import MessageInput
from aiogram_dialog.widgets.kbd import Button, Cancel
from markupsafe import Markup

from domain.errors import DomainError
from domain.fines import DocumentKind, normalize_document
from domain.money import format_rub, has_foreign_digit
from domain.payments import find_fines
from handlers.payments import Ctx, pay_bills
from handlers.states import FinesSG
from handlers.texts import error_text, format_date
from handlers.widgets import HintOnText, Html, Paged, PagerRow, Tr

BAD_NUMBER_KEYS = {
    DocumentKind.STS: "fines-bad-sts",
    DocumentKind.DRIVER_LICENSE: "fines-bad-license",
}


async def on_number(message: Message, _widget: MessageInput, manager: DialogManager) -> None:
    ctx = Ctx(manager)
    if has_foreign_digit(message.text or ""):
        await message.answer(ctx.tr("input-foreign-digits"))
        return  # nothing entered so far is lost: the step waits for the number again
    kind = DocumentKind(manager.dialog_data.get("kind", DocumentKind.STS))
    number = normalize_document(kind, message.text or "")
    if number is None:
        await message.answer(ctx.tr(BAD_NUMBER_KEYS[kind]))
        return
    try:
        await _search(ctx, manager, kind, number)
    except DomainError as error:
        await message.answer(error_text(ctx.tr, error))
        return
    await manager.switch_to(FinesSG.list)


async def _search(ctx: Ctx, manager: DialogManager, kind: DocumentKind, number: str) -> None:
    """The document's unpaid fines at the city, kept for the list (with the document, so the
    list can be drawn again). Raises the city's DomainErrors."""
    fines = await find_fines(ctx.uow, ctx.city, ctx.city, ctx.linked, kind, number, now=ctx.clock())
    await ctx.uow.commit()
    manager.dialog_data["number"] = number
    manager.dialog_data["fine_ids"] = [fine.id for fine in fines]
    manager.dialog_data["text"] = Markup("\n\n").join(
        ctx.tr(
            "bills-item",
            title=fine.title,
            provider=fine.provider,
            amount=format_rub(fine.amount),
            due=format_date(fine.due_date),
        )
        for fine in fines
    )
    manager.dialog_data["total"] = format_rub(sum(fine.amount for fine in fines))
    manager.dialog_data["count"] = len(fines)


async def on_pay_result(_start: Any, _result: Any, manager: DialogManager) -> None:
    """Back from the pay step (paid, cancelled or refused — e.g. one fine was paid elsewhere
    meanwhile): the list is asked for again, so it shows what is unpaid now and its button
    pays that, not the list as it was (review 30c). The city down: the list stays as it was
    (the pay step checks every fine again before charging)."""
    number = manager.dialog_data.get("number")
    if manager.current_context().state != FinesSG.list or not isinstance(number, str):
        return
    kind = DocumentKind(manager.dialog_data.get("kind", DocumentKind.STS))
    try:
        await _search(Ctx(manager), manager, kind, number)
    except DomainError:
        return


async def input_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    return {"license": dialog_manager.dialog_data.get("kind") == DocumentKind.DRIVER_LICENSE}


async def on_license(_callback: CallbackQuery, _button: Button, manager: DialogManager) -> None:
    manager.dialog_data["kind"] = DocumentKind.DRIVER_LICENSE.value


async def list_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    data = dialog_manager.dialog_data
    return {
        "text": Markup(data.get("text", "")),  # a tr text, stored by on_number
        "count": data.get("count", 0),
        "total": data.get("total", ""),
        "found": bool(data.get("count")),
        "none": not data.get("count"),
    }


async def on_pay(_callback: CallbackQuery, _button: Button, manager: DialogManager) -> None:
    await pay_bills(manager, manager.dialog_data["fine_ids"])


def build_dialog() -> Dialog:
    return Dialog(
        Window(
            Tr("fines-ask", when=~F["license"]),
            Tr("fines-ask-license", when=F["license"]),
            MessageInput(on_number, content_types=ContentType.TEXT),
            Button(Tr("fines-by-license"), id="license", on_click=on_license, when=~F["license"]),
            Cancel(Tr("nav-back")),
            getter=input_getter,
            state=FinesSG.input,
        ),
        Window(
            Tr("fines-found", when=F["found"]),
            Paged(Html("{text}"), id="fines_page", when=F["found"]),
            PagerRow("fines_page", when=F["found"]),
            Tr("fines-none", when=F["none"]),
            Button(Tr("fines-pay-all"), id="pay", on_click=on_pay, when=F["found"]),
            Cancel(Tr("nav-back")),
            HintOnText(),
            getter=list_getter,
            state=FinesSG.list,
        ),
        name="fines",
        on_process_result=on_pay_result,
    )
