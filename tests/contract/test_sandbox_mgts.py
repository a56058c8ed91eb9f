"""МГТС at the sandbox as a service taking a fixed amount: listed among the services taking a
payment of any amount to an account (`mgts`, its limits, `fixed_amount`), while ЕПД,
kindergartens and clubs are not; a number that is not a Moscow landline refused; a payment sent
twice with one key credited once; the city client reads the flag."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from city.client import CityClient
from domain.bills import BillKind
from domain.linking import StaticSession
from domain.payable import Payable
from domain.payments import PaymentStatus
from domain.topups import TopupService, fixed_amount_service
from sandbox import SandboxServer

from .sandbox_client import ContractClient
from .test_city_client import VERIFIER, login_code, make_client
from .test_sandbox_topups import balance, topup_body

PHONE, PHONE_BALANCE = "74951234567", 12_000  # demo-full's МГТС number, a 120 ₽ advance


async def test_mgts_is_listed_with_its_limits_and_the_fixed_amount_flag(
    city: ContractClient, full_token: str, standard_token: str
) -> None:
    full = await city.request("GET", "/api/v1/topup-services", token=full_token)
    by_code = {s["code"]: s for s in full.body["services"]}
    mgts = by_code["mgts"]
    assert (mgts["min_amount"], mgts["max_amount"], mgts["max_balance"]) == (100, 1_500_000, None)
    assert mgts["fixed_amount"] is True and mgts["own_accounts"] == [PHONE]
    assert mgts["title"] == "Телефон и интернет МГТС"
    assert all(s["fixed_amount"] is True for s in by_code.values())
    # only issued bills for these: not among the services taking any amount
    assert not {"epd", "kindergarten", "club"} & set(by_code)
    standard = await city.request("GET", "/api/v1/topup-services", token=standard_token)
    assert {s["code"]: s["own_accounts"] for s in standard.body["services"]}["mgts"] == [
        "74997654321"
    ]


async def test_a_bad_mgts_number_is_refused_and_a_known_one_shows_its_balance(
    city: ContractClient, full_token: str
) -> None:
    known = await balance(city, full_token, "mgts", PHONE)
    assert (known.status, known.body["balance"]) == (200, PHONE_BALANCE)
    unknown = await balance(city, full_token, "mgts", "74950000000")
    assert (unknown.status, unknown.body["reason"]) == (404, "unknown_account")
    # a mobile number, another city's landline, short, «²», `1e5`, markup, 5 000 digits
    for bad in ("79161234567", "78121234567", "7495123456", "7495123456²", "1e5", "<b>",
                "7" * 5000, "84951234567"):  # fmt: skip
        answer = await balance(city, full_token, "mgts", bad)
        assert (answer.status, answer.body["reason"]) == (400, "invalid_account"), bad[:20]
    # and a payment to one: refused, nothing charged
    refused = await city.pay(full_token, "mgts-bad", topup_body("mgts", "79161234567", 60_000))
    assert (refused.status, refused.body["reason"]) == (400, "invalid_account")
    # an МГТС number is no parking account either
    assert (await balance(city, full_token, "parking", PHONE)).status == 400
    for amount, reason in ((99, "amount_out_of_limits"), (1_500_001, "amount_out_of_limits")):
        answer = await city.pay(full_token, f"mgts-{amount}", topup_body("mgts", PHONE, amount))
        assert (answer.status, answer.body["reason"]) == (400, reason)
    assert await city.ledger() == []


async def test_an_mgts_payment_sent_twice_with_one_key_is_credited_once(
    city: ContractClient, full_token: str
) -> None:
    body = topup_body("mgts", PHONE, 60_000)
    first = await city.pay(full_token, "mgts-1", body)
    again = await city.pay(full_token, "mgts-1", body)
    assert (first.status, again.status) == (201, 200)
    assert again.body == first.body and first.body["status"] == "succeeded"
    assert first.body["receipt"]["lines"][0]["title"] == f"Оплата услуг МГТС, телефон {PHONE}"
    assert [c["amount"] for c in await city.ledger()] == [60_000]
    after = await balance(city, full_token, "mgts", PHONE)
    assert after.body["balance"] == PHONE_BALANCE + 60_000


@pytest.fixture
async def client(sandbox: SandboxServer) -> AsyncIterator[CityClient]:
    city = make_client(sandbox)
    yield city
    await city.close()


async def test_the_city_client_says_which_bill_service_takes_a_fixed_amount(
    client: CityClient,
) -> None:
    tokens = await client.exchange_code(
        code=await login_code(client, "demo-full"), code_verifier=VERIFIER
    )
    session = StaticSession(tokens)
    services = await client.topup_services(session)
    mgts = fixed_amount_service(services, BillKind.MGTS.value)
    assert mgts is not None and mgts.code is TopupService.MGTS
    assert (mgts.limits.min_amount, mgts.limits.max_amount) == (100, 1_500_000)
    assert mgts.own_accounts == (PHONE,)
    for kind in (BillKind.EPD, BillKind.KINDERGARTEN, BillKind.CLUB):
        assert fixed_amount_service(services, kind.value) is None
    payment = await client.create_payment(
        session,
        "client-mgts",
        payable=Payable.top_up("mgts", PHONE),
        amount=60_000,
        method_id="pm-full-4242",
    )
    assert payment.status is PaymentStatus.SUCCEEDED
