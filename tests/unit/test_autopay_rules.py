"""Autopay rules without I/O: an autopay's fields match its kind, amounts have ceilings, an
unanswered charge backs off, and every way a charge can end is told as what it is."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from bot.i18n import Translator, load_translator
from domain.autopay import (
    MOSCOW,
    Autopay,
    AutopayKind,
    AutopayStatus,
    Frequency,
    InconsistentAutopay,
    PauseReason,
    Schedule,
)
from domain.autopaying import AutopayTooSmall, check_money, money_ceiling
from domain.bills import BillKind
from domain.limits import AmountLimits, AmountTooLarge, LimitKind
from handlers.notifications import render
from tests.money_text import nb

DUE = datetime(2026, 11, 25, 10, 0, tzinfo=MOSCOW)
MONTHLY_25 = Schedule(Frequency.MONTHLY, 25)


def donation(**changes: object) -> Autopay:
    fields: dict[str, object] = {
        "telegram_user_id": 7,
        "kind": AutopayKind.FIXED,
        "schedule": MONTHLY_25,
        "method_id": "pm-full-4242",
        "next_due_at": DUE,
        "amount": 15_000,
        "fund_id": "F-101",
        "fund_name": "Фонд",
    }
    return Autopay(**{**fields, **changes})  # type: ignore[arg-type]


def bill(**changes: object) -> Autopay:
    fields: dict[str, object] = {
        "telegram_user_id": 7,
        "kind": AutopayKind.BILL,
        "schedule": MONTHLY_25,
        "method_id": "pm-full-4242",
        "next_due_at": DUE,
        "limit": 1_000_000,
        "bill_kind": BillKind.EPD,
    }
    return Autopay(**{**fields, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "make",
    [
        lambda: bill(fund_id="F-101"),  # an ЕПД autopay carrying a fund
        lambda: bill(fund_name="Фонд"),
        lambda: bill(amount=30_000),  # …or a fixed amount
        lambda: bill(bill_kind=None),  # a bill autopay without its service
        lambda: donation(fund_id=None),  # a donation without its fund
        lambda: donation(amount=None),  # …or its amount
        lambda: donation(bill_kind=BillKind.EPD),
        lambda: donation(limit=10_000),
    ],
)
def test_an_autopay_refuses_fields_of_the_other_kind(make: object) -> None:
    with pytest.raises(InconsistentAutopay):
        make()  # type: ignore[operator]


def test_consistent_autopays_are_built() -> None:
    assert bill().payable(["B-1"]).bill_ids == ("B-1",)
    assert donation().payable([]).fund_id == "F-101"


def test_a_recurring_donation_has_the_lower_of_the_donation_and_autopay_ceilings() -> None:
    limits = AmountLimits(payment=50_000_000, donation=3_000_000, autopay=5_000_000)
    assert money_ceiling(AutopayKind.FIXED, limits) == (LimitKind.DONATION, 3_000_000)
    assert money_ceiling(AutopayKind.BILL, limits) == (LimitKind.AUTOPAY, 5_000_000)
    assert check_money(AutopayKind.FIXED, 3_000_000, limits) == 3_000_000
    with pytest.raises(AmountTooLarge) as raised:
        check_money(AutopayKind.FIXED, 3_000_001, limits)
    assert raised.value.ceiling == 3_000_000
    assert check_money(AutopayKind.BILL, 5_000_000, limits) == 5_000_000
    with pytest.raises(AmountTooLarge):
        check_money(AutopayKind.BILL, 5_000_001, limits)


def test_ten_million_rubles_a_month_is_refused_by_default() -> None:
    with pytest.raises(AmountTooLarge):
        check_money(AutopayKind.FIXED, 1_000_000_000)
    with pytest.raises(AutopayTooSmall):
        check_money(AutopayKind.FIXED, 4_999)
    with pytest.raises(AutopayTooSmall):
        check_money(AutopayKind.BILL, 0)


def test_an_unanswered_charge_backs_off_and_keeps_its_period() -> None:
    autopay = donation(next_due_at=DUE)
    now = DUE
    delays = []
    for _ in range(8):
        autopay.back_off(now)
        delays.append(autopay.next_due_at - now)
        assert autopay.period == "2026-11"
    minutes = [d // timedelta(minutes=1) for d in delays]
    assert minutes == [2, 4, 8, 16, 32, 60, 60, 60]
    late = datetime(2026, 11, 30, 23, 59, tzinfo=MOSCOW)  # pushed into December: still November
    autopay.back_off(late)
    assert autopay.period == "2026-11"
    autopay.advance(autopay.next_due_at)  # charged at last: December is next, none skipped
    assert (autopay.period, autopay.unanswered) == ("2026-12", 0)


def test_a_card_change_resumes_only_an_autopay_paused_for_its_card() -> None:
    assert {r for r in PauseReason if r.card} == {
        PauseReason.CARD_REMOVED,
        PauseReason.CARD_EXPIRED,
        PauseReason.NEEDS_CONFIRMATION,
    }
    autopay = donation()
    autopay.pause(PauseReason.NEEDS_CONFIRMATION)
    autopay.resume(DUE + timedelta(hours=1))
    assert (autopay.status, autopay.paused_reason) == (AutopayStatus.ACTIVE, None)
    assert autopay.next_due_at == datetime(2026, 12, 25, 10, 0, tzinfo=MOSCOW)


@pytest.fixture(scope="module")
def tr() -> Translator:
    return load_translator()


DATA = {"autopay_id": 1, "period": "2026-11", "kind": "fixed", "fund_name": "Фонд", "amount": 1}


@pytest.mark.parametrize(
    ("kind", "extra", "said"),
    [
        ("autopay_failed", {"failure": "declined"}, "три дня подряд: банк отклонил"),
        ("autopay_failed", {}, "три дня подряд: банк отклонил"),
        ("autopay_failed", {"failure": "insufficient_funds"}, "не хватило денег"),
        ("autopay_failed", {"failure": "canceled"}, "платёж отменён"),
        ("autopay_failed", {"failure": "refused"}, "город отказал"),
        ("autopay_card_expired", {}, "срок действия карты истёк"),
        ("autopay_paused", {"reason": "card_removed"}, "карты больше нет"),
        ("autopay_paused", {"reason": "card_expired"}, "срок действия карты истёк"),
        ("autopay_paused", {"reason": "needs_confirmation"}, "3-D Secure"),
        ("autopay_paused", {"reason": "relink"}, "Привяжите аккаунт заново"),
        ("autopay_paused", {"reason": "target_gone"}, "не принимает платежи"),
        (
            "autopay_paused",
            {"reason": "over_ceiling", "amount_charged": 10**9, "ceiling": 10**7},
            nb("не больше 100 000,00 ₽"),
        ),
    ],
)
def test_each_outcome_is_told_as_what_it_is(
    tr: Translator, kind: str, extra: dict[str, object], said: str
) -> None:
    text, markup, _ = render(kind, {**DATA, **extra}, tr)
    assert said in text
    if "три дня" in said:
        return
    assert "три дня" not in text or extra.get("failure") == "insufficient_funds"
    if kind == "autopay_paused":
        assert "на паузе" in text and markup is not None  # «Открыть автоплатёж»


@pytest.mark.parametrize(
    "reason", [r.value for r in PauseReason if r is not PauseReason.BY_RESIDENT]
)
def test_a_paused_autopay_reads_as_paused_on_the_dashboard_with_its_reason(
    tr: Translator, reason: str
) -> None:
    from handlers.support import render_dashboard

    data = {"autopay_id": 7, "period": "2026-12", "kind": "fixed", "fund_name": "Фонд",
            "amount": 50_000, "attempts": 1, "failure": reason, "paused": True}  # fmt: skip
    text = render_dashboard("dashboard_autopay_failed", data, tr)
    assert text.startswith("⏸ Автоплатёж № 7 на паузе")
    assert "платёж не прошёл" not in text  # every lasting reason is named, not the generic one
