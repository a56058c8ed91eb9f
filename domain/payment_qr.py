"""Payment QR codes (GOST R 56042-2014): a tolerant parser of what receipts really print.

``ST0001`` + encoding digit (1 windows-1251, 2 UTF-8, 3 KOI8-R) + a one-character separator,
then ``Key=Value`` pairs split by that separator (shared/REFERENCE.md). Real codes break the
rules (lower-case keys, ``CorrespAcc=0``, windows-1251 bytes that a reader decoded as Latin-1),
so the parser forgives what is harmless and refuses only what the bot relies on: the payee's
account and BIC, or a UIN, and a well-formed amount. Whether a UIN is valid is ``domain.uin``'s
business, not this module's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

HEADER = "ST0001"
ENCODINGS = {"1": "cp1251", "2": "utf-8", "3": "koi8_r"}
SUM_MAX_DIGITS = 18

# Around the whole payload only: str.strip() would also eat U+0085 and U+00A0, which are
# legitimate windows-1251 bytes (… and a no-break space) in a Latin-1-decoded payload.
_PAYLOAD_PADDING = " \t\r\n\x00\ufeff"
_PAYLOAD_PADDING_BYTES = b" \t\r\n\x00"
_UTF8_BOM = b"\xef\xbb\xbf"
_PERIOD_RE = re.compile(r"(0[1-9]|1[0-2])\.?([0-9]{4})")
# What a reader produces when it guesses Shift_JIS for single-byte Cyrillic: kana and kanji.
_JAPANESE_RE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff\uff61-\uff9f]")

# Lower-cased key → PaymentQr field. PayeeKPP is not in the standard but is common in the wild.
_FIELDS = {
    "name": "name",
    "personalacc": "personal_acc",
    "bankname": "bank_name",
    "bic": "bic",
    "correspacc": "corresp_acc",
    "sum": "amount",
    "purpose": "purpose",
    "payeeinn": "payee_inn",
    "kpp": "kpp",
    "payeekpp": "kpp",
    "cbc": "cbc",
    "oktmo": "oktmo",
    "persacc": "pers_acc",
    "paymperiod": "period",
    "uin": "uin",
    "techcode": "tech_code",
    "category": "category",
    "servicename": "service_name",
    "lastname": "last_name",
    "firstname": "first_name",
    "payeraddress": "payer_address",
    "flat": "flat",
    "phone": "phone",
}


class QrProblem(StrEnum):
    EMPTY = "empty"
    NOT_PAYMENT = "not_payment"
    BAD_ENCODING = "bad_encoding"
    MISSING_FIELDS = "missing_fields"
    BAD_FIELD = "bad_field"


class NotAPaymentQr(ValueError):
    """The code is not a payment we can use; ``reason`` says why, ``key`` names a bad field.

    The message never carries field values: they are a resident's personal data.
    """

    def __init__(self, reason: QrProblem, key: str | None = None) -> None:
        super().__init__(f"{reason.value}: {key}" if key else reason.value)
        self.reason = reason
        self.key = key


@dataclass(frozen=True, slots=True)
class PaymentQr:
    name: str | None = None
    personal_acc: str | None = None
    bank_name: str | None = None
    bic: str | None = None
    corresp_acc: str | None = None
    amount: int | None = None  # kopecks, from Sum; None when absent or zero
    purpose: str | None = None
    payee_inn: str | None = None
    kpp: str | None = None
    cbc: str | None = None
    oktmo: str | None = None
    pers_acc: str | None = None  # the payer's account with the provider (ЕПД payer code)
    period: str | None = None  # MM.YYYY when recognisable, else as printed
    uin: str | None = None
    tech_code: str | None = None
    category: str | None = None
    service_name: str | None = None
    last_name: str | None = None
    first_name: str | None = None
    payer_address: str | None = None
    flat: str | None = None
    phone: str | None = None
    extra: dict[str, str] = field(default_factory=dict, hash=False)

    @property
    def has_uin(self) -> bool:
        return self.uin is not None


def parse_payment_qr(data: bytes | str) -> PaymentQr:
    """Parse a payment code's payload: raw bytes (preferred) or text a reader already decoded."""
    text = _decode_bytes(data) if isinstance(data, bytes) else _decode_text(data)
    separator = text[7:8]
    values, extra = _collect(text[8:].split(separator) if separator else [])
    return _build(values, extra)


def _decode_bytes(data: bytes) -> str:
    payload = data.strip(_PAYLOAD_PADDING_BYTES)
    payload = payload.removeprefix(_UTF8_BOM).lstrip(_PAYLOAD_PADDING_BYTES)
    if not payload:
        raise NotAPaymentQr(QrProblem.EMPTY)
    if payload[:6].upper() != HEADER.encode("ascii"):
        raise NotAPaymentQr(QrProblem.NOT_PAYMENT)
    codec = ENCODINGS.get(payload[6:7].decode("ascii", errors="replace"))
    if codec is None:
        raise NotAPaymentQr(QrProblem.BAD_ENCODING)
    try:
        return payload.decode(codec)
    except UnicodeDecodeError:
        raise NotAPaymentQr(QrProblem.BAD_ENCODING) from None


