"""«Отвязать аккаунт» forgets the resident everywhere: after a journey that leaves a trace in
every table (link, pay, a 3-D Secure payment confirmed at the bank, a donation, an autopay, a
report draft with a phone, an e-mail and an address, a support message, muted notifications, a
followed report) and unlinking, no row of any table holds the Telegram id, the city account,
a token, the masked name, the phone, the e-mail or the address; the payments are still there
as anonymous accounting records; no old dialog state is left (SQL or Redis); the autopay
charges nothing; and linking again starts clean."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import aiohttp
from redis.asyncio import Redis
from sqlalchemy import insert, select

from bot.jobs import deliver_notifications, purge_retained, run_autopays, start_scheduler
from bot.ratelimit import MemoryLimiter
from domain.linking import ANONYMOUS
from domain.payments import IntentStatus
from domain.ports import TrackedReport
from sandbox import oauth
from sandbox.browser import pay_on_page
from sandbox.conversation import Conversation
from storage.models import Base, FsmRow, NotificationRow, PaymentIntentRow
from tests.flows.conftest import Harness
from tests.flows.test_payments import bill_buttons
from tests.flows.test_reports import ARBAT_10

MSK = timezone(timedelta(hours=3))
SUPPORT_CHAT = -1001234567890
PHONE = "+7 916 123-45-67"
EMAIL = "maria.vorontsova@example.com"
ADDRESS = "Арбат"  # the draft's place: «ул. Арбат, 10»


def issued_tokens(harness: Harness) -> list[str]:
    """Every access and refresh token the sandbox issues from now on (revoked ones are
    dropped from its store, so they are collected as they are made)."""
    store = harness.sandbox.app[oauth.TOKENS_KEY]
    seen: list[str] = []
    issue_tokens, issue_access = store.issue_tokens, store._issue_access

    def tokens(**kwargs: Any) -> oauth.IssuedTokens:
        issued = issue_tokens(**kwargs)
        seen.append(issued.refresh_token)
        return issued

    def access(refresh_token: str, account_id: str) -> str:
        token = issue_access(refresh_token, account_id)
        seen.append(token)
        return token

    store.issue_tokens = tokens  # type: ignore[method-assign]
    store._issue_access = access  # type: ignore[method-assign]
    return seen


async def with_support(harness: Harness) -> None:
    """The same bot with SUPPORT_CHAT_ID set (a forum supergroup)."""
    harness.settings = harness.settings.model_copy(update={"support_chat_id": SUPPORT_CHAT})
    await harness.restart()
    harness.telegram.register_chat(
        {"id": SUPPORT_CHAT, "type": "supergroup", "title": "Поддержка", "is_forum": True}
    )


async def journey(harness: Harness, chat: Conversation) -> None:
    """Everything that leaves a trace, as the resident does it."""
    await chat.send("/start")
    await chat.press("Мои счета")  # a bill paid with the saved card
    await chat.press(bill_buttons(chat)[0])
    await chat.press("Оплатить выбранные")
    assert "✅ Оплачено" in (await chat.press("Оплатить")).text

    await chat.send("/start")  # a 3-D Secure payment confirmed at the bank: the bot has it
    await chat.press("Мои счета")  # pending, the city has it paid
    await chat.press(bill_buttons(chat)[0])
    await chat.press("Оплатить выбранные")
    await chat.press("Другой способ оплаты")
    await chat.press("•• 3220")
    await chat.press("Оплатить")
    page = await pay_on_page(chat.url_of("Перейти к оплате"), action="confirm")
    assert 'data-status="succeeded"' in page.text

    await chat.send("/start")  # a donation, and an autopay for the same fund
    await donate_with_monthly_autopay(chat)

    await chat.send("/start")  # a report draft with a phone, an e-mail and an address
    await chat.press("Сообщить о проблеме")
    await chat.send("яма на дороге")
    await chat.press("Яма на дороге")
    await chat.send_location(*ARBAT_10)
    await chat.press("Пропустить")
    await chat.send(f"Яма у подъезда, звоните {PHONE} или пишите {EMAIL}")
    assert ADDRESS in chat.last_text  # the review: not sent

    await chat.send("/start")  # a support message
    await chat.press("Поддержка")
    await chat.send("Здравствуйте, вопрос про автоплатёж")
    await chat.send("/start")

    assert harness.app is not None
    async with harness.app.uow_factory() as uow:  # what «Настройки» and following store
        await uow.notification_settings.set_muted(chat.chat_id, {"report_status"})
        await uow.tracked_reports.track(
            TrackedReport(chat.chat_id, "NG-0001", own=False), datetime.now(UTC)
        )
        await uow.commit()


async def every_row(harness: Harness) -> dict[str, list[str]]:
    """Every row of every table, as text (JSON columns as their JSON)."""
    assert harness.app is not None
    rows: dict[str, list[str]] = {}
    async with harness.app.engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            result = await connection.execute(select(table))
            rows[table.name] = [
                json.dumps(dict(row._mapping), default=str, ensure_ascii=False) for row in result
            ]
    return rows


async def redis_keys(harness: Harness, chat: Conversation) -> dict[str, str]:
    """The Redis dialog keys of the resident's chat and their values."""
    assert harness.app is not None and harness.app.settings.redis_url
    client = Redis.from_url(harness.app.settings.redis_url, decode_responses=True)
    try:
        names = [n async for n in client.scan_iter(match=f"fsm:*:{chat.chat_id}:*")]
        return {name: str(await client.get(name)) for name in names if not name.endswith(":lock")}
    finally:
        await client.aclose()


