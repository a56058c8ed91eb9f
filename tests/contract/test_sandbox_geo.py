"""Geo at the sandbox: address search, reverse lookup and the city boundary (Bearer auth)."""

from __future__ import annotations

import itertools

import pytest

from sandbox.gazetteer import PLACES, distance_m, inside_city

from .sandbox_client import ContractClient

TVERSKAYA_7 = {"address": "Тверская ул., 7", "lat": 55.7577, "long": 37.6107}


def addresses(answer: object) -> list[str]:
    return [result["address"] for result in answer.body["results"]]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "query",
    [
        "Тверская ул., 7",
        "тверская 7",
        "ТВЕРСКАЯ УЛИЦА, Д. 7",
        "Москва, Тверская улица, дом 7",
        "твер 7",
    ],
)
async def test_search_is_forgiving(city: ContractClient, full_token: str, query: str) -> None:
    answer = await city.geo(full_token, "search", q=query)

    assert answer.status == 200
    assert answer.body["results"][0] == TVERSKAYA_7
    assert "Тверская ул., 17" not in addresses(answer)


async def test_search_by_street_lists_its_houses(city: ContractClient, full_token: str) -> None:
    answer = await city.geo(full_token, "search", q="Тверская")

    assert addresses(answer) == ["Тверская ул., 13", "Тверская ул., 7", "Тверская ул., 9"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Арбат 10", "ул. Арбат, 10"),
        ("ленинский проспект 30", "Ленинский пр-т, 30"),
        ("Щелковское шоссе 2", "Щёлковское ш., 2"),
        ("Б. Ордынка, 21", "ул. Большая Ордынка, 21"),
        ("Зубовский бульвар 4", "Зубовский б-р, 4"),
    ],
)
async def test_search_knows_designators_and_yo(
    city: ContractClient, full_token: str, query: str, expected: str
) -> None:
    answer = await city.geo(full_token, "search", q=query)

    assert addresses(answer)[0] == expected


async def test_exact_matches_come_first(city: ContractClient, full_token: str) -> None:
    answer = await city.geo(full_token, "search", q="Арбат")

    assert addresses(answer) == ["ул. Арбат, 10", "ул. Новый Арбат, 15"]


async def test_nothing_found_is_an_empty_list(city: ContractClient, full_token: str) -> None:
    for query in ("Невский проспект 28", "Тверская 8", "Тверская 1", "ул."):
        answer = await city.geo(full_token, "search", q=query)
        assert answer.status == 200
        assert answer.body == {"results": []}, query


async def test_search_needs_a_query(city: ContractClient, full_token: str) -> None:
    blank = await city.geo(full_token, "search", q="  ")
    missing = await city.geo(full_token, "search")
    too_long = await city.geo(full_token, "search", q="я" * 201)

    assert (blank.status, missing.status, too_long.status) == (400, 400, 400)


async def test_the_gazetteer_has_about_forty_addresses_inside_the_city() -> None:
    assert 38 <= len(PLACES) <= 50
    assert len({place.address for place in PLACES}) == len(PLACES)
    assert all(inside_city(place.lat, place.long) for place in PLACES)


async def test_reverse_finds_the_nearest_address(city: ContractClient, full_token: str) -> None:
    exact = await city.geo(full_token, "reverse", lat="55.7577", long="37.6107")
    near = await city.geo(full_token, "reverse", lat="55.7574", long="37.6110")  # ~40 m
    closer_to_9 = await city.geo(full_token, "reverse", lat="55.7585", long="37.6104")

    assert exact.body == {"address": "Тверская ул., 7", "lat": 55.7577, "long": 37.6107}
    assert near.body["address"] == "Тверская ул., 7"
    assert closer_to_9.body["address"] == "Тверская ул., 9"


async def test_reverse_gives_up_beyond_300_m(city: ContractClient, full_token: str) -> None:
    # about 0.0025° of latitude north of ул. Сретенка, 26 (≈ 280 m) and 0.003° (≈ 330 m)
    within = await city.geo(full_token, "reverse", lat="55.7725", long="37.6320")
    beyond = await city.geo(full_token, "reverse", lat="55.7730", long="37.6320")

    assert (
        distance_m(55.7725, 37.6320, 55.7700, 37.6320)
        < 300
        < distance_m(55.7730, 37.6320, 55.7700, 37.6320)
    )
    assert within.body["address"] == "ул. Сретенка, 26"
    assert beyond.status == 404
    assert beyond.body["code"] == 404


@pytest.mark.parametrize(
    "params",
    [{}, {"lat": "55.75"}, {"lat": "north", "long": "37.6"}, {"lat": "91", "long": "37.6"}],
)
async def test_reverse_needs_a_point(
    city: ContractClient, full_token: str, params: dict[str, str]
) -> None:
    answer = await city.geo(full_token, "reverse", **params)

    assert answer.status == 400


async def test_boundary_is_a_multipolygon_of_moscow(city: ContractClient, full_token: str) -> None:
    answer = await city.geo(full_token, "boundary")

    assert answer.status == 200
    assert answer.body["type"] == "MultiPolygon"
    polygons = answer.body["coordinates"]
    assert len(polygons) == 3  # the old city, Zelenograd, New Moscow
    for [ring] in polygons:
        assert ring[0] == ring[-1]
        assert 6 <= len(ring) - 1 <= 20
        longs = [position[0] for position in ring]
        lats = [position[1] for position in ring]
        assert 55.10 <= min(lats) and max(lats) <= 56.05
        assert 36.75 <= min(longs) and max(longs) <= 37.90
        # counter-clockwise (RFC 7946): the shoelace sum is positive
        area = sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in itertools.pairwise(ring))
        assert area > 0


async def test_reverse_within_a_radius_gives_the_address_and_its_point(
    city: ContractClient, full_token: str
) -> None:
    khimki = {"lat": "55.8970", "long": "37.4297"}
    assert (await city.geo(full_token, "reverse", **khimki)).status == 404
    answer = await city.geo(full_token, "reverse", radius="5000", **khimki)
    assert answer.status == 200
    assert answer.body["address"] == "ул. Дыбенко, 7"
    assert inside_city(answer.body["lat"], answer.body["long"])
    for bad in ("0", "5001", "-3", "1.5", "far"):
        assert (await city.geo(full_token, "reverse", radius=bad, **khimki)).status == 400, bad


def test_inside_city() -> None:
    assert inside_city(55.7522, 37.6156)  # the Kremlin
    assert inside_city(55.58, 37.60)  # southern MKAD
    assert not inside_city(59.9386, 30.3141)  # Saint Petersburg
    assert inside_city(55.9825, 37.1814)  # Zelenograd
    assert inside_city(55.4844, 37.3072)  # Troitsk, New Moscow
    assert inside_city(55.6044, 37.2872)  # Vnukovo, New Moscow
    assert not inside_city(55.9116, 37.7308)  # Mytishchi, Moscow Oblast
    assert not inside_city(55.8970, 37.4297)  # Khimki, Moscow Oblast
    assert not inside_city(55.75, 38.10)  # east of the ring


async def test_geo_needs_a_bearer_token(city: ContractClient) -> None:
    for what, params in (
        ("search", {"q": "Тверская 7"}),
        ("reverse", {"lat": "55.7577", "long": "37.6107"}),
        ("boundary", {}),
    ):
        answer = await city.geo(None, what, **params)
        assert answer.status == 401, what
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
