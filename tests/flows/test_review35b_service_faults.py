"""Review 35b: real infrastructure faults in the middle of a resident's money flows and of the
background jobs, injected at the service level: PostgreSQL's connections ended
(pg_terminate_backend, this test's database only) before a chosen SQL statement of an update,
a row lock held by another session, Redis's clients of this test's database killed
(CLIENT KILL ID …) before a chosen command, the city sandbox failing at each step, and a
restart over the same databases after the fault. The fault's moment is drawn from a seeded
random generator over the statements the step really runs, so every run hits the same moment
and several runs together cover the step."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg  # type: ignore[import-untyped]
import pytest
from redis.asyncio import Redis
from sqlalchemy import event
from sqlalchemy.util import await_only

from bot.album import install_first
from bot.failures import classify
from bot.middlewares import TransientRetryMiddleware
from sandbox import SandboxServer
from sandbox.conversation import Conversation
from tests.conftest import POSTGRES_URL, REDIS_URL, fresh_engine, need_service
from tests.contract.sandbox_client import FakeClock
from tests.flows.conftest import Harness, _harness, settings_for
from tests.flows.test_payments import bill_buttons, ledger
from tests.flows.test_review22_operator_flows import (
    cut_database_connections,
    errors_in,
    operator_log,
    polling_retries,
)
from tests.money_text import nb

SEED = 35  # the fault moments are drawn from random.Random(SEED): the same every run
APOLOGY = "Что-то пошло не так"


# ---- fault injection at the service level --------------------------------------------------


@contextmanager
def before_statement(
    harness: Harness,
    nth: int | Callable[[str, int], bool],
    fault: Callable[[], Awaitable[Any]],
) -> Iterator[list[str]]:
    """Run `fault` once (a real fault of the server: connections ended, a lock taken by
    another session), inside the application's own greenlet, just before the application's
    `nth` SQL step from now on (1-based; a statement or a COMMIT), or before the first step
    `nth(statement, index)` picks. Returns the steps seen, in order."""
    assert harness.app is not None
    engines = [harness.app.engine]
    if harness.app.state_engine is not None:
        engines.append(harness.app.state_engine)
    seen: list[str] = []
    fired: list[int] = []

    def step(what: str) -> None:
        seen.append(what)
        chosen = len(seen) == nth if isinstance(nth, int) else nth(what, len(seen))
        if chosen and not fired:
            fired.append(len(seen))
            await_only(fault())

    def execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        step(" ".join(statement.split())[:90])

    def commit(conn: Any) -> None:
        step("COMMIT")

    for engine in engines:
        event.listen(engine.sync_engine, "before_cursor_execute", execute)
        event.listen(engine.sync_engine, "commit", commit)
    try:
        yield seen
    finally:
        for engine in engines:
            event.remove(engine.sync_engine, "before_cursor_execute", execute)
            event.remove(engine.sync_engine, "commit", commit)


def kth_of(k: int, counts: Callable[[str], bool]) -> tuple[Callable[[str, int], bool], list[int]]:
    """A step picker for `before_statement`: the k-th step `counts` admits; with the list of
    the admitted steps' positions (1-based, in the steps seen)."""
    admitted: list[int] = []

    def pick(statement: str, index: int) -> bool:
        if counts(statement):
            admitted.append(index)
        return len(admitted) == k and admitted[-1] == index

    return pick, admitted


async def answered(action: Awaitable[Any], seconds: float = 20.0) -> Any:
    """The action's result, or an AssertionError when it is still waiting after `seconds`
    (a liveness bound: an answer takes well under a second; the hung task is cancelled)."""
    task = asyncio.ensure_future(action)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        task.cancel()
        raise AssertionError(f"no answer after {seconds} s: the update hangs")
    return task.result()


async def outcome(action: Awaitable[Any]) -> BaseException | None:
    """The update's failure as the webhook sees it (None: handled)."""
    try:
        await action
    except Exception as error:
        return error
    return None


async def server_lost() -> None:
    """The database's connections ended, and the client told so (as by the time a failover
    is noticed): the next statement on them fails as a lost connection."""
    await cut_database_connections()
    await asyncio.sleep(0.2)


def charged_once_and_told(chat: Conversation, texts: list[str]) -> None:
    assert sum("✅ Оплачено" in t for t in texts) == 1, texts
    assert not [t for t in chat.history if APOLOGY in t], chat.history[-4:]


