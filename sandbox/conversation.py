"""Drive whole conversations with the real Dispatcher, as a resident would.

``Conversation`` turns "the resident types X / presses button N / sends a location" into real
``Update`` objects, feeds them to ``dispatcher.feed_update`` and reports, as a ``Reply``, what
the bot did in answer: messages sent, messages edited, messages deleted, callback answers.
The bot must talk to a ``LocalTelegram`` session (see ``sandbox.telegram_double``).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.methods import TelegramMethod
from aiogram.types import Update

from bot.album import drain as drain_albums
from sandbox.telegram_double import (
    ACTION,
    CallbackAnswer,
    ChatMessage,
    Event,
    EventKind,
    InlineButton,
    JsonDict,
    LocalTelegram,
    local_telegram_of,
    utf16_len,
)


class ConversationError(LookupError):
    """The resident cannot do that: no such button, no keyboard, a URL button pressed, ..."""


@dataclass(frozen=True)
class Reply:
    """What the bot did in answer to one resident action."""

    chat_id: int
    events: tuple[Event, ...]

    @property
    def messages(self) -> list[ChatMessage]:
        """New messages in the resident's chat."""
        return [e.message for e in self._in_chat(EventKind.SENT) if e.message is not None]

    @property
    def edits(self) -> list[ChatMessage]:
        """Edited messages in the resident's chat (state after each edit), keyboard-only too."""
        return [e.message for e in self._in_chat(EventKind.EDITED) if e.message is not None]

    @property
    def deleted(self) -> list[int]:
        return [e.message_id for e in self._in_chat(EventKind.DELETED) if e.message_id]

    @property
    def callback_answers(self) -> list[CallbackAnswer]:
        kind = EventKind.CALLBACK_ANSWERED
        return [e.answer for e in self.events if e.kind is kind and e.answer is not None]

    @property
    def answered(self) -> bool:
        """Whether a callback query was answered (the button stopped spinning)."""
        return bool(self.callback_answers)

    @property
    def shown(self) -> list[ChatMessage]:
        """New messages and content edits, in order (keyboard-only edits are left out)."""
        return [
            event.message
            for event in self.events
            if event.chat_id == self.chat_id
            and event.message is not None
            and (event.kind is EventKind.SENT or not event.markup_only)
        ]

    @property
    def texts(self) -> list[str]:
        """Plain texts (HTML applied) of ``shown``."""
        return [message.text for message in self.shown]

    @property
    def text(self) -> str:
        return "\n".join(self.texts)

    @property
    def last(self) -> ChatMessage | None:
        shown = self.shown
        return shown[-1] if shown else None

    @property
    def elsewhere(self) -> list[Event]:
        """Effects in other chats (e.g. a staff group), in order."""
        return [e for e in self.events if e.chat_id not in (None, self.chat_id)]

    def __contains__(self, fragment: object) -> bool:
        return isinstance(fragment, str) and fragment in self.text

    def _in_chat(self, kind: EventKind) -> list[Event]:
        return [e for e in self.events if e.kind is kind and e.chat_id == self.chat_id]


@dataclass(frozen=True)
class Screen:
    """What the resident sees now: the latest bot message and its inline buttons."""

    text: str
    buttons: list[list[str]]
    message_id: int | None
    reply_keyboard: list[list[str]] | None = None


