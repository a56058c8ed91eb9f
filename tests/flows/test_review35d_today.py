"""Review 35d: today's changes broken as a resident, an operator and an attacker would.

- 746c634: paged lists of outside items (`handlers.widgets.one_per_row`), report numbers too
  long for callback data carried as references, `KeyboardGuardMiddleware`.
- ebc82d4: a draft reopened or reviewed counts as written (`drafts.touch`).
- 6dd5f1e: status polls claim under a PostgreSQL advisory lock (`claim_for_poll`)."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from sqlalchemy import event, text

from bot.i18n import load_translator
from bot.jobs import poll_reports
from domain.ports import TrackedReport
from handlers.buttons import item_ref
from handlers.notifications import CAPTION_LIMIT, render
from sandbox import open311 as sandbox_open311
from sandbox import open311_api
from sandbox import themes as sandbox_themes
from sandbox.conversation import Conversation
from sandbox.telegram_double import parse_html, utf16_len
from tests.flows.conftest import Harness
from tests.flows.test_charity_points_meters import linked
from tests.flows.test_hostile_input import no_crash, press_again
from tests.flows.test_reports import ARBAT_10, advance, photo, start_pothole
from tests.flows.test_review35c_rendering import deliver

PLAYGROUND = "Повреждена детская площадка"
FORGED = "Эта кнопка не работает. Откройте нужный раздел из меню."
NOT_FOUND = "Не нашли этого в городском сервисе"


# --- a question's choices on two pages ------------------------------------------------------


def _values(prefix: str, n: int) -> tuple[sandbox_themes.AttributeValue, ...]:
    return tuple(
        sandbox_themes.AttributeValue(f"{prefix}{i}", f"{prefix.upper()} {i:02d}")
        for i in range(1, n + 1)
    )


def _playground_asks(monkeypatch: pytest.MonkeyPatch, *attributes: Any) -> None:
    theme = sandbox_themes.theme_by_name(PLAYGROUND)
    changed = dataclasses.replace(theme, attributes=tuple(attributes))
    themes = tuple(changed if t.code == theme.code else t for t in sandbox_themes.THEMES)
    monkeypatch.setattr(sandbox_themes, "THEMES", themes)
    monkeypatch.setattr(sandbox_themes, "_BY_CODE", {t.code: t for t in themes})
    monkeypatch.setattr(open311_api, "THEMES", themes)


def _multi(code: str, description: str, values: Any) -> sandbox_themes.Attribute:
    return sandbox_themes.Attribute(
        code=code,
        datatype="multivaluelist",
        required=True,
        description=description,
        values=values,
    )


@pytest.fixture
def two_long_questions(monkeypatch: pytest.MonkeyPatch) -> None:
    """The playground asks two multi-choice questions of 25 choices each (two pages each)."""
    _playground_asks(
        monkeypatch,
        _multi("elements", "Что повреждено", _values("a", 25)),
        _multi("extra", "Что ещё", _values("b", 25)),
    )


async def _to_questions(harness: Harness) -> Conversation:
    chat = await linked(harness)
    await chat.press("Сообщить о проблеме")
    await chat.send("детская площадка")
    await chat.press(PLAYGROUND)
    await chat.send_location(*ARBAT_10)
    await chat.send_photo(photo())
    await chat.press("Дальше")
    await chat.press("Пропустить")  # the description
    assert "Что повреждено" in chat.last_text
    return chat


async def test_picks_on_both_pages_of_a_multi_choice_are_kept(
    harness: Harness, two_long_questions: None
) -> None:
    chat = await _to_questions(harness)
    assert "A 20" in chat.buttons and "A 21" not in chat.buttons  # 20 a page
    await chat.press("A 01")
    await chat.press(">")
    assert "A 21" in chat.buttons and "A 01" not in chat.buttons
    await chat.press("A 22")
    await chat.press("<")
    assert "✅ A 01" in chat.buttons  # the pick of page 1 kept across pages
    await chat.press(">")
    assert "✅ A 22" in chat.buttons


# Was (review 35d): the next question opens on the page the previous one was left on: its first 20
# hidden
async def test_the_next_question_opens_on_its_first_page(
    harness: Harness, two_long_questions: None
) -> None:
    chat = await _to_questions(harness)
    await chat.press(">")
    await chat.press("A 22")
    await chat.press("Готово")
    assert "Что ещё" in chat.last_text
    # Today: «B 21»…«B 25» and the pager at 2/2, «B 01»…«B 20» out of sight.
    assert "B 01" in chat.buttons, chat.buttons


@pytest.mark.parametrize(("choices", "pager"), [(20, False), (21, True)])
async def test_a_pager_only_past_20_choices(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, choices: int, pager: bool
) -> None:
    _playground_asks(monkeypatch, _multi("elements", "Что повреждено", _values("a", choices)))
    chat = await _to_questions(harness)
    assert (">" in chat.buttons) is pager
    assert f"A {min(choices, 20):02d}" in chat.buttons


async def test_a_forged_or_past_the_end_page_of_choices(
    harness: Harness, two_long_questions: None
) -> None:
    chat = await _to_questions(harness)
    message = chat.last_message
    assert message is not None
    pager = next(b for b in message.buttons if b.text == ">")
    data = pager.callback_data or ""
    prefix = data[: data.rindex(":") + 1]
    reply = await press_again(chat, dict(message.payload), prefix + "x")
    no_crash(reply)
    assert [a.text for a in reply.callback_answers] == [FORGED]
    reply = await press_again(chat, dict(message.payload), prefix + "999999999")
    no_crash(reply)
    assert "A 25" in chat.buttons and "A 01" not in chat.buttons  # the last page shown
    await chat.press("A 25")
    assert "✅ A 25" in chat.buttons


async def test_a_double_tap_on_the_pager_moves_one_page(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    _playground_asks(monkeypatch, _multi("elements", "Что повреждено", _values("a", 45)))
    chat = await _to_questions(harness)
    message = chat.last_message
    assert message is not None
    pager = next(b for b in message.buttons if b.text == ">")
    await chat.press(">")
    reply = await press_again(chat, dict(message.payload), pager.callback_data or "")
    no_crash(reply)
    # the second tap on the same (older) keyboard: refused, or the same page again
    assert "A 21" in chat.buttons and "A 41" not in chat.buttons, chat.buttons


# --- a caption at exactly 1,024 -------------------------------------------------------------


def _status_with_photo(value: str) -> dict[str, Any]:
    return {
        "report_id": "NG-2026-001001",
        "theme": value,
        "status": "answered",
        "text": value,
        "own": True,
        "askable": True,
        "media_url": "https://city.example/a.jpg",
    }


def _caption(value: str) -> tuple[str, list[str]]:
    text, markup, photo = render("report_status", _status_with_photo(value), load_translator())
    assert photo is not None and markup is not None
    plain, _entities = parse_html(str(text))
    return plain, [b.text for row in markup.inline_keyboard for b in row]


# 489 UTF-16 units each as theme and answer: the caption is exactly 1,024 as Telegram counts
EXACT_PLAIN = "Яма - 😀 " * 54 + "яяя"
EXACT_AMP = "Яма & 😀 " * 54 + "яяя"


def test_a_caption_of_exactly_1024_goes_whole() -> None:
    plain, buttons = _caption(EXACT_PLAIN)
    assert utf16_len(plain) == CAPTION_LIMIT
    assert plain.count(EXACT_PLAIN) == 2 and "Показать полностью" not in buttons


# Was (review 35d): a caption of 1,024 as Telegram counts it, with «&», is cut to 544: HTML
# measured
def test_a_caption_of_exactly_1024_with_ampersands_goes_whole() -> None:
    plain, buttons = _caption(EXACT_AMP)
    assert utf16_len(plain) <= CAPTION_LIMIT  # holds today
    # Today: theme and answer cut to 250 each («…», «Показать полностью»): `&amp;` counted 5.
    assert plain.count(EXACT_AMP) == 2, utf16_len(plain)
    assert "Показать полностью" not in buttons


# --- a long report number's notice ----------------------------------------------------------


@pytest.fixture
def long_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Open311 sets no limit on a request's id: 55 characters here."""
    monkeypatch.setattr(
        sandbox_open311, "request_id", lambda n, at: f"NG-{at.year}-{n:06d}-" + "0" * 40
    )


