"""Top-ups: the «Тройка» number and parking account checks, the amount within the limits, and
the TOPUP payable built like the others."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.payable import MixedPayable, Payable, PayableKind, TopupTarget
from domain.payments import same_target
from domain.topups import (
    TROIKA_MAX,
    AccountProblem,
    AmountProblem,
    TopupLimits,
    TopupService,
    can_top_up,
    parking_account,
    parse_topup_amount,
    presets,
    shown_account,
    troika_number,
)

TROIKA = TopupLimits(100, 300_000, 300_000)
PARKING = TopupLimits(1_000, 1_500_000, None)
CEILING = 50_000_000


@given(st.integers(min_value=0, max_value=10**10 - 1))
def test_a_troika_number_is_ten_digits_within_32_bits(value: int) -> None:
    typed = f"{value:010d}"
    checked = troika_number(typed)
    if value <= TROIKA_MAX:
        assert checked == typed
        # the way it is printed and any spacing a resident adds read back the same
        assert troika_number(shown_account(TopupService.TROIKA, typed)) == typed
        assert troika_number(f" {typed[:3]}\u00a0{typed[3:6]}-{typed[6:]} ") == typed
    else:
        assert checked is AccountProblem.RANGE


@given(st.text(max_size=30))
def test_anything_typed_is_a_number_or_a_named_problem(text: str) -> None:
    checked = troika_number(text)
    if not isinstance(checked, AccountProblem):  # (an AccountProblem is a str too)
        assert len(checked) == 10 and checked.isascii() and checked.isdigit()
        assert int(checked) <= TROIKA_MAX


@pytest.mark.parametrize(
    ("typed", "problem"),
    [
        ("1e5", AccountProblem.FORMAT),
        ("00123456７8", AccountProblem.DIGITS),  # a full-width digit
        ("001234567²", AccountProblem.DIGITS),
        ("abcdefghij", AccountProblem.FORMAT),
        ("", AccountProblem.FORMAT),
        ("   ", AccountProblem.FORMAT),
        ("123456789", AccountProblem.LENGTH),
        ("12345678901", AccountProblem.LENGTH),
        ("9999999999", AccountProblem.RANGE),
        ("4294967296", AccountProblem.RANGE),
        ("1" * 5000, AccountProblem.LENGTH),
        ("<b>0012345678</b>", AccountProblem.FORMAT),
        ("-012345678", AccountProblem.LENGTH),
    ],
)
def test_bad_troika_numbers_are_named(typed: str, problem: AccountProblem) -> None:
    assert troika_number(typed) is problem


def test_the_largest_troika_number_is_taken() -> None:
    assert troika_number("4294967295") == "4294967295"
    assert troika_number("0000000000") == "0000000000"


@pytest.mark.parametrize(
    "typed", ["+7 916 123-45-67", "8 (916) 123-45-67", "9161234567", "79161234567", "+79161234567"]
)
def test_a_parking_account_is_a_mobile_number_however_typed(typed: str) -> None:
    assert parking_account(typed) == "79161234567"
    assert shown_account(TopupService.PARKING, "79161234567") == "+7 916 123-45-67"


@pytest.mark.parametrize(
    ("typed", "problem"),
    [
        ("+7 495 123-45-67", AccountProblem.RANGE),  # a landline
        ("+8 916 123-45-67", AccountProblem.RANGE),
        ("916 123 45", AccountProblem.LENGTH),
        ("+7 916 123-45-6²", AccountProblem.DIGITS),
        ("phone", AccountProblem.FORMAT),
    ],
)
def test_bad_parking_accounts_are_named(typed: str, problem: AccountProblem) -> None:
    assert parking_account(typed) is problem


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("500", 50_000),
        ("1 500,50", 150_050),
        ("3000 ₽", 300_000),
        ("1e5", AmountProblem.NOT_A_NUMBER),
        ("²", AmountProblem.DIGITS),
        ("-5", AmountProblem.TOO_SMALL),
        ("0", AmountProblem.TOO_SMALL),
        ("0,99", AmountProblem.TOO_SMALL),
        ("1,005", AmountProblem.NOT_A_NUMBER),
        ("1500 50", AmountProblem.GROUPING),
        ("3000,01", AmountProblem.TOO_LARGE),
        ("x" * 5000, AmountProblem.NOT_A_NUMBER),
    ],
)
def test_a_typed_troika_amount(typed: str, expected: int | AmountProblem) -> None:
    assert parse_topup_amount(typed, TROIKA, 0, CEILING) == expected


def test_the_wallet_ceiling_limits_the_amount_and_the_presets() -> None:
    assert parse_topup_amount("100", TROIKA, 295_000, CEILING) is AmountProblem.OVER_BALANCE
    assert parse_topup_amount("50", TROIKA, 295_000, CEILING) == 5_000
    assert presets(TopupService.TROIKA, TROIKA, 260_000, CEILING) == [10_000, 30_000]
    assert presets(TopupService.TROIKA, TROIKA, None, CEILING) == [10_000, 30_000, 50_000, 100_000]
    assert not can_top_up(TROIKA, 300_000, CEILING)
    assert can_top_up(TROIKA, 299_900, CEILING)
    # the operator's ceiling for one payment counts too
    assert parse_topup_amount("20 000", PARKING, 0, 1_000_000) is AmountProblem.TOO_LARGE


def test_a_topup_payable_is_one_target_and_survives_json() -> None:
    payable = Payable.top_up("troika", "0012345678")
    assert payable.kind is PayableKind.TOPUP
    assert Payable.from_json(payable.to_json()) == payable
    assert same_target(payable, Payable.top_up("troika", "0012345678"))
    assert not same_target(payable, Payable.top_up("troika", "1234567890"))
    assert not same_target(payable, Payable.top_up("parking", "0012345678"))
    with pytest.raises(MixedPayable):
        Payable(PayableKind.TOPUP, fund_id="F-101", topup=TopupTarget("troika", "0012345678"))
    with pytest.raises(MixedPayable):
        Payable(PayableKind.BILLS, bill_ids=("B-1",), topup=TopupTarget("troika", "1"))
    with pytest.raises(MixedPayable):
        Payable(PayableKind.DONATION, fund_id="F-1", topup=TopupTarget("", ""))
    with pytest.raises(MixedPayable):
        Payable.top_up("troika", "")
    with pytest.raises(MixedPayable):
        Payable(PayableKind.TOPUP)