class Conversation:
    """One resident chatting privately with the bot (chat id == user id)."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        bot: Bot,
        *,
        user_id: int = 100001,
        first_name: str = "Житель",
        username: str | None = None,
        last_name: str | None = None,
        language_code: str | None = "ru",
        first_update_id: int = 1,
    ) -> None:
        self.dispatcher = dispatcher
        self.bot = bot
        self.telegram: LocalTelegram = local_telegram_of(bot)
        self.user: JsonDict = {"id": user_id, "is_bot": False, "first_name": first_name}
        optional = {"last_name": last_name, "username": username, "language_code": language_code}
        self.user.update({key: value for key, value in optional.items() if value})
        self.chat_id = user_id
        self.telegram.register_user(self.user)
        self._update_ids = itertools.count(first_update_id)
        self._query_ids = itertools.count(1)
        self._media_groups = itertools.count(1)
        self._reported = len(self.telegram.events)

    # ---- resident actions -------------------------------------------------------------------

    async def send(self, text: str) -> Reply:
        """Type a text message; ``/command args`` gets a bot_command entity like on Telegram."""
        content: JsonDict = {"text": text}
        if text.startswith("/"):
            command = text.split(maxsplit=1)[0]
            content["entities"] = [
                {"type": "bot_command", "offset": 0, "length": utf16_len(command)}
            ]
        return await self._send_content(content)

    async def press(self, button: str | int, *, message_id: int | None = None) -> Reply:
        """Press an inline button by visible text (exact or unique substring) or 1-based index."""
        message = self._keyboard_message(message_id)
        target = _find_button(message, button)
        if target.callback_data is None:
            hint = f"; use url_of({button!r})" if target.url else ""
            raise ConversationError(f"button {target.text!r} is a {target.kind} button{hint}")
        query_id = f"{self.chat_id}-{next(self._query_ids)}"
        self.telegram.open_callback_query(query_id)
        query = {
            "id": query_id,
            "from": dict(self.user),
            "message": dict(message.payload),
            "chat_instance": f"local-{self.chat_id}",
            "data": target.callback_data,
        }
        return await self._feed({"callback_query": query})

    def url_of(self, button: str | int, *, message_id: int | None = None) -> str:
        """The URL a (URL or login) inline button opens."""
        target = _find_button(self._keyboard_message(message_id), button)
        if target.url is None:
            raise ConversationError(f"button {target.text!r} has no URL")
        return target.url

    async def send_location(self, latitude: float, longitude: float) -> Reply:
        return await self._send_content({"location": _location(latitude, longitude)})

    async def send_venue(
        self, latitude: float, longitude: float, title: str, address: str
    ) -> Reply:
        location = _location(latitude, longitude)
        venue = {"location": location, "title": title, "address": address}
        return await self._send_content({"venue": venue, "location": dict(location)})

    async def send_contact(self, phone_number: str, first_name: str | None = None) -> Reply:
        """Share a contact; without ``first_name`` it is the resident's own (with user_id)."""
        contact: JsonDict = {"phone_number": phone_number}
        if first_name is None:
            contact.update(first_name=self.user["first_name"], user_id=self.user["id"])
        else:
            contact["first_name"] = first_name
        return await self._send_content({"contact": contact})

    async def send_photo(
        self,
        data: bytes,
        caption: str | None = None,
        media_group_id: str | None = None,
        *,
        width: int = 1280,
        height: int = 960,
    ) -> Reply:
        return await self._send_content(
            self._photo_content(data, caption, media_group_id, width, height)
        )

    async def send_document(
        self,
        data: bytes,
        file_name: str,
        mime_type: str,
        caption: str | None = None,
    ) -> Reply:
        stored = self.telegram.register_file(
            data, kind="document", file_name=file_name, mime_type=mime_type
        )
        document = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_name": file_name,
            "mime_type": mime_type,
            "file_size": len(data),
        }
        return await self._send_content(_with_caption({"document": document}, caption))

    async def send_video(
        self,
        data: bytes = b"\x00\x00\x00\x18ftypmp42",
        caption: str | None = None,
        *,
        duration: int = 5,
        width: int = 1280,
        height: int = 720,
    ) -> Reply:
        stored = self.telegram.register_file(
            data, kind="video", file_name="video.mp4", mime_type="video/mp4"
        )
        video = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "width": width,
            "height": height,
            "duration": duration,
            "mime_type": "video/mp4",
            "file_size": len(data),
        }
        return await self._send_content(_with_caption({"video": video}, caption))

    async def send_album(self, photos: Iterable[bytes], caption: str | None = None) -> Reply:
        """Several photos with one media_group_id, delivered as concurrent updates (as polling
        does), so album-collecting middlewares see them the way they would in production."""
        group_id = f"album-{self.chat_id}-{next(self._media_groups)}"
        contents = [
            self._photo_content(data, caption if index == 0 else None, group_id, 1280, 960)
            for index, data in enumerate(photos)
        ]
        if not contents:
            raise ConversationError("an album needs at least one photo")
        updates = [{"message": self._incoming(content)} for content in contents]
        return await self._feed(*updates)

    async def feed(self, update: Mapping[str, Any]) -> Reply:
        """Feed a raw Bot API update (without ``update_id``) for cases the helpers miss."""
        return await self._feed(dict(update))

    def inbox(self) -> Reply:
        """What the bot did since the last reported Reply (e.g. from background jobs)."""
        return self._reply_since(self._reported)

    # ---- what the resident sees ---------------------------------------------------------------

    @property
    def messages(self) -> list[ChatMessage]:
        """All bot messages still in the chat, oldest first, in their current state."""
        return self.telegram.messages(self.chat_id)

    @property
    def history(self) -> list[str]:
        return [message.text for message in self.messages]

    @property
    def last_message(self) -> ChatMessage | None:
        return self.telegram.last_message(self.chat_id)

    @property
    def last_text(self) -> str:
        last = self.last_message
        return last.text if last else ""

    @property
    def buttons(self) -> list[str]:
        """Texts of the buttons of the latest message with an inline keyboard."""
        message = self._latest_with_keyboard()
        return [button.text for button in message.buttons] if message else []

    @property
    def url_buttons(self) -> dict[str, str]:
        message = self._latest_with_keyboard()
        if message is None:
            return {}
        return {button.text: button.url for button in message.buttons if button.url}

    @property
    def reply_keyboard(self) -> list[list[str]] | None:
        rows = self.telegram.reply_keyboard(self.chat_id)
        return None if rows is None else [list(row) for row in rows]

    def screen(self) -> Screen:
        last = self.last_message
        return Screen(
            text=last.text if last else "",
            buttons=last.button_rows if last else [],
            message_id=last.message_id if last else None,
            reply_keyboard=self.reply_keyboard,
        )

    # ---- plumbing -----------------------------------------------------------------------------

    def _latest_with_keyboard(self) -> ChatMessage | None:
        return self.telegram.last_message(self.chat_id, with_keyboard=True)

    def _keyboard_message(self, message_id: int | None) -> ChatMessage:
        if message_id is not None:
            message = self.telegram.message(self.chat_id, message_id)
            if message is None:
                raise ConversationError(f"no message {message_id} in the chat")
            return message
        message = self._latest_with_keyboard()
        if message is None:
            raise ConversationError("no bot message with an inline keyboard in the chat")
        return message

    def _photo_content(
        self, data: bytes, caption: str | None, media_group_id: str | None, width: int, height: int
    ) -> JsonDict:
        sizes = self.telegram.register_photo(data, width=width, height=height)
        content = _with_caption({"photo": sizes}, caption)
        if media_group_id:
            content["media_group_id"] = media_group_id
        return content

    def _incoming(self, content: JsonDict) -> JsonDict:
        return self.telegram.incoming_message(self.chat_id, self.user, content)

    async def _send_content(self, content: JsonDict) -> Reply:
        return await self._feed({"message": self._incoming(content)})

    async def _feed(self, *updates: JsonDict) -> Reply:
        start = len(self.telegram.events)
        payloads = [{"update_id": next(self._update_ids), **update} for update in updates]
        token = ACTION.set(payloads[0]["update_id"])  # what is sent now answers this action
        try:
            if len(payloads) == 1:
                await self._dispatch(payloads[0])
            else:
                await asyncio.gather(*(self._dispatch(payload) for payload in payloads))
            await drain_albums(self.dispatcher)  # an album is answered from a background task
        finally:
            ACTION.reset(token)
        return self._reply_since(start)

    async def _dispatch(self, payload: JsonDict) -> None:
        update = Update.model_validate(payload, context={"bot": self.bot})
        response = await self.dispatcher.feed_update(self.bot, update)
        if isinstance(response, TelegramMethod):
            # A handler answered "webhook style" (returned a method): polling would call it.
            await self.bot(response)

    def _reply_since(self, start: int) -> Reply:
        self._reported = len(self.telegram.events)
        return Reply(chat_id=self.chat_id, events=tuple(self.telegram.events[start:]))


def _find_button(message: ChatMessage, button: str | int) -> InlineButton:
    buttons = message.buttons
    if isinstance(button, int):
        if not 1 <= button <= len(buttons):
            raise ConversationError(f"no button #{button}; the keyboard has {_describe(buttons)}")
        return buttons[button - 1]
    exact = [candidate for candidate in buttons if candidate.text == button]
    matches = exact or [candidate for candidate in buttons if button in candidate.text]
    if len(matches) == 1:
        return matches[0]
    problem = "several buttons match" if matches else "no button matches"
    raise ConversationError(f"{problem} {button!r}; the keyboard has {_describe(buttons)}")


def _describe(buttons: list[InlineButton]) -> str:
    if not buttons:
        return "no buttons"
    return ", ".join(f"[{index}] {b.text!r}" for index, b in enumerate(buttons, start=1))


def _location(latitude: float, longitude: float) -> JsonDict:
    return {"latitude": float(latitude), "longitude": float(longitude)}


def _with_caption(content: JsonDict, caption: str | None) -> JsonDict:
    if caption:
        content["caption"] = caption
    return content
