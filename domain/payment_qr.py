"""Payment QR codes (GOST R 56042-2014): a tolerant reader of receipts as they are printed, and
the check that decides what of a receipt may be sent on to the city.

``ST0001`` + encoding digit (1 windows-1251, 2 UTF-8, 3 KOI8-R) + a one-character separator,
then ``Key=Value`` pairs split by that separator (GOST R 56042-2014, section 5).
Real codes break the rules — lower-case keys, ``CorrespAcc=0``, a header that names another
encoding than the bytes are in, a stray byte after a value, the separator inside a value, a
``Sum`` in rubles with a decimal point, a period in words, a 26-character UIN, a 9-digit INN —
so the work is split in two:

* ``parse_payment_qr`` reads what is there and refuses only what is not a payment code at all
  (``NotAPaymentQr``): no header, an unknown encoding digit, bytes no encoding makes sense of,
  or neither the payee's account and BIC nor a UIN.
* ``validate`` checks every field the city validates (``sandbox/payments.py``
  ``_requisites`` mirrors the platform's rules), normalises what it can, leaves out what it
  cannot, and names each problem (``ReceiptProblem``). Only its ``ReceiptCheck`` should reach
  a payment: an invalid UIN, period or INN is never passed on.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from enum import StrEnum

from domain.payable import Requisites
from domain.typed_text import IGNORABLE
from domain.uin import check_uin

HEADER = "ST0001"
ENCODINGS = {"1": "cp1251", "2": "utf-8", "3": "koi8_r"}
SUM_MAX_DIGITS = 18
# The period the city accepts (sandbox/payments.py: ``_PERIOD``).
PERIOD_FORMAT = re.compile(r"(0[1-9]|1[0-2])\.[0-9]{4}")

# Around the whole payload only: C0 controls (a reader's trailing NUL, CR, LF, SUB), spaces, a
# BOM. Not str.strip(): it would also eat U+0085 and U+00A0, which are windows-1251 bytes
# (… and a no-break space) in a payload a reader decoded as Latin-1.
_PADDING_BYTES = bytes(range(0x21)) + b"\x7f"
_PAYLOAD_PADDING = _PADDING_BYTES.decode("ascii") + "\ufeff"
_UTF8_BOM = b"\xef\xbb\xbf"
# What a reader produces when it guesses Shift_JIS for single-byte Cyrillic: kana and kanji.
_JAPANESE_RE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff\uff61-\uff9f]")

# Every key of the standard (its tables 1-3, as listed by the public QRCoder implementation),
# lower-cased, plus two common misspellings. A part whose key is not among them is not a new
# field (see _entries).
_GOST_KEYS = frozenset(
    key.lower()
    for key in (
        "Name PersonalAcc BankName BIC CorrespAcc Sum Purpose PayeeINN PayerINN DrawerStatus "
        "KPP CBC OKTMO PaytReason TaxPeriod DocNo DocDate TaxPaytKind LastName FirstName "
        "MiddleName PayerAddress PersonalAccount DocIdx PensAcc Contract PersAcc Flat Phone "
        "PayerIdType PayerIdNum ChildFio BirthDate PaymTerm PaymPeriod Category ServiceName "
        "CounterId CounterVal QuittId QuittDate InstNum ClassNum SpecFio AddAmount RuleId ExecId "
        "RegType UIN TechCode PayeeKPP PayerKPP"
    ).split()
)
# Keys whose values are words a person wrote; the others hold codes and numbers.
_FREE_TEXT_KEYS = frozenset(
    "name bankname purpose lastname firstname middlename payeraddress category servicename "
    "childfio specfio".split()
)
_CODE_KEYS = _GOST_KEYS - _FREE_TEXT_KEYS
_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*")

# Lower-cased key → PaymentQr field. PayeeKPP is not in the standard but is common in the wild.
_FIELDS = {
    "name": "name",
    "personalacc": "personal_acc",
    "bankname": "bank_name",
    "bic": "bic",
    "correspacc": "corresp_acc",
    "sum": "sum",
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

# Inside a value: controls that are not whitespace are dropped (whitespace runs become one
# space), and so are a BOM and zero-width characters.
_DROPPED = {
    code: None
    for code in (
        *range(0x20),
        0x7F,
        *range(0x80, 0xA0),
        # Every default-ignorable code point (zero-width characters, the BOM), as typed text
        # drops them: direction marks and overrides (U+200E/F, U+202A–E, U+2066–9, the Arabic
        # letter mark U+061C) showed a payee's name reordered on the confirmation (reviews
        # 33d, 34a).
        *(code for low, high in IGNORABLE for code in range(low, high + 1)),
    )
    if not chr(code).isspace()
}
# How generators write a field they had no value for («PersAcc=null», a Java or JavaScript
# string concatenation): read as not printed (review 33d).
_ABSENT = frozenset({"null", "undefined", "none", "nan"})
_EDGE_JUNK = " \ufffd"  # a byte the reader could not decode, at either end of a value
# Fields that decide where money goes or how much: printed twice with two different values,
# neither is believed (the field is marked unreadable, `_CONFLICT`, and validation refuses it:
# the sum is asked, requisites or a UIN are not used). Words (a name, a purpose) keep the first.
_DECISIVE = frozenset("personal_acc bic corresp_acc sum payee_inn kpp uin period pers_acc".split())
_CONFLICT = "?"
# «Индекс документа»: the tax service prints a notice's UIN there, with no UIN field.
_DOC_INDEX = "docidx"


class QrProblem(StrEnum):
    """Why a code is not a payment code at all (``NotAPaymentQr.reason``)."""

    EMPTY = "empty"
    NOT_PAYMENT = "not_payment"
    BAD_ENCODING = "bad_encoding"
    MISSING_FIELDS = "missing_fields"
    # A link of the Faster Payments System (qr.nspk.ru, НСПК's format, not GOST R 56042): a
    # payment code indeed, but one the bank's app pays, not the city (review 33d).
    SBP = "sbp"


class NotAPaymentQr(ValueError):
    """The code is not a payment code we can read; ``reason`` says why.

    The message never carries field values: they are a resident's personal data.
    """

    def __init__(self, reason: QrProblem) -> None:
        super().__init__(reason.value)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class PaymentQr:
    """A payment code's fields. From ``parse_payment_qr``: as printed, cleaned (control
    characters and stray bytes dropped, whitespace runs made one space; numbers with their
    spaces removed), nothing validated. From ``validate`` (``ReceiptCheck.qr``): normalised,
    every field the city checks valid or None."""

    name: str | None = None
    personal_acc: str | None = None
    bank_name: str | None = None
    bic: str | None = None
    corresp_acc: str | None = None  # None for «0» (no correspondent account: the treasury)
    sum: str | None = None  # Sum as printed; validated: kopecks as digits
    amount: int | None = None  # kopecks read from Sum; None when absent, zero or unreadable
    purpose: str | None = None
    payee_inn: str | None = None
    kpp: str | None = None
    cbc: str | None = None
    oktmo: str | None = None
    pers_acc: str | None = None  # the payer's account with the provider (ЕПД payer code)
    period: str | None = None  # MM.YYYY when readable, else as printed; validated: MM.YYYY
    uin: str | None = None  # None for «0»; validated: a valid UIN
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


# ---------------------------------------------------------------- reading


def parse_payment_qr(data: bytes | str) -> PaymentQr:
    """Read a payment code's payload: raw bytes (preferred) or text a reader already decoded.

    Returns every field as printed (cleaned, not validated: see ``validate``); raises
    ``NotAPaymentQr`` and nothing else.
    """
    text = _decode_bytes(data) if isinstance(data, bytes) else _decode_text(data)
    separator = text[7:8]
    entries = _entries(text[8:].split(separator), separator) if separator else []
    return _build(*_fold(entries))


# The Faster Payments System's QR links (НСПК: payment «qr.nspk.ru», subscription «sub.nspk.ru»).
_SBP_LINK = re.compile(r"^(?:https?://)?(?:qr|sub)\.nspk\.ru/", re.IGNORECASE)


def _other_code(text: str) -> QrProblem:
    """What a code that is not GOST R 56042 is: an СБП link, or not a payment code at all."""
    return QrProblem.SBP if _SBP_LINK.match(text.strip()) else QrProblem.NOT_PAYMENT


def _decode_bytes(data: bytes) -> str:
    payload = data.strip(_PADDING_BYTES)
    payload = payload.removeprefix(_UTF8_BOM).lstrip(_PADDING_BYTES)
    if not payload:
        raise NotAPaymentQr(QrProblem.EMPTY)
    if payload[:6].upper() != HEADER.encode("ascii"):
        raise NotAPaymentQr(_other_code(payload.decode("ascii", errors="replace")))
    codec = ENCODINGS.get(payload[6:7].decode("ascii", errors="replace"))
    if codec is None:
        raise NotAPaymentQr(QrProblem.BAD_ENCODING)
    return _best_reading(payload, codec)


def _decode_text(data: str) -> str:
    text = data.strip(_PAYLOAD_PADDING)
    if not text:
        raise NotAPaymentQr(QrProblem.EMPTY)
    if text[:6].upper() != HEADER:
        raise NotAPaymentQr(_other_code(text))
    codec = ENCODINGS.get(text[6:7])
    if codec is None:
        raise NotAPaymentQr(QrProblem.BAD_ENCODING)
    return repair_mojibake(text, codec)


def repair_mojibake(text: str, codec: str) -> str:
    """Undo a reader's wrong guess of the character set; leave text that looks right alone.

    Without an ECI marker in the symbol, zxing-cpp guesses: windows-1251 and KOI8-R bytes come
    out as Latin-1 (``Îïëàòà``) or, for some byte runs, as Shift_JIS half-width kana
    (``ﾏﾐﾌﾁﾔﾁ``); other readers hand UTF-8 over read as windows-1251 (``РћРћРћ``). All are
    reversible unless the reader replaced bytes with U+FFFD. The bytes got back are read like
    raw bytes (``_best_reading``), so a header that names the wrong encoding is forgiven here
    too. ``codec`` is the one the header names.
    """
    if text.isascii() or "\ufffd" in text:
        return text
    # Right text has Cyrillic letters (above U+00FF) and no kana: neither branch touches it.
    wrong_guesses: tuple[str, ...] = ()
    if all(ord(ch) <= 0xFF for ch in text):
        wrong_guesses = ("latin-1",)
    elif codec != "utf-8" and _JAPANESE_RE.search(text):
        wrong_guesses = ("shift_jis", "cp932")
    elif codec == "utf-8" and _reads_back(text, "cp1251"):
        # UTF-8 bytes read as windows-1251 («РћРћРћ»): right Cyrillic text never reads back
        # as UTF-8 from windows-1251 (two Cyrillic letters in a row are no UTF-8 sequence)
        wrong_guesses = ("cp1251",)
    for wrong in wrong_guesses:
        try:
            return _best_reading(text.encode(wrong), codec)
        except (UnicodeError, NotAPaymentQr):
            continue
    return text


def _reads_back(text: str, wrong: str) -> bool:
    """Whether `text`, encoded back with the reader's `wrong` guess, is strict UTF-8."""
    try:
        text.encode(wrong).decode("utf-8")
    except UnicodeError:
        return False
    return True


