"""A photo (or an image sent as a file) of a paper receipt: find the payment QR code, show what
it says, and offer to pay — by the bill's UIN when it has one, by requisites otherwise."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from aiogram import Bot, F, Router
from aiogram.enums import ContentType
from aiogram.fsm.state import State
from aiogram.types import CallbackQuery, Message
from aiogram_dialog import Dialog, DialogManager, ShowMode, Window
from aiogram_dialog.api.internal import CONTEXT_KEY
from aiogram_dialog.widgets.input import MessageInput
from aiogram_dialog.widgets.kbd import Button, Cancel, Column, Select, Start
from aiogram_dialog.widgets.text import Format
from markupsafe import Markup

from domain.accounts import Resident
from domain.bills import Bill
from domain.errors import DomainError, NotFound
from domain.money import MoneyParseError, format_rub, has_foreign_digit, parse_rub
from domain.payable import Payable, Requisites
from domain.payment_qr import (
    NotAPaymentQr,
    PaymentQr,
    QrProblem,
    ReceiptCheck,
    ReceiptProblem,
    parse_payment_qr,
    validate,
)
from domain.payments import BillAlreadyPaid, lookup_bill, match_receipt
from domain.uin import check_uin
from handlers.navigation import start_over_menu
from handlers.payments import Ctx, limits_of, money_error_key, paid_text, pay_bills, pay_data
from handlers.ports import ImageTooLarge, NotAnImage, QrCode, QrDecoder, Texts
from handlers.states import MyReportsSG, PaySG, ReceiptSG, ReportSG, UinSG
from handlers.texts import error_text
from handlers.widgets import HintOnText, Tr, body

TELEGRAM_DOWNLOAD_LIMIT = 20 * 1024 * 1024  # getFile refuses bigger files
PHOTO_STEPS = {ReportSG.photos, MyReportsSG.refute_photo}


def _payment_qr(payloads: Sequence[QrCode]) -> PaymentQr | QrProblem:
    """The first payload that is a payment code; else the most telling problem."""
    found = _payment_qrs(payloads)
    return found[0] if isinstance(found, list) else found


def _payment_qrs(payloads: Sequence[QrCode]) -> list[PaymentQr] | QrProblem:
    """Every payload that is a payment code, in the order read (a picture may hold two: a
    bill and its capital repair), each once; else the most telling problem."""
    problem = QrProblem.NOT_PAYMENT
    found: list[PaymentQr] = []
    for payload in payloads:
        for candidate in (payload.raw, payload.text):
            try:
                qr = parse_payment_qr(candidate)
            except NotAPaymentQr as error:
                if error.reason is not QrProblem.NOT_PAYMENT:
                    problem = error.reason
                continue
            if qr not in found:
                found.append(qr)
            break
    return found or problem


async def on_receipt(
    message: Message, bot: Bot, tr: Texts, qr_decoder: QrDecoder, dialog_manager: DialogManager,
    resident: Resident | None = None, album: list[Message] | None = None, **data: Any,
) -> None:  # fmt: skip
    if resident is None:
        await message.answer(tr("error-not-linked"))
        return
    if album is not None and len(album) > 1:
        await _read_album(bot, qr_decoder, album, dialog_manager)
        return
    read = await _read(bot, qr_decoder, message)
    if not read.in_window:
        await message.answer(tr(read.key))
        return
    # A late part of an album (it came after the album was answered) goes on top of the
    # album's list, whose buttons stay usable; anything else starts afresh.
    group = message.media_group_id
    context = data.get(CONTEXT_KEY)
    shown_group = (context.start_data or {}).get("media_group") if context is not None else None
    late = group is not None and shown_group == group

    async def show(state: State, start_data: dict[str, Any]) -> None:
        if late:
            await dialog_manager.start(state, data=start_data, show_mode=ShowMode.SEND)
        else:  # «Отмена» and «‹ Назад» land on the menu, not on an empty chat
            await start_over_menu(dialog_manager, state, start_data)

    if read.receipt is not None and read.more:  # two codes in one picture: a list of both
        items = [
            {"number": number, "key": "", "problems": [], "receipt": receipt}
            for number, receipt in enumerate((read.receipt, *read.more), start=1)
        ]
        await show(
            ReceiptSG.album, {"media_group": group, "items": items, "header": "receipt-codes"}
        )
        return
    if read.receipt is None:
        await show(
            ReceiptSG.problem,
            {"key": read.key, "media_group": group, "problems": list(read.problems)},
        )
        return
    await show(ReceiptSG.summary, {**read.receipt, "media_group": group})


@dataclass(frozen=True)
class _Read:
    """What one picture says: a receipt that can be paid, or the key of what went wrong."""

    key: str = ""
    problems: tuple[str, ...] = ()  # fields that could not be used (ReceiptProblem values)
    receipt: dict[str, Any] | None = None  # `_summary` of a receipt that can be paid
    in_window: bool = True  # False: a plain answer (not a picture, too big to download)
    more: tuple[dict[str, Any], ...] = ()  # other payment codes of the same picture


# An iPhone's photos sent as files (HEIF): a picture, in a format the reader does not open.
HEIF_TYPES = frozenset({"image/heic", "image/heif", "image/heic-sequence", "image/heif-sequence"})


async def _read(bot: Bot, qr_decoder: QrDecoder, message: Message) -> _Read:
    file = message.photo[-1] if message.photo else message.document
    mime = message.document.mime_type if message.document else "image/jpeg"
    if file is None or not (mime or "").startswith("image/"):
        return _Read("receipt-not-image", in_window=False)  # e.g. a video or a PDF in an album
    if (file.file_size or 0) > TELEGRAM_DOWNLOAD_LIMIT:
        return _Read("receipt-too-big", in_window=False)
    buffer = io.BytesIO()
    await bot.download(file.file_id, destination=buffer)
    try:
        payloads = await qr_decoder(buffer.getvalue())
    except NotAnImage:  # a phone's own format the reader does not open is said by its name
        name = (message.document.file_name or "") if message.document else ""
        heif = mime in HEIF_TYPES or name.lower().endswith((".heic", ".heif"))
        return _Read("receipt-heic" if heif else "receipt-not-image", in_window=False)
    except ImageTooLarge:
        return _Read("receipt-too-big", in_window=False)
    found = _payment_qrs(payloads) if payloads else None
    if not isinstance(found, list):
        key = {
            None: "receipt-no-qr",
            QrProblem.MISSING_FIELDS: "receipt-missing",
            QrProblem.SBP: "receipt-sbp",
        }.get(found, "receipt-not-payment")
        return _Read(key)
    checks = [validate(qr) for qr in found]
    payable = [_summary(check) for check in checks if check.can_pay or _maybe_a_bill(check)]
    if not payable:  # nothing the city would accept: say what, offer to type the UIN
        return _Read("receipt-unusable", problems=tuple(p.value for p in checks[0].problems))
    return _Read(receipt=payable[0], more=tuple(payable[1:]))


async def _read_album(
    bot: Bot, qr_decoder: QrDecoder, album: list[Message], manager: DialogManager
) -> None:
    """Several pictures in one album: each is read, and one list answers them all — each
    receipt with its own pay button, each picture that could not be used with the reason."""
    items = []
    for number, part in enumerate(album, start=1):
        read = await _read(bot, qr_decoder, part)
        items.append(
            {"number": number, "key": read.key, "problems": list(read.problems),
             "receipt": read.receipt}
        )  # fmt: skip
    await start_over_menu(
        manager, ReceiptSG.album, {"media_group": album[0].media_group_id, "items": items}
    )


# What went wrong with one picture of an album, in a few words for its line of the list.
ALBUM_PROBLEM_KEYS = {
    "receipt-no-qr": "receipt-album-no-qr",
    "receipt-not-payment": "receipt-album-not-payment",
    "receipt-missing": "receipt-album-missing",
    "receipt-sbp": "receipt-album-sbp",
    "receipt-unusable": "receipt-album-unusable",
    "receipt-not-image": "receipt-album-not-image",
    "receipt-heic": "receipt-album-heic",
    "receipt-too-big": "receipt-album-too-big",
}


async def album_getter(dialog_manager: DialogManager, tr: Texts, **_: Any) -> dict[str, Any]:
    data: dict[str, Any] = dialog_manager.start_data or {}  # type: ignore[assignment]
    items = data.get("items") or []
    header = "receipt-codes" if data.get("header") == "receipt-codes" else "receipt-album"
    lines = [tr(header, count=len(items))]
    buttons: list[tuple[str, str]] = []
    for item in items:
        number = str(item["number"])
        receipt = item.get("receipt")
        if receipt is None:
            key = ALBUM_PROBLEM_KEYS.get(item.get("key", ""), "receipt-album-not-payment")
            problem = tr(key, problems=_problems_text(tr, item.get("problems") or []))
            lines.append(tr("receipt-album-problem", number=number, problem=problem))
            continue
        amount = receipt.get("amount")
        shown = format_rub(int(amount)) if amount else tr.label("receipt-album-no-amount")
        payee = receipt.get("payee") or receipt.get("purpose") or receipt.get("uin") or ""
        lines.append(tr("receipt-album-receipt", number=number, payee=payee, amount=shown))
        buttons.append((number, tr.label("receipt-album-pay", number=number, amount=shown)))
    lines.append(tr("receipt-album-choose") if buttons else tr("receipt-album-none"))
    return {"text": Markup("\n").join(lines), "receipts": buttons, "none": not buttons}


async def on_album_pick(
    _callback: CallbackQuery, _widget: Any, manager: DialogManager, item_id: str
) -> None:
    """One receipt of the album: its card, on top of the list (back returns to the list)."""
    data: dict[str, Any] = manager.start_data or {}  # type: ignore[assignment]
    for item in data.get("items") or []:
        if str(item["number"]) == item_id and item.get("receipt") is not None:
            receipt = {**item["receipt"], "media_group": data.get("media_group")}
            await manager.start(ReceiptSG.summary, data=receipt)
            return


def _maybe_a_bill(check: ReceiptCheck) -> bool:
    """A receipt that cannot be paid by its requisites (a budget payee's UIN unreadable:
    `ReceiptCheck.can_pay`) may still be one of the resident's bills, found by its payer code
    (`match_receipt`) — a treasury-paid ЕПД with a garbled UIN field has no UIN to type, and
    paid as the city's bill the payment carries the city's own identifiers (review 30e)."""
    return check.requisites_usable and bool(check.qr.pers_acc)


def _summary(check: ReceiptCheck) -> dict[str, Any]:
    """The receipt as small scalars for the dialog's start data: only validated, normalised
    values (the city would refuse anything else), and what could not be used. `bill_only`:
    payable only as one of the resident's bills (`_maybe_a_bill`), never by requisites."""
    shown = check.qr
    requisites = check.requisites
    return {
        "bill_only": not check.can_pay,
        "payee": shown.name or "",
        "purpose": shown.purpose or "",
        "period": shown.period or "",
        "payer_code": shown.pers_acc or "",
        "amount": shown.amount,
        "uin": check.uin or "",
        "requisites": None if requisites is None else asdict(requisites),
        "problems": [problem.value for problem in check.problems],
    }


