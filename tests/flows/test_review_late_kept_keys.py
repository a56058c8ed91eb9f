"""Reviewer probes of the kept keys (c6d53cc/8156121): a transfer whose answer was lost."""

from __future__ import annotations

from sandbox.data import FULL
from sandbox.points import PointsKind
from sandbox.points_api import POINTS_KEY
from tests.flows.conftest import Harness
from tests.flows.test_charity_points_meters import linked

NO_ANSWER = {"fail_after_processing": 10}
TRANSFERS = "/api/v1/points/transfers"


def _debits(harness: Harness) -> list[int]:
    return [
        e.amount
        for e in harness.sandbox.app[POINTS_KEY].entries
        if e.account_id == FULL.account_id and e.kind is PointsKind.TRANSFER
    ]


async def test_abandoned_transfer_is_made_later_when_points_open(harness: Harness) -> None:
    """Fund 1: the city fails before doing anything (503): «пока не знаем». The resident gives
    to fund 2 instead. Days later they open «Баллы» to look: fund 1's transfer was made then.
    Fixed: opening a screen sends nothing; «Баллы» says fund 1's outcome is unknown."""
    chat = await linked(harness)
    await chat.press("Баллы")
    await chat.press("Перевести баллы в фонд")
    await chat.press(1)
    await chat.send("100")
    await harness.sandbox_call("PUT", "/sandbox/faults", json={"status": 503, "paths": [TRANSFERS]})
    await chat.press("Подтвердить")
    print("\n[after 503]", chat.last_text)
    assert _debits(harness) == []  # nothing made at the city
    await chat.send("/start")
    await chat.press("Баллы")  # still down: nothing settled here
    print("[points opened]", chat.last_text[:300])
    await chat.press("Перевести баллы в фонд")
    await harness.sandbox_call("PUT", "/sandbox/faults", json={})  # the city is back
    await chat.press(2)
    await chat.send("100")
    await chat.press("Подтвердить")
    print("[fund 2]", chat.last_text)
    await chat.send("/start")
    await chat.press("Баллы")
    print("[points opened later]", chat.last_text[:300])
    assert _debits(harness) == [-100], (
        f"a transfer not confirmed again was made: {_debits(harness)}"
    )
    assert "пока не знаем, прошёл ли он" in chat.last_text
    assert any(b.startswith("Забыть: ") for b in chat.buttons)


async def test_unlink_relink_keeps_the_key_and_debits_once(any_state_harness: Harness) -> None:
    """The «unknown» text promises the same amount to the same fund again debits once — also
    after unlinking and linking the same account again: unlinking forgets the chat's dialogs
    but keeps the keys of operations the platform has not answered (SQL, Redis and memory
    state alike)."""
    harness = any_state_harness
    chat = await linked(harness)
    await chat.press("Баллы")
    await chat.press("Перевести баллы в фонд")
    await chat.press(1)
    await chat.send("100")
    await harness.sandbox_call("PUT", "/sandbox/faults", json=NO_ANSWER)
    await chat.press("Подтвердить")
    await harness.sandbox_call("PUT", "/sandbox/faults", json={})
    print("\n[lost]", chat.last_text)
    assert _debits(harness) == [-100]
    await chat.send("/start")
    await chat.press("Отвязать аккаунт")
    await chat.press("Да, отвязать")
    await harness.link(chat)
    await harness.sandbox_call("PUT", "/sandbox/faults", json={"status": 503, "paths": [TRANSFERS]})
    await chat.press("Баллы")
    print("[points after relink]", chat.last_text[:300])
    await chat.press("Перевести баллы в фонд")
    await harness.sandbox_call("PUT", "/sandbox/faults", json={})
    await chat.press(1)
    await chat.send("100")
    print("[same fund, same amount]", chat.last_text, chat.buttons)
    if "Подтвердить" in chat.buttons:
        await chat.press("Подтвердить")
    print("[after]", chat.last_text)
    assert _debits(harness) == [-100], f"debited twice after unlink/relink: {_debits(harness)}"