async def at_confirmation(chat: Conversation) -> None:
    """From «Мои счета» (or the menu): the first unpaid bill picked, its confirmation shown."""
    if "Мои счета" in " ".join(chat.buttons) and not bill_buttons(chat):
        await chat.press("Мои счета")
    await chat.press(bill_buttons(chat)[0])
    await chat.press("Оплатить выбранные")
    assert "карта Visa •• 4242" in chat.last_text, chat.last_text


# ---- PostgreSQL's connections ended before a statement of «Оплатить» (data and state in PG) --


def _not_state(statement: str) -> bool:
    return "fsm_state" not in statement


def _not_a_state_read(statement: str) -> bool:
    return not statement.startswith("SELECT fsm_state.")  # those reads: the xfails below


async def test_connections_ended_before_any_data_statement_of_a_payment_charge_once(
    pg_harness: Harness,
) -> None:
    """«Оплатить» with polling's retry in front; the database's connections are ended before
    the k-th statement (or COMMIT) on the resident's data — k drawn at random (seeded) for
    each of six bills paid in a row. Each bill: one charge in the city's ledger, one
    «✅ Оплачено», no apology, and the chat goes on to the next bill."""
    harness = pg_harness
    polling_retries(harness)
    chat = harness.chat()
    await harness.link(chat)
    await chat.press("Мои счета")
    moments = random.Random(SEED).sample(range(1, 10), 6)
    hit: list[str] = []
    for k in moments:
        await at_confirmation(chat)
        before = len(await ledger(harness))
        kth_data_step, counted = kth_of(k, _not_state)
        with before_statement(harness, kth_data_step, cut_database_connections) as seen:
            reply = await answered(chat.press("Оплатить"))
        hit.append(seen[counted[k - 1] - 1] if len(counted) >= k else "(none)")
        assert len(await ledger(harness)) == before + 1, (k, hit[-1])
        charged_once_and_told(chat, reply.texts)
        await chat.press("Готово")
    assert "(none)" not in hit, hit  # every drawn moment was a real step of the press
    assert any(h.startswith("UPDATE payment_intents") for h in hit), hit


def second_state_read_after_the_resident() -> Callable[[str, int], bool]:
    """aiogram-dialog's read of the dialog stack in a button's update: the second read of the
    dialog state after the resident's row (the first is the context the button's intent id
    names; `IntentMiddleware._load_context_by_intent`, then `StorageProxy.load_stack`)."""
    reads: list[str] = []

    def pick(statement: str, index: int) -> bool:
        if statement.startswith("SELECT residents."):
            reads.append("resident")
        elif reads and statement.startswith("SELECT fsm_state."):
            reads.append("state")
        return reads.count("state") == 2 and statement.startswith("SELECT fsm_state.")

    return pick


def held_locks(harness: Harness) -> list[Any]:
    """The per-chat and per-dialog-stack locks held now (aiogram's in-process isolation, the
    one used when the dialog state lives in the database)."""
    assert harness.app is not None
    isolation = harness.app.dispatcher.fsm.events_isolation
    inner = getattr(isolation, "inner", isolation)  # `bot.isolation.UpdateScopedIsolation`
    return [key for key, lock in getattr(inner, "_locks", {}).items() if lock.locked()]


# Was (review 35b): a dropped DB connection at the dialog stack's read leaks the chat's stack
# lock: every later update of that chat hangs silently until a restart
async def test_connections_ended_at_the_dialog_stack_read_leave_the_chat_answering(
    pg_harness: Harness,
) -> None:
    """Data and dialog state in PostgreSQL, no Redis (a supported configuration: the state in
    the database, aiogram's in-process lock). «Оплатить» is pressed; the database's
    connections are ended just before aiogram-dialog reads the dialog stack. That attempt
    fails as a passing failure (the webhook answers 503; Telegram delivers the press again).
    The redelivery must be handled: charged once, «✅ Оплачено» — not wait forever on the
    stack lock the failed attempt took and never gave back."""
    harness = pg_harness
    assert harness.app is not None
    # as the webhook feeds it: Telegram delivers the update again, nobody is told each time
    harness.app.dispatcher.workflow_data["telegram_retries"] = True
    chat = harness.chat()
    await harness.link(chat)
    await chat.press("Мои счета")
    await at_confirmation(chat)
    with before_statement(harness, second_state_read_after_the_resident(), server_lost):
        failure = await answered(outcome(chat.press("Оплатить")), 8)
    assert failure is not None and classify(failure).transient, repr(failure)  # a 503
    assert held_locks(harness) == [], "a failed update left the chat's lock held"
    # Telegram's redeliveries of the press: the data's pool may hand out one more connection
    # the cut ended (no pre-ping per checkout), a passing failure again — never a hang
    for _ in range(3):
        again = await answered(outcome(chat.press("Оплатить")), 10)
        if again is None:
            break
        assert classify(again).transient, repr(again)
    assert again is None, repr(again)
    charged_once_and_told(chat, chat.history)
    assert len(await ledger(harness)) == 1


