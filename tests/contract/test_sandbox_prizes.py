"""Prizes for points at the sandbox: the catalogue by category, a prize, the exchange (once per
Idempotence-Key, refusals that debit nothing) and «Мои призы». Every answer is checked against
city/openapi.yaml by the ContractClient."""

from __future__ import annotations

from typing import Any

import pytest

from .sandbox_client import Answer, ContractClient

COFFEE, COFFEE_PRICE = "301", 200  # a promo code
SHIRT, SHIRT_PRICE = "103", 1_500  # a souvenir
SOLD_OUT = "403"
EXCHANGE = "/api/v1/points/prizes/{prize_id}/exchange"


async def _prizes(city: ContractClient, token: str, **params: str) -> Answer:
    return await city.request("GET", "/api/v1/points/prizes", params=params, token=token)


async def _exchange(
    city: ContractClient, token: str, prize_id: str, key: str | None, body: Any
) -> Answer:
    headers = {} if key is None else {"Idempotence-Key": key}
    return await city.request(
        "POST",
        f"/api/v1/points/prizes/{prize_id}/exchange",
        json=body,
        token=token,
        headers=headers,
        template=EXCHANGE,
    )


async def _mine(city: ContractClient, token: str) -> list[dict[str, Any]]:
    answer = await city.request("GET", "/api/v1/points/my-prizes", token=token)
    assert answer.status == 200, answer.body
    return answer.body["prizes"]  # type: ignore[no-any-return]


async def test_the_catalogue_has_every_category(city: ContractClient, full_token: str) -> None:
    everything = await _prizes(city, full_token)
    assert everything.status == 200
    categories = {p["category"] for p in everything.body["prizes"]}
    assert categories == {"souvenirs", "home", "promo_codes", "tickets"}
    for category in categories:
        one = await _prizes(city, full_token, category=category)
        assert one.status == 200
        assert one.body["prizes"] and {p["category"] for p in one.body["prizes"]} == {category}
    assert (await _prizes(city, full_token, category="gifts")).status == 400


async def test_a_prize_and_an_unknown_one(city: ContractClient, full_token: str) -> None:
    template = "/api/v1/points/prizes/{prize_id}"
    coffee = await city.request(
        "GET", f"/api/v1/points/prizes/{COFFEE}", token=full_token, template=template
    )
    assert coffee.status == 200 and coffee.body["price"] == COFFEE_PRICE
    unknown = await city.request(
        "GET", "/api/v1/points/prizes/999", token=full_token, template=template
    )
    assert unknown.status == 404 and unknown.body["reason"] == "unknown_prize"


async def test_an_exchange_debits_once_per_key(city: ContractClient, full_token: str) -> None:
    before = await city.balance(full_token)
    body = {"points": COFFEE_PRICE}

    first = await _exchange(city, full_token, COFFEE, "coffee-1", body)
    again = await _exchange(city, full_token, COFFEE, "coffee-1", body)

    assert (first.status, again.status) == (201, 200)
    assert again.body == first.body
    assert first.body["balance"] == before - COFFEE_PRICE
    assert await city.balance(full_token) == before - COFFEE_PRICE
    [mine] = await _mine(city, full_token)
    assert mine == first.body["prize"] and mine["code"].startswith("MOS-")
    entries = (await city.points(full_token)).body["entries"]
    assert [e["amount"] for e in entries if e["kind"] == "prize"] == [-COFFEE_PRICE]


async def test_the_same_key_for_another_prize_is_422(city: ContractClient, full_token: str) -> None:
    first = await _exchange(city, full_token, COFFEE, "reused", {"points": COFFEE_PRICE})
    other = await _exchange(city, full_token, "302", "reused", {"points": 500})
    assert other.status == 422 and other.body["reason"] == "idempotency_key_reused"
    assert other.body["exchange_id"] == first.body["prize"]["id"]
    assert len(await _mine(city, full_token)) == 1


@pytest.mark.parametrize(
    ("prize_id", "points", "status", "reason"),
    [
        ("999", 100, 404, "unknown_prize"),
        (COFFEE, COFFEE_PRICE + 1, 409, "price_changed"),
        (SOLD_OUT, 450, 409, "out_of_stock"),
    ],
)
async def test_refusals_debit_nothing_and_leave_the_key_free(
    city: ContractClient, full_token: str, prize_id: str, points: int, status: int, reason: str
) -> None:
    before = await city.balance(full_token)
    refused = await _exchange(city, full_token, prize_id, "k-1", {"points": points})
    assert (refused.status, refused.body["reason"]) == (status, reason)
    assert await city.balance(full_token) == before
    assert await _mine(city, full_token) == []
    made = await _exchange(city, full_token, COFFEE, "k-1", {"points": COFFEE_PRICE})
    assert made.status == 201  # a refused request bound nothing


async def test_not_enough_points_is_409_with_the_balance(
    city: ContractClient, standard_token: str
) -> None:
    refused = await _exchange(city, standard_token, SHIRT, "shirt", {"points": SHIRT_PRICE})
    assert refused.status == 409
    assert refused.body["reason"] == "insufficient_points"
    assert (refused.body["balance"], refused.body["price"]) == (120, SHIRT_PRICE)
    assert await city.balance(standard_token) == 120


@pytest.mark.parametrize(
    ("key", "body"),
    [
        (None, {"points": COFFEE_PRICE}),
        ("bad key!", {"points": COFFEE_PRICE}),
        ("ok", {"points": "200"}),
        ("ok", {"points": 0}),
        ("ok", {"points": COFFEE_PRICE, "extra": 1}),
        ("ok", [COFFEE_PRICE]),
    ],
)
async def test_invalid_requests_are_400(
    city: ContractClient, full_token: str, key: str | None, body: Any
) -> None:
    answer = await _exchange(city, full_token, COFFEE, key, body)
    assert answer.status == 400
    assert await _mine(city, full_token) == []


async def test_prizes_need_a_token(city: ContractClient) -> None:
    assert (await city.request("GET", "/api/v1/points/prizes")).status == 401
    assert (await city.request("GET", "/api/v1/points/my-prizes")).status == 401


async def test_a_fault_limited_to_paths_leaves_the_others_working(
    city: ContractClient, full_token: str
) -> None:
    faults = {"status": 503, "paths": ["/api/v1/donations"]}
    assert (await city.put_faults(faults)).body == faults
    failing = await city.request("GET", "/api/v1/donations", token=full_token)
    assert failing.status == 503
    assert (await city.bills(full_token)).status == 200
    assert (await city.put_faults({"paths": ["/oauth/token"]})).status == 400
