"""LocalTelegram is strict where real Telegram is strict: one test per rule.

Each rule cites its source (the Bot API documentation, tdlib's HTML parser or the descriptions
the Bot API server answers with); each test fails if the double stops enforcing the rule.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError, TelegramRetryAfter
from aiogram.methods import SendMessage
from aiogram.types import BufferedInputFile, InlineKeyboardButton, InlineKeyboardMarkup

from sandbox.telegram_double import (
    Fault,
    HtmlParseError,
    LocalTelegram,
    make_local_bot,
    parse_html,
    utf16_len,
)

CHAT = 100001
FORUM = -1009876543210


class Clock:
    """A settable clock for the double."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def telegram(clock: Clock) -> LocalTelegram:
    return LocalTelegram(clock=clock)


@pytest.fixture
async def bot(telegram: LocalTelegram) -> AsyncIterator[Bot]:
    async with make_local_bot(telegram) as bot:
        yield bot


def keyboard(text: str = "A", data: str = "a") -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=text, callback_data=data)]]
    )


# ---- HTML parse mode: refused ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("html", "error"),
    [
        ("a < b", 'Unsupported start tag "" at byte offset 2'),
        ("a & b", 'Character "&" must be escaped'),
        ("a > b", 'Character ">" must be escaped'),
        ("&nbsp;", 'Unsupported HTML entity "&nbsp;"'),
        ("&copy; 2024", 'Unsupported HTML entity "&copy;"'),
        ("&amp", 'Character "&" must be escaped'),
        ("&#0;", 'Character "&" must be escaped'),
        ('<a href="https://x.ru"><a href="https://y.ru">z</a></a>', "can't be nested"),
        ("<script>alert(1)</script>", 'Unsupported start tag "script"'),
        ("a<br>b", 'Unsupported start tag "br"'),
        ("<b>unclosed", 'Can\'t find end tag corresponding to start tag "b"'),
        ("</b>", "Unexpected end tag at byte offset 0"),
        ("<b><i>x</b></i>", 'Unmatched end tag at byte offset 7, expected "</i>", found "</b>"'),
        ("<span>x</span>", 'Tag "span" must have class "tg-spoiler"'),
        ("<b", "Unclosed start tag at byte offset 0"),
        ("<b>x</b", "Unclosed end tag at byte offset 4"),
        ('<b title="x>y', "Unclosed start tag at byte offset 0"),
        ("<b bold>x</b>", "Expected equal sign in declaration of an attribute"),
        ("<b a=x,>x</b>", "Unexpected end of name token"),
        ('<tg-emoji emoji-id="abc">x</tg-emoji>', "Invalid custom emoji identifier"),
        ("😀 <x>", 'Unsupported start tag "x" at byte offset 5'),  # UTF-8 byte offsets
    ],
)
def test_html_refuses_what_is_not_a_tag_or_an_entity(html: str, error: str) -> None:
    """The Bot API documentation: every <, > and & not part of a tag or an entity must be
    escaped, only &lt; &gt; &amp; &quot; are named entities, only the listed tags exist; tdlib's
    parser refuses unclosed, unexpected and mismatched tags with these messages."""
    with pytest.raises(HtmlParseError, match=error.replace("(", r"\(")):
        parse_html(html)


async def test_html_refusal_is_a_400_cant_parse_entities(bot: Bot, telegram: LocalTelegram) -> None:
    """The Bot API answers a text it cannot parse with 400 "can't parse entities: …" and
    sends nothing."""
    with pytest.raises(TelegramBadRequest, match="Bad Request: can't parse entities: Character"):
        await bot.send_message(CHAT, "Счёт & квитанция")
    assert telegram.messages(CHAT) == []


# ---- HTML parse mode: accepted ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("html", "text", "entities"),
    [
        ("&lt;b&gt;", "<b>", []),
        ("&#39;", "'", []),
        ("&#x27;", "'", []),
        ("&#34;&quot;", '""', []),
        ("<b>x</b>", "x", [{"type": "bold", "offset": 0, "length": 1}]),
        ("<B>x</>", "x", [{"type": "bold", "offset": 0, "length": 1}]),  # tdlib: </> closes
        (
            '<a href="https://x.ru/?a=1&amp;b=2">x</a>',
            "x",
            [{"type": "text_link", "url": "https://x.ru/?a=1&b=2", "offset": 0, "length": 1}],
        ),
        (
            '<pre><code class="language-python">x</code></pre>',
            "x",
            [{"type": "pre", "language": "python", "offset": 0, "length": 1}],
        ),
        ("<pre><code>x</code></pre>", "x", [{"type": "pre", "offset": 0, "length": 1}]),
        (
            '<code class="language-python">x</code>',
            "x",
            [{"type": "code", "offset": 0, "length": 1}],
        ),
        ('<b class="x" id=y>x</b>', "x", [{"type": "bold", "offset": 0, "length": 1}]),
        ('<span class="tg-spoiler">x</span>', "x", [{"type": "spoiler", "offset": 0, "length": 1}]),
        ("<tg-spoiler>x</tg-spoiler>", "x", [{"type": "spoiler", "offset": 0, "length": 1}]),
        (
            "<blockquote expandable>x</blockquote>",
            "x",
            [{"type": "expandable_blockquote", "offset": 0, "length": 1}],
        ),
        (
            '<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji>',
            "👍",
            [
                {
                    "type": "custom_emoji",
                    "custom_emoji_id": "5368324170671202286",
                    "offset": 0,
                    "length": 2,
                }
            ],
        ),
        ("<b></b>x", "x", []),  # an empty entity is dropped
    ],
)
def test_html_accepts_tags_and_entities(html: str, text: str, entities: list[dict]) -> None:
    """The Bot API documentation's tags and entities, numeric references included (markupsafe
    writes ' and " as &#39; and &#34;); tdlib ignores attributes it does not know."""
    assert parse_html(html) == (text, entities)


