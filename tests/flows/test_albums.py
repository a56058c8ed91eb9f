"""Albums as one step in the in-process harness (parts fed concurrently, as polling does):
several receipts are each answered, an album over the report's photo limit is refused whole,
a part after its album was answered is not lost, and a mixed album adds nothing."""

from __future__ import annotations

import asyncio

from aiogram.methods import SendMessage

from bot.album import albums_of
from sandbox.conversation import Conversation
from sandbox.telegram_double import Fault
from tests.flows.conftest import Harness
from tests.flows.test_receipt_photo import epd_qr, linked, receipt_photo
from tests.flows.test_reports import ARBAT_10, photo, start_pothole
from tests.money_text import nb

SHORT_DEBOUNCE = 0.2  # seconds; the harness waits for the album's handling (drain)


def shorten_debounce(harness: Harness) -> None:
    assert harness.app is not None
    for middleware in albums_of(harness.app.dispatcher):
        middleware.debounce = SHORT_DEBOUNCE


async def at_photo_step(harness: Harness) -> Conversation:
    shorten_debounce(harness)
    chat = await start_pothole(harness)
    await chat.send_location(*ARBAT_10)
    assert "Пришлите фото" in chat.last_text
    return chat


async def test_two_receipts_in_one_album_are_both_answered(harness: Harness) -> None:
    shorten_debounce(harness)
    chat = await linked(harness)
    reply = await chat.send_album(
        [receipt_photo(epd_qr()), receipt_photo(epd_qr(Sum="100000", PaymPeriod="112026"))]
    )
    assert nb("8 124,50 ₽") in reply.text and nb("1 000,00 ₽") in reply.text
    assert nb("Оплатить № 1 — 8 124,50 ₽") in chat.buttons
    assert nb("Оплатить № 2 — 1 000,00 ₽") in chat.buttons
    await chat.press("Оплатить № 1")
    assert nb("Сумма: 8 124,50 ₽") in chat.last_text
    await chat.press("Отмена")
    await chat.press("Оплатить № 2")
    assert nb("Сумма: 1 000,00 ₽") in chat.last_text


async def test_a_photo_without_a_code_in_an_album_is_said_so(harness: Harness) -> None:
    shorten_debounce(harness)
    chat = await linked(harness)
    reply = await chat.send_album([photo(30), receipt_photo(epd_qr())])
    assert "1. не нашёл QR-код" in reply.text
    assert nb("2. ГБУ «Жилищник района Сосновая Роща» — 8 124,50 ₽") in reply.text
    assert [b for b in chat.buttons if b.startswith("Оплатить")] == [
        nb("Оплатить № 2 — 8 124,50 ₽")
    ]


async def test_an_album_without_any_code_offers_the_uin(harness: Harness) -> None:
    shorten_debounce(harness)
    chat = await linked(harness)
    reply = await chat.send_album([photo(30), photo(90)])
    assert "Оплатить по этим фото не получится" in reply.text
    assert "Ввести УИН" in chat.buttons


async def test_six_photos_at_the_photo_step_are_refused_together(harness: Harness) -> None:
    chat = await at_photo_step(harness)
    reply = await chat.send_album([photo(n) for n in range(10, 70, 10)])
    assert "не больше 5 фото" in reply.text
    assert "Фото добавлено" not in reply.text
    await chat.press("Пропустить")  # no photo was kept: the step can still be skipped
    await chat.press("Пропустить")
    assert "Фото: 0" in chat.last_text


async def test_an_album_over_the_limit_after_some_photos_adds_none(harness: Harness) -> None:
    chat = await at_photo_step(harness)
    assert "Фото добавлено: 3 из 5" in (await chat.send_album([photo(1), photo(2), photo(3)])).text
    reply = await chat.send_album([photo(4), photo(5), photo(6)])
    assert "не больше 5 фото — сейчас их 3" in reply.text
    await chat.press("Дальше")
    await chat.press("Пропустить")
    assert "Фото: 3" in chat.last_text


async def test_a_late_part_after_the_album_was_handled_is_kept(harness: Harness) -> None:
    chat = await at_photo_step(harness)
    group = "late-album"
    reply = await chat.send_photo(photo(10), media_group_id=group)
    reply = await chat.send_photo(photo(20), media_group_id=group)  # after the group was handled
    assert "Фото добавлено: 2 из 5" in reply.text
    await chat.press("Дальше")
    await chat.press("Пропустить")
    assert "Фото: 2" in chat.last_text


async def test_an_album_with_a_video_adds_nothing(harness: Harness) -> None:
    chat = await at_photo_step(harness)
    group = "mixed"
    first = chat.telegram.incoming_message(
        chat.chat_id,
        chat.user,
        {"photo": chat.telegram.register_photo(photo(10)), "media_group_id": group},
    )
    stored = chat.telegram.register_file(b"video", kind="video", mime_type="video/mp4")
    video = {
        "file_id": stored.file_id,
        "file_unique_id": stored.file_unique_id,
        "width": 640,
        "height": 480,
        "duration": 3,
    }
    second = chat.telegram.incoming_message(
        chat.chat_id, chat.user, {"video": video, "media_group_id": group}
    )
    await asyncio.gather(chat.feed({"message": first}), chat.feed({"message": second}))
    assert any("не только фото" in text for text in chat.history)
    assert not any("Фото добавлено" in text for text in chat.history)
    await chat.press("Пропустить")
    await chat.press("Пропустить")
    assert "Фото: 0" in chat.last_text


async def test_an_album_whose_handling_meets_a_passing_failure_is_tried_again(
    harness: Harness,
) -> None:
    """Nobody redelivers an album (its parts were answered when buffered): a failure that
    passes — here Telegram's 500 on the answer — is tried again by the album's own task,
    without a word to the resident, and the receipts are answered."""
    shorten_debounce(harness)
    assert harness.app is not None
    for middleware in albums_of(harness.app.dispatcher):
        middleware.retries = (0.01, 0.01)
    chat = await linked(harness)
    harness.telegram.fail_next(SendMessage, Fault.SERVER_ERROR)
    reply = await chat.send_album(
        [receipt_photo(epd_qr()), receipt_photo(epd_qr(Sum="100000", PaymPeriod="112026"))]
    )
    assert harness.telegram.pending_faults(SendMessage) == 0  # the failure did happen
    assert nb("8 124,50 ₽") in reply.text and nb("1 000,00 ₽") in reply.text
    assert "Что-то пошло не так" not in reply.text
