"""«Добавить счёт по УИН»: the offline check first, then the city's lookup, then the pay step."""

from __future__ import annotations

from typing import Any

from aiogram.enums import ContentType
from aiogram.types import CallbackQuery, Message
from aiogram_dialog import Dialog, DialogManager, Window
from aiogram_dialog.widgets.input import MessageInput
from aiogram_dialog.widgets.kbd import Button, Cancel, SwitchTo
from markupsafe import Markup

from domain.errors import DomainError, NotFound
from domain.money import format_rub
from domain.payments import BillAlreadyPaid, lookup_bill
from domain.uin import UinProblem, check_uin
from handlers.payments import Ctx, paid_text, pay_bills
from handlers.states import UinSG
from handlers.texts import error_text, format_date
from handlers.widgets import HintOnText, Tr, body

PROBLEM_KEYS = {
    UinProblem.EMPTY: "uin-empty",
    UinProblem.LENGTH: "uin-length",
    UinProblem.CHARACTERS: "uin-characters",
    UinProblem.ZEROS: "uin-zeros",
    UinProblem.CONTROL: "uin-control",
}


async def on_uin(message: Message, _widget: MessageInput, manager: DialogManager) -> None:
    ctx = Ctx(manager)
    check = check_uin(message.text or "")
    if not check.ok:
        assert check.problem is not None
        await message.answer(ctx.tr(PROBLEM_KEYS[check.problem], length=len(check.uin)))
        return  # still waiting for a UIN: the resident just types it again
    try:
        bill = await lookup_bill(
            ctx.uow, ctx.city, ctx.city, ctx.linked, check.uin, now=ctx.clock()
        )
    except NotFound:
        await message.answer(ctx.tr("uin-not-found"))
        return
    except BillAlreadyPaid:
        await message.answer(ctx.tr("uin-already-paid"))
        return
    except DomainError as error:
        await message.answer(error_text(ctx.tr, error))
        return
    await ctx.uow.commit()
    if bill.paid:  # the city answers a known UIN as it is, paid or not: never offer to pay it
        await message.answer(await paid_text(ctx, bill))
        return
    manager.dialog_data["bill"] = {
        "id": bill.id,
        "text": ctx.tr(
            "bills-card",
            title=bill.title,
            provider=bill.provider,
            amount=format_rub(bill.amount),
            due=format_date(bill.due_date),
        )
        + "\n"
        + ctx.tr("bills-card-uin", uin=bill.uin or check.uin),
    }  # stored as text: read back as Markup by found_getter
    await manager.switch_to(UinSG.found)


async def found_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    return {"text": Markup(dialog_manager.dialog_data["bill"]["text"])}


async def on_pay(_callback: CallbackQuery, _button: Button, manager: DialogManager) -> None:
    await pay_bills(manager, [manager.dialog_data["bill"]["id"]])


def build_dialog() -> Dialog:
    return Dialog(
        Window(
            Tr("uin-ask"),
            MessageInput(on_uin, content_types=ContentType.TEXT),
            Cancel(Tr("nav-back")),
            state=UinSG.input,
        ),
        Window(
            Tr("uin-found"),
            *body("text", "uin_text_1"),
            Button(Tr("bills-card-pay"), id="pay", on_click=on_pay),
            SwitchTo(Tr("nav-back"), id="again", state=UinSG.input),
            HintOnText(),
            getter=found_getter,
            state=UinSG.found,
        ),
        name="uin",
    )
