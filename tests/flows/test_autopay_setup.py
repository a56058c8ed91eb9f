"""Setting up autopays through the real Dispatcher and the sandbox: each set-up starts from
nothing (a donation's autopay cannot leak its fund or amount into the next one), 3-D Secure
cards are not offered, a paused autopay's card is changed, amounts have a ceiling, and
unlinking cancels autopays."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from bot.jobs import deliver_notifications, run_autopays
from bot.ratelimit import MemoryLimiter
from domain.autopay import Autopay, AutopayKind, AutopayStatus, Frequency, Schedule, bill_period
from domain.autopaying import set_up
from domain.bills import BillKind, unpaid_bills
from domain.sessions import ResidentSession
from sandbox.conversation import Conversation
from tests.flows.conftest import Harness
from tests.flows.test_bill_discovery import discover, issue
from tests.money_text import nb

MSK = timezone(timedelta(hours=3))
SET_UP_AT = datetime(2026, 11, 24, 12, 0, tzinfo=MSK)
DUE = datetime(2026, 11, 25, 10, 0, 5, tzinfo=MSK)  # the 25th's charges have just fallen due


async def ledger(harness: Harness) -> list[dict[str, Any]]:
    return (await harness.sandbox_call("GET", "/sandbox/ledger"))["charges"]


async def linked(harness: Harness) -> Conversation:
    chat = harness.chat()
    await harness.link(chat)
    harness.clock.now = SET_UP_AT
    return chat


async def stored(harness: Harness, chat: Conversation) -> list[Autopay]:
    assert harness.app is not None
    async with harness.app.uow_factory() as uow:
        return await uow.autopays.of_resident(chat.chat_id)


async def tick(harness: Harness, moment: datetime) -> None:
    assert harness.app is not None
    harness.clock.now = moment
    await run_autopays(harness.app, harness.clock)
    await deliver_notifications(harness.app, harness.clock, MemoryLimiter())


async def add_donation(chat: Conversation, fund: int, day: int, amount: str) -> str:
    """«➕» → a fund → monthly on `day` → `amount` → the 4242 card; returns the summary."""
    await chat.press("➕ Подключить автоплатёж")
    await chat.press("Пожертвование фонду")
    await chat.press(fund)
    await chat.press("Раз в месяц")
    await chat.send(str(day))
    assert "Сколько перечислять?" in chat.last_text  # asked, never taken from before
    await chat.send(amount)
    await chat.press("•• 4242")
    summary = chat.last_text
    assert "Автоплатёж подключён" in (await chat.press("Подключить")).text
    return summary


async def test_an_epd_autopay_after_a_donations_autopay_charges_the_bill_not_the_fund(
    harness: Harness,
) -> None:
    chat = await linked(harness)
    await chat.press("Благотворительность")
    await chat.press("Детям")
    await chat.press(1)
    fund = chat.last_text.splitlines()[0]
    await chat.press(nb("300,00 ₽"))
    await chat.press("Оплатить")
    await chat.press("Подключить автоплатёж")  # under the thank-you: the fund and 300 ₽ known
    await chat.press("Раз в месяц")
    await chat.send("25")
    await chat.press("•• 4242")
    assert fund in chat.last_text and nb("300,00 ₽") in chat.last_text
    assert "Автоплатёж подключён" in (await chat.press("Подключить")).text

    await chat.press("➕ Подключить автоплатёж")  # in the same visit: an ЕПД autopay
    await chat.press("Счёт за услугу")
    await chat.press("ЕПД")
    assert "До какой суммы платить" in chat.last_text  # on issue: no «Как часто?», no day
    await chat.send("10 000")
    await chat.press("•• 4242")
    summary = chat.last_text
    assert "ЕПД" in summary and nb("до 10 000,00 ₽") in summary
    assert fund not in summary and nb("300,00 ₽") not in summary
    await chat.press("Подключить")

    donation, epd = await stored(harness, chat)
    assert (donation.kind, donation.amount) == (AutopayKind.FIXED, 30_000)
    assert (epd.kind, epd.bill_kind, epd.limit) == (AutopayKind.BILL, BillKind.EPD, 1_000_000)
    assert (epd.fund_id, epd.fund_name, epd.amount) == (None, None, None)

    assert harness.app is not None
    await discover(harness)  # the bills there are now: the baseline, not the autopay's
    issue(harness, "C-100003", 799_999)  # a new ЕПД: the autopay's, due tomorrow at 10:00
    assert await discover(harness) == 1
    async with harness.app.uow_factory() as uow:
        resident = await uow.residents.get(chat.chat_id)
        assert resident is not None
        city = harness.app.city
        [epd_bill] = [
            b
            for b in await unpaid_bills(uow, city, city, resident)
            if b.kind is BillKind.EPD and b.amount == 799_999
        ]
    charges_before = len(await ledger(harness))  # the donation itself
    await tick(harness, DUE)
    charges = {c["idempotence_key"]: c for c in (await ledger(harness))[charges_before:]}
    assert sorted(c["amount"] for c in charges.values()) == sorted([30_000, epd_bill.amount])
    async with harness.app.uow_factory() as uow:
        session = ResidentSession(resident, city, uow)
        epd_key = f"ap-{epd.id}-{bill_period(epd_bill.id)}-1"  # its period: the bill
        epd_payment = await city.find_payment(session, epd_key)
        fund_payment = await city.find_payment(session, f"ap-{donation.id}-2026-11-1")
    assert epd_payment is not None and fund_payment is not None
    assert epd_payment.bill_ids == (epd_bill.id,) and epd_payment.amount == epd_bill.amount
    assert fund_payment.bill_ids == () and fund_payment.amount == 30_000


async def test_two_autopays_in_one_visit_each_ask_and_keep_their_amount(
    harness: Harness,
) -> None:
    chat = await linked(harness)
    await chat.press("Автоплатежи")
    first = await add_donation(chat, 1, 5, "150")
    second = await add_donation(chat, 2, 10, "300")
    assert nb("150,00 ₽") in first and "каждое 5-е число" in first
    assert nb("300,00 ₽") in second and "каждое 10-е число" in second
    one, two = await stored(harness, chat)
    assert (one.amount, one.schedule.day) == (15_000, 5)
    assert (two.amount, two.schedule.day) == (30_000, 10)
    assert one.fund_id != two.fund_id
    assert "Ваши автоплатежи" in chat.last_text  # back on the list after each


async def test_a_3ds_card_is_not_offered_for_autopay(harness: Harness) -> None:
    chat = await linked(harness)
    await chat.press("Автоплатежи")
    await chat.press("➕ Подключить автоплатёж")
    await chat.press("Пожертвование фонду")
    await chat.press(1)
    await chat.press("Раз в месяц")
    await chat.send("5")
    await chat.send("150")
    assert "С какой карты списывать?" in chat.last_text
    assert "•• 4242" in " ".join(chat.buttons) and "•• 0002" in " ".join(chat.buttons)
    assert not [b for b in chat.buttons if "3220" in b]
    assert "•• 3220" in chat.last_text and "3-D Secure" in chat.last_text


async def test_amounts_follow_the_payment_rules_and_have_a_ceiling(harness: Harness) -> None:
    chat = await linked(harness)
    await chat.press("Автоплатежи")
    await chat.press("➕ Подключить автоплатёж")
    await chat.press("Пожертвование фонду")
    await chat.press(1)
    await chat.press("Раз в месяц")
    await chat.send("5")
    too_much = await chat.send("10 000 000")  # a recurring 10 000 000 ₽ donation
    assert nb("слишком много: не больше 100 000,00 ₽") in too_much.text
    assert "Нужна сумма не меньше 50\u00a0₽" in (await chat.send("1500 50")).text  # a typo
    assert "Нужна сумма не меньше 50\u00a0₽" in (await chat.send("49")).text
    await chat.send("1 500,50")
    assert "С какой карты списывать?" in chat.last_text
    await chat.press("•• 4242")
    await chat.press("Подключить")
    [autopay] = await stored(harness, chat)
    assert autopay.amount == 150_050

    await chat.press(1)  # the limit of a bill autopay has the same ceiling
    await chat.press("Сумма или лимит")
    assert "слишком много" in (await chat.send("1000000")).text
    await chat.send("200")
    assert nb("200,00 ₽") in chat.last_text and "Статус: включён" in chat.last_text


async def test_a_paused_autopays_card_is_changed_and_it_resumes(harness: Harness) -> None:
    """A card whose bank began asking for 3-D Secure after the set-up: the charge ends
    pending, the autopay is paused and the resident told exactly that; «Сменить карту» offers
    only cards that need no confirmation and resumes it."""
    chat = await linked(harness)
    assert harness.app is not None
    async with harness.app.uow_factory() as uow:
        autopay = await set_up(
            uow,
            Autopay(
                chat.chat_id,
                AutopayKind.FIXED,
                Schedule(Frequency.MONTHLY, 25),
                "pm-full-3220",
                SET_UP_AT,
                amount=20_000,
                fund_id="F-101",
                fund_name="Фонд",
            ),
            SET_UP_AT,
        )
    await tick(harness, DUE)
    assert await ledger(harness) == []
    told = chat.last_text
    assert "на паузе" in told and "3-D Secure" in told and "Сменить карту" in told
    assert "три дня" not in told
    await tick(harness, DUE + timedelta(days=1))  # told once; not tried again
    assert chat.history.count(told) == 1 and await ledger(harness) == []

    await chat.press("Открыть автоплатёж")
    assert "на паузе — банк карты просит подтверждать" in chat.last_text
    await chat.press("Сменить карту")
    assert not [b for b in chat.buttons if "3220" in b]
    reply = await chat.press("•• 4242")
    assert "•• 4242" in reply.text and "снова включён" in reply.text
    assert "Статус: включён" in chat.last_text  # back on the autopay's card
    [changed] = await stored(harness, chat)
    assert (changed.method_id, changed.status) == ("pm-full-4242", AutopayStatus.ACTIVE)

    await tick(harness, datetime(2026, 12, 25, 10, 0, 5, tzinfo=MSK))
    [charge] = await ledger(harness)
    assert (charge["amount"], charge["card_last4"]) == (20_000, "4242")
    assert charge["idempotence_key"] == f"ap-{autopay.id}-2026-12-1"


async def test_the_card_of_an_active_autopay_is_changed(harness: Harness) -> None:
    chat = await linked(harness)
    await chat.press("Автоплатежи")
    await add_donation(chat, 1, 25, "150")
    await chat.press(1)
    await chat.press("Сменить карту")
    reply = await chat.press("•• 9995")
    assert "•• 9995" in reply.text and "снова включён" not in reply.text
    assert "Статус: включён" in chat.last_text
    [autopay] = await stored(harness, chat)
    assert autopay.method_id == "pm-full-9995"


async def test_unlinking_cancels_autopays_and_relinking_charges_nothing(
    harness: Harness,
) -> None:
    chat = await linked(harness)
    await chat.press("Автоплатежи")
    await add_donation(chat, 1, 25, "150")
    await chat.press("‹ Назад")
    await chat.press("Отвязать аккаунт")
    await chat.press("Да, отвязать")
    assert harness.app is not None
    async with harness.app.uow_factory() as uow:
        autopays = await uow.autopays.of_resident(chat.chat_id)
    assert autopays == []

    await harness.link(chat)
    harness.clock.now = SET_UP_AT
    await chat.press("Автоплатежи")
    assert "Автоплатежей пока нет" in chat.last_text
    await tick(harness, DUE)
    await tick(harness, datetime(2026, 12, 25, 10, 0, 5, tzinfo=MSK))
    assert await ledger(harness) == []
