"""One autopay per service or fund; forged button ids; points typed with grouped digits.

- A second autopay for a target the resident already has one for (the same service — with
  the same payer code, None covering any — or the same fund) is refused by `set_up`
  (AutopayExists), and the dialog says so as soon as the service or fund is picked, with
  «Открыть автоплатёж» (and «Возобновить» for a paused one). A double tap on «Подключить»
  stores one autopay.
- A callback whose id is not a number, or not the resident's, is ignored; never a crash.
- «Перевести баллы в фонд» takes «1 000» and «1 000 баллов» like every other number field.
"""

from __future__ import annotations

import asyncio
import re

import pytest

from domain.autopay import (
    Autopay,
    AutopayKind,
    AutopayStatus,
    Frequency,
    PauseReason,
    Schedule,
    bill_period,
)
from domain.autopaying import AutopayExists, set_status, set_up
from domain.bills import BillKind
from sandbox.conversation import Conversation
from tests.flows.conftest import Harness
from tests.flows.test_autopay_setup import DUE, SET_UP_AT, ledger, linked, stored, tick
from tests.flows.test_bill_discovery import discover, issue
from tests.money_text import nb

EXISTS_EPD = (
    "У вас уже есть автоплатёж за ЕПД (квартплата) — откройте его, чтобы изменить сумму, "
    "день или карту."
)


async def epd_summary(chat: Conversation, limit: str = "10 000") -> None:
    """From the list: «➕» → ЕПД (on issue: no schedule) → `limit` → •• 4242 → the summary."""
    await chat.press("➕ Подключить автоплатёж")
    await chat.press("Счёт за услугу")
    await chat.press("ЕПД")
    await chat.send(limit)
    await chat.press("•• 4242")
    assert "Проверьте автоплатёж" in chat.last_text


async def add_epd(chat: Conversation, limit: str = "10 000") -> None:
    await epd_summary(chat, limit)
    assert "Автоплатёж подключён" in (await chat.press("Подключить")).text


async def add_donation(chat: Conversation, fund: int, amount: str = "150") -> None:
    await chat.press("➕ Подключить автоплатёж")
    await chat.press("Пожертвование фонду")
    await chat.press(fund)
    await chat.press("Раз в месяц")
    await chat.send("5")
    await chat.send(amount)
    await chat.press("•• 4242")
    assert "Автоплатёж подключён" in (await chat.press("Подключить")).text


async def forge(chat: Conversation, data: str) -> None:
    """A callback query with `data` from the resident, as if pressed on the latest keyboard."""
    message = chat.last_message
    assert message is not None and message.buttons
    await chat.feed(
        {
            "callback_query": {
                "id": f"forged-{data[-12:]}",
                "from": dict(chat.user),
                "message": dict(message.payload),
                "chat_instance": "forged",
                "data": data,
            }
        }
    )


def callback_of(chat: Conversation, text: str) -> str:
    message = chat.last_message
    assert message is not None
    [button] = [b for b in message.buttons if b.text == text or text in b.text]
    assert button.callback_data is not None
    return button.callback_data


# --- one autopay per service or fund --------------------------------------------------------


async def test_a_second_epd_autopay_in_one_visit_is_refused_and_the_first_is_offered(
    harness: Harness,
) -> None:
    chat = await linked(harness)
    await chat.press("Автоплатежи")
    await add_epd(chat)

    await chat.press("➕ Подключить автоплатёж")  # «did the first one fail?» — again
    await chat.press("Счёт за услугу")
    await chat.press("ЕПД")
    told = chat.last_text
    assert told.startswith(EXISTS_EPD), told  # at once: no schedule, limit or card asked
    assert nb("Сейчас: счёт целиком, до 10 000,00 ₽, когда придёт счёт.") in told
    assert "Открыть автоплатёж" in chat.buttons and "Подключить" not in chat.buttons
    assert "▶️ Возобновить" not in chat.buttons  # it is active

    await chat.press("Открыть автоплатёж")
    card = chat.last_text
    assert "ЕПД" in card and nb("до 10 000,00 ₽") in card and "Статус: включён" in card
    await chat.press("‹ Назад")
    assert "Ваши автоплатежи" in chat.last_text
    [epd] = await stored(harness, chat)

    await discover(harness)  # the baseline; then a new ЕПД, paid by the one autopay once
    new_bill = issue(harness, "C-100003", 812_450)
    assert await discover(harness) == 1
    charges_before = len(await ledger(harness))
    await tick(harness, DUE)
    charges = (await ledger(harness))[charges_before:]
    assert [c["idempotence_key"] for c in charges] == [f"ap-{epd.id}-{bill_period(new_bill)}-1"]


