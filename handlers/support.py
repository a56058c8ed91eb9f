"""«Поддержка»: a live hand-off to people, in the same chat.

Residents: «Поддержка» in the menu; what they write then (text, photos, files, voice) is copied
into a forum topic of their own in the staff supergroup (SUPPORT_CHAT_ID), made on first
contact and named by the masked name and an internal number only («Мария В. · #42»).

Staff, in the supergroup: a message in a resident's topic is copied to the resident's chat,
with a button to answer; /stats and /resident <number> give figures without personal data.
Only members of the supergroup (getChatMember: creator, administrator, member) are heard;
anyone else gets no answer at all. A «Dashboard» topic, made once, receives the outbox's
dashboard events (rendered by `render_dashboard`).

The bot must be an administrator of the supergroup with «Manage topics»: that is what lets
it create topics, and an administrator bot receives every message, not only commands.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import suppress
from datetime import datetime
from typing import Any, TypeVar

import structlog
from aiogram import Bot, F, Router
from aiogram.enums import ChatMemberStatus, ContentType
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramRetryAfter,
)
from aiogram.filters import Command, CommandObject, Filter
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram_dialog import Dialog, DialogManager, ShowMode, StartMode, Window
from aiogram_dialog.api.internal import CONTEXT_KEY
from aiogram_dialog.widgets.kbd import Button
from markupsafe import Markup

from domain import support
from domain.accounts import Resident
from domain.autopay import AutopayKind
from domain.bills import BillKind
from domain.money import format_rub, has_foreign_digit
from domain.ports import Dashboard, SupportTopic, UnitOfWork
from handlers.autopay import SERVICE_KEYS
from handlers.navigation import start_over_menu
from handlers.ports import Texts
from handlers.states import MenuSG, SupportSG
from handlers.texts import COMMAND, LEVEL_KEYS, format_date, shorten, valid_text
from handlers.widgets import OtherInput, Tr

log = structlog.get_logger(__name__)

STAFF = frozenset(
    {ChatMemberStatus.CREATOR, ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.MEMBER}
)
# What is passed on between a resident and their topic. Contacts, locations and venues are
# not: a phone number or a home address has no place in the staff channel.
COPYABLE = frozenset(
    {
        ContentType.TEXT,
        ContentType.PHOTO,
        ContentType.DOCUMENT,
        ContentType.VIDEO,
        ContentType.ANIMATION,
        ContentType.AUDIO,
        ContentType.VOICE,
        ContentType.VIDEO_NOTE,
        ContentType.STICKER,
    }
)
REFUSED = frozenset({ContentType.CONTACT, ContentType.LOCATION, ContentType.VENUE})
# Staff may send a resident a place (an office's address); what else a person can post in a
# topic and a bot cannot copy to a resident (or should not: a contact) is answered in the
# topic with `support-staff-not-passed`, never dropped without a word. Service messages
# (a topic renamed, a pin) are neither: they are not for the resident.
STAFF_COPYABLE = COPYABLE | {ContentType.LOCATION, ContentType.VENUE}
STAFF_NOT_PASSED = frozenset(
    {
        ContentType.CONTACT,
        ContentType.POLL,
        ContentType.DICE,
        ContentType.GAME,
        ContentType.STORY,
        ContentType.CHECKLIST,
        ContentType.PAID_MEDIA,
        ContentType.LIVE_PHOTO,
        ContentType.INVOICE,
    }
)
ANSWER = "support:answer"  # callback data of «Ответить» under a staff reply
TOPIC_NAME_MAX = 128  # Telegram's limit for a forum topic's name
FAILURE_KEYS = {
    "declined": "dashboard-failure-declined",
    "insufficient_funds": "dashboard-failure-funds",
    "expired_card": "dashboard-failure-card-expired",
    "card_removed": "dashboard-failure-card-removed",
    "card_expired": "dashboard-failure-card-expired",
    "needs_confirmation": "dashboard-failure-needs-confirmation",
    "relink": "dashboard-failure-relink",
    "target_gone": "dashboard-failure-target-gone",
    "over_ceiling": "dashboard-failure-over-ceiling",
    "topup_limits": "dashboard-failure-topup-limits",
    "no_balance": "dashboard-failure-no-balance",
    "topup_full": "dashboard-failure-topup-full",
    "refused": "dashboard-failure-refused",
    "canceled": "dashboard-failure-canceled",
}
# Why the city would not register money Telegram took (the intent's failure, before any «:»).
REFUND_REASON_KEYS = {
    "already_paid": "dashboard-refund-already-paid",
    "amount_changed": "dashboard-refund-amount-changed",
    "charge_mismatch": "dashboard-refund-charge-mismatch",  # domain.payments.CHARGE_MISMATCH
    "second_charge": "dashboard-refund-second-charge",  # domain.payments.SECOND_CHARGE
    "second_charge_unpaid": "dashboard-refund-second-charge-unpaid",
    "refused": "dashboard-failure-refused",
    "replaced": "dashboard-refund-replaced",
    "unlinked": "dashboard-refund-unlinked",  # domain.linking.UNLINKED_UNREGISTERED
}


# ---- topics ---------------------------------------------------------------------------------


def topic_name(tr: Texts, resident: Resident | None, number: int) -> str:
    """Plain text: a topic's name is shown as it is."""
    name = resident.masked_name if resident else tr.label("support-topic-resident")
    # Bot API: 1-128 characters, counted as Telegram counts (UTF-16 units, an emoji is two)
    return shorten(tr.label("support-topic-name", name=name, number=str(number)), TOPIC_NAME_MAX)


