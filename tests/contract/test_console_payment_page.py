"""The console completes the sandbox's payment page in the terminal: a card on the «new card»
form, then the 3-D Secure step that some cards ask for (`bot.runners.complete_payment_page`)."""

from __future__ import annotations

import pytest

from bot.runners import complete_payment_page

from .sandbox_client import ContractClient

FINE = {"bill_ids": ["B-1002"], "amount": 50_000}


@pytest.mark.parametrize(
    ("method", "answers", "status"),
    [
        ({}, ["4000 0000 0000 3220", ""], "succeeded"),  # new card, then 3-D Secure confirmed
        ({}, ["4000000000003220", "нет"], "canceled"),  # 3-D Secure refused
        ({}, [""], "succeeded"),  # an empty answer pays with 4242
        ({"payment_method_id": "pm-full-3220"}, ["да"], "succeeded"),  # a saved 3-DS card
    ],
)
async def test_the_terminal_answers_the_card_and_the_3ds_pages(
    city: ContractClient,
    full_token: str,
    method: dict[str, str],
    answers: list[str],
    status: str,
) -> None:
    created = (await city.pay(full_token, "console", {**FINE, **method})).body
    assert created["status"] == "pending" and created["confirmation_url"]
    asked: list[str] = []
    said: list[str] = []
    feed = iter(answers)

    async def ask(prompt: str) -> str:
        asked.append(prompt)
        return next(feed)

    shown = await complete_payment_page(created["confirmation_url"], ask, said.append)

    assert shown == status
    assert len(asked) == len(answers)  # each page asked once, nothing left unasked
    assert (await city.payment(full_token, created["id"])).body["status"] == status
    assert said and f"статус: {status}" in said[0]
