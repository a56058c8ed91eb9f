"""Review 36c: money across flows and processes — an autopay's charge meeting the resident's
own presses (pause, delete, unlink, another account linked) in the moment between the run's
key being recorded and the city hearing it; a run settled while unlinking and written again
by the charge run; a stale donation confirmation for another fund."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import select

from bot.jobs import run_autopays
from sandbox.browser import demo_login
from storage.models import AutopayRunRow
from tests.flows.conftest import START_LINK, Harness
from tests.flows.test_autopay_and_outbox import set_up_donation
from tests.flows.test_hostile_input import press_again
from tests.flows.test_payments import ledger
from tests.flows.test_review31_stale_screens import drawn, said_plainly

MSK = timezone(timedelta(hours=3))
SET_UP_AT = datetime(2026, 11, 24, 12, 0, tzinfo=MSK)
DUE_AT = datetime(2026, 11, 25, 10, 0, 5, tzinfo=MSK)


def at_the_city(harness: Harness, meanwhile: Callable[[], Awaitable[Any]]) -> list[str]:
    """The first autopay charge waits for `meanwhile` (the resident's press) after its key is
    on record and before the city hears it. Returns the notes of what happened."""
    assert harness.app is not None
    city = harness.app.city
    create_payment = city.create_payment
    notes: list[str] = []

    async def slow(*args: Any, **kwargs: Any) -> Any:
        if not notes:
            notes.append("pressed")
            await meanwhile()
        return await create_payment(*args, **kwargs)

    city.create_payment = slow  # type: ignore[method-assign]
    return notes


async def donation_due(harness: Harness, older: list[str] | None = None) -> Any:
    """Linked to demo-full (`older`: a login begun before, its page's address kept), a monthly
    150 ₽ donation on the 25th set up the day before, its card open; the clock at its charge."""
    chat = harness.chat()
    if older is not None:
        await chat.send("/start")
        await chat.press("Привязать")
        older.append(chat.url_of("mos.ru"))
    await harness.link(chat)
    harness.clock.now = SET_UP_AT
    await set_up_donation(harness, chat, 25)
    await chat.press(1)
    assert "Статус: включён" in chat.last_text
    harness.clock.now = DUE_AT
    return chat


async def unlink_in_chat(chat: Any) -> str:
    await chat.send("/start")
    await chat.press("Отвязать аккаунт")
    return (await chat.press("Да, отвязать")).text


async def press_then_charge(harness: Harness, what: str, older: list[str]) -> tuple[Any, str]:
    """The donation's charge at 10:00; while its key is on record and the city has not heard
    it yet, the resident presses `what` on the autopay's card (or unlinks, or links again).
    Returns (the chat, what the resident read last before the charge went on)."""
    assert harness.app is not None
    chat = await donation_due(harness, older)
    said: list[str] = []

    async def act() -> None:
        if what == "pause":
            said.append((await chat.press("Приостановить")).text)
        elif what == "delete":
            said.append((await chat.press("Удалить")).text)
            if "Удалить" in " ".join(chat.buttons):  # a confirmation, if there is one
                said.append((await chat.press("Удалить")).text)
        elif what == "unlink":
            said.append(await unlink_in_chat(chat))
        else:
            login = "demo-standard" if what == "another account" else "demo-full"
            page = (await demo_login(older[0], login)).text
            match = START_LINK.search(page)
            assert match, page
            said.append((await chat.send(f"/start {match.group(1)}")).text)

    notes = at_the_city(harness, act)
    await run_autopays(harness.app, harness.clock)
    assert notes == ["pressed"]
    return chat, said[-1]


UNDER_WAY = ("уже идёт", "уже списыва", "уже отправ")


# Found: «⏸ Приостановить» pressed at 10:00 while the month's charge has its key on record and
# is on its way to the city answers «Статус: на паузе» (and still «Следующее списание: 25.11»),
# and then 150 ₽ is charged — a paused autopay charging afterwards, the resident not warned.
# «Пропустить этот раз» in the same moment is refused («уже прошёл»): `set_status` does not look
# at the period's run at all.
# Was (review 36c): a pause pressed while the charge is on its way is told paused and is then
# charged
async def test_a_pause_while_the_charge_is_on_its_way_is_not_followed_by_a_silent_charge(
    pg_harness: Harness,
) -> None:
    _chat, said = await press_then_charge(pg_harness, "pause", [])
    charges = await ledger(pg_harness)
    assert "на паузе" in said
    assert charges == [] or any(words in said for words in UNDER_WAY), (said, charges)


# Found: «🗑 Удалить» pressed while the charge's key is on record and the city has not heard
# it answers «Автоплатёж удалён» / «Автоплатежей пока нет», and then the deleted autopay
# charges 150 ₽. `set_status(DELETED)` ignores the run in flight (STARTED, attempts ≥ 1);
# it should say the last charge is already under way (as `skip_once` refuses), or the
# charge run should re-check the row under lock just before the city call.
# Was (review 36c): a delete pressed while the charge is on its way is told deleted and is then
# charged
async def test_a_delete_while_the_charge_is_on_its_way_is_not_followed_by_a_silent_charge(
    pg_harness: Harness,
) -> None:
    _chat, said = await press_then_charge(pg_harness, "delete", [])
    charges = await ledger(pg_harness)
    assert "Автоплатежей пока нет" in said or "удалён" in said, said
    assert charges == [] or any(words in said for words in UNDER_WAY), (said, charges)


@pytest.mark.parametrize("what", ["unlink", "another account"])
async def test_unlinking_or_another_account_while_the_charge_is_on_its_way_charges_nothing(
    pg_harness: Harness, what: str
) -> None:
    """The old tokens are revoked before the charge reaches the city: refused, not charged."""
    older: list[str] = []
    _chat, said = await press_then_charge(pg_harness, what, older)
    assert "привязан" in said or "отвязан" in said, said
    assert await ledger(pg_harness) == []
    assert pg_harness.app is not None
    pg_harness.clock.now = DUE_AT + timedelta(days=3)
    await run_autopays(pg_harness.app, pg_harness.clock)  # nothing of the old link is due
    assert await ledger(pg_harness) == []


async def test_the_same_account_linked_again_while_the_charge_is_on_its_way_charges_once(
    pg_harness: Harness,
) -> None:
    older: list[str] = []
    _chat, said = await press_then_charge(pg_harness, "same account", older)
    assert "Аккаунт привязан" in said
    charges = await ledger(pg_harness)
    assert [(c["idempotence_key"], c["amount"]) for c in charges] == [("ap-1-2026-11-1", 15_000)]
    assert pg_harness.app is not None
    pg_harness.clock.now = DUE_AT + timedelta(hours=2)
    await run_autopays(pg_harness.app, pg_harness.clock)
    assert len(await ledger(pg_harness)) == 1


async def declining_donation_due(harness: Harness) -> Any:
    """A monthly 150 ₽ donation on the 25th with the card the bank declines (•• 0002)."""
    chat = harness.chat()
    await harness.link(chat)
    harness.clock.now = SET_UP_AT
    await chat.press("Автоплатежи")
    await chat.press("Подключить автоплатёж")
    await chat.press("Пожертвование фонду")
    await chat.press(1)
    await chat.press("Раз в месяц")
    await chat.send("25")
    await chat.send("150")
    await chat.press("•• 0002")
    assert "Автоплатёж подключён" in (await chat.press("Подключить")).text
    harness.clock.now = DUE_AT
    return chat


async def decline_then_unlink(harness: Harness) -> tuple[Any, list[tuple[str, int]]]:
    """The charge is declined at the city; before the charge run records the answer the
    resident unlinks (which settles the run by asking the city). Returns the chat and the
    run as unlinking left it (status, attempts)."""
    app = harness.app
    assert app is not None
    chat = await declining_donation_due(harness)
    create_payment = app.city.create_payment
    settled: list[tuple[str, int]] = []

    async def declined_then_unlinked(*args: Any, **kwargs: Any) -> Any:
        payment = await create_payment(*args, **kwargs)  # declined by the bank
        assert "Аккаунт отвязан" in await unlink_in_chat(chat)
        settled.extend(await runs(harness))
        return payment

    app.city.create_payment = declined_then_unlinked  # type: ignore[method-assign]
    await run_autopays(app, harness.clock)
    del app.city.create_payment
    return chat, settled


async def runs(harness: Harness) -> list[tuple[str, int]]:
    assert harness.app is not None
    async with harness.app.engine.connect() as connection:
        rows = await connection.execute(
            select(AutopayRunRow.status, AutopayRunRow.attempts).order_by(AutopayRunRow.id)
        )
        return [(status, attempts) for status, attempts in rows.all()]


# Was (review 36c): a declined charge whose answer the charge run had not recorded yet was
# settled FAILED by unlinking (`autopay_runs.settle_runs_of`, leased too); the charge run then
# recorded its own copy of the answer over it as RETRYING (`save_run` was an UPDATE by id with
# no check of the stored version). Every run write is now made over the version its writer read
# (`AutopayRun.stored`); see tests/integration/test_run_recorded_meanwhile.py for every answer.
async def test_a_run_settled_failed_by_unlinking_is_not_rewritten_as_retrying(
    pg_harness: Harness,
) -> None:
    _chat, settled = await decline_then_unlink(pg_harness)
    assert settled == [("failed", 1)]
    assert await runs(pg_harness) == [("failed", 1)]


async def test_a_declined_run_overwritten_after_unlinking_charges_nothing_after_relinking(
    pg_harness: Harness,
) -> None:
    """What the overwrite could cost: after linking the same account again and the retry days
    passing, no charge is even attempted for the forgotten autopay."""
    harness = pg_harness
    assert harness.app is not None
    chat, _ = await decline_then_unlink(harness)
    await harness.link(chat)
    calls: list[Any] = []
    create_payment = harness.app.city.create_payment

    async def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return await create_payment(*args, **kwargs)

    harness.app.city.create_payment = counted  # type: ignore[method-assign]
    for days in (1, 2, 3, 31):
        harness.clock.now = DUE_AT + timedelta(days=days)
        await run_autopays(harness.app, harness.clock)
    assert calls == [] and await ledger(harness) == []
    await chat.send("/start")
    await chat.press("Автоплатежи")
    assert "Автоплатежей пока нет" in chat.last_text


@pytest.mark.parametrize("old_then_new", [True, False])
async def test_fund_a_then_fund_b_an_old_confirm_for_a_moves_no_money_to_a(
    harness: Harness, old_then_new: bool
) -> None:
    """Fund A at 100 ₽ on its confirmation, «Отмена», «‹ Назад», fund B at 300 ₽: the first
    screen's «Оплатить» (its callback data with the old dialog's intent id, as the client still
    has it) pressed before or after B's gives A nothing; B is charged at most once."""
    chat = harness.chat()
    await harness.link(chat)
    await chat.press("Благотворительность")
    await chat.press("Детям")
    await chat.press("АНО „Наставники“")
    await chat.press("100,00\u00a0₽")
    old = drawn(chat, "Оплатить 100,00")
    await chat.press("Отмена")
    await chat.press("‹ Назад")
    await chat.press("Детский хоспис „Светлячок“")
    await chat.press("300,00\u00a0₽")
    assert "Светлячок" in chat.last_text and "300,00" in chat.last_text
    new = drawn(chat, "Оплатить 300,00")
    presses = [old, new] if old_then_new else [new, old]
    for screen in [*presses, old]:
        said_plainly(await press_again(chat, screen.payload, screen.data))
    charges = await ledger(harness)
    # The old button first: «Эта кнопка устарела. Вот главное меню» — the dialog stack is
    # reset, so B's screen is stale too and pays nothing (to be confirmed again): no money to A.
    assert [c["amount"] for c in charges] == ([] if old_then_new else [30_000]), charges
