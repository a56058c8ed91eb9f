"""A photo (or an image sent as a file) of a paper receipt: find the payment QR code, show what
it says, and offer to pay — by the bill's UIN when it has one, by requisites otherwise."""

from __future__ import annotations

import io
from dataclasses import asdict
from typing import Any

from aiogram import Bot, F, Router
from aiogram.enums import ContentType
from aiogram.types import CallbackQuery, Message
from aiogram_dialog import Dialog, DialogManager, ShowMode, StartMode, Window
from aiogram_dialog.api.internal import CONTEXT_KEY
from aiogram_dialog.widgets.input import MessageInput
from aiogram_dialog.widgets.kbd import Button, Cancel, Start
from aiogram_dialog.widgets.text import Format

from bot.i18n import Translator
from bot.qr_decoder import ImageTooLarge, NotAnImage, find_qr_payloads
from domain.accounts import Resident
from domain.errors import DomainError, NotFound
from domain.money import MoneyParseError, format_rub, parse_rub
from domain.payment_qr import NotAPaymentQr, PaymentQr, QrProblem, parse_payment_qr
from domain.payments import BillAlreadyPaid, Requisites, lookup_bill
from domain.uin import check_uin
from handlers.payments import Ctx
from handlers.states import MyReportsSG, PaySG, ReceiptSG, ReportSG, UinSG
from handlers.texts import error_key
from handlers.widgets import HintOnText, Tr

TELEGRAM_DOWNLOAD_LIMIT = 20 * 1024 * 1024  # getFile refuses bigger files
PHOTO_STEPS = {ReportSG.photos, MyReportsSG.refute_photo}


def _payment_qr(payloads: list[Any]) -> PaymentQr | QrProblem:
    """The first payload that is a payment code; else the most telling problem."""
    problem = QrProblem.NOT_PAYMENT
    for payload in payloads:
        for candidate in (payload.raw, payload.text):
            try:
                return parse_payment_qr(candidate)
            except NotAPaymentQr as error:
                if error.reason is not QrProblem.NOT_PAYMENT:
                    problem = error.reason
    return problem


async def on_receipt(
    message: Message, bot: Bot, tr: Translator, dialog_manager: DialogManager,
    resident: Resident | None = None,
) -> None:  # fmt: skip
    if resident is None:
        await message.answer(tr("error-not-linked"))
        return
    file = message.photo[-1] if message.photo else message.document
    assert file is not None
    if (file.file_size or 0) > TELEGRAM_DOWNLOAD_LIMIT:
        await message.answer(tr("receipt-too-big"))
        return
    buffer = io.BytesIO()
    await bot.download(file.file_id, destination=buffer)
    try:
        payloads = await find_qr_payloads(buffer.getvalue())
    except NotAnImage:
        await message.answer(tr("receipt-not-image"))
        return
    except ImageTooLarge:
        await message.answer(tr("receipt-too-big"))
        return
    found = _payment_qr(payloads) if payloads else None
    if not isinstance(found, PaymentQr):
        key = {
            None: "receipt-no-qr",
            QrProblem.MISSING_FIELDS: "receipt-missing",
        }.get(found, "receipt-not-payment")
        await dialog_manager.start(
            ReceiptSG.problem,
            data={"key": key},
            mode=StartMode.RESET_STACK,
            show_mode=ShowMode.SEND,
        )
        return
    await dialog_manager.start(
        ReceiptSG.summary,
        data=_summary(found),
        mode=StartMode.RESET_STACK,
        show_mode=ShowMode.SEND,
    )


def _summary(qr: PaymentQr) -> dict[str, Any]:
    """The receipt as small scalars for the dialog's start data."""
    requisites = None
    if qr.personal_acc and qr.bic:
        requisites = asdict(
            Requisites(
                payee_name=qr.name or "",
                payee_inn=qr.payee_inn or "",
                personal_acc=qr.personal_acc,
                bic=qr.bic,
                purpose=qr.purpose or qr.service_name or qr.name or "",
                pers_acc=qr.pers_acc,
                period=qr.period,
                uin=qr.uin,
            )
        )
    return {
        "payee": qr.name or "",
        "purpose": qr.purpose or "",
        "period": qr.period or "",
        "payer_code": qr.pers_acc or "",
        "amount": qr.amount,
        "uin": qr.uin or "",
        "requisites": requisites,
    }