@pytest.mark.parametrize(
    ("href", "url"),
    [
        ("https://mos.ru/path?x=1", "https://mos.ru/path?x=1"),
        ("http://mos.ru", "http://mos.ru"),
        ("tg://resolve?domain=mos", "tg://resolve?domain=mos"),
        ("not a url", None),
        ("javascript:alert(1)", None),
        ("x", None),
    ],
)
def test_html_link_that_is_not_a_url_loses_its_entity(href: str, url: str | None) -> None:
    """tdlib's parser keeps the text of an <a> whose href is not a link and drops the entity."""
    text, entities = parse_html(f'<a href="{href}">link</a>')
    assert text == "link"
    expected = [] if url is None else [{"type": "text_link", "url": url, "offset": 0, "length": 4}]
    assert entities == expected


def test_html_entity_offsets_are_utf16() -> None:
    """Bot API entity offsets and lengths count UTF-16 code units: 😀 takes two."""
    text, entities = parse_html("😀 <b>😀x</b> <i>й</i>")
    assert text == "😀 😀x й"
    assert entities == [
        {"type": "bold", "offset": 3, "length": 3},
        {"type": "italic", "offset": 7, "length": 1},
    ]
    assert utf16_len(text) == 8


# ---- length and emptiness ----------------------------------------------------------------------


async def test_text_limit_is_4096_utf16_units_after_parsing(bot: Bot) -> None:
    """The Bot API documentation: 1-4096 characters after entities parsing; Telegram counts
    UTF-16 code units, so an emoji outside the BMP counts twice."""
    await bot.send_message(CHAT, "<b>" + "x" * 4096 + "</b>")  # tags do not count
    await bot.send_message(CHAT, "😀" * 2048)
    with pytest.raises(TelegramBadRequest, match="Bad Request: message is too long"):
        await bot.send_message(CHAT, "😀" * 2048 + "x")
    with pytest.raises(TelegramBadRequest, match="Bad Request: message is too long"):
        await bot.send_message(CHAT, "&amp;" * 4097)


async def test_caption_limit_is_1024_utf16_units_after_parsing(bot: Bot) -> None:
    """The Bot API documentation: a caption is 0-1024 characters after entities parsing."""
    photo = BufferedInputFile(b"jpeg", "p.jpg")
    await bot.send_photo(CHAT, photo, caption="<i>" + "й" * 1024 + "</i>")
    with pytest.raises(TelegramBadRequest, match="Bad Request: message caption is too long"):
        await bot.send_photo(CHAT, photo, caption="😀" * 512 + "x")


@pytest.mark.parametrize("text", ["<b> </b>", "  \n ", "<i></i>"])
async def test_text_empty_after_parsing_is_refused(bot: Bot, text: str) -> None:
    """The Bot API answers "message text is empty" when nothing visible is left."""
    with pytest.raises(TelegramBadRequest, match="Bad Request: message text is empty"):
        await bot.send_message(CHAT, text)


async def test_edit_to_empty_text_is_refused(bot: Bot) -> None:
    sent = await bot.send_message(CHAT, "x")
    with pytest.raises(TelegramBadRequest, match="Bad Request: message text is empty"):
        await sent.edit_text("<b> </b>")


# ---- editing ----------------------------------------------------------------------------------


async def test_edit_to_same_text_entities_and_markup_is_not_modified(bot: Bot) -> None:
    """The Bot API answers "message is not modified" when text, entities and keyboard all stay;
    a change of entities alone is a change."""
    sent = await bot.send_message(CHAT, "<b>Шаг</b>", reply_markup=keyboard())
    with pytest.raises(TelegramBadRequest, match="Bad Request: message is not modified"):
        await sent.edit_text("<b>Шаг</b>", reply_markup=keyboard())
    with pytest.raises(TelegramBadRequest, match="Bad Request: message is not modified"):
        await sent.edit_reply_markup(reply_markup=keyboard())
    await sent.edit_text("<i>Шаг</i>", reply_markup=keyboard())  # other entities
    await sent.edit_reply_markup(reply_markup=keyboard("B"))  # other keyboard


