"""Autopay «по выставленному счёту» rules (domain/autopay.py) and what bill discovery and its
buttons make of any platform id: a bill's period fits the run's column and the skip button,
whatever the id."""

from __future__ import annotations

import re
from datetime import date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.autopay import (
    IDLE,
    MOSCOW,
    Autopay,
    AutopayKind,
    Frequency,
    InconsistentAutopay,
    Schedule,
    bill_period,
    next_due,
    on_issue_due,
)
from domain.bill_discovery import notice_key
from domain.bills import Bill, BillKind
from handlers.bill_notice import BillPay
from handlers.buttons import item_ref
from handlers.notifications import AutopaySkip

NOW = datetime(2026, 11, 30, 23, 30, tzinfo=MOSCOW)


def on_issue(**extra: object) -> Autopay:
    return Autopay(
        7,
        AutopayKind.BILL,
        Schedule.on_issue(),
        "pm-1",
        IDLE,
        limit=1_000_000,
        bill_kind=BillKind.EPD,
        **extra,  # type: ignore[arg-type]
    )


@given(st.text(max_size=5000))
def test_any_bill_id_makes_a_period_the_column_and_the_buttons_take(bill_id: str) -> None:
    period = bill_period(bill_id)
    assert len(period) <= 16 and period == bill_period(bill_id)
    assert re.fullmatch(r"b-[0-9a-f]{12}", period)
    assert period[2:] == item_ref(bill_id)  # the same digits as the bill's button reference
    data = AutopaySkip(autopay=1, period=period).pack()
    assert len(data.encode()) <= 64 and AutopaySkip.unpack(data).period == period
    assert len(BillPay(bill=item_ref(bill_id)).pack().encode()) <= 64
    assert len(notice_key(2**63 - 1, bill_id)) <= 128


def test_an_on_issue_autopay_is_due_only_with_a_bill() -> None:
    autopay = on_issue()
    assert next_due(Schedule.on_issue(), NOW) == IDLE and autopay.period == "idle"
    due = on_issue_due(NOW)  # 23:30 on the 30th: 10:00 the next day, Moscow time
    assert due == datetime(2026, 12, 1, 10, 0, tzinfo=MOSCOW)
    autopay.take_bill("B-1", due)
    assert (autopay.bill_id, autopay.next_due_at, autopay.period) == (
        "B-1",
        due,
        bill_period("B-1"),
    )
    autopay.retry_tomorrow(due)  # declined: the same bill, the same period tomorrow
    assert autopay.period == bill_period("B-1") and autopay.bill_id == "B-1"
    autopay.advance(due)
    assert (autopay.bill_id, autopay.next_due_at, autopay.retry_period) == (None, IDLE, None)
    autopay.take_bill("B-2", due)
    autopay.resume(due)  # no bill is paid late after a pause
    assert (autopay.bill_id, autopay.next_due_at) == (None, IDLE)
    with pytest.raises(ValueError):
        Schedule.on_issue().next_date(date(2026, 11, 30))
    with pytest.raises(ValueError):
        Schedule(Frequency.ON_ISSUE, 5)


def test_only_an_on_issue_bill_autopay_holds_a_bill_and_it_matches_its_target() -> None:
    with pytest.raises(InconsistentAutopay):  # a scheduled one is never handed a bill
        Autopay(7, AutopayKind.BILL, Schedule(Frequency.MONTHLY, 5), "pm", NOW,
                bill_kind=BillKind.EPD, bill_id="B-1")  # fmt: skip
    with pytest.raises(InconsistentAutopay):  # a donation has a schedule
        Autopay(7, AutopayKind.FIXED, Schedule.on_issue(), "pm", NOW, amount=10_000,
                fund_id="F-1")  # fmt: skip

    def bill(kind: BillKind, payer: str | None) -> Bill:
        return Bill("B-1", kind, "ЕПД", "ЕИРЦ", 100, date(2026, 12, 15), payer_code=payer)

    anyone = on_issue()
    flat = on_issue(payer_code="P-1")
    assert anyone.matches(bill(BillKind.EPD, "P-2")) and anyone.matches(bill(BillKind.EPD, None))
    assert flat.matches(bill(BillKind.EPD, "P-1")) and not flat.matches(bill(BillKind.EPD, "P-2"))
    assert not anyone.matches(bill(BillKind.MGTS, None))