async def _answered_notice(harness: Harness) -> tuple[Conversation, str, Any]:
    chat = await start_pothole(harness)
    await chat.send_location(*ARBAT_10)
    await chat.press("Пропустить")
    await chat.press("Пропустить")
    reply = await chat.press("Отправить")
    number = reply.text.split("№ ")[1].split()[0]
    await advance(harness, number, to="answered", status_notes="Яму заделали")
    assert harness.app is not None
    await poll_reports(harness.app, harness.clock)
    await deliver(harness)
    notice = chat.last_message
    assert notice is not None and "Яму заделали" in notice.text
    return chat, number, notice


async def _unlink_and_link_again(harness: Harness, chat: Conversation) -> None:
    await chat.send("/start")
    await chat.press("Отвязать аккаунт")
    await chat.press("Да, отвязать")
    assert await harness.stored_resident(chat) is None
    await harness.link(chat)  # the same city account


async def test_a_short_number_notice_confirms_after_linking_again(harness: Harness) -> None:
    """The yardstick for the next test: a number that fits callback data."""
    chat, _number, notice = await _answered_notice(harness)
    await _unlink_and_link_again(harness, chat)
    reply = await chat.press("✅ Подтвердить", message_id=notice.message_id)
    assert "Спасибо, что подтвердили" in reply.text, reply.texts