async def ensure_dashboard(
    bot: Bot, uow: UnitOfWork, chat_id: int | None, tr: Texts, now: datetime
) -> Dashboard | None:
    """The «Dashboard» topic of the configured chat, created once; None when support is off
    (and then no dashboard is kept, so no event is written for a chat no longer ours, and the
    events still waiting for the chat support was in fail, logged)."""
    if chat_id is None and (dropped := await support.drop_waiting_events(uow)):
        log.error("support.events_dropped", count=dropped, reason="support_off")
    dashboard = await support.current_dashboard(uow, chat_id)
    if chat_id is None or dashboard is not None:
        return dashboard
    topic = await bot.create_forum_topic(chat_id, tr.label("support-dashboard-name"))
    stored = await support.keep_dashboard(uow, Dashboard(chat_id, topic.message_thread_id), now)
    if stored.thread_id != topic.message_thread_id:  # another replica made one first
        with suppress(TelegramAPIError):
            await bot.delete_forum_topic(chat_id, topic.message_thread_id)
    return stored


async def _new_thread(
    bot: Bot, uow: UnitOfWork, topic: SupportTopic, name: str, now: datetime
) -> SupportTopic:
    created = await bot.create_forum_topic(topic.chat_id, name)
    log.info("support.topic_created", topic=topic.id)
    return await support.remember_thread(uow, topic, created.message_thread_id, name, now)


async def _resident_topic(
    bot: Bot, data: dict[str, Any], chat_id: int, user_id: int
) -> SupportTopic:
    uow: UnitOfWork = data["uow"]
    tr: Texts = data["tr"]
    now = data["clock"]()
    topic = await support.topic_of(uow, chat_id, user_id, now)
    name = topic_name(tr, data.get("resident"), topic.id)
    if topic.thread_id is None:
        try:  # the first contact: set up, once (else by the dashboard job, or the next one)
            await ensure_dashboard(bot, uow, chat_id, tr, now)
        except TelegramAPIError as error:  # it must not decide whether the message goes
            log.warning("support.dashboard_failed", error=type(error).__name__)
        return await _new_thread(bot, uow, topic, name, now)
    if topic.name != name:  # linked or unlinked since: the topic's name follows
        try:
            await bot.edit_forum_topic(chat_id, topic.thread_id, name=name)
        except TelegramBadRequest:
            pass  # «not modified», or the topic is gone: the copy finds out
        except TelegramAPIError as error:  # a 429, 5xx: cosmetic, renamed with a later message
            log.warning("support.rename_failed", error=type(error).__name__)
            return topic
        topic = await support.remember_thread(uow, topic, topic.thread_id, name, now)
    return topic


