"""«Наш город»: the questions a theme's Open311 service definition asks (lists as buttons,
numbers and text typed), sent as `attribute[code]`; the review refuses to send without a
required answer; answers survive a restart; a POST whose answer was lost makes one report;
the platform's English refusals reach the resident in Russian; a too long typed address is
refused at the place step."""

from __future__ import annotations

from typing import Any

import pytest

from domain.errors import ReportRefused
from sandbox.conversation import Conversation, Reply
from sandbox.open311_api import REQUESTS_KEY
from sandbox.telegram_double import ChatMessage
from tests.flows.conftest import STALE, Harness
from tests.flows.test_reports import ARBAT_10, photo, start_pothole


async def start(harness: Harness, words: str, theme: str) -> Conversation:
    chat = harness.chat()
    await harness.link(chat)
    await chat.press("Сообщить о проблеме")
    await chat.send(words)
    await chat.press(theme)
    assert "Где это?" in chat.last_text
    await chat.send_location(*ARBAT_10)
    return chat


def stored(harness: Harness, number: str) -> dict[str, tuple[str, ...]]:
    """The attributes the platform stored for this request."""
    request = harness.sandbox.app[REQUESTS_KEY].get(number)
    assert request is not None
    return dict(request.submission.attributes)


def number_of(text: str) -> str:
    assert "✅ Обращение № NG-" in text, text
    return text.split("№ ")[1].split()[0]


async def send(chat: Conversation) -> str:
    """«Отправить», and «Отправить своё» when a seeded report nearby is offered instead."""
    reply = await chat.press("Отправить")
    if "Рядом уже есть открытое обращение" in reply.text:
        reply = await chat.press("Отправить своё")
    return reply.text


async def press_stale(chat: Conversation, snapshot: ChatMessage, text: str) -> Reply:
    """Press a button of an older message whose keyboard the bot has since removed."""
    button = next(b for b in snapshot.buttons if b.text == text)
    query_id = f"{chat.chat_id}-stale"
    chat.telegram.open_callback_query(query_id)
    query = {
        "id": query_id,
        "from": dict(chat.user),
        "message": dict(snapshot.payload),
        "chat_instance": f"local-{chat.chat_id}",
        "data": button.callback_data,
    }
    return await chat.feed({"callback_query": query})


def reports_at_platform(harness: Harness) -> int:
    return len(harness.sandbox.app[REQUESTS_KEY].all())


async def test_a_lift_asks_the_entrance_and_sends_it(harness: Harness) -> None:
    chat = await start(harness, "лифт", "Не работает лифт")
    await chat.press("Пропустить")  # photos
    await chat.press("Пропустить")  # description
    question = chat.last_text
    assert "Номер подъезда" in question and "звоните 112" in question
    assert "Пропустить" not in chat.buttons  # required: no way around
    reply = await chat.send("٣")  # an Arabic-Indic three
    assert "обычными цифрами 0–9" in reply.text
    reply = await chat.send("третий")
    assert "нужно число цифрами" in reply.text
    await chat.send("3")
    review = chat.last_text  # the optional floor is offered at the review, not asked
    assert "Номер подъезда: 3" in review and "Можно уточнить: Этаж" in review
    await chat.press("Ответы на вопросы")
    assert "Сейчас: 3" in chat.last_text
    await chat.press("Оставить как есть")
    assert "Этаж" in chat.last_text and "Пропустить" in chat.buttons
    reply = await chat.send("5-й")
    assert "нужно число цифрами" in reply.text
    await chat.send("5")
    assert "Этаж, где лифт не работает: 5" in chat.last_text
    number = number_of(await send(chat))
    assert stored(harness, number) == {"entrance": ("3",), "floor": ("5",)}


async def test_a_street_light_asks_a_list_and_a_lamp_post_number(harness: Harness) -> None:
    chat = await start(harness, "фонарь", "Не горит фонарь")
    await chat.press("Пропустить")
    await chat.press("Пропустить")
    assert "Сколько фонарей не горит" in chat.last_text
    reply = await chat.send("много")
    assert "Выберите вариант кнопкой" in reply.text
    await chat.press("Несколько")
    assert "Можно уточнить: Номер опоры освещения" in chat.last_text
    await chat.press("Ответы на вопросы")
    await chat.press("Оставить как есть")
    assert "Номер опоры освещения" in chat.last_text
    await chat.send("12-345")
    review = chat.last_text
    assert "Сколько фонарей не горит: Несколько" in review
    assert "Номер опоры освещения: 12-345" in review
    number = number_of(await send(chat))
    assert stored(harness, number) == {"lamp_count": ("several",), "pole_number": ("12-345",)}


async def test_a_playground_takes_several_elements(harness: Harness) -> None:
    chat = await start(harness, "детская площадка", "Повреждена детская площадка")
    await chat.send_photo(photo())
    await chat.press("Дальше")
    await chat.press("Пропустить")
    assert "Что повреждено" in chat.last_text
    assert "Готово" not in chat.buttons  # required: at least one
    await chat.press("Горка")
    await chat.press("Качели")
    assert "✅ Качели" in chat.buttons and "✅ Горка" in chat.buttons
    await chat.press("Готово")
    assert "Что повреждено: Качели, Горка" in chat.last_text
    number = number_of(await send(chat))
    assert stored(harness, number) == {"elements": ("swing", "slide")}