# Characters a Russian receipt is made of: ASCII, Russian letters, the punctuation
# windows-1251 has for it (guillemets, numero sign, dashes, ellipsis, quotes, no-break space),
# and signs only UTF-8 can carry (₽, m² and m³ on utility bills). Not «°», «·», «±»: they are
# what «а», «з», «б» in UTF-8 look like in windows-1251.
_RUSSIAN = "абвгдеёжзийклмнопрстуфхцчшщъыьэюя"
_TYPICAL = frozenset(_RUSSIAN + _RUSSIAN.upper() + "«»№–—…‘’“”„\u00a0₽€²³×")
# Letter frequencies of Russian text in percent (the commonly quoted corpus figures): the right
# reading of Cyrillic bytes is made of frequent letters, a wrong one of rare ones.
_FREQUENCY = dict(
    zip(
        "оеаинтсрвлкмдпуяыьгзбчйхжшюцщэфъё",
        (10.97, 8.45, 8.01, 7.35, 6.70, 6.26, 5.47, 4.73, 4.54, 4.40, 3.49, 3.21, 2.98, 2.81,
         2.62, 2.01, 1.90, 1.74, 1.70, 1.65, 1.59, 1.44, 1.21, 0.97, 0.94, 0.73, 0.64, 0.48,
         0.36, 0.32, 0.26, 0.04, 0.04),
        strict=True,
    )
)  # fmt: skip
_LETTER_SCORE = {letter: math.log2(share) for letter, share in _FREQUENCY.items()}
_WORD = re.compile(r"[A-Za-zА-Яа-яЁё]+")
_CYRILLIC_LETTER = re.compile(r"[А-Яа-яЁё]")
# windows-1251 is by far the commoner single-byte encoding on receipts, and a short text of
# capitalised abbreviations («УФК», «ЕПД») reads as letters both ways: a KOI8-R reading has to
# look clearly more Russian (by this many bits a letter) to win over a windows-1251 one.
_KOI8_HANDICAP = 1.5
# … for so many letters at most: over a longer text the letters' own frequencies decide (review
# 36d: an all-capitals KOI8-R receipt under ST00012 lost to its windows-1251 gibberish).
_KOI8_HANDICAP_LETTERS = 12