PROBLEM_KEYS = {
    ReceiptProblem.NAME: "receipt-problem-name",
    ReceiptProblem.PERSONAL_ACC: "receipt-problem-personal-acc",
    ReceiptProblem.BIC: "receipt-problem-bic",
    ReceiptProblem.CORRESP_ACC: "receipt-problem-corresp-acc",
    ReceiptProblem.PAYEE_INN: "receipt-problem-payee-inn",
    ReceiptProblem.KPP: "receipt-problem-kpp",
    ReceiptProblem.SUM: "receipt-problem-sum",
    ReceiptProblem.PERIOD: "receipt-problem-period",
    ReceiptProblem.UIN: "receipt-problem-uin",
    ReceiptProblem.PERS_ACC: "receipt-problem-pers-acc",
}


def _problems_text(tr: Texts, problems: list[str]) -> Markup:
    """The fields that could not be used, in words («ИНН получателя, период»)."""
    return Markup(", ").join(tr(PROBLEM_KEYS[ReceiptProblem(problem)]) for problem in problems)


async def summary_getter(dialog_manager: DialogManager, tr: Texts, **_: Any) -> dict[str, Any]:
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
    if data.get("problems"):
        lines.append(tr("receipt-unread", problems=_problems_text(tr, data["problems"])))
    return {"text": Markup("\n").join(lines)}