def _decode_text(data: str) -> str:
    text = data.strip(_PAYLOAD_PADDING)
    if not text:
        raise NotAPaymentQr(QrProblem.EMPTY)
    if text[:6].upper() != HEADER:
        raise NotAPaymentQr(QrProblem.NOT_PAYMENT)
    codec = ENCODINGS.get(text[6:7])
    if codec is None:
        raise NotAPaymentQr(QrProblem.BAD_ENCODING)
    return repair_mojibake(text, codec)


def repair_mojibake(text: str, codec: str) -> str:
    """Undo a reader's wrong guess of the character set; leave text that looks right alone.

    Without an ECI marker in the symbol, zxing-cpp guesses: windows-1251 and KOI8-R bytes come
    out as Latin-1 (``Îïëàòà``) or, for some byte runs, as Shift_JIS half-width kana
    (``ﾏﾐﾌﾁﾔﾁ``). Both are reversible unless the reader replaced bytes with U+FFFD.
    """
    if text.isascii() or "\ufffd" in text:
        return text
    # Right text has Cyrillic letters (above U+00FF) and no kana: neither branch touches it.
    wrong_guesses: tuple[str, ...] = ()
    if all(ord(ch) <= 0xFF for ch in text):
        wrong_guesses = ("latin-1",)
    elif codec != "utf-8" and _JAPANESE_RE.search(text):
        wrong_guesses = ("shift_jis", "cp932")
    for wrong in wrong_guesses:
        try:
            return text.encode(wrong).decode(codec)
        except UnicodeError:
            continue
    return text


def _collect(parts: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Known fields by PaymentQr name and unknown keys as printed; the first non-empty wins."""
    values: dict[str, str] = {}
    extra: dict[str, str] = {}
    seen_extra: set[str] = set()
    for part in parts:
        key, eq, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or not key or not value:
            continue
        folded = key.lower()
        name = _FIELDS.get(folded)
        if name is not None:
            values.setdefault(name, value)
        elif folded not in seen_extra:
            seen_extra.add(folded)
            extra[key] = value
    return values, extra


def _build(values: dict[str, str], extra: dict[str, str]) -> PaymentQr:
    personal_acc = _digits(values.get("personal_acc"), "PersonalAcc", 20)
    bic = _digits(values.get("bic"), "BIC", 9)
    corresp_acc = _digits(values.get("corresp_acc"), "CorrespAcc", 20, zero_is_none=True)
    amount = _amount(values.get("amount"))
    uin = _compact(values.get("uin"))
    if uin is not None and set(uin) == {"0"}:
        uin = None  # «UIN=0» is how payment documents say "no UIN"
    if not ((personal_acc and bic) or uin):
        raise NotAPaymentQr(QrProblem.MISSING_FIELDS)
    get = values.get
    return PaymentQr(
        name=get("name"),
        personal_acc=personal_acc,
        bank_name=get("bank_name"),
        bic=bic,
        corresp_acc=corresp_acc,
        amount=amount,
        purpose=get("purpose"),
        payee_inn=get("payee_inn"),
        kpp=get("kpp"),
        cbc=get("cbc"),
        oktmo=get("oktmo"),
        pers_acc=get("pers_acc"),
        period=_period(get("period")),
        uin=uin,
        tech_code=get("tech_code"),
        category=get("category"),
        service_name=get("service_name"),
        last_name=get("last_name"),
        first_name=get("first_name"),
        payer_address=get("payer_address"),
        flat=get("flat"),
        phone=get("phone"),
        extra=extra,
    )


def _compact(value: str | None) -> str | None:
    return None if value is None else "".join(value.split())


def _is_digits(value: str) -> bool:
    return value.isascii() and value.isdigit()


def _digits(value: str | None, key: str, length: int, *, zero_is_none: bool = False) -> str | None:
    """An all-digit field of a fixed length; spaces inside (as printed in groups) are dropped."""
    compact = _compact(value)
    if compact is None:
        return None
    if zero_is_none and _is_digits(compact) and set(compact) == {"0"}:
        return None
    if not _is_digits(compact) or len(compact) != length:
        raise NotAPaymentQr(QrProblem.BAD_FIELD, key)
    return compact


def _amount(value: str | None) -> int | None:
    compact = _compact(value)
    if compact is None:
        return None
    if not _is_digits(compact) or len(compact) > SUM_MAX_DIGITS:
        raise NotAPaymentQr(QrProblem.BAD_FIELD, "Sum")
    return int(compact) or None


def _period(value: str | None) -> str | None:
    if value is None:
        return None
    match = _PERIOD_RE.fullmatch(value)
    return f"{match.group(1)}.{match.group(2)}" if match else value