# Was (review 35b): with polling's retry a dropped DB connection at the dialog stack's read hangs
# the press forever: the retry waits on the stack lock its first attempt leaked
async def test_polling_retry_after_a_cut_at_the_stack_read_answers_the_press(
    pg_harness: Harness,
) -> None:
    """The same fault under long polling (`TransientRetryMiddleware` in front): the retry of
    the press must answer «✅ Оплачено», charged once, and later messages of the chat be
    answered — a hung update also holds `bot.polling`'s confirmed prefix, so nothing after it
    is confirmed to Telegram either."""
    harness = pg_harness
    polling_retries(harness)
    chat = harness.chat()
    await harness.link(chat)
    await chat.press("Мои счета")
    await at_confirmation(chat)
    with before_statement(harness, second_state_read_after_the_resident(), server_lost):
        reply = await answered(chat.press("Оплатить"), 8)
    charged_once_and_told(chat, reply.texts)
    assert len(await ledger(harness)) == 1


# ---- a row lock held by another session, with the operator's lock_timeout -------------------


def _admin_dsn() -> tuple[str, str]:
    parts = urlsplit(POSTGRES_URL)
    return f"postgresql://{parts.netloc}/postgres", parts.path.lstrip("/")


@pytest.fixture
async def lock_timeout(pg_harness: Harness) -> AsyncIterator[Harness]:
    """The operator's `ALTER DATABASE … SET lock_timeout` (this test's database only): a
    statement waiting longer than 300 ms for a row lock fails with 55P03 instead of waiting
    for ever. The application's connections are ended so that its new ones take it."""
    admin, database = _admin_dsn()
    connection = await asyncpg.connect(admin)
    try:
        await connection.execute(f'ALTER DATABASE "{database}" SET lock_timeout = 300')
        await server_lost()
        yield pg_harness
    finally:
        await connection.execute(f'ALTER DATABASE "{database}" RESET lock_timeout')
        await connection.close()


class SideLock:
    """Another session (an operator's console, a stuck replica, a long migration step) holds
    every row of `table` FOR UPDATE for `seconds`, then commits."""

    def __init__(self, table: str, seconds: float) -> None:
        self.table, self.seconds = table, seconds
        self.taken = 0
        self._tasks: list[asyncio.Task[None]] = []

    async def take(self) -> None:
        parts = urlsplit(POSTGRES_URL)
        connection = await asyncpg.connect(f"postgresql://{parts.netloc}{parts.path}")
        transaction = connection.transaction()
        await transaction.start()
        await connection.execute(f"SELECT 1 FROM {self.table} FOR UPDATE")
        self.taken += 1

        async def release() -> None:
            await asyncio.sleep(self.seconds)
            await transaction.commit()
            await connection.close()

        self._tasks.append(asyncio.ensure_future(release()))

    async def wait(self) -> None:
        await asyncio.gather(*self._tasks)


