"""Review 36e: the operator's view — an upgrade 0019 → 0020 with real rows (a report draft saved
before drafts were named, an open review screen in dialog state, followed reports) through
the application's own start-up/migrate path on SQLite and PostgreSQL, a downgrade and up
again, two replicas migrating at once; restarts in the middle of multi-step flows; settings
with odd values; the console fed hostile lines. Tests marked xfail pin a defect found here;
the others pin behaviour that held."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from sandbox.conversation import Conversation
from storage.database import create_engine
from storage.migrate import downgrade, head_revision, upgrade
from tests.conftest import POSTGRES_URL, fresh_engine, migrated_sqlite_file, need_service
from tests.flows.conftest import Harness, settings_for
from tests.flows.test_hostile_input import (
    autopay_day_step,
    donation_step,
    no_crash,
    points_step,
    press_again,
    uin_step,
)
from tests.flows.test_reports import TVERSKAYA_7
from tests.flows.test_review22_update_shapes import description_step
from tests.flows.test_review31_stale_screens import Drawn, drawn, report_send
from tests.flows.test_review35e_bug_reports import city_reports

OLD = "0019"


# ---- helpers -------------------------------------------------------------------------------


def _strip(value: Any, key: str) -> Any:
    """`value` (JSON) without `key` anywhere in it."""
    if isinstance(value, dict):
        return {k: _strip(v, key) for k, v in value.items() if k != key}
    if isinstance(value, list):
        return [_strip(v, key) for v in value]
    return value


async def _revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        return (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalar()


async def _as_written_by_0019(engine: AsyncEngine) -> None:
    """The database as release 0019 left it: migrated down, the draft's JSON without its
    name (0019 never wrote `draft_id`) and the review screen's dialog data without the name
    of the draft it showed (0019's review never kept it)."""
    await downgrade(engine, OLD)
    async with engine.begin() as connection:
        for table, key in (("report_drafts", "telegram_user_id"), ("fsm_state", "key")):
            rows = (await connection.execute(text(f"SELECT {key}, data FROM {table}"))).all()
            for ident, data in rows:
                loaded = json.loads(data) if isinstance(data, str) else data
                cleaned = _strip(_strip(loaded, "draft_id"), "shown_draft")
                if cleaned != loaded:
                    await connection.execute(
                        text(f"UPDATE {table} SET data = :data WHERE {key} = :ident"),
                        {"data": json.dumps(cleaned), "ident": ident},
                    )


async def _counts(engine: AsyncEngine) -> dict[str, int]:
    found: dict[str, int] = {}
    async with engine.connect() as connection:
        for table in ("residents", "report_drafts", "tracked_reports", "fsm_state"):
            found[table] = (
                await connection.execute(text(f"SELECT count(*) FROM {table}"))
            ).scalar_one()
    return found


async def _follow_one_report(harness: Harness, chat: Conversation) -> str:
    """Before the upgrade the resident sent a report at Tverskaya 7 (where the city already
    had an open pothole: «Отправить своё»): followed, its row's draft_id NULL at 0019."""
    await chat.press("Сообщить о проблеме")
    await chat.send("яма на дороге")
    await chat.press("Яма на дороге")
    await chat.send_location(*TVERSKAYA_7)
    await chat.press("Пропустить")
    await chat.press("Пропустить")
    await chat.press("Отправить")
    reply = await chat.press("Отправить своё")
    assert "✅ Обращение № " in reply.text, reply.texts
    return reply.text.split("№ ")[1].split()[0]


async def _review_left_open(harness: Harness) -> tuple[Conversation, str, Drawn]:
    """A linked resident with one followed report and a second one written up to the review
    screen, left open; the app stopped (the deploy)."""
    chat = harness.chat()
    await harness.link(chat, "demo-full")
    followed = await _follow_one_report(harness, chat)
    await chat.send("/start")
    screen = await report_send(harness, chat)
    assert harness.app is not None
    await harness.app.stop()
    harness.app = None
    return chat, followed, screen


def _engine_of(harness: Harness) -> AsyncEngine:
    return create_engine(harness.settings.database_url)


# ---- the upgrade 0019 → 0020 with data -------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_upgrade_from_0019_keeps_rows_and_the_open_review_sends_with_its_number(
    harness: Harness, tmp_path: Path, backend: str
) -> None:
    """Release 0019 ran, a resident left a review open; the new release starts (SQLite: its
    own start-up migrates; PostgreSQL: `migrate` first, as production does): nothing lost,
    «Отправить» on the old screen sends and names the number."""
    if backend == "postgres":
        await harness.app.stop()  # type: ignore[union-attr]
        engine = await fresh_engine("postgres", tmp_path)
        await engine.dispose()
        harness.settings = settings_for(tmp_path, database_url=POSTGRES_URL)
        await harness.start()
    chat, followed, screen = await _review_left_open(harness)
    engine = _engine_of(harness)
    try:
        before = await _counts(engine)
        await _as_written_by_0019(engine)
        assert await _revision(engine) == OLD
        if backend == "postgres":
            await upgrade(engine)  # `python -m bot migrate`
    finally:
        await engine.dispose()
    await harness.start()  # SQLite: the start-up's own upgrade
    engine = _engine_of(harness)
    try:
        assert await _revision(engine) == head_revision()
        assert await _counts(engine) == before
    finally:
        await engine.dispose()
    reply = await press_again(chat, screen.payload, screen.data)
    no_crash(reply)
    assert "✅ Обращение № " in reply.text, reply.texts
    await chat.send("/start")
    await chat.press("Мои обращения")
    assert any(followed in label for label in chat.buttons), chat.buttons


