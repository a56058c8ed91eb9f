"""The conversation driver and the console drive a real Dispatcher (and aiogram-dialog)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.exceptions import TelegramForbiddenError
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.fsm.state import State, StatesGroup
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.methods import SendMessage
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
)
from aiogram_dialog import Dialog, DialogManager, StartMode, Window, setup_dialogs
from aiogram_dialog.widgets.kbd import Button, SwitchTo
from aiogram_dialog.widgets.text import Const

from sandbox.console import parse_line, render_reply, run_console
from sandbox.conversation import Conversation, ConversationError
from sandbox.telegram_double import Fault, LocalTelegram, make_local_bot

SITE_URL = "https://www.mos.ru/"
LOGIN_URL = "https://sandbox.local/oauth/authorize?state=abc"
STAFF_CHAT = -1001234567890


class Steps(StatesGroup):
    first = State()
    second = State()


def start_keyboard() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(text="Подробнее", callback_data="more"),
                InlineKeyboardButton(text="Подсказка", callback_data="toast"),
            ],
            [InlineKeyboardButton(text="Сайт", url=SITE_URL)],
            [InlineKeyboardButton(text="Войти", url=LOGIN_URL)],
        ]
    )


def build_router() -> Router:
    router = Router(name="test-bot")

    @router.message(CommandStart())
    async def start(message: Message, command: CommandObject) -> None:
        name = message.from_user.first_name if message.from_user else "?"
        suffix = f" ({command.args})" if command.args else ""
        await message.answer(f"Привет, <b>{name}</b>!{suffix}", reply_markup=start_keyboard())

    @router.callback_query(F.data == "more")
    async def more(callback: CallbackQuery) -> None:
        assert isinstance(callback.message, Message)
        await callback.message.edit_text("Подробности")
        await callback.answer()

    @router.callback_query(F.data == "toast")
    async def toast(callback: CallbackQuery) -> None:
        await callback.answer("Готово", show_alert=False)

    @router.message(Command("dialog"))
    async def open_dialog(message: Message, dialog_manager: DialogManager) -> None:
        await dialog_manager.start(Steps.first, mode=StartMode.RESET_STACK)

    @router.message(Command("report"))
    async def report(message: Message, bot: Bot) -> None:
        await bot.send_message(STAFF_CHAT, "Новая заявка")
        await message.answer("Заявка принята")

    @router.message(Command("boom"))
    async def boom(message: Message) -> None:
        raise RuntimeError("handler exploded")

    @router.message(F.photo)
    async def photo(message: Message, bot: Bot) -> None:
        assert message.photo is not None
        downloaded = await bot.download(message.photo[-1])
        assert downloaded is not None
        await message.answer(f"Получено байт: {len(downloaded.read())}")

    @router.message(F.location)
    async def location(message: Message) -> None:
        assert message.location is not None
        await message.answer(
            f"Координаты: {message.location.latitude}, {message.location.longitude}"
        )

    @router.message(F.text)
    async def echo(message: Message) -> None:
        await message.answer(f"Эхо: {message.text}")

    return router


async def to_second(callback: CallbackQuery, button: Button, manager: DialogManager) -> None:
    await manager.switch_to(Steps.second)


def build_dialog() -> Dialog:
    return Dialog(
        Window(
            Const("Первое окно"),
            Button(Const("Дальше"), id="next", on_click=to_second),
            state=Steps.first,
        ),
        Window(
            Const("Второе окно"),
            SwitchTo(Const("Назад"), id="back", state=Steps.first),
            state=Steps.second,
        ),
    )


@pytest.fixture
def dispatcher() -> Dispatcher:
    dispatcher = Dispatcher(storage=MemoryStorage())
    dispatcher.include_router(build_router())
    dispatcher.include_router(build_dialog())
    setup_dialogs(dispatcher)
    return dispatcher


@pytest.fixture
def telegram() -> LocalTelegram:
    return LocalTelegram()


@pytest.fixture
async def bot(telegram: LocalTelegram) -> AsyncIterator[Bot]:
    async with make_local_bot(telegram) as bot:
        yield bot


@pytest.fixture
def resident(dispatcher: Dispatcher, bot: Bot) -> Conversation:
    return Conversation(dispatcher, bot, user_id=100001, first_name="Мария")


# ---- the driver ----------------------------------------------------------------------------------


async def test_start_answers_with_an_inline_keyboard(resident: Conversation) -> None:
    reply = await resident.send("/start")
    assert reply.texts == ["Привет, Мария!"]
    assert reply.messages[0].html == "Привет, <b>Мария</b>!"
    assert resident.buttons == ["Подробнее", "Подсказка", "Сайт", "Войти"]
    screen = resident.screen()
    assert screen.text == "Привет, Мария!"
    assert screen.buttons == [["Подробнее", "Подсказка"], ["Сайт"], ["Войти"]]
    assert resident.url_buttons == {"Сайт": SITE_URL, "Войти": LOGIN_URL}


async def test_start_payload_reaches_the_command_filter(resident: Conversation) -> None:
    reply = await resident.send("/start link-abc123")
    assert reply.text == "Привет, Мария! (link-abc123)"


async def test_press_edits_the_same_message_and_answers_the_query(
    resident: Conversation,
) -> None:
    start = (await resident.send("/start")).messages[0]
    reply = await resident.press("Подробнее")
    assert reply.messages == []
    assert [edit.message_id for edit in reply.edits] == [start.message_id]
    assert reply.texts == ["Подробности"]
    assert reply.answered
    assert resident.history == ["Подробности"]
    assert resident.buttons == []  # edit_text without reply_markup drops the keyboard


async def test_press_by_index_and_substring(resident: Conversation) -> None:
    await resident.send("/start")
    by_index = await resident.press(2)
    assert [answer.text for answer in by_index.callback_answers] == ["Готово"]
    by_substring = await resident.press("Подроб")
    assert by_substring.texts == ["Подробности"]


async def test_press_errors_name_the_buttons(resident: Conversation) -> None:
    with pytest.raises(ConversationError, match="no bot message with an inline keyboard"):
        await resident.press(1)
    await resident.send("/start")
    with pytest.raises(ConversationError, match=r"\[1\] 'Подробнее'"):
        await resident.press("Оплатить")
    with pytest.raises(ConversationError, match="several buttons match"):
        await resident.press("П")
    with pytest.raises(ConversationError, match="url button"):
        await resident.press("Сайт")
    assert resident.url_of("Сайт") == SITE_URL
    assert resident.url_of(4) == LOGIN_URL


async def test_sent_photo_is_downloaded_by_the_bot(resident: Conversation) -> None:
    reply = await resident.send_photo(b"\xff\xd8" + b"x" * 1232)
    assert reply.text == "Получено байт: 1234"


async def test_album_photos_share_a_media_group(
    resident: Conversation, telegram: LocalTelegram
) -> None:
    reply = await resident.send_album([b"a" * 3, b"b" * 5])
    assert sorted(reply.texts) == ["Получено байт: 3", "Получено байт: 5"]
    incoming = [m for m in telegram.messages(resident.chat_id, include_incoming=True)]
    groups = {m.media_group_id for m in incoming if not m.from_bot}
    assert len(groups) == 1 and None not in groups


async def test_location_contact_and_document_reach_the_bot(resident: Conversation) -> None:
    assert (await resident.send_location(55.7558, 37.6173)).text == "Координаты: 55.7558, 37.6173"
    assert (await resident.send_contact("+79990000000")).texts == []  # no handler: silence
    assert (await resident.send_document(b"%PDF", "a.pdf", "application/pdf")).texts == []


async def test_dialog_window_switch_edits_the_same_message(resident: Conversation) -> None:
    opened = await resident.send("/dialog")
    assert opened.texts == ["Первое окно"]
    dialog_message = opened.messages[0].message_id
    assert resident.buttons == ["Дальше"]

    forward = await resident.press("Дальше")
    assert forward.messages == []
    assert [edit.message_id for edit in forward.edits] == [dialog_message]
    assert forward.texts == ["Второе окно"]
    assert forward.answered
    assert resident.screen().buttons == [["Назад"]]

    back = await resident.press("Назад")
    assert back.texts == ["Первое окно"]
    assert resident.history == ["Первое окно"]


async def test_dialog_new_message_removes_the_old_keyboard(resident: Conversation) -> None:
    first = (await resident.send("/dialog")).messages[0]
    reply = await resident.send("/dialog")
    assert reply.texts == ["Первое окно"]  # keyboard-only edits are not in texts
    assert [edit.message_id for edit in reply.edits] == [first.message_id]
    assert reply.edits[0].buttons == []
    assert [m.message_id for m in reply.messages] != [first.message_id]


async def test_messages_to_other_chats_are_reported_apart(resident: Conversation) -> None:
    reply = await resident.send("/report")
    assert reply.texts == ["Заявка принята"]
    assert [(e.chat_id, e.message.text) for e in reply.elsewhere if e.message] == [
        (STAFF_CHAT, "Новая заявка")
    ]
    assert render_reply(reply) == ["→ chat -1001234567890: Новая заявка", "Заявка принята"]


async def test_injected_fault_propagates_out_of_the_dispatcher(
    resident: Conversation, telegram: LocalTelegram
) -> None:
    telegram.fail_next(SendMessage, Fault.FORBIDDEN)
    with pytest.raises(TelegramForbiddenError):
        await resident.send("/start")
    assert (await resident.send("/start")).texts == ["Привет, Мария!"]


async def test_inbox_reports_what_happened_outside_an_action(
    resident: Conversation, bot: Bot
) -> None:
    await resident.send("/start")
    await bot.send_message(resident.chat_id, "Напоминание: счёт за ЖКУ")
    assert resident.inbox().texts == ["Напоминание: счёт за ЖКУ"]
    assert resident.inbox().texts == []


async def test_update_ids_are_monotonic_from_the_given_start(
    dispatcher: Dispatcher, bot: Bot
) -> None:
    seen: list[int] = []

    @dispatcher.update.outer_middleware()
    async def remember(
        handler: Callable[[Update, dict[str, Any]], Awaitable[Any]],
        update: Update,
        data: dict[str, Any],
    ) -> Any:
        seen.append(update.update_id)
        return await handler(update, data)

    conversation = Conversation(dispatcher, bot, first_update_id=500)
    await conversation.send("/start")
    await conversation.press(2)
    await conversation.send("hi")
    assert seen == [500, 501, 502]


# ---- the console ---------------------------------------------------------------------------------


def scripted(lines: list[str]) -> Callable[[str], Awaitable[str]]:
    """An input function that plays ``lines`` and then reports end of input."""

    async def read(prompt: str) -> str:
        if not lines:
            raise EOFError
        return lines.pop(0)

    return read


async def test_console_presses_numbered_buttons_and_quits(
    dispatcher: Dispatcher, bot: Bot, telegram: LocalTelegram
) -> None:
    lines = ["/start", "#1", ":quit", "never read"]
    output = io.StringIO()
    await run_console(dispatcher, bot, banner="BANNER", input_fn=scripted(lines), output=output)
    text = output.getvalue()
    assert text.startswith("BANNER\n")
    assert "Привет, Житель!" in text
    assert "  [1] Подробнее   [2] Подсказка" in text
    assert f"  [3] Сайт ↗ {SITE_URL}" in text
    assert "✎ Подробности" in text  # #1 pressed "Подробнее", which edits the message
    assert lines == ["never read"]  # :quit stopped reading
    assert telegram.messages(100001)[0].text == "Подробности"


async def test_console_url_button_sends_what_open_url_returns(
    dispatcher: Dispatcher, bot: Bot
) -> None:
    opened: list[str] = []

    async def open_url(url: str) -> str | None:
        opened.append(url)
        return "/start link-xyz" if "oauth" in url else None

    output = io.StringIO()
    script = scripted(["/start", "#4", "#3"])
    await run_console(
        dispatcher, bot, banner="B", open_url=open_url, input_fn=script, output=output
    )
    text = output.getvalue()
    assert opened == [LOGIN_URL, SITE_URL]
    assert "Привет, Житель! (link-xyz)" in text
    assert f"↗ {SITE_URL}" in text
    assert text.rstrip().endswith("bye")  # EOF ends the console cleanly


async def test_console_sends_locations_photos_and_survives_errors(
    dispatcher: Dispatcher, bot: Bot, tmp_path: Path
) -> None:
    picture = tmp_path / "pothole.jpg"
    picture.write_bytes(b"x" * 42)
    lines = [
        ":loc 55.75 37.61",
        f":photo {picture}",
        f":photo {tmp_path / 'missing.jpg'}",
        "#7",
        "/boom",
        ":help",
        ":nope",
        "after the storm",
    ]
    output = io.StringIO()
    await run_console(dispatcher, bot, banner="B", input_fn=scripted(lines), output=output)
    text = output.getvalue()
    assert "Координаты: 55.75, 37.61" in text
    assert "Получено байт: 42" in text
    assert "! cannot read" in text
    assert "! no bot message with an inline keyboard" in text
    assert "RuntimeError: handler exploded" in text
    assert ":loc LAT LON" in text
    assert "unknown console command :nope" in text
    assert "Эхо: after the storm" in text


def test_parse_line_recognises_console_commands() -> None:
    assert parse_line("#12").kind == "press"
    assert parse_line("#12").args == ("12",)
    assert parse_line(":loc 55.7, 37.6").args == ("55.7", "37.6")
    assert parse_line(":loc north").kind == "invalid"
    assert parse_line("/help").kind == "text"  # /help belongs to the bot
    assert parse_line("#tag is text").kind == "text"
    assert parse_line(" :QUIT ").kind == "quit"


async def test_render_reply_shows_toasts_alerts_and_silence(resident: Conversation) -> None:
    await resident.send("/start")
    assert render_reply(await resident.press("Подсказка")) == ["💬 Готово"]
    assert render_reply(await resident.send_contact("+7999")) == ["(the bot did not answer)"]
