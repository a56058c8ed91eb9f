"""Review of «Шаблоны» (issue 15 part 4): what a resident, an operator and an attacker do to a
payment template. Each test is named after the behaviour that must hold; each failed when
written (the finding is in its docstring)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import insert, select

from domain.autopay import Autopay, AutopayKind, AutopayStatus, Frequency, Schedule
from domain.autopaying import set_up
from domain.payable import Payable, PayableKind, Requisites
from domain.templates import PaymentTemplate, save_template, template_target
from domain.uin import with_control_digit
from sandbox import oauth
from sandbox.browser import demo_login
from sandbox.conversation import Conversation
from sandbox.data import BillKind, BillStatus, CityBill
from storage.models import PaymentTemplateRow
from tests.flows.conftest import START_LINK, Harness
from tests.flows.receipt_codes import epd_receipt, payload, qr_png, uin_receipt
from tests.flows.test_charity_points_meters import linked
from tests.flows.test_hostile_input import no_crash
from tests.flows.test_payments import bill_buttons, ledger
from tests.flows.test_templates import EPD_NAME, _templates_of
from tests.money_text import nb

EARLIER = "Уже оплачено"
SAVE = "Сохранить как шаблон"


def _offers_save(chat: Conversation) -> bool:
    return any(SAVE in b for b in chat.buttons)


async def test_a_requisites_template_never_pays_a_paid_month_or_a_uin_again_unwarned(
    harness: Harness,
) -> None:
    """A receipt's requisites name one accrual by their period or UIN. The template drops both
    (domain/templates.py `template_target`) but keeps the purpose «Оплата ЕПД за 10.2026»; the
    pay step's «Уже оплачено …» check compares the period and UIN (domain/payments.py
    `same_target`), so the template's first tap pays October again with no warning — the
    receipt itself would have warned. A UIN receipt unknown to the city (a fine) is paid by
    requisites and offered as a template: its next tap pays the fine's payee again, without
    the UIN, i.e. money the payee cannot match to anything (fines by bill make no template)."""
    chat = await linked(harness, "demo-full")
    receipt = epd_receipt(pers_acc="1234567890", period="10.2026", amount=812_450)
    await chat.send_photo(qr_png(payload(receipt)))
    await chat.press("Оплатить")
    await chat.press(nb("Оплатить 8 124,50 ₽"))
    assert "✅ Оплачено" in chat.last_text
    if _offers_save(chat):  # a template of it may exist: it must not re-pay October unasked
        await chat.press(SAVE)
        await chat.press(1)  # the proposed name
        await chat.press("Готово")
        await chat.press("Шаблоны")
        await chat.press(1)
        text = chat.last_text
        assert EARLIER in text or "10.2026" not in text, text
        await chat.send("/start")

    uin = with_control_digit("1881017720" + "12345678" + "7")  # not issued at the city
    await chat.send_photo(qr_png(payload(uin_receipt(uin, amount=150_000))))
    await chat.press("Оплатить")
    await chat.press(nb("Оплатить 1 500,00 ₽"))
    assert "✅ Оплачено" in chat.last_text
    assert not _offers_save(chat), "a payment naming one accrual by its UIN makes a template"
    assert [c["amount"] for c in await ledger(harness)] == [812_450, 150_000]


async def test_a_kindergarten_template_pays_only_its_own_kindergartens_bill(
    harness: Harness,
) -> None:
    """Bills without a payer code (МГТС, детский сад, кружок — the city gives none for them)
    make a template keyed by the service alone: `{"bill_kind": "kindergarten", "payer_code":
    None}` (domain/templates.py `template_target`), and `_current_bill` then takes the first
    unpaid bill of *any* kindergarten (`not code or ...`). A second child's kindergarten bill
    is paid by the first one's template — the confirmation shows only the bill's title, the
    same for both — and saving a template of the second *replaces* the first (`same_payee`)."""
    chat = await linked(harness, "demo-full")
    await chat.press("Мои счета")
    [kindergarten] = [b for b in bill_buttons(chat) if "детский сад" in b]
    await chat.press(kindergarten)
    await chat.press("Оплатить выбранные (1)")
    await chat.press("Оплатить")
    assert "✅ Оплачено" in chat.last_text
    await chat.press(SAVE)
    await chat.press(1)
    await chat.press("Готово")
    await chat.send("/start")

    data = harness.sandbox.app[oauth.DATA_KEY]
    other = data.add_bill(
        CityBill(
            id=data.new_bill_id(),
            account_id="C-100003",
            kind=BillKind.KINDERGARTEN,
            title="Родительская плата за детский сад",  # the city's title, the same for both
            provider="ГБОУ «Школа № 2025», дошкольное отделение",
            amount=222_200,
            due_date=data.today + timedelta(days=5),
            status=BillStatus.UNPAID,
            uin=with_control_digit("0349347501" + "261125" + "0077711"),
            period="11.2026",
        )
    )
    await chat.press("Шаблоны")
    await chat.press(1)
    assert nb("2 222,00 ₽") not in chat.last_text, chat.last_text  # another kindergarten's

    await chat.send("/start")
    await chat.press("Мои счета")
    for _ in range(5):  # the list is paged (five a page): this bill is due later than most
        if any(nb("2 222,00 ₽") in b for b in bill_buttons(chat)):
            break
        await chat.press("›")
    [second] = [b for b in bill_buttons(chat) if nb("2 222,00 ₽") in b]
    await chat.press(second)
    await chat.press("Оплатить выбранные (1)")
    await chat.press("Оплатить")
    assert data.bill(other.id).status is BillStatus.PAID
    await chat.press(SAVE)
    await chat.press(1)
    assert "уже был" not in chat.last_text, chat.last_text  # the first one's template replaced
    assert len(await _templates_of(harness, chat)) == 2


async def test_linking_another_account_over_a_link_keeps_no_template_of_the_first(
    harness: Harness,
) -> None:
    """Two logins started before either finished (two «Привязать» taps, two tabs) link
    account A, then account B over it. `confirm_link` (domain/linking.py) overwrites the
    resident and forgets nothing that `unlink` forgets: A's ЕПД template (A's payer code)
    stays on B, and tapping it promises «Когда он придёт, шаблон оплатит его» — it never will.
    (The same holds for A's autopays, known bills and notification settings.)"""
    chat = harness.chat()
    await chat.send("/start")
    await chat.press("Привязать")
    first = chat.url_of("mos.ru")
    await chat.press("‹ Назад")
    await chat.press("Привязать")
    second = chat.url_of("mos.ru")
    page = (await demo_login(first, "demo-standard")).text
    await chat.send(f"/start {START_LINK.search(page).group(1)}")  # type: ignore[union-attr]
    await chat.press("Мои счета")
    [epd] = [b for b in bill_buttons(chat) if "ЕПД" in b]
    await chat.press(epd)
    await chat.press("Оплатить выбранные (1)")
    await chat.press("Оплатить")
    await chat.press(SAVE)
    await chat.press(f"Сохранить: {EPD_NAME}")
    await chat.press("Готово")
    assert len(await _templates_of(harness, chat)) == 1
    assert harness.app is not None
    now = harness.clock()
    async with harness.app.uow_factory() as uow:  # A's autopay to a fund, A's bills seen
        monthly = Schedule(Frequency.MONTHLY, 25)
        autopay = Autopay(chat.chat_id, AutopayKind.FIXED, monthly, "pm-std-4242", now,
                          amount=20_000, fund_id="F-101", fund_name="Фонд")  # fmt: skip
        await set_up(uow, autopay, now)
        await uow.known_bills.watch(chat.chat_id, now)
        await uow.known_bills.add(chat.chat_id, ["B-A-1"], now)
        await uow.commit()

    page = (await demo_login(second, "demo-full")).text
    await chat.send(f"/start {START_LINK.search(page).group(1)}")  # type: ignore[union-attr]
    resident = await harness.stored_resident(chat)
    assert resident is not None and resident.city_account_id == "C-100003"
    await chat.press("Шаблоны")
    assert not any("8215604937" in b for b in chat.buttons), chat.buttons
    assert await _templates_of(harness, chat) == []
    async with harness.app.uow_factory() as uow:  # nothing of A's left to charge or compare
        kept = await uow.autopays.of_resident(chat.chat_id)
        assert [a for a in kept if a.status is not AutopayStatus.DELETED] == []
        assert not await uow.known_bills.watched(chat.chat_id)


async def test_a_template_row_this_version_cannot_read_does_not_break_the_list(
    harness: Harness,
) -> None:
    """A template keeps `Payable.to_json()` in the database, and every read rebuilds it strictly:
    `PayableKind(row.kind)` in storage/templates.py `_domain` and `Requisites(**…)` in
    `Payable.from_json`. One row written by another version (a rollback after a release that
    added a kind — top-ups were just added; a field renamed or added to `Requisites`) makes
    «Шаблоны» fail for that resident as a whole — the list, and saving any new template
    (`save_template` reads them all)."""
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
    now = harness.clock()
    async with harness.app.uow_factory() as uow:
        target = template_target(Payable.by_requisites(good))
        template = PaymentTemplate(0, "Капремонт", PayableKind.REQUISITES, target, 123_400)
        await save_template(uow, resident, template, now)
        await uow.commit()
    newer = {"kind": "requisites", "requisites": {**target["requisites"], "kbk": "1"}}
    async with harness.app.engine.begin() as connection:
        for kind, stored in (("parking_permit", {"kind": "parking_permit"}), ("requisites", newer)):
            await connection.execute(
                insert(PaymentTemplateRow).values(
                    telegram_user_id=chat.chat_id, name=f"from {kind}", kind=kind,
                    target=stored, amount=5_000, display={}, created_at=now, updated_at=now,
                )
            )  # fmt: skip
    await chat.send("/start")
    reply = await chat.press("Шаблоны")
    no_crash(reply)
    assert any(b.startswith("Капремонт") for b in chat.buttons), chat.buttons
    reply = await chat.press(next(b for b in chat.buttons if b.startswith("from requisites")))
    no_crash(reply)
    assert "Шаблон недоступен" in reply.text and not any("Оплатить" in b for b in chat.buttons)
    await chat.press("Удалить шаблон")
    await chat.press("Да, удалить")
    assert {t.name for t in await _templates_of(harness, chat)} == {
        "Капремонт",
        "from parking_permit",
    }
    await chat.press("Переименовать или удалить")  # the other one: only «Удалить»
    await chat.press(next(b for b in chat.buttons if b.startswith("from parking_permit")))
    assert "Шаблон недоступен" in chat.last_text
    assert not any("Переименовать" in b for b in chat.buttons), chat.buttons
    async with harness.app.uow_factory() as uow:  # saving reads them all: still works
        donation = PaymentTemplate(0, "Фонд", PayableKind.DONATION, {"kind": "donation",
                                   "fund_id": "F-101"}, 5_000)  # fmt: skip
        await save_template(uow, resident, donation, now)
        await uow.commit()
    async with harness.app.engine.begin() as connection:  # its row is left as it was stored
        kinds = (await connection.execute(select(PaymentTemplateRow.kind))).scalars().all()
    assert sorted(kinds) == ["donation", "parking_permit", "requisites"]