async def _upgraded(harness: Harness, tmp_path: Path, backend: str) -> tuple[Conversation, Drawn]:
    """The review left open under 0019, then the new release started (as above)."""
    if backend == "postgres":
        await harness.app.stop()  # type: ignore[union-attr]
        engine = await fresh_engine("postgres", tmp_path)
        await engine.dispose()
        harness.settings = settings_for(tmp_path, database_url=POSTGRES_URL)
        await harness.start()
    chat, _followed, screen = await _review_left_open(harness)
    engine = _engine_of(harness)
    try:
        await _as_written_by_0019(engine)
        if backend == "postgres":
            await upgrade(engine)
    finally:
        await engine.dispose()
    await harness.start()
    return chat, screen


# Found: a draft saved by 0019 (no draft_id in its JSON) and sent from a review screen drawn
# by 0019 is sent unnamed (on_send never names it; only the review getter does), so when the
# send's own result screen is lost (the resident blocked the bot for a moment) and they press
# «Отправить» on the old screen again, they are told «Этого черновика больше нет … или удалён»
# instead of the number of the report their send made — the very case 0020 exists for.
# Was (review 36e): an open review from 0019 whose send screen is lost is never told the number
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_upgraded_review_whose_send_screen_is_lost_is_told_the_number(
    harness: Harness, tmp_path: Path, backend: str
) -> None:
    chat, screen = await _upgraded(harness, tmp_path, backend)
    before = city_reports(harness)
    harness.telegram.block_chat(chat.chat_id)
    await press_again(chat, screen.payload, screen.data)
    [made] = [n for n in city_reports(harness) if n not in before]
    harness.telegram.unblock_chat(chat.chat_id)
    reply = await press_again(chat, screen.payload, screen.data)
    no_crash(reply)
    assert len(city_reports(harness)) == len(before) + 1  # sent once
    assert f"Обращение № {made}" in reply.text, reply.texts


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_upgraded_review_redrawn_then_lost_send_is_told_the_number(
    harness: Harness, tmp_path: Path, backend: str
) -> None:
    """What holds: once the new release has drawn the review again (a word typed), the draft
    is named and a lost send screen is told the number at the next press."""
    chat, _screen = await _upgraded(harness, tmp_path, backend)
    await chat.send("привет")
    screen = drawn(chat, "Отправить")
    before = city_reports(harness)
    harness.telegram.block_chat(chat.chat_id)
    await press_again(chat, screen.payload, screen.data)
    [made] = [n for n in city_reports(harness) if n not in before]
    harness.telegram.unblock_chat(chat.chat_id)
    reply = await press_again(chat, screen.payload, screen.data)
    no_crash(reply)
    assert f"Обращение № {made}" in reply.text, reply.texts


# ---- down to 0019 and up again; two replicas migrating at once ---------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_down_to_0019_and_up_again_keeps_the_followed_reports(
    harness: Harness, tmp_path: Path, backend: str
) -> None:
    """A rollback of the release (migrated down to 0019) and the new one again: the followed
    reports, residents and the draft survive both ways; the app starts and lists them."""
    if backend == "postgres":
        await harness.app.stop()  # type: ignore[union-attr]
        engine = await fresh_engine("postgres", tmp_path)
        await engine.dispose()
        harness.settings = settings_for(tmp_path, database_url=POSTGRES_URL)
        await harness.start()
    chat, followed, _screen = await _review_left_open(harness)
    engine = _engine_of(harness)
    try:
        before = await _counts(engine)
        await downgrade(engine, OLD)
        assert await _counts(engine) == before
        await upgrade(engine)
        await downgrade(engine, OLD)
        await upgrade(engine)
        assert await _revision(engine) == head_revision()
        assert await _counts(engine) == before
    finally:
        await engine.dispose()
    await harness.start()
    await chat.send("/start")
    await chat.press("Мои обращения")
    assert any(followed in label for label in chat.buttons), chat.buttons