def _best_reading(payload: bytes, declared: str) -> str:
    """The payload's text: in the declared encoding when that reads as a Russian receipt,
    else in the encoding the bytes are really in.

    Generators write ``ST00011`` over UTF-8 bytes and ``ST00012`` over windows-1251 ones. A
    reading is *typical* when it is made only of ASCII, Russian letters and Russian
    punctuation. The declared reading wins when it is typical: Russian text in one encoding
    read in another is full of ``Ѓ ѕ ћ`` (UTF-8 read as windows-1251), box-drawing characters
    (windows-1251 read as KOI8-R) or does not decode at all (windows-1251 read as UTF-8). Else
    the typical reading of the other encodings wins, the likeliest Russian text if there are
    two (windows-1251 and KOI8-R map letters onto letters; see ``_KOI8_HANDICAP``). Limits:
    windows-1251 bytes under ``ST00013`` and the other way round read as letters either way,
    and the header is believed; so is ``ST00011`` over UTF-8 whose only non-ASCII characters
    are a few that windows-1251 misreads as typical ones («№» → «в„–», «и» → «Рё»), which no
    real name or purpose is made of.
    """
    if payload.isascii():
        return payload.decode("ascii")
    readings = {codec: _read_as(payload, codec) for codec in ENCODINGS.values()}
    declared_reading = readings.pop(declared)
    if declared_reading is not None and _is_typical(declared_reading):
        return declared_reading
    typical = [(codec, text) for codec, text in readings.items() if text and _is_typical(text)]
    if typical:
        # windows-1251 and KOI8-R swap the cases of the letters they share: a mixed-case text
        # read in the wrong one of the two has a capital right after a small letter («оПЛАТА»).
        typical = [reading for reading in typical if not _miscased(reading[1])] or typical
        return max(typical, key=_likelihood)[1]
    if declared_reading is not None:
        return declared_reading
    raise NotAPaymentQr(QrProblem.BAD_ENCODING)


