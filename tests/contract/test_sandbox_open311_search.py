"""«Наш город» at the sandbox: GeoReport v2 GET requests.json and its filters, with the seeded
reports (the fixture clock is Tuesday 10 March 2026, 09:30 Moscow time)."""

from __future__ import annotations

from datetime import datetime

import pytest

from .sandbox_client import ContractClient

OPEN_AT_TVERSKAYA_7 = "NG-2026-000101"
CLOSED_AT_TVERSKAYA_7 = "NG-2026-000102"
OPEN_100_M_AWAY = "NG-2026-000103"
REJECTED = "NG-2026-000104"
IN_MODERATION = "NG-2026-000105"
OLDER_THAN_90_DAYS = "NG-2025-000106"
FULL_ANSWERED = "NG-2026-000108"
FULL_IN_WORK = "NG-2026-000109"
NEAR_TVERSKAYA_7 = {"lat": "55.7577", "long": "37.6107"}


def ids(answer: object) -> list[str]:
    return [found["service_request_id"] for found in answer.body]  # type: ignore[attr-defined]


async def test_the_default_is_the_last_90_days_newest_first(city: ContractClient) -> None:
    answer = await city.reports()

    assert answer.status == 200
    found = ids(answer)
    assert OLDER_THAN_90_DAYS not in found
    assert {OPEN_AT_TVERSKAYA_7, CLOSED_AT_TVERSKAYA_7, REJECTED, FULL_ANSWERED} <= set(found)
    requested = [r["requested_datetime"] for r in answer.body]
    moments = [datetime.fromisoformat(text) for text in requested]
    assert moments == sorted(moments, reverse=True)
    assert found[0] == IN_MODERATION  # made 20 minutes ago


async def test_the_seeded_statuses(city: ContractClient) -> None:
    by_id = {r["service_request_id"]: r for r in (await city.reports()).body}

    def state(request_id: str) -> tuple[str, str]:
        return by_id[request_id]["status"], by_id[request_id]["extended_status"]

    assert state(OPEN_AT_TVERSKAYA_7) == ("open", "in_work")
    assert state(CLOSED_AT_TVERSKAYA_7) == ("closed", "closed")
    assert state(OPEN_100_M_AWAY) == ("open", "in_work")
    assert state(REJECTED) == ("closed", "rejected")
    assert "управляющую компанию" in by_id[REJECTED]["status_notes"]
    assert state(IN_MODERATION) == ("open", "moderation")
    assert state(FULL_ANSWERED) == ("open", "answered")
    assert by_id[FULL_ANSWERED]["confirm_until"] == "2026-03-23T10:30:00+03:00"
    assert by_id[FULL_ANSWERED]["answer_media_url"].startswith(city.base_url + "/media/")
    assert state(FULL_IN_WORK) == ("open", "in_work")
    for request_id in (OPEN_AT_TVERSKAYA_7, CLOSED_AT_TVERSKAYA_7):
        assert by_id[request_id]["service_name"] == "Яма на дороге"
        assert by_id[request_id]["address"] == "Тверская ул., 7"


async def test_a_list_of_ids_overrides_every_other_filter(city: ContractClient) -> None:
    wanted = f"{OLDER_THAN_90_DAYS},NG-2026-999999,{OPEN_AT_TVERSKAYA_7}"

    answer = await city.reports(
        service_request_id=wanted, status="closed", service_code="waste-01", account_id="nobody"
    )

    assert ids(answer) == [OLDER_THAN_90_DAYS, OPEN_AT_TVERSKAYA_7]


async def test_service_codes_comma_separated(city: ContractClient) -> None:
    potholes = await city.reports(service_code="road-01")
    mixed = await city.reports(service_code="road-01,improve-01")

    assert set(ids(potholes)) == {OPEN_AT_TVERSKAYA_7, CLOSED_AT_TVERSKAYA_7, OPEN_100_M_AWAY}
    assert set(ids(mixed)) == set(ids(potholes)) | {REJECTED}
    assert ids(await city.reports(service_code="road-02")) == []


async def test_status_filter(city: ContractClient) -> None:
    opened = await city.reports(status="open")
    closed = await city.reports(status="closed")
    both = await city.reports(status="open,closed")

    assert {r["status"] for r in opened.body} == {"open"}
    assert set(ids(closed)) == {CLOSED_AT_TVERSKAYA_7, REJECTED}
    assert sorted(ids(both)) == sorted(ids(opened) + ids(closed))
    assert sorted(ids(both)) == sorted(ids(await city.reports()))


