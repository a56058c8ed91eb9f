"""Review 21: the fixes of eab977c (private-chat gate, catch-all input, unknown commands, the
service-message router, «/ text» in support, staff albums, the 403 rule) tried once more as a
resident, a support agent and an attacker. Tests under «Was (review 21)» pinned a defect found
here (fixed since); the others pin behaviour that held."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiogram.exceptions import TelegramForbiddenError
from aiogram.methods import CopyMessage, SendMessage
from aiogram_dialog import Dialog, Window
from aiogram_dialog.widgets.input import CombinedInput

import handlers
from bot.i18n import load_translator
from bot.jobs import deliver_notifications, poll_reports
from bot.metrics import ERRORS
from bot.ratelimit import MemoryLimiter
from handlers.receipts import PHOTO_STEPS
from handlers.widgets import _SAMPLES, OtherInput, _takes
from sandbox import SandboxServer
from sandbox.conversation import Conversation
from sandbox.telegram_double import Fault
from tests.contract.sandbox_client import FakeClock
from tests.flows.conftest import LINKED_MENU, Harness, _harness, settings_for
from tests.flows.test_albums import shorten_debounce
from tests.flows.test_charity_points_meters import linked
from tests.flows.test_hostile_input import no_crash
from tests.flows.test_reports import advance, photo, sent_report
from tests.flows.test_review19_bug_reports import UIN, UIN_ASKED, command, in_group, uin_step
from tests.flows.test_review20_chats_inputs import (
    PASSED_ON,
    STAFF,
    SUPPORT_CHAT,
    in_support,
    staff_message,
    staffed,
    topic,
)
from tests.flows.test_telegram_payments import (
    invoice_for_first_bill,
    pre_checkout,
    successful_payment,
)

__all__ = ["staffed"]

PAID = "Платёж получен и зачислен"
UNKNOWN_COMMAND = "Такой команды у меня нет"


@pytest.fixture
async def tg_harness(
    request: pytest.FixtureRequest, tmp_path: Path, sandbox: SandboxServer, clock: FakeClock
) -> AsyncIterator[Harness]:
    settings = settings_for(
        tmp_path, payments_provider_token="381764678:TEST:100500", support_chat_id=SUPPORT_CHAT
    )
    async for h in _harness(settings, sandbox, clock, request):
        h.telegram.register_chat(
            {"id": SUPPORT_CHAT, "type": "supergroup", "title": "Поддержка", "is_forum": True}
        )
        h.telegram.set_member(SUPPORT_CHAT, STAFF, "administrator")
        yield h


# ---- Telegram Payments behind the private-chat gate and the service router -------------------


async def test_a_telegram_payment_is_registered_with_the_pay_window_open(
    tg_harness: Harness,
) -> None:
    chat, bill, payload = await invoice_for_first_bill(tg_harness)
    assert (await pre_checkout(chat, payload, bill["amount"])).ok is True
    assert PAID in await successful_payment(chat, payload, bill["amount"], "tg-r21-1")


@pytest.mark.parametrize("where", ["uin step", "support"])
async def test_a_telegram_payment_is_registered_wherever_the_resident_went_meanwhile(
    tg_harness: Harness, where: str
) -> None:
    chat, bill, payload = await invoice_for_first_bill(tg_harness)
    await chat.send("/start")
    if where == "uin step":
        await chat.press("Добавить счёт по УИН")
        assert UIN_ASKED in chat.last_text
    else:
        await chat.press("Поддержка")
    assert (await pre_checkout(chat, payload, bill["amount"])).ok is True
    text = await successful_payment(chat, payload, bill["amount"], f"tg-r21-{where[:3]}")
    assert PAID in text, text


# ---- service messages of the private chat ----------------------------------------------------

SERVICE = {
    "refunded_payment": {
        "refunded_payment": {
            "currency": "XTR",
            "total_amount": 100,
            "invoice_payload": "x",
            "telegram_payment_charge_id": "tg-refund-1",
        }
    },
    "web_app_data": {"web_app_data": {"data": "<b>{}</b>", "button_text": "Открыть"}},
    "users_shared": {"users_shared": {"request_id": 1, "users": [{"user_id": 42}]}},
    "chat_shared": {"chat_shared": {"request_id": 2, "chat_id": -100500}},
    "write_access_allowed": {"write_access_allowed": {"from_request": True}},
}


@pytest.mark.parametrize("kind", list(SERVICE))
async def test_a_service_message_at_a_typed_step_is_silence_and_the_step_stays(
    harness: Harness, kind: str
) -> None:
    chat = await uin_step(harness)
    reply = await chat._send_content(SERVICE[kind])
    no_crash(reply)
    assert reply.messages == [] and reply.edits == [], reply.texts
    assert "Нашли начисление" in (await chat.send(UIN)).text


@pytest.mark.parametrize("kind", ["refunded_payment", "web_app_data"])
async def test_a_service_message_with_no_dialog_open_is_silence(
    harness: Harness, kind: str
) -> None:
    chat = harness.chat()
    reply = await chat._send_content(SERVICE[kind])
    no_crash(reply)
    assert reply.messages == [], reply.texts


CHECKLIST = {
    "checklist": {"title": "Купить", "tasks": [{"id": 1, "text": "молоко"}]},
}


# Was (review 21): SENT_BY_PEOPLE is an allow-list: a checklist (or any newer type a person sends)
# is swallowed as a service message, the resident is told nothing
async def test_a_checklist_at_a_typed_step_is_told_what_the_step_expects(
    harness: Harness,
) -> None:
    chat = await uin_step(harness)
    reply = await chat._send_content(CHECKLIST)
    no_crash(reply)
    assert any("Здесь нужен ответ текстом" in text for text in reply.texts), reply.texts


# ---- photos, files and albums where a step takes something else --------------------------------


async def test_a_photo_as_a_file_at_a_buttons_only_window_is_read_as_a_receipt(
    harness: Harness,
) -> None:
    chat = await linked(harness)
    reply = await chat.send_document(photo(11), "IMG_1.jpg", "image/jpeg")
    no_crash(reply)
    assert reply.texts and not any(t.startswith("Здесь нужно выбрать") for t in reply.texts)
    assert not any("не файлом" in t for t in reply.texts)


@pytest.mark.parametrize("where", ["uin step", "menu"])
async def test_an_album_of_three_photos_is_answered_once(harness: Harness, where: str) -> None:
    shorten_debounce(harness)
    chat = await (uin_step(harness) if where == "uin step" else linked(harness))
    reply = await chat.send_album([photo(21), photo(22), photo(23)])
    no_crash(reply)
    told = [t for t in reply.texts if not t.startswith("Здесь нужн")]
    assert told == reply.texts, reply.texts  # no catch-all answer for an album
    assert sum("Фото в альбоме: 3" in t for t in reply.texts) == 1, reply.texts
    assert len(reply.messages) == 1, reply.texts


async def refute_photo_step(harness: Harness) -> Conversation:
    chat, number = await sent_report(harness)
    assert harness.app is not None
    await advance(harness, number, to="answered", status_notes="Выполнено")
    await poll_reports(harness.app, harness.clock)
    await deliver_notifications(harness.app, harness.clock, MemoryLimiter())
    await chat.press("Не устранено")
    await chat.send("Яма на месте")
    assert "Добавьте фото" in chat.last_text
    return chat


async def test_an_album_at_the_refute_photo_step_refutes_once(harness: Harness) -> None:
    shorten_debounce(harness)
    chat = await refute_photo_step(harness)
    reply = await chat.send_album([photo(31), photo(32), photo(33)])
    no_crash(reply)
    assert sum("вернули в работу" in t for t in reply.texts) == 1, reply.texts
    assert not any(t.startswith("Здесь нужн") for t in reply.texts)


async def test_a_pdf_at_the_refute_photo_step_is_not_called_a_snapshot(harness: Harness) -> None:
    chat = await refute_photo_step(harness)
    reply = await chat.send_document(b"%PDF-1.4", "act.pdf", "application/pdf")
    no_crash(reply)
    assert reply.texts and "Добавьте фото" in chat.last_text


# ---- the catch-all's key, window by window ---------------------------------------------------


def _windows() -> list[tuple[str, Window]]:
    root = handlers.build_router()
    found: list[tuple[str, Window]] = []
    pending = [root]
    while pending:
        router = pending.pop()
        pending.extend(router.sub_routers)
        if isinstance(router, Dialog):
            found.extend(
                (str(state.state), w)
                for state, w in router.windows.items()
                if isinstance(w, Window)
            )
    return found


def _key_and_own(window: Window) -> tuple[str | None, list[Any]]:
    handler = window.on_message
    parts = handler.inputs if isinstance(handler, CombinedInput) else [handler]
    keys = [p.key for p in parts if isinstance(p, OtherInput)]
    own = [p for p in parts if p is not None and not isinstance(p, OtherInput)]
    assert len(keys) <= 1 and (not keys or isinstance(parts[-1], OtherInput))
    return (keys[0] if keys else None), own


def test_every_windows_catch_all_names_what_its_own_inputs_take() -> None:
    wrong = []
    for state, window in _windows():
        key, own = _key_and_own(window)
        if key is None or key == "support-not-passed":
            assert any(_takes(w, _SAMPLES["sticker"]) for w in own) or state == "SupportSG:chat"
            continue
        text = any(_takes(w, _SAMPLES["text"]) for w in own)
        photo_ = any(_takes(w, _SAMPLES["photo"]) for w in own)
        expected = {
            (True, False): "input-text-only",
            (False, True): "input-photo-only",
            (True, True): "input-text-or-photo",
            (False, False): "input-buttons-only",
        }[(text, photo_)]
        if key != expected:
            wrong.append((state, key, expected))
        # a photo ever reaches a dialog only at the photo steps: elsewhere receipts take it
        if "photo" in key and state not in {s.state for s in PHOTO_STEPS}:
            wrong.append((state, key, "photo never reaches this window"))
    assert wrong == []
    assert len(_windows()) > 80  # the walk saw every dialog


# ---- support: commands and text starting with «/» ----------------------------------------------


async def test_start_in_support_opens_the_menu_and_is_not_passed_on(staffed: Harness) -> None:
    harness = staffed
    chat, thread = await in_support(harness)
    reply = await chat.send("/start")
    no_crash(reply)
    assert chat.buttons == [*LINKED_MENU[:-1], "💬 Поддержка", LINKED_MENU[-1]]
    assert topic(harness, thread) == ["Вопрос про счёт за октябрь"]


async def test_slash_space_start_in_support_is_passed_on(staffed: Harness) -> None:
    harness = staffed
    chat, thread = await in_support(harness)
    reply = await chat.send("/ start")
    no_crash(reply)
    assert PASSED_ON in reply.text and topic(harness, thread)[-1] == "/ start"


@pytest.mark.parametrize("text", ["/help@other_bot", "/start@other_bot", "/start@other_bot link-x"])
async def test_a_command_for_another_bot_in_the_private_chat_is_not_a_step_value(
    harness: Harness, text: str
) -> None:
    chat = await uin_step(harness)
    reply = await chat.send(text)
    no_crash(reply)
    assert reply.texts[0].startswith(UNKNOWN_COMMAND), reply.texts
    assert UIN_ASKED in chat.last_text
    assert "Нашли начисление" in (await chat.send(UIN)).text


# ---- staff albums that do not copy whole -------------------------------------------------------


async def _staff_album(harness: Harness, thread: int, group: str) -> list[dict[str, Any]]:
    return [
        staff_message(
            harness,
            {"photo": harness.telegram.register_photo(photo(n)), "media_group_id": group},
            thread,
        )
        for n in (41, 42, 43)
    ]


async def _feed_staff(harness: Harness, parts: list[dict[str, Any]]) -> None:
    staff = harness.chat(user_id=STAFF["id"], first_name=STAFF["first_name"])
    await asyncio.gather(*(staff.feed({"message": part}) for part in parts))


# Was (review 21): on_staff_message stops at the first part whose copy fails (400): the parts after
# it and «Ответить» never reach the resident, and staff are not told
async def test_a_staff_album_whose_second_part_cannot_be_copied_still_ends_with_answer(
    staffed: Harness,
) -> None:
    harness = staffed
    shorten_debounce(harness)
    chat, thread = await in_support(harness)
    parts = await _staff_album(harness, thread, "staff-r21-a")
    del harness.telegram._messages[SUPPORT_CHAT][parts[1]["message_id"]]  # deleted meanwhile
    before = len(harness.telegram.messages(chat.chat_id))
    staff_before = len(harness.telegram.messages(SUPPORT_CHAT))
    await _feed_staff(harness, parts)
    got = harness.telegram.messages(chat.chat_id)[before:]
    told_staff = harness.telegram.messages(SUPPORT_CHAT)[staff_before:]
    assert [m.content_type for m in got] == ["photo", "photo"]
    assert got[-1].buttons and "Ответить" in got[-1].buttons[0].text
    assert told_staff, "staff are not told a part did not reach the resident"


# Was (review 21): a passing failure (429) on a later part of a staff album fails the update after
# the earlier parts were copied; the retry copies them again: the resident gets them twice
async def test_a_staff_album_meeting_a_429_on_its_last_part_reaches_the_resident_once(
    staffed: Harness,
) -> None:
    harness = staffed
    shorten_debounce(harness)
    chat, thread = await in_support(harness)
    parts = await _staff_album(harness, thread, "staff-r21-b")
    double = harness.telegram
    original = double._handlers[CopyMessage]
    calls = 0

    async def second_copy_throttled(call: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:  # the fault is met by the next copy: the album's third part
            double.fail_next(CopyMessage, Fault.RETRY_AFTER, retry_after=1)
        return await original(call)

    double._handlers[CopyMessage] = second_copy_throttled
    before = len(double.messages(chat.chat_id))
    try:
        await _feed_staff(harness, parts)
    except Exception:  # the failure may surface: what the resident got is what matters
        pass
    got = double.messages(chat.chat_id)[before:]
    ids = [m.file_id for m in got]
    assert len(ids) == len(set(ids)) == 3, [m.content_type for m in got]


# ---- groups: a chat where the bot may not write -------------------------------------------------


# Was (review 21): a 403 answering a command in a stranger's group (the bot was kicked or muted) is
# counted in bot_errors_total: anyone can raise the operator's error rate
async def test_a_group_that_forbids_the_bot_to_write_is_no_bot_error(harness: Harness) -> None:
    neighbour = harness.chat(user_id=200002, first_name="Сосед")
    harness.telegram.fail_next(
        SendMessage,
        Fault.FORBIDDEN,
        times=2,
        description="Forbidden: bot was kicked from the supergroup chat",
    )
    before = ERRORS._value.get()
    try:
        await in_group(harness, neighbour, command("/start"))
    except TelegramForbiddenError:
        pass
    assert ERRORS._value.get() == before


# ---- the new texts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bot", ["@resident_console_bot", "none", "@none", "@<b>x</b>", "@a&amp;b", "@" + "x" * 600]
)
def test_the_private_only_line_renders_any_bot_name_literally(bot: str) -> None:
    tr = load_translator()
    text = str(tr("chat-private-only", bot=bot))
    assert "{" not in text and "<b>x" not in text
    if "&" in bot:
        assert "&amp;amp;" in text
    if bot == "none":
        assert "Откройте чат со мной" in text and "@" not in text
    else:
        assert "Напишите мне в личные сообщения" in text
    for key in (
        "chat-private-only-toast",
        "input-text-only",
        "input-photo-only",
        "input-text-or-photo",
        "input-buttons-only",
        "input-photo-as-file",
        "error-button-without-chat",
        "fallback-unknown-command",
    ):
        rendered = str(tr(key))
        assert rendered and "{" not in rendered and "<" not in rendered, key