# Was (review 35b): a lock_timeout (55P03) while recording a charge is classified as a bug: the
# resident is told «Что-то пошло не так» for money that went, and the press is dropped
async def test_a_lock_held_elsewhere_while_the_charge_is_recorded_is_waited_out(
    lock_timeout: Harness,
) -> None:
    """The city charged; the bot's UPDATE that records it meets a row lock another session
    holds for 0.6 s, longer than the operator's lock_timeout. A lock that is let go passes:
    polling's retry records the charge (the intent's key: no second charge) and says
    «✅ Оплачено» — never the generic apology for a payment that went through, and never a
    press marked done with its charge unrecorded."""
    harness = lock_timeout
    polling_retries(harness)
    chat = harness.chat()
    await harness.link(chat)
    await chat.press("Мои счета")
    await at_confirmation(chat)
    side = SideLock("payment_intents", 0.6)

    def the_record(statement: str, index: int) -> bool:
        return statement.startswith("UPDATE payment_intents SET status=")

    with operator_log() as lines, before_statement(harness, the_record, side.take):
        failure = await answered(outcome(chat.press("Оплатить")))
    await side.wait()
    assert side.taken == 1
    assert len(await ledger(harness)) == 1
    assert failure is None, repr(failure)  # handled, not dropped (polling confirms it anyway)
    charged_once_and_told(chat, chat.history)
    assert harness.app is not None
    async with harness.app.uow_factory() as uow:
        intents = await uow.payment_intents.recent(chat.chat_id, 5)
    assert [intent.status.value for intent in intents] == ["succeeded"]
    assert errors_in(lines) == [], errors_in(lines)


# ---- Redis: the clients of this test's database killed before a command of «Оплатить» -------


def _redis_db() -> int:
    return int(urlsplit(REDIS_URL).path.lstrip("/") or 0)


async def kill_redis_clients() -> int:
    """CLIENT KILL of every normal client connected to this test's Redis database (never
    another database's): Redis restarting under the bot, a proxy dropping its connections."""
    admin = Redis.from_url(REDIS_URL)
    try:
        me = await admin.client_id()
        killed = 0
        for client in await admin.client_list(_type="normal"):
            if int(client["db"]) == _redis_db() and int(client["id"]) != me:
                killed += await admin.execute_command("CLIENT", "KILL", "ID", client["id"])
        return killed
    finally:
        await admin.aclose()


def counting(
    fault: Callable[[], Awaitable[int]], results: list[int]
) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        results.append(await fault())

    return run


@pytest.fixture
async def production(
    request: pytest.FixtureRequest, tmp_path: Path, sandbox: SandboxServer, clock: FakeClock
) -> AsyncIterator[Harness]:
    """Production's configuration: data in PostgreSQL; dialog state, locks, de-duplication and
    the send limiter in Redis; polling's retry with short delays in front."""
    need_service(REDIS_URL, "TEST_REDIS_URL")
    plain = Redis.from_url(REDIS_URL)
    await plain.flushdb()
    await plain.aclose()
    engine = await fresh_engine("postgres", tmp_path)
    await engine.dispose()
    values = settings_for(tmp_path, database_url=POSTGRES_URL, redis_url=REDIS_URL)
    async for harness in _harness(values, sandbox, clock, request):
        assert harness.app is not None
        install_first(harness.app.dispatcher, TransientRetryMiddleware((0.2, 0.5, 1.0)))
        yield harness


@contextmanager
def around_redis_command(
    monkeypatch: pytest.MonkeyPatch,
    nth: int,
    fault: Callable[[], Awaitable[Any]],
    *,
    after: bool = False,
) -> Iterator[list[str]]:
    """Run `fault` once, just before (or just after: sent, its reply not yet read) the `nth`
    command (1-based) any Redis client of this process sends from now on. Returns the
    commands seen."""
    from redis.asyncio.connection import AbstractConnection

    original = AbstractConnection.send_packed_command
    seen: list[str] = []

    async def send(self: Any, command: Any, check_health: bool = True) -> None:
        first = command[0] if isinstance(command, list) and command else command
        seen.append(bytes(first)[:60].decode("latin-1", "replace"))
        if len(seen) == nth and not after:
            await fault()
        await original(self, command, check_health)
        if len(seen) == nth and after:
            await fault()

    monkeypatch.setattr(AbstractConnection, "send_packed_command", send)
    try:
        yield seen
    finally:
        monkeypatch.setattr(AbstractConnection, "send_packed_command", original)