# Was (review 35d): long-number notice after unlink+relink: «Не нашли…»; the bot asks the city for
# the ref
async def test_a_long_number_notice_confirms_after_linking_again(
    harness: Harness, long_numbers: None
) -> None:
    chat, number, notice = await _answered_notice(harness)
    assert number not in " ".join(b.callback_data or "" for b in notice.buttons)
    await _unlink_and_link_again(harness, chat)
    # The same account, the same report: as with a short number, it is confirmed. Today the
    # reference is not among the followed (unlinking forgot them) and goes to the city as a
    # report number («/requests/68c6f3366c05.json»: 404) — «Не нашли этого…».
    reply = await chat.press("✅ Подтвердить", message_id=notice.message_id)
    assert NOT_FOUND not in reply.text
    assert "Спасибо, что подтвердили" in reply.text, reply.texts


async def test_a_long_number_notice_works_while_followed(
    harness: Harness, long_numbers: None
) -> None:
    chat, _number, notice = await _answered_notice(harness)
    reply = await chat.press("❌ Не устранено", message_id=notice.message_id)
    no_crash(reply)
    assert NOT_FOUND not in reply.text
    assert "Что не так?" in chat.last_text


async def test_a_long_number_notice_confirms_while_followed(
    harness: Harness, long_numbers: None
) -> None:
    chat, _number, notice = await _answered_notice(harness)
    reply = await chat.press("✅ Подтвердить", message_id=notice.message_id)
    assert "Спасибо, что подтвердили" in reply.text, reply.texts


# --- «Мои обращения»: references resolved from the list drawn -------------------------------


async def _my_reports(harness: Harness) -> tuple[Conversation, Any]:
    chat = await linked(harness)
    await chat.press("Мои обращения")
    message = chat.last_message
    assert message is not None and message.buttons
    return chat, message


def _report_button(message: Any) -> Any:
    return next(b for b in message.buttons if "NG-" in b.text)


async def test_a_forged_report_reference_in_my_reports_gets_the_toast(harness: Harness) -> None:
    chat, message = await _my_reports(harness)
    button = _report_button(message)
    data = button.callback_data or ""
    screen = chat.last_text
    # a reference of a report that exists at the city but is not in the list drawn
    forged = data[: -len("0" * 12)] + item_ref("NG-2026-999999")
    reply = await press_again(chat, dict(message.payload), forged)
    no_crash(reply)
    assert [a.text for a in reply.callback_answers] == [FORGED]
    assert chat.last_text == screen
    await chat.press(button.text)  # the real one still opens its card
    number = next(word for word in button.text.split() if word.startswith("NG-"))
    assert number in chat.last_text, chat.last_text


async def test_a_report_pressed_from_a_list_drawn_before_a_new_one(harness: Harness) -> None:
    """A list drawn, then /start: the old list's button opens nothing; the same report from
    the list drawn again opens."""
    chat, message = await _my_reports(harness)
    old_button = _report_button(message)
    await chat.send("/start")
    reply = await press_again(chat, dict(message.payload), old_button.callback_data or "")
    no_crash(reply)
    # the dialog it belonged to is gone: told so, the menu again, no card opened
    assert "Эта кнопка устарела" in reply.text, reply.texts
    assert "Мои обращения" in " ".join(chat.buttons)
    await chat.press("Мои обращения")
    await chat.press(old_button.text)
    assert "‹ Назад" in chat.buttons


# --- the keyboard guard ---------------------------------------------------------------------