def _thread_gone(error: TelegramBadRequest) -> bool:
    return "thread not found" in error.message.lower()


T = TypeVar("T")


async def _waiting_once(send: Callable[[], Awaitable[T]]) -> T:
    """One Bot API call of a message in parts (an album), a 429 waited out here once, up to
    RETRY_PART seconds, rather than raised: the update's retry would send the parts already
    sent again (a staff reply twice; a resident told «недоступна» who then sends it again)."""
    for attempt in (1, 2):
        try:
            return await send()
        except TelegramRetryAfter as error:
            if attempt == 2 or error.retry_after > RETRY_PART:
                raise
            await asyncio.sleep(error.retry_after)
    raise AssertionError("unreachable")


async def _after_sent(send: Callable[[], Awaitable[object]], event: str) -> None:
    """A call that follows one that reached someone (the rest of a message: a text after its
    media, «Ответить» after a reply): a refusal is logged as `event`, never raised — the
    update's retry would send what already went a second time."""
    try:
        await _waiting_once(send)
    except TelegramAPIError as error:
        log.error(event, error=type(error).__name__)


def _caption_too_long(error: TelegramBadRequest) -> bool:
    """A copy that changes a caption (or adds a keyboard) is refused above 1,024 characters:
    a Premium sender's caption (up to 4,096) can only be copied as it is (Bot API; the
    telegram-bot-api project's issue 334)."""
    return "caption is too long" in error.message.lower()


async def _copy_in(bot: Bot, message: Message, chat_id: int, thread_id: int) -> bool:
    """Copy one resident message into their topic; phone and card numbers are masked.
    True when something was masked. A masked caption too long for a copy goes as a text of
    its own after the media, copied without its caption."""
    text = message.text if message.text is not None else message.caption
    clean, masked = support.mask_personal(text) if text else ("", False)
    source, message_id = message.chat.id, message.message_id
    if masked and message.text is not None:
        await _waiting_once(
            lambda: bot.send_message(chat_id, clean, message_thread_id=thread_id, parse_mode=None)
        )
        return masked
    if not masked:
        await _waiting_once(
            lambda: bot.copy_message(chat_id, source, message_id, message_thread_id=thread_id)
        )
        return masked
    try:
        await _waiting_once(
            lambda: bot.copy_message(
                chat_id, source, message_id, message_thread_id=thread_id, caption=clean,
                parse_mode=None,
            )
        )  # fmt: skip
    except TelegramBadRequest as error:
        if not _caption_too_long(error):
            raise
        await _waiting_once(
            lambda: bot.copy_message(
                chat_id, source, message_id, message_thread_id=thread_id, caption="",
            )
        )  # fmt: skip
        await _after_sent(
            lambda: bot.send_message(chat_id, clean, message_thread_id=thread_id, parse_mode=None),
            "support.caption_text_failed",
        )
    return masked


class PartlyPassedOn(Exception):
    """Telegram refused a part of an album after `sent` of its `total` parts had gone: told
    as such (never «недоступна», which would have the resident send the parts again)."""

    def __init__(self, sent: int, total: int) -> None:
        super().__init__(f"{sent} of {total}")
        self.sent, self.total = sent, total