async def test_two_replicas_migrating_one_postgres_at_once_both_end_at_head(
    tmp_path: Path,
) -> None:
    """Two replicas run `python -m bot migrate` at the same moment on a database at 0019 with
    rows: one migrates, the other waits for the lock and finds the schema at head."""
    need_service(POSTGRES_URL, "TEST_DATABASE_URL")
    seed = await fresh_engine("postgres", tmp_path)
    try:
        async with seed.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO tracked_reports (telegram_user_id, report_id, last_update_id,"
                    " closed, own, created_at, checked_at) VALUES (7, 'NG-1', NULL, false, true,"
                    " now(), now())"
                )
            )
        await downgrade(seed, OLD)
    finally:
        await seed.dispose()
    engines = [create_engine(POSTGRES_URL) for _ in range(3)]
    try:
        outcomes = await asyncio.gather(
            *(upgrade(engine) for engine in engines), return_exceptions=True
        )
        assert [o for o in outcomes if o is not None] == []
        assert await _revision(engines[0]) == head_revision()
        async with engines[0].connect() as connection:
            rows = (
                await connection.execute(text("SELECT report_id, draft_id FROM tracked_reports"))
            ).all()
        assert [tuple(r) for r in rows] == [("NG-1", None)]
    finally:
        for engine in engines:
            await engine.dispose()


# ---- settings with odd values -----------------------------------------------------------------


# Found: REDIS_URL naming a Redis that does not answer starts the bot anyway: create_application
# never asks Redis (only the database is checked, storage/migrate.reachable), so `python -m bot
# poll` runs silently (probed: 25 s, nothing printed, exit 0 on SIGTERM) while every update
# fails as transient — the operator gets no «Cannot start: … REDIS_URL» line and exit code 2.
# Was (review 36e): an unreachable REDIS_URL at start-up is not refused, the bot starts silently
async def test_an_unreachable_redis_at_start_up_stops_it_naming_redis_url(
    tmp_path: Path, sandbox: Any
) -> None:
    from bot.app import create_application
    from sandbox.telegram_double import LocalTelegram

    settings = settings_for(tmp_path, redis_url="redis://127.0.0.1:9/0")
    try:
        app = await create_application(settings, bot_session=LocalTelegram(), sandbox=sandbox)
    except Exception as error:
        assert "REDIS_URL" in str(error), error
        assert "\n" not in str(error).strip()
        return
    await app.stop()
    pytest.fail("started with REDIS_URL unreachable")


RAW_AT_PASSWORD = "Sec@ret%pw"


# Found: a DATABASE_URL whose password holds a raw «@» (not percent-encoded, as operators paste
# it) is split at the first «@»: the rest of the password becomes the host, and the one-line
# refusal prints it — «cannot reach the database postgresql+asyncpg://postgres:***@ret%pw@…»
# (storage/migrate.reachable hides only what SQLAlchemy parsed as the password).
# Was (review 36e): a raw @ in the DATABASE_URL password prints the password tail in the refusal
# line
async def test_a_raw_at_in_the_database_password_is_never_printed(tmp_path: Path) -> None:
    from tests.integration.test_review22_operator import base_env, one_clear_line, run_bot

    url = f"postgresql://postgres:{RAW_AT_PASSWORD}@127.0.0.1:9/test_h5_x"
    code, screen = await run_bot(base_env(tmp_path, DATABASE_URL=url), "migrate")
    one_clear_line(code, screen)
    assert "DATABASE_URL" in screen, screen
    assert RAW_AT_PASSWORD.split("@")[1] not in screen, screen


async def test_a_percent_encoded_at_and_percent_in_the_password_migrate(tmp_path: Path) -> None:
    """What holds: the password percent-encoded (p%40ss%25word = «p@ss%word») is read as one,
    `migrate` works (trust auth here: the password is parsed, not checked) and a refusal prints
    no part of it."""
    from tests.integration.test_review22_operator import base_env, one_clear_line, run_bot

    need_service(POSTGRES_URL, "TEST_DATABASE_URL")
    import asyncpg  # type: ignore[import-untyped]

    admin = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = 'test_h5_x'"):
            await admin.execute('CREATE DATABASE "test_h5_x"')
    finally:
        await admin.close()
    good = "postgresql://postgres:p%40ss%25word@127.0.0.1:5432/test_h5_x"
    code, screen = await run_bot(base_env(tmp_path, DATABASE_URL=good), "migrate")
    assert code == 0, screen
    bad = "postgresql://postgres:p%40ss%25word@127.0.0.1:9/test_h5_x"
    code, screen = await run_bot(base_env(tmp_path, DATABASE_URL=bad), "migrate")
    one_clear_line(code, screen)
    assert "ss%word" not in screen and "p%40ss" not in screen, screen


