"""Payment QR codes of paper receipts (GOST R 56042-2014) drawn with segno, for tests that
photograph a receipt: ``ST0001<encoding>|Name=…|PersonalAcc=…|…`` as a PNG picture."""

from __future__ import annotations

import io
from collections.abc import Mapping

import segno

# GOST R 56042-2014 encodings: the digit after "ST0001".
ENCODINGS = {"1": "cp1251", "2": "utf-8", "3": "koi8-r"}

EPD_PAYEE = {
    "Name": "ГБУ «Жилищник района Сосновая Роща»",
    "PersonalAcc": "40702810938000012345",
    "BankName": "ПАО СБЕРБАНК",
    "BIC": "044525225",
    "CorrespAcc": "30101810400000000225",
    "PayeeINN": "7701234567",
}
GIBDD_PAYEE = {
    "Name": "УФК по г. Москве (ГИБДД)",
    "PersonalAcc": "03100643000000017300",
    "BankName": "ГУ Банка России по ЦФО",
    "BIC": "004525988",
    "CorrespAcc": "40102810545370000003",
    "PayeeINN": "7707089101",
}


def payload(fields: Mapping[str, str | None], encoding: str = "1") -> bytes:
    """The QR code's bytes: the header, then ``Key=Value`` pairs (None values left out)."""
    text = f"ST0001{encoding}|" + "|".join(f"{k}={v}" for k, v in fields.items() if v is not None)
    return text.encode(ENCODINGS[encoding])


def qr_png(data: bytes, *, scale: int = 4, border: int = 4) -> bytes:
    """A clean PNG of the code (a screenshot or a good scan rather than a phone photo)."""
    buffer = io.BytesIO()
    segno.make(data, error="m", micro=False).save(buffer, kind="png", scale=scale, border=border)
    return buffer.getvalue()


def epd_receipt(
    *, pers_acc: str, period: str, amount: int | None, purpose: str | None = None
) -> dict[str, str | None]:
    """An ЕПД receipt paid by requisites: the payer code (PersAcc) and the period (PaymPeriod,
    MMYYYY) say which flat and month; ``period`` is given as MM.YYYY."""
    month, year = period.split(".")
    return {
        **EPD_PAYEE,
        "Purpose": purpose or f"Оплата ЕПД за {period}",
        "PersAcc": pers_acc,
        "PaymPeriod": f"{month}{year}",
        "Sum": None if amount is None else str(amount),
    }


def uin_receipt(uin: str, *, amount: int | None = None) -> dict[str, str | None]:
    """A receipt (a fine, a kindergarten or club bill) that names its charge by UIN."""
    return {
        **GIBDD_PAYEE,
        "Purpose": f"Оплата начисления {uin}",
        "UIN": uin,
        "Sum": None if amount is None else str(amount),
        "TechCode": "03",
    }