async def pass_on(bot: Bot, data: dict[str, Any], user_id: int, messages: list[Message]) -> bool:
    """The resident's messages into their topic (made or made again if staff deleted it).
    True when something was masked. Raises what Telegram raises while nothing has gone, and
    PartlyPassedOn once something has."""
    chat_id: int = data["support_chat_id"]
    topic = await _resident_topic(bot, data, chat_id, user_id)
    masked = False
    for sent, message in enumerate(messages):
        assert topic.thread_id is not None
        try:
            try:
                masked |= await _copy_in(bot, message, chat_id, topic.thread_id)
            except TelegramBadRequest as error:
                if not _thread_gone(error):
                    raise
                name = topic_name(data["tr"], data.get("resident"), topic.id)
                topic = await _new_thread(bot, data["uow"], topic, name, data["clock"]())
                assert topic.thread_id is not None
                masked |= await _copy_in(bot, message, chat_id, topic.thread_id)
        except TelegramAPIError as error:
            if sent == 0:
                raise
            log.error("support.pass_on_partly", error=type(error).__name__, sent=sent)
            raise PartlyPassedOn(sent, len(messages)) from error
    return masked


# ---- the resident's side -------------------------------------------------------------------


class InSupport(Filter):
    """A resident's message while «Поддержка» is open. Checked ahead of the receipts router,
    which would otherwise take every photo for a receipt to read; a payment's service message
    or a command goes on to its own handler."""

    async def __call__(self, message: Message, **data: Any) -> bool:
        context = data.get(CONTEXT_KEY)
        if context is None or context.state != SupportSG.chat:
            return False
        if message.content_type not in COPYABLE | REFUSED:
            return False
        return COMMAND.match(message.text or "") is None  # «/ лифт не работает» is passed on


async def on_resident_message(message: Message, dialog_manager: DialogManager) -> None:
    data = dialog_manager.middleware_data
    tr: Texts = data["tr"]
    messages: list[Message] = data.get("album") or [message]
    problem: str | None = None
    if data.get("support_chat_id") is None or message.from_user is None:
        problem = "support-unavailable"
    elif any(m.content_type not in COPYABLE for m in messages):
        problem = "support-not-passed"
    else:
        assert message.bot is not None
        try:
            if await pass_on(message.bot, data, message.from_user.id, messages):
                await message.answer(tr("support-masked"))
        except PartlyPassedOn as partly:
            await message.answer(tr("support-partly", sent=partly.sent, total=partly.total))
        except TelegramAPIError as error:  # the bot is not (or no longer) an admin there, …
            log.error("support.pass_on_failed", error=type(error).__name__)
            problem = "support-unavailable"
    if problem is not None:
        await message.answer(tr(problem))
    # The window comes back below the resident's message.
    await dialog_manager.update({"sent": problem is None}, ShowMode.SEND)


async def support_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    return {"sent": bool(dialog_manager.dialog_data.get("sent"))}