async def test_redis_clients_killed_around_each_command_of_a_payment_charge_once(
    production: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """«Оплатить» under production's configuration; every client of the bot's Redis database is
    killed just before, or just after (sent, reply unread), one of the update's Redis
    commands — the de-duplication claim, the chat's lock with the dialog state's read, the
    end that writes the state and marks the update done — each moment once, in a seeded
    random order, one bill each. Each: one charge, one «✅ Оплачено», no apology, and the
    chat answers the next press."""
    harness = production
    chat = harness.chat()
    await harness.link(chat)
    await chat.press("Мои счета")
    moments = [(nth, after) for nth in (1, 2, 3) for after in (False, True)]
    random.Random(SEED).shuffle(moments)
    for nth, after in moments:
        await at_confirmation(chat)
        before = len(await ledger(harness))
        killed: list[int] = []
        kill = counting(kill_redis_clients, killed)

        with (
            operator_log() as lines,
            around_redis_command(monkeypatch, nth, kill, after=after) as seen,
        ):
            failure = await answered(outcome(chat.press("Оплатить")))
        assert len(seen) >= nth and killed and killed[0] > 0, (seen, killed)
        assert failure is None, (nth, after, repr(failure))
        assert len(await ledger(harness)) == before + 1, (nth, after)
        charged_once_and_told(chat, chat.history)
        assert errors_in(lines) == [], (nth, after, errors_in(lines))
        await chat.press("Готово")


async def test_connections_ended_at_a_write_of_a_points_transfer_then_a_restart_debit_once(
    pg_harness: Harness,
) -> None:
    """«Подтвердить» a transfer of 100 points to a fund (its key kept in the chat's state
    while the platform is asked); the database's connections are ended before the k-th write
    of that press (the key's write, its commit, the key dropped, the dialog state saved — k
    drawn at random, seeded), polling retries, then the process restarts over the same
    databases. Each time: 100 points debited once, the resident told the fund got them, no
    apology, and «Баллы» afterwards shows the balance with nothing «unknown» left to forget."""
    from tests.flows.test_charity_points_meters import linked
    from tests.flows.test_review15_prizes_money import _transfer_debits

    harness = pg_harness
    polling_retries(harness)
    chat = await linked(harness)
    moments = random.Random(SEED).sample(range(1, 9), 3)
    for done, k in enumerate(moments, start=1):
        await chat.press("Баллы")
        await chat.press("Перевести баллы в фонд")
        await chat.press(1)
        await chat.send("100")
        kth_write, writes = kth_of(k, _not_a_state_read)
        with before_statement(harness, kth_write, server_lost) as seen:
            failure = await answered(outcome(chat.press("Подтвердить")))
        assert len(writes) >= k, seen
        assert failure is None, (k, seen[writes[k - 1] - 1], repr(failure))
        assert _transfer_debits(harness) == [-100] * done, (k, seen[writes[k - 1] - 1])
        assert nb("получил 100 баллов") in chat.last_text, (k, chat.history[-3:])
        await harness.restart()
        polling_retries(harness)
        chat = harness.chat()
        reply = await chat.send("/start")
        assert "Здравствуйте" in reply.text or "Баллы" in " ".join(chat.buttons), reply.texts
        reply = await chat.press("Баллы")
        assert nb(f"{1250 - 100 * done:,}".replace(",", " ")) in reply.text, reply.text
        assert "Забыть" not in " ".join(chat.buttons), chat.buttons
        assert not [t for t in chat.history if APOLOGY in t]
        await chat.send("/start")


# Was (review 35b): a dropped DB connection while the result screen's getter reads the intent is
# logged at ERROR with a traceback («Cannot get window data»), though it passes
async def test_connections_ended_at_the_result_screen_read_are_logged_as_passing(
    pg_harness: Harness,
) -> None:
    """The charge recorded and committed; the connections are ended just before the result
    window («✅ Оплачено») reads the intent back. Polling's retry shows «✅ Оплачено», charged
    once (holds) — and the operator's log must say a passing trouble (warnings), not an
    ERROR with a traceback from aiogram-dialog's window renderer."""
    harness = pg_harness
    polling_retries(harness)
    chat = harness.chat()
    await harness.link(chat)
    await chat.press("Мои счета")
    await at_confirmation(chat)
    recorded: list[str] = []

    def read_after_the_record(statement: str, index: int) -> bool:
        if statement.startswith("UPDATE payment_intents SET status="):
            recorded.append("update")
        elif recorded and statement == "COMMIT":
            recorded.append("commit")
        return "commit" in recorded and statement.startswith("SELECT payment_intents.")

    with operator_log() as lines, before_statement(harness, read_after_the_record, server_lost):
        failure = await answered(outcome(chat.press("Оплатить")))
    assert failure is None, repr(failure)
    assert "commit" in recorded
    assert len(await ledger(harness)) == 1
    charged_once_and_told(chat, chat.history)
    assert errors_in(lines) == [], [line.get("event") for line in errors_in(lines)]
