"""«Отвязать аккаунт»: confirm, revoke at the city, forget the resident."""

from __future__ import annotations

from contextlib import suppress

import structlog
from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.fsm.context import FSMContext
from aiogram.fsm.storage.base import BaseStorage, StorageKey
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.fsm.storage.redis import RedisStorage
from aiogram.types import CallbackQuery
from aiogram_dialog import Dialog, DialogManager, ShowMode, StartMode, Window
from aiogram_dialog.widgets.kbd import Button, Cancel, Row

from domain.accounts import Resident
from domain.linking import unlink
from domain.ports import City, UnitOfWork
from handlers.points import UNSETTLED
from handlers.ports import Texts
from handlers.states import MenuSG, UnlinkSG
from handlers.support import topic_name
from handlers.widgets import HintOnText, Tr

log = structlog.get_logger(__name__)


async def forget_dialogs(storage: BaseStorage, bot_id: int, user_id: int) -> int:
    """Delete one user's dialog state — aiogram's and aiogram-dialog's stacks and contexts of
    their private chat with the bot — in whichever storage the dispatcher has: the SQL one
    (its `forget_user`), Redis (every key under the user's prefix but a held event-isolation
    lock) or memory. Returns how many keys."""
    forget_user = getattr(storage, "forget_user", None)
    if forget_user is not None:  # storage.fsm.SqlStorage (the wiring's, not imported here)
        return int(await forget_user(bot_id, user_id))
    if isinstance(storage, RedisStorage):
        prefix = storage.key_builder.build(
            StorageKey(bot_id=bot_id, chat_id=user_id, user_id=user_id, destiny="")
        )
        names = [
            name
            async for name in storage.redis.scan_iter(match=prefix + "*", count=500)
            if not (name.decode() if isinstance(name, bytes) else name).endswith(":lock")
        ]
        return int(await storage.redis.delete(*names)) if names else 0
    if isinstance(storage, MemoryStorage):
        gone = [k for k in storage.storage if k.bot_id == bot_id and k.chat_id == user_id]
        for key in gone:
            del storage.storage[key]
        return len(gone)
    raise TypeError(f"cannot forget dialogs in {type(storage).__name__}")


async def on_unlink(callback: CallbackQuery, _button: Button, manager: DialogManager) -> None:
    data = manager.middleware_data
    uow: UnitOfWork = data["uow"]
    city: City = data["city"]
    tr: Texts = data["tr"]
    bot: Bot = data["bot"]
    resident: Resident | None = data.get("resident")
    if resident is not None:
        done = await unlink(uow, city, resident, payments=city, now=data["clock"]())
        await uow.commit()
        data["resident"] = None
        # Dialog state is not in the unit of work: forgotten once the data is. The menu
        # started below is the only state left (a fresh one, holding nothing of theirs) —
        # but for the keys of points operations the platform has not answered yet
        # (handlers/points.py, by city account): dropped, a repeat after linking the same
        # account again would be sent with a new key and debit twice. They go once the
        # outcome is known, or by «Забыть».
        state: FSMContext = data["state"]
        unsettled = (await state.get_data()).get(UNSETTLED)
        await forget_dialogs(data["fsm_storage"], bot.id, resident.telegram_user_id)
        if unsettled:
            await state.set_data({UNSETTLED: unsettled})
        for topic in done.support_topics:  # the topic stays for staff, without the name
            if topic.thread_id is not None:
                with suppress(TelegramAPIError):
                    await bot.edit_forum_topic(
                        topic.chat_id, topic.thread_id, name=topic_name(tr, None, topic.id)
                    )
                # Staff replies there now reach nobody (the bot no longer knows whose it was —
                # by design): they are told so in the topic itself, where they would reply.
                with suppress(TelegramAPIError):
                    await bot.send_message(
                        topic.chat_id, tr("unlink-topic-notice"), message_thread_id=topic.thread_id
                    )
        if done.refunds_owed:  # the Dashboard has the charge ids; nothing personal here
            log.error("tgpay.refund_needed", reason="unlinked", count=done.refunds_owed)
        log.info("account.unlinked", revoked=done.revoked, topics=len(done.support_topics))
        assert callback.message is not None
        key = "unlink-done" if done.revoked else "unlink-done-city-down"
        await callback.message.answer(tr(key))
    await manager.start(MenuSG.main, mode=StartMode.RESET_STACK, show_mode=ShowMode.SEND)


def build_dialog() -> Dialog:
    return Dialog(
        Window(
            Tr("unlink-confirm"),
            Row(
                Button(Tr("unlink-yes"), id="yes", on_click=on_unlink),
                Cancel(Tr("unlink-no")),
            ),
            HintOnText(),
            state=UnlinkSG.confirm,
        ),
        name="unlink",
    )
