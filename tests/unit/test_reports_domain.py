"""«Наш город» rules without I/O."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from domain.reports import (
    Draft,
    PhotoProblem,
    Point,
    Report,
    ReportStatus,
    Theme,
    add_photos,
    clean_description,
    distance_m,
    inside,
    nearby_duplicates,
    search_themes,
)

POTHOLE = Theme("road-01", "Яма на дороге", "Дороги", ("яма", "выбоина", "асфальт"))
LAMP = Theme("light-01", "Не горит фонарь", "Освещение", ("фонарь", "освещение", "свет"))
SNOW = Theme("winter-01", "Не убран снег", "Зимняя уборка", ("снег",), season=("11-15", "03-31"))
HERE = Point(55.7577, 37.6107)
NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)


def report(rid: str, point: Point, status: ReportStatus = ReportStatus.IN_WORK) -> Report:
    return Report(rid, "road-01", "Яма на дороге", status, "", point, NOW, None)


def test_search_by_word_forms() -> None:
    today = date(2026, 7, 1)
    assert search_themes([POTHOLE, LAMP], "глубокие ямы", today) == [POTHOLE]
    assert search_themes([POTHOLE, LAMP], "не горят фонари", today)[0] == LAMP
    assert search_themes([POTHOLE, LAMP], "??", today) == []


def test_seasonal_themes_wrap_the_new_year() -> None:
    assert SNOW.in_season(date(2026, 12, 31)) and SNOW.in_season(date(2027, 2, 1))
    assert not SNOW.in_season(date(2026, 7, 1))
    assert search_themes([SNOW], "снег", date(2026, 7, 1)) == []


def test_distance_and_boundary() -> None:
    assert 95 < distance_m(HERE, Point(55.7586, 37.6104)) < 110  # Тверская 7 → 9
    square = [Point(55.5, 37.3), Point(55.5, 37.9), Point(55.9, 37.9), Point(55.9, 37.3)]
    assert inside(HERE, square)
    assert not inside(Point(59.93, 30.31), square)


def test_duplicates_are_open_same_theme_within_fifty_metres() -> None:
    candidates = [
        report("open-here", HERE),
        report("closed-here", HERE, ReportStatus.CLOSED),
        report("open-100m", Point(55.7586, 37.6104)),
        report("open-30m", Point(55.7579, 37.6109)),
    ]
    assert [r.id for r in nearby_duplicates(candidates, "road-01", HERE)] == [
        "open-here",
        "open-30m",
    ]
    assert nearby_duplicates(candidates, "light-01", HERE) == []


def test_photos_all_or_nothing_and_descriptions() -> None:
    draft = Draft()
    assert add_photos(draft, ["a", "b", "c"]) is None
    assert add_photos(draft, ["d", "e", "f"]) is PhotoProblem.TOO_MANY
    assert draft.photos == ["a", "b", "c"]
    assert clean_description("  <b>яма</b> ") == "‹b›яма‹/b›"
    assert clean_description("я" * 2001) is None


def test_a_draft_round_trips_through_json() -> None:
    draft = Draft("road-01", "Яма", True, 55.7, 37.6, "Тверская", ["f1"], "текст", "photos")
    assert Draft.from_json(draft.to_json()) == draft
    draft.description_message = 4242
    assert Draft.from_json(draft.to_json()) == draft
    # a draft saved before drafts were named reads with no name (named when next reviewed)
    assert Draft.from_json({}) == Draft(draft_id=None)
    assert Draft().draft_id != Draft().draft_id


def test_a_drafts_stored_message_id_is_read_only_as_a_whole_number() -> None:
    for stored in ("42", 4.2, True, None, [42]):
        assert Draft.from_json({"description_message": stored}).description_message is None
    assert Draft.from_json({"description_message": 42}).description_message == 42
    assert Draft.from_json({"draft_id": ""}).draft_id is None


def test_confirm_window() -> None:
    answered = Report(
        "r",
        "road-01",
        "Яма",
        ReportStatus.ANSWERED,
        "",
        HERE,
        NOW,
        None,
        confirm_until=NOW + timedelta(days=15),
    )
    assert answered.can_confirm(NOW + timedelta(days=14))
    assert not answered.can_confirm(NOW + timedelta(days=15))