def _read_as(payload: bytes, codec: str) -> str | None:
    """The payload in ``codec``, forgiving one undecodable byte at the end of each value (and
    of the payload); None when it does not decode."""
    separator = payload[7:8]
    if not separator or not separator.isascii():
        return _decode_part(payload, codec)
    parts = [_decode_part(part, codec) for part in payload.split(separator)]
    if any(part is None for part in parts):
        return None
    return separator.decode("ascii").join(part for part in parts if part is not None)


def _decode_part(part: bytes, codec: str) -> str | None:
    try:
        return part.decode(codec)
    except UnicodeDecodeError:
        pass
    try:  # one stray byte after the value, before any trailing controls
        return part.rstrip(_PADDING_BYTES)[:-1].decode(codec)
    except UnicodeDecodeError:
        return None


def _likelihood(reading: tuple[str, str]) -> float:
    codec, text = reading
    letters = min(len(_CYRILLIC_LETTER.findall(text)), _KOI8_HANDICAP_LETTERS)
    return _russian_score(text) - (_KOI8_HANDICAP * letters if codec == "koi8_r" else 0)


_SMALL_THEN_CAPITAL = re.compile(r"[а-яё][А-ЯЁ]")


def _miscased(text: str) -> bool:
    """A capital Cyrillic letter right after a small one: never in Russian words («Оплата»,
    «ОПЛАТА», «оплата»), always in a mixed-case one read in the wrong single-byte encoding."""
    return _SMALL_THEN_CAPITAL.search(text) is not None


def _is_typical(text: str) -> bool:
    return all(ch.isascii() or ch in _TYPICAL for ch in text)


def _russian_score(text: str) -> float:
    """How much ``text`` looks like Russian: frequent letters score, rare ones cost, and a word
    cased as no one writes («оПЛАТА», what windows-1251 looks like in KOI8-R) or mixing
    scripts costs more."""
    score = 0.0
    for word in _WORD.findall(text):
        if word.isascii():
            continue
        cased = word.islower() or word.isupper() or word.istitle()
        for ch in word:
            letter = _LETTER_SCORE.get(ch.lower())
            score += -3.0 if letter is None or not cased else letter
    return score


def _entries(parts: list[str], separator: str) -> list[tuple[str, str]]:
    """``Key=Value`` parts in order, with the separator inside a value put back.

    A part that does not start a new field belongs to the value before it, kept whole with
    the separator (``Purpose=Взнос | кв. 12 | март``): a part with no ``=`` or whose key is not
    a key of the standard. One exception: a ``Key=value`` with an identifier-like unknown key
    after a code (an account, ``Sum``, a UIN) is a provider's own field, kept in ``extra`` —
    gluing it on would only spoil the code. A fragment before any key is dropped.
    """
    keys: list[str] = []
    raws: list[str] = []
    for part in parts:
        if not _clean(part):
            continue  # a trailing separator, a stray byte
        key, eq, value = part.partition("=")
        key = _clean(key)
        folded = key.lower()
        if eq and folded in _GOST_KEYS:
            keys.append(key)
            raws.append(value)
            continue
        identifier = bool(eq) and _IDENTIFIER.fullmatch(key) is not None
        previous_is_code = bool(keys) and keys[-1].lower() in _CODE_KEYS
        if raws and not (identifier and previous_is_code):
            raws[-1] = f"{raws[-1]}{separator}{part}" if _clean(raws[-1]) else part
        elif identifier:
            keys.append(key)
            raws.append(value)
    return [(key, _clean(raw)) for key, raw in zip(keys, raws, strict=True)]


def _clean(value: str) -> str:
    """Controls and zero-width characters dropped, whitespace runs made one space, stray
    undecodable bytes (U+FFFD) at the ends dropped."""
    return " ".join(value.translate(_DROPPED).split()).strip(_EDGE_JUNK)


def _fold(entries: list[tuple[str, str]]) -> tuple[dict[str, str], dict[str, str]]:
    """Known fields by PaymentQr name and other keys as printed; the first non-empty wins —
    but a field deciding the payee or the amount printed again with another value (digits
    compared, spaces aside) becomes `_CONFLICT`, which validation refuses."""
    values: dict[str, str] = {}
    extra: dict[str, str] = {}
    seen_extra: set[str] = set()
    for key, value in entries:
        if not value or value.casefold() in _ABSENT:
            continue
        folded = key.lower()
        name = _FIELDS.get(folded)
        if name is not None:
            first = values.setdefault(name, value)
            if name in _DECISIVE and _same_value(name, first) != _same_value(name, value):
                values[name] = _CONFLICT
        elif folded not in seen_extra:
            seen_extra.add(folded)
            extra[key] = value
    return values, extra