async def test_the_guard_keeps_the_rest_of_a_row_and_changes_nothing_good(
    harness: Harness,
) -> None:
    chat = harness.chat()
    await chat.send("/start")
    assert harness.app is not None
    good = InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(text="Отчёт", url="javascript:alert(1)"),
                InlineKeyboardButton(text="Ок", callback_data="ok"),
            ],
            [InlineKeyboardButton(text="Только ссылка", url="mailto:a@b.c")],
            [InlineKeyboardButton(text="Бот", url="tg://resolve?domain=x")],
            [InlineKeyboardButton(text="✅", callback_data="y")],
        ]
    )
    await harness.app.bot.send_message(chat.chat_id, "x", reply_markup=good)
    shown = [[b.text for b in row] for row in chat.messages[-1].keyboard]
    assert shown == [["Ок"], ["Бот"], ["✅"]], shown
    # the same markup again: Telegram's «message is not modified», not a changed keyboard
    clean = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Ок", callback_data="ok")]]
    )
    sent = await harness.app.bot.send_message(chat.chat_id, "y", reply_markup=clean)
    with pytest.raises(Exception, match="not modified"):
        await harness.app.bot.edit_message_reply_markup(
            chat_id=chat.chat_id, message_id=sent.message_id, reply_markup=clean
        )


# --- the draft touch ------------------------------------------------------------------------


async def test_a_draft_settled_under_the_review_is_not_brought_back(harness: Harness) -> None:
    """The review is drawn (its getter touches the draft) after the draft was deleted (a lost
    send settled by discovery, the purge): the touch writes nothing back."""
    chat = await start_pothole(harness)
    await chat.send_location(*ARBAT_10)
    await chat.press("Пропустить")
    await chat.press("Пропустить")
    assert "Отправить" in chat.buttons
    assert harness.app is not None
    async with harness.app.uow_factory() as uow:
        await uow.drafts.delete(chat.chat_id)
        await uow.commit()
    reply = await chat.send("что-нибудь")  # the review drawn again below
    no_crash(reply)
    async with harness.app.uow_factory() as uow:
        assert await uow.drafts.get(chat.chat_id) is None


# --- the poll's advisory lock ---------------------------------------------------------------


async def test_no_advisory_lock_is_asked_of_sqlite(harness: Harness) -> None:
    chat = await linked(harness)
    assert harness.app is not None
    async with harness.app.uow_factory() as uow:
        await uow.tracked_reports.track(
            TrackedReport(chat.chat_id, "NG-2026-000001"), harness.clock()
        )
        await uow.commit()
    seen: list[str] = []

    def record(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    async with harness.app.uow_factory() as uow:
        engine = uow.session.get_bind()
        event.listen(engine, "before_cursor_execute", record)
        try:
            claimed = await uow.tracked_reports.claim_for_poll(harness.clock(), 10)
            await uow.commit()
        finally:
            event.remove(engine, "before_cursor_execute", record)
    assert [t.report_id for t in claimed] == ["NG-2026-000001"]
    assert seen and not [s for s in seen if "advisory" in s]


async def _advisory_locks(harness: Harness) -> tuple[int, int]:
    """(granted, waiting) advisory locks in the whole PostgreSQL cluster's test database."""
    assert harness.app is not None
    async with harness.app.uow_factory() as uow:
        rows = (
            await uow.session.execute(
                text(
                    "select granted, count(*) from pg_locks where locktype = 'advisory'"
                    " and database = (select oid from pg_database where datname ="
                    " current_database()) group by granted"
                )
            )
        ).all()
        await uow.rollback()
    counts = {bool(granted): int(n) for granted, n in rows}
    return counts.get(True, 0), counts.get(False, 0)


async def test_a_poll_cancelled_while_waiting_for_the_lock_leaves_it_free(
    pg_harness: Harness,
) -> None:
    harness = pg_harness
    chat = await linked(harness)
    assert harness.app is not None
    async with harness.app.uow_factory() as uow:
        for n in range(3):
            await uow.tracked_reports.track(
                TrackedReport(chat.chat_id, f"NG-2026-00000{n}"), harness.clock()
            )
        await uow.commit()
    holder = harness.app.uow_factory()
    async with holder as uow:
        assert len(await uow.tracked_reports.claim_for_poll(harness.clock(), 1)) == 1
        waiting = asyncio.create_task(poll_reports(harness.app, harness.clock))
        for _ in range(200):  # until the second poll waits on the lock
            if (await _advisory_locks(harness))[1] == 1:
                break
            await asyncio.sleep(0.02)
        assert await _advisory_locks(harness) == (1, 1)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await uow.commit()
    for _ in range(200):  # the cancel reaches the server
        if await _advisory_locks(harness) == (0, 0):
            break
        await asyncio.sleep(0.02)
    assert await _advisory_locks(harness) == (0, 0)
    async with harness.app.uow_factory() as uow:
        claimed = await asyncio.wait_for(
            uow.tracked_reports.claim_for_poll(harness.clock(), 10), 10
        )
        await uow.commit()
    assert len(claimed) == 3  # the claim is not stuck behind a lock nobody releases
