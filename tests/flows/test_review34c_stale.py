"""Review 34c: StaleScreenMiddleware must refuse only presses on screens that are really old.
Every press here is a legitimate one — on the latest window after photos and albums, paged
texts and lists, unexpected input, support, a notification's button, a restart — and must do
what the button says, never «Этот экран устарел»."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bot.jobs import deliver_notifications, poll_reports
from bot.ratelimit import MemoryLimiter
from domain.autopay import Autopay, AutopayKind, Frequency, Schedule
from domain.autopaying import set_up
from sandbox.conversation import Conversation, Reply
from sandbox.telegram_double import EventKind
from tests.flows.conftest import STALE, Harness
from tests.flows.test_autopay_setup import DUE, SET_UP_AT, tick
from tests.flows.test_bill_discovery import FULL, deliver, discover, issue
from tests.flows.test_hostile_input import no_crash
from tests.flows.test_prizes import COFFEE
from tests.flows.test_receipt_photo import epd_qr, receipt_photo
from tests.flows.test_reports import ARBAT_10, advance, photo
from tests.flows.test_review27_support import _staff_chat, desk, staff_writes, thread_of  # noqa: F401
from tests.flows.test_review30_notice_buttons import notice_with

Reach = Callable[[Harness, int], Awaitable[Conversation]]


def stale_answers(harness: Harness) -> int:
    """Every «устарел» toast given in this test, to any chat."""
    return sum(
        1
        for e in harness.telegram.events
        if e.kind is EventKind.CALLBACK_ANSWERED and e.answer and e.answer.text == STALE
    )


async def fresh_press(chat: Conversation, button: str | int, **kw: int) -> Reply:
    reply = await chat.press(button, **kw)
    no_crash(reply)
    assert all(a.text != STALE for a in reply.callback_answers), (button, chat.last_text)
    return reply


async def press_every(harness: Harness, reach: Reach) -> list[str]:
    """Each callback button of the window `reach` leads to, pressed on a freshly reached one
    (a new resident each time); the labels pressed."""
    first = await reach(harness, 0)
    message = first.telegram.last_message(first.chat_id, with_keyboard=True)
    assert message is not None
    labels = [b.text for b in message.buttons if b.callback_data]
    for i, label in enumerate(labels):
        chat = first if i == 0 else await reach(harness, i)
        await fresh_press(chat, label)
    assert stale_answers(harness) == 0
    return labels


# ---- «Наш город»: the photo step after a photo / an album --------------------------------------


async def pothole(harness: Harness, user: int) -> Conversation:
    chat = harness.chat(user_id=300001 + user)
    await harness.link(chat)
    await chat.press("Сообщить о проблеме")
    await chat.send("яма на дороге")
    await chat.press("Яма на дороге")
    await chat.send_location(*ARBAT_10)
    return chat


async def after_album(harness: Harness, user: int) -> Conversation:
    chat = await pothole(harness, user)
    await chat.send_album([photo(10), photo(80)])
    return chat


async def after_photo_and_album(harness: Harness, user: int) -> Conversation:
    chat = await pothole(harness, user)
    await chat.send_photo(photo(200))
    await chat.send_album([photo(10), photo(80), photo(150)])
    return chat


async def test_every_button_of_the_photo_step_after_a_photo_and_an_album(
    harness: Harness,
) -> None:
    assert await press_every(harness, after_photo_and_album)


async def test_a_report_goes_after_photos_text_a_contact_and_a_restart_in_between(
    harness: Harness,
) -> None:
    chat = await pothole(harness, 0)
    await chat.send_album([photo(n) for n in (10, 40, 70, 100, 130)])
    await chat.send("это яма")  # text where photos are asked: a hint, the window again
    await chat.send_contact("+79990000000")  # a contact there too
    await harness.restart()
    chat = harness.chat(user_id=chat.user["id"])
    await fresh_press(chat, "Дальше")
    await chat.send_location(*ARBAT_10)  # a location where a description is asked
    await chat.send("Глубокая яма")
    reply = await fresh_press(chat, "Отправить")
    assert "✅ Обращение № NG-" in reply.text
    assert stale_answers(harness) == 0


# ---- a notification's button that opens a dialog -----------------------------------------------


async def bill_notice(harness: Harness, user: int) -> Conversation:
    chat = harness.chat(user_id=320001 + user)
    await harness.link(chat)
    await discover(harness)
    issue(harness, FULL, 100_000 + user)
    await discover(harness)
    await deliver(harness)
    await fresh_press(chat, "Оплатить")
    return chat


async def test_every_button_of_the_pay_screen_opened_from_a_bill_notice(
    harness: Harness,
) -> None:
    assert await press_every(harness, bill_notice)


# ---- bills: the pager of «Мои счета» ----------------------------------------------------------


async def test_the_bills_pager_forward_back_and_pick_across_noise_and_a_restart(
    harness: Harness,
) -> None:
    chat = harness.chat()
    await harness.link(chat)
    await chat.press("Мои счета")
    pager = [b for b in chat.buttons if b == "›"]
    assert pager, chat.buttons
    await fresh_press(chat, "›")
    await chat.send("где квитанция?")  # a hint, the list again below
    await fresh_press(chat, "‹")
    await fresh_press(chat, "›")
    await harness.restart()
    chat = harness.chat()
    await chat.send_location(*ARBAT_10)
    await fresh_press(chat, "‹")
    first = next(b for b in chat.buttons if b[0].isdigit() or "₽" in b)
    await fresh_press(chat, first)
    await fresh_press(chat, "Оплатить выбранные")
    assert "К оплате" in chat.last_text, chat.last_text


# ---- «Наш город»: the city's answer with a photo ------------------------------------------------


async def answered_with_photo(harness: Harness, user: int) -> Conversation:
    chat = harness.chat(user_id=340001 + user)
    await harness.link(chat)
    await chat.press("Сообщить о проблеме")
    await chat.send("яма на дороге")
    await chat.press("Яма на дороге")
    await chat.send_location(ARBAT_10[0] + 0.02 * user, ARBAT_10[1])  # no duplicate hint
    await chat.press("Пропустить")
    await chat.press("Пропустить")
    sent = (await chat.press("Отправить")).text
    assert "✅ Обращение № " in sent, chat.history[-6:]
    number = sent.split("✅ Обращение № ")[1].split()[0]
    answer = " ".join(f"слово{n}" for n in range(400))
    await advance(
        harness, number, to="answered", status_notes=answer, media_url="https://city.example/a.jpg"
    )
    assert harness.app is not None
    await poll_reports(harness.app, harness.clock)
    await deliver_notifications(harness.app, harness.clock, MemoryLimiter())
    await fresh_press(chat, "Показать полностью")
    await fresh_press(chat, "›")
    await fresh_press(chat, "‹")
    return chat


async def test_every_button_of_the_answered_report_card_with_a_photo(harness: Harness) -> None:
    assert await press_every(harness, answered_with_photo)


async def test_my_reports_card_with_the_answer_photo_after_a_restart(harness: Harness) -> None:
    chat = await answered_with_photo(harness, 0)
    await chat.send("/start")
    await fresh_press(chat, "Мои обращения")
    await fresh_press(chat, 1)
    await harness.restart()
    chat = harness.chat(user_id=340001)
    for arrow in ("›", "‹"):
        if arrow in chat.buttons:
            await fresh_press(chat, arrow)
    labels = [b for b in chat.buttons if b not in ("›", "‹") and "/" not in b]
    await fresh_press(chat, labels[0])
    assert stale_answers(harness) == 0


# ---- receipts: a photo and an album ------------------------------------------------------------


async def receipt_album(harness: Harness, user: int) -> Conversation:
    chat = harness.chat(user_id=350001 + user)
    await harness.link(chat)
    await chat.send_photo(receipt_photo(epd_qr()), width=900, height=600)
    await chat.send_album([receipt_photo(epd_qr()), receipt_photo(epd_qr(Sum="50000"))])
    return chat


async def test_every_button_after_a_receipt_photo_and_an_album(harness: Harness) -> None:
    assert await press_every(harness, receipt_album)


# ---- prizes ------------------------------------------------------------------------------------


async def prize_card(harness: Harness, user: int) -> Conversation:
    chat = harness.chat(user_id=360001 + user)
    await harness.link(chat)
    await chat.press("Баллы")
    await chat.press("Обменять")
    await chat.press("Промокоды")
    await chat.send("кофе")
    await fresh_press(chat, next(b for b in chat.buttons if b.startswith(COFFEE)))
    return chat


async def test_every_button_of_a_prize_card(harness: Harness) -> None:
    assert await press_every(harness, prize_card)


# ---- support -----------------------------------------------------------------------------------


async def test_support_after_writing_a_staff_answer_and_a_restart(desk: Harness) -> None:  # noqa: F811
    """Write to support (text, a photo), leave; staff answers; «Ответить» under the answer, write,
    restart, then the support window's «Выйти из поддержки» and the menu it shows."""
    harness = desk
    chat = harness.chat()
    await harness.link(chat)
    await chat.press("Поддержка")
    await chat.send("Вопрос")
    await chat.send_photo(photo())
    await fresh_press(chat, "Выйти из поддержки")
    await staff_writes(harness, {"text": "Уточните номер счёта"}, await thread_of(harness, chat))
    await fresh_press(chat, "Ответить")
    await chat.send("Счёт № 12")
    await harness.restart()
    _staff_chat(harness)
    chat = harness.chat()
    reply = await fresh_press(chat, "Выйти из поддержки")
    assert "Что сделаем?" in reply.text, reply.text
    await fresh_press(chat, "Мои счета")
    assert stale_answers(harness) == 0


