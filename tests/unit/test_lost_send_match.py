"""`domain.reporting._made_by`: whether a report the city lists is the one a draft's lost POST
made (review 33c) — by theme, day, place and the draft's own words or first photo."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from domain.reporting import _made_by
from domain.reports import Draft, Point, Report, ReportStatus

SENT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
ARBAT = Point(55.7520, 37.5925)


def draft(**changes: object) -> Draft:
    base = Draft(theme_code="road-01", lat=ARBAT.lat, long=ARBAT.long, address="ул. Арбат, 10")
    base.send_key, base.sent_at = "k" * 32, SENT
    for name, value in changes.items():
        setattr(base, name, value)
    return base


REPORT = Report(
    id="NG-1",
    theme_code="road-01",
    theme_name="Яма на дороге",
    status=ReportStatus.MODERATION,
    address="ул. Арбат, 10",
    point=ARBAT,
    requested_at=SENT + timedelta(seconds=3),
    expected_at=None,
)


def test_the_same_theme_place_and_day_with_no_words_or_photo_is_the_sends() -> None:
    assert _made_by(REPORT, draft())


@pytest.mark.parametrize(
    "report",
    [
        replace(REPORT, theme_code="light-02"),
        replace(REPORT, point=Point(55.7600, 37.6100)),  # a kilometre and more away
        replace(REPORT, requested_at=SENT - timedelta(days=3)),  # an older one of that place
    ],
    ids=["theme", "place", "day"],
)
def test_another_theme_place_or_day_is_not(report: Report) -> None:
    assert not _made_by(report, draft())


def test_the_words_decide_when_the_draft_has_them() -> None:
    words = draft(description="Глубокая яма  у остановки")
    assert _made_by(replace(REPORT, description="Глубокая яма у остановки"), words)
    assert not _made_by(replace(REPORT, description="Яма, чините"), words)  # typed on the site
    assert not _made_by(REPORT, words)


def test_the_first_photo_decides_when_there_are_no_words() -> None:
    photo = draft(photos=["f1"], uploaded={"f1": "/media/abc.jpg"})
    assert _made_by(replace(REPORT, media_url="https://city.example/media/abc.jpg"), photo)
    assert not _made_by(replace(REPORT, media_url="https://city.example/media/xyz.jpg"), photo)
    assert not _made_by(REPORT, photo)


def test_a_draft_keyed_before_the_moment_was_kept_is_never_matched() -> None:
    assert not _made_by(REPORT, draft(sent_at=None))


def test_with_no_point_the_address_decides() -> None:
    typed = draft(lat=None, long=None, address="Тверская ул., 7")
    assert _made_by(replace(REPORT, point=None, address="тверская ул., 7"), typed)
    assert not _made_by(replace(REPORT, point=None, address="ул. Арбат, 10"), typed)


def test_the_moment_survives_the_drafts_json() -> None:
    assert Draft.from_json(draft().to_json()).sent_at == SENT
    assert Draft.from_json({**draft().to_json(), "sent_at": "not a date"}).sent_at is None


def test_a_bare_draft_is_not_a_report_with_words_or_a_photo() -> None:
    """Review 34a: a bare send that never arrived, then the problem reported on the site."""
    assert not _made_by(replace(REPORT, description="Яма у подъезда"), draft())
    assert not _made_by(replace(REPORT, media_url="https://city.example/m/1.jpg"), draft())
