"""Finding charges: a bill by its UIN, and traffic fines by СТС or driver's licence."""

from __future__ import annotations

from typing import Any

import pytest

from domain.uin import check_uin, with_control_digit

from .sandbox_client import ContractClient

GIBDD = "ЦАФАП ГИБДД ГУ МВД России по г. Москве"
AMOUNTS_RUB = (500, 1000, 1500, 2500, 3000, 5000)


def traffic_uin(rule: int, amount_digit: int = 0) -> str:
    """A valid 20-character UIN whose uin[-2] is `rule` and uin[-3] is `amount_digit`."""
    return with_control_digit(f"18810177260301770{amount_digit}{rule}")


def parking_uin(rule: int, amount_digit: int = 0) -> str:
    return with_control_digit(f"0355431010260301000012{amount_digit}{rule}")


def other_uin(rule: int, amount_digit: int = 0) -> str:
    return with_control_digit(f"0349347501260301001181{amount_digit}{rule}")


async def all_bills(city: ContractClient, token: str) -> list[dict[str, Any]]:
    return (await city.bills(token, "all")).body["bills"]  # type: ignore[no-any-return]


# ---------------------------------------------------------------- bill by UIN


@pytest.mark.parametrize("rule", range(7))
async def test_a_found_uin_becomes_the_residents_unpaid_bill(
    city: ContractClient, full_token: str, rule: int
) -> None:
    uin = traffic_uin(rule)
    before = await all_bills(city, full_token)

    answer = await city.lookup(full_token, uin)

    assert answer.status == 200
    bill = answer.body["bill"]
    assert (bill["uin"], bill["status"], bill["kind"]) == (uin, "unpaid", "traffic_fine")
    assert bill["id"] not in {b["id"] for b in before}
    assert bill in (await city.bills(full_token)).body["bills"]
    again = await city.lookup(full_token, uin)
    assert again.body == answer.body
    assert len(await all_bills(city, full_token)) == len(before) + 1


@pytest.mark.parametrize(
    ("uin", "kind", "title", "provider"),
    [
        (traffic_uin(2, 3), "traffic_fine", "Штраф ГИБДД", GIBDD),
        (
            parking_uin(2, 3),
            "parking_fine",
            "Штраф за неоплату парковки",
            "ГКУ «Администратор Московского парковочного пространства»",
        ),
        (other_uin(2, 3), "other", "Начисление по УИН", "Получатель по данным ГИС ГМП"),
    ],
)
async def test_the_kind_comes_from_the_uins_prefix(
    city: ContractClient, full_token: str, uin: str, kind: str, title: str, provider: str
) -> None:
    bill = (await city.lookup(full_token, uin)).body["bill"]

    assert (bill["kind"], bill["title"], bill["provider"]) == (kind, title, provider)
    assert bill["amount"] == 250_000  # uin[-3] = 3 → 2500 ₽
    assert bill["due_date"] == "2026-03-30"  # 20 days after the sandbox's today


@pytest.mark.parametrize("digit", range(10))
async def test_the_amount_comes_from_the_digit_before_the_rule_digit(
    city: ContractClient, full_token: str, digit: int
) -> None:
    bill = (await city.lookup(full_token, parking_uin(5, digit))).body["bill"]

    assert bill["amount"] == AMOUNTS_RUB[digit % 6] * 100


@pytest.mark.parametrize("rule", [7, 8])
async def test_some_uins_are_not_found(city: ContractClient, full_token: str, rule: int) -> None:
    before = await all_bills(city, full_token)

    answer = await city.lookup(full_token, other_uin(rule))

    assert answer.status == 404
    assert answer.body["code"] == 404
    assert await all_bills(city, full_token) == before


async def test_a_uin_ending_in_9_is_already_paid(city: ContractClient, full_token: str) -> None:
    before = await all_bills(city, full_token)

    answer = await city.lookup(full_token, traffic_uin(9))

    assert answer.status == 409
    assert (answer.body["reason"], answer.body["bill_ids"]) == ("already_paid", [])
    assert await all_bills(city, full_token) == before


