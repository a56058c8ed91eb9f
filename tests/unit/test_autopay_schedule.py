"""Autopay schedules: month ends, February in leap and common years, weeks, Moscow midnight."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from domain.autopay import MOSCOW, Autopay, AutopayKind, Frequency, Schedule, next_due

MONTHLY = Frequency.MONTHLY


@pytest.mark.parametrize(
    ("day", "after", "expected"),
    [
        (1, date(2027, 1, 31), date(2027, 2, 1)),
        (28, date(2027, 1, 31), date(2027, 2, 28)),
        (29, date(2027, 1, 31), date(2027, 2, 28)),  # common year: the last day
        (29, date(2028, 1, 31), date(2028, 2, 29)),  # leap year: the 29th exists
        (30, date(2028, 1, 31), date(2028, 2, 29)),
        (31, date(2027, 1, 31), date(2027, 2, 28)),
        (31, date(2027, 2, 28), date(2027, 3, 31)),  # back to the 31st after February
        (30, date(2027, 4, 29), date(2027, 4, 30)),
        (31, date(2027, 4, 29), date(2027, 4, 30)),  # April has 30 days
        (15, date(2026, 12, 15), date(2027, 1, 15)),  # across the new year
    ],
)
def test_monthly_days(day: int, after: date, expected: date) -> None:
    assert Schedule(MONTHLY, day).next_date(after) == expected


def test_a_whole_year_of_the_31st_has_one_date_per_month() -> None:
    schedule, day, dates = Schedule(MONTHLY, 31), date(2026, 12, 31), []
    for _ in range(12):
        day = schedule.next_date(day)
        dates.append(day)
    assert [d.month for d in dates] == list(range(1, 13))
    assert [d.day for d in dates][:4] == [31, 28, 31, 30]


def test_weekly() -> None:
    monday = Schedule(Frequency.WEEKLY, 0)
    assert monday.next_date(date(2026, 11, 24)) == date(2026, 11, 30)  # Tuesday → Monday
    assert monday.next_date(date(2026, 11, 30)) == date(2026, 12, 7)  # not the same day
    assert Schedule(Frequency.WEEKLY, 1).next_date(date(2026, 11, 23)) == date(2026, 11, 24)
    assert monday.period_of(date(2026, 11, 30)) == "2026-W49"


def test_periods() -> None:
    assert Schedule(MONTHLY, 31).period_of(date(2027, 2, 28)) == "2027-02"


@pytest.mark.parametrize(
    ("now_utc", "expected_msk"),
    [
        # 23:59 Moscow on the 14th: the charge on the 15th at 10:00 is next.
        (datetime(2026, 11, 14, 20, 59, tzinfo=UTC), datetime(2026, 11, 15, 10, 0)),
        # 00:01 Moscow on the 15th is still the 14th in UTC: Moscow's date counts.
        (datetime(2026, 11, 14, 21, 1, tzinfo=UTC), datetime(2026, 11, 15, 10, 0)),
        # 09:59 Moscow on the 15th: today's charge has not happened yet.
        (datetime(2026, 11, 15, 6, 59, tzinfo=UTC), datetime(2026, 11, 15, 10, 0)),
        # 10:00 Moscow on the 15th: next month.
        (datetime(2026, 11, 15, 7, 0, tzinfo=UTC), datetime(2026, 12, 15, 10, 0)),
    ],
)
def test_moscow_time_edges(now_utc: datetime, expected_msk: datetime) -> None:
    due = next_due(Schedule(MONTHLY, 15), now_utc)
    assert due == expected_msk.replace(tzinfo=MOSCOW)


def test_days_are_checked() -> None:
    with pytest.raises(ValueError):
        Schedule(MONTHLY, 32)
    with pytest.raises(ValueError):
        Schedule(Frequency.WEEKLY, 7)


def test_a_late_charge_names_the_scheduled_dates_it_passed_over() -> None:
    """Review 27c: a weekly donation charged a week late moved on past the next Wednesday
    without a word; `advance` now returns the dates passed over (recorded «missed»)."""
    moscow = MOSCOW
    weekly = Autopay(
        telegram_user_id=1,
        kind=AutopayKind.FIXED,
        schedule=Schedule(Frequency.WEEKLY, 2),
        method_id="pm",
        next_due_at=datetime(2026, 12, 3, 12, 0, tzinfo=moscow),  # backed off past 2 December
        amount=10_000,
        fund_id="F-101",
    )
    weekly.retry_period = "2026-W48"  # the 25 November charge, done at last
    assert weekly.advance(datetime(2026, 12, 3, 12, 0, tzinfo=moscow)) == [date(2026, 12, 2)]
    assert weekly.next_due_at == datetime(2026, 12, 9, 10, 0, tzinfo=moscow)
    on_time = Autopay(
        telegram_user_id=1,
        kind=AutopayKind.FIXED,
        schedule=Schedule(Frequency.MONTHLY, 25),
        method_id="pm",
        next_due_at=datetime(2026, 11, 25, 10, 0, tzinfo=moscow),
        amount=10_000,
        fund_id="F-101",
    )
    assert on_time.advance(datetime(2026, 11, 25, 10, 0, 5, tzinfo=moscow)) == []
    assert on_time.passed_over("2026-W48", datetime(2027, 1, 1, tzinfo=moscow)) == []  # another
    # frequency's period: none