async def test_the_review_refuses_to_send_without_a_required_answer(harness: Harness) -> None:
    chat = await start_pothole(harness)
    await chat.send_location(*ARBAT_10)
    await chat.press("Пропустить")
    await chat.press("Пропустить")
    assert "Можно уточнить: Размер ямы" in chat.last_text  # optional ones: only offered
    assert "Отправить" in chat.buttons
    old_review = chat.last_message
    assert old_review is not None
    await chat.press("Тема")
    await chat.send("лифт")
    await chat.press("Не работает лифт")
    review = chat.last_text
    assert "Нужен ответ: Номер подъезда" in review
    assert "Отправить" not in chat.buttons
    before = reports_at_platform(harness)
    reply = await press_stale(chat, old_review, "Отправить")
    assert reports_at_platform(harness) == before
    # Refused as a stale screen (review 33b) before the send's own check could refuse it.
    assert [a.text for a in reply.callback_answers] == [STALE]
    assert chat.last_text == review
    await chat.press("✏️ Ответы на вопросы")
    assert "Номер подъезда" in chat.last_text
    await chat.send("2")
    for _ in range(5):  # the optional ones after it
        if "Пропустить" not in chat.buttons:
            break
        await chat.press("Пропустить")
    assert "Номер подъезда: 2" in chat.last_text
    number = number_of(await send(chat))
    assert stored(harness, number) == {"entrance": ("2",)}


async def test_answers_survive_a_restart(harness: Harness) -> None:
    chat = await start(harness, "лифт", "Не работает лифт")
    await chat.press("Пропустить")
    await chat.press("Пропустить")
    await chat.send("4")
    await chat.press("Ответы на вопросы")
    await chat.press("Оставить как есть")
    assert "Этаж" in chat.last_text
    await harness.restart()
    chat = harness.chat()
    await chat.send("/start")
    await chat.press("Сообщить о проблеме")
    assert "Номер подъезда: 4" in chat.last_text
    await chat.press("Продолжить")
    assert "Этаж" in chat.last_text  # where the resident stopped
    await chat.send("7")
    assert "Этаж, где лифт не работает: 7" in chat.last_text
    number = number_of(await send(chat))
    assert stored(harness, number) == {"entrance": ("4",), "floor": ("7",)}


async def _at_lift_review(harness: Harness) -> Conversation:
    chat = await start(harness, "лифт", "Не работает лифт")
    await chat.press("Пропустить")
    await chat.press("Пропустить")
    await chat.send("1")
    assert "Отправить" in chat.buttons
    return chat


async def test_a_lost_answer_to_the_post_makes_one_report(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat = await _at_lift_review(harness)
    assert harness.app is not None
    real_create = harness.app.city.create_report

    async def lose_the_answer(*args: Any, **kwargs: Any) -> Any:
        await harness.sandbox_call("PUT", "/sandbox/faults", json={"fail_after_processing": 1})
        return await real_create(*args, **kwargs)

    monkeypatch.setattr(harness.app.city, "create_report", lose_the_answer)
    before = reports_at_platform(harness)
    number = number_of(await send(chat))
    assert reports_at_platform(harness) == before + 1
    assert stored(harness, number) == {"entrance": ("1",)}


async def test_sending_again_after_no_answer_makes_one_report(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat = await _at_lift_review(harness)
    assert harness.app is not None
    real_create = harness.app.city.create_report

    async def lose_every_answer(*args: Any, **kwargs: Any) -> Any:
        await harness.sandbox_call("PUT", "/sandbox/faults", json={"fail_after_processing": 5})
        return await real_create(*args, **kwargs)

    monkeypatch.setattr(harness.app.city, "create_report", lose_every_answer)
    before = reports_at_platform(harness)
    text = await send(chat)
    assert "✅" not in text
    assert reports_at_platform(harness) == before + 1  # made, but the bot never heard
    monkeypatch.setattr(harness.app.city, "create_report", real_create)
    await harness.sandbox_call("PUT", "/sandbox/faults", json={})
    await chat.send("/start")
    await chat.press("Сообщить о проблеме")
    await chat.press("Продолжить")
    number = number_of(await send(chat))
    assert reports_at_platform(harness) == before + 1  # the same key: the same report
    assert stored(harness, number) == {"entrance": ("1",)}


async def test_an_english_refusal_is_told_in_russian(harness: Harness) -> None:
    chat = await start_pothole(harness)
    await chat.send_location(*ARBAT_10)
    await chat.send_photo(b"GIF89a: not a JPEG at all")
    await chat.press("Дальше")
    await chat.press("Пропустить")
    text = await send(chat)
    assert "подходят только снимки в формате JPEG или PNG" in text
    assert "media must" not in text


async def test_an_unknown_english_refusal_is_a_russian_sentence(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat = await _at_lift_review(harness)
    assert harness.app is not None

    async def refuse(*_args: Any, **_kwargs: Any) -> str:
        raise ReportRefused("the moon is in the wrong phase", ("other",))

    monkeypatch.setattr(harness.app.city, "create_report", refuse)
    text = await send(chat)
    assert "Город не принял обращение. Проверьте его" in text
    assert "moon" not in text


async def test_a_too_long_typed_address_is_refused_at_the_step(harness: Harness) -> None:
    chat = await start_pothole(harness)
    address = ("Тверская улица, дом 7, " + "очень " * 38).strip()
    assert len(address) == 250
    reply = await chat.send(address)
    assert "слишком длинно для адреса: 250 знаков, а нужно не больше 200" in reply.text
    assert "Город не принял" not in reply.text
    await chat.send_location(*ARBAT_10)  # still at the place step
    assert "Пришлите фото" in chat.last_text
