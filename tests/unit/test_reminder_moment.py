"""An autopay reminder names the moment of the charge, never «завтра»: quiet hours may hold a
reminder written the evening before until the morning of the charge itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from bot.i18n import load_translator
from handlers.notifications import charge_moment, render

MSK = timezone(timedelta(hours=3))


def test_the_moment_comes_from_charge_at_then_due_else_nothing() -> None:
    at = datetime(2026, 12, 1, 10, 0, tzinfo=MSK)
    assert charge_moment({"charge_at": at.isoformat(), "due": "2026-11-30"}) == at
    assert charge_moment({"due": "2026-12-01"}) == at  # rows written before charge_at
    assert charge_moment({"charge_at": "2026-12-01T10:00:00", "due": "2026-12-01"}) == at
    assert charge_moment({"charge_at": "1e5", "due": "²"}) is None
    assert charge_moment({}) is None


def test_the_reminder_says_the_date_and_hour() -> None:
    tr = load_translator()
    data = {
        "kind": "fixed",
        "fund_name": "Фонд <b>&",
        "amount": 15_000,
        "autopay_id": 1,
        "period": "2026-12",
        "due": "2026-12-01",
        "charge_at": datetime(2026, 12, 1, 7, 0, tzinfo=UTC).isoformat(),
    }
    text, markup, _ = render("autopay_reminder", data, tr)
    assert text.startswith("01.12 в 10:00 спишем по автоплатежу")
    assert "Завтра" not in text and "&lt;b&gt;&amp;" in text
    assert markup is not None
    text, _, _ = render("autopay_reminder", {**data, "charge_at": None, "due": None}, tr)
    assert text.startswith("Скоро спишем по автоплатежу")
