"""The hosted payment page: a new card, 3-D Secure, and `pay_on_page` (the console's browser)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from sandbox import SandboxServer
from sandbox.browser import PaymentPageError, pay_on_page
from tests.money_text import nb

from .sandbox_client import Answer, ContractClient

FINE, FINE_AMOUNT = "B-1002", 50_000
STATUS_MARK = re.compile(r'id="payment-status" data-status="([a-z_]+)"')


def page_status(page: Answer | str) -> str:
    text = page if isinstance(page, str) else page.body
    found = STATUS_MARK.search(text)
    assert found, f"no status mark in the page: {text[:300]}"
    return found.group(1)


async def new_card_payment(city: ContractClient, token: str, key: str = "page-1") -> dict[str, Any]:
    answer = await city.pay(token, key, {"bill_ids": [FINE], "amount": FINE_AMOUNT})
    assert answer.status == 201, answer.body
    return answer.body  # type: ignore[no-any-return]


# ---------------------------------------------------------------- a new card


async def test_a_payment_without_a_card_waits_on_the_hosted_page(
    city: ContractClient, full_token: str, sandbox: SandboxServer
) -> None:
    payment = await new_card_payment(city, full_token)

    assert payment["status"] == "pending"
    assert payment["confirmation_url"] == f"{sandbox.url}/pay/{payment['id']}"
    assert (payment["card_last4"], payment["receipt"], payment["payment_method_id"]) == (
        None,
        None,
        None,
    )
    page = await city.pay_page(payment["confirmation_url"])
    assert page.status == 200
    assert 'name="card_number"' in page.body
    assert nb("500,00 ₽") in page.body
    assert page_status(page) == "pending"
    assert await city.ledger() == []
    assert (await city.bill(full_token, FINE))["status"] == "unpaid"


async def test_a_good_new_card_pays(city: ContractClient, full_token: str) -> None:
    payment = await new_card_payment(city, full_token)

    result = await city.pay_page(
        payment["confirmation_url"], {"card_number": "4242 4242 4242 4242"}
    )

    assert result.status == 200
    assert page_status(result) == "succeeded"
    assert "Оплата прошла" in result.body
    now = (await city.payment(full_token, payment["id"])).body
    assert (now["status"], now["card_last4"], now["confirmation_url"]) == (
        "succeeded",
        "4242",
        None,
    )
    assert now["receipt"]["lines"][0]["bill_id"] == FINE
    assert now["updated_at"] >= now["created_at"]
    ledger = await city.ledger()
    assert [(c["payment_id"], c["card_last4"], c["amount"]) for c in ledger] == [
        (payment["id"], "4242", FINE_AMOUNT)
    ]
    assert (await city.bill(full_token, FINE))["status"] == "paid"
    # The page cannot be paid twice.
    assert (await city.pay_page(payment["confirmation_url"])).status == 409
    again = await city.pay_page(payment["confirmation_url"], {"card_number": "4242424242424242"})
    assert again.status == 409
    assert len(await city.ledger()) == 1


@pytest.mark.parametrize(
    ("card", "status", "words"),
    [
        ("4000000000000002", "declined", "Банк отклонил"),
        ("4000000000009995", "insufficient_funds", "Недостаточно средств"),
        ("4000000000000069", "expired_card", "Срок действия карты истёк"),
    ],
)
async def test_a_failing_new_card_charges_nothing(
    city: ContractClient, full_token: str, card: str, status: str, words: str
) -> None:
    payment = await new_card_payment(city, full_token)

    result = await city.pay_page(payment["confirmation_url"], {"card_number": card})

    assert result.status == 200
    assert page_status(result) == status
    assert words in result.body
    now = (await city.payment(full_token, payment["id"])).body
    assert (now["status"], now["card_last4"], now["receipt"]) == (status, card[-4:], None)
    assert await city.ledger() == []
    assert (await city.bill(full_token, FINE))["status"] == "unpaid"


@pytest.mark.parametrize("card", ["4242424242424241", "4242", "карта", "", "4242-4242-4242-424x"])
async def test_a_bad_card_number_is_400_and_the_payment_stays_pending(
    city: ContractClient, full_token: str, card: str
) -> None:
    payment = await new_card_payment(city, full_token)

    refused = await city.pay_page(payment["confirmation_url"], {"card_number": card})

    assert refused.status == 400
    assert "Неверный номер карты" in refused.body
    assert (await city.payment(full_token, payment["id"])).body["status"] == "pending"
    fixed = await city.pay_page(payment["confirmation_url"], {"card_number": "4242-4242-4242-4242"})
    assert page_status(fixed) == "succeeded"


async def test_the_resident_can_give_up_on_the_card_form(
    city: ContractClient, full_token: str
) -> None:
    payment = await new_card_payment(city, full_token)

    result = await city.pay_page(payment["confirmation_url"], {"action": "reject"})

    assert (result.status, page_status(result)) == (200, "canceled")
    now = (await city.payment(full_token, payment["id"])).body
    assert (now["status"], now["confirmation_url"]) == ("canceled", None)
    assert await city.ledger() == []


async def test_a_bill_paid_while_the_page_was_open_cancels_the_payment(
    city: ContractClient, full_token: str
) -> None:
    payment = await new_card_payment(city, full_token)
    await city.patch_bill(FINE, {"status": "paid"})

    result = await city.pay_page(payment["confirmation_url"], {"card_number": "4242424242424242"})

    assert result.status == 409
    assert page_status(result) == "canceled"
    assert (await city.payment(full_token, payment["id"])).body["status"] == "canceled"
    assert await city.ledger() == []


async def test_an_unknown_payment_page(city: ContractClient) -> None:
    url = city.base_url + "/pay/no-such-payment"

    assert (await city.pay_page(url)).status == 404
    assert (await city.pay_page(url, {"card_number": "4242424242424242"})).status == 400
    assert await city.ledger() == []


async def test_the_page_works_while_the_api_is_failing(
    city: ContractClient, full_token: str
) -> None:
    payment = await new_card_payment(city, full_token)
    await city.put_faults({"status": 503})

    result = await city.pay_page(payment["confirmation_url"], {"card_number": "4242424242424242"})

    assert page_status(result) == "succeeded"
    await city.put_faults({})
    assert len(await city.ledger()) == 1


# ---------------------------------------------------------------- 3-D Secure


async def test_a_saved_card_asking_for_3ds_pays_once_confirmed(
    city: ContractClient, full_token: str, sandbox: SandboxServer
) -> None:
    answer = await city.pay(
        full_token,
        "3ds",
        {"bill_ids": [FINE], "amount": FINE_AMOUNT, "payment_method_id": "pm-full-3220"},
    )
    payment = answer.body

    assert (answer.status, payment["status"], payment["card_last4"]) == (201, "pending", "3220")
    assert payment["confirmation_url"] == f"{sandbox.url}/pay/{payment['id']}"
    assert await city.ledger() == []
    page = await city.pay_page(payment["confirmation_url"])
    assert page.status == 200
    assert "3-D Secure" in page.body
    assert 'value="confirm"' in page.body and 'value="reject"' in page.body
    assert 'name="card_number"' not in page.body

    result = await city.pay_page(payment["confirmation_url"], {"action": "confirm"})

    assert (result.status, page_status(result)) == (200, "succeeded")
    ledger = await city.ledger()
    assert [(c["payment_id"], c["card_last4"]) for c in ledger] == [(payment["id"], "3220")]
    assert (await city.bill(full_token, FINE))["status"] == "paid"
    assert (await city.payment(full_token, payment["id"])).body["receipt"]["card_last4"] == "3220"


async def test_a_rejected_3ds_cancels_the_payment(city: ContractClient, full_token: str) -> None:
    payment = (
        await city.pay(
            full_token,
            "3ds-no",
            {"bill_ids": [FINE], "amount": FINE_AMOUNT, "payment_method_id": "pm-full-3220"},
        )
    ).body

    result = await city.pay_page(payment["confirmation_url"], {"action": "reject"})

    assert (result.status, page_status(result)) == (200, "canceled")
    assert (await city.payment(full_token, payment["id"])).body["status"] == "canceled"
    assert await city.ledger() == []
    assert (await city.bill(full_token, FINE))["status"] == "unpaid"
    assert (await city.pay_page(payment["confirmation_url"], {"action": "confirm"})).status == 409


async def test_the_3ds_page_wants_an_answer(city: ContractClient, full_token: str) -> None:
    payment = (
        await city.pay(
            full_token,
            "3ds-what",
            {"bill_ids": [FINE], "amount": FINE_AMOUNT, "payment_method_id": "pm-full-3220"},
        )
    ).body

    for form in ({}, {"action": "maybe"}, {"card_number": "4242424242424242"}):
        answer = await city.pay_page(payment["confirmation_url"], form)
        assert answer.status == 400, form
    assert (await city.payment(full_token, payment["id"])).body["status"] == "pending"


async def test_a_new_card_asking_for_3ds_shows_the_confirmation_page(
    city: ContractClient, full_token: str
) -> None:
    payment = await new_card_payment(city, full_token)

    asked = await city.pay_page(payment["confirmation_url"], {"card_number": "4000000000003220"})

    assert asked.status == 200
    assert 'value="confirm"' in asked.body
    pending = (await city.payment(full_token, payment["id"])).body
    assert (pending["status"], pending["card_last4"]) == ("pending", "3220")
    assert pending["confirmation_url"] == payment["confirmation_url"]
    confirmed = await city.pay_page(payment["confirmation_url"], {"action": "confirm"})
    assert page_status(confirmed) == "succeeded"
    assert [c["card_last4"] for c in await city.ledger()] == ["3220"]


# ---------------------------------------------------------------- pay_on_page


async def test_pay_on_page_pays_with_a_new_card(city: ContractClient, full_token: str) -> None:
    payment = await new_card_payment(city, full_token)

    result = await pay_on_page(payment["confirmation_url"], card_number="4242424242424242")

    assert result.status == 200
    assert result.url == payment["confirmation_url"]
    assert page_status(result.text) == "succeeded"
    assert len(await city.ledger()) == 1


async def test_pay_on_page_answers_3ds(city: ContractClient, full_token: str) -> None:
    payment = await new_card_payment(city, full_token)

    asked = await pay_on_page(payment["confirmation_url"], card_number="4000000000003220")
    confirmed = await pay_on_page(payment["confirmation_url"], action="confirm")

    assert page_status(asked.text) == "pending"
    assert page_status(confirmed.text) == "succeeded"
    assert [c["card_last4"] for c in await city.ledger()] == ["3220"]


async def test_pay_on_page_refuses_a_finished_or_unknown_payment(
    city: ContractClient, full_token: str
) -> None:
    payment = await new_card_payment(city, full_token)
    await pay_on_page(payment["confirmation_url"], action="reject")

    with pytest.raises(PaymentPageError, match="409"):
        await pay_on_page(payment["confirmation_url"], card_number="4242424242424242")
    with pytest.raises(PaymentPageError, match="404"):
        await pay_on_page(city.base_url + "/pay/nope", card_number="4242424242424242")
    assert await city.ledger() == []
