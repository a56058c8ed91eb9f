"""Top-ups at the sandbox: the services and their limits, balances, the carrier's number
check, limits and the wallet's ceiling, and a top-up paid twice with one key credited once; the
city client over the same endpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from city.client import CityClient
from domain.linking import StaticSession
from domain.payable import Payable, PayableKind
from domain.payments import PaymentRefused, PaymentStatus
from domain.topups import TopupRefused, TopupService, UnknownTopupAccount
from sandbox import SandboxServer

from .sandbox_client import ContractClient
from .test_city_client import VERIFIER, login_code, make_client

CARD, CARD_BALANCE = "0012345678", 15_000
FULLISH = "1234567890"  # 2 950 ₽ of 3 000 ₽


def topup_body(service: str, account: str, amount: int, card: str = "pm-full-4242") -> Any:
    return {"topup": {"service": service, "account": account}, "amount": amount,
            "payment_method_id": card}  # fmt: skip


async def balance(city: ContractClient, token: str, service: str, account: str) -> Any:
    return await city.request(
        "GET", "/api/v1/topup-balance", params={"service": service, "account": account}, token=token
    )


async def test_services_name_their_limits_and_the_residents_own_accounts(
    city: ContractClient, full_token: str, standard_token: str
) -> None:
    full = await city.request("GET", "/api/v1/topup-services", token=full_token)
    by_code = {s["code"]: s for s in full.body["services"]}
    assert by_code["troika"]["min_amount"] == 100
    assert by_code["troika"]["max_amount"] == by_code["troika"]["max_balance"] == 300_000
    assert by_code["troika"]["own_accounts"] == [CARD]
    assert by_code["parking"]["own_accounts"] == ["79161234567"]
    assert by_code["parking"]["max_balance"] is None
    standard = await city.request("GET", "/api/v1/topup-services", token=standard_token)
    assert {s["code"]: s["own_accounts"] for s in standard.body["services"]} == {
        "troika": [],
        "parking": ["79031112233"],
        "mgts": ["74997654321"],
    }
    assert (await city.request("GET", "/api/v1/topup-services")).status == 401


async def test_balance_unknown_card_and_a_number_the_carrier_never_issues(
    city: ContractClient, full_token: str
) -> None:
    known = await balance(city, full_token, "troika", CARD)
    assert (known.status, known.body["balance"]) == (200, CARD_BALANCE)
    hidden = await balance(city, full_token, "troika", "0300000000")
    assert (hidden.status, hidden.body["balance"]) == (200, None)
    unknown = await balance(city, full_token, "troika", "0000000001")
    assert (unknown.status, unknown.body["reason"]) == (404, "unknown_account")
    for bad in ("4294967296", "123456789", "1e5", "001234567²", "<b>"):
        answer = await balance(city, full_token, "troika", bad)
        assert (answer.status, answer.body["reason"]) == (400, "invalid_account"), bad
    assert (await balance(city, full_token, "parking", "74951234567")).status == 400
    assert (await balance(city, full_token, "bus", CARD)).body["reason"] == "unknown_service"


async def test_a_topup_paid_twice_with_one_key_is_credited_once(
    city: ContractClient, full_token: str
) -> None:
    body = topup_body("troika", CARD, 50_000)
    first = await city.pay(full_token, "topup-1", body)
    again = await city.pay(full_token, "topup-1", body)

    assert (first.status, again.status) == (201, 200)
    assert again.body == first.body
    assert first.body["status"] == "succeeded"
    assert first.body["topup"] == {"service": "troika", "account": CARD}
    assert first.body["receipt"]["lines"][0]["title"] == f"Пополнение карты «Тройка» № {CARD}"
    assert [c["amount"] for c in await city.ledger()] == [50_000]
    assert (await balance(city, full_token, "troika", CARD)).body[
        "balance"
    ] == CARD_BALANCE + 50_000
    # the same key for another account is another request: refused, nothing credited
    other = await city.pay(full_token, "topup-1", topup_body("troika", FULLISH, 1_000))
    assert (other.status, other.body["reason"]) == (422, "idempotency_key_reused")


async def test_amounts_outside_the_limits_and_over_the_ceiling_are_refused(
    city: ContractClient, full_token: str
) -> None:
    cases = [
        (topup_body("troika", CARD, 99), 400, "amount_out_of_limits"),
        (topup_body("troika", CARD, 300_001), 400, "amount_out_of_limits"),
        (topup_body("troika", FULLISH, 5_001), 400, "amount_out_of_limits"),  # 50 ₽ of room
        (topup_body("troika", "0000000001", 1_000), 404, "unknown_account"),
        (topup_body("troika", "9999999999", 1_000), 400, "invalid_account"),
        (topup_body("parking", "79161234567", 999), 400, "amount_out_of_limits"),
        (topup_body("metro", CARD, 1_000), 404, "unknown_service"),
    ]
    for number, (body, status, reason) in enumerate(cases):
        answer = await city.pay(full_token, f"refused-{number}", body)
        assert (answer.status, answer.body["reason"]) == (status, reason), body
    room = await city.pay(full_token, "refused-0", topup_body("troika", FULLISH, 5_001))
    assert (room.body["min_amount"], room.body["max_amount"]) == (100, 5_000)
    assert await city.ledger() == []  # a refused request binds no key and charges nothing
    fits = await city.pay(full_token, "fits", topup_body("troika", FULLISH, 5_000))
    assert fits.body["status"] == "succeeded"
    full = await city.pay(full_token, "full", topup_body("troika", FULLISH, 100))
    assert (full.body["reason"], full.body["max_amount"]) == ("amount_out_of_limits", 0)
    invalid = await city.pay(
        full_token, "mixed", {**topup_body("troika", CARD, 1_000), "fund_id": "F-101"}
    )
    assert invalid.status == 400


async def test_a_pending_topup_is_canceled_when_the_card_filled_up_meanwhile(
    city: ContractClient, full_token: str
) -> None:
    body = {"topup": {"service": "troika", "account": FULLISH}, "amount": 5_000}
    pending = await city.pay(full_token, "page", body)
    assert pending.body["status"] == "pending"
    filled = await city.request(
        "PATCH",
        "/sandbox/topup-accounts",
        json={"service": "troika", "account": FULLISH, "balance": 299_000},
    )
    assert filled.status == 200
    form = {"card_number": "4242 4242 4242 4242"}
    await city.request(
        "POST", f"/pay/{pending.body['id']}", data=form, check=False, template="/pay/{payment_id}"
    )
    after = await city.payment(full_token, pending.body["id"])
    assert after.body["status"] == "canceled"
    assert await city.ledger() == []
    assert (await balance(city, full_token, "troika", FULLISH)).body["balance"] == 299_000


@pytest.fixture
async def client(sandbox: SandboxServer) -> AsyncIterator[CityClient]:
    city = make_client(sandbox)
    yield city
    await city.close()


async def test_the_city_client_reads_services_balances_and_pays_a_topup(
    client: CityClient,
) -> None:
    tokens = await client.exchange_code(
        code=await login_code(client, "demo-full"), code_verifier=VERIFIER
    )
    session = StaticSession(tokens)
    services = {s.code: s for s in await client.topup_services(session)}
    assert services[TopupService.TROIKA].own_accounts == (CARD,)
    assert services[TopupService.PARKING].limits.max_balance is None
    assert (await client.topup_balance(session, TopupService.TROIKA, CARD)).balance == CARD_BALANCE
    with pytest.raises(UnknownTopupAccount):
        await client.topup_balance(session, TopupService.TROIKA, "0000000001")
    with pytest.raises(TopupRefused):
        await client.topup_balance(session, TopupService.TROIKA, "9999999999")
    payable = Payable.top_up("parking", "79161234567")
    payment = await client.create_payment(
        session, "client-topup", payable=payable, amount=30_000, method_id="pm-full-4242"
    )
    assert payment.status is PaymentStatus.SUCCEEDED
    assert payment.payable == payable and payment.payable.kind is PayableKind.TOPUP
    assert (await client.find_payment(session, "client-topup")) == payment
    with pytest.raises(PaymentRefused) as refused:
        await client.create_payment(
            session,
            "client-topup-2",
            payable=Payable.top_up("troika", FULLISH),
            amount=100_000,
            method_id="pm-full-4242",
        )
    assert refused.value.reason == "amount_out_of_limits"
