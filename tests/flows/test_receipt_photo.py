"""Paying from a photographed receipt: the QR code is found, shown and paid."""

from __future__ import annotations

import io
from typing import Any

import segno
from PIL import Image, ImageDraw

from domain.uin import with_control_digit
from tests.flows.conftest import Harness
from tests.flows.test_payments import ledger
from tests.money_text import nb


def receipt_photo(payload: bytes, *, rotate: float = 0) -> bytes:
    """A 'photo' of a receipt: the QR code on a page with some print around it, as JPEG."""
    buffer = io.BytesIO()
    segno.make(payload, error="m", micro=False).save(buffer, kind="png", scale=6, border=4)
    code = Image.open(buffer).convert("RGB")
    page = Image.new("RGB", (code.width * 3, code.height * 2), "white")
    draw = ImageDraw.Draw(page)
    for row in range(0, page.height, 24):
        draw.line((20, row, page.width // 2, row), fill=(90, 90, 90), width=2)
    page.paste(code, (page.width - code.width - 30, page.height // 4))
    if rotate:
        page = page.rotate(rotate, expand=True, fillcolor="white")
    out = io.BytesIO()
    page.save(out, format="JPEG", quality=90)
    return out.getvalue()


def epd_qr(**fields: Any) -> bytes:
    parts = {
        "Name": "ГБУ «Жилищник района Сосновая Роща»",
        "PersonalAcc": "40702810938000012345",
        "BankName": "ПАО СБЕРБАНК",
        "BIC": "044525225",
        "CorrespAcc": "30101810400000000225",
        "PayeeINN": "7701234567",
        "Purpose": "Оплата ЕПД за 10.2026",
        "PersAcc": "1234567890",
        "PaymPeriod": "102026",
        "Sum": "812450",
        **fields,
    }
    text = "ST00011|" + "|".join(f"{k}={v}" for k, v in parts.items() if v is not None)
    return text.encode("cp1251")


async def linked(harness: Harness, login: str = "demo-full"):
    chat = harness.chat()
    await harness.link(chat, login)
    return chat


async def test_a_receipt_with_requisites_is_paid_by_requisites(harness: Harness) -> None:
    chat = await linked(harness)
    reply = await chat.send_photo(receipt_photo(epd_qr()), width=900, height=600)
    text = reply.text
    assert "Получатель: ГБУ «Жилищник района Сосновая Роща»" in text  # windows-1251 decoded
    assert "Период: 10.2026" in text and nb("Сумма: 8 124,50 ₽") in text
    await chat.press("Оплатить")
    assert "Оплата по реквизитам" in chat.last_text
    await chat.press(nb("Оплатить 8 124,50 ₽"))
    assert "✅ Оплачено" in chat.last_text
    assert [c["amount"] for c in await ledger(harness)] == [812450]


async def test_a_receipt_with_a_uin_pays_the_bill(harness: Harness) -> None:
    chat = await linked(harness, "demo-standard")
    uin = with_control_digit("188101772011290000" + "2")
    payload = (
        "ST00012|Name=ГИБДД|PersonalAcc=03100643000000017300|BankName=ГУ Банка России"
        f"|BIC=004525988|CorrespAcc=0|UIN={uin}|TechCode=03"
    )
    reply = await chat.send_photo(receipt_photo(payload.encode(), rotate=12))
    assert uin in reply.text
    await chat.press("Оплатить")
    assert "К оплате 1 счёт" in chat.last_text
    await chat.press("Оплатить")
    assert "✅ Оплачено" in chat.last_text


async def test_no_amount_in_the_code_is_asked_for(harness: Harness) -> None:
    chat = await linked(harness)
    await chat.send_photo(receipt_photo(epd_qr(Sum=None)))
    assert "Сумма в QR-коде не указана" in chat.last_text
    await chat.press("Оплатить")
    assert "Сколько заплатить" in chat.last_text
    assert "Не понял сумму" in (await chat.send("много")).text
    await chat.send("1 500,50")
    assert nb("Сумма: 1 500,50 ₽") in chat.last_text  # the receipt is still there, now with a sum


async def test_a_photo_without_a_qr_gets_advice(harness: Harness) -> None:
    chat = await linked(harness)
    picture = io.BytesIO()
    Image.new("RGB", (640, 480), (200, 180, 160)).save(picture, format="JPEG")
    reply = await chat.send_photo(picture.getvalue())
    assert "Не нашёл QR-код" in reply.text and "хорошем свете" in reply.text
    await chat.press("Ввести УИН")
    assert "Введите УИН" in chat.last_text


async def test_a_qr_that_is_not_a_payment(harness: Harness) -> None:
    chat = await linked(harness)
    reply = await chat.send_photo(receipt_photo(b"https://www.mos.ru/"))
    assert "не платёжный" in reply.text


async def test_an_image_sent_as_a_file_is_read_too(harness: Harness) -> None:
    chat = await linked(harness)
    reply = await chat.send_document(receipt_photo(epd_qr()), "scan.jpg", "image/jpeg")
    assert nb("Сумма: 8 124,50 ₽") in reply.text


async def test_a_pdf_or_a_huge_file_gets_a_polite_answer(harness: Harness) -> None:
    chat = await linked(harness)
    reply = await chat.send_document(b"%PDF-1.4 ...", "receipt.pdf", "application/pdf")
    assert "не похоже на картинку" in reply.text
    huge = {
        "document": {
            "file_id": "huge",
            "file_unique_id": "huge",
            "file_name": "scan.png",
            "mime_type": "image/png",
            "file_size": 25 * 1024 * 1024,
        }
    }
    message = {
        "message_id": 999,
        "date": 0,
        "chat": {"id": chat.chat_id, "type": "private", "first_name": "Мария"},
        "from": {"id": chat.chat_id, "is_bot": False, "first_name": "Мария"},
        **huge,
    }
    reply = await chat.feed({"message": message})
    assert "больше 20 МБ" in reply.text