async def test_edit_of_deleted_or_unknown_message_is_not_found(bot: Bot) -> None:
    """The Bot API answers "message to edit not found" for a deleted or unknown message."""
    sent = await bot.send_message(CHAT, "x", reply_markup=keyboard())
    await sent.delete()
    with pytest.raises(TelegramBadRequest, match="Bad Request: message to edit not found"):
        await sent.edit_text("y")
    with pytest.raises(TelegramBadRequest, match="Bad Request: message to edit not found"):
        await sent.edit_reply_markup(reply_markup=None)
    with pytest.raises(TelegramBadRequest, match="Bad Request: message to edit not found"):
        await bot.edit_message_text("y", chat_id=CHAT, message_id=999)


# ---- callback queries -------------------------------------------------------------------------

_TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"


async def test_callback_query_can_be_answered_only_once(bot: Bot, telegram: LocalTelegram) -> None:
    """The Bot API documentation: answerCallbackQuery answers a query once."""
    telegram.open_callback_query("q1")
    assert await bot.answer_callback_query("q1") is True
    with pytest.raises(TelegramBadRequest, match=_TOO_OLD):
        await bot.answer_callback_query("q1")


async def test_unknown_callback_query_id_is_refused(bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match=_TOO_OLD):
        await bot.answer_callback_query("never-pressed")


async def test_callback_query_answered_too_late_is_refused(clock: Clock) -> None:
    """Telegram refuses an answer that comes later than a short window after the press."""
    telegram = LocalTelegram(clock=clock, callback_query_timeout=10)
    async with make_local_bot(telegram) as bot:
        telegram.open_callback_query("in-time")
        telegram.open_callback_query("late")
        clock.now += 10
        assert await bot.answer_callback_query("in-time") is True
        clock.now += 0.5
        with pytest.raises(TelegramBadRequest, match=_TOO_OLD):
            await bot.answer_callback_query("late")


def test_callback_query_window_defaults_to_15_seconds() -> None:
    assert LocalTelegram().callback_query_timeout == 15


# ---- forum topics, blocked chats, flood control -------------------------------------------------


async def test_message_to_a_deleted_or_unknown_topic_is_refused(bot: Bot) -> None:
    """The Bot API answers "message thread not found" for a topic that does not exist."""
    topic = await bot.create_forum_topic(FORUM, "Заявка 1")
    await bot.send_message(FORUM, "x", message_thread_id=topic.message_thread_id)
    with pytest.raises(TelegramBadRequest, match="Bad Request: message thread not found"):
        await bot.send_message(FORUM, "x", message_thread_id=topic.message_thread_id + 100)
    await bot.delete_forum_topic(FORUM, topic.message_thread_id)
    with pytest.raises(TelegramBadRequest, match="Bad Request: message thread not found"):
        await bot.send_message(FORUM, "x", message_thread_id=topic.message_thread_id)


async def test_blocked_chat_is_forbidden(bot: Bot, telegram: LocalTelegram) -> None:
    """The Bot API answers 403 "Forbidden: bot was blocked by the user"."""
    telegram.block_chat(CHAT)
    with pytest.raises(TelegramForbiddenError, match="Forbidden: bot was blocked by the user"):
        await bot.send_message(CHAT, "x")
    assert telegram.messages(CHAT) == []


async def test_flood_control_is_429_with_retry_after(bot: Bot, telegram: LocalTelegram) -> None:
    """The Bot API answers 429 with parameters.retry_after seconds."""
    telegram.fail_next(SendMessage, Fault.RETRY_AFTER, retry_after=7)
    with pytest.raises(TelegramRetryAfter) as raised:
        await bot.send_message(CHAT, "x")
    assert raised.value.retry_after == 7
    assert "Too Many Requests: retry after 7" in raised.value.message


# ---- inline keyboards -------------------------------------------------------------------------


@pytest.mark.parametrize("data", ["", "a" * 65, "й" * 33])
async def test_callback_data_must_be_1_to_64_bytes(bot: Bot, data: str) -> None:
    """The Bot API documentation: callback_data is 1-64 bytes (UTF-8 bytes, not characters)."""
    with pytest.raises(TelegramBadRequest, match="Bad Request: BUTTON_DATA_INVALID"):
        await bot.send_message(CHAT, "x", reply_markup=keyboard(data=data))


async def test_callback_data_of_64_bytes_is_accepted(bot: Bot) -> None:
    await bot.send_message(CHAT, "x", reply_markup=keyboard(data="й" * 32))


async def test_inline_button_needs_an_action(bot: Bot) -> None:
    """The Bot API server refuses an inline button with only a text."""
    markup = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="A")]])
    with pytest.raises(TelegramBadRequest, match="Text buttons are unallowed in the inline"):
        await bot.send_message(CHAT, "x", reply_markup=markup)


@pytest.mark.parametrize("text", ["", "   "])
async def test_inline_button_text_must_not_be_empty(bot: Bot, text: str) -> None:
    with pytest.raises(TelegramBadRequest, match="Bad Request: BUTTON_TEXT_INVALID"):
        await bot.send_message(CHAT, "x", reply_markup=keyboard(text=text))
