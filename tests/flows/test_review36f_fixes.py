"""Review 36f: attacks on today's fixes (005c12c..c75d451) — a report step whose draft went
(DraftGone), the answer to a resident's edit, the payer code printed twice, REDIS_URL /
DATABASE_URL / SUPPORT_CHAT_ID values. Tests marked xfail pin a defect found here; the others
pin behaviour that held."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from domain.payment_qr import ReceiptProblem, parse_payment_qr, validate
from sandbox.conversation import Conversation
from tests.conftest import migrated_sqlite_file
from tests.flows.conftest import Harness, settings_for
from tests.flows.test_hostile_input import no_crash, press_again
from tests.flows.test_reports import ARBAT_10, TVERSKAYA_7, photo, start_pothole
from tests.flows.test_review31_stale_screens import drawn
from tests.flows.test_review35e_bug_reports import city_reports
from tests.flows.test_review36a_today import delete_draft, edit_of
from tests.flows.test_sent_report_told import draft_json

DRAFT_SENT = "по этому черновику уже отправлено"
DRAFT_GONE = "Этого черновика больше нет"
NOT_TAKEN = "Исправленное сообщение я не вижу"
CAPTION_NOT_TAKEN = "Исправленную подпись я не вижу"


def told_sent(chat: Conversation, number: str) -> bool:
    return any(f"Обращение № {number}" in text and DRAFT_SENT in text for text in chat.history)


async def followed(harness: Harness, chat: Conversation) -> list[str]:
    assert harness.app is not None
    async with harness.app.uow_factory() as uow:
        return [r.report_id for r in await uow.tracked_reports.of_resident(chat.chat_id)]


# ================================================================ report steps after the draft went


async def _duplicate_screen(harness: Harness) -> Conversation:
    chat = await start_pothole(harness)
    await chat.send_location(*TVERSKAYA_7)  # the sandbox's open pothole is here
    await chat.press("Пропустить")
    await chat.press("Пропустить")
    await chat.press("Отправить")
    assert "Отправить своё" in chat.buttons and "Следить" in " ".join(chat.buttons), chat.buttons
    return chat


# Found: on the «open report nearby» screen, «Отправить своё» pressed while the bot is blocked
# makes report N (its screen lost); back, «Следить» of the same screen is not checked against
# the draft (on_follow never calls _draft): the neighbour's report is followed and «Вы следите
# за …» said, the resident's own report N is never told — they believe they did NOT report.
# Was (review 36f): Следить after a lost Отправить своё follows the neighbour, own number never told
async def test_follow_after_send_own_was_lost_tells_the_own_number(harness: Harness) -> None:
    chat = await _duplicate_screen(harness)
    send_own = drawn(chat, "Отправить своё")
    follow = drawn(chat, "Следить")
    before = city_reports(harness)
    harness.telegram.block_chat(chat.chat_id)
    await press_again(chat, send_own.payload, send_own.data)
    harness.telegram.unblock_chat(chat.chat_id)
    [made] = [n for n in city_reports(harness) if n not in before]
    reply = await press_again(chat, follow.payload, follow.data)
    no_crash(reply)
    assert told_sent(chat, made), reply.texts


async def test_an_old_follow_after_a_new_report_dialog_leaves_its_draft_alone(
    harness: Harness,
) -> None:
    """«Следить» of a dialog left behind by /start (its stack reset) is stale: the draft
    begun since in a new dialog is kept and nothing is followed."""
    chat = await _duplicate_screen(harness)
    follow = drawn(chat, "Следить")
    await delete_draft(harness, chat)
    await chat.send("/start")
    await chat.press("Сообщить о проблеме")
    await chat.send("яма на дороге")
    await chat.press("Яма на дороге")
    await chat.send_location(*ARBAT_10)
    mine = await draft_json(harness, chat)
    assert mine is not None and mine.get("address")
    before = await followed(harness, chat)
    reply = await press_again(chat, follow.payload, follow.data)
    no_crash(reply)
    assert await draft_json(harness, chat) == mine
    assert await followed(harness, chat) == before


async def test_a_typed_address_after_the_draft_went_starts_no_draft(harness: Harness) -> None:
    """The place step, its draft deleted meanwhile: the address typed and picked is told the
    draft went; no one-field draft is written."""
    chat = await start_pothole(harness)
    await delete_draft(harness, chat)
    reply = await chat.send("Тверская улица, 7")
    no_crash(reply)
    if DRAFT_GONE not in chat.last_text and chat.buttons:
        await chat.press(1)
    assert any(DRAFT_GONE in t for t in chat.history[-4:]), chat.history[-4:]
    assert await draft_json(harness, chat) is None


async def test_an_album_after_the_draft_went_is_told_once_and_starts_no_draft(
    harness: Harness,
) -> None:
    chat = await start_pothole(harness)
    await chat.send_location(*ARBAT_10)
    assert "фото" in chat.last_text.lower()
    await delete_draft(harness, chat)
    reply = await chat.send_album([photo(10), photo(60), photo(200)])
    no_crash(reply)
    assert len([t for t in reply.texts if DRAFT_GONE in t]) == 1, reply.texts
    assert await draft_json(harness, chat) is None


async def test_a_description_after_a_restart_with_the_draft_gone_is_told(
    any_state_harness: Harness,
) -> None:
    """Dialog state in SQLite, PostgreSQL or Redis; the process restarted at the description
    step and the draft deleted: the text typed is told the draft went, and no draft appears."""
    harness = any_state_harness
    chat = await start_pothole(harness)
    await chat.send_location(*ARBAT_10)
    await chat.press("Пропустить")
    assert "Опишите" in chat.last_text or "описан" in chat.last_text.lower(), chat.last_text
    await harness.restart()
    chat = harness.chat()  # the same resident, talking to the new process
    await delete_draft(harness, chat)
    reply = await chat.send("Яма глубокая")
    no_crash(reply)
    assert any(DRAFT_GONE in t for t in reply.texts), reply.texts
    assert await draft_json(harness, chat) is None


async def test_resume_continue_after_the_draft_was_sent_tells_the_number(
    harness: Harness,
) -> None:
    """The resume screen of a draft, then that draft sent from a later screen of the same
    dialog whose result was lost: the old «Продолжить» tells the number, sends nothing."""
    chat = await start_pothole(harness)
    await chat.send_location(*ARBAT_10)
    await chat.send("/start")
    await chat.press("Сообщить о проблеме")
    assert "Продолжить" in chat.buttons, chat.buttons
    resume = drawn(chat, "Продолжить")
    await chat.press("Продолжить")
    await chat.press("Пропустить")
    await chat.press("Пропустить")
    screen = drawn(chat, "Отправить")
    before = city_reports(harness)
    harness.telegram.block_chat(chat.chat_id)
    await press_again(chat, screen.payload, screen.data)
    harness.telegram.unblock_chat(chat.chat_id)
    [made] = [n for n in city_reports(harness) if n not in before]
    reply = await press_again(chat, resume.payload, resume.data)
    no_crash(reply)
    assert city_reports(harness) == [*before, made]
    stale = any("устарел" in (a.text or "") for a in reply.callback_answers)
    assert told_sent(chat, made) or stale, (reply.texts, reply.callback_answers)


# ================================================================ edits


async def test_an_edit_from_a_user_never_seen_is_told_plainly(harness: Harness) -> None:
    chat = harness.chat(user_id=100777, first_name="Гость")
    typed = chat._incoming({"text": "привет"})
    reply = await chat.feed(edit_of(typed, text="привет!"))
    no_crash(reply)
    assert len(reply.messages) == 1 and NOT_TAKEN in reply.text, reply.texts


async def test_a_flood_of_edits_is_throttled(tmp_path: Path, sandbox: Any, clock: Any) -> None:
    """FLOOD_LIMIT on (as in production): thirty edits in a row are not thirty answers."""
    await migrated_sqlite_file(tmp_path / "bot.sqlite3")
    harness = Harness(settings=settings_for(tmp_path, flood_limit=10), sandbox=sandbox, clock=clock)
    await harness.start()
    try:
        chat = harness.chat(user_id=100555)
        typed = chat._incoming({"text": "привет"})
        await chat.feed({"message": typed})
        answers = 0
        for n in range(30):
            reply = await chat.feed(edit_of(typed, text="привет" + "!" * (n + 1)))
            no_crash(reply)
            answers += len(reply.messages)
        assert answers <= 11, answers
    finally:
        assert harness.app is not None
        await harness.app.stop()


async def test_an_edited_caption_in_the_middle_of_an_album_is_told_as_a_caption(
    harness: Harness,
) -> None:
    chat = await start_pothole(harness)
    await chat.send_location(*ARBAT_10)
    first = chat._incoming(
        {
            "photo": harness.telegram.register_photo(photo(20)),
            "media_group_id": "777",
        }
    )
    middle = chat._incoming(
        {
            "photo": harness.telegram.register_photo(photo(90)),
            "media_group_id": "777",
            "caption": "яма",
        }
    )
    await chat._feed({"message": first}, {"message": middle})
    reply = await chat.feed(edit_of(middle, caption="глубокая яма"))
    no_crash(reply)
    assert len(reply.messages) == 1 and CAPTION_NOT_TAKEN in reply.text, reply.texts


# ================================================================ receipts: the payer code twice

EIRC = (
    "ST00012|Name=ЕИРЦ «Городской расчётный центр»|PersonalAcc=40702810938000012345"
    "|BankName=ПАО СБЕРБАНК|BIC=044525225|CorrespAcc=30101810400000000225|PayeeINN=7701234567"
    "|Sum=100000"
)


# Found: _fold compares a field printed twice with spaces aside only, while the payer code is
# compared everywhere else (domain.payments._payer_code) with dashes and leading zeros aside:
# one flat's code printed «8215-604-937» and «8215604937» (or «08215604937») is called two
# codes — ReceiptProblem.PERS_ACC, «код плательщика» not readable, no payment by requisites.
# Was (review 36f): the same payer code printed with dashes or a leading zero is refused as two
# codes
@pytest.mark.parametrize("again", ["8215-604-937", "08215604937"], ids=["dashes", "zero"])
def test_one_payer_code_printed_twice_in_two_forms_is_read(again: str) -> None:
    check = validate(parse_payment_qr(f"{EIRC}|PersAcc=8215604937|persAcc={again}"))
    assert ReceiptProblem.PERS_ACC not in check.problems, check.problems
    assert check.requisites is not None


def test_two_payer_codes_are_still_refused() -> None:
    check = validate(parse_payment_qr(f"{EIRC}|PersAcc=8215604937|PersAcc=4703159826"))
    assert ReceiptProblem.PERS_ACC in check.problems
    assert check.qr.pers_acc is None


# ================================================================ settings


# Found: _userinfo_encoded refuses a raw «@» or «%» only; a password holding a raw «/», «?» or
# «#» passes (the authority is cut at the first of them), redis-py then parses the password's
# head as the port and start-up dies with «ValueError: Port could not be cast to integer value
# as 'Sekr3t'» — not a one-line REDIS_URL refusal, and a piece of the password printed.
# Was (review 36f): a raw slash, hash or question mark in the REDIS_URL password is accepted and
# printed
@pytest.mark.parametrize("raw", ["/", "#", "?"], ids=["slash", "hash", "question"])
async def test_a_raw_slash_in_the_redis_password_is_refused_without_printing_it(
    tmp_path: Path, sandbox: Any, raw: str
) -> None:
    from bot.config import SettingsError, load_settings

    url = f"redis://:Sekr3t{raw}Tail@127.0.0.1:9/0"
    # as the start reads it (`load_settings`: one line naming the setting, never its value)
    with pytest.raises(SettingsError) as refused:
        load_settings(redis_url=url, data_dir=str(tmp_path), _env_file=None)
    assert "REDIS_URL" in str(refused.value) and "Sekr3t" not in str(refused.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:p%40w@[::1]:5432/db",
        "postgresql://u:pw@127.0.0.1/db?options=a@b",
        "sqlite+aiosqlite:////tmp/a@b/bot.sqlite3",
        "sqlite+aiosqlite:////tmp/50%/bot.sqlite3",
    ],
)
def test_valid_database_urls_are_accepted(url: str) -> None:
    from bot.config import load_settings

    assert load_settings(database_url=url, _env_file=None).database_url.endswith(url[-12:])


@pytest.mark.parametrize("url", ["redis://:pw@[::1]:6379/0", "unix:///tmp/r@s.sock"])
def test_valid_redis_urls_are_accepted(url: str) -> None:
    from bot.config import load_settings

    assert load_settings(redis_url=url, _env_file=None).redis_url == url


@pytest.mark.parametrize("url", ["postgresql://u@x:pw@h/db", "redis://:p%zz@h:6379/0"])
def test_raw_userinfo_is_refused(url: str) -> None:
    from bot.config import SettingsError, load_settings

    key = "redis_url" if url.startswith("redis") else "database_url"
    with pytest.raises(SettingsError) as refused:
        load_settings(**{key: url}, _env_file=None)
    assert "pw" not in str(refused.value) and "zz" not in str(refused.value)


@pytest.mark.parametrize(
    ("value", "read"),
    [(" -1001234567890 ", -1001234567890), ("-1001234567890.0", -1001234567890)],
)
def test_support_chat_id_forms_read_as_the_supergroup(value: str, read: int) -> None:
    from bot.config import load_settings

    assert load_settings(support_chat_id=value, _env_file=None).support_chat_id == read


@pytest.mark.parametrize("value", ["-100", "-999999999999", "1001234567890"])
def test_support_chat_id_not_a_supergroup_is_refused(value: str) -> None:
    from bot.config import SettingsError, load_settings

    with pytest.raises(SettingsError) as refused:
        load_settings(support_chat_id=value, _env_file=None)
    assert "SUPPORT_CHAT_ID" in str(refused.value)
