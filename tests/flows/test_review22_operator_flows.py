"""Review 22 (operator): the database's connections cut at the worst moments of a resident's
journey — right after the city charged and before the bot wrote it down, while a report is
sent, in the OAuth callback — with polling's own retry in front (`TransientRetryMiddleware`,
as `bot.runners.run_polling` installs it). The real application over the strict Telegram double
and the city sandbox; PostgreSQL is real and its connections are ended with
pg_terminate_backend (this test's own database only). What is logged meanwhile is read as the
operator reads it: the JSON lines of `bot.logs.setup_logging`."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import asyncpg  # type: ignore[import-untyped]
import pytest
import structlog

import domain.payments
import domain.reporting
from bot.album import install_first
from bot.logs import setup_logging
from bot.middlewares import TransientRetryMiddleware
from tests.conftest import POSTGRES_URL
from tests.flows.conftest import Harness
from tests.flows.test_payments import bill_buttons, ledger


async def cut_database_connections() -> int:
    """End every connection to this test's PostgreSQL database but the one asking: the
    server restarting, a failover, a network blip. Returns how many were ended."""
    parts = urlsplit(POSTGRES_URL)
    database = parts.path.lstrip("/")
    connection = await asyncpg.connect(f"postgresql://{parts.netloc}/postgres")
    try:
        rows = await connection.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
    finally:
        await connection.close()
    return len(rows)


def polling_retries(harness: Harness) -> None:
    """What `run_polling` puts in front of the dispatcher: a transient failure is handled
    again (here after 0.2 s and 0.5 s), the resident told only after the last attempt."""
    assert harness.app is not None
    install_first(harness.app.dispatcher, TransientRetryMiddleware((0.2, 0.5)))


@contextmanager
def operator_log() -> Iterator[list[dict[str, Any]]]:
    """Every line the process writes (ours and the libraries'), as the JSON objects an
    operator's log collector receives."""
    out = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    lines: list[dict[str, Any]] = []
    try:
        setup_logging("INFO", "json", out)
        yield lines
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
        structlog.reset_defaults()
        lines.extend(json.loads(line) for line in out.getvalue().splitlines() if line.strip())


def once_after(
    monkeypatch: pytest.MonkeyPatch, module: Any, name: str, fault: Callable[[], Awaitable[Any]]
) -> list[int]:
    """Run `fault` once, just before the first call of `module.name` (a step of a use case):
    the moment is exact, the step itself is the real one. Returns a list counting the calls."""
    original = getattr(module, name)
    calls: list[int] = []

    async def wrapped(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            await fault()
        return await original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapped)
    return calls


def errors_in(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if line.get("level") in ("error", "critical", "exception")]


# ---- a bill payment: the connections cut between the city's charge and its record ------------


async def test_a_charge_whose_record_loses_the_database_is_recorded_once_on_the_retry(
    pg_harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness = pg_harness
    polling_retries(harness)
    chat = harness.chat()
    await harness.link(chat)
    await chat.press("Мои счета")
    await chat.press(bill_buttons(chat)[0])
    await chat.press("Оплатить выбранные")
    assert "карта Visa •• 4242" in chat.last_text
    calls = once_after(monkeypatch, domain.payments, "record", cut_database_connections)
    with operator_log() as lines:
        reply = await chat.press("Оплатить")
    assert len(calls) >= 2  # the record failed once and was written on the retry
    assert "✅ Оплачено" in reply.text, reply.texts
    assert len(await ledger(harness)) == 1  # charged once
    assert harness.app is not None
    async with harness.app.uow_factory() as uow:
        intents = await uow.payment_intents.recent(chat.chat_id, 5)
    assert [intent.status.value for intent in intents] == ["succeeded"]
    assert errors_in(lines) == [], errors_in(lines)  # a passing failure, not a bug
    retries = [line for line in lines if line.get("event") == "update.retry"]
    assert len(retries) == 1, lines


# ---- the OAuth callback: the connections cut after the city issued the tokens -----------------


def live_refresh_tokens(harness: Harness) -> int:
    from sandbox.oauth import TOKENS_KEY

    return len(harness.sandbox.app[TOKENS_KEY]._refresh)


# Was (review 22): the OAuth callback losing the database after the city's exchange answers
# aiohttp's bare «500 Internal Server Error» and leaves the issued city tokens alive
async def test_the_callback_losing_the_database_answers_in_russian_and_revokes_the_tokens(
    pg_harness: Harness,
) -> None:
    """The resident logged in at mos.ru; the city redirects to /oauth/callback; the code is
    exchanged and the profile read — then the database's connections are cut before the
    attempt is written. The browser must show the bot's own page (in Russian, saying to try
    again from the chat), and the tokens the city issued for this spent attempt must not be
    left alive at the city (as when the profile call fails: `authorize_link` revokes them)."""
    harness = pg_harness
    assert harness.app is not None
    chat = harness.chat()
    await chat.send("/start")
    await chat.press("Привязать")
    city = harness.app.city
    original = city.profile

    async def profile_then_cut(session: Any) -> Any:
        answer = await original(session)
        await cut_database_connections()
        return answer

    before = live_refresh_tokens(harness)
    city.profile = profile_then_cut  # type: ignore[method-assign]
    try:
        with operator_log() as lines:
            page = await harness.login_page(chat)
    finally:
        city.profile = original  # type: ignore[method-assign]
    assert "Internal Server Error" not in page, page
    assert "<html" in page and "Telegram" in page, page  # the bot's page, not aiohttp's
    assert live_refresh_tokens(harness) == before, "a spent attempt's tokens left alive"
    assert errors_in(lines) == [], errors_in(lines)


# ---- a report: the connections cut after the city made it, before it is followed -------------


# Was (review 22): a report made at the city whose record lost the database is, on the retry,
# offered back to its author as someone's open duplicate nearby
async def test_a_report_whose_record_loses_the_database_is_sent_once_and_answered(
    pg_harness: Harness,
) -> None:
    """«Отправить»: the city makes the report, then the database's connections are cut
    before the bot follows it and forgets the draft. Polling retries the press: the resident
    must read «✅ Обращение № …» of that one report — not be offered their own report as an
    open one nearby «Можно следить за ним … или отправить своё» (the duplicate check runs
    again before the send, though the draft's send key says it was sent)."""
    from tests.flows.test_reports import ARBAT_10, open311, photo, start_pothole

    harness = pg_harness
    polling_retries(harness)
    assert harness.app is not None
    chat = await start_pothole(harness)
    await chat.send_location(*ARBAT_10)
    await chat.send_photo(photo())
    await chat.press("Дальше")
    await chat.send("Глубокая яма посреди пешеходной зоны")
    city = harness.app.city
    original = city.create_report
    calls: list[int] = []

    async def create_then_cut(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        answer = await original(*args, **kwargs)
        if len(calls) == 1:
            await cut_database_connections()
        return answer

    def made(requests: list[dict[str, Any]]) -> set[str]:
        return {r["service_request_id"] for r in requests if r.get("account_id") == "C-100003"}

    earlier = made(await open311(harness, "requests.json"))  # the demo account's own, seeded
    city.create_report = create_then_cut  # type: ignore[method-assign]
    try:
        with operator_log() as lines:
            reply = await chat.press("Отправить")
    finally:
        city.create_report = original  # type: ignore[method-assign]
    assert "✅ Обращение № NG-" in reply.text, reply.texts
    number = reply.text.split("№ ")[1].split()[0]
    assert made(await open311(harness, "requests.json")) - earlier == {number}  # made once
    assert errors_in(lines) == [], errors_in(lines)
