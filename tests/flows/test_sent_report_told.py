"""A report's send whose result screen was lost is told with its number, found by the name of
the draft it was made from (`Draft.draft_id` kept on the followed row), never guessed; and a
resident's edit of a message the bot already took is answered, never met with silence."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from domain.ports import TrackedReport
from sandbox.conversation import Conversation
from storage.models import ReportDraftRow, TrackedReportRow
from tests.flows.conftest import Harness
from tests.flows.test_hostile_input import no_crash, press_again
from tests.flows.test_review22_update_shapes import description_step
from tests.flows.test_review35e_bug_reports import city_reports, report_review

NOT_TAKEN = "Исправленное сообщение я не вижу"
DESCRIPTION_NOT_TAKEN = "Исправленное описание я не вижу"


async def draft_json(harness: Harness, chat: Conversation) -> dict[str, Any] | None:
    assert harness.app is not None
    async with harness.app.uow_factory() as uow:
        assert uow.session is not None
        row = await uow.session.get(ReportDraftRow, chat.chat_id)
        return None if row is None else dict(row.data)


async def followed_names(harness: Harness, chat: Conversation) -> dict[str, str | None]:
    assert harness.app is not None
    async with harness.app.uow_factory() as uow:
        assert uow.session is not None
        rows = await uow.session.execute(
            select(TrackedReportRow.report_id, TrackedReportRow.draft_id).where(
                TrackedReportRow.telegram_user_id == chat.chat_id
            )
        )
        return {report_id: draft_id for report_id, draft_id in rows}


async def test_the_report_a_send_made_carries_its_drafts_name(harness: Harness) -> None:
    chat, screen = await report_review(harness)
    drafted = await draft_json(harness, chat)
    assert drafted is not None and drafted["draft_id"]
    before = city_reports(harness)
    await press_again(chat, screen.payload, screen.data)
    [made] = [n for n in city_reports(harness) if n not in before]
    assert f"Обращение № {made}" in chat.last_text
    assert (await followed_names(harness, chat))[made] == drafted["draft_id"]


async def test_a_draft_deleted_elsewhere_is_not_told_as_sent(harness: Harness) -> None:
    """The review left open while the draft was deleted on another device: it says the draft
    went, names no number, and offers no «Отправить»."""
    chat, screen = await report_review(harness)
    assert harness.app is not None
    async with harness.app.uow_factory() as uow:
        await uow.drafts.delete(chat.chat_id)
        await uow.commit()
    before = city_reports(harness)
    reply = await press_again(chat, screen.payload, screen.data)
    no_crash(reply)
    assert city_reports(harness) == before
    assert "Этого черновика больше нет" in chat.last_text, chat.last_text
    assert "№" not in chat.last_text
    assert "Отправить" not in chat.buttons


async def test_a_draft_saved_before_drafts_had_names_is_named_and_told(harness: Harness) -> None:
    """A draft written by the previous release has no name: the dialog that goes on with it
    names it after itself, and its send, whose screen is lost to a blocked bot, is then told
    with its number."""
    chat, _ = await report_review(harness)
    assert harness.app is not None
    async with harness.app.uow_factory() as uow:
        assert uow.session is not None
        row = await uow.session.get(ReportDraftRow, chat.chat_id)
        assert row is not None
        old = {k: v for k, v in row.data.items() if k != "draft_id"}
        await uow.session.execute(
            update(ReportDraftRow)
            .where(ReportDraftRow.telegram_user_id == chat.chat_id)
            .values(data=old)
        )
        await uow.commit()
    await chat.send("/start")
    await chat.press("📣 Сообщить о проблеме")
    await chat.press("Продолжить")
    assert "Проверьте обращение" in chat.last_text, chat.last_text
    before = city_reports(harness)
    harness.telegram.block_chat(chat.chat_id)
    await chat.press("Отправить")
    [made] = [n for n in city_reports(harness) if n not in before]
    harness.telegram.unblock_chat(chat.chat_id)
    reply = await chat.send("привет")
    no_crash(reply)
    assert any(f"Обращение № {made}" in text for text in chat.history)
    assert (await followed_names(harness, chat))[made] is not None


async def test_a_report_followed_before_its_send_recorded_it_still_gets_the_drafts_name(
    harness: Harness,
) -> None:
    """A poll adopted the report (no name) before the send wrote its own row: the send's row
    names it after all; a later follow of it with another name changes nothing."""
    assert harness.app is not None
    async with harness.app.uow_factory() as uow:
        now = harness.clock()
        await uow.tracked_reports.track(TrackedReport(7, "R-1"), now)
        await uow.tracked_reports.track(TrackedReport(7, "R-1", draft_id="aaaa"), now)
        await uow.tracked_reports.track(TrackedReport(7, "R-1", draft_id="bbbb"), now)
        await uow.commit()
    async with harness.app.uow_factory() as uow:
        found = await uow.tracked_reports.made_by_draft(7, "aaaa")
        assert found is not None and found.report_id == "R-1"
        assert await uow.tracked_reports.made_by_draft(7, "bbbb") is None
        assert await uow.tracked_reports.made_by_draft(8, "aaaa") is None


# ---- edits of messages already taken ----------------------------------------------------------


async def test_an_edit_of_a_message_already_taken_is_answered(harness: Harness) -> None:
    chat = harness.chat()
    await harness.link(chat, "demo-full")
    typed = chat._incoming({"text": "привет"})
    await chat.feed({"message": typed})
    reply = await chat.feed({"edited_message": {**typed, "text": "привет!", "edit_date": 1}})
    no_crash(reply)
    assert NOT_TAKEN in reply.text, reply.texts


async def test_an_edit_from_someone_not_linked_is_answered_too(harness: Harness) -> None:
    chat = harness.chat()
    typed = chat._incoming({"text": "/start"})
    await chat.feed({"message": typed})
    reply = await chat.feed({"edited_message": {**typed, "text": "/stat", "edit_date": 1}})
    no_crash(reply)
    assert NOT_TAKEN in reply.text, reply.texts


async def test_the_description_edit_names_the_button_to_change_it(harness: Harness) -> None:
    chat = await description_step(harness)
    typed = chat._incoming({"text": "Яма у падъезда"})
    await chat.feed({"message": typed})
    reply = await chat.feed(
        {"edited_message": {**typed, "text": "Яма у подъезда", "edit_date": typed["date"] + 5}}
    )
    assert DESCRIPTION_NOT_TAKEN in reply.text, reply.texts
    assert "✏️ Описание" in reply.text and "✏️ Описание" in chat.buttons


async def test_a_description_edited_after_the_report_went_is_told_as_any_edit(
    harness: Harness,
) -> None:
    chat = await description_step(harness)
    typed = chat._incoming({"text": "Яма у подъезда"})
    await chat.feed({"message": typed})
    await chat.press("Отправить")
    assert "отправлено" in chat.last_text, chat.last_text
    reply = await chat.feed({"edited_message": {**typed, "text": "Яма", "edit_date": 2}})
    no_crash(reply)
    assert NOT_TAKEN in reply.text and DESCRIPTION_NOT_TAKEN not in reply.text, reply.texts


async def test_a_live_location_moving_is_not_answered(harness: Harness) -> None:
    chat = harness.chat()
    await harness.link(chat, "demo-full")
    shared = chat._incoming({"location": {"latitude": 55.75, "longitude": 37.59}})
    shared["location"]["live_period"] = 900
    await chat.feed({"message": shared})
    moved = {**shared, "location": {"latitude": 55.751, "longitude": 37.591, "live_period": 900}}
    reply = await chat.feed({"edited_message": {**moved, "edit_date": 3}})
    no_crash(reply)
    assert reply.messages == [], reply.texts


async def test_an_edit_in_a_group_is_not_answered(harness: Harness) -> None:
    chat = harness.chat()
    group = {"id": -100500, "type": "supergroup", "title": "Двор"}
    typed = {**chat._incoming({"text": "привет"}), "chat": group}
    reply = await chat.feed({"edited_message": {**typed, "text": "привет!", "edit_date": 1}})
    no_crash(reply)
    assert reply.messages == [], reply.texts


# ---- a step of a draft that went -----------------------------------------------------------


async def test_a_step_after_the_draft_was_purged_is_told_and_starts_nothing(
    harness: Harness,
) -> None:
    """The draft went (retention, unlinking elsewhere) while its step was open: the typed
    description is not written into a new draft holding only it; the resident is told the
    draft went and gets the menu."""
    chat = await description_step(harness)
    assert harness.app is not None
    async with harness.app.uow_factory() as uow:
        await uow.drafts.delete(chat.chat_id)
        await uow.commit()
    reply = await chat.send("Яма у подъезда")
    no_crash(reply)
    assert "Этого черновика больше нет" in reply.text, reply.texts
    assert "📣 Сообщить о проблеме" in chat.buttons, chat.buttons
    assert await draft_json(harness, chat) is None


async def test_a_step_after_another_draft_replaced_it_writes_nothing_into_that_one(
    harness: Harness,
) -> None:
    """The stored draft is another one than the step's (begun after it went): the step's
    value is not written into it."""
    chat = await description_step(harness)
    assert harness.app is not None
    async with harness.app.uow_factory() as uow:
        assert uow.session is not None
        row = await uow.session.get(ReportDraftRow, chat.chat_id)
        assert row is not None
        other = {**row.data, "draft_id": "another-draft", "description": ""}
        await uow.session.execute(
            update(ReportDraftRow)
            .where(ReportDraftRow.telegram_user_id == chat.chat_id)
            .values(data=other)
        )
        await uow.commit()
    reply = await chat.send("Яма у подъезда")
    no_crash(reply)
    assert "Этого черновика больше нет" in reply.text, reply.texts
    kept = await draft_json(harness, chat)
    assert kept is not None and kept["draft_id"] == "another-draft"
    assert kept["description"] == ""


async def test_an_edit_from_the_review_after_the_draft_was_sent_tells_the_number(
    harness: Harness,
) -> None:
    """«✏️ Описание» on a review whose draft was sent meanwhile (its result screen lost): the
    number is told, and no new, empty draft is begun by the edit."""
    chat, screen = await report_review(harness)
    before = city_reports(harness)
    harness.telegram.block_chat(chat.chat_id)
    await press_again(chat, screen.payload, screen.data)
    [made] = [n for n in city_reports(harness) if n not in before]
    harness.telegram.unblock_chat(chat.chat_id)
    buttons = [b for row in screen.payload["reply_markup"]["inline_keyboard"] for b in row]
    [description] = [b for b in buttons if b["text"] == "✏️ Описание"]
    reply = await press_again(chat, screen.payload, description["callback_data"])
    no_crash(reply)
    assert any(f"Обращение № {made}" in text for text in chat.history), chat.history
    assert await draft_json(harness, chat) is None
