"""Review 18: every outbox notification and digest, rendered with hostile outside text, is a
message Telegram accepts (valid HTML with only its tags, ≤ 4,096 visible characters, a caption
≤ 1,024 or a fallback, callback data ≤ 64 bytes, ≤ 100 buttons, no empty button text).

The checks are the strict Bot API double's own (`sandbox.telegram_double`): its HTML parser, and
the outbox's real `_post` sending through it; the 100-button cap, which the double does not
enforce, is checked here. A text Telegram would refuse is dead-lettered: the resident never
hears."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from aiogram import Bot
from aiogram.types import InlineKeyboardMarkup, Message
from markupsafe import Markup

from bot.i18n import Translator, load_translator
from bot.outbox import _post, _Prepared
from domain import support
from domain.autopay import AutopayKind, PauseReason
from domain.bill_discovery import KIND as BILL_ISSUED
from domain.bill_discovery import AutopayPlan
from domain.bills import BillKind
from domain.meter_reminders import METER_WINDOW, SHOWN_METERS
from domain.reports import ReportStatus
from domain.support import DASHBOARD_KINDS, mask_personal
from handlers.digest import DIGEST_ITEMS, digest
from handlers.notifications import AUTOPAY_KEYS, FAILED_KEYS, render
from handlers.texts import MAX_VALUE, shorten
from sandbox.telegram_double import LocalTelegram, make_local_bot, parse_html, utf16_len

CHAT = 700018
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
MAX_BUTTONS = 100
CALLBACK_BYTES = 64

LONG = ('a < b & c <a href="https://evil.example">x</a> ' * 200)[:5000]
HOSTILE = [
    "<b>",
    "</a>",
    "&amp;",
    "<script>alert(1)</script>",
    LONG,
    "²",
    "😀" * 3000,  # 6,000 UTF-16 units
    "\u202eRTL override\u200f\u200e",
    "zero\u200bwidth\u200d\ufeff",
    "nul\x00here",
    "line\n\nbreaks\r\n",
    "&" * 5000,  # grows fivefold when escaped
    "\"quoted\" 'single' <i>",
    "a" * 499 + "😀" * 3,  # a surrogate pair right at the 500-unit cut
]
# Kinds whose text shows the hostile value (the others show it only in some branches).
SHOWN_KINDS = {
    "report_status",
    "report_sent",
    BILL_ISSUED,
    METER_WINDOW,
    support.DASHBOARD_REPORT,
    support.DASHBOARD_DEAD_LETTER,
    support.DASHBOARD_PLATFORM,
}
IDS = [f"h{i}" for i in range(len(HOSTILE))]


@pytest.fixture(scope="module")
def tr() -> Translator:
    return load_translator()


@pytest.fixture
def telegram() -> LocalTelegram:
    return LocalTelegram()


@pytest.fixture
async def bot(telegram: LocalTelegram) -> AsyncIterator[Bot]:
    async with make_local_bot(telegram) as bot:
        yield bot


def visible(text: str) -> str:
    """The text as Telegram keeps it; raises the double's HtmlParseError where it refuses."""
    return parse_html(text)[0]


def assert_accepted(text: str, markup: InlineKeyboardMarkup | None, *, limit: int) -> str:
    """Telegram's rules the double checks, and the 100-button cap it does not."""
    plain = visible(str(text))
    assert plain.strip(), "message text is empty"
    assert utf16_len(plain) <= limit, f"{utf16_len(plain)} > {limit}"
    plain.encode("utf-8")  # no lone surrogate
    buttons = [b for row in (markup.inline_keyboard if markup else []) for b in row]
    assert len(buttons) <= MAX_BUTTONS
    for button in buttons:
        assert button.text.strip()
        assert button.callback_data is not None
        assert 1 <= len(button.callback_data.encode()) <= CALLBACK_BYTES
    return plain


async def post(
    bot: Bot, text: str, markup: InlineKeyboardMarkup | None, photo: str | None = None
) -> Message:
    """The outbox's own send (`bot.outbox._post`: photo, fallback to text) to a private chat."""
    app = SimpleNamespace(bot=bot)  # _post reads only `app.bot`
    return await _post(app, CHAT, _Prepared(text, markup, photo, None, None))  # type: ignore[arg-type]


# ---- every kind `render` knows, with one hostile value in every outside field -----------------


def _autopay_shapes(value: str) -> Iterator[dict[str, Any]]:
    yield {"kind": AutopayKind.FIXED, "fund_name": value, "amount": 50_000}
    yield {"kind": AutopayKind.BILL, "bill_kind": BillKind.EPD, "limit": 1_000_000}
    yield {"kind": AutopayKind.TOPUP, "topup_service": "troika", "topup_account": value}
    yield {"kind": AutopayKind.TOPUP, "topup_service": value, "topup_account": value}


