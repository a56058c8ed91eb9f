"""Reviewer probe (3d7d6d0): bills paid elsewhere between the list and the tap."""

from __future__ import annotations

from tests.flows.conftest import Harness
from tests.flows.test_payments import bill_buttons, city_bills, ledger, open_bills


async def test_picked_bill_paid_elsewhere_then_pay_selected(harness: Harness) -> None:
    chat = await open_bills(harness)
    before = await city_bills(harness, chat)
    first, second, third = bill_buttons(chat)[:3]
    print("\n[before]", bill_buttons(chat)[:4], "paid elsewhere:", before[0])
    await chat.press(first)
    await chat.press(second)
    await harness.sandbox_call(
        "PATCH", f"/sandbox/bills/{before[0]['id']}", json={"status": "paid"}
    )
    await chat.press(third)  # a re-render: the paid bill leaves the list
    print("\n[buttons]", bill_buttons(chat)[:4], [b for b in chat.buttons if "Оплатить" in b])
    pay = next(b for b in chat.buttons if b.startswith("Оплатить выбранные"))
    await chat.press(pay)
    print("[confirm]", chat.last_text.replace("\n", " | ")[:400])
    reply = await chat.press("Оплатить")
    print("[paid]", reply.text.replace("\n", " | ")[:300])
    charges = await ledger(harness)
    assert [c["amount"] for c in charges] == [before[1]["amount"] + before[2]["amount"]]


async def test_pay_selected_stale_after_paid_elsewhere_no_rerender(harness: Harness) -> None:
    chat = await open_bills(harness)
    before = await city_bills(harness, chat)
    first, second = bill_buttons(chat)[:2]
    await chat.press(first)
    await chat.press(second)
    await harness.sandbox_call(
        "PATCH", f"/sandbox/bills/{before[0]['id']}", json={"status": "paid"}
    )
    await chat.press("Оплатить выбранные (2)")
    print("\n[confirm2]", chat.last_text.replace("\n", " | ")[:400], chat.buttons)
    if "Оплатить" in chat.buttons:
        reply = await chat.press("Оплатить")
        print("[paid2]", reply.text.replace("\n", " | ")[:300])
    charges = await ledger(harness)
    assert [c["amount"] for c in charges] in ([], [before[1]["amount"]])


async def test_pay_all_after_a_new_bill(harness: Harness) -> None:
    chat = await open_bills(harness, "demo-standard")
    before = await city_bills(harness, chat)
    await harness.sandbox_call(
        "PATCH", f"/sandbox/bills/{before[0]['id']}", json={"status": "paid"}
    )
    await chat.press("Оплатить все")
    print("\n[all]", chat.last_text.replace("\n", " | ")[:400], chat.buttons)
    if "Оплатить" in chat.buttons:
        reply = await chat.press("Оплатить")
        print("[paid3]", reply.text.replace("\n", " | ")[:300])
    charges = await ledger(harness)
    assert sum(c["amount"] for c in charges) <= sum(b["amount"] for b in before[1:])
