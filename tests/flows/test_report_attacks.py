"""«Наш город» attacked as a resident or an attacker would (found by a reviewer breaking the
work): resends, forged keys, junk answers, theme changes, restarts, confirmations."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sandbox.conversation import Conversation, Reply
from tests.flows.conftest import Harness
from tests.flows.test_hostile_input import forge, forged_item
from tests.flows.test_my_reports_all import linked, my_reports_list, seeded
from tests.flows.test_report_questions import (
    number_of,
    reports_at_platform,
    send,
    start,
    stored,
)
from tests.flows.test_reports import photo


async def press_forged(chat: Conversation, text: str, item: str) -> Reply:
    """Press the button `text` with its Select item replaced by `item`."""
    return await forge(chat, forged_item(chat, text, item))


async def lamp_question(harness: Harness) -> Conversation:
    chat = await start(harness, "фонарь", "Не горит фонарь")
    await chat.press("Пропустить")
    await chat.press("Пропустить")
    assert "Сколько фонарей не горит" in chat.last_text
    return chat


# --- (6) idempotency: the resident presses «Отправить» again after a lost answer -------------


async def test_resend_after_a_lost_answer_with_a_photo_makes_one_report(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: the photos are uploaded again on every «Отправить», their new media_url
    changes the form, so the same Idempotence-Key is refused (422 key reused) although the
    resident changed nothing; the next press then makes a SECOND report."""
    chat = await start(harness, "лифт", "Не работает лифт")
    await chat.send_photo(photo())
    await chat.press("Дальше")
    await chat.press("Пропустить")
    await chat.send("1")
    assert "Отправить" in chat.buttons
    assert harness.app is not None
    real_create = harness.app.city.create_report

    async def lose_every_answer(*args: Any, **kwargs: Any) -> Any:
        await harness.sandbox_call("PUT", "/sandbox/faults", json={"fail_after_processing": 5})
        return await real_create(*args, **kwargs)

    monkeypatch.setattr(harness.app.city, "create_report", lose_every_answer)
    before = reports_at_platform(harness)
    text = await send(chat)
    assert "✅" not in text
    assert reports_at_platform(harness) == before + 1
    monkeypatch.setattr(harness.app.city, "create_report", real_create)
    await harness.sandbox_call("PUT", "/sandbox/faults", json={})
    await chat.send("/start")
    await chat.press("Сообщить о проблеме")
    await chat.press("Продолжить")
    text = await send(chat)
    if "✅" not in text:  # told «Возможно, обращение уже ушло…; отправьте ещё раз»: does so
        await chat.send("/start")
        await chat.press("Сообщить о проблеме")
        await chat.press("Продолжить")
        text += "\n---\n" + await send(chat)
    assert reports_at_platform(harness) == before + 1, text  # one report, not two


async def test_double_tap_send_makes_one_report(harness: Harness) -> None:
    chat = await lamp_question(harness)
    await chat.press("Несколько")
    before = reports_at_platform(harness)
    await asyncio.gather(chat.press("Отправить"), chat.press("Отправить"))
    if "Отправить своё" in chat.buttons:
        await chat.press("Отправить своё")
    assert reports_at_platform(harness) == before + 1


# --- (1) the questions ------------------------------------------------------------------------


async def test_forged_choice_keys_change_nothing(harness: Harness) -> None:
    chat = await lamp_question(harness)
    for item in ("nonexistent", "x" * 60, "several'--", ""):
        await press_forged(chat, "Несколько", item)
        assert "Сколько фонарей не горит" in chat.last_text
        assert "Отправить" not in chat.buttons
    await chat.press("Несколько")
    assert "Сколько фонарей не горит: Несколько" in chat.last_text


@pytest.mark.parametrize("typed", ["1e5", "²", "1" * 5000, "<b>3</b>", "3 4", "+3", "0x10"])
async def test_number_attribute_refuses_junk(harness: Harness, typed: str) -> None:
    chat = await start(harness, "лифт", "Не работает лифт")
    await chat.press("Пропустить")
    await chat.press("Пропустить")
    await chat.send(typed)
    assert "Номер подъезда" in chat.last_text
    assert "Отправить" not in chat.buttons


async def test_string_attribute_with_html_and_ampersand(harness: Harness) -> None:
    chat = await lamp_question(harness)
    await chat.press("Несколько")
    await chat.press("Ответы на вопросы")
    await chat.press("Оставить как есть")
    await chat.send('<a href="http://evil">x</a> & 12')
    review = chat.last_text
    assert "evil" in review and "& 12" in review
    number = number_of(await send(chat))
    pole = stored(harness, number)["pole_number"][0]
    assert "<" not in pole and ">" not in pole


async def test_a_too_long_string_attribute_is_refused(harness: Harness) -> None:
    chat = await lamp_question(harness)
    await chat.press("Несколько")
    await chat.press("Ответы на вопросы")
    await chat.press("Оставить как есть")
    reply = await chat.send("9" * 4000)
    assert "не больше 255" in reply.text or "255" in reply.text, reply.text


async def test_typing_at_a_list_question_asks_for_buttons(harness: Harness) -> None:
    chat = await lamp_question(harness)
    reply = await chat.send("Несколько")
    assert "Выберите вариант кнопкой" in reply.text