async def test_a_found_bill_can_be_paid(city: ContractClient, full_token: str) -> None:
    bill = (await city.lookup(full_token, traffic_uin(4, 1))).body["bill"]

    paid = await city.pay(
        full_token,
        "uin-pay",
        {"bill_ids": [bill["id"]], "amount": bill["amount"], "payment_method_id": "pm-full-4242"},
    )

    assert (paid.status, paid.body["status"]) == (201, "succeeded")
    assert paid.body["receipt"]["lines"][0]["uin"] == bill["uin"]
    assert [c["amount"] for c in await city.ledger()] == [100_000]
    again = (await city.lookup(full_token, bill["uin"])).body["bill"]
    assert (again["id"], again["status"]) == (bill["id"], "paid")


async def test_the_residents_own_bills_are_found_as_they_are(
    city: ContractClient, full_token: str
) -> None:
    own = [bill for bill in await all_bills(city, full_token) if bill["uin"] is not None]
    assert {bill["status"] for bill in own} == {"paid", "unpaid"}

    for bill in own:
        answer = await city.lookup(full_token, bill["uin"])
        assert (answer.status, answer.body) == (200, {"bill": bill})
    assert len(await all_bills(city, full_token)) == 14


async def test_another_residents_uin_is_not_found(
    city: ContractClient, full_token: str, standard_token: str
) -> None:
    theirs = [b["uin"] for b in await all_bills(city, full_token) if b["uin"] is not None]

    for uin in theirs:
        assert (await city.lookup(standard_token, uin)).status == 404
    assert len(await all_bills(city, standard_token)) == 5


async def test_a_uin_with_spaces_is_found_by_its_digits(
    city: ContractClient, full_token: str
) -> None:
    uin = traffic_uin(1)

    bill = (await city.lookup(full_token, f" {uin[:4]} {uin[4:12]}-{uin[12:]} ")).body["bill"]

    assert bill["uin"] == uin


@pytest.mark.parametrize(
    "uin",
    [
        "18810177200718000123",  # wrong control digit (the DIT description's example)
        traffic_uin(2)[:-1] + str((int(traffic_uin(2)[-1]) + 1) % 10),
        "1881017720071800012",
        "188101772007180001277",
        "",
        "0" * 20,
        "1881017720071800012!",
    ],
)
async def test_an_invalid_uin_is_400(city: ContractClient, full_token: str, uin: str) -> None:
    assert not check_uin(uin).ok

    answer = await city.lookup(full_token, uin)

    assert answer.status == 400
    assert answer.body["code"] == 400


async def test_lookup_needs_the_uin_and_a_token(city: ContractClient, full_token: str) -> None:
    missing = await city.request("GET", "/api/v1/bills/lookup", token=full_token)

    assert missing.status == 400
    assert (await city.lookup(None, traffic_uin(1))).status == 401


# ---------------------------------------------------------------- fines by СТС or licence


async def demo_full_traffic_fines(city: ContractClient, token: str) -> list[str]:
    return [
        bill["id"]
        for bill in (await city.bills(token)).body["bills"]
        if bill["kind"] == "traffic_fine"
    ]


@pytest.mark.parametrize(
    "params",
    [
        {"sts": "77АВ123456"},
        {"sts": "77 АВ 123456"},
        {"sts": "77ab123456"},  # Latin look-alikes
        {"sts": "77ав123456"},
        {"driver_license": "7701123456"},
        {"driver_license": "77 01 123456"},
    ],
    ids=repr,
)
async def test_demo_fulls_fines_are_registered_to_her_car_and_licence(
    city: ContractClient, full_token: str, params: dict[str, str]
) -> None:
    expected = await demo_full_traffic_fines(city, full_token)

    answer = await city.fines(full_token, **params)

    assert answer.status == 200
    assert [fine["id"] for fine in answer.body["fines"]] == expected
    assert expected == ["B-1002", "B-1007", "B-1009", "B-1012"]
    assert {fine["status"] for fine in answer.body["fines"]} == {"unpaid"}


