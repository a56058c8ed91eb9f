"""Review 18: a receipt photo the bot reads end to end (flows)."""

from __future__ import annotations

import io

import segno
from PIL import Image

from tests.flows.conftest import Harness
from tests.flows.test_receipt_photo import epd_qr, linked


def two_codes_photo(first: bytes, second: bytes) -> bytes:
    codes = []
    for payload in (first, second):
        buffer = io.BytesIO()
        segno.make(payload, error="m", micro=False).save(buffer, kind="png", scale=6, border=4)
        codes.append(Image.open(buffer).convert("RGB"))
    page = Image.new("RGB", (sum(c.width for c in codes) + 120, max(c.height for c in codes) + 80))
    page.paste((255, 255, 255), (0, 0, page.width, page.height))
    page.paste(codes[0], (30, 40))
    page.paste(codes[1], (codes[0].width + 90, 40))
    out = io.BytesIO()
    page.save(out, format="PNG")
    return out.getvalue()


# Was (review): a photo with two payment QR codes: only the first is offered, the other is
# silently dropped
async def test_two_payment_codes_in_one_photo_are_not_silently_dropped(harness: Harness) -> None:
    chat = await linked(harness)
    first = epd_qr()
    second = epd_qr(
        Name="Фонд капитального ремонта", PersonalAcc="40603810900000000001", Sum="99900"
    )
    reply = await chat.send_photo(two_codes_photo(first, second), width=900, height=400)
    text = reply.text
    assert "Сосновая Роща" in text or "капитального ремонта" in text  # one was read
    assert "Сосновая Роща" in text and "капитального ремонта" in text
