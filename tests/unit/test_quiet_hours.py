"""Quiet hours' rules: what a resident may type, which minutes are quiet, forged preset ids."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.quiet_hours import (
    DEFAULT,
    OFF,
    PRESETS,
    QuietHours,
    RangeProblem,
    by_button_id,
    parse_range,
    send_by,
)

minutes = st.integers(0, 24 * 60 - 1)


@pytest.mark.parametrize(
    ("typed", "start", "end"),
    [
        ("23:00–08:00", 23 * 60, 8 * 60),
        ("23:00-08:00", 23 * 60, 8 * 60),
        (" 23.30 — 7:05 ", 23 * 60 + 30, 7 * 60 + 5),
        ("0:00 − 07:00", 0, 7 * 60),
        ("22:00-24:00", 22 * 60, 0),
        ("13:00-14:00", 13 * 60, 14 * 60),
        ("23-8", 23 * 60, 8 * 60),  # hours alone: on the hour
        ("23–08", 23 * 60, 8 * 60),
        (" 0 — 7 ", 0, 7 * 60),
        ("22-7:30", 22 * 60, 7 * 60 + 30),
        ("22-24", 22 * 60, 0),
    ],
)
def test_ranges_a_resident_types(typed: str, start: int, end: int) -> None:
    assert parse_range(typed) == QuietHours(start, end)


@pytest.mark.parametrize(
    ("typed", "problem"),
    [
        ("25:00-08:00", RangeProblem.NO_SUCH_TIME),
        ("23:60-08:00", RangeProblem.NO_SUCH_TIME),
        ("24:30-08:00", RangeProblem.NO_SUCH_TIME),
        ("23:00–23:00", RangeProblem.EMPTY),
        ("0:00-24:00", RangeProblem.EMPTY),
        ("x" * 5000, RangeProblem.NOT_A_RANGE),
        ("23:00-08:00" + " " * 5000 + "1", RangeProblem.NOT_A_RANGE),
        ("1e5", RangeProblem.NOT_A_RANGE),
        ("２３:00-08:00", RangeProblem.NOT_A_RANGE),  # full-width digits
        ("23²:00-08:00", RangeProblem.NOT_A_RANGE),
        ("٢٣:00-08:00", RangeProblem.NOT_A_RANGE),
        ("23:00", RangeProblem.NOT_A_RANGE),
        ("23", RangeProblem.NOT_A_RANGE),
        ("23-", RangeProblem.NOT_A_RANGE),
        ("23:0-8", RangeProblem.NOT_A_RANGE),
        ("123-8", RangeProblem.NOT_A_RANGE),
        ("23-8-9", RangeProblem.NOT_A_RANGE),
        ("25-8", RangeProblem.NO_SUCH_TIME),
        ("8-08:00", RangeProblem.EMPTY),
        ("-23:00-08:00", RangeProblem.NOT_A_RANGE),
        ("", RangeProblem.NOT_A_RANGE),
        ("<b>23:00-08:00</b>", RangeProblem.NOT_A_RANGE),
    ],
)
def test_what_is_not_a_range_is_named(typed: str, problem: RangeProblem) -> None:
    assert parse_range(typed) is problem


def test_quiet_minutes_at_the_edges() -> None:
    night = QuietHours(23 * 60, 8 * 60)
    assert night.covers_minute(23 * 60) and night.covers_minute(0)
    assert night.covers_minute(8 * 60 - 1) and not night.covers_minute(8 * 60)
    assert not night.covers_minute(23 * 60 - 1)
    day = QuietHours(13 * 60, 14 * 60)
    assert day.covers_minute(13 * 60) and not day.covers_minute(14 * 60)
    assert not any(OFF.covers_minute(m) for m in range(24 * 60))
    # Moscow time, whatever the moment's zone: 20:30 UTC is 23:30 in Moscow
    assert night.covers(datetime(2026, 11, 24, 20, 30, tzinfo=UTC))
    assert not night.covers(datetime(2026, 11, 24, 5, 0, tzinfo=UTC))  # 08:00 Moscow
    assert DEFAULT.label() == "22:00\u201309:00"


@given(minutes, minutes, minutes)
def test_a_minute_is_quiet_exactly_when_it_lies_between_start_and_end(
    start: int, end: int, minute: int
) -> None:
    quiet = QuietHours(start, end)
    walked, at = set(), start
    while at != end:  # walk from start to end round the clock
        walked.add(at)
        at = (at + 1) % (24 * 60)
    assert quiet.covers_minute(minute) == (minute in walked)
    typed = parse_range(quiet.label().replace("\u2013", "-"))
    assert typed == (RangeProblem.EMPTY if quiet.off else quiet)


def test_preset_ids_and_forged_ones() -> None:
    for preset in (*PRESETS, OFF):
        assert by_button_id(preset.button_id()) == preset
        assert preset.button_id().isascii()
    for forged in ("600-601", "1320-541", "", "off ", "1320-540:x", "-1--1"):
        assert by_button_id(forged) is None
    with pytest.raises(ValueError):
        QuietHours(0, 24 * 60)


def test_the_moment_a_notice_offering_to_stop_a_charge_must_go_by() -> None:
    """`send_by`: the charge less HOLD_MARGIN, for the kinds offering «Пропустить этот раз»
    only; a reminder with only the day counts from its start; what does not parse (or has no
    time zone) is None."""
    charge = "2026-11-25T10:00:00+03:00"
    moment = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)  # 10:00 Moscow less an hour
    assert send_by("autopay_reminder", {"charge_at": charge}) == moment
    assert send_by("bill_issued", {"charge_at": charge, "autopay": "will_pay"}) == moment
    assert send_by("autopay_reminder", {"due": "2026-11-25"}) == datetime(
        2026, 11, 24, 20, 0, tzinfo=UTC
    )
    assert send_by("report_status", {"charge_at": charge}) is None
    assert send_by("bill_issued", {"due": "2026-11-25"}) is None  # a bill's due is not a charge
    for bad in ("2026-13-45T99", "", "1e5", "²", "2026-11-25T10:00:00", "<b>&"):
        assert send_by("autopay_reminder", {"charge_at": bad}) is None, bad
    assert send_by("autopay_reminder", {"charge_at": 5}) is None
    assert send_by("autopay_reminder", None) is None
    assert send_by("autopay_reminder", {"due": "x" * 5000}) is None
