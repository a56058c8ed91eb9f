"""Review 35a: data over time — the hourly retention purge (`bot.jobs.purge_retained`), the
expiries it cuts by, and the keys that must outlive them. A purge may delete only what nobody
still needs: a draft the resident reopened, a login in flight, a pending notification, a
payment screen's intent are not «abandoned»; after a purge an old screen's button, an old
login link or a late press does the right thing in Russian, and money moves once."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from bot.jobs import (
    DRAFTS_KEPT,
    SENT_NOTIFICATIONS_KEPT,
    deliver_notifications,
    purge_retained,
    support_dashboard,
)
from bot.ratelimit import MemoryLimiter
from domain.linking import LINK_TTL
from sandbox import SandboxServer
from sandbox.conversation import Conversation
from storage.fsm import DIALOG_STATE_KEPT
from storage.models import LinkAttemptRow, NotificationRow, PaymentIntentRow, ReportDraftRow
from tests.conftest import POSTGRES_URL, fresh_engine, migrated_sqlite_file
from tests.contract.sandbox_client import FakeClock
from tests.flows.conftest import START_LINK, Harness, _harness, settings_for
from tests.flows.test_autopay_setup import ledger
from tests.flows.test_payments import bill_buttons
from tests.flows.test_reports import ARBAT_10, open311, photo, start_pothole
from tests.flows.test_review33e_web import unlink_in_chat
from tests.flows.test_support import SUPPORT_CHAT
from tests.flows.test_telegram_payments import (
    invoice_for_first_bill,
    pre_checkout,
    successful_payment,
)
from tests.flows.test_telegram_refund import TOKEN

DAY = timedelta(days=1)


@pytest.fixture(params=["sqlite", "postgres"])
async def both(
    request: pytest.FixtureRequest, tmp_path: Path, sandbox: SandboxServer, clock: FakeClock
) -> AsyncIterator[Harness]:
    """The whole bot with its data and dialog state in SQLite (embedded) and in PostgreSQL."""
    overrides: dict[str, Any] = {}
    if request.param == "postgres":
        engine = await fresh_engine("postgres", tmp_path)
        await engine.dispose()
        overrides["database_url"] = POSTGRES_URL
    else:
        await migrated_sqlite_file(tmp_path / "bot.sqlite3")
    async for h in _harness(settings_for(tmp_path, **overrides), sandbox, clock, request):
        yield h


def later(harness: Harness, delta: timedelta) -> None:
    harness.clock.now += delta


async def draft_at_review(harness: Harness) -> Conversation:
    chat = await start_pothole(harness)
    await chat.send_location(*ARBAT_10)
    await chat.send_photo(photo())
    await chat.press("Дальше")
    await chat.send("Глубокая яма у подъезда")
    assert "Тема: Яма на дороге" in chat.last_text and "Отправить" in str(
        chat.telegram.last_message(chat.chat_id, with_keyboard=True)
    )
    return chat


async def count(harness: Harness, model: Any) -> int:
    assert harness.app is not None
    async with harness.app.engine.connect() as connection:
        return int((await connection.execute(select(func.count()).select_from(model))).scalar())


# ---- a draft the resident reopened is not «abandoned» -------------------------------------------


# Was (review 35a): a draft reopened 2 hours ago is purged (its row stamped only on edits);
# «Отправить» then says «обращение уже отправлено» and the report is lost
async def test_a_draft_reopened_yesterday_is_not_purged_under_the_review(both: Harness) -> None:
    harness = both
    assert harness.app is not None
    chat = await draft_at_review(harness)
    # Almost a month later the resident comes back to it: the menu, «Продолжить», the review.
    later(harness, DRAFTS_KEPT - timedelta(hours=1))
    await chat.send("/start")
    await chat.press("Сообщить о проблеме")
    assert "У вас есть неотправленное обращение" in chat.last_text
    await chat.press("Продолжить")
    assert "Тема: Яма на дороге" in chat.last_text
    # Two hours later (they went to take another photo) the hourly purge runs, then they send.
    later(harness, timedelta(hours=2))
    await purge_retained(harness.app)
    reply = await chat.press("Отправить")
    assert "✅ Обращение № NG-" in reply.text, reply.text
    number = reply.text.split("№ ")[1].split()[0]
    [request] = await open311(harness, f"requests/{number}.json")
    assert request["description"] == "Глубокая яма у подъезда"


async def test_a_draft_silent_for_the_whole_period_goes_and_the_review_says_so(
    both: Harness,
) -> None:
    """What the purge is for: a draft nobody touched for DRAFTS_KEPT goes with its dialog;
    the old review's «Отправить» then sends nothing and says it in Russian."""
    harness = both
    assert harness.app is not None
    chat = await draft_at_review(harness)
    later(harness, DRAFTS_KEPT)
    counts = await purge_retained(harness.app)
    assert counts["drafts"] == 0  # exactly at the cut: still kept
    assert await count(harness, ReportDraftRow) == 1
    later(harness, timedelta(seconds=1))
    counts = await purge_retained(harness.app)
    assert counts["drafts"] == 1 and await count(harness, ReportDraftRow) == 0
    reports_before = len(await open311(harness, "requests.json"))
    reply = await chat.press("Отправить")
    text = " ".join([*reply.texts, *(a.text or "" for a in reply.callback_answers)])
    assert "Обращение №" not in text and text.strip(), text
    assert any(ch in text for ch in "абвгдеёжзийклмнопрстуфхцчшщыэюя"), text
    assert len(await open311(harness, "requests.json")) == reports_before