def hostile_cases(value: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every kind of handlers.notifications.render, every branch, `value` in every outside
    field (the city's themes, answers, fund and bill names, serials, accounts, addresses)."""
    for status, askable in itertools.product(ReportStatus, (False, True)):
        yield (
            "report_status",
            {
                "report_id": "NG-2026-001001",
                "theme": value,
                "status": status.value,
                "text": value,
                "askable": askable,
            },
        )
    yield ("report_sent", {"report_id": "NG-2026-001001", "theme": value, "address": value})
    yield ("report_sent", {"report_id": value, "theme": value, "address": ""})
    for plan in ("none", AutopayPlan.WILL_PAY, AutopayPlan.QUEUED, AutopayPlan.OVER_LIMIT, value):
        yield (
            BILL_ISSUED,
            {
                "title": value,
                "amount": 812_450,
                "due": "2026-12-15",
                "bill_id": value,
                "autopay": plan,
                "autopay_id": 7,
                "period": "b-0123456789ab",
                "charge_at": "2026-12-01T10:00:00+03:00",
                "limit": 1_000_000,
            },
        )
    yield (
        BILL_ISSUED,
        {"reminder": True, "title": value, "amount": 1, "due": value, "bill_id": value},
    )
    yield (
        METER_WINDOW,
        {
            "period": value,
            "meters": [{"kind": "cold_water", "serial": value, "closes_on": "2026-12-03"}],
        },
    )
    for shape in _autopay_shapes(value):
        base = {**shape, "autopay_id": 9, "period": "2026-11", "receipt": value}
        for kind in AUTOPAY_KEYS:
            yield kind, {**base, "charge_at": "2026-11-30T09:00:00+03:00"}
        for reason in PauseReason:
            if reason is not PauseReason.BY_RESIDENT:
                yield "autopay_paused", {**base, "reason": reason.value}
        for failure in [*FAILED_KEYS, value]:
            yield "autopay_failed", {**base, "failure": failure}
            yield "autopay_failed", {**base, "failure": failure, "bill_id": value}
        yield "autopay_over_limit", {**base, "bill_id": value}
    for paused in (False, True):
        yield (
            support.DASHBOARD_AUTOPAY_FAILED,
            {
                "kind": AutopayKind.FIXED,
                "fund_name": value,
                "autopay_id": value,
                "period": value,
                "paused": paused,
                "failure": value,
                "amount": 1,
                "attempts": 5,
            },
        )
    yield (
        support.DASHBOARD_REPORT,
        {"report_id": value, "theme": value, "address": value, "map_url": value, "photos": 3},
    )
    yield support.DASHBOARD_DIGEST, {"day": value, "paid": 10**12}
    yield support.DASHBOARD_PLATFORM, {"reachable": False, "at": value}
    yield support.DASHBOARD_PLATFORM, {"reachable": True, "at": value}
    yield support.DASHBOARD_PAYMENT_ERRORS, {"count": 10**9}
    yield support.DASHBOARD_DEAD_LETTER, {"notification_id": value, "kind": value}
    yield (
        support.DASHBOARD_TELEGRAM_REFUND,
        {
            "failure": f"refused:{value[:100]}",  # a long code: see the refund test below
            "amount": 1,
            "intent_id": value,
            "resident": value,
            "charge_id": value,
            "provider_charge_id": value,
        },
    )


def test_the_cases_cover_every_kind_render_knows() -> None:
    known = {
        *DASHBOARD_KINDS,
        METER_WINDOW,
        "report_status",
        "report_sent",
        BILL_ISSUED,
        *AUTOPAY_KEYS,
        "autopay_paused",
        "autopay_failed",
    }
    assert {kind for kind, _ in hostile_cases("x")} == known
    with pytest.raises(KeyError):
        render("no_such_kind", {}, load_translator())


@pytest.mark.parametrize("value", HOSTILE, ids=IDS)
def test_every_kind_with_hostile_text_is_valid_telegram_html(tr: Translator, value: str) -> None:
    for kind, data in hostile_cases(value):
        text, markup, photo = render(kind, data, tr)
        try:
            plain = assert_accepted(text, markup, limit=TEXT_LIMIT)
        except Exception as error:  # pragma: no cover - the message names the case
            raise AssertionError(f"{kind} {data!r}: {error}") from error
        shown = kind in SHOWN_KINDS or data.get("fund_name") == value
        for tag in ("<b>", "<script>", "</a>"):
            if tag in value and shown:
                assert tag in plain, f"{kind}: {tag} not shown literally"
        assert photo is None


@pytest.mark.parametrize("value", ["&" * 5000, "😀" * 3000, LONG], ids=["amp", "emoji", "long"])
def test_a_long_city_answer_is_cut_cleanly_with_show_in_full(tr: Translator, value: str) -> None:
    data = {"report_id": "NG-2026-001001", "theme": "Яма", "status": "answered", "text": value}
    text, markup, _ = render("report_status", data, tr)
    plain = assert_accepted(text, markup, limit=TEXT_LIMIT)
    answer = plain.split("\n", 1)[1]
    assert answer.endswith("…")
    assert utf16_len(answer) <= MAX_VALUE
    assert value.startswith(answer[:-1].rstrip())  # a prefix: no entity or pair cut in half
    assert markup is not None
    assert [b.callback_data for row in markup.inline_keyboard for b in row] == [
        "ra:show:NG-2026-001001"  # a number that fits is carried as it is
    ]


def test_shorten_never_splits_a_surrogate_pair() -> None:
    for pad in range(6):
        value = "a" * (MAX_VALUE - 3 + pad) + "😀" * 10
        cut = shorten(value)
        assert utf16_len(cut) <= MAX_VALUE
        cut.encode("utf-8")
        assert value.startswith(cut[:-1])


# ---- defects --------------------------------------------------------------------------------


# Was (review): meter window: 10 lines of 500-unit serials joined as Markup are never shortened
# (5,400 visible characters): Telegram refuses, the reminder is dead-lettered
def test_meter_window_with_many_long_serials_fits_a_message(tr: Translator) -> None:
    meters = [
        {"kind": "cold_water", "serial": "<b>" * 600, "closes_on": "2026-12-03"}
        for _ in range(SHOWN_METERS)
    ]
    text, markup, _ = render(METER_WINDOW, {"period": "11.2026", "meters": meters}, tr)
    assert_accepted(text, markup, limit=TEXT_LIMIT)


# Was (review): bot/i18n.py: the placeholder token for a value over 2,000 chars
# (\\ue000N\\ue001) is not escaped in other values; a city answer holding it gets the long theme
# pasted in at each occurrence (80,000+ characters): refused, dead-lettered
def test_private_use_token_in_a_city_answer_is_shown_literally(tr: Translator) -> None:
    token = "\ue0000\ue001"
    data = {
        "report_id": "NG-2026-001001",
        "theme": "&" * 600,  # 500 kept, 2,500 once escaped: goes in as token 0
        "status": "answered",
        "text": token * 160,
    }
    text, markup, _ = render("report_status", data, tr)
    plain = assert_accepted(text, markup, limit=TEXT_LIMIT)
    assert token in plain


# Was (review): handlers/texts.py utf16_len/shorten raise UnicodeEncodeError on a lone surrogate
# (a city JSON '\\ud83d' escape decodes to one): render raises, the notice is dead-lettered
def test_a_lone_surrogate_in_a_city_answer_does_not_kill_the_notice(tr: Translator) -> None:
    data = {
        "report_id": "NG-2026-001001",
        "theme": "Яма",
        "status": "answered",
        "text": "ok \ud83d broken",
    }
    text, markup, _ = render("report_status", data, tr)
    assert_accepted(text, markup, limit=TEXT_LIMIT)


# Was (review): handlers/support.py render_dashboard: the city's refusal code in a Telegram
# refund event goes in as Markup, never shortened: over 4,096, refused, and a dashboard row that
# dies raises no dead-letter event: staff are never told to refund
def test_a_refund_event_with_a_long_city_reason_fits_a_message(tr: Translator) -> None:
    data = {"failure": "refused:" + "unknown_bill " * 400, "amount": 150_000, "intent_id": "7"}
    text, markup, _ = render(support.DASHBOARD_TELEGRAM_REFUND, data, tr)
    assert_accepted(text, markup, limit=TEXT_LIMIT)


# ---- the outbox's real send path, through the strict double ---------------------------------


@pytest.mark.parametrize("value", [LONG, "&" * 5000, "😀" * 3000], ids=["long", "amp", "emoji"])
async def test_hostile_notices_are_taken_by_the_strict_double(
    tr: Translator, bot: Bot, telegram: LocalTelegram, value: str
) -> None:
    sent = 0
    for kind, data in hostile_cases(value):
        text, markup, photo = render(kind, data, tr)
        await post(bot, text, markup, photo)
        sent += 1
    assert len(telegram.messages(CHAT)) == sent


async def test_a_photo_notice_with_a_long_theme_and_answer_keeps_its_photo(
    tr: Translator, bot: Bot, telegram: LocalTelegram
) -> None:
    """Theme and answer, 600 units each: cut to 500 each they made a caption over 1,024, the
    photo was refused and the text went alone. Now they are cut until the caption fits, and
    the whole answer is behind «Показать полностью»."""
    # Was (review 35c): the photo was refused and the text went alone (the photo lost).
    data = {
        "report_id": "NG-2026-001001",
        "theme": "Т" * 600,
        "status": "answered",
        "text": "О" * 600,
        "media_url": "https://city.example/photo.jpg",
    }
    text, markup, photo = render("report_status", data, tr)
    assert photo is not None
    assert utf16_len(visible(str(text))) <= CAPTION_LIMIT
    assert markup is not None and "Показать полностью" in str(markup)
    message = await post(bot, text, markup, photo)
    assert message.photo is not None and message.caption is not None
    assert len(telegram.messages(CHAT)) == 1


async def test_a_short_photo_notice_keeps_its_photo(
    tr: Translator, bot: Bot, telegram: LocalTelegram
) -> None:
    data = {
        "report_id": "NG-2026-001001",
        "theme": "<b>Яма</b>",
        "status": "in_work",
        "text": "&amp; <script>",
        "media_url": "https://city.example/photo.jpg",
    }
    text, markup, photo = render("report_status", data, tr)
    message = await post(bot, text, markup, photo)
    assert message.photo and message.caption is not None
    assert "<b>Яма</b>" in message.caption and "&amp; <script>" in message.caption


# ---- the quiet hours' digest ----------------------------------------------------------------


def _digest_items(tr: Translator, value: str) -> list[tuple[Markup, InlineKeyboardMarkup | None]]:
    cases = [c for c in hostile_cases(value) if c[0] not in DASHBOARD_KINDS]
    askable = [c for c in cases if c[0] == "report_status" and c[1]["askable"]]
    picked = (askable * 4)[:DIGEST_ITEMS] + cases
    return [render(kind, data, tr)[:2] for kind, data in picked]  # type: ignore[misc]


@pytest.mark.parametrize("value", HOSTILE, ids=IDS)
async def test_a_digest_of_hostile_items_is_accepted(
    tr: Translator, bot: Bot, telegram: LocalTelegram, value: str
) -> None:
    items = _digest_items(tr, value)
    text, markup, taken = digest(tr, items)
    assert 0 <= taken <= DIGEST_ITEMS
    if taken < 2:
        return  # the outbox sends each alone (checked above)
    assert_accepted(text, markup, limit=TEXT_LIMIT)
    await post(bot, text, markup)
    assert len(telegram.messages(CHAT)) == 1


def test_a_digest_of_ten_short_askable_items_keeps_all_buttons_within_limits(
    tr: Translator,
) -> None:
    data = {
        "report_id": "NG-2026-001001",
        "theme": "<b>x</b>",
        "status": "answered",
        "text": "😀" * 600,  # shortened: «Показать полностью» + confirm + refute
        "askable": True,
    }
    items = [render("report_status", data, tr)[:2] for _ in range(DIGEST_ITEMS + 5)]
    text, markup, taken = digest(tr, items)  # type: ignore[arg-type]
    assert taken >= 2
    plain = assert_accepted(text, markup, limit=TEXT_LIMIT)
    assert plain.count("<b>x</b>") == taken
    assert markup is not None
    assert sum(len(row) for row in markup.inline_keyboard) == 3 * taken


# ---- the staff side -------------------------------------------------------------------------


@pytest.mark.parametrize("value", HOSTILE, ids=IDS)
def test_masking_a_residents_text_never_makes_it_longer(value: str) -> None:
    """What goes to the resident's topic masked is sent as plain text: it must stay within
    what Telegram took from the resident."""
    text = ("+7 (916) 123-45-67 4276 3800 1234 5678 a@b.ru " + value)[:TEXT_LIMIT]
    clean, masked = mask_personal(text)
    assert masked
    assert utf16_len(clean) <= utf16_len(text)
    assert clean.strip()


async def test_a_masked_hostile_text_reaches_the_staff_topic_as_plain_text(
    bot: Bot, telegram: LocalTelegram
) -> None:
    from handlers.support import _copy_in

    group = -1001234567890
    telegram.register_chat({"id": group, "type": "supergroup", "title": "Staff", "is_forum": True})
    resident = {"id": CHAT, "is_bot": False, "first_name": "Мария"}
    text = ("<b>мой номер</b> &amp; 89161234567 " + "😀" * 2000)[:3000]
    payload = telegram.incoming_message(CHAT, resident, {"text": text})
    message = Message.model_validate(payload, context={"bot": bot})
    assert await _copy_in(bot, message, group, 5)
    shown = telegram.messages(group)[-1]
    assert shown.text is not None and "<b>мой номер</b> &amp; •••" in shown.text