async def test_date_window(city: ContractClient) -> None:
    old = await city.reports(
        start_date="2025-10-01T00:00:00+03:00", end_date="2025-12-01T00:00:00+03:00"
    )
    start_only = await city.reports(start_date="2025-10-01T00:00:00Z")
    end_only = await city.reports(end_date="2026-03-01T00:00:00+03:00")
    last_week = await city.reports(
        start_date="2026-03-03T00:00:00+03:00", end_date="2026-03-10T23:59:59+03:00"
    )

    assert ids(old) == [OLDER_THAN_90_DAYS]
    assert ids(start_only) == [OLDER_THAN_90_DAYS]  # the 90 days after the start
    assert set(ids(end_only)) == {CLOSED_AT_TVERSKAYA_7, REJECTED}
    assert OLDER_THAN_90_DAYS not in ids(end_only)
    assert set(ids(last_week)) == {
        OPEN_AT_TVERSKAYA_7,
        OPEN_100_M_AWAY,
        IN_MODERATION,
        "NG-2026-000107",
        FULL_ANSWERED,
        FULL_IN_WORK,
    }


async def test_the_window_bounds_are_inclusive(city: ContractClient) -> None:
    made = (await city.report_now(IN_MODERATION))["requested_datetime"]

    exactly = await city.reports(start_date=made, end_date=made)

    assert ids(exactly) == [IN_MODERATION]


@pytest.mark.parametrize(
    "params",
    [
        {"start_date": "2025-01-01T00:00:00+03:00", "end_date": "2026-01-01T00:00:00+03:00"},
        {"start_date": "2026-03-01T00:00:00+03:00", "end_date": "2026-02-01T00:00:00+03:00"},
        {"start_date": "2026-03-01T00:00:00"},  # no timezone
        {"end_date": "вчера"},
        {"status": "pending"},
        {"lat": "55.75", "long": "37.61"},  # no radius
        {"lat": "55.75", "radius": "100"},
        {**NEAR_TVERSKAYA_7, "radius": "0"},
        {**NEAR_TVERSKAYA_7, "radius": "10001"},
    ],
)
async def test_invalid_filters_are_400(city: ContractClient, params: dict[str, str]) -> None:
    answer = await city.reports(**params)

    assert answer.status == 400, answer.body
    assert answer.body[0]["code"] == 400


async def test_an_unencoded_plus_in_the_offset_still_works(city: ContractClient) -> None:
    url = "/open311/v2/requests.json?start_date=2025-10-01T00:00:00+03:00"

    answer = await city.request("GET", url, template="/open311/v2/requests.json")

    assert ids(answer) == [OLDER_THAN_90_DAYS]


async def test_account_id_filter(city: ContractClient) -> None:
    mine = await city.reports(account_id="C-100003")
    posted = await city.report_id(
        {"service_code": "road-01", "address_id": "MSK-0006", "account_id": "C-100003"}
    )
    again = await city.reports(account_id="C-100003")

    assert set(ids(mine)) == {FULL_ANSWERED, FULL_IN_WORK}
    assert set(ids(again)) == {FULL_ANSWERED, FULL_IN_WORK, posted}
    assert {r["account_id"] for r in again.body} == {"C-100003"}
    assert ids(await city.reports(account_id="C-100002")) == []


async def test_radius_finds_the_duplicates_nearby(city: ContractClient) -> None:
    within_50 = await city.reports(**NEAR_TVERSKAYA_7, radius="50")
    within_150 = await city.reports(**NEAR_TVERSKAYA_7, radius="150")
    open_nearby = await city.reports(**NEAR_TVERSKAYA_7, radius="150", status="open")
    potholes_nearby = await city.reports(
        **NEAR_TVERSKAYA_7, radius="300", service_code="road-01", status="open"
    )

    assert set(ids(within_50)) == {OPEN_AT_TVERSKAYA_7, CLOSED_AT_TVERSKAYA_7}
    assert set(ids(within_150)) == {OPEN_AT_TVERSKAYA_7, CLOSED_AT_TVERSKAYA_7, OPEN_100_M_AWAY}
    assert set(ids(open_nearby)) == {OPEN_AT_TVERSKAYA_7, OPEN_100_M_AWAY}
    assert set(ids(potholes_nearby)) == {OPEN_AT_TVERSKAYA_7, OPEN_100_M_AWAY}


async def test_reports_without_coordinates_are_never_near(city: ContractClient) -> None:
    somewhere = await city.report_id(
        {"service_code": "road-01", "address_string": "во дворе за школой"}
    )

    nearby = ids(await city.reports(**NEAR_TVERSKAYA_7, radius="10000"))

    assert somewhere not in nearby
    assert somewhere in ids(await city.reports())
