"""Payments at the sandbox: saved cards, test-card outcomes, refusals, requisites, Telegram."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox import SandboxServer

from .sandbox_client import ContractClient

FINE = "B-1002"  # demo-full, unpaid traffic fine, 500 ₽
FINE_AMOUNT = 50_000
EPD, EPD_AMOUNT = "B-1001", 812_450
MGTS, MGTS_AMOUNT = "B-1003", 89_000
PAID_EPD = "B-1013"  # demo-full, paid in the demo data


def bills_body(bill_ids: list[str], amount: int, **extra: Any) -> dict[str, Any]:
    return {"bill_ids": bill_ids, "amount": amount, **extra}


EPD_REQUISITES = {
    "payee_name": "ЕИРЦ «Городской расчётный центр»",
    "payee_inn": "7701234567",
    "personal_acc": "40702810938000012345",
    "bic": "044525225",
    "purpose": "Оплата ЕПД за 02.2026",
    "pers_acc": "8215604937",
    "period": "02.2026",
    "uin": None,
}


# ---------------------------------------------------------------- saved payment methods


async def test_each_resident_has_their_own_saved_cards(city: ContractClient) -> None:
    seen = {}
    for login in ("demo-full", "demo-standard", "demo-simple"):
        token = (await city.login(login)).access_token
        answer = await city.payment_methods(token)
        assert answer.status == 200
        seen[login] = answer.body["methods"]

    assert [m["id"] for m in seen["demo-full"]] == [
        "pm-full-4242",
        "pm-full-0002",
        "pm-full-9995",
        "pm-full-3220",
    ]
    assert [m["is_default"] for m in seen["demo-full"]] == [True, False, False, False]
    assert [(m["id"], m["last4"], m["is_default"]) for m in seen["demo-standard"]] == [
        ("pm-std-4242", "4242", True)
    ]
    assert seen["demo-simple"] == []
    for method in seen["demo-full"]:
        assert method["last4"] == method["id"][-4:]


async def test_payment_methods_need_a_token(city: ContractClient) -> None:
    answer = await city.payment_methods(None)

    assert answer.status == 401


# ---------------------------------------------------------------- test cards, saved


@pytest.mark.parametrize(
    ("method_id", "status"),
    [
        ("pm-full-4242", "succeeded"),
        ("pm-full-0002", "declined"),
        ("pm-full-9995", "insufficient_funds"),
    ],
)
async def test_a_saved_card_behaves_like_its_number(
    city: ContractClient, full_token: str, method_id: str, status: str
) -> None:
    body = bills_body([FINE], FINE_AMOUNT, payment_method_id=method_id)

    answer = await city.pay(full_token, "key-saved-1", body)

    assert answer.status == 201
    payment = answer.body
    assert payment["status"] == status
    assert (payment["amount"], payment["bill_ids"]) == (FINE_AMOUNT, [FINE])
    assert payment["payment_method_id"] == method_id
    assert payment["card_last4"] == method_id[-4:]
    assert payment["confirmation_url"] is None
    assert payment["idempotence_key"] == "key-saved-1"
    assert answer.headers["Location"] == f"/api/v1/payments/{payment['id']}"
    assert (await city.payment(full_token, payment["id"])).body == payment
    ledger = await city.ledger()
    bill = await city.bill(full_token, FINE)
    if status == "succeeded":
        assert [(c["payment_id"], c["amount"], c["card_last4"]) for c in ledger] == [
            (payment["id"], FINE_AMOUNT, "4242")
        ]
        assert ledger[0]["idempotence_key"] == "key-saved-1"
        assert ledger[0]["account_id"] == "C-100003"
        assert bill["status"] == "paid"
        assert payment["receipt"]["total"] == FINE_AMOUNT
    else:
        assert ledger == []
        assert bill["status"] == "unpaid"
        assert payment["receipt"] is None


async def test_several_bills_in_one_payment_get_one_receipt(
    city: ContractClient, full_token: str
) -> None:
    unpaid_before = (await city.bills(full_token)).body["bills"]
    body = bills_body([EPD, MGTS], EPD_AMOUNT + MGTS_AMOUNT, payment_method_id="pm-full-4242")

    payment = (await city.pay(full_token, "two-bills", body)).body

    assert payment["status"] == "succeeded"
    receipt = payment["receipt"]
    assert receipt["total"] == EPD_AMOUNT + MGTS_AMOUNT
    assert receipt["card_last4"] == "4242"
    assert receipt["issued_at"] == payment["updated_at"]
    by_id = {bill["id"]: bill for bill in unpaid_before}
    assert [(line["bill_id"], line["amount"], line["title"]) for line in receipt["lines"]] == [
        (EPD, EPD_AMOUNT, by_id[EPD]["title"]),
        (MGTS, MGTS_AMOUNT, by_id[MGTS]["title"]),
    ]
    assert [line["provider"] for line in receipt["lines"]] == [
        by_id[EPD]["provider"],
        by_id[MGTS]["provider"],
    ]
    unpaid_after = (await city.bills(full_token)).body["bills"]
    assert {b["id"] for b in unpaid_before} - {b["id"] for b in unpaid_after} == {EPD, MGTS}
    assert [c["amount"] for c in await city.ledger()] == [EPD_AMOUNT + MGTS_AMOUNT]


async def test_a_receipt_line_carries_the_bills_uin(city: ContractClient, full_token: str) -> None:
    uin = (await city.bill(full_token, FINE))["uin"]

    payment = (
        await city.pay(
            full_token, "fine", bills_body([FINE], FINE_AMOUNT, payment_method_id="pm-full-4242")
        )
    ).body

    assert payment["receipt"]["lines"][0]["uin"] == uin
    assert uin is not None


# ---------------------------------------------------------------- refusals


async def test_an_already_paid_bill_is_409_and_nothing_is_charged(
    city: ContractClient, full_token: str
) -> None:
    body = bills_body([EPD, PAID_EPD], 10_000_000, payment_method_id="pm-full-4242")

    answer = await city.pay(full_token, "with-paid", body)

    assert answer.status == 409
    assert answer.body["reason"] == "already_paid"
    assert answer.body["bill_ids"] == [PAID_EPD]
    assert await city.ledger() == []
    assert (await city.bill(full_token, EPD))["status"] == "unpaid"


async def test_a_bill_paid_elsewhere_is_409_already_paid(
    city: ContractClient, full_token: str
) -> None:
    patched = await city.patch_bill(MGTS, {"status": "paid"})
    assert patched.status == 200
    assert patched.body["status"] == "paid"

    answer = await city.pay(
        full_token, "paid-elsewhere", bills_body([MGTS], MGTS_AMOUNT, payment_method_id=None)
    )

    assert answer.status == 409
    assert (answer.body["reason"], answer.body["bill_ids"]) == ("already_paid", [MGTS])
    assert (await city.payments(full_token)).body["payments"] == []


async def test_a_reissued_bill_is_409_amount_changed_and_the_key_stays_free(
    city: ContractClient, full_token: str
) -> None:
    patched = await city.patch_bill(FINE, {"amount": 75_000})
    assert patched.body["amount"] == 75_000

    body = bills_body([FINE, MGTS], FINE_AMOUNT + MGTS_AMOUNT, payment_method_id="pm-full-4242")
    refused = await city.pay(full_token, "reissued", body)

    assert refused.status == 409
    assert refused.body["reason"] == "amount_changed"
    assert refused.body["bill_ids"] == [FINE, MGTS]
    assert refused.body["amount"] == 75_000 + MGTS_AMOUNT
    assert await city.ledger() == []
    # A refusal binds no key: the resident confirms the new total with the same key.
    retried = await city.pay(full_token, "reissued", {**body, "amount": refused.body["amount"]})
    assert retried.status == 201
    assert retried.body["status"] == "succeeded"
    assert [c["amount"] for c in await city.ledger()] == [75_000 + MGTS_AMOUNT]


async def test_another_residents_or_an_unknown_bill_is_404(
    city: ContractClient, full_token: str, standard_token: str
) -> None:
    for bill_ids in ([EPD], ["B-2001", "B-9999"]):
        answer = await city.pay(
            standard_token, "not-mine", bills_body(bill_ids, EPD_AMOUNT, payment_method_id=None)
        )
        assert answer.status == 404, bill_ids
        assert answer.body["reason"] == "unknown_bill"
        assert answer.body["bill_ids"] == [b for b in bill_ids if b != "B-2001"]

    assert await city.ledger() == []
    assert (await city.bill(full_token, EPD))["status"] == "unpaid"


async def test_another_residents_or_an_unknown_card_is_404(
    city: ContractClient, standard_token: str
) -> None:
    for method_id in ("pm-full-4242", "pm-nope"):
        answer = await city.pay(
            standard_token, "card", bills_body(["B-2002"], 69_000, payment_method_id=method_id)
        )
        assert answer.status == 404, method_id
        assert answer.body["reason"] == "unknown_payment_method"
    assert await city.ledger() == []


@pytest.mark.parametrize("key", [None, "", "with space", "ключ", "k" * 65, "semi;colon"], ids=repr)
async def test_a_missing_or_invalid_idempotence_key_is_400(
    city: ContractClient, full_token: str, key: str | None
) -> None:
    answer = await city.pay(full_token, key, bills_body([FINE], FINE_AMOUNT))

    assert answer.status == 400
    assert answer.body["code"] == 400
    assert (await city.payments(full_token)).body["payments"] == []


async def test_the_longest_idempotence_key_is_fine(city: ContractClient, full_token: str) -> None:
    answer = await city.pay(full_token, "K_-9" * 16, bills_body([FINE], FINE_AMOUNT))

    assert answer.status == 201


INVALID_BODIES: list[Any] = [
    bills_body([FINE], 0),
    bills_body([FINE], -50_000),
    bills_body([FINE], "50000"),
    bills_body([FINE], 500.0),
    bills_body([FINE], True),
    {"bill_ids": [FINE]},
    {"amount": FINE_AMOUNT},
    {"bill_ids": [FINE], "requisites": EPD_REQUISITES, "amount": FINE_AMOUNT},
    bills_body([], FINE_AMOUNT),
    bills_body([FINE, FINE], FINE_AMOUNT * 2),
    bills_body([FINE], FINE_AMOUNT, tip=100),
    bills_body(
        [FINE],
        FINE_AMOUNT,
        payment_method_id="pm-full-4242",
        external_charge={"provider": "telegram", "charge_id": "c-1"},
    ),
    bills_body([FINE], FINE_AMOUNT, external_charge={"provider": "stripe", "charge_id": "c"}),
    bills_body([FINE], FINE_AMOUNT, external_charge={"provider": "telegram", "charge_id": ""}),
    {"requisites": {**EPD_REQUISITES, "bic": "04452522"}, "amount": 100},
    {"requisites": {**EPD_REQUISITES, "personal_acc": "4070281093800001234"}, "amount": 100},
    {"requisites": {**EPD_REQUISITES, "period": "13.2026"}, "amount": 100},
    {"requisites": {**EPD_REQUISITES, "uin": "18810177200718000123"}, "amount": 100},
    {"requisites": {**EPD_REQUISITES, "payee_name": " "}, "amount": 100},
    {"requisites": {**EPD_REQUISITES, "kbk": "1"}, "amount": 100},
    [FINE],
    None,
]


@pytest.mark.parametrize("body", INVALID_BODIES, ids=range(len(INVALID_BODIES)))
async def test_an_invalid_body_is_400_and_binds_no_key(
    city: ContractClient, full_token: str, body: Any
) -> None:
    answer = await city.pay(full_token, "invalid-body", body)

    assert answer.status == 400, answer.body
    assert answer.body["code"] == 400
    valid = await city.pay(full_token, "invalid-body", bills_body([FINE], FINE_AMOUNT))
    assert valid.status == 201


async def test_a_body_that_is_not_json_is_400(city: ContractClient, full_token: str) -> None:
    answer = await city.request(
        "POST",
        "/api/v1/payments",
        data="{not json",
        token=full_token,
        headers={"Idempotence-Key": "k", "Content-Type": "application/json"},
    )

    assert answer.status == 400


async def test_payments_need_a_token(city: ContractClient) -> None:
    for answer in (
        await city.pay(None, "k", bills_body([FINE], FINE_AMOUNT)),
        await city.payments(None),
        await city.payment(None, "anything"),
    ):
        assert answer.status == 401
    assert await city.ledger() == []


# ---------------------------------------------------------------- requisites


async def test_a_payment_by_requisites_charges_and_leaves_the_bills_alone(
    city: ContractClient, standard_token: str
) -> None:
    body = {"requisites": EPD_REQUISITES, "amount": 623_790, "payment_method_id": "pm-std-4242"}
    unpaid_before = (await city.bills(standard_token)).body["bills"]

    answer = await city.pay(standard_token, "epd-qr", body)

    assert answer.status == 201
    payment = answer.body
    assert payment["status"] == "succeeded"
    assert (payment["bill_ids"], payment["requisites"]) == ([], EPD_REQUISITES)
    assert payment["receipt"]["lines"] == [
        {
            "title": "Оплата ЕПД за 02.2026",
            "provider": "ЕИРЦ «Городской расчётный центр»",
            "amount": 623_790,
            "uin": None,
            "bill_id": None,
        }
    ]
    assert [(c["account_id"], c["amount"]) for c in await city.ledger()] == [("C-100002", 623_790)]
    assert (await city.bills(standard_token)).body["bills"] == unpaid_before


async def test_requisites_may_omit_the_nullable_fields(
    city: ContractClient, standard_token: str
) -> None:
    short = {k: v for k, v in EPD_REQUISITES.items() if k not in ("pers_acc", "period", "uin")}
    fine_uin = "18810177200718000127"  # the reference UIN, corrected

    answer = await city.pay(
        standard_token,
        "short-requisites",
        {"requisites": {**short, "uin": fine_uin}, "amount": 150_000},
    )

    assert answer.status == 201
    assert answer.body["status"] == "pending"  # no card: the hosted page
    assert answer.body["requisites"] == {**short, "pers_acc": None, "period": None, "uin": fine_uin}


# ---------------------------------------------------------------- Telegram Payments


async def test_an_external_charge_is_registered_once(city: ContractClient, full_token: str) -> None:
    charge = {"provider": "telegram", "charge_id": "tg-provider-charge-7781"}
    body = bills_body([FINE], FINE_AMOUNT, external_charge=charge)

    first = await city.pay(full_token, "tg-1", body)
    again = await city.pay(full_token, "tg-1", body)
    other_key = await city.pay(
        full_token, "tg-2", bills_body([MGTS], MGTS_AMOUNT, external_charge=charge)
    )

    assert first.status == 201
    payment = first.body
    assert payment["status"] == "succeeded"
    assert (payment["card_last4"], payment["payment_method_id"]) == (None, None)
    assert payment["receipt"]["card_last4"] is None
    assert (again.status, again.body) == (200, payment)
    assert other_key.status == 409
    assert other_key.body["reason"] == "already_registered"
    assert other_key.body["payment_id"] == payment["id"]
    ledger = await city.ledger()
    assert [(c["payment_id"], c["external_charge_id"], c["card_last4"]) for c in ledger] == [
        (payment["id"], "tg-provider-charge-7781", None)
    ]
    assert (await city.bill(full_token, FINE))["status"] == "paid"
    assert (await city.bill(full_token, MGTS))["status"] == "unpaid"


# ---------------------------------------------------------------- one payment, one sandbox


async def test_a_payment_is_the_residents_own(
    city: ContractClient, full_token: str, standard_token: str
) -> None:
    payment = (await city.pay(full_token, "mine", bills_body([FINE], FINE_AMOUNT))).body

    assert (await city.payment(full_token, payment["id"])).status == 200
    stranger = await city.payment(standard_token, payment["id"])
    assert stranger.status == 404
    assert (await city.payment(full_token, "no-such-payment")).status == 404
    assert (await city.payments(standard_token)).body["payments"] == []


async def test_bill_patches_are_checked(city: ContractClient) -> None:
    patch: Any
    for patch in ({}, {"status": "overdue"}, {"amount": 0}, {"amount": "1"}, {"due": 1}, []):
        answer = await city.patch_bill(FINE, patch)
        assert answer.status == 400, patch
    assert (await city.patch_bill("B-9999", {"status": "paid"})).status == 404


async def test_two_sandboxes_share_no_payments(
    city: ContractClient, full_token: str, sandbox: SandboxServer
) -> None:
    await city.pay(
        full_token, "here", bills_body([FINE], FINE_AMOUNT, payment_method_id="pm-full-4242")
    )

    async with SandboxServer() as other_server:
        other = ContractClient(city.http, other_server.url)
        other_token = (await other.login("demo-full")).access_token
        assert await other.ledger() == []
        assert (await other.bill(other_token, FINE))["status"] == "unpaid"
    assert len(await city.ledger()) == 1