async def test_answers_of_the_old_theme_are_not_sent(harness: Harness) -> None:
    chat = await lamp_question(harness)
    await chat.press("Несколько")
    await chat.press("Тема")
    await chat.send("яма")
    await chat.press("Яма на дороге")
    review = chat.last_text
    assert "Сколько фонарей" not in review
    number = number_of(await send(chat))
    assert "lamp_count" not in stored(harness, number)


async def test_restart_in_the_middle_of_a_multivalue_question(harness: Harness) -> None:
    chat = await start(harness, "детская площадка", "Повреждена детская площадка")
    await chat.send_photo(photo())
    await chat.press("Дальше")
    await chat.press("Пропустить")
    await chat.press("Горка")
    await harness.restart()
    chat = harness.chat()
    await chat.send("/start")
    await chat.press("Сообщить о проблеме")
    await chat.press("Продолжить")
    assert "Что повреждено" in chat.last_text
    assert "✅ Горка" in chat.buttons
    await chat.press("Готово")
    number = number_of(await send(chat))
    assert stored(harness, number) == {"elements": ("slide",)}


# --- (3) confirming ---------------------------------------------------------------------------


async def test_confirm_with_a_lost_answer_tells_the_points(harness: Harness) -> None:
    """Was: the confirmation went through (50 points credited) but the answer was
    lost; the resident reads «Сервис города временно недоступен. Ничего не потеряно —
    попробуйте ещё раз», the card shows it closed, and the points are never told."""
    answered = (await seeded(harness))["000108"]
    chat = await linked(harness)
    await my_reports_list(chat)
    await chat.press(answered)
    assert harness.app is not None
    real_confirm = harness.app.city.confirm_report

    async def lose_the_answer(*args: Any, **kwargs: Any) -> Any:
        await harness.sandbox_call("PUT", "/sandbox/faults", json={"fail_after_processing": 1})
        return await real_confirm(*args, **kwargs)

    harness.app.city.confirm_report = lose_the_answer  # type: ignore[method-assign]
    first = await chat.press("Подтвердить")
    harness.app.city.confirm_report = real_confirm  # type: ignore[method-assign]
    await harness.sandbox_call("PUT", "/sandbox/faults", json={})
    texts = [first.text]
    if "✅ Подтвердить" in chat.buttons:
        texts.append((await chat.press("Подтвердить")).text)
    joined = "\n".join(texts)
    assert "Срок подтверждения истёк" not in joined, joined
    assert "Спасибо" in joined or "подтвержд" in joined.lower(), joined


async def test_confirm_from_card_then_notification_credits_once(harness: Harness) -> None:
    """Was: confirmed on the card (50 points), then «Подтвердить» of the notification
    answers «Срок подтверждения истёк: оценить ответ можно в течение 15 дней» — wrong: it
    was just confirmed (points are credited once: that part holds)."""
    from tests.flows.test_my_reports_all import tick
    from tests.flows.test_reports import advance

    in_work = (await seeded(harness))["000109"]
    chat = await linked(harness)
    await tick(harness)
    await advance(harness, in_work, to="answered", status_notes="Вывезли")
    await tick(harness)
    await tick(harness)
    notification = chat.last_message
    assert notification is not None and "✅ Подтвердить" in chat.buttons
    await my_reports_list(chat)
    await chat.press(in_work)
    reply = await chat.press("Подтвердить")
    assert "Начислено 50 баллов" in reply.text
    reply = await chat.press("Подтвердить", message_id=notification.message_id)
    assert "Начислено" not in reply.text, reply.text
    assert "Срок подтверждения истёк" not in reply.text, reply.text


async def test_a_forged_report_id_of_another_account(harness: Harness) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as http:  # another account's answered-to-be report
        form = {
            "api_key": "sandbox-open311-key",
            "service_code": "road-01",
            "address_id": "MSK-0006",
            "account_id": "C-100002",
            "description": "ЧУЖОЕ обращение",
        }
        async with http.post(f"{harness.sandbox.url}/open311/v2/requests.json", data=form) as a:
            assert a.status == 201
            victim = (await a.json())[0]["service_request_id"]
    chat = await linked(harness)  # demo-full
    await my_reports_list(chat)
    mine = next(t for t in chat.buttons if t.startswith("№ "))
    reply = await press_forged(chat, mine, victim)
    assert "ЧУЖОЕ" not in chat.last_text and "ЧУЖОЕ" not in reply.text
    assert "Подтвердить" not in chat.buttons
    for item in ("x" * 60, "../../services", "NG-2026-%2e%2e", ""):
        await press_forged(chat, mine, item) if "№ " in " ".join(chat.buttons) else None


async def test_the_platforms_confirmation_note_is_not_the_residents_comment(
    harness: Harness,
) -> None:
    """Was: after «Подтвердить» the card says «Ваш комментарий: Житель подтвердил,
    что проблема решена» — the platform's third-person note is labelled as the resident's
    own words (by_author is set on confirm as on refute)."""
    answered = (await seeded(harness))["000108"]
    chat = await linked(harness)
    await my_reports_list(chat)
    await chat.press(answered)
    await chat.press("Подтвердить")
    await my_reports_list(chat)
    await chat.press(answered)
    assert "Ваш комментарий: Житель подтвердил" not in chat.last_text, chat.last_text