def _build(values: dict[str, str], extra: dict[str, str]) -> PaymentQr:
    get = values.get
    personal_acc = _compact(get("personal_acc"))
    bic = _compact(get("bic"))
    uin = _compact(get("uin"))
    if uin is not None and _is_zeros(uin):
        uin = None  # «UIN=0» is how payment documents say "no UIN" (Minfin order 107н)
    if uin is None:  # a tax notice: its UIN as the document index, when it is one
        index = _compact(next((v for k, v in extra.items() if k.lower() == _DOC_INDEX), None))
        if index is not None and check_uin(index).ok:
            uin = index
    if not ((personal_acc and bic) or uin):
        raise NotAPaymentQr(QrProblem.MISSING_FIELDS)
    corresp_acc = _compact(get("corresp_acc"))
    if corresp_acc is not None and _is_zeros(corresp_acc):
        corresp_acc = None
    printed_sum = _compact(get("sum"))
    printed_period = get("period")
    return PaymentQr(
        name=get("name"),
        personal_acc=personal_acc,
        bank_name=get("bank_name"),
        bic=bic,
        corresp_acc=corresp_acc,
        sum=printed_sum,
        amount=_amount_or_none(printed_sum),
        purpose=get("purpose"),
        payee_inn=_compact(get("payee_inn")),
        kpp=_compact(get("kpp")),
        cbc=_compact(get("cbc")),
        oktmo=_compact(get("oktmo")),
        pers_acc=get("pers_acc"),
        period=normalise_period(printed_period) or printed_period,
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
    """Numbers are printed in groups (``4070 2810 …``): the spaces go."""
    return None if value is None else "".join(value.split()) or None


def _same_value(name: str, value: str) -> str | None:
    """What two printings of a decisive field are compared by: its digits and letters without
    spaces; a payer code also without dashes and leading zeros («8215-604-937», «08215604937»
    and «8215604937» are one code: `domain.payments` matches bills so — review 36f)."""
    if name == "pers_acc":
        return "".join(ch for ch in value if ch.isascii() and ch.isalnum()).lstrip("0")
    return _compact(value)


def _is_zeros(value: str) -> bool:
    return re.fullmatch(r"0+", value) is not None


# ---------------------------------------------------------------- amounts and periods

_SUM_KOPECKS = re.compile(rf"[0-9]{{1,{SUM_MAX_DIGITS}}}")
_SUM_RUBLES = re.compile(rf"([0-9]{{1,{SUM_MAX_DIGITS - 2}}})[.,]([0-9]{{1,2}})")


def sum_to_kopecks(printed: str) -> int:
    """``Sum`` as printed → kopecks; ValueError when it cannot be read.

    The standard's ``Sum`` is whole kopecks, up to 18 digits (``Sum=150050`` is 1 500,50 ₽),
    and digits alone are always read so. Some generators write rubles instead; they can be
    told apart only by a decimal separator, so ``1500.50``, ``1500,50`` and ``1500.5`` — a
    point or a comma followed by one or two digits — are rubles (150 050 kopecks). Anything
    else (``1.500,50``, ``1500.505``, a sign, non-ASCII digits) is unreadable, never guessed.
    Spaces between digit groups are ignored.
    """
    compact = "".join(printed.split())
    if _SUM_KOPECKS.fullmatch(compact):
        return int(compact)
    rubles = _SUM_RUBLES.fullmatch(compact)
    if rubles is None:
        raise ValueError("not an amount")
    return int(rubles[1]) * 100 + int(rubles[2].ljust(2, "0"))


def _amount_or_none(printed: str | None) -> int | None:
    if printed is None:
        return None
    try:
        return sum_to_kopecks(printed) or None
    except ValueError:
        return None


_MONTHS = {
    "янв": 1, "фев": 2, "мар": 3, "апр": 4, "май": 5, "мая": 5, "мае": 5, "июн": 6,
    "июл": 7, "авг": 8, "сен": 9, "окт": 10, "ноя": 11, "дек": 12,
}  # fmt: skip
_PERIOD_FORMS = (
    # (pattern, group of the month, group of the year); the first that reads a month wins
    (re.compile(r"([0-9]{1,2})[./\- ]([0-9]{4})"), 1, 2),  # 03.2026, 3/2026, 03-2026
    (re.compile(r"([0-9]{4})[./\- ]([0-9]{1,2})"), 2, 1),  # 2026-03, 2026.03
    (re.compile(r"([0-9]{1,2})[./\- ]([0-9]{2})"), 1, 2),  # 03.26
    (re.compile(r"([0-9]{2})([0-9]{4})"), 1, 2),  # 032026
    (re.compile(r"([0-9]{4})([0-9]{2})"), 2, 1),  # 202603
    (re.compile(r"(0[1-9]|1[0-2])([0-9]{2})"), 1, 2),  # 0326: a truncated MMYY PaymPeriod
    (re.compile(r"[0-9]{1,2}[./\- ]([0-9]{1,2})[./\- ]([0-9]{4})"), 1, 2),  # 01.03.2026: its month
    (re.compile(r"([а-яё]+)\.?[\s,]*([0-9]{4}|[0-9]{2})"), 1, 2),  # март 2026, мар. 26
)
_PERIOD_PREFIX = re.compile(r"^(?:период\s+оплаты|период|за)\s*:?\s*")
_PERIOD_SUFFIX = re.compile(r"\s*(?:г\.?|года?)$")


def normalise_period(printed: str | None) -> str | None:
    """A payment period as printed → ``MM.YYYY``; None when no one month and year can be read.

    The standard's ``PaymPeriod`` is ``MMYYYY``-like; receipts print ``03.2026``, ``03/2026``,
    ``2026-03``, ``032026``, ``202603``, ``03.26``, ``01.03.2026``, «март 2026», «за 03.2026»,
    «Март 2026 г.». Two-digit years are 20YY; years outside 1900-2099 and months outside 1-12
    are not read. «за март» (no year), a quarter or a range of months is None: a year is never
    guessed (there is no clock here).
    """
    if printed is None:
        return None
    text = " ".join(printed.lower().split())
    text = _PERIOD_SUFFIX.sub("", _PERIOD_PREFIX.sub("", text))
    for pattern, month_group, year_group in _PERIOD_FORMS:
        found = pattern.fullmatch(text)
        if found is None:
            continue
        month = _month(found[month_group])
        year = int(found[year_group])
        if len(found[year_group]) == 2:
            year += 2000
        if month is not None and 1900 <= year <= 2099:
            return f"{month:02d}.{year}"
    return None


# A month and year in a free text: «09.2026», «9/2026» — not the end of a full date
# («01.09.2026») —, and «сентябрь 2026» (a word of three letters or more; `_month` decides).
_NUMERIC_PERIOD = re.compile(r"(?<![0-9])(?<![0-9][./])(0?[1-9]|1[0-2])[./](20[0-9]{2})(?![0-9])")
_WORD_PERIOD = re.compile(r"(?<![а-яё])([а-яё]{3,})\.?\s+(20[0-9]{2})(?![0-9])")
# «с 01.10.2026 по 31.10.2026», «01.10.2026-31.10.2026»: one month when both dates are in it.
_DATE_RANGE = re.compile(
    r"(?<![0-9])[0-9]{1,2}[./]([0-9]{1,2})[./](20[0-9]{2})\s*(?:-|–|—|по)\s*"
    r"[0-9]{1,2}[./]([0-9]{1,2})[./](20[0-9]{2})(?![0-9])"
)
# A month named in the genitive after a day is a date («1 марта 2026», «до 10-го ноября 2026»).
_GENITIVE = frozenset(
    "января февраля марта апреля мая июня июля августа сентября октября ноября декабря".split()
)
_DAY_BEFORE = re.compile(r"(?<![0-9])[0-9]{1,2}(?:-?го)?\s*$")
# Where a clause of a purpose ends: a month after a deadline's word in the same clause is the
# deadline («Срок оплаты: январь 2027», «до конца ноября 2026»), not the period paid for.
_CLAUSE_END = re.compile(r"[,;|()\[\]\n]|\.\s")
# The words that say what a month and year stand for: the nearest one before it in its clause
# decides — a deadline («до», «срок», «не позднее»), a document's date («от» right before a
# date), or the period itself («за», «период»): «Оплатить до 25.12.2026 за ноябрь 2026» is
# November, «Оплата от собственника за 10.2026» is October (review 32).
_MARKER = re.compile(
    r"(?<![а-яё])(?:(?P<period>за|период[а-яё]*)|(?P<date>от)"
    r"|до|срок[а-яё]*|позднее|позже|дат[аеуыо]й?)(?![а-яё])"
)
_ONLY_A_DATE = re.compile(r"[\s0-9./-]*")


def period_in_text(text: str | None) -> str | None:
    """The one period (``MM.YYYY``) a free text names («Оплата ЕПД за 09.2026», «за март 2026»,
    «кв. 15 октябрь 2026», «за период с 01.10.2026 по 31.10.2026»); None when it names none or
    several different ones. A month and year that end a full date («до 01.01.2025», «1 марта
    2026») or follow a deadline's word in the same clause («Срок оплаты: январь 2027», «до
    конца ноября 2026», «счёт от 03.2023») are a date, not the period a receipt is for: read
    as one, the receipt would match none of the resident's bills and be paid by requisites
    while the bill stayed unpaid (review 30, 30e)."""
    if not text:
        return None
    lowered = text.lower()
    found: set[str] = set()
    for match in _DATE_RANGE.finditer(lowered):
        if match.group(1, 2) == match.group(3, 4) and not _after_deadline(lowered, match.start()):
            month = _month(match[1])
            if month is not None:
                found.add(f"{month:02d}.{match[2]}")
        lowered = lowered[: match.start()] + " " * len(match[0]) + lowered[match.end() :]
    for pattern in (_NUMERIC_PERIOD, _WORD_PERIOD):
        for match in pattern.finditer(lowered):
            before = lowered[: match.start()]
            if match[1] in _GENITIVE and _DAY_BEFORE.search(before):
                continue
            if _after_deadline(lowered, match.start()):
                continue
            month = _month(match[1])
            if month is not None:
                found.add(f"{month:02d}.{match[2]}")
    return found.pop() if len(found) == 1 else None


def _after_deadline(text: str, at: int) -> bool:
    """Whether the month and year at `at` are a deadline's or a document's date: the nearest
    marker before them in their clause of `text` is a deadline's word, or «от» with nothing
    but a date between — not «за» or «период»."""
    clause_start = max((end.end() for end in _CLAUSE_END.finditer(text, 0, at)), default=0)
    markers = list(_MARKER.finditer(text, clause_start, at))
    nearest = markers[-1] if markers else None
    if nearest is None or nearest["period"] is not None:
        return False
    if nearest["date"] is not None:
        return _ONLY_A_DATE.fullmatch(text, nearest.end(), at) is not None
    return True


def _month(text: str) -> int | None:
    if text.isascii():
        month = int(text)
        return month if 1 <= month <= 12 else None
    return _MONTHS.get(text[:3])


# ---------------------------------------------------------------- validation


class ReceiptProblem(StrEnum):
    """One per field: what is wrong with it. Required-for-requisites fields (name, account,
    BIC, INN) are a problem when missing or malformed; the others only when malformed —
    and a malformed one is left out of ``ReceiptCheck.qr``."""

    NAME = "name"  # no payee name
    PERSONAL_ACC = "personal_acc"  # missing or not 20 digits
    BIC = "bic"  # missing or not 9 digits
    CORRESP_ACC = "corresp_acc"  # not 20 digits (and not «0»); tolerated, left out
    PAYEE_INN = "payee_inn"  # missing or not 10 or 12 digits
    KPP = "kpp"  # not a KPP (9 characters); tolerated, left out
    SUM = "sum"  # unreadable or over 18 digits: the amount must be asked
    PERIOD = "period"  # no month and year can be read: left out
    UIN = "uin"  # not a valid UIN: left out, never passed on
    # the payer code printed twice with two values: neither is believed, and requisites are
    # not used (a housing payment without its payer code is credited to no flat; review 36d)
    PERS_ACC = "pers_acc"


@dataclass(frozen=True, slots=True)
class ReceiptCheck:
    """What a receipt can be paid by, and what is wrong with it.

    ``qr``: the receipt normalised — every field the city validates is valid or None, the
    period is MM.YYYY, the UIN valid, ``purpose`` one a resident understands. ``uin``: a
    valid UIN or None. ``requisites_usable``: payment by requisites is possible (payee name,
    20-digit account, 9-digit BIC, 10- or 12-digit INN); ``requisites`` then holds them.
    """

    qr: PaymentQr
    problems: tuple[ReceiptProblem, ...]
    requisites_usable: bool
    uin: str | None

    @property
    def can_pay(self) -> bool:
        """Whether «Оплатить» may be offered: by the UIN, or by requisites — but not by
        requisites to a budget payee whose printed UIN could not be read: without the UIN the
        payment is not credited to the charge (Minfin order 107н), and a fine paid so stays
        unpaid. The resident is asked to type the UIN instead."""
        if self.uin is not None:
            return True
        return self.requisites_usable and not (
            ReceiptProblem.UIN in self.problems and self.budget_payee
        )

    @property
    def budget_payee(self) -> bool:
        """A payment to the budget: a treasury account (``03…``, or the older ``40101…``) or a
        КБК printed (neither absent nor zeros)."""
        account = self.qr.personal_acc or ""
        cbc = _compact(self.qr.cbc)
        return account.startswith(("03", "40101")) or (cbc is not None and not _is_zeros(cbc))

    @property
    def amount(self) -> int | None:
        return self.qr.amount

    @property
    def requisites(self) -> Requisites | None:
        """The payee's requisites for the city, or None when they are not usable."""
        qr = self.qr
        if not self.requisites_usable:
            return None
        assert qr.name and qr.payee_inn and qr.personal_acc and qr.bic and qr.purpose
        return Requisites(
            payee_name=qr.name,
            payee_inn=qr.payee_inn,
            personal_acc=qr.personal_acc,
            bic=qr.bic,
            purpose=qr.purpose,
            pers_acc=qr.pers_acc,
            period=qr.period,
            uin=self.uin,
        )


_KPP = re.compile(r"[0-9]{4}[0-9A-Z]{2}[0-9]{3}")


def validate(qr: PaymentQr) -> ReceiptCheck:
    """Check and normalise a parsed receipt before «Оплатить» is offered.

    The rules are the city's (``sandbox/payments.py`` ``_requisites``, the platform's
    contract): PayeeINN 10 or 12 digits (a 9-digit one is a problem, never padded), PersonalAcc
    20, BIC 9, period MM.YYYY, UIN valid (``domain.uin``). Digits are the ASCII 0-9 only
    («²» and full-width digits are refused, not converted). Also: KPP 9
    characters (the tax service's format: four digits, two digits or capital Latin letters,
    three digits; «0» means none), CorrespAcc 20 digits or «0»/absent (tolerated either way),
    ``Sum`` at most 18 digits of kopecks (see ``sum_to_kopecks``; zero or absent is no amount).
    A missing Purpose becomes the ServiceName, else the payee's Name — never a bare code such
    as a КБК or TechCode, which means nothing to a resident.
    """
    problems: list[ReceiptProblem] = []

    def checked(value: str | None, ok: bool, problem: ReceiptProblem) -> str | None:
        if value is None or ok:
            return value
        problems.append(problem)
        return None

    # A name with bytes the reader could not decode (U+FFFD inside) would be sent on garbled
    # as the payee: unreadable, like a missing one.
    name = qr.name if qr.name and "\ufffd" not in qr.name else None
    if name is None:
        problems.append(ReceiptProblem.NAME)
    personal_acc = _required_digits(qr.personal_acc, (20,), ReceiptProblem.PERSONAL_ACC, problems)
    bic = _required_digits(qr.bic, (9,), ReceiptProblem.BIC, problems)
    corresp = _compact(qr.corresp_acc)
    corresp = None if corresp is not None and _is_zeros(corresp) else corresp
    corresp = checked(corresp, _has_digits(corresp, (20,)), ReceiptProblem.CORRESP_ACC)
    payee_inn = _required_digits(qr.payee_inn, (10, 12), ReceiptProblem.PAYEE_INN, problems)
    kpp = _compact(qr.kpp)
    kpp = None if kpp is not None and _is_zeros(kpp) else kpp
    kpp = checked(kpp, kpp is not None and _KPP.fullmatch(kpp) is not None, ReceiptProblem.KPP)
    amount = _checked_amount(qr, problems)
    period = normalise_period(qr.period)
    if qr.period is not None and period is None:
        problems.append(ReceiptProblem.PERIOD)
    if qr.period is None:  # «Оплата ЕПД за 09.2026»: the period printed only in the purpose
        period = period_in_text(qr.purpose)
    uin = _checked_uin(qr.uin, _compact(qr.cbc), problems)
    pers_acc = _compact(qr.pers_acc) or None  # «4703 159 826» is the code 4703159826
    if pers_acc == _CONFLICT:
        problems.append(ReceiptProblem.PERS_ACC)
        pers_acc = None

    usable = None not in (name, personal_acc, bic, payee_inn)
    usable = usable and ReceiptProblem.PERS_ACC not in problems
    normalised = replace(
        qr,
        name=name,
        personal_acc=personal_acc,
        bic=bic,
        corresp_acc=corresp,
        sum=None if amount is None else str(amount),
        amount=amount,
        purpose=qr.purpose or _understandable(qr.service_name) or name,
        payee_inn=payee_inn,
        kpp=kpp,
        period=period,
        pers_acc=pers_acc,
        uin=uin,
    )
    order = list(ReceiptProblem)
    return ReceiptCheck(
        qr=normalised,
        problems=tuple(sorted(problems, key=order.index)),
        requisites_usable=usable,
        uin=uin,
    )


def _has_digits(value: str | None, lengths: tuple[int, ...]) -> bool:
    return (
        value is not None and len(value) in lengths and re.fullmatch(r"[0-9]+", value) is not None
    )


def _required_digits(
    value: str | None,
    lengths: tuple[int, ...],
    problem: ReceiptProblem,
    problems: list[ReceiptProblem],
) -> str | None:
    compact = _compact(value)
    if _has_digits(compact, lengths):
        return compact
    problems.append(problem)
    return None


def _checked_amount(qr: PaymentQr, problems: list[ReceiptProblem]) -> int | None:
    if qr.sum is not None:
        try:
            return sum_to_kopecks(qr.sum) or None
        except ValueError:
            problems.append(ReceiptProblem.SUM)
            return None
    if qr.amount is None or 0 < qr.amount < 10**SUM_MAX_DIGITS:
        return qr.amount or None
    problems.append(ReceiptProblem.SUM)
    return None


def _checked_uin(value: str | None, cbc: str | None, problems: list[ReceiptProblem]) -> str | None:
    """A valid UIN, or None. Never an invalid one (Minfin order 107н):

    «0» (or all zeros) means no UIN. A 26-character field — seen on printed receipts — is a
    25-character UIN with a character too many, or a padded «0»: when its first 25 characters
    are a valid UIN it is taken as no UIN rather than guessed at (a wrong guess would pay
    someone else's charge), without a problem; any other 26-character field is a problem, as
    is any UIN that fails ``check_uin``. A 20-character UIN equal to the КБК is not a UIN.
    """
    compact = _compact(value)
    if compact is None or _is_zeros(compact):
        return None
    if len(compact) == 26 and check_uin(compact[:25]).ok:
        return None
    check = check_uin(compact)
    if not check.ok or (len(check.uin) == 20 and check.uin == cbc):
        problems.append(ReceiptProblem.UIN)
        return None
    return check.uin


def _understandable(value: str | None) -> str | None:
    """Words, not a bare code: something with at least one letter."""
    return value if value and any(ch.isalpha() for ch in value) else None