async def on_pay(callback: CallbackQuery, _button: Button, manager: DialogManager) -> None:
    """The receipt becomes one payable: the resident's bill when its UIN is found at the city
    or its payer code and period match a bill (then it is paid as that bill and leaves «Мои
    счета»), otherwise its requisites. Something paid already is said so, with the date."""
    ctx = Ctx(manager)
    data: dict[str, Any] = manager.start_data or {}  # type: ignore[assignment]
    receipt_amount = manager.dialog_data.get("amount", data.get("amount"))
    try:
        bill = await _receipt_bill(ctx, data, receipt_amount)
    except BillAlreadyPaid:
        await _say(callback, await paid_text(ctx, None))
        return
    except DomainError as error:
        await _say(callback, error_text(ctx.tr, error))
        return
    if bill is not None:
        await ctx.uow.commit()  # a UIN lookup adds the bill to the resident's bills
        if bill.paid:
            await _say(callback, await paid_text(ctx, bill))
            return
        note = ""
        if receipt_amount and int(receipt_amount) != bill.amount:
            note = ctx.tr(
                "receipt-amount-differs",
                receipt=format_rub(int(receipt_amount)),
                city=format_rub(bill.amount),
            )
        await pay_bills(manager, [bill.id], note=note)
        return
    if data.get("bill_only"):  # no bill of the resident's: by requisites it would be lost
        await _say(callback, ctx.tr("receipt-uin-needed"))
        return
    if not data.get("requisites"):
        await _say(callback, ctx.tr(data.get("unusable_key") or "receipt-missing"))
        return
    if not receipt_amount:
        await manager.switch_to(ReceiptSG.amount)
        return
    payable = Payable.by_requisites(Requisites(**data["requisites"]))
    await manager.start(PaySG.confirm, data=pay_data(payable, int(receipt_amount)))


