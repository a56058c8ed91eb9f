"""Exactly-once payments: replays, concurrent duplicates, lost answers and reconciliation."""

from __future__ import annotations

import asyncio
from typing import Any

from .sandbox_client import ContractClient, FakeClock

FINE, FINE_AMOUNT = "B-1002", 50_000
MGTS, MGTS_AMOUNT = "B-1003", 89_000
CLUB, CLUB_AMOUNT = "B-1006", 450_000


def card_body(bill_ids: list[str], amount: int, card: str = "pm-full-4242") -> dict[str, Any]:
    return {"bill_ids": bill_ids, "amount": amount, "payment_method_id": card}


async def test_the_same_key_and_body_is_the_same_payment_charged_once(
    city: ContractClient, full_token: str, clock: FakeClock
) -> None:
    first = await city.pay(full_token, "replay-1", card_body([FINE], FINE_AMOUNT))
    clock.advance(60)
    again = await city.pay(full_token, "replay-1", card_body([FINE], FINE_AMOUNT))

    assert (first.status, again.status) == (201, 200)
    assert again.body == first.body  # the same payment, not a new one (nor a new time)
    assert first.body["status"] == "succeeded"
    assert [c["payment_id"] for c in await city.ledger()] == [first.body["id"]]
    assert len((await city.payments(full_token)).body["payments"]) == 1


async def test_a_replay_of_a_declined_payment_does_not_try_the_card_again(
    city: ContractClient, full_token: str
) -> None:
    body = card_body([FINE], FINE_AMOUNT, "pm-full-0002")
    first = await city.pay(full_token, "declined-1", body)

    again = await city.pay(full_token, "declined-1", body)

    assert first.body["status"] == "declined"
    assert (again.status, again.body) == (200, first.body)
    # Another attempt needs another key.
    other = await city.pay(full_token, "declined-2", card_body([FINE], FINE_AMOUNT))
    assert (other.status, other.body["status"]) == (201, "succeeded")
    assert [c["idempotence_key"] for c in await city.ledger()] == ["declined-2"]


async def test_an_omitted_nullable_field_is_the_same_body_as_null(
    city: ContractClient, full_token: str
) -> None:
    first = await city.pay(full_token, "nulls", {"bill_ids": [FINE], "amount": FINE_AMOUNT})

    again = await city.pay(
        full_token,
        "nulls",
        {
            "bill_ids": [FINE],
            "amount": FINE_AMOUNT,
            "payment_method_id": None,
            "external_charge": None,
        },
    )

    assert (again.status, again.body["id"]) == (200, first.body["id"])


async def test_two_identical_requests_at_once_charge_once(
    city: ContractClient, full_token: str
) -> None:
    body = card_body([FINE, MGTS], FINE_AMOUNT + MGTS_AMOUNT)

    answers = await asyncio.gather(
        city.pay(full_token, "double-tap", body), city.pay(full_token, "double-tap", body)
    )

    assert sorted(answer.status for answer in answers) == [200, 201]
    assert answers[0].body == answers[1].body
    ledger = await city.ledger()
    assert [(c["payment_id"], c["amount"]) for c in ledger] == [
        (answers[0].body["id"], FINE_AMOUNT + MGTS_AMOUNT)
    ]


async def test_two_keys_for_the_same_bill_at_once_charge_once(
    city: ContractClient, full_token: str
) -> None:
    body = card_body([CLUB], CLUB_AMOUNT)

    answers = await asyncio.gather(*(city.pay(full_token, f"tab-{n}", body) for n in range(3)))

    assert sorted(answer.status for answer in answers) == [201, 409, 409]
    assert {a.body["reason"] for a in answers if a.status == 409} == {"already_paid"}
    assert len(await city.ledger()) == 1


async def test_the_same_key_with_another_body_is_422(city: ContractClient, full_token: str) -> None:
    first = await city.pay(full_token, "reused", card_body([FINE], FINE_AMOUNT))

    for body in (
        card_body([MGTS], MGTS_AMOUNT),
        card_body([FINE], FINE_AMOUNT, "pm-full-0002"),
        {"bill_ids": [FINE], "amount": FINE_AMOUNT},
    ):
        answer = await city.pay(full_token, "reused", body)
        assert answer.status == 422, body
        assert answer.body["reason"] == "idempotency_key_reused"
        assert answer.body["payment_id"] == first.body["id"]

    assert len(await city.ledger()) == 1
    assert (await city.bill(full_token, MGTS))["status"] == "unpaid"