# ---- a login in flight across its expiry -------------------------------------------------------


# Was (review 35a): the hourly purge deletes a login attempt whose code is being exchanged
# (claimed just before its expiry): the resident gets «Вход не удалось сохранить» and must log in
# again
async def test_a_login_being_exchanged_is_not_purged_under_it(
    both: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness = both
    app = harness.app
    assert app is not None
    chat = harness.chat()
    await chat.send("/start")
    await chat.press("Привязать")
    # The resident logs in at the city with seconds of the 10 minutes left; the city is slow
    # to exchange the code, and the purge's hour strikes meanwhile.
    later(harness, LINK_TTL - timedelta(seconds=2))
    real_exchange = app.city.exchange_code

    async def slow_exchange(**kwargs: Any) -> Any:
        later(harness, timedelta(seconds=5))
        await purge_retained(app)
        return await real_exchange(**kwargs)

    monkeypatch.setattr(app.city, "exchange_code", slow_exchange)
    page = await harness.login_page(chat)
    match = START_LINK.search(page)
    assert match, page
    reply = await chat.send(f"/start {match.group(1)}")
    assert "Привязан" in reply.text or "привязан" in reply.text, reply.text
    assert await harness.stored_resident(chat) is not None


async def test_a_login_at_exactly_its_expiry_is_refused_in_russian_and_purged_after(
    both: Harness,
) -> None:
    """The edge is the same on both sides: at `expires_at` the callback refuses (the link is
    10 minutes old) and the purge keeps the row; a moment later the purge takes it."""
    harness = both
    app = harness.app
    assert app is not None
    chat = harness.chat()
    await chat.send("/start")
    await chat.press("Привязать")
    later(harness, LINK_TTL)
    assert (await purge_retained(app))["attempt_tokens"] == 0
    assert await count(harness, LinkAttemptRow) == 1
    page = await harness.login_page(chat)
    assert "действует 10 минут" in page and START_LINK.search(page) is None, page
    later(harness, timedelta(seconds=1))
    await purge_retained(app)
    assert await count(harness, LinkAttemptRow) == 0
    assert await harness.stored_resident(chat) is None


# ---- the outbox: what is waiting or being sent is never purged ---------------------------------


async def test_only_finished_notifications_past_the_cut_are_purged(both: Harness) -> None:
    harness = both
    app = harness.app
    assert app is not None
    now = harness.clock()
    cut = now - SENT_NOTIFICATIONS_KEPT
    rows = {
        "pending-old": ("pending", now - 400 * DAY, None),
        "sending-old": ("sending", now - 400 * DAY, None),
        "sent-at-cut": ("sent", now - 400 * DAY, cut),
        "sent-past-cut": ("sent", now - 400 * DAY, cut - timedelta(seconds=1)),
        "failed-at-cut": ("failed", cut, None),
        "failed-past-cut": ("failed", cut - timedelta(seconds=1), None),
    }
    async with app.engine.begin() as connection:
        for key, (status, due, sent_at) in rows.items():
            await connection.execute(
                insert(NotificationRow).values(
                    telegram_user_id=7,
                    kind="report_status",
                    data={},
                    dedupe_key=f"r35a-{key}",
                    urgent=False,
                    status=status,
                    attempts=1,
                    due_at=due,
                    created_at=due,
                    sent_at=sent_at,
                )
            )
    counts = await purge_retained(app)
    assert counts["notifications"] == 2
    async with app.engine.connect() as connection:
        left = set((await connection.execute(select(NotificationRow.dedupe_key))).scalars())
    assert left == {
        "r35a-pending-old",
        "r35a-sending-old",
        "r35a-sent-at-cut",
        "r35a-failed-at-cut",
    }


# ---- two replicas purge at the same moment -----------------------------------------------------


async def test_two_replicas_purging_at_once_purge_once_and_fail_nowhere(
    pg_harness: Harness,
) -> None:
    harness = pg_harness
    app = harness.app
    assert app is not None
    chat = harness.chat()
    await chat.send("/start")
    await chat.press("Привязать")
    await harness.login_page(chat)  # logged in at the city, never came back: tokens held
    now = harness.clock()
    async with app.engine.begin() as connection:
        for n in range(20):
            await connection.execute(
                insert(NotificationRow).values(
                    telegram_user_id=7,
                    kind="report_status",
                    data={},
                    dedupe_key=f"r35a-twice-{n}",
                    urgent=False,
                    status="sent",
                    attempts=1,
                    due_at=now - 100 * DAY,
                    created_at=now - 100 * DAY,
                    sent_at=now - 100 * DAY,
                )
            )
    later(harness, DIALOG_STATE_KEPT + DAY)
    first, second = await asyncio.gather(purge_retained(app), purge_retained(app))
    assert first["notifications"] + second["notifications"] == 20
    assert first["dialogs"] + second["dialogs"] > 0
    assert await count(harness, NotificationRow) == 0
    assert await count(harness, LinkAttemptRow) == 0


# ---- a payment screen whose dialog was purged ---------------------------------------------------


async def test_an_old_confirm_screen_after_the_purge_charges_nothing_and_says_so(
    both: Harness,
) -> None:
    harness = both
    app = harness.app
    assert app is not None
    chat = harness.chat()
    await harness.link(chat)
    await chat.press("Мои счета")
    await chat.press(bill_buttons(chat)[0])
    await chat.press("Оплатить выбранные")
    assert "•• 4242" in chat.last_text
    charges = len(await ledger(harness))
    later(harness, DIALOG_STATE_KEPT + DAY)
    assert (await purge_retained(app))["dialogs"] > 0
    reply = await chat.press("Оплатить")
    assert len(await ledger(harness)) == charges
    said = " ".join([*reply.texts, *(a.text or "" for a in reply.callback_answers)])
    assert "Оплачено" not in said and re.search("[а-яё]{4}", said), said
    async with app.engine.connect() as connection:
        statuses = (await connection.execute(select(PaymentIntentRow.status))).scalars().all()
    assert set(statuses) <= {"new"}, statuses  # the screen's intent: nothing was sent
    # The same bill paid afresh from the menu: one charge, no «Продолжить оплату» of the old one.
    await chat.press("Мои счета")
    await chat.press(bill_buttons(chat)[0])
    await chat.press("Оплатить выбранные")
    reply = await chat.press("Оплатить")
    assert "Оплачено" in chat.last_text, chat.last_text
    assert len(await ledger(harness)) == charges + 1


# ---- Telegram Payments: an invoice outlives the dialog that sent it ----------------------------


@pytest.fixture(params=["sqlite", "postgres"])
async def tg_both(
    request: pytest.FixtureRequest, tmp_path: Path, sandbox: SandboxServer, clock: FakeClock
) -> AsyncIterator[Harness]:
    """Telegram Payments on and a support supergroup with its «Dashboard» topic, on SQLite and
    on PostgreSQL."""
    overrides: dict[str, Any] = {"payments_provider_token": TOKEN, "support_chat_id": SUPPORT_CHAT}
    if request.param == "postgres":
        engine = await fresh_engine("postgres", tmp_path)
        await engine.dispose()
        overrides["database_url"] = POSTGRES_URL
    else:
        await migrated_sqlite_file(tmp_path / "bot.sqlite3")
    async for harness in _harness(settings_for(tmp_path, **overrides), sandbox, clock, request):
        harness.telegram.register_chat(
            {"id": SUPPORT_CHAT, "type": "supergroup", "title": "Поддержка", "is_forum": True}
        )
        assert harness.app is not None
        await support_dashboard(harness.app, harness.clock)
        yield harness


async def test_an_invoice_paid_after_its_dialog_was_purged_is_registered_once(
    tg_both: Harness,
) -> None:
    harness = tg_both
    app = harness.app
    assert app is not None
    chat, bill, payload = await invoice_for_first_bill(harness)
    later(harness, DIALOG_STATE_KEPT + DAY)
    assert (await purge_retained(app))["dialogs"] > 0
    assert (await pre_checkout(chat, payload, bill["amount"])).ok is True
    first = await successful_payment(chat, payload, bill["amount"], "tg-35a-late")
    assert "Платёж получен и зачислен" in first, first
    # The same charge once more (a redelivery, a second device): nothing registered again.
    await successful_payment(chat, payload, bill["amount"], "tg-35a-late")
    paid = [c for c in await ledger(harness) if c.get("amount") == bill["amount"]]
    assert len(paid) == 1, paid
    async with app.engine.connect() as connection:
        charges = (
            await connection.execute(
                select(PaymentIntentRow.external_charge_id).where(
                    PaymentIntentRow.external_charge_id.is_not(None)
                )
            )
        ).scalars()
        assert list(charges) == ["tg-35a-late"]


async def charge_traces(harness: Harness, charge: str) -> list[str]:
    """Where the database still holds a Telegram charge: an intent, or an outbox row."""
    assert harness.app is not None
    found: list[str] = []
    async with harness.app.engine.connect() as connection:
        for (charge_id,) in await connection.execute(select(PaymentIntentRow.external_charge_id)):
            if charge_id == charge:
                found.append("payment_intents")
        for (data,) in await connection.execute(select(NotificationRow.data)):
            if charge in str(data):
                found.append("notifications")
    return found


# Was (review 35a): Telegram money nobody's intent owns is recorded only as an outbox row: the
# 90-day purge deletes it and nothing in the database says a refund was owed
async def test_money_owed_back_for_an_unowned_charge_outlives_the_outbox_purge(
    tg_both: Harness,
) -> None:
    harness = tg_both
    app = harness.app
    assert app is not None
    chat, bill, payload = await invoice_for_first_bill(harness)
    assert (await pre_checkout(chat, payload, bill["amount"])).ok is True
    await unlink_in_chat(chat)  # on another device, between the checkout and the payment
    text = await successful_payment(chat, payload, bill["amount"], "tg-35a-owed")
    assert "Деньги вернём" in text, text
    while await deliver_notifications(app, app.clock, MemoryLimiter()):
        pass  # the Dashboard is told
    assert await charge_traces(harness, "tg-35a-owed") == ["notifications"]
    later(harness, SENT_NOTIFICATIONS_KEPT + DAY)
    await purge_retained(app)
    assert await charge_traces(harness, "tg-35a-owed") != [], "the owed refund is forgotten"


async def test_an_unlinked_residents_owed_charge_is_kept_past_every_purge(tg_both: Harness) -> None:
    """The linked case for comparison: a Telegram charge the city never registered, owed back
    at unlinking, stays on its anonymous intent whatever the purges delete."""
    harness = tg_both
    app = harness.app
    assert app is not None
    chat, bill, payload = await invoice_for_first_bill(harness)
    assert (await pre_checkout(chat, payload, bill["amount"])).ok is True
    await harness.sandbox_call("PUT", "/sandbox/faults", json={"status": 503})
    text = await successful_payment(chat, payload, bill["amount"], "tg-35a-unreg")
    assert "платить повторно не нужно" in text, text
    await unlink_in_chat(chat)
    await harness.sandbox_call("PUT", "/sandbox/faults", json={})
    later(harness, 400 * DAY)
    await purge_retained(app)
    assert "payment_intents" in await charge_traces(harness, "tg-35a-unreg")