async def dialog_state(harness: Harness, chat: Conversation) -> dict[str, str]:
    """The resident's dialog keys → their value, in whichever storage the bot has."""
    assert harness.app is not None
    if harness.app.settings.redis_url:
        return await redis_keys(harness, chat)
    engine = harness.app.state_engine or harness.app.engine
    async with engine.connect() as connection:
        result = await connection.execute(
            select(FsmRow.key, FsmRow.state, FsmRow.data).where(
                FsmRow.key.contains(f":{chat.chat_id}:")
            )
        )
        return {
            key: f"{state} {json.dumps(data, ensure_ascii=False)}" for key, state, data in result
        }


async def donate_with_monthly_autopay(chat: Conversation) -> None:
    """From the menu: 300 ₽ to the first children's fund, then a monthly autopay for it on the
    25th with the saved card •• 4242."""
    await chat.press("Благотворительность")
    await chat.press("Детям")
    await chat.press(1)
    await chat.press("300,00\u00a0₽")
    await chat.press("Оплатить")
    await chat.press("Подключить автоплатёж")
    await chat.press("Раз в месяц")
    await chat.send("25")
    await chat.press("•• 4242")
    assert "Автоплатёж подключён" in (await chat.press("Подключить")).text


async def test_unlinking_forgets_the_resident_everywhere(any_state_harness: Harness) -> None:
    harness = any_state_harness
    await with_support(harness)
    tokens = issued_tokens(harness)
    chat = harness.chat()
    await harness.link(chat)
    resident = await harness.stored_resident(chat)
    assert resident is not None and harness.app is not None
    await journey(harness, chat)
    [thread] = [t for t, name in harness.telegram.forum_topics[SUPPORT_CHAT].items() if "#" in name]
    assert resident.masked_name in harness.telegram.forum_topics[SUPPORT_CHAT][thread]
    charges = len((await harness.sandbox_call("GET", "/sandbox/ledger"))["charges"])
    state_before = await dialog_state(harness, chat)
    assert any("aiogd:context" in key for key in state_before)

    await chat.press("Отвязать аккаунт")
    reply = await chat.press("Да, отвязать")
    assert "Аккаунт отвязан, данные удалены" in reply.text
    assert chat.buttons == ["🔑 Привязать аккаунт mos.ru", "💬 Поддержка"]

    secrets = {
        "telegram id": str(chat.chat_id),
        "city account": resident.city_account_id,
        "masked name": resident.masked_name,
        "surname": "Воронцова",
        # the phone as typed and as digits; not a short piece of it, which random keys and
        # ids contain by chance («916» made this test flaky)
        "phone": "123-45-67",
        "phone digits": "9161234567",
        "e-mail": EMAIL,
        "address": ADDRESS,
        "card id": "pm-full",
        **{f"token {i}": token for i, token in enumerate(tokens)},
    }
    assert len(tokens) >= 2
    tables = await every_row(harness)
    leaks = {
        (table, name): row
        for table, rows in tables.items()
        if table != "fsm_state"  # its keys are the chat's: checked below, by content
        for row in rows
        for name, secret in secrets.items()
        if secret in row
    }
    assert leaks == {}
    for table in ("residents", "link_attempts", "report_drafts", "tracked_reports"):
        assert tables[table] == [], table
    for table in ("notification_settings", "support_topics", "notifications"):
        assert tables[table] == [], table

    # The accounting records: every payment that happened, anonymous, with what the city and
    # a receipt need — the 3-D Secure one asked about while the token still worked.
    async with harness.app.engine.connect() as connection:
        intents = (await connection.execute(select(PaymentIntentRow))).all()
    assert len(intents) == 3
    assert {row.telegram_user_id for row in intents} == {ANONYMOUS}
    assert {row.status for row in intents} == {IntentStatus.SUCCEEDED.value}
    assert all(row.payment_id and row.key and row.amount > 0 for row in intents)
    assert all(row.method_id is None and row.card_last4 is None for row in intents)
    assert any(row.fund_id for row in intents) and any(row.bill_ids for row in intents)

    # Dialog state: nothing from before is left; only the menu just shown, holding nothing.
    state_after = await dialog_state(harness, chat)
    old_contexts = {k for k in state_before if "aiogd:context" in k}
    assert old_contexts & set(state_after) == set()
    assert len([k for k in state_after if "aiogd:context" in k]) == 1
    personal = [s for name, s in secrets.items() if name != "telegram id"]  # the chat's own
    assert [v for v in state_after.values() if any(s in v for s in personal)] == []

    # The support topic stays for staff, named without the resident.
    assert harness.telegram.forum_topics[SUPPORT_CHAT][thread] == "Житель · #1"

    # The autopay never charges again: the 25th of next month comes and goes.
    for day in (25, 26):
        harness.clock.now = (datetime.now(MSK) + timedelta(days=31)).replace(
            day=day, hour=10, minute=0, second=5
        )
        await run_autopays(harness.app, harness.clock)
        await deliver_notifications(harness.app, harness.clock, MemoryLimiter())
    ledger = (await harness.sandbox_call("GET", "/sandbox/ledger"))["charges"]
    assert len(ledger) == charges

    # Linking again starts clean: no draft offered, no autopay, notifications all on.
    await harness.link(chat)
    await chat.press("Сообщить о проблеме")
    assert "неотправленное обращение" not in chat.last_text
    assert "Что случилось?" in chat.last_text
    await chat.send("/start")
    await chat.press("Автоплатежи")
    assert "Автоплатежей пока нет" in chat.last_text
    async with harness.app.uow_factory() as uow:
        assert await uow.notification_settings.muted(chat.chat_id) == set()
        assert await uow.payment_intents.recent(chat.chat_id, 10) == []
        assert await uow.tracked_reports.of_resident(chat.chat_id) == []


