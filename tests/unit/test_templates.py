"""Payment templates' pure rules: names, what a template keeps, which payments make one."""

from __future__ import annotations

import unicodedata
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from domain.bills import BillKind
from domain.payable import Payable, PayableKind, Requisites
from domain.templates import (
    NAME_MAX,
    NameProblem,
    NotTemplatable,
    clean_name,
    proposed_name,
    readable_target,
    templatable,
    template_target,
)

REQ = Requisites(  # a month's receipt: it names one accrual by its period and UIN
    payee_name="ГБУ «Жилищник»",
    payee_inn="7701234567",
    personal_acc="40702810900000000001",
    bic="044525225",
    purpose="Квартплата за 10.2026",
    pers_acc="4703159826",
    period="10.2026",
    uin="18810177230001234567",
)
OPEN = replace(REQ, purpose="Взнос на капремонт", period=None, uin=None)  # no one accrual


@given(st.text(max_size=200))
def test_a_kept_name_is_short_trimmed_and_printable(text: str) -> None:
    name = clean_name(text)
    if isinstance(name, NameProblem):
        return
    assert 0 < len(name) <= NAME_MAX
    assert name == name.strip() and "  " not in name and "\n" not in name
    assert not any(unicodedata.category(ch) in ("Cc", "Cf") for ch in name)
    assert clean_name(name) == name  # kept as it is when typed again


def test_hostile_names() -> None:
    assert clean_name("") is NameProblem.EMPTY
    assert clean_name(" \n\t\u200b ") is NameProblem.EMPTY
    assert clean_name("x" * 5_000) is NameProblem.TOO_LONG
    assert clean_name("x" * NAME_MAX) == "x" * NAME_MAX
    assert clean_name("<b>Фонд</b> & дети") == "<b>Фонд</b> & дети"  # escaped when shown
    assert clean_name("  Кв. ²\n\nмамы ") == "Кв. ² мамы"


def test_a_proposed_name_fits() -> None:
    assert proposed_name("ЕПД", None, "") == "ЕПД"
    long = proposed_name("Ф" * 500)
    assert len(long) == NAME_MAX and long.endswith("…")
    assert proposed_name("\x00") == ""


def test_what_a_template_keeps() -> None:
    bills = Payable.bills(["B-1"])
    assert template_target(bills, BillKind.EPD, "4703159826", "ГБУ «Жилищник»") == {
        "bill_kind": "epd",
        "payer_code": "4703159826",
        "provider": "ГБУ «Жилищник»",
    }
    kindergarten = template_target(bills, BillKind.KINDERGARTEN, None, "ГБОУ «Школа № 1811»")
    assert kindergarten["provider"] == "ГБОУ «Школа № 1811»"  # what tells it from another's
    requisites = template_target(Payable.by_requisites(OPEN))
    assert requisites["requisites"]["pers_acc"] == "4703159826"
    assert Payable.from_json(requisites).kind is PayableKind.REQUISITES
    assert template_target(Payable.donation("F-1")) == {"kind": "donation", "fund_id": "F-1"}


def test_a_stored_row_is_read_or_refused_never_raises() -> None:
    good = template_target(Payable.by_requisites(OPEN))
    assert readable_target("requisites", good) == (PayableKind.REQUISITES, good)
    bill = {"bill_kind": "kindergarten", "payer_code": None, "provider": "ГБОУ"}
    assert readable_target("bills", bill) == (PayableKind.BILLS, bill)
    extra = {"kind": "requisites", "requisites": {**good["requisites"], "kbk": "1"}}
    for kind, target in (
        ("parking_permit", {"kind": "parking_permit"}),  # a kind of a newer release
        ("requisites", extra),  # a field of a newer release
        ("requisites", template_target(Payable.donation("F-1"))),  # kind and target disagree
        ("requisites", {"kind": "requisites", "requisites": {**good["requisites"], "uin": "1"}}),
        ("bills", {"bill_kind": "kindergarten", "payer_code": None}),  # any kindergarten's
        ("bills", {"bill_kind": "traffic_fine", "payer_code": "1", "provider": "x"}),
        ("bills", ["epd"]),
        ("donation", None),
        ("donation", {"kind": "donation"}),
    ):
        assert readable_target(kind, target) is None, (kind, target)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=10,
)


@given(st.sampled_from([*PayableKind, "parking_permit", ""]), JSON)
def test_no_stored_row_makes_reading_raise(kind: str, target: object) -> None:
    """Whatever another version wrote: read as a known kind, or refused — never an error."""
    read = readable_target(str(kind), target)
    assert read is None or read[0] is PayableKind(kind)


def test_which_payments_make_a_template() -> None:
    assert templatable(Payable.bills(["B-1"]), ["epd", "4703159826"])
    assert templatable(Payable.bills(["B-1"]), ["club", None, "ГБУ ДО «Радуга»"])
    assert not templatable(Payable.bills(["B-1"]), ["club", None])  # whose club? any
    assert not templatable(Payable.bills(["B-1"]), ["club", None, "  "])
    assert not templatable(Payable.bills(["B-1", "B-2"]), ["epd", "4703159826"])  # several
    assert not templatable(Payable.bills(["B-1"]), ["traffic_fine", None])  # a fine: once
    assert not templatable(Payable.bills(["B-1"]), None)
    assert not templatable(Payable.bills(["B-1"]), ["no-such-kind", None])
    assert templatable(Payable.donation("F-1"))
    assert templatable(Payable.by_requisites(OPEN))
    assert not templatable(Payable.by_requisites(REQ))  # October again, unwarned
    assert not templatable(Payable.by_requisites(replace(OPEN, period="10.2026")))
    assert not templatable(Payable.by_requisites(replace(OPEN, uin="18810177230001234567")))
    try:
        template_target(Payable.bills(["B-1"]), BillKind.OTHER)
    except NotTemplatable:
        pass
    else:
        raise AssertionError("a bill found by UIN makes no template")