async def on_leave(_c: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    await manager.start(MenuSG.main, mode=StartMode.RESET_STACK)


async def on_answer(callback: CallbackQuery, dialog_manager: DialogManager) -> None:
    """«Ответить» under a staff reply: back into support, wherever the resident was."""
    await callback.answer()
    await start_over_menu(dialog_manager, SupportSG.chat)


def build_dialog() -> Dialog:
    return Dialog(
        Window(
            Tr("support-intro", when=~F["sent"]),
            Tr("support-sent", when=F["sent"]),
            Button(Tr("support-leave"), id="leave", on_click=on_leave),
            # what the support router does not take (a dice, a poll) reaches the window
            OtherInput("support-not-passed"),
            getter=support_getter,
            state=SupportSG.chat,
        ),
        name="support",
    )


def build_router() -> Router:
    """The resident's messages while in support, and «Ответить» under a staff reply (the
    window itself is `build_dialog`). Goes before the receipts router."""
    router = Router(name="support")
    router.message.register(on_resident_message, F.chat.type == "private", InSupport())
    router.callback_query.register(on_answer, F.data == ANSWER, F.message.chat.type == "private")
    return router


# ---- the staff's side ----------------------------------------------------------------------


class SupportChat(Filter):
    """Messages of the configured support supergroup."""

    async def __call__(self, message: Message, support_chat_id: int | None = None) -> bool:
        return support_chat_id is not None and message.chat.id == support_chat_id


class Staff(Filter):
    """A member of the supergroup (or an anonymous administrator posting as the group).
    Raises what getChatMember raises when Telegram is in trouble (a transient failure)."""

    async def __call__(self, message: Message, bot: Bot) -> bool:
        if message.sender_chat is not None:
            return message.sender_chat.id == message.chat.id
        if message.from_user is None:
            return False
        try:
            member = await bot.get_chat_member(message.chat.id, message.from_user.id)
        except (TelegramBadRequest, TelegramForbiddenError) as error:  # no such member here
            log.warning("support.member_check_failed", error=type(error).__name__)
            return False
        # Anything else (5xx, a network error, 429) is raised: the update is tried again
        # (`bot.failures.classify`), where «not staff» would drop a staff reply for good.
        return member.status in STAFF


def _answer_button(tr: Texts) -> InlineKeyboardMarkup:
    button = InlineKeyboardButton(text=tr.label("support-answer"), callback_data=ANSWER)
    return InlineKeyboardMarkup(inline_keyboard=[[button]])


async def on_staff_message(
    message: Message, bot: Bot, uow: UnitOfWork, tr: Texts, album: list[Message] | None = None
) -> None:
    """A staff message in a resident's topic goes to the resident's chat; an album goes whole,
    part by part, «Ответить» under its last part."""
    if message.message_thread_id is None:
        return
    if message.content_type not in STAFF_COPYABLE | STAFF_NOT_PASSED:
        return  # a service message (a topic renamed, a pin): not for the resident
    if COMMAND.match(message.text or ""):
        return  # a command (for another bot, or mistyped) is never passed on; «/ минуту» goes
    topic = await support.topic_in_thread(uow, message.chat.id, message.message_thread_id)
    if topic is None:  # «General», the dashboard, or a topic the bot did not make
        return
    if message.content_type in STAFF_NOT_PASSED:
        await message.reply(tr("support-staff-not-passed"))
        return
    parts = [m for m in album or [message] if m.content_type in STAFF_COPYABLE]
    failed = went = 0
    for number, part in enumerate(parts, 1):
        try:
            await _copy_part(bot, topic.telegram_user_id, part, tr, last=number == len(parts))
            went += 1
        except TelegramForbiddenError:
            await message.reply(tr("support-resident-blocked"))
            return
        except TelegramBadRequest as error:  # this part only (deleted meanwhile, …)
            log.warning("support.reply_failed", error=error.message)
            failed += 1
        except TelegramAPIError as error:  # a long 429, 5xx, the network
            if not went:  # nothing reached the resident: the update is tried again
                raise
            # Tried again, it would send the parts that went a second time: staff hear
            # which did not go instead.
            log.error("support.reply_stopped", error=type(error).__name__, went=went)
            failed += len(parts) - number + 1
            break
    if failed:
        await message.reply(tr("support-reply-part-failed", failed=failed, total=len(parts)))


async def on_staff_edit(message: Message, bot: Bot, uow: UnitOfWork, tr: Texts) -> None:
    """A staff reply edited in a resident's topic (a wrong date, a wrong sum): the resident
    gets the message as edited, then a line saying it corrects the earlier one, with
    «Ответить». Telegram lets a bot edit only its own messages, so the copy in the resident's
    chat is not changed in place. A place's edits (a live location moving) are not passed on;
    nor is what a resident edits: staff have what was sent (the resident is told to send it
    again, `handlers.edits`)."""
    if message.message_thread_id is None or message.content_type not in COPYABLE:
        return
    if COMMAND.match(message.text or ""):
        return
    topic = await support.topic_in_thread(uow, message.chat.id, message.message_thread_id)
    if topic is None:
        return
    user, source, message_id = topic.telegram_user_id, message.chat.id, message.message_id
    try:
        if message.text is not None:  # the text as edited, from the update itself
            await _waiting_once(
                lambda: bot.send_message(
                    user, message.text or "", entities=message.entities, parse_mode=None
                )
            )
        else:  # a media's caption edited: the media copied with the caption as edited
            try:
                await _waiting_once(
                    lambda: bot.copy_message(
                        user, source, message_id, caption=message.caption,
                        caption_entities=message.caption_entities, parse_mode=None,
                    )
                )  # fmt: skip
            except TelegramBadRequest as error:
                if not _caption_too_long(error):
                    raise
                # a Premium caption is copied only as it is: as edited, by now
                await _waiting_once(lambda: bot.copy_message(user, source, message_id))
    except TelegramForbiddenError:
        await message.reply(tr("support-resident-blocked"))
        return
    except TelegramBadRequest as error:
        log.warning("support.correction_failed", error=error.message)
        await message.reply(tr("support-reply-part-failed", failed=1, total=1))
        return
    await _after_sent(
        lambda: bot.send_message(
            user, tr("support-reply-corrected"), reply_markup=_answer_button(tr)
        ),
        "support.correction_line_failed",
    )


async def _copy_part(bot: Bot, chat_id: int, part: Message, tr: Texts, *, last: bool) -> None:
    """One part of a staff reply copied to the resident, «Ответить» under the last one (a 429
    waited out once: `_waiting_once`). A caption too long to be copied with a keyboard (a
    Premium staff member's) is copied as it is, «Ответить» under a line of its own."""
    source, message_id = part.chat.id, part.message_id
    markup = _answer_button(tr) if last else None
    try:
        await _waiting_once(
            lambda: bot.copy_message(chat_id, source, message_id, reply_markup=markup)
        )
    except TelegramBadRequest as error:
        if markup is None or not _caption_too_long(error):
            raise
        await _waiting_once(lambda: bot.copy_message(chat_id, source, message_id))
        await _after_sent(
            lambda: bot.send_message(chat_id, tr("support-answer-below"), reply_markup=markup),
            "support.answer_button_failed",
        )


RETRY_PART = 5  # seconds: the longest 429 a staff reply's part waits out in the handler


async def on_stats(
    message: Message, uow: UnitOfWork, tr: Texts, clock: Callable[[], datetime]
) -> None:
    stats = await support.stats(uow, clock())
    await message.answer(
        tr(
            "support-stats",
            residents=stats.linked_residents,
            payments=stats.payments_today,
            paid=format_rub(stats.paid_today),
            reports=stats.reports_today,
            failed=stats.failed_notifications,
        )
    )


async def on_resident(message: Message, command: CommandObject, uow: UnitOfWork, tr: Texts) -> None:
    """/resident 42, or /resident alone inside a resident's topic."""
    argument = (command.args or "").strip().removeprefix("#")
    number: int | None = None
    if has_foreign_digit(argument):  # «/resident ١٥»: only 0-9 are digits
        await message.answer(tr("input-foreign-digits"))
        return
    if argument.isascii() and argument.isdigit() and len(argument) <= 18:
        number = int(argument)
    elif not argument and message.is_topic_message and message.message_thread_id:
        topic = await support.topic_in_thread(uow, message.chat.id, message.message_thread_id)
        number = topic.id if topic else None
    if number is None:
        await message.answer(tr("support-resident-usage"))
        return
    card = await support.resident_card(uow, number)
    if card is None:
        await message.answer(tr("support-resident-unknown", number=str(number)))
    elif not card.linked or card.account_level is None or card.linked_at is None:
        await message.answer(
            tr(
                "support-resident-unlinked",
                number=str(number),
                reports=card.reports,
                autopays=card.autopays,
            )
        )
    else:
        await message.answer(
            tr(
                "support-resident-card",
                number=str(number),
                name=card.masked_name or "",
                level=tr(LEVEL_KEYS[card.account_level]),
                linked=format_date(card.linked_at.date()),
                reports=card.reports,
                autopays=card.autopays,
            )
        )


async def ignore(_message: Message) -> None:
    """Whatever else happens in the supergroup (service messages, non-members, «General»)
    is not for the bot: no answer, and no other router (menus, /start) sees it."""


def build_staff_router() -> Router:
    """Goes first among the routers: the supergroup's messages end here."""
    router = Router(name="support_staff")
    router.message.filter(SupportChat())
    router.message.register(on_stats, Command("stats"), Staff())
    router.message.register(on_resident, Command("resident"), Staff())
    router.message.register(on_staff_message, F.is_topic_message, Staff())
    router.message.register(ignore)
    router.edited_message.filter(SupportChat())
    router.edited_message.register(on_staff_edit, F.is_topic_message, Staff())
    router.edited_message.register(ignore)
    return router


# ---- dashboard events (the outbox renders them through handlers/notifications) --------------


def render_dashboard(kind: str, data: dict[str, Any], tr: Texts) -> Markup:
    """The text of a dashboard event; `tr` escapes and shortens the values."""

    def text(name: str) -> str:
        return str(data.get(name) or "")

    if kind == support.DASHBOARD_DIGEST:
        return tr(
            "dashboard-digest",
            day=text("day"),
            links=int(data.get("links") or 0),
            payments=int(data.get("payments") or 0),
            paid=format_rub(int(data.get("paid") or 0)),
            donations=int(data.get("donations") or 0),
            donated=format_rub(int(data.get("donated") or 0)),
            reports=int(data.get("reports") or 0),
            failures=int(data.get("failures") or 0),
        )
    if kind == support.DASHBOARD_REPORT:
        return tr(
            "dashboard-report",
            number=text("report_id"),
            theme=text("theme"),
            address=text("address") or "—",
            map=text("map_url") or "—",
            photos=int(data.get("photos") or 0),
        )
    if kind == support.DASHBOARD_AUTOPAY_FAILED:
        if data.get("kind") == AutopayKind.BILL and data.get("bill_kind"):
            what = tr("autopay-what-bill", service=tr(SERVICE_KEYS[BillKind(data["bill_kind"])]))
        else:
            what = tr("autopay-what-fund", fund=text("fund_name"))
        return tr(
            "dashboard-autopay-paused" if data.get("paused") else "dashboard-autopay-failed",
            number=text("autopay_id"),
            period=text("period"),
            what=what,
            amount=format_rub(int(data.get("amount") or 0)),
            attempts=int(data.get("attempts") or 0),
            reason=tr(FAILURE_KEYS.get(str(data.get("failure")), "dashboard-failure-other")),
        )
    if kind == support.DASHBOARD_PLATFORM:
        key = "dashboard-platform-up" if data.get("reachable") else "dashboard-platform-down"
        return tr(key, at=text("at"))
    if kind == support.DASHBOARD_PAYMENT_ERRORS:
        return tr("dashboard-payment-errors", count=int(data.get("count") or 0))
    if kind == support.DASHBOARD_DEAD_LETTER:
        return tr(
            "dashboard-dead-letter",
            number=text("notification_id"),
            kind=text("kind"),
            attempts=int(data.get("attempts") or 0),
        )
    if kind == support.DASHBOARD_TELEGRAM_REFUND:
        failure = str(data.get("failure") or "")
        reason, _, code = failure.partition(":")  # "refused:<the city's reason>"
        why = tr(REFUND_REASON_KEYS.get(reason, "dashboard-failure-other"))
        taken = data.get("taken")
        currency = str(data.get("currency") or "RUB")
        if isinstance(taken, int) and currency == "RUB":
            amount: Any = format_rub(taken)  # what Telegram took, not the invoice's sum
        elif isinstance(taken, int):  # in the currency's smallest units: said as they came
            amount = tr(
                "dashboard-taken-foreign", taken=str(taken), currency=shorten(valid_text(currency))
            )
        else:
            amount = format_rub(int(data.get("amount") or 0))
        return tr(
            "dashboard-telegram-refund",
            amount=amount,
            # the city's reason code is outside text of any length: cut like any value
            reason=why + Markup(" (%s)") % shorten(valid_text(code)) if code else why,
            intent=text("intent_id"),
            number=text("resident") or "—",
            charge=text("charge_id"),
            provider=text("provider_charge_id") or "—",
        )
    raise KeyError(kind)