async def test_a_second_visit_is_refused_too_and_other_targets_are_not(
    harness: Harness,
) -> None:
    chat = await linked(harness)
    await chat.press("Автоплатежи")
    await add_epd(chat)
    await add_donation(chat, 1)
    await chat.press("‹ Назад")  # leaves «Автоплатежи»

    await chat.press("Автоплатежи")  # another visit
    await chat.press("➕ Подключить автоплатёж")
    await chat.press("Счёт за услугу")
    await chat.press("ЕПД")
    assert chat.last_text.startswith(EXISTS_EPD)
    await chat.press("Отмена")
    assert "Ваши автоплатежи" in chat.last_text

    await chat.press("➕ Подключить автоплатёж")  # the same fund: refused
    await chat.press("Пожертвование фонду")
    await chat.press(1)
    assert chat.last_text.startswith("У вас уже есть автоплатёж в помощь фонду «")
    assert nb("Сейчас: 150,00 ₽, каждое 5-е число.") in chat.last_text
    await chat.press("Отмена")

    await add_donation(chat, 2)  # another fund: a second autopay of its own
    await chat.press("➕ Подключить автоплатёж")  # another service: too
    await chat.press("Счёт за услугу")
    await chat.press("МГТС")
    await chat.press("По выставленному счёту")  # МГТС also takes a fixed amount: asked how
    assert "До какой суммы платить" in chat.last_text
    kinds = [(a.kind, a.bill_kind, a.fund_id) for a in await stored(harness, chat)]
    assert len(kinds) == len(set(kinds)) == 3


async def test_a_paused_one_is_offered_to_resume(harness: Harness) -> None:
    chat = await linked(harness)
    await chat.press("Автоплатежи")
    await add_epd(chat)
    await chat.press(1)
    await chat.press("Приостановить")
    await chat.press("‹ Назад")

    await chat.press("➕ Подключить автоплатёж")
    await chat.press("Счёт за услугу")
    await chat.press("ЕПД")
    told = chat.last_text
    assert "У вас уже есть автоплатёж за ЕПД (квартплата), сейчас он на паузе" in told
    assert "Статус: на паузе" in told
    assert "▶️ Возобновить" in chat.buttons and "Открыть автоплатёж" in chat.buttons
    await chat.press("▶️ Возобновить")
    assert "Статус: включён" in chat.last_text  # its card, active again
    [epd] = await stored(harness, chat)
    assert epd.status is AutopayStatus.ACTIVE


async def test_one_paused_for_its_card_is_opened_not_resumed(harness: Harness) -> None:
    """Paused because its card expired: «Возобновить» would not fix it, so only «Открыть»,
    and the text says what will (on its card: «Сменить карту»)."""
    chat = await linked(harness)
    await chat.press("Автоплатежи")
    await add_donation(chat, 1)
    [autopay] = await stored(harness, chat)
    assert harness.app is not None
    async with harness.app.uow_factory() as uow:
        autopay.pause(PauseReason.CARD_EXPIRED)
        await uow.autopays.save(autopay)
        await uow.commit()

    await chat.press("➕ Подключить автоплатёж")
    await chat.press("Пожертвование фонду")
    await chat.press(1)
    told = chat.last_text
    assert "сейчас он на паузе" in told and "срок действия карты истёк" in told
    assert "▶️ Возобновить" not in chat.buttons
    await chat.press("Открыть автоплатёж")
    assert "Сменить карту" in " ".join(chat.buttons)
    assert (await stored(harness, chat))[0].status is AutopayStatus.PAUSED


async def test_from_a_thank_you_the_autopay_there_is_is_offered(harness: Harness) -> None:
    """«Подключить автоплатёж» under a second donation to a fund with an autopay already."""
    chat = await linked(harness)
    for _ in range(2):
        await chat.send("/start")
        await chat.press("Благотворительность")
        await chat.press("Детям")
        await chat.press(1)
        await chat.press(nb("300,00 ₽"))
        await chat.press("Оплатить")
        await chat.press("Подключить автоплатёж")
        if "Как часто?" in chat.last_text:  # the first time: a set-up
            await chat.press("Раз в месяц")
            await chat.send("25")
            await chat.press("•• 4242")
            assert "Автоплатёж подключён" in (await chat.press("Подключить")).text
    assert chat.last_text.startswith("У вас уже есть автоплатёж в помощь фонду «")
    await chat.press("Открыть автоплатёж")
    assert nb("300,00 ₽") in chat.last_text and "Статус: включён" in chat.last_text
    await chat.press("‹ Назад")
    assert "Ваши автоплатежи" in chat.last_text
    assert len(await stored(harness, chat)) == 1


