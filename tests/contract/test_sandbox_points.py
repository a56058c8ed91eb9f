"""Points («Миллион призов») at the sandbox: demo history, ЕПД cashback, transfers to funds."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from .sandbox_client import ContractClient, FakeClock

EPD, EPD_AMOUNT, EPD_CASHBACK = "B-1001", 812_450, 406  # 5% of 8 124,50 ₽, rounded down
MGTS, MGTS_AMOUNT = "B-1003", 89_000
FINE, FINE_AMOUNT = "B-1002", 50_000
STD_EPD, STD_EPD_AMOUNT, STD_EPD_CASHBACK = "B-2001", 623_790, 311
FUND = "F-301"
WEEK = timedelta(days=7)


def card_payment(bill_ids: list[str], amount: int) -> dict[str, Any]:
    return {"bill_ids": bill_ids, "amount": amount, "payment_method_id": "pm-full-4242"}


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def _points(city: ContractClient, token: str, **params: str) -> dict[str, Any]:
    answer = await city.points(token, **params)
    assert answer.status == 200, answer.body
    return answer.body  # type: ignore[no-any-return]


# ---------------------------------------------------------------- demo history


@pytest.mark.parametrize(
    ("login", "balance"), [("demo-full", 1_250), ("demo-standard", 120), ("demo-simple", 0)]
)
async def test_the_demo_residents_start_with_their_points(
    city: ContractClient, login: str, balance: int
) -> None:
    token = (await city.login(login)).access_token

    points = await _points(city, token, limit="100")

    assert points["balance"] == balance
    assert points["pending"] == []
    assert sum(entry["amount"] for entry in points["entries"]) == balance
    created = [moment(entry["created_at"]) for entry in points["entries"]]
    assert created == sorted(created, reverse=True)


async def test_demo_full_has_a_history_of_every_kind(city: ContractClient, full_token: str) -> None:
    entries = (await _points(city, full_token, limit="100"))["entries"]

    by_kind: dict[str, list[int]] = {}
    for entry in entries:
        by_kind.setdefault(entry["kind"], []).append(entry["amount"])
    assert by_kind["welcome"] == [100]
    assert by_kind["meter_reading"] == [20] * 9  # three meters, three past periods
    assert sum(by_kind["epd_cashback"]) == 970
    assert entries[-1]["kind"] == "welcome"  # the oldest
    readings = [e["reason"] for e in entries if e["kind"] == "meter_reading"]
    assert "Показания счётчика холодной воды за 02.2026" in readings
    assert "Показания счётчика электроэнергии за 12.2025" in readings


async def test_the_limit_cuts_the_entries_not_the_balance(
    city: ContractClient, full_token: str
) -> None:
    everything = await _points(city, full_token, limit="100")

    first_three = await _points(city, full_token, limit="3")
    default = await _points(city, full_token)

    assert first_three["entries"] == everything["entries"][:3]
    assert first_three["balance"] == everything["balance"] == 1_250
    assert len(everything["entries"]) == 13
    assert default["entries"] == everything["entries"]  # 13 ≤ 20
    for limit in ("0", "101", "ten", "-1"):
        answer = await city.points(full_token, limit=limit)
        assert answer.status == 400, limit


# ---------------------------------------------------------------- ЕПД cashback


async def test_an_epd_payment_brings_cashback_available_in_7_days(
    city: ContractClient, full_token: str
) -> None:
    payment = (await city.pay(full_token, "epd", card_payment([EPD], EPD_AMOUNT))).body
    assert payment["status"] == "succeeded"
    paid_at = moment(payment["updated_at"])

    points = await _points(city, full_token)

    assert points["balance"] == 1_250
    [pending] = points["pending"]
    assert (pending["kind"], pending["amount"]) == ("epd_cashback", EPD_CASHBACK)
    assert moment(pending["created_at"]) == paid_at
    assert moment(pending["available_at"]) == paid_at + WEEK
    assert pending["id"] not in [entry["id"] for entry in points["entries"]]

    await city.set_clock(paid_at + WEEK - timedelta(seconds=1))
    assert (await _points(city, full_token))["pending"] == [pending]
    assert await city.balance(full_token) == 1_250

    await city.set_clock(paid_at + WEEK)
    matured = await _points(city, full_token)
    assert matured["pending"] == []
    assert matured["balance"] == 1_250 + EPD_CASHBACK
    assert matured["entries"][0] == pending  # the newest: created when the ЕПД was paid


async def test_cashback_also_matures_as_the_injected_clock_goes_on(
    city: ContractClient, standard_token: str, clock: FakeClock
) -> None:
    pending = (
        await city.pay(
            standard_token, "epd-page", {"bill_ids": [STD_EPD], "amount": STD_EPD_AMOUNT}
        )
    ).body
    await city.pay_page(pending["confirmation_url"], {"card_number": "4242424242424242"})
    assert [e["amount"] for e in (await _points(city, standard_token))["pending"]] == [
        STD_EPD_CASHBACK
    ]

    clock.advance(WEEK.total_seconds())
    standard_token = (await city.login("demo-standard")).access_token  # 1 h tokens

    points = await _points(city, standard_token)
    assert (points["balance"], points["pending"]) == (120 + STD_EPD_CASHBACK, [])


async def test_only_the_epd_part_of_a_payment_brings_cashback(
    city: ContractClient, full_token: str
) -> None:
    await city.pay(full_token, "mixed", card_payment([EPD, MGTS], EPD_AMOUNT + MGTS_AMOUNT))
    await city.pay(full_token, "fine", card_payment([FINE], FINE_AMOUNT))
    await city.pay(
        full_token,
        "give",
        {"fund_id": FUND, "amount": 100_000, "payment_method_id": "pm-full-4242"},
    )

    pending = (await _points(city, full_token))["pending"]

    assert [(e["kind"], e["amount"]) for e in pending] == [("epd_cashback", EPD_CASHBACK)]
    assert "за оплату ЕПД" in pending[0]["reason"]


async def test_a_failed_epd_payment_brings_nothing(city: ContractClient, full_token: str) -> None:
    body = {**card_payment([EPD], EPD_AMOUNT), "payment_method_id": "pm-full-0002"}

    assert (await city.pay(full_token, "declined", body)).body["status"] == "declined"

    assert (await _points(city, full_token))["pending"] == []


# ---------------------------------------------------------------- transfers


async def test_points_go_to_a_fund(city: ContractClient, full_token: str) -> None:
    answer = await city.transfer_points(full_token, "give-300", {"fund_id": FUND, "points": 300})

    assert answer.status == 201
    transfer = answer.body["transfer"]
    assert (transfer["fund_id"], transfer["fund_name"], transfer["points"]) == (
        FUND,
        "Фонд „Тёплый дом“",
        300,
    )
    assert answer.body["balance"] == 950
    points = await _points(city, full_token)
    assert points["balance"] == 950
    newest = points["entries"][0]
    assert (newest["kind"], newest["amount"]) == ("transfer", -300)
    assert "Тёплый дом" in newest["reason"]
    assert newest["created_at"] == transfer["created_at"]
    assert await city.ledger() == []  # no money moved


async def test_a_replayed_transfer_debits_once(
    city: ContractClient, full_token: str, clock: FakeClock
) -> None:
    body = {"fund_id": FUND, "points": 200}
    first = await city.transfer_points(full_token, "tap", body)
    clock.advance(5)

    again = await city.transfer_points(full_token, "tap", body)

    assert (first.status, again.status) == (201, 200)
    assert again.body == first.body
    assert await city.balance(full_token) == 1_050
    entries = (await _points(city, full_token))["entries"]
    assert [e["amount"] for e in entries if e["kind"] == "transfer"] == [-200]


async def test_the_same_key_for_another_transfer_is_422(
    city: ContractClient, full_token: str
) -> None:
    first = await city.transfer_points(full_token, "reused", {"fund_id": FUND, "points": 10})

    for body in ({"fund_id": FUND, "points": 11}, {"fund_id": "F-201", "points": 10}):
        answer = await city.transfer_points(full_token, "reused", body)
        assert answer.status == 422, body
        assert answer.body["reason"] == "idempotency_key_reused"
        assert answer.body["transfer_id"] == first.body["transfer"]["id"]

    assert await city.balance(full_token) == 1_240


async def test_more_points_than_the_balance_is_409_and_the_key_stays_free(
    city: ContractClient, full_token: str
) -> None:
    refused = await city.transfer_points(full_token, "all-in", {"fund_id": FUND, "points": 1_251})

    assert refused.status == 409
    assert (refused.body["reason"], refused.body["balance"]) == ("insufficient_points", 1_250)
    assert await city.balance(full_token) == 1_250
    everything = await city.transfer_points(
        full_token, "all-in", {"fund_id": FUND, "points": 1_250}
    )
    assert (everything.status, everything.body["balance"]) == (201, 0)
    nothing_left = await city.transfer_points(full_token, "more", {"fund_id": FUND, "points": 1})
    assert (nothing_left.status, nothing_left.body["balance"]) == (409, 0)


async def test_pending_points_cannot_be_given(city: ContractClient, full_token: str) -> None:
    await city.pay(full_token, "epd", card_payment([EPD], EPD_AMOUNT))

    refused = await city.transfer_points(full_token, "early", {"fund_id": FUND, "points": 1_251})

    assert refused.status == 409
    assert refused.body["balance"] == 1_250


async def test_a_resident_without_points_cannot_give(city: ContractClient) -> None:
    token = (await city.login("demo-simple")).access_token

    refused = await city.transfer_points(token, "one", {"fund_id": FUND, "points": 1})

    assert (refused.status, refused.body["balance"]) == (409, 0)


async def test_points_to_an_unknown_fund_is_404(city: ContractClient, full_token: str) -> None:
    answer = await city.transfer_points(full_token, "nowhere", {"fund_id": "F-999", "points": 1})

    assert answer.status == 404
    assert answer.body["reason"] == "unknown_fund"
    assert await city.balance(full_token) == 1_250


INVALID_TRANSFERS: list[Any] = [
    {"fund_id": FUND, "points": 0},
    {"fund_id": FUND, "points": -5},
    {"fund_id": FUND, "points": 1.5},
    {"fund_id": FUND, "points": "10"},
    {"fund_id": FUND, "points": True},
    {"fund_id": "", "points": 10},
    {"fund_id": FUND},
    {"points": 10},
    {"fund_id": FUND, "points": 10, "note": "x"},
    [FUND, 10],
]


@pytest.mark.parametrize("body", INVALID_TRANSFERS, ids=range(len(INVALID_TRANSFERS)))
async def test_an_invalid_transfer_is_400(city: ContractClient, full_token: str, body: Any) -> None:
    answer = await city.transfer_points(full_token, "bad", body)

    assert answer.status == 400, answer.body
    assert await city.balance(full_token) == 1_250


@pytest.mark.parametrize("key", [None, "", "with space", "k" * 65])
async def test_a_transfer_needs_a_valid_idempotence_key(
    city: ContractClient, full_token: str, key: str | None
) -> None:
    answer = await city.transfer_points(full_token, key, {"fund_id": FUND, "points": 10})

    assert answer.status == 400
    assert await city.balance(full_token) == 1_250


async def test_points_need_a_token(city: ContractClient) -> None:
    assert (await city.points(None)).status == 401
    answer = await city.transfer_points(None, "k", {"fund_id": FUND, "points": 1})
    assert answer.status == 401