async def test_the_retention_job_purges_what_has_expired(harness: Harness) -> None:
    """An abandoned login (its tokens revoked at the city), outbox rows sent or given up
    (failed) long ago and dialog state silent for over 30 days go; what is fresh stays. The
    job is scheduled."""
    assert harness.app is not None
    app = harness.app
    tokens = issued_tokens(harness)
    chat = harness.chat()
    await chat.send("/start")
    await chat.press("Привязать")
    await harness.login_page(chat)  # logged in at the city, never came back to Telegram
    access = tokens[0]  # issued before its refresh token
    assert await profile_status(harness, access) == 200
    now = harness.clock()
    async with app.engine.begin() as connection:
        for age, status in ((91, "sent"), (89, "sent"), (200, "failed")):
            await connection.execute(
                insert(NotificationRow).values(
                    telegram_user_id=7,
                    kind="report_status",
                    data={},
                    dedupe_key=f"test-{age}",
                    urgent=False,
                    status=status,
                    attempts=1,
                    due_at=now - timedelta(days=age),
                    created_at=now - timedelta(days=age),
                    sent_at=now - timedelta(days=age) if status == "sent" else None,
                )
            )
    async with app.state_engine.begin() if app.state_engine else app.engine.begin() as connection:
        await connection.execute(
            insert(FsmRow).values(
                key="fsm:1:7:7:default",
                state="Menu:main",
                data={},
                updated_at=now - timedelta(days=31),
            )
        )
    fresh_state = await dialog_state(harness, chat)
    assert fresh_state

    counts = await purge_retained(app, harness.clock)
    assert counts == {"attempt_tokens": 0, "notifications": 2, "drafts": 0, "dialogs": 1}
    assert await profile_status(harness, access) == 200  # the login has not expired yet
    harness.clock.advance(11 * 60)
    counts = await purge_retained(app, harness.clock)
    assert counts == {"attempt_tokens": 1, "notifications": 0, "drafts": 0, "dialogs": 0}
    assert await profile_status(harness, access) == 401
    tables = await every_row(harness)
    assert tables["link_attempts"] == []
    assert sorted(json.loads(row)["dedupe_key"] for row in tables["notifications"]) == ["test-89"]
    assert await dialog_state(harness, chat) == fresh_state
    assert not [row for row in tables["fsm_state"] if "fsm:1:7:7:" in row]

    scheduler = start_scheduler(app)
    try:
        assert purge_retained in [job.func for job in scheduler.get_jobs()]
    finally:
        scheduler.shutdown(wait=False)


async def profile_status(harness: Harness, access_token: str) -> int:
    async with aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bearer {access_token}"}
        async with http.get(harness.sandbox.url + "/api/v1/profile", headers=headers) as answer:
            return answer.status