async def test_keys_are_per_resident(
    city: ContractClient, full_token: str, standard_token: str
) -> None:
    mine = await city.pay(full_token, "shared-key", card_body([FINE], FINE_AMOUNT))

    theirs = await city.pay(
        standard_token, "shared-key", card_body(["B-2002"], 69_000, "pm-std-4242")
    )

    assert (mine.status, theirs.status) == (201, 201)
    assert mine.body["id"] != theirs.body["id"]
    assert [c["account_id"] for c in await city.ledger()] == ["C-100003", "C-100002"]


async def test_a_lost_answer_after_the_charge_is_recovered_by_the_same_key(
    city: ContractClient, full_token: str
) -> None:
    faults = await city.put_faults({"fail_after_processing": 1})
    assert faults.body == {"fail_after_processing": 1}
    body = card_body([FINE], FINE_AMOUNT)

    lost = await city.pay(full_token, "lost-1", body)

    assert lost.status == 504
    assert lost.body["code"] == 504
    ledger = await city.ledger()
    assert [(c["idempotence_key"], c["amount"]) for c in ledger] == [("lost-1", FINE_AMOUNT)]
    # Only one answer was to be lost: reconciling by key works, and so does the retry.
    found = await city.payments(full_token, idempotence_key="lost-1")
    assert [p["id"] for p in found.body["payments"]] == [ledger[0]["payment_id"]]
    retried = await city.pay(full_token, "lost-1", body)
    assert retried.status == 200
    assert (retried.body["id"], retried.body["status"]) == (ledger[0]["payment_id"], "succeeded")
    assert len(await city.ledger()) == 1
    assert (await city.bill(full_token, FINE))["status"] == "paid"


async def test_lost_answers_count_down_and_spare_everything_but_the_api(
    city: ContractClient, full_token: str
) -> None:
    await city.put_faults({"fail_after_processing": 2})

    assert (await city.request("GET", "/sandbox/residents")).status == 200
    relinked = await city.login("demo-standard")  # OAuth is not affected
    statuses = [(await city.profile(relinked.access_token)).status for _ in range(3)]

    assert statuses == [504, 504, 200]
    assert (await city.payment_methods(full_token)).status == 200


async def test_a_status_fault_processes_nothing(city: ContractClient, full_token: str) -> None:
    await city.put_faults({"status": 503, "fail_after_processing": 1})

    failing = await city.pay(full_token, "unprocessed", card_body([FINE], FINE_AMOUNT))

    assert failing.status == 503
    assert await city.ledger() == []
    await city.put_faults({})
    assert (await city.payments(full_token)).body["payments"] == []


async def test_invalid_lost_answer_counts_are_400(city: ContractClient) -> None:
    for value in (-1, 1001, 1.5, "2", True):
        answer = await city.put_faults({"fail_after_processing": value})
        assert answer.status == 400, value


# ---------------------------------------------------------------- history


async def test_history_is_newest_first_with_limit_and_key_filter(
    city: ContractClient, full_token: str, standard_token: str, clock: FakeClock
) -> None:
    made = []
    for key, bill_id, amount in (
        ("h-1", FINE, FINE_AMOUNT),
        ("h-2", MGTS, MGTS_AMOUNT),
        ("h-3", CLUB, CLUB_AMOUNT),
    ):
        made.append((await city.pay(full_token, key, card_body([bill_id], amount))).body)
        clock.advance(30)

    every = (await city.payments(full_token)).body["payments"]
    two = (await city.payments(full_token, limit="2")).body["payments"]
    by_key = (await city.payments(full_token, idempotence_key="h-2")).body["payments"]
    unknown_key = (await city.payments(full_token, idempotence_key="h-9")).body["payments"]

    assert [p["id"] for p in every] == [p["id"] for p in reversed(made)]
    assert [p["created_at"] for p in every] == sorted((p["created_at"] for p in made), reverse=True)
    assert every[0]["created_at"] > every[-1]["created_at"]
    assert two == every[:2]
    assert by_key == [made[1]]
    assert unknown_key == []
    assert (await city.payments(standard_token)).body["payments"] == []


async def test_history_holds_twenty_by_default(city: ContractClient, full_token: str) -> None:
    for n in range(22):
        answer = await city.pay(
            full_token, f"many-{n}", {"bill_ids": [FINE], "amount": FINE_AMOUNT}
        )
        assert answer.status == 201

    default = (await city.payments(full_token)).body["payments"]
    hundred = (await city.payments(full_token, limit="100")).body["payments"]

    assert [p["idempotence_key"] for p in default] == [f"many-{n}" for n in range(21, 1, -1)]
    assert len(hundred) == 22


async def test_history_refuses_bad_parameters(city: ContractClient, full_token: str) -> None:
    for params in (
        {"limit": "0"},
        {"limit": "101"},
        {"limit": "ten"},
        {"limit": "-1"},
        {"idempotence_key": "a b"},
    ):
        answer = await city.payments(full_token, **params)
        assert answer.status == 400, params
