"""МГТС's fixed amount in the domain: the landline number check, which bill service takes a
fixed amount (the platform's list says), and that a bill autopay of МГТС and a fixed-amount
one to an МГТС number overlap (one way of paying a service at a time)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from domain.autopay import AutopayKind, AutopayTarget
from domain.bills import BillKind
from domain.topups import (
    AccountProblem,
    ServiceInfo,
    TopupLimits,
    TopupService,
    advances_bill,
    check_account,
    fixed_amount_service,
    mgts_account,
    shown_account,
)

LIMITS = TopupLimits(100, 1_500_000)


def test_mgts_numbers_are_moscow_landlines_typed_any_usual_way() -> None:
    for typed in ("+7 495 123-45-67", "8 (495) 123-45-67", "4951234567", "74951234567"):
        assert mgts_account(typed) == "74951234567", typed
    assert mgts_account("8 499 765 43 21") == "74997654321"
    assert mgts_account("+7 916 123-45-67") is AccountProblem.RANGE  # a mobile: not МГТС
    assert mgts_account("+7 812 123-45-67") is AccountProblem.RANGE  # St Petersburg
    assert mgts_account("495 123-45-6") is AccountProblem.LENGTH
    assert mgts_account("495 123-45-6²") is AccountProblem.DIGITS
    assert mgts_account("1e5") is AccountProblem.FORMAT
    assert mgts_account("<b>4951234567</b>") is AccountProblem.FORMAT
    assert mgts_account("4" * 5000) is AccountProblem.LENGTH
    assert check_account(TopupService.MGTS, "8 495 123-45-67") == "74951234567"
    assert check_account(TopupService.PARKING, "8 495 123-45-67") is AccountProblem.RANGE
    assert shown_account(TopupService.MGTS, "74951234567") == "+7 495 123-45-67"


@given(st.text(max_size=40))
def test_whatever_is_typed_an_accepted_number_is_a_moscow_landline(text: str) -> None:
    checked = mgts_account(text)
    if not isinstance(checked, AccountProblem):  # a StrEnum is a str too
        assert len(checked) == 11 and checked.isascii() and checked.isdigit()
        assert checked.startswith(("7495", "7499"))


def test_only_a_listed_service_with_the_flag_takes_a_fixed_amount() -> None:
    mgts = ServiceInfo(TopupService.MGTS, "МГТС", LIMITS, ("74951234567",), fixed_amount=True)
    troika = ServiceInfo(TopupService.TROIKA, "Тройка", LIMITS, fixed_amount=True)
    assert fixed_amount_service([troika, mgts], BillKind.MGTS.value) is mgts
    for kind in (BillKind.EPD, BillKind.KINDERGARTEN, BillKind.CLUB):
        assert fixed_amount_service([troika, mgts], kind.value) is None
    unflagged = ServiceInfo(TopupService.MGTS, "МГТС", LIMITS, fixed_amount=False)
    assert fixed_amount_service([unflagged], BillKind.MGTS.value) is None
    assert fixed_amount_service([], BillKind.MGTS.value) is None
    assert advances_bill("mgts") and not advances_bill("troika") and not advances_bill("parking")


def test_a_bill_autopay_of_mgts_and_a_fixed_one_to_an_mgts_number_overlap() -> None:
    by_bill = AutopayTarget(AutopayKind.BILL, bill_kind=BillKind.MGTS)
    fixed = AutopayTarget(AutopayKind.TOPUP, topup_service="mgts", topup_account="74951234567")
    assert by_bill.overlaps(fixed) and fixed.overlaps(by_bill)
    epd = AutopayTarget(AutopayKind.BILL, bill_kind=BillKind.EPD, payer_code="4703159826")
    troika = AutopayTarget(AutopayKind.TOPUP, topup_service="troika", topup_account="0012345678")
    assert not epd.overlaps(fixed) and not by_bill.overlaps(troika) and not troika.overlaps(epd)
    assert fixed.overlaps(fixed) and by_bill.overlaps(by_bill)
    fund = AutopayTarget(AutopayKind.FIXED, fund_id="F-101")
    assert not fund.overlaps(fixed) and not by_bill.overlaps(fund)