def donation(user_id: int, fund_id: str, day: int = 5) -> Autopay:
    return Autopay(
        user_id,
        AutopayKind.FIXED,
        Schedule(Frequency.MONTHLY, day),
        "pm-full-4242",
        SET_UP_AT,
        amount=20_000,
        fund_id=fund_id,
        fund_name="Фонд <«Дом» & семья>",
    )


def bill(
    user_id: int, kind: BillKind = BillKind.EPD, payer: str | None = None, limit: int = 1_000_000
) -> Autopay:
    return Autopay(
        user_id,
        AutopayKind.BILL,
        Schedule.on_issue(),
        "pm-full-4242",
        SET_UP_AT,
        limit=limit,
        bill_kind=kind,
        payer_code=payer,
    )


async def test_set_up_refuses_an_autopay_for_a_target_there_is_one_for(harness: Harness) -> None:
    chat = await linked(harness)
    assert harness.app is not None
    user = chat.chat_id
    factory = harness.app.uow_factory

    async def add(autopay: Autopay) -> Autopay:
        async with factory() as uow:
            return await set_up(uow, autopay, SET_UP_AT)

    async def refused(autopay: Autopay) -> int | None:
        with pytest.raises(AutopayExists) as error:
            await add(autopay)
        return error.value.autopay_id

    flat = await add(bill(user, payer="P-1"))
    # The very same set-up again (its answer lost, the press repeated: review 35e) is the
    # one stored, told «подключён»; the same target with another setting is refused.
    assert (await add(bill(user, payer="P-1"))).id == flat.id
    assert await refused(bill(user, payer="P-1", limit=500_000)) == flat.id
    assert await refused(bill(user)) == flat.id  # None: any flat, the P-1 one included
    other_flat = await add(bill(user, payer="P-2"))  # another flat's ЕПД
    assert await refused(bill(user, payer="P-2", limit=1)) == other_flat.id
    mgts = await add(bill(user, BillKind.MGTS))
    assert await refused(bill(user, BillKind.MGTS, payer="P-9")) == mgts.id  # None covers any

    fund = await add(donation(user, "F-101"))
    assert await refused(donation(user, "F-101", day=20)) == fund.id  # another day: still one
    await add(donation(user, "F-102"))
    await add(donation(user + 1, "F-101"))  # another resident's autopays are theirs

    async with factory() as uow:  # a paused one counts, a deleted one does not
        resident = await uow.residents.get(user)
        assert resident is not None and fund.id is not None
        await set_status(uow, resident, fund.id, AutopayStatus.PAUSED, SET_UP_AT)
    assert await refused(donation(user, "F-101")) == fund.id
    async with factory() as uow:
        await set_status(uow, resident, fund.id, AutopayStatus.DELETED, SET_UP_AT)
    again = await add(donation(user, "F-101"))
    assert again.id != fund.id and again.status is AutopayStatus.ACTIVE


async def test_one_set_up_meanwhile_turns_the_summary_into_the_offer(harness: Harness) -> None:
    """Two set-ups at once (another device, a second message): the one confirmed last is
    refused at «Подключить» and offers the one stored — when it differs (the very same
    settings are the one set-up, told «подключён»: review 35e)."""
    chat = await linked(harness)
    await chat.press("Автоплатежи")
    await epd_summary(chat)
    assert harness.app is not None
    async with harness.app.uow_factory() as uow:
        first = await set_up(uow, bill(chat.chat_id, limit=123_400), SET_UP_AT)
    reply = await chat.press("Подключить")
    assert "Автоплатёж подключён" not in reply.text
    assert chat.last_text.startswith(EXISTS_EPD)
    await chat.press("Открыть автоплатёж")
    assert "Статус: включён" in chat.last_text
    assert [a.id for a in await stored(harness, chat)] == [first.id]


async def test_a_double_tap_on_connect_stores_one_autopay(harness: Harness) -> None:
    chat = await linked(harness)
    await chat.press("Автоплатежи")
    await epd_summary(chat)
    connect = callback_of(chat, "Подключить")
    await asyncio.gather(chat.press("Подключить"), chat.press("Подключить"))
    assert len(await stored(harness, chat)) == 1
    await forge(chat, connect)  # a third, late tap (a client that still shows the button)
    assert len(await stored(harness, chat)) == 1
    assert "Автоплатёж подключён" in "\n".join(chat.history)