async def summary_getter(dialog_manager: DialogManager, tr: Translator, **_: Any) -> dict[str, Any]:
    data: dict[str, Any] = dialog_manager.start_data or {}  # type: ignore[assignment]
    amount = dialog_manager.dialog_data.get("amount", data.get("amount"))
    lines = [tr("receipt-summary")]
    if data.get("payee"):
        lines.append(tr("receipt-payee", payee=data["payee"]))
    if data.get("purpose"):
        lines.append(tr("receipt-purpose", purpose=data["purpose"]))
    if data.get("period"):
        lines.append(tr("receipt-period", period=data["period"]))
    if data.get("payer_code"):
        lines.append(tr("receipt-payer-code", payer_code=data["payer_code"]))
    if data.get("uin"):
        lines.append(tr("bills-card-uin", uin=data["uin"]))
    lines.append(
        tr("receipt-amount", amount=format_rub(amount)) if amount else tr("receipt-no-amount")
    )
    return {"text": "\n".join(lines)}


async def on_pay(callback: CallbackQuery, _button: Button, manager: DialogManager) -> None:
    ctx = Ctx(manager)
    data: dict[str, Any] = manager.start_data or {}  # type: ignore[assignment]
    uin = data.get("uin", "")
    if uin and check_uin(uin).ok:
        try:
            bill = await lookup_bill(ctx.uow, ctx.city, ctx.city, ctx.linked, check_uin(uin).uin)
        except NotFound:
            bill = None  # not issued at the city yet: pay by requisites below
        except BillAlreadyPaid:
            await _say(callback, ctx.tr("uin-already-paid"))
            return
        except DomainError as error:
            await _say(callback, ctx.tr(error_key(error)))
            return
        if bill is not None:
            await ctx.uow.commit()
            await manager.start(PaySG.confirm, data={"bill_ids": [bill.id]})
            return
    if not data.get("requisites"):
        await _say(callback, ctx.tr("receipt-missing"))
        return
    amount = manager.dialog_data.get("amount", data.get("amount"))
    if not amount:
        await manager.switch_to(ReceiptSG.amount)
        return
    await manager.start(PaySG.confirm, data={"requisites": data["requisites"], "amount": amount})


async def _say(callback: CallbackQuery, text: str) -> None:
    assert callback.message is not None
    await callback.message.answer(text)


async def on_amount(message: Message, _widget: MessageInput, manager: DialogManager) -> None:
    tr: Translator = manager.middleware_data["tr"]
    try:
        amount = parse_rub(message.text or "")
    except MoneyParseError:
        amount = 0
    if amount <= 0:
        await message.answer(tr("receipt-bad-amount"))
        return
    manager.dialog_data["amount"] = amount
    await manager.switch_to(ReceiptSG.summary, show_mode=ShowMode.SEND)


async def problem_getter(dialog_manager: DialogManager, tr: Translator, **_: Any) -> dict[str, Any]:
    data: dict[str, Any] = dialog_manager.start_data or {}  # type: ignore[assignment]
    return {"text": tr(data.get("key", "receipt-no-qr"))}


def build_dialog() -> Dialog:
    return Dialog(
        Window(
            Format("{text}"),
            Button(Tr("receipt-pay"), id="pay", on_click=on_pay),
            Cancel(Tr("pay-cancel")),
            HintOnText(),
            getter=summary_getter,
            state=ReceiptSG.summary,
        ),
        Window(
            Tr("receipt-ask-amount"),
            MessageInput(on_amount, content_types=ContentType.TEXT),
            Cancel(Tr("pay-cancel")),
            state=ReceiptSG.amount,
        ),
        Window(
            Format("{text}"),
            Start(Tr("receipt-enter-uin"), id="uin", state=UinSG.input),
            Cancel(Tr("nav-back")),
            HintOnText(),
            getter=problem_getter,
            state=ReceiptSG.problem,
        ),
        name="receipts",
    )


async def not_collecting_photos(_event: Message, **data: Any) -> bool:
    """Photos are receipts, except where a dialog step itself asks for photos."""
    context = data.get(CONTEXT_KEY)
    return context is None or context.state not in PHOTO_STEPS


def build_router() -> Router:
    """Photos and image files anywhere else in the conversation are receipts to read."""
    router = Router(name="receipts")
    router.message.filter(not_collecting_photos)
    router.message.register(on_receipt, F.photo)
    router.message.register(on_receipt, F.document.mime_type.startswith("image/"))
    router.message.register(on_not_image, F.document)
    return router


async def on_not_image(message: Message, tr: Translator) -> None:
    """A PDF or any other file: we read pictures only."""
    await message.answer(tr("receipt-not-image"))