# Found: SUPPORT_CHAT_ID set to a user's id (a positive id: a private chat, not the forum
# supergroup README requires) is accepted; a resident's support message is then delivered into
# that person's private chat, and that person's own /start is never answered (their chat is
# taken for the staff chat). Config should refuse it at start-up in one line.
# Was (review 36e): SUPPORT_CHAT_ID of a private chat is accepted and residents texts go to that
# person
async def test_support_chat_id_of_a_user_is_refused_or_never_gets_residents_texts(
    tmp_path: Path, sandbox: Any, clock: Any
) -> None:
    from pydantic import ValidationError

    from bot.config import CannotStart, SettingsError

    await migrated_sqlite_file(tmp_path / "bot.sqlite3")
    other_user = 100_002
    try:
        settings = settings_for(tmp_path, support_chat_id=other_user)
        harness = Harness(settings=settings, sandbox=sandbox, clock=clock)
        await harness.start()
    except (ValidationError, SettingsError, CannotStart) as error:
        assert "support_chat_id" in str(error).lower(), error
        return
    try:
        other = harness.chat(other_user, "Пётр")
        chat = harness.chat()
        await harness.link(chat)
        await chat.press("Поддержка")
        await chat.send("Помогите, не проходит оплата")
        answered = await other.send("/start")
        assert "Помогите" not in " ".join(other.history), other.history
        assert answered.texts, "the other person's /start is not answered"
    finally:
        assert harness.app is not None
        await harness.app.stop()


@pytest.mark.parametrize("value", ["257", "100000", "-1", "1e3"])
def test_an_autopay_concurrency_out_of_range_is_refused_naming_it(value: str) -> None:
    from bot.config import SettingsError, load_settings

    with pytest.raises(SettingsError) as refused:
        load_settings(autopay_concurrency=value, _env_file=None)
    assert "AUTOPAY_CONCURRENCY" in str(refused.value)


# ---- a restart in the middle of each typed step ----------------------------------------------

RESTART_STEPS = {
    "uin": (uin_step, "18810136161108008161", "Нашли начисление"),
    "donation amount": (donation_step, "1 500", "Пожертвование фонду «"),
    "points amount": (points_step, "100", "Перевести 100 баллов"),
    "autopay day": (autopay_day_step, "25", "Сколько перечислять?"),
    "report description": (
        description_step,
        "Глубокая яма у подъезда <b>&</b>",
        "Описание: Глубокая яма у подъезда",
    ),
}


@pytest.mark.parametrize("step", list(RESTART_STEPS))
async def test_a_restart_at_a_typed_step_takes_the_value_typed_after_it(
    any_state_harness: Harness, step: str
) -> None:
    """A deploy while the resident is at a typed step (SQLite, PostgreSQL, Redis state): the
    value typed after the restart is taken by the same step, nothing asked again."""
    opener, value, after = RESTART_STEPS[step]
    chat = await opener(any_state_harness)
    await any_state_harness.restart()
    reply = await chat.send(value)
    no_crash(reply)
    assert after in chat.last_text, reply.texts


# ---- the console fed hostile lines ------------------------------------------------------------


def test_console_hostile_lines_then_ctrl_c_mid_report_keeps_the_draft(tmp_path: Path) -> None:
    """`make run`'s console: NUL, ANSI escapes, a bare CR, markup and 5 000 characters at the
    UIN step, a flood of empty lines, then a report started and Ctrl-C in the middle of it:
    no crash, exit 0, and after a restart on the same DATA_DIR the draft is still there."""
    import signal

    from tests.flows.test_review33f_console import FAST, Console, clean

    bot = Console(tmp_path, **FAST)
    try:
        bot.link()
        bot.say("#2", "УИН")
        for line in ("\x00", "12\x0034", "\x1b[31mred\x1b[0m", "a\rb", "<b>&</b>", "x" * 5000):
            assert "Введите УИН" in bot.say(line), line
        assert bot.process.stdin is not None
        bot.process.stdin.write(b"\n" * 200)
        bot.process.stdin.flush()
        bot.say("/start", "Отвязать аккаунт", timeout=60)
        bot.say("#10", "Что случилось?")
        bot.say("яма", "Яма на дороге")
        bot.say("#1", "Где это?")
        bot.say(":loc 55.7513 37.5970", "Пришлите фото")
        clean(bot.out + bot.err)
        bot.process.send_signal(signal.SIGINT)
        assert bot.process.wait(60) == 0
    finally:
        bot.kill()
    again = Console(tmp_path, **FAST)
    try:
        again.wait_for(timeout=30)
        again.say("/start", "Отвязать аккаунт")
        resumed = again.say("#10", "неотправленное обращение")
        assert "Яма на дороге" in resumed and "Арбат, 10" in resumed, resumed
        clean(again.out + again.err)
    finally:
        again.kill()