async def test_a_double_tap_from_a_thank_you_stores_one_autopay(harness: Harness) -> None:
    """A set-up started under a thank-you stays in its context (it shows the list there)."""
    chat = await linked(harness)
    await chat.press("Благотворительность")
    await chat.press("Детям")
    await chat.press(1)
    await chat.press(nb("300,00 ₽"))
    await chat.press("Оплатить")
    await chat.press("Подключить автоплатёж")
    await chat.press("Раз в месяц")
    await chat.send("25")
    await chat.press("•• 4242")
    connect = callback_of(chat, "Подключить")
    await asyncio.gather(chat.press("Подключить"), chat.press("Подключить"))
    await forge(chat, connect)
    [autopay] = await stored(harness, chat)
    assert autopay.amount == 30_000


# --- forged callback data --------------------------------------------------------------------


async def test_forged_autopay_ids_are_ignored(harness: Harness) -> None:
    chat = await linked(harness)
    other = harness.chat(200002, "Олег")
    await harness.link(other, "demo-standard")
    assert harness.app is not None
    async with harness.app.uow_factory() as uow:
        foreign = await set_up(uow, donation(other.chat_id, "F-101"), SET_UP_AT)

    await chat.press("Автоплатежи")
    await add_donation(chat, 1)
    [mine] = await stored(harness, chat)
    real = callback_of(chat, "Помощь фонду")
    assert real.endswith(f":{mine.id}")
    prefix = real.rsplit(":", 1)[0]
    for forged in ["abc", "", "²", "١٢", "-1", "1e3", " 1", "9" * 40, "987654", str(foreign.id)]:
        await forge(chat, f"{prefix}:{forged}")  # never raises
        assert "Ваши автоплатежи" in chat.last_text, forged
        assert "Статус:" not in chat.last_text
    await chat.press("Помощь фонду")  # the real one still opens
    assert "Статус: включён" in chat.last_text

    intent, _ = prefix.split("\x1d")  # «<intent>\x1d<widget>:<item>», aiogram-dialog's
    for widget in ("confirm", "open", "wd:x", "svc:epd"):  # other windows' buttons
        await forge(chat, f"{intent}\x1d{widget}")
        assert "Статус: включён" in chat.last_text, widget
    assert len(await stored(harness, chat)) == 1


async def test_forged_weekday_and_hidden_summary_buttons_are_ignored(harness: Harness) -> None:
    chat = await linked(harness)
    await chat.press("Автоплатежи")
    await chat.press("➕ Подключить автоплатёж")
    await chat.press("Пожертвование фонду")
    await chat.press(1)
    await chat.press("Раз в неделю")
    prefix = callback_of(chat, "понедельник").rsplit(":", 1)[0]
    for forged in ["x", "²", "7", "-1", "99999999999999999999"]:
        await forge(chat, f"{prefix}:{forged}")
        assert "В какой день недели?" in chat.last_text, forged
    await chat.press("вторник")
    await chat.send("150")
    await chat.press("•• 4242")
    intent, _ = callback_of(chat, "Подключить").split("\x1d")
    for widget in ("open", "resume"):  # shown only for an autopay there is one of
        await forge(chat, f"{intent}\x1d{widget}")
        assert "Проверьте автоплатёж" in chat.last_text
    assert await stored(harness, chat) == []


# --- points with grouped digits --------------------------------------------------------------


async def test_points_are_typed_with_grouped_digits(harness: Harness) -> None:
    chat = harness.chat()
    await harness.link(chat)
    await chat.press("Баллы")
    balance = int(re.sub(r"\D", "", chat.last_text.splitlines()[0]))
    assert balance >= 1_000, chat.last_text
    await chat.press("Перевести баллы в фонд")
    await chat.press(1)
    for typo in ["1000 50", "1 0000"]:  # typos, said so
        assert "разряды по три цифры" in (await chat.send(typo)).text, typo
    for refused in ["1e3", "-100", "0", "+100", "10,5", "сто"]:
        assert "Напишите целое число" in (await chat.send(refused)).text, refused
    assert "обычными цифрами 0–9" in (await chat.send("١٠٠")).text  # foreign digits: named
    too_many = f"{balance + 1:,}".replace(",", " ")
    assert "не больше, чем у вас есть" in (await chat.send(too_many)).text
    await chat.send("1\u00a0000 баллов")  # as the bot writes it (a no-break space)
    assert "Перевести 1\u00a0000 баллов" in chat.last_text
    await chat.press("Подтвердить")
    assert "получил 1\u00a0000 баллов" in chat.last_text
    await chat.press("‹ Назад")
    after = int(re.sub(r"\D", "", chat.last_text.splitlines()[0]))
    assert after == balance - 1_000