async def test_a_paid_fine_is_not_listed(city: ContractClient, full_token: str) -> None:
    await city.pay(
        full_token,
        "fine-1002",
        {"bill_ids": ["B-1002"], "amount": 50_000, "payment_method_id": "pm-full-4242"},
    )

    answer = await city.fines(full_token, sts="77АВ123456")

    assert [fine["id"] for fine in answer.body["fines"]] == ["B-1007", "B-1009", "B-1012"]


async def test_other_residents_have_no_fines_on_demo_fulls_numbers(
    city: ContractClient, standard_token: str
) -> None:
    for params in ({"sts": "77АВ123456"}, {"driver_license": "7701123456"}):
        answer = await city.fines(standard_token, **params)
        assert (answer.status, answer.body) == (200, {"fines": []})


@pytest.mark.parametrize(
    "params", [{"sts": "7712345671"}, {"sts": "50МО000013"}, {"driver_license": "9900123457"}]
)
async def test_an_odd_number_has_one_fine_that_joins_the_bills(
    city: ContractClient, standard_token: str, params: dict[str, str]
) -> None:
    before = await all_bills(city, standard_token)

    first = await city.fines(standard_token, **params)
    again = await city.fines(standard_token, **params)

    assert first.status == 200
    [fine] = first.body["fines"]
    assert (fine["kind"], fine["status"], fine["provider"]) == ("traffic_fine", "unpaid", GIBDD)
    assert fine["title"].startswith("Штраф ГИБДД: ")
    assert fine["uin"].startswith("18810177")
    assert check_uin(fine["uin"]).ok
    assert again.body == first.body
    after = await all_bills(city, standard_token)
    assert [b for b in after if b not in before] == [fine]


async def test_an_even_number_has_no_fines(city: ContractClient, standard_token: str) -> None:
    before = await all_bills(city, standard_token)

    for params in ({"sts": "7712345678"}, {"driver_license": "9900123450"}):
        answer = await city.fines(standard_token, **params)
        assert (answer.status, answer.body) == (200, {"fines": []})
    assert await all_bills(city, standard_token) == before


async def test_a_found_fine_once_paid_is_gone(city: ContractClient, standard_token: str) -> None:
    [fine] = (await city.fines(standard_token, sts="7712345671")).body["fines"]

    paid = await city.pay(
        standard_token,
        "found-fine",
        {"bill_ids": [fine["id"]], "amount": fine["amount"], "payment_method_id": "pm-std-4242"},
    )

    assert paid.body["status"] == "succeeded"
    assert (await city.fines(standard_token, sts="7712345671")).body == {"fines": []}
    assert (await city.bill(standard_token, fine["id"]))["status"] == "paid"


async def test_fines_found_by_number_are_per_resident(
    city: ContractClient, full_token: str, standard_token: str
) -> None:
    [mine] = (await city.fines(full_token, driver_license="1234567891")).body["fines"]
    [theirs] = (await city.fines(standard_token, driver_license="1234567891")).body["fines"]

    assert mine["id"] != theirs["id"]
    assert mine["uin"] != theirs["uin"]
    assert mine["id"] in {b["id"] for b in await all_bills(city, full_token)}
    assert mine["id"] not in {b["id"] for b in await all_bills(city, standard_token)}


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"sts": "77АВ123456", "driver_license": "7701123456"},
        {"sts": ""},
        {"sts": "77АВ12345"},
        {"sts": "7АВ1234567"},
        {"sts": "77АВ12345Б"},
        {"sts": "77QW123456"},
        {"sts": "АВ77123456"},
        {"driver_license": "770112345"},
        {"driver_license": "77011234567"},
        {"driver_license": "77АВ123456"},
    ],
    ids=repr,
)
async def test_an_invalid_search_is_400(
    city: ContractClient, full_token: str, params: dict[str, str]
) -> None:
    answer = await city.fines(full_token, **params)

    assert answer.status == 400
    assert answer.body["code"] == 400


async def test_fines_need_a_token(city: ContractClient) -> None:
    assert (await city.fines(None, sts="77АВ123456")).status == 401