# ---- notifications' buttons that open a dialog (continued) ---------------------------------------


async def test_the_pay_screen_pressed_below_a_notice_that_arrived_meanwhile(
    harness: Harness,
) -> None:
    """The resident is on the pay screen; a «Пришёл счёт» arrives below it. The pay screen is
    still the dialog's current one: its «Отмена» works, and the notice's «Оплатить» too."""
    chat = harness.chat()
    await harness.link(chat)
    await discover(harness)
    await chat.press("Мои счета")
    await chat.press("Оплатить все")
    screen = chat.last_message
    assert screen is not None
    issue(harness, FULL, 100_000)
    await discover(harness)
    await deliver(harness)
    assert chat.last_message is not None and chat.last_message.message_id != screen.message_id
    await fresh_press(chat, "Отмена", message_id=screen.message_id)
    await fresh_press(chat, "Оплатить", message_id=notice_with(chat, "Оплатить"))
    pay = next(b for b in chat.buttons if b.startswith("Оплатить"))
    await fresh_press(chat, pay)
    assert "Оплачено" in chat.last_text, chat.last_text


async def paused_autopay_notice(harness: Harness, user: int) -> Conversation:
    """A fund autopay on a card that wants 3-D Secure: paused, told «Открыть автоплатёж»."""
    chat = harness.chat(user_id=370001 + user)
    await harness.link(chat)
    assert harness.app is not None
    async with harness.app.uow_factory() as uow:
        autopay = Autopay(
            chat.chat_id,
            AutopayKind.FIXED,
            Schedule(Frequency.MONTHLY, 25),
            "pm-full-3220",
            SET_UP_AT,
            amount=20_000,
            fund_id="F-101",
            fund_name="Фонд",
        )
        await set_up(uow, autopay, SET_UP_AT)
    await tick(harness, DUE)
    await chat.send("что случилось?")  # the menu again below the notice
    await fresh_press(chat, "Открыть автоплатёж", message_id=notice_with(chat, "Открыть"))
    assert "на паузе" in chat.last_text, chat.last_text
    return chat


async def test_every_button_of_the_autopay_card_opened_from_a_paused_notice(
    harness: Harness,
) -> None:
    assert await press_every(harness, paused_autopay_notice)


async def test_the_autopay_card_from_a_notice_changes_the_card_after_a_restart(
    harness: Harness,
) -> None:
    await paused_autopay_notice(harness, 0)
    await harness.restart()
    chat = harness.chat(user_id=370001)
    await fresh_press(chat, "Сменить карту")
    reply = await fresh_press(chat, "•• 4242")
    assert "снова включён" in reply.text, reply.text


async def test_a_refute_with_an_album_then_every_step_works(harness: Harness) -> None:
    chat = await answered_with_photo(harness, 0)
    await fresh_press(chat, "Не устранено")
    await chat.send("Яма осталась")
    await chat.send_album([photo(10), photo(90)])
    await chat.send_location(*ARBAT_10)  # not what is asked: the hint, the window again
    labels = list(chat.buttons)
    assert labels, chat.last_text
    await harness.restart()
    chat = harness.chat(user_id=340001)
    reply = await fresh_press(chat, labels[0])
    assert stale_answers(harness) == 0, reply.text
