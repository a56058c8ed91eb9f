"""Plans benchmark: the query plans of a typical update and of each job's tick on a PostgreSQL
database of production size.

1. Seeding (skipped when a seed of the same scale from the last day is there; `--reseed` forces
   it), on a database
   of its own beside the benchmarks' (`<benchmarks' database>_plans`: the other benchmarks drop
   their schema on every run), migrated with the project's Alembic migrations, one
   `INSERT … SELECT … FROM generate_series` a table, then ANALYZE. At scale 1:

   residents          100 000  linked (tokens encrypted with SEED_KEY)
   notifications    1 000 000  97 % sent over the last 89 days, 2 % pending (half of them due),
                               1 % failed — the outbox
   tracked_reports    500 000  80 % closed
   payment_intents  1 000 000  succeeded / failed, 0.1 % pending (recent)
   autopays           100 000  90 % active, due over the next 30 days (1 % due now), 10 % paused
   autopay_runs     1 000 000  ten months an autopay, nearly all finished, 10 STARTED a day ago
   fsm_state          200 000  dialog state, two keys a resident, written in the last 30 days
   report_drafts       10 000  notification_settings 20 000, link_attempts 5 000 (unexpired)
   (nothing is past its retention: purge_retained deletes nothing and the seed stays)

2. Capture: the real code paths run against it while a `before_cursor_execute` listener on the
   engine collects every statement with its parameters —
   update   a seeded resident's /start and the menu's «Сообщить о проблеме» and «Назад»
            through the real application (`create_application` on this database, no Redis: the
            dialog state is in SQL; in-process Bot API and city sandbox): UnitOfWorkMiddleware's
            resident lookup, the dialog state, the handlers' queries
   outbox   `notifications.claim_to_send(now, SEND_BATCH)`
   autopay  `autopays.claim_due(now, TICK_BATCH)`, `autopays.reminders_due(…, REMIND_BATCH)`
   reports  `tracked_reports.claim_for_poll(now, POLL_BATCH)`
   reconcile `payment_intents.unsettled(now - 10 min)`, `autopays.started_runs(…)` (stranded runs)
   purge    `bot.jobs.purge_retained` (it commits; the seed has nothing past retention)
   The repositories' claims run in a unit of work that is rolled back: the seed stays as it is.

3. EXPLAIN (without ANALYZE: nothing runs) of each distinct statement with its captured
   parameters, on the same engine (`exec_driver_sql`, the driver's own parameters). A plan that
   reads a table of more than BIG_TABLE rows (pg_class.reltuples) whole — a Seq Scan, or an
   index scan with no Index Cond filtering by more than its partial index's predicate — is
   printed in full; else «every query uses an index». `--all-plans` prints every plan.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.common import NO_POSTGRES, Services, _sibling_database, heading, table
from bot.app import Application, create_application
from bot.config import Settings
from bot.jobs import purge_retained
from bot.outbox import SEND_BATCH
from domain.autopay_runs import ASKED_FOR
from domain.autopaying import REMIND_BATCH, TICK_BATCH
from domain.reporting import POLL_BATCH
from sandbox import SandboxServer
from sandbox.conversation import Conversation
from sandbox.telegram_double import LocalTelegram
from storage.autopays import LEASE
from storage.database import create_engine
from storage.migrate import upgrade
from storage.token_cipher import TokenCipher
from storage.uow import SqlUnitOfWork

# A fixed Fernet key (bench data only, no secret): the seeded tokens decrypt with it, run after run.
SEED_KEY = "YmVuY2gtcGxhbnMtc2VlZC1rZXktMzItYnl0ZXMhISE="
FIRST_USER = 800_000_001
BIG_TABLE = 10_000  # rows: a Seq Scan on a bigger table is reported
SIZES = {  # at scale 1
    "residents": 100_000,
    "notifications": 1_000_000,
    "tracked_reports": 500_000,
    "payment_intents": 1_000_000,
    "autopays": 100_000,
    "autopay_runs": 1_000_000,
    "fsm_state": 200_000,
    "report_drafts": 10_000,
    "notification_settings": 20_000,
    "link_attempts": 5_000,
}
SKIP = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "SET ", "SHOW ")

# One INSERT … SELECT a table; :n the rows, :residents the residents, :first the first user id.
# `g` runs 0 … n-1; a row's resident is g % residents. Times are relative to now().
SEED = {
    "residents": """
        INSERT INTO residents (telegram_user_id, chat_id, city_account_id, account_level,
            masked_name, access_token_enc, refresh_token_enc, token_expires_at, locale,
            linked_at, created_at, updated_at)
        SELECT :first + g, :first + g, 'acc-' || g, 'full', 'Житель ' || g, :access, :refresh,
            now() + interval '1 day', 'ru', now() - g * interval '1 minute',
            now() - g * interval '1 minute', now() - g * interval '1 minute'
        FROM generate_series(0, :n - 1) AS g""",
    "notifications": """
        INSERT INTO notifications (telegram_user_id, kind, data, dedupe_key, urgent, status,
            attempts, due_at, message_id, created_at, sent_at)
        SELECT :first + g % :residents, 'report_status', '{}', 'seed-' || g, g % 50 = 0,
            CASE WHEN g % 100 < 97 THEN 'sent' WHEN g % 100 < 99 THEN 'pending' ELSE 'failed' END,
            CASE WHEN g % 100 < 97 THEN 1 WHEN g % 100 < 99 THEN 0 ELSE 5 END,
            CASE WHEN g % 100 = 97 THEN now() - interval '1 minute'
                 ELSE now() + (g % 1000) * interval '1 minute' END,
            CASE WHEN g % 100 < 97 THEN g END,
            now() - (g % 89) * interval '1 day' - (g % 1440) * interval '1 minute',
            CASE WHEN g % 100 < 97
                 THEN now() - (g % 89) * interval '1 day' - (g % 1440) * interval '1 minute' END
        FROM generate_series(0, :n - 1) AS g""",
    "tracked_reports": """
        INSERT INTO tracked_reports (telegram_user_id, report_id, last_update_id, closed, own,
            created_at, checked_at)
        SELECT :first + g % :residents, 'rep-' || g, NULL, g % 5 <> 0, g % 3 <> 0,
            now() - (g % 365) * interval '1 day', now() - (g % 3600) * interval '1 second'
        FROM generate_series(0, :n - 1) AS g""",
    "payment_intents": """
        INSERT INTO payment_intents (key, telegram_user_id, bill_ids, requisites, amount,
            method_id, status, payment_id, failure, confirmation_url, card_last4,
            external_charge_id, fund_id, receipt, created_at, updated_at)
        SELECT 'seed-' || g, :first + g % :residents, '["b-1"]', NULL, 100000 + g % 5000,
            'pm-full-4242',
            CASE WHEN g % 1000 = 0 THEN 'pending' WHEN g % 10 = 0 THEN 'failed'
                 ELSE 'succeeded' END,
            'pay-' || g, NULL, NULL, '4242', NULL, NULL, NULL,
            now() - (g % 730) * interval '1 day',
            CASE WHEN g % 1000 = 0 THEN now() - (g % 5) * interval '1 minute'
                 ELSE now() - (g % 730) * interval '1 day' END
        FROM generate_series(0, :n - 1) AS g""",
    "autopays": """
        INSERT INTO autopays (telegram_user_id, kind, frequency, day, method_id, amount, "limit",
            fund_id, fund_name, bill_kind, payer_code, status, next_due_at, skip_period,
            retry_period, paused_reason, unanswered, claimed_until, created_at,
            reminded_due_at)
        SELECT :first + g % :residents, 'fixed', 'monthly', 1 + g % 28, 'pm-full-4242', 10000,
            NULL, 'F-101', 'Фонд', NULL, NULL,
            CASE WHEN g % 10 = 0 THEN 'paused' ELSE 'active' END,
            CASE WHEN g % 100 = 1 THEN now() - interval '1 minute'
                 ELSE now() + (g % 43200) * interval '1 minute' END,
            NULL, NULL, CASE WHEN g % 10 = 0 THEN 'resident' END, 0, NULL,
            now() - (g % 365) * interval '1 day', NULL
        FROM generate_series(0, :n - 1) AS g""",
    # ten months of runs an autopay (ids 1 … autopays: the table is truncated with RESTART
    # IDENTITY), nearly all finished; one in 100 000 STARTED a day ago (a dead scheduler's)
    "autopay_runs": """
        INSERT INTO autopay_runs (autopay_id, period, key, status, attempts, amount, failure,
            created_at, updated_at)
        SELECT 1 + g % :autopays,
            to_char(date '2026-01-01' + (g / :autopays) * interval '1 month', 'YYYY-MM'),
            'ap-seed-' || g,
            CASE WHEN g % 100000 = 7 THEN 'started' WHEN g % 50 = 0 THEN 'failed'
                 ELSE 'succeeded' END,
            1, 10000, CASE WHEN g % 50 = 0 AND g % 100000 <> 7 THEN 'declined' END,
            now() - (g % 300) * interval '1 day',
            CASE WHEN g % 100000 = 7 THEN now() - interval '1 day'
                 ELSE now() - (g % 300) * interval '1 day' END
        FROM generate_series(0, :n - 1) AS g""",
    # dialog state (SQL storage): two keys a resident, written within the last 30 days
    "fsm_state": """
        INSERT INTO fsm_state (key, state, data, updated_at)
        SELECT 'fsm:seed:' || (:first + g % :residents) || ':' || (g / :residents), NULL,
            '{}', now() - (g % 43000) * interval '1 minute'
        FROM generate_series(0, :n - 1) AS g""",
    "report_drafts": """
        INSERT INTO report_drafts (telegram_user_id, data, updated_at)
        SELECT :first + g + :residents, '{}', now() - (g % 43000) * interval '1 minute'
        FROM generate_series(0, :n - 1) AS g""",
    "notification_settings": """
        INSERT INTO notification_settings (telegram_user_id, muted)
        SELECT :first + g * 5, '["report_status"]'
        FROM generate_series(0, :n - 1) AS g""",
    "link_attempts": """
        INSERT INTO link_attempts (state_hash, nonce_hash, telegram_user_id, chat_id,
            code_verifier, status, secret_enc, created_at, expires_at)
        SELECT 'seed-state-' || g, NULL, :first + g + :residents, :first + g + :residents,
            repeat('v', 64), 'pending', NULL, now(), now() + interval '1 day'
        FROM generate_series(0, :n - 1) AS g""",
}


@dataclass
class Captured:
    label: str
    statement: str
    parameters: Any


@dataclass
class Capture:
    """Statements the engine runs while `label` is set (`during`)."""

    label: str | None = None
    statements: list[Captured] = field(default_factory=list)

    def listen(self, engine: AsyncEngine) -> None:
        def before(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
            if self.label is not None and not statement.lstrip().upper().startswith(SKIP):
                self.statements.append(Captured(self.label, statement, parameters))

        event.listen(engine.sync_engine, "before_cursor_execute", before)

    @contextmanager
    def during(self, label: str) -> Iterator[None]:
        self.label = label
        try:
            yield
        finally:
            self.label = None


@dataclass
class Plan:
    label: str
    statement: str
    plan: str  # EXPLAIN's text
    seq_scans: list[str]  # big tables read whole
    reads: list[str]  # how each table is read: the indexes used, «whole <table>» for a Seq Scan
    cost: float  # the planner's total cost estimate


async def plans_database(services: Services) -> str | None:
    if not services.postgres:
        return None
    database = str(make_url(services.postgres).database)
    return await _sibling_database(services.postgres, f"{database.removesuffix('_bench')}_plans")


async def seed(engine: AsyncEngine, scale: float, reseed: bool) -> bool:
    """Seeds unless a seed of `scale` from the last day is there (True when it seeded)."""
    async with engine.begin() as connection:
        await connection.execute(
            text("CREATE TABLE IF NOT EXISTS bench_seed (scale float NOT NULL, at timestamptz)")
        )
        # a seed a day old is redone: its rows age into purge_retained's reach
        found = (
            (
                await connection.execute(
                    text("SELECT scale FROM bench_seed WHERE at > now() - interval '1 day'")
                )
            )
            .scalars()
            .all()
        )
        if found == [scale] and not reseed:
            return False
    cipher = TokenCipher([SEED_KEY])
    residents = max(1, round(SIZES["residents"] * scale))
    values = {
        "first": FIRST_USER,
        "residents": residents,
        "autopays": max(1, round(SIZES["autopays"] * scale)),
        "access": cipher.encrypt("seeded-access-token"),
        "refresh": cipher.encrypt("seeded-refresh-token"),
    }
    async with engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {', '.join(SIZES)}, bench_seed RESTART IDENTITY"))
        for name, sql in SEED.items():
            n = max(1, round(SIZES[name] * scale))
            started = time.perf_counter()
            await connection.execute(text(sql), {**values, "n": n})
            print(f"  {name}: {n:,} rows in {time.perf_counter() - started:.1f} s", flush=True)
        await connection.execute(
            text("INSERT INTO bench_seed VALUES (:scale, now())"), {"scale": scale}
        )
    async with engine.connect() as connection:
        connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(text("ANALYZE"))
    return True


async def capture(url: str, capture: Capture, folder: Path) -> None:
    """Runs the code paths (see the module's docstring) with `capture` listening."""
    settings = Settings(
        database_url=url,
        redis_url=None,
        web_port=0,
        sandbox_port=0,
        data_dir=folder,
        token_encryption_keys=SEED_KEY,  # type: ignore[arg-type]  # pydantic parses it
        flood_limit=0,
        _env_file=None,  # type: ignore[call-arg]
    )
    async with SandboxServer() as city:
        app: Application = await create_application(
            settings, bot_session=LocalTelegram(), sandbox=city
        )
        try:
            capture.listen(app.engine)
            if app.state_engine is not None:  # the dialog state's own pool
                capture.listen(app.state_engine)
            chat = Conversation(app.dispatcher, app.bot, user_id=FIRST_USER + 7)
            await chat.send("/start")  # warm: the first update's queries are the same
            with capture.during("update: /start"):
                await chat.send("/start")
            with capture.during("update: «Сообщить о проблеме»"):
                await chat.press("Сообщить о проблеме")
            with capture.during("update: «‹ Назад»"):
                await chat.press("‹ Назад")
            now = datetime.now(UTC)
            ticks: dict[str, Callable[[SqlUnitOfWork], Awaitable[object]]] = {
                "outbox: claim_to_send": lambda uow: uow.notifications.claim_to_send(
                    now, SEND_BATCH
                ),
                "autopay: claim_due": lambda uow: uow.autopays.claim_due(now, TICK_BATCH),
                "autopay: reminders_due": lambda uow: uow.autopays.reminders_due(
                    now + timedelta(days=1), now + timedelta(days=2), REMIND_BATCH
                ),
                "reports: claim_for_poll": lambda uow: uow.tracked_reports.claim_for_poll(
                    now, POLL_BATCH
                ),
                "reconcile: unsettled": lambda uow: uow.payment_intents.unsettled(
                    now - timedelta(minutes=10)
                ),
                "reconcile: started autopay runs": lambda uow: uow.autopays.started_runs(
                    now, now - LEASE, updated_after=now - ASKED_FOR
                ),
            }
            for label, call in ticks.items():
                async with app.uow_factory() as uow:  # never committed: rolled back
                    with capture.during(label):
                        await call(uow)
            with capture.during("purge_retained"):
                await purge_retained(app)
        finally:
            await app.stop()


async def explain(engine: AsyncEngine, captured: list[Captured]) -> list[Plan]:
    """EXPLAIN each distinct statement once, with the parameters it first ran with."""
    seen: set[str] = set()
    plans = []
    async with engine.connect() as connection:
        big = {
            name
            for name, rows in (
                await connection.execute(
                    text(
                        "SELECT relname, reltuples FROM pg_class "
                        "WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace"
                    )
                )
            ).tuples()
            if rows > BIG_TABLE
        }
        partial = {  # partial indexes' predicates: a walk filtering by it alone reads no more
            name: _bare(str(predicate))
            for name, predicate in (
                await connection.execute(
                    text(
                        "SELECT c.relname, pg_get_expr(i.indpred, i.indrelid) FROM pg_index i "
                        "JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indpred IS NOT NULL"
                    )
                )
            ).tuples()
        }
        for each in captured:
            if each.statement in seen:
                continue
            seen.add(each.statement)
            parameters = each.parameters
            if isinstance(parameters, list):  # executemany: the first row's
                parameters = parameters[0] if parameters else ()
            found = await connection.exec_driver_sql(
                "EXPLAIN (FORMAT JSON) " + each.statement, parameters
            )
            document = found.scalar_one()
            tree = (json.loads(document) if isinstance(document, str) else document)[0]["Plan"]
            shown = await connection.exec_driver_sql("EXPLAIN " + each.statement, parameters)
            scans = [
                _whole(node, partial)
                for node in _nodes(tree)
                if _whole(node, partial) and _table(node) in big
            ]
            reads = [
                node["Index Name"] if "Index Name" in node else f"whole {node['Relation Name']}"
                for node in _nodes(tree)
                if "Index Name" in node or node["Node Type"] == "Seq Scan"
            ]
            plans.append(
                Plan(
                    each.label,
                    each.statement,
                    "\n".join(row[0] for row in shown.tuples()),
                    scans,
                    reads,
                    float(tree["Total Cost"]),
                )
            )
        await connection.rollback()
    return plans


def _table(node: dict[str, Any]) -> str | None:
    return node.get("Relation Name")


def _whole(node: dict[str, Any], partial: dict[str, str]) -> str:
    """What a plan node reads whole ("" when it does not): a Seq Scan reads the table; an
    index scan without an Index Cond whose Filter is more than the (partial) index's own
    predicate walks the whole index (it stops early only when a LIMIT above is satisfied)."""
    if node["Node Type"] == "Seq Scan":
        return str(_table(node))
    if node["Node Type"] in ("Index Scan", "Index Only Scan") and "Index Cond" not in node:
        index = node["Index Name"]
        if "Filter" in node and _bare(node["Filter"]) != partial.get(index):
            return f"{_table(node)} (all of {index}, filtered)"
    return ""


def _bare(condition: str) -> str:
    return condition.replace("(", "").replace(")", "").strip()


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", ()):
        yield from _nodes(child)


async def run(
    services: Services, scale: float = 1.0, reseed: bool = False, show_all: bool = False
) -> list[Plan]:
    heading("Plans: EXPLAIN of an update's and each job's queries on production-size PostgreSQL")
    url = await plans_database(services)
    if url is None:
        print(f"skipped: {NO_POSTGRES} (this benchmark needs PostgreSQL)")
        return []
    print(make_url(url).render_as_string())
    sizes = ", ".join(f"{name} {round(n * scale):,}" for name, n in SIZES.items())
    engine = create_engine(url)
    try:
        await upgrade(engine)
        started = time.perf_counter()
        print(f"… seeding (scale {scale:g}: {sizes})", flush=True)
        if await seed(engine, scale, reseed):
            print(f"  seeded and analysed in {time.perf_counter() - started:.0f} s")
        else:
            print("  already there (--reseed to seed again)")
        log = Capture()
        with tempfile.TemporaryDirectory(prefix="bench-plans-") as folder:
            await capture(url, log, Path(folder))
        found = await explain(engine, log.statements)
    finally:
        await engine.dispose()
    report(found, show_all)
    return found


def report(plans: list[Plan], show_all: bool = False) -> None:
    print()
    table(
        ["query (captured from)", "statement", "cost", "reads", "reads a big table whole"],
        [
            [
                p.label,
                _short(p.statement, 50),
                p.cost,
                ", ".join(dict.fromkeys(p.reads)) or "-",
                ", ".join(p.seq_scans) or "-",
            ]
            for p in plans
        ],
    )
    offenders = [p for p in plans if p.seq_scans]
    print()
    if show_all:
        for p in plans:
            print(f"-- {p.label}\n{p.statement}\n{p.plan}\n")
    if not offenders:
        print(f"every query uses an index ({len(plans)} distinct statements explained)")
        return
    print(
        f"{len(offenders)} of {len(plans)} statements read a table of >{BIG_TABLE:,} rows "
        "whole (a Seq Scan, or an index walked with a filter only):"
    )
    for p in offenders:
        print(f"\n-- {p.label}\n{p.statement}\n{p.plan}")


def _short(statement: str, width: int = 70) -> str:
    flat = " ".join(statement.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