async def _receipt_bill(ctx: Ctx, data: dict[str, Any], amount: int | None) -> Bill | None:
    """The resident's bill this receipt is for, if the city knows it (paid or not). `amount`
    (kopecks): the receipt's, or the one the resident typed for a receipt without one — a
    receipt with no period is the unpaid bill of its payer code with that amount (review
    36d: the typed amount was left out, and the bill then paid a second time by requisites)."""
    uin = data.get("uin", "")
    if uin and check_uin(uin).ok:
        try:
            return await lookup_bill(
                ctx.uow, ctx.city, ctx.city, ctx.linked, check_uin(uin).uin, now=ctx.clock()
            )
        except NotFound:
            pass  # not issued at the city yet: try the payer code, then the requisites
    if data.get("requisites"):
        requisites = Requisites(**data["requisites"])
        match = await match_receipt(
            ctx.uow, ctx.city, ctx.city, ctx.linked, requisites, amount and int(amount)
        )
        return match.bill
    return None


async def _say(callback: CallbackQuery, text: str) -> None:
    assert callback.message is not None
    await callback.message.answer(text)


async def on_amount(message: Message, _widget: MessageInput, manager: DialogManager) -> None:
    ctx = Ctx(manager)
    if has_foreign_digit(message.text or ""):
        await message.answer(ctx.tr("input-foreign-digits"))
        return  # nothing entered so far is lost: the step waits for the number again
    try:
        amount = parse_rub(message.text or "")
    except MoneyParseError as error:
        await message.answer(ctx.tr(money_error_key(error, "receipt-bad-amount")))
        return
    if amount <= 0:
        await message.answer(ctx.tr("receipt-bad-amount"))
        return
    ceiling = limits_of(manager).payment
    if amount > ceiling:
        await message.answer(ctx.tr("error-amount-too-large", ceiling=format_rub(ceiling)))
        return
    manager.dialog_data["amount"] = amount
    await manager.switch_to(ReceiptSG.summary, show_mode=ShowMode.SEND)


