"""LocalTelegram answers the Bot API like Telegram does, through aiogram's own wire path."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import pytest
from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import GetChat, SendMessage, SendPhoto
from aiogram.types import (
    BotCommand,
    BufferedInputFile,
    File,
    ForumTopic,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    KeyboardButton,
    Message,
    MessageId,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)

from sandbox.telegram_double import (
    BOT_FIRST_NAME,
    BOT_USER_ID,
    BOT_USERNAME,
    EventKind,
    Fault,
    HtmlParseError,
    LocalTelegram,
    LocalTelegramError,
    make_local_bot,
    parse_html,
    strip_html,
)

CHAT = 100001
STAFF_CHAT = -1001234567890


@pytest.fixture
def telegram() -> LocalTelegram:
    return LocalTelegram(clock=lambda: 1_700_000_000.0)


@pytest.fixture
async def bot(telegram: LocalTelegram) -> AsyncIterator[Bot]:
    async with make_local_bot(telegram) as bot:
        yield bot


def keyboard(*buttons: tuple[str, str]) -> InlineKeyboardMarkup:
    rows = [[InlineKeyboardButton(text=text, callback_data=data)] for text, data in buttons]
    return InlineKeyboardMarkup(inline_keyboard=rows)


# ---- HTML ----------------------------------------------------------------------------------------


def test_parse_html_gives_plain_text_and_utf16_entities() -> None:
    text, entities = parse_html('😀 <b>Счёт</b> &amp; <a href="https://mos.ru">ссылка</a>')
    assert text == "😀 Счёт & ссылка"
    assert entities == [
        {"type": "bold", "offset": 3, "length": 4},  # the emoji takes two UTF-16 units
        {"type": "text_link", "url": "https://mos.ru", "offset": 10, "length": 6},
    ]


def test_parse_html_pre_with_language_makes_one_pre_entity() -> None:
    _, entities = parse_html('<pre><code class="language-python">x = 1</code></pre>')
    assert entities == [{"type": "pre", "language": "python", "offset": 0, "length": 5}]


@pytest.mark.parametrize("html", ["a<br>b", "<b>open", "<b><i>x</b></i>", "<div>x</div>"])
def test_parse_html_rejects_what_telegram_rejects(html: str) -> None:
    with pytest.raises(HtmlParseError):
        parse_html(html)


def test_strip_html_tolerates_broken_markup() -> None:
    assert strip_html("<b>Готово</b> &lt;3") == "Готово <3"
    assert strip_html("a<br>b") == "ab"


# ---- identity, sending, state --------------------------------------------------------------------


async def test_get_me_returns_the_console_bot(bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.id, me.username, me.first_name, me.is_bot) == (
        BOT_USER_ID,
        BOT_USERNAME,
        BOT_FIRST_NAME,
        True,
    )
    assert bot.id == BOT_USER_ID


async def test_send_message_returns_a_bound_message_with_parsed_html(
    bot: Bot, telegram: LocalTelegram
) -> None:
    sent = await bot.send_message(CHAT, "<b>Привет</b>, житель", reply_markup=keyboard(("A", "a")))
    assert isinstance(sent, Message)
    assert sent.bot is bot
    assert sent.text == "Привет, житель"
    assert sent.html_text == "<b>Привет</b>, житель"
    assert sent.from_user is not None and sent.from_user.id == BOT_USER_ID
    stored = telegram.messages(CHAT)[0]
    assert (stored.html, stored.text, stored.button_rows) == (
        "<b>Привет</b>, житель",
        "Привет, житель",
        [["A"]],
    )


async def test_message_ids_increase_per_chat_and_calls_are_recorded(
    bot: Bot, telegram: LocalTelegram
) -> None:
    first = await bot.send_message(CHAT, "one")
    other = await bot.send_message(STAFF_CHAT, "staff")
    second = await bot.send_message(CHAT, "two")
    assert (first.message_id, second.message_id, other.message_id) == (1, 2, 1)
    assert other.chat.type == "supergroup"
    assert [type(call).__name__ for call in telegram.calls] == ["SendMessage"] * 3
    assert [call.text for call in telegram.calls_of(SendMessage)] == ["one", "staff", "two"]


async def test_plain_parse_mode_keeps_tags_as_text(telegram: LocalTelegram) -> None:
    async with make_local_bot(telegram, parse_mode=None) as plain_bot:
        sent = await plain_bot.send_message(CHAT, "<b>raw</b>")
    assert sent.text == "<b>raw</b>"
    assert sent.entities is None


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("a<br>b", 'can\'t parse entities: Unsupported start tag "br"'),
        ("x" * 4097, "message is too long"),
        ("<b> </b>", "message text is empty"),
    ],
)
async def test_send_message_fails_like_telegram(bot: Bot, text: str, error: str) -> None:
    with pytest.raises(TelegramBadRequest, match=error):
        await bot.send_message(CHAT, text)


async def test_too_long_callback_data_is_refused(bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(CHAT, "x", reply_markup=keyboard(("A", "a" * 65)))


async def test_reply_keyboard_is_tracked_per_chat(bot: Bot, telegram: LocalTelegram) -> None:
    markup = ReplyKeyboardMarkup(
        keyboard=[[KeyboardButton(text="📍 Геопозиция", request_location=True)]],
        resize_keyboard=True,
    )
    sent = await bot.send_message(CHAT, "Где вы?", reply_markup=markup)
    assert sent.reply_markup is None  # Telegram never echoes reply keyboards
    assert telegram.reply_keyboard(CHAT) == (("📍 Геопозиция",),)
    await bot.send_message(CHAT, "Спасибо", reply_markup=ReplyKeyboardRemove())
    assert telegram.reply_keyboard(CHAT) is None


async def test_location_and_media_group(bot: Bot, telegram: LocalTelegram) -> None:
    location = await bot.send_location(CHAT, latitude=55.7558, longitude=37.6173)
    assert location.location is not None and location.location.latitude == 55.7558
    album = await bot.send_media_group(
        CHAT,
        media=[
            InputMediaPhoto(media=BufferedInputFile(b"one", "1.jpg"), caption="<i>Двор</i>"),
            InputMediaPhoto(media=BufferedInputFile(b"two", "2.jpg")),
        ],
    )
    assert [m.message_id for m in album] == [2, 3]
    assert album[0].media_group_id is not None
    assert album[0].media_group_id == album[1].media_group_id
    assert album[0].caption == "Двор"
    assert [m.content_type for m in telegram.messages(CHAT)] == ["location", "photo", "photo"]


# ---- editing and deleting ------------------------------------------------------------------------


async def test_edit_text_changes_stored_state_and_drops_omitted_keyboard(
    bot: Bot, telegram: LocalTelegram
) -> None:
    sent = await bot.send_message(CHAT, "Шаг 1", reply_markup=keyboard(("Дальше", "next")))
    edited = await bot.edit_message_text("<b>Шаг 2</b>", chat_id=CHAT, message_id=sent.message_id)
    assert isinstance(edited, Message)
    assert edited.text == "Шаг 2"
    current = telegram.message(CHAT, sent.message_id)
    assert current is not None
    assert (current.text, current.buttons) == ("Шаг 2", [])
    assert [event.kind for event in telegram.events] == [EventKind.SENT, EventKind.EDITED]


async def test_edit_with_same_content_is_not_modified(bot: Bot) -> None:
    sent = await bot.send_message(CHAT, "Шаг", reply_markup=keyboard(("A", "a")))
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await sent.edit_text("Шаг", reply_markup=keyboard(("A", "a")))
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await sent.edit_reply_markup(reply_markup=keyboard(("A", "a")))


async def test_edit_reply_markup_only_touches_the_keyboard(
    bot: Bot, telegram: LocalTelegram
) -> None:
    sent = await bot.send_message(CHAT, "Шаг", reply_markup=keyboard(("A", "a")))
    await sent.edit_reply_markup(reply_markup=None)
    current = telegram.message(CHAT, sent.message_id)
    assert current is not None and (current.text, current.buttons) == ("Шаг", [])
    assert telegram.events[-1].markup_only


async def test_edit_caption_and_media(bot: Bot, telegram: LocalTelegram) -> None:
    photo = await bot.send_photo(CHAT, BufferedInputFile(b"old", "old.jpg"), caption="Было")
    await bot.edit_message_caption(chat_id=CHAT, message_id=photo.message_id, caption="Стало")
    with pytest.raises(TelegramBadRequest, match="there is no text in the message to edit"):
        await bot.edit_message_text("x", chat_id=CHAT, message_id=photo.message_id)
    replaced = await bot.edit_message_media(
        InputMediaPhoto(media=BufferedInputFile(b"new!", "new.jpg"), caption="Новое"),
        chat_id=CHAT,
        message_id=photo.message_id,
    )
    assert isinstance(replaced, Message) and replaced.photo is not None
    assert replaced.caption == "Новое"
    downloaded = await bot.download(replaced.photo[-1])
    assert downloaded is not None and downloaded.read() == b"new!"
    assert [m.text for m in telegram.messages(CHAT)] == ["Новое"]


async def test_missing_and_foreign_messages_cannot_be_edited(
    bot: Bot, telegram: LocalTelegram
) -> None:
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("x", chat_id=CHAT, message_id=42)
    incoming = telegram.incoming_message(
        CHAT, {"id": CHAT, "is_bot": False, "first_name": "Ж"}, {"text": "hi"}
    )
    with pytest.raises(TelegramBadRequest, match="message can't be edited"):
        await bot.edit_message_text("x", chat_id=CHAT, message_id=incoming["message_id"])


async def test_delete_removes_messages(bot: Bot, telegram: LocalTelegram) -> None:
    ids = [(await bot.send_message(CHAT, str(n))).message_id for n in range(4)]
    assert await bot.delete_message(CHAT, ids[0]) is True
    assert await bot.delete_messages(CHAT, ids[1:3]) is True
    assert [m.text for m in telegram.messages(CHAT)] == ["3"]
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(CHAT, ids[0])


# ---- callbacks, files, other chats ---------------------------------------------------------------


async def test_callback_answer_is_recorded_and_cannot_be_repeated(
    bot: Bot, telegram: LocalTelegram
) -> None:
    telegram.open_callback_query("q1")
    assert await bot.answer_callback_query("q1", text="Готово", show_alert=True) is True
    answer = telegram.events[-1].answer
    assert answer is not None and (answer.text, answer.show_alert) == ("Готово", True)
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query("q1")


async def test_registered_file_downloads_through_get_file(
    bot: Bot, telegram: LocalTelegram
) -> None:
    stored = telegram.register_file(b"%PDF-1.7 receipt", file_name="receipt.pdf")
    file = await bot.get_file(stored.file_id)
    assert isinstance(file, File)
    assert file.file_size == 16
    assert file.file_path is not None and file.file_path.endswith(".pdf")
    destination = io.BytesIO()
    await bot.download(stored.file_id, destination=destination)
    assert destination.getvalue() == b"%PDF-1.7 receipt"


async def test_registered_photo_has_sizes_and_every_size_downloads(
    bot: Bot, telegram: LocalTelegram
) -> None:
    sizes = telegram.register_photo(b"jpeg-bytes", width=1280, height=960)
    assert [(s["width"], s["height"]) for s in sizes] == [
        (90, 68),
        (320, 240),
        (800, 600),
        (1280, 960),
    ]
    for size in sizes:
        downloaded = await bot.download(size["file_id"])
        assert downloaded is not None and downloaded.read() == b"jpeg-bytes"


async def test_unknown_files_fail_clearly(bot: Bot, telegram: LocalTelegram) -> None:
    with pytest.raises(TelegramBadRequest, match="invalid file_id"):
        await bot.get_file("nope")
    with pytest.raises(TelegramBadRequest, match="wrong file identifier"):
        await bot.send_photo(CHAT, "not-a-file-id")
    with pytest.raises(LocalTelegramError, match="no content for file path"):
        await bot.download_file("documents/missing.pdf")
    with pytest.raises(LocalTelegramError, match="no network"):
        async for _chunk in telegram.stream_content("https://example.org/x.jpg"):
            pass


async def test_copy_and_forward_a_residents_message(bot: Bot, telegram: LocalTelegram) -> None:
    resident = {"id": CHAT, "is_bot": False, "first_name": "Житель"}
    telegram.register_user(resident)
    sizes = telegram.register_photo(b"pothole")
    incoming = telegram.incoming_message(CHAT, resident, {"photo": sizes, "caption": "Яма"})
    copied = await bot.copy_message(STAFF_CHAT, CHAT, incoming["message_id"], caption="Заявка 7")
    assert isinstance(copied, MessageId)
    forwarded = await bot.forward_message(STAFF_CHAT, CHAT, incoming["message_id"])
    assert forwarded.forward_origin is not None
    staff = telegram.messages(STAFF_CHAT)
    assert [(m.content_type, m.text) for m in staff] == [("photo", "Заявка 7"), ("photo", "Яма")]
    assert staff[0].file_id == sizes[-1]["file_id"]  # a copy reuses the resident's file


async def test_forum_topics_get_increasing_thread_ids(bot: Bot, telegram: LocalTelegram) -> None:
    first = await bot.create_forum_topic(STAFF_CHAT, "Заявка 1")
    second = await bot.create_forum_topic(STAFF_CHAT, "Заявка 2")
    assert isinstance(first, ForumTopic)
    assert second.message_thread_id > first.message_thread_id
    posted = await bot.send_message(STAFF_CHAT, "x", message_thread_id=second.message_thread_id)
    assert posted.message_thread_id == second.message_thread_id
    assert telegram.forum_topics[STAFF_CHAT] == {
        first.message_thread_id: "Заявка 1",
        second.message_thread_id: "Заявка 2",
    }


async def test_setup_methods_succeed_and_are_kept(bot: Bot, telegram: LocalTelegram) -> None:
    assert await bot.delete_webhook(drop_pending_updates=True) is True
    assert await bot.set_my_commands([BotCommand(command="start", description="Начать")])
    assert await bot.set_chat_menu_button() is True
    assert await bot.send_chat_action(CHAT, "typing") is True
    assert telegram.my_commands["default:"] == [{"command": "start", "description": "Начать"}]


async def test_unknown_method_names_itself(bot: Bot) -> None:
    with pytest.raises(LocalTelegramError, match=r"GetChat \(getChat\)"):
        await bot(GetChat(chat_id=CHAT))


# ---- fault injection -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault.RETRY_AFTER, TelegramRetryAfter),
        (Fault.FORBIDDEN, TelegramForbiddenError),
        (Fault.SERVER_ERROR, TelegramServerError),
        (Fault.NETWORK_ERROR, TelegramNetworkError),
    ],
)
async def test_injected_faults_raise_aiograms_exceptions(
    bot: Bot, telegram: LocalTelegram, fault: Fault, error: type[TelegramAPIError]
) -> None:
    telegram.fail_next(SendMessage, fault, times=2)
    for _ in range(2):
        with pytest.raises(error):
            await bot.send_message(CHAT, "x")
    assert telegram.messages(CHAT) == []  # a failed call leaves no trace in the chat
    assert (await bot.send_message(CHAT, "third time")).message_id == 1
    assert len(telegram.calls) == 3


async def test_retry_after_carries_the_delay_and_only_hits_its_method(
    bot: Bot, telegram: LocalTelegram
) -> None:
    telegram.fail_next(SendPhoto, Fault.RETRY_AFTER, retry_after=17)
    await bot.send_message(CHAT, "text is not affected")
    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.send_photo(CHAT, BufferedInputFile(b"x", "x.jpg"))
    assert caught.value.retry_after == 17
    assert telegram.pending_faults(SendPhoto) == 0


async def test_blocked_chat_is_forbidden_until_unblocked(bot: Bot, telegram: LocalTelegram) -> None:
    telegram.block_chat(CHAT)
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_message(CHAT, "x")
    await bot.send_message(STAFF_CHAT, "others still work")
    telegram.unblock_chat(CHAT)
    await bot.send_message(CHAT, "x")
