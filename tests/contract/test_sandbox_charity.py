"""Charity at the sandbox: categories, funds, report pages, donations and «Вы помогали»."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import pytest

from .conftest import MOSCOW
from .sandbox_client import ContractClient, FakeClock

CATEGORIES = [
    ("children", "Детям"),
    ("animals", "Животным"),
    ("elderly", "Пожилым"),
    ("adults", "Взрослым"),
    ("families", "Семьям"),
    ("disabled", "Людям с ограниченными возможностями здоровья"),
    ("other", "Другое"),
]
ELDERLY_FUND = "F-301"  # Фонд „Тёплый дом“
ANIMALS_FUND = "F-201"
CHILDREN_FUND = "F-102"


def donation(fund_id: str, amount: int, **extra: Any) -> dict[str, Any]:
    return {"fund_id": fund_id, "amount": amount, **extra}


async def _all_funds(city: ContractClient, token: str) -> list[dict[str, Any]]:
    answer = await city.funds(token)
    assert answer.status == 200, answer.body
    return answer.body["funds"]  # type: ignore[no-any-return]


# ---------------------------------------------------------------- categories and funds


async def test_the_seven_categories_count_every_fund_once(
    city: ContractClient, full_token: str
) -> None:
    answer = await city.fund_categories(full_token)

    assert answer.status == 200
    categories = answer.body["categories"]
    assert [(c["id"], c["title"]) for c in categories] == CATEGORIES
    every = await _all_funds(city, full_token)
    assert 42 <= len(every) <= 50
    assert sum(c["count"] for c in categories) == len(every)
    seen: list[str] = []
    for category in categories:
        listed = (await city.funds(full_token, category["id"])).body["funds"]
        assert len(listed) == category["count"] >= 4, category["id"]
        assert {fund["category"] for fund in listed} == {category["id"]}
        seen += [fund["id"] for fund in listed]
    assert sorted(seen) == sorted(fund["id"] for fund in every)


async def test_funds_are_sorted_by_name_and_read_like_funds(
    city: ContractClient, full_token: str
) -> None:
    funds = await _all_funds(city, full_token)

    assert [f["name"] for f in funds] == sorted(f["name"] for f in funds)
    assert len({f["id"] for f in funds}) == len(funds)
    assert len({f["name"] for f in funds}) == len(funds)
    for fund in funds:
        assert re.fullmatch(r"F-[1-7]\d\d", fund["id"]), fund["id"]
        assert re.search("[а-яё]", fund["summary"])
        assert "\n" not in fund["summary"] and len(fund["summary"]) <= 120
        sentences = re.findall(r"[.!?](?:\s|$)", fund["description"])
        assert 2 <= len(sentences) <= 4, fund["description"]
        assert 1 <= len(fund["programs"]) <= 3
        # The clock says 10 March 2026: the latest report is for the last quarter of 2025.
        assert fund["report_url"] == f"{city.base_url}/reports/{fund['id']}/2025-Q4.html"
        assert fund["report_period"] == "IV квартал 2025"


async def test_the_elderly_include_the_warm_house(city: ContractClient, full_token: str) -> None:
    elderly = (await city.funds(full_token, "elderly")).body["funds"]

    assert ELDERLY_FUND in [fund["id"] for fund in elderly]
    assert (await city.fund(full_token, ELDERLY_FUND)).body["name"] == "Фонд „Тёплый дом“"


async def test_a_fund_card_is_the_listed_fund(city: ContractClient, full_token: str) -> None:
    listed = {fund["id"]: fund for fund in await _all_funds(city, full_token)}

    for fund_id in (ELDERLY_FUND, ANIMALS_FUND, "F-705"):
        answer = await city.fund(full_token, fund_id)
        assert answer.status == 200
        assert answer.body == listed[fund_id]


async def test_an_unknown_fund_is_404_and_an_unknown_category_400(
    city: ContractClient, full_token: str
) -> None:
    assert (await city.fund(full_token, "F-999")).status == 404
    for category in ("all", "Детям", ""):
        answer = await city.funds(full_token, category)
        assert answer.status == 400, category
        assert answer.body["code"] == 400


async def test_funds_need_a_token(city: ContractClient) -> None:
    for answer in (
        await city.fund_categories(None),
        await city.funds(None),
        await city.fund(None, ELDERLY_FUND),
        await city.donations(None),
    ):
        assert answer.status == 401


# ---------------------------------------------------------------- report pages


async def test_a_funds_latest_report_page_opens(city: ContractClient, full_token: str) -> None:
    fund = (await city.fund(full_token, ELDERLY_FUND)).body

    page = await city.report_page(fund["report_url"])

    assert page.status == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "Тёплый дом" in page.body
    assert 'data-period="2025-Q4"' in page.body
    assert "IV квартал 2025" in page.body
    for program in fund["programs"]:
        assert program in page.body


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/reports/F-301/2024-Q1.html", 200),  # the first quarter with reports
        ("/reports/F-301/2023-Q4.html", 404),
        ("/reports/F-301/2026-Q1.html", 404),  # not over yet on 10 March 2026
        ("/reports/F-301/2025-Q5.html", 404),
        ("/reports/F-301/latest.html", 404),
        ("/reports/F-999/2025-Q4.html", 404),
    ],
)
async def test_report_pages_exist_for_past_quarters_only(
    city: ContractClient, path: str, status: int
) -> None:
    page = await city.request("GET", path, template="/reports/{fund_id}/{name}.html")

    assert page.status == status


async def test_the_latest_report_follows_the_sandbox_clock(
    city: ContractClient, full_token: str
) -> None:
    await city.set_clock(datetime(2026, 10, 2, 12, 0, tzinfo=MOSCOW))

    fund = (await city.fund(full_token, "F-101")).body

    assert fund["report_url"] == f"{city.base_url}/reports/F-101/2026-Q3.html"
    assert fund["report_period"] == "III квартал 2026"
    assert (await city.report_page(fund["report_url"])).status == 200


# ---------------------------------------------------------------- donations


async def test_a_donation_with_a_saved_card(city: ContractClient, full_token: str) -> None:
    unpaid_before = (await city.bills(full_token)).body["bills"]

    answer = await city.pay(
        full_token, "give-1", donation(ELDERLY_FUND, 30_000, payment_method_id="pm-full-4242")
    )

    assert answer.status == 201
    payment = answer.body
    assert payment["status"] == "succeeded"
    assert (payment["fund_id"], payment["bill_ids"], payment["requisites"]) == (
        ELDERLY_FUND,
        [],
        None,
    )
    assert payment["receipt"]["lines"] == [
        {
            "title": "Пожертвование: Фонд „Тёплый дом“",
            "provider": "Фонд „Тёплый дом“",
            "amount": 30_000,
            "uin": None,
            "bill_id": None,
        }
    ]
    assert payment["receipt"]["total"] == 30_000
    ledger = await city.ledger()
    assert [(c["payment_id"], c["amount"], c["card_last4"]) for c in ledger] == [
        (payment["id"], 30_000, "4242")
    ]
    assert (await city.bills(full_token)).body["bills"] == unpaid_before
    assert (await city.payment(full_token, payment["id"])).body == payment


async def test_a_donation_on_the_hosted_page(city: ContractClient, standard_token: str) -> None:
    created = await city.pay(standard_token, "give-page", donation(ANIMALS_FUND, 10_000))
    assert created.status == 201
    pending = created.body
    assert (pending["status"], pending["fund_id"]) == ("pending", ANIMALS_FUND)
    page = await city.pay_page(pending["confirmation_url"])
    assert page.status == 200
    fund_name = (await city.fund(standard_token, ANIMALS_FUND)).body["name"]
    assert f"Пожертвование: {fund_name}" in page.body
    assert await city.ledger() == []

    result = await city.pay_page(pending["confirmation_url"], {"card_number": "4242424242424242"})

    assert 'data-status="succeeded"' in result.body
    paid = (await city.payment(standard_token, pending["id"])).body
    assert paid["status"] == "succeeded"
    assert paid["receipt"]["lines"][0]["provider"] == fund_name
    assert [(c["payment_id"], c["amount"]) for c in await city.ledger()] == [
        (pending["id"], 10_000)
    ]


async def test_a_donation_by_telegram_payments(city: ContractClient, full_token: str) -> None:
    charge = {"provider": "telegram", "charge_id": "tg-donation-1"}

    answer = await city.pay(full_token, "give-tg", donation("F-604", 5_000, external_charge=charge))

    assert (answer.status, answer.body["status"]) == (201, "succeeded")
    assert [c["external_charge_id"] for c in await city.ledger()] == ["tg-donation-1"]


async def test_a_donation_below_50_rubles_is_400_and_50_is_fine(
    city: ContractClient, full_token: str
) -> None:
    refused = await city.pay(
        full_token, "small", donation(ELDERLY_FUND, 4_999, payment_method_id="pm-full-4242")
    )

    assert refused.status == 400
    assert (refused.body["reason"], refused.body["amount"]) == ("below_minimum", 5_000)
    assert await city.ledger() == []
    # A refusal binds no key.
    accepted = await city.pay(
        full_token, "small", donation(ELDERLY_FUND, 5_000, payment_method_id="pm-full-4242")
    )
    assert (accepted.status, accepted.body["status"]) == (201, "succeeded")


async def test_a_donation_to_an_unknown_fund_is_404(city: ContractClient, full_token: str) -> None:
    refused = await city.pay(
        full_token, "nowhere", donation("F-999", 10_000, payment_method_id="pm-full-4242")
    )

    assert refused.status == 404
    assert refused.body["reason"] == "unknown_fund"
    assert await city.ledger() == []
    assert (await city.payments(full_token)).body["payments"] == []


async def test_a_replayed_donation_is_charged_once(
    city: ContractClient, full_token: str, clock: FakeClock
) -> None:
    body = donation(CHILDREN_FUND, 100_000, payment_method_id="pm-full-4242")
    first = await city.pay(full_token, "give-twice", body)
    clock.advance(30)

    again = await city.pay(full_token, "give-twice", body)
    other = await city.pay(full_token, "give-twice", {**body, "fund_id": ELDERLY_FUND})

    assert (first.status, again.status) == (201, 200)
    assert again.body == first.body
    assert other.status == 422
    assert (other.body["reason"], other.body["payment_id"]) == (
        "idempotency_key_reused",
        first.body["id"],
    )
    assert [c["payment_id"] for c in await city.ledger()] == [first.body["id"]]


INVALID_DONATIONS: list[Any] = [
    {"fund_id": ELDERLY_FUND, "bill_ids": ["B-1002"], "amount": 50_000},
    {
        "fund_id": ELDERLY_FUND,
        "requisites": {
            "payee_name": "Фонд",
            "payee_inn": "7701234567",
            "personal_acc": "40702810938000012345",
            "bic": "044525225",
            "purpose": "Пожертвование",
        },
        "amount": 50_000,
    },
    {"fund_id": "", "amount": 50_000},
    {"fund_id": None, "amount": 50_000},
    {"fund_id": 301, "amount": 50_000},
    {"fund_id": ELDERLY_FUND, "amount": 0},
    {"fund_id": ELDERLY_FUND, "amount": "5000"},
]


@pytest.mark.parametrize("body", INVALID_DONATIONS, ids=range(len(INVALID_DONATIONS)))
async def test_an_invalid_donation_is_400_without_a_reason(
    city: ContractClient, full_token: str, body: Any
) -> None:
    answer = await city.pay(full_token, "bad-donation", body)

    assert answer.status == 400, answer.body
    assert "reason" not in answer.body


# ---------------------------------------------------------------- «Вы помогали»


async def test_you_helped_lists_each_fund_with_its_last_amount_and_total(
    city: ContractClient, full_token: str, standard_token: str, clock: FakeClock
) -> None:
    card = {"payment_method_id": "pm-full-4242"}
    await city.pay(full_token, "d-1", donation(ELDERLY_FUND, 10_000, **card))
    clock.advance(60)
    await city.pay(full_token, "d-2", donation(ELDERLY_FUND, 25_000, **card))
    clock.advance(60)
    latest = (await city.pay(full_token, "d-3", donation(ANIMALS_FUND, 5_000, **card))).body
    clock.advance(60)
    # Neither a declined donation, nor a pending one, nor points count.
    declined = donation(CHILDREN_FUND, 7_000, payment_method_id="pm-full-0002")
    assert (await city.pay(full_token, "d-4", declined)).body["status"] == "declined"
    pending = await city.pay(full_token, "d-5", donation(CHILDREN_FUND, 7_000))
    assert pending.body["status"] == "pending"
    points = await city.transfer_points(full_token, "p-1", {"fund_id": "F-103", "points": 10})
    assert points.status == 201

    answer = await city.donations(full_token)

    assert answer.status == 200
    rows = answer.body["donations"]
    assert [(r["fund_id"], r["last_amount"], r["total"], r["count"]) for r in rows] == [
        (ANIMALS_FUND, 5_000, 5_000, 1),
        (ELDERLY_FUND, 25_000, 35_000, 2),
    ]
    assert rows[0]["fund_name"] == (await city.fund(full_token, ANIMALS_FUND)).body["name"]
    assert rows[0]["last_donated_at"] == latest["receipt"]["issued_at"]
    assert datetime.fromisoformat(rows[0]["last_donated_at"]) > datetime.fromisoformat(
        rows[1]["last_donated_at"]
    )
    assert (await city.donations(standard_token)).body["donations"] == []


async def test_helping_again_moves_a_fund_to_the_top(
    city: ContractClient, full_token: str, clock: FakeClock
) -> None:
    card = {"payment_method_id": "pm-full-4242"}
    await city.pay(full_token, "a-1", donation(ELDERLY_FUND, 10_000, **card))
    clock.advance(60)
    await city.pay(full_token, "a-2", donation(ANIMALS_FUND, 20_000, **card))
    clock.advance(60)

    await city.pay(full_token, "a-3", donation(ELDERLY_FUND, 6_000, **card))

    rows = (await city.donations(full_token)).body["donations"]
    assert [(r["fund_id"], r["last_amount"], r["total"]) for r in rows] == [
        (ELDERLY_FUND, 6_000, 16_000),
        (ANIMALS_FUND, 20_000, 20_000),
    ]