async def problem_getter(dialog_manager: DialogManager, tr: Texts, **_: Any) -> dict[str, Any]:
    data: dict[str, Any] = dialog_manager.start_data or {}  # type: ignore[assignment]
    problems = _problems_text(tr, data.get("problems") or [])
    return {"text": tr(data.get("key", "receipt-no-qr"), problems=problems)}


def build_dialog() -> Dialog:
    return Dialog(
        Window(
            *body("text", "receipts_text_1"),
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
            *body("text", "receipts_text_2"),
            Start(Tr("receipt-enter-uin"), id="uin", state=UinSG.input),
            Cancel(Tr("nav-back")),
            HintOnText(),
            getter=problem_getter,
            state=ReceiptSG.problem,
        ),
        Window(  # an album of receipts: each read, one list answers them all
            *body("text", "receipts_text_3"),
            Column(
                Select(
                    Format("{item[1]}"),
                    id="album_pay",
                    item_id_getter=lambda item: item[0],
                    items="receipts",
                    on_click=on_album_pick,
                )
            ),
            Start(Tr("receipt-enter-uin"), id="album_uin", state=UinSG.input, when="none"),
            Cancel(Tr("nav-back")),
            HintOnText(),
            getter=album_getter,
            state=ReceiptSG.album,
        ),
        name="receipts",
    )


async def not_collecting_photos(_event: Message, **data: Any) -> bool:
    """Photos are receipts, except where a dialog step itself asks for photos."""
    context = data.get(CONTEXT_KEY)
    return context is None or context.state not in PHOTO_STEPS


async def in_a_report(_event: Message, **data: Any) -> bool:
    """A «Наш город» report (or a «Не устранено») is being written, at a step that does not
    take photos: a photo sent there is the problem's, never a receipt (review 31b)."""
    context = data.get(CONTEXT_KEY)
    return context is not None and (
        context.state.group is ReportSG or context.state is MyReportsSG.refute
    )


# Where photos go, said at a report's step that does not take them (by the step).
_PHOTO_ELSEWHERE = {
    ReportSG.place: "report-place-ask-again",  # the photo step comes right after the place
    ReportSG.place_pick: "report-place-ask-again",
    MyReportsSG.refute: "report-refute-photo-after",  # the photo step follows the comment
}
_BEFORE_THE_PLACE = {
    ReportSG.resume,
    ReportSG.theme,
    ReportSG.theme_results,
    ReportSG.groups,
    ReportSG.group_themes,
}


async def on_report_photo_elsewhere(
    message: Message, tr: Texts, album: list[Message] | None = None, **data: Any
) -> None:
    """A photo (or an album) at a report step other than «Фото»: said where photos go in this
    flow, once for an album; a caption (text the resident meant for the step) is said not to
    be kept, so they type it again (review 32)."""
    context = data.get(CONTEXT_KEY)
    state = context.state if context is not None else None
    key = _PHOTO_ELSEWHERE.get(state) if state is not None else None
    if key is None:
        early = state in _BEFORE_THE_PLACE
        key = "report-photo-before-place" if early else "report-photo-elsewhere"
    text = tr(key)
    if any(part.caption for part in (album or [message])):
        text = text + "\n" + tr("report-photo-caption-lost")
    await message.answer(text)


def build_router() -> Router:
    """Photos and image files anywhere else in the conversation are receipts to read."""
    router = Router(name="receipts")
    router.message.filter(not_collecting_photos)
    pictures = F.photo | F.document.mime_type.startswith("image/") | F.media_group_id
    router.message.register(on_report_photo_elsewhere, in_a_report, pictures)
    router.message.register(on_receipt, F.photo)
    router.message.register(on_receipt, F.document.mime_type.startswith("image/"))
    router.message.register(on_receipt, F.media_group_id)  # an album: every part is answered
    router.message.register(on_not_image, F.document)
    return router


async def on_not_image(message: Message, tr: Texts) -> None:
    """A PDF or any other file: we read pictures only."""
    await message.answer(tr("receipt-not-image"))
