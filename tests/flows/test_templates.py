"""«Шаблоны»: a template made from a paid ЕПД pays next month's bill in two taps (the template,
«Оплатить»), once even with a double tap; a donation template with «Изменить сумму» keeps the
last amount; hostile names; delete; forged buttons; a fund gone; unlinking forgets them."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest

from domain.payable import Payable, PayableKind, Requisites
from domain.templates import (
    MAX_TEMPLATES,
    PaymentTemplate,
    TooManyTemplates,
    save_template,
    template_target,
)
from sandbox import funds as sandbox_funds
from sandbox import oauth
from sandbox.conversation import Conversation
from sandbox.data import BillKind, BillStatus, CityBill
from tests.flows.conftest import Harness
from tests.flows.test_charity_points_meters import linked, open_first_fund
from tests.flows.test_hostile_input import forge, forged_item, no_crash
from tests.flows.test_hostile_text import assert_clean
from tests.flows.test_payments import bill_buttons, ledger
from tests.money_text import nb

FORGED = "Эта кнопка не работает. Откройте нужный раздел из меню."
EPD_NAME = "ЕПД, код 8215604937"  # demo-standard's payer code
NEXT_EPD = 654_321
PROVIDER = "ЕИРЦ «Городской расчётный центр»"  # demo-standard's ЕПД
NEXT_PROVIDER = "ГБУ «Жилищник района Сосновая Роща»"  # next month's: the payer code matters


def _has(chat: Conversation, label: str) -> bool:
    """Whether a button shows `label` (buttons carry emoji: «✏️ Изменить сумму»)."""
    return any(label in b for b in chat.buttons)


async def _templates_of(harness: Harness, chat: Conversation) -> list[PaymentTemplate]:
    assert harness.app is not None
    async with harness.app.uow_factory() as uow:
        return await uow.templates.of_resident(chat.chat_id)


def _add_next_epd(harness: Harness) -> str:
    """Next month's ЕПД for demo-standard's flat, issued at the sandbox now."""
    data = harness.sandbox.app[oauth.DATA_KEY]
    bill = CityBill(
        id=data.new_bill_id(),
        account_id="C-100002",
        kind=BillKind.EPD,
        title="ЕПД за следующий месяц",
        provider=NEXT_PROVIDER,
        amount=NEXT_EPD,
        due_date=data.today + timedelta(days=40),
        status=BillStatus.UNPAID,
        payer_code="8215604937",
        period="01.2099",
    )
    data.add_bill(bill)
    return bill.id


async def _donation_template(harness: Harness, name: str | None = None) -> tuple[Conversation, str]:
    """demo-standard gave 500 ₽ to the first children's fund and saved it as a template
    (`name` typed, or the proposed one); back at the menu."""
    chat = await linked(harness, "demo-standard")
    fund = await open_first_fund(chat)
    await chat.press(nb("500,00 ₽"))
    await chat.press("Оплатить")
    await chat.press("Сохранить как шаблон")
    if name is None:
        await chat.press(f"Сохранить: {fund}"[:40])
    else:
        await chat.send(name)
    assert "сохранён" in chat.last_text
    await chat.press("Готово")
    return chat, fund


async def test_an_epd_template_pays_next_months_bill_in_two_taps_once(
    any_state_harness: Harness,
) -> None:
    harness = any_state_harness
    chat = await linked(harness, "demo-standard")
    await chat.press("Мои счета")
    [epd] = [b for b in bill_buttons(chat) if "ЕПД" in b]
    await chat.press(epd)
    await chat.press("Оплатить выбранные (1)")
    await chat.press("Оплатить")
    assert "✅ Оплачено" in chat.last_text
    await chat.press("Сохранить как шаблон")
    assert f"Сохранить: {EPD_NAME}" in chat.buttons
    await chat.press(f"Сохранить: {EPD_NAME}")
    assert f"Шаблон «{EPD_NAME}» сохранён" in chat.last_text
    [kept] = await _templates_of(harness, chat)  # the service and the flat, no bill id
    assert kept.kind is PayableKind.BILLS and kept.amount is None
    assert kept.target == {"bill_kind": "epd", "payer_code": "8215604937", "provider": PROVIDER}
    await chat.press("Готово")

    # No ЕПД unpaid now: the template says so and pays nothing.
    await chat.press("Шаблоны")
    await chat.press(f"{EPD_NAME} · по счёту")
    assert "Счёта к оплате сейчас нет" in chat.last_text
    await chat.press("‹ Назад")

    bill_id = _add_next_epd(harness)
    # Two taps from the list: the template, then «Оплатить» (tapped twice at once).
    await chat.press(f"{EPD_NAME} · по счёту")
    confirm = chat.last_text
    assert f"Шаблон «{EPD_NAME}»" in confirm and nb("6 543,21 ₽") in confirm
    assert f"Получатель: {NEXT_PROVIDER}" in confirm  # the bill's own, on the confirmation
    assert any("Оплатить" in b for b in chat.buttons)  # the checks below look at real buttons
    assert not _has(chat, "Изменить сумму")  # a bill's amount is the city's
    assert not _has(chat, "Сохранить как шаблон")
    mid = chat.last_message.message_id  # type: ignore[union-attr]
    await asyncio.gather(
        chat.press("Оплатить", message_id=mid), chat.press("Оплатить", message_id=mid)
    )
    assert "✅ Оплачено" in chat.last_text
    assert not _has(chat, "Сохранить как шаблон")  # it is a template already
    charges = await ledger(harness)
    assert [c["amount"] for c in charges] == [623_790, NEXT_EPD]
    assert harness.sandbox.app[oauth.DATA_KEY].bill(bill_id).status is BillStatus.PAID
    await chat.press("Готово")  # back at «Шаблоны»
    assert f"{EPD_NAME} · по счёту" in chat.buttons
    assert_clean(chat)


async def test_a_donation_template_changes_its_amount_and_keeps_the_last(
    harness: Harness,
) -> None:
    chat, fund = await _donation_template(harness)
    await chat.press("Шаблоны")
    button = [b for b in chat.buttons if nb("500,00 ₽") in b]
    assert len(button) == 1
    await chat.press(button[0])
    assert nb(f"Пожертвование фонду «{fund}» — 500,00 ₽") in chat.last_text
    await chat.press("Изменить сумму")
    for bad in ("1e5", "-5", "0", "²", "10"):
        reply = await chat.send(bad)
        no_crash(reply)
        assert "Пожертвование фонду" not in reply.text
    await chat.send("700")
    assert nb(f"Пожертвование фонду «{fund}» — 700,00 ₽") in chat.last_text
    await chat.press("Оплатить")
    await chat.press("Готово")
    assert [c["amount"] for c in await ledger(harness)] == [50_000, 70_000]
    [kept] = await _templates_of(harness, chat)
    assert kept.amount == 70_000
    assert any(nb("700,00 ₽") in b for b in chat.buttons), (chat.last_text, chat.buttons)
    assert_clean(chat)


@pytest.mark.markup_in_values
async def test_hostile_names_rename_and_delete(harness: Harness) -> None:
    chat, _ = await _donation_template(harness, "<b>Фонд</b> & дети")
    [kept] = await _templates_of(harness, chat)
    assert kept.name == "<b>Фонд</b> & дети"
    await chat.press("Шаблоны")
    assert any(b.startswith("<b>Фонд</b> & дети") for b in chat.buttons)  # plain text
    await chat.press("Переименовать или удалить")
    await chat.press(1)
    assert "Шаблон «&lt;b&gt;" not in chat.last_text  # escaped once, shown as typed
    assert "Шаблон «<b>Фонд</b> & дети»" in chat.last_text
    await chat.press("Переименовать")
    for bad, answer in (("x" * 5_000, "Слишком длинное"), ("   \n ", "не может быть пустым")):
        reply = await chat.send(bad)
        assert answer in reply.text
    reply = await chat.send("  Детям\u200b  ²  ")
    assert "называется «Детям ²»" in reply.text
    [kept] = await _templates_of(harness, chat)
    assert kept.name == "Детям ²"
    await chat.press("Удалить")
    assert "Удалить шаблон «Детям ²»?" in chat.last_text
    mid = chat.last_message.message_id  # type: ignore[union-attr]
    replies = await asyncio.gather(
        chat.press("Да, удалить", message_id=mid), chat.press("Да, удалить", message_id=mid)
    )
    for reply in replies:
        no_crash(reply)
    assert await _templates_of(harness, chat) == []
    assert "Шаблонов пока нет" in chat.last_text


async def test_forged_template_buttons_pay_nothing(harness: Harness) -> None:
    chat, _ = await _donation_template(harness)
    await chat.press("Шаблоны")
    [button] = [b for b in chat.buttons if nb("500,00 ₽") in b]
    for item in ("1", "١", "99999999999999999999", "-1", "<b>", "", "../1"):
        reply = await forge(chat, forged_item(chat, button, item))
        no_crash(reply)
        assert [a.text for a in reply.callback_answers] == [FORGED]
        assert "Пожертвование фонду" not in chat.last_text
    # Another resident's template id is not this resident's, whatever the button says.
    assert [c["amount"] for c in await ledger(harness)] == [50_000]


async def test_a_template_of_a_fund_gone_says_so(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat, fund = await _donation_template(harness)
    [kept] = await _templates_of(harness, chat)
    gone = kept.target["fund_id"]
    funds = tuple(f for f in sandbox_funds.FUNDS if f.id != gone)
    monkeypatch.setattr(sandbox_funds, "FUNDS", funds)
    monkeypatch.setattr(sandbox_funds, "_BY_ID", {f.id: f for f in funds})
    await chat.press("Шаблоны")
    await chat.press(1)
    assert f"Фонд «{fund}» больше не принимает пожертвования" in chat.last_text
    assert not _has(chat, "Оплатить")
    await chat.press("Удалить шаблон")
    await chat.press("Да, удалить")
    assert await _templates_of(harness, chat) == []
    assert [c["amount"] for c in await ledger(harness)] == [50_000]


async def test_unlinking_forgets_the_templates(harness: Harness) -> None:
    chat, _ = await _donation_template(harness)
    assert len(await _templates_of(harness, chat)) == 1
    await chat.press("Отвязать аккаунт")
    await chat.press("Да, отвязать")
    assert await _templates_of(harness, chat) == []
    await harness.link(chat, "demo-standard")
    await chat.press("Шаблоны")
    assert "Шаблонов пока нет" in chat.last_text


async def test_at_most_twenty_and_the_same_payee_is_replaced(harness: Harness) -> None:
    chat = await linked(harness, "demo-standard")
    resident = await harness.stored_resident(chat)
    assert resident is not None and harness.app is not None
    now = harness.clock()
    async with harness.app.uow_factory() as uow:
        for n in range(MAX_TEMPLATES):
            template = PaymentTemplate(0, f"T{n}", PayableKind.DONATION, {"kind": "donation",
                                       "fund_id": f"F-{n}"}, 5_000)  # fmt: skip
            _, replaced = await save_template(uow, resident, template, now)
            assert not replaced
        again = PaymentTemplate(0, "same", PayableKind.DONATION, {"kind": "donation",
                                "fund_id": "F-3"}, 9_000)  # fmt: skip
        kept, replaced = await save_template(uow, resident, again, now)
        assert replaced and kept.name == "same" and kept.amount == 9_000
        extra = PaymentTemplate(0, "extra", PayableKind.DONATION, {"kind": "donation",
                                "fund_id": "F-99"}, 5_000)  # fmt: skip
        with pytest.raises(TooManyTemplates):
            await save_template(uow, resident, extra, now)
        await uow.commit()
    await chat.press("Шаблоны")
    assert "›" in " ".join(chat.buttons) or len(chat.buttons) < MAX_TEMPLATES  # paged
    assert len(await _templates_of(harness, chat)) == MAX_TEMPLATES


async def test_requisites_templates_pay_or_say_the_platform_refused(harness: Harness) -> None:
    chat = await linked(harness, "demo-standard")
    resident = await harness.stored_resident(chat)
    assert resident is not None and harness.app is not None
    good = Requisites(
        payee_name="ГБУ «Жилищник района»",
        payee_inn="7701234567",
        personal_acc="40702810900000000001",
        bic="044525225",
        purpose="Взнос на капремонт",
        pers_acc="8215604937",
    )
    bad = replace(good, payee_name="Старый ТСЖ", payee_inn="12345")
    async with harness.app.uow_factory() as uow:
        for name, requisites, amount in (("Капремонт", good, 123_400), ("ТСЖ", bad, 5_000)):
            target = template_target(Payable.by_requisites(requisites))
            template = PaymentTemplate(0, name, PayableKind.REQUISITES, target, amount)
            await save_template(uow, resident, template, harness.clock())
        await uow.commit()
    await chat.send("/start")
    await chat.press("Шаблоны")
    await chat.press(nb("Капремонт · 1 234,00 ₽"))
    assert "Оплата по реквизитам" in chat.last_text and "ГБУ «Жилищник района»" in chat.last_text
    await chat.press("Оплатить")
    assert "✅ Оплачено" in chat.last_text
    await chat.press("Готово")
    await chat.press(nb("ТСЖ · 50,00 ₽"))
    await chat.press("Оплатить")
    assert "Город не принял платёж по реквизитам" in chat.last_text
    assert [c["amount"] for c in await ledger(harness)] == [123_400]


async def test_a_topup_templates_new_amount_is_checked_as_the_topup_step_checks_it(
    harness: Harness,
) -> None:
    """«Изменить сумму» of a «Тройка» template: the service's limits and the room left on the
    card now (not only the operator's ceiling), as «Пополнить» itself checks them."""
    chat = await linked(harness, "demo-full")
    await chat.press("Пополнить")
    await chat.press("Тройка")
    await chat.send("0012 345 678")  # 150,00 ₽ on it, at most 3 000,00 ₽
    await chat.press(nb("500,00 ₽"))
    await chat.press(next(b for b in chat.buttons if b.startswith("Оплатить")))
    assert "✅ Оплачено" in chat.last_text
    await chat.press("Сохранить как шаблон")
    await chat.press(1)  # the proposed name
    assert "сохранён" in chat.last_text
    await chat.press("Готово")
    await chat.press("Шаблоны")
    await chat.press(next(b for b in chat.buttons if nb("500,00 ₽") in b))
    await chat.press("Изменить сумму")
    for typed, said in (
        ("2 400", nb("сейчас можно добавить не больше 2 350,00 ₽")),  # 650 on the card now
        ("0", "Пополнить можно от"),
        ("-5", "Пополнить можно от"),
        ("1e5", "Не понял сумму"),
        ("²", "обычными цифрами"),
    ):
        reply = await chat.send(typed)
        no_crash(reply)
        assert said in reply.text, (typed, reply.text)
        assert "Итого" not in reply.text
    await chat.send("2 350")
    assert nb("Итого: 2 350,00 ₽") in chat.last_text
    await chat.press(next(b for b in chat.buttons if b.startswith("Оплатить")))
    assert "✅ Оплачено" in chat.last_text
    assert [c["amount"] for c in await ledger(harness)] == [50_000, 235_000]
