"""«Наш город» as a resident uses it: theme → place → photos → description → review → number;
bad input answered and nothing lost; drafts across restarts; the duplicate hint; status updates
exactly once; confirm and refute while the window is open."""

from __future__ import annotations

import asyncio
import io
from datetime import timedelta
from typing import Any

import aiohttp
from PIL import Image

from bot.jobs import deliver_notifications, poll_reports
from bot.ratelimit import MemoryLimiter
from sandbox.conversation import Conversation
from tests.flows.conftest import Harness

TVERSKAYA_7 = (55.7577, 37.6107)  # the sandbox's seed: an open pothole report is here
ARBAT_10 = (55.7513, 37.5970)
SAINT_PETERSBURG = (59.93, 30.31)


def photo(shade: int = 120) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), (shade, 90, 60)).save(buffer, format="JPEG")
    return buffer.getvalue()


async def open311(harness: Harness, path: str) -> Any:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{harness.sandbox.url}/open311/v2/{path}") as answer:
            assert answer.status == 200, await answer.text()
            return await answer.json()


async def start_pothole(harness: Harness, login: str = "demo-full") -> Conversation:
    chat = harness.chat()
    await harness.link(chat, login)
    await chat.press("Сообщить о проблеме")
    assert "Что случилось?" in chat.last_text
    await chat.send("яма на дороге")
    await chat.press("Яма на дороге")
    assert "Где это?" in chat.last_text
    return chat


async def test_a_whole_report_from_a_location(harness: Harness) -> None:
    chat = await start_pothole(harness)
    await chat.send_location(*ARBAT_10)
    assert "Пришлите фото" in chat.last_text
    reply = await chat.send_photo(photo())
    assert "Фото добавлено: 1 из 5" in reply.text
    await chat.press("Дальше")
    await chat.send("Глубокая яма посреди пешеходной зоны")
    review = chat.last_text
    assert "Тема: Яма на дороге" in review and "ул. Арбат, 10" in review and "Фото: 1" in review
    reply = await chat.press("Отправить")
    assert "✅ Обращение № NG-" in reply.text and "Город ответит до" in reply.text
    number = reply.text.split("№ ")[1].split()[0]
    [request] = await open311(harness, f"requests/{number}.json")
    assert abs(request["lat"] - ARBAT_10[0]) < 1e-4 and abs(request["long"] - ARBAT_10[1]) < 1e-4
    assert len(request["media_urls"]) == 1 and request["account_id"] == "C-100003"
    assert request["description"] == "Глубокая яма посреди пешеходной зоны"


async def test_a_typed_address_and_an_album_of_three(harness: Harness) -> None:
    chat = await start_pothole(harness)
    assert "Не нашёл такой адрес" in (await chat.send("улица Несуществующая, 999")).text
    await chat.send("Арбат 10")
    await chat.press("ул. Арбат, 10")
    reply = await chat.send_album([photo(10), photo(80), photo(160)])
    assert "Фото добавлено: 3 из 5" in reply.text
    assert sum("Фото добавлено" in t for t in reply.texts) == 1  # one answer for the album
    await chat.press("Дальше")
    await chat.press("Пропустить")
    reply = await chat.press("Отправить")
    number = reply.text.split("№ ")[1].split()[0]
    [request] = await open311(harness, f"requests/{number}.json")
    assert len(request["media_urls"]) == 3
    assert abs(request["lat"] - ARBAT_10[0]) < 1e-3


async def test_bad_input_is_answered_and_nothing_is_lost(harness: Harness) -> None:
    chat = await start_pothole(harness)
    assert "за пределами города" in (await chat.send_location(*SAINT_PETERSBURG)).text
    assert "Нужна точка на карте" in (await chat.send_video(b"not really a video")).text
    await chat.send_location(*ARBAT_10)
    reply = await chat.send_document(photo(), "photo.jpg", "image/jpeg")
    assert "как фото, а не файлом" in reply.text
    assert "Видео «Наш город» не принимает" in (await chat.send_video(b"video")).text
    await chat.send_album([photo(n) for n in (10, 40, 70, 100, 130)])
    reply = await chat.send_photo(photo(200))
    assert "не больше 5 фото" in reply.text
    await chat.press("Дальше")
    reply = await chat.send("я" * 2001)
    assert "длиннее 2000 знаков" in reply.text
    await chat.send("Короче: яма")
    review = chat.last_text
    assert "Фото: 5" in review and "ул. Арбат, 10" in review and "Описание: Короче: яма" in review


async def test_a_draft_survives_a_restart(any_state_harness: Harness) -> None:
    harness = any_state_harness
    chat = await start_pothole(harness)
    await chat.send_location(*ARBAT_10)
    await harness.restart()
    chat = harness.chat()
    await chat.send("/start")
    await chat.press("Сообщить о проблеме")
    assert "У вас есть неотправленное обращение" in chat.last_text
    assert "Яма на дороге" in chat.last_text and "ул. Арбат, 10" in chat.last_text
    await chat.press("Продолжить")
    assert "Пришлите фото" in chat.last_text


async def test_a_draft_can_be_discarded(harness: Harness) -> None:
    chat = await start_pothole(harness)
    await chat.send_location(*ARBAT_10)
    await chat.send("/start")
    await chat.press("Сообщить о проблеме")
    await chat.press("Удалить черновик")
    assert "Что случилось?" in chat.last_text


async def test_the_duplicate_hint(harness: Harness) -> None:
    chat = await start_pothole(harness)
    await chat.send_location(*TVERSKAYA_7)
    await chat.press("Пропустить")
    await chat.press("Пропустить")
    reply = await chat.press("Отправить")
    assert "Рядом уже есть открытое обращение № NG-" in reply.text
    assert "000101" in reply.text  # the open one here, not the closed one or the one 100 m away
    await chat.press("Следить за этим обращением")
    assert "вы следите за обращением" in chat.last_text


async def test_no_hint_for_closed_or_distant_reports(harness: Harness) -> None:
    chat = await start_pothole(harness)
    year = (await open311(harness, "requests.json?status=open"))[0]["service_request_id"][3:7]
    async with aiohttp.ClientSession() as http:  # the open one at Тверская, 7 gets closed
        url = f"{harness.sandbox.url}/sandbox/open311/requests/NG-{year}-000101/advance"
        async with http.post(url, json={"to": "closed"}) as answer:
            assert answer.status == 200, await answer.text()
    await chat.send_location(*TVERSKAYA_7)
    await chat.press("Пропустить")
    await chat.press("Пропустить")
    reply = await chat.press("Отправить")
    assert "✅ Обращение № NG-" in reply.text  # sent: nothing open within 50 m


async def sent_report(harness: Harness) -> tuple[Conversation, str]:
    chat = await start_pothole(harness)
    await chat.send_location(*ARBAT_10)
    await chat.press("Пропустить")
    await chat.press("Пропустить")
    reply = await chat.press("Отправить")
    return chat, reply.text.split("№ ")[1].split()[0]


async def advance(harness: Harness, number: str, **body: Any) -> None:
    async with aiohttp.ClientSession() as http:
        url = f"{harness.sandbox.url}/sandbox/open311/requests/{number}/advance"
        async with http.post(url, json=body) as answer:
            assert answer.status == 200, await answer.text()


async def test_each_status_change_is_told_exactly_once(harness: Harness) -> None:
    chat, number = await sent_report(harness)
    assert harness.app is not None
    await advance(harness, number, to="in_work")
    await asyncio.gather(
        poll_reports(harness.app, harness.clock), poll_reports(harness.app, harness.clock)
    )
    await poll_reports(harness.app, harness.clock)
    await asyncio.gather(
        deliver_notifications(harness.app, harness.clock, MemoryLimiter()),
        deliver_notifications(harness.app, harness.clock, MemoryLimiter()),
    )
    await deliver_notifications(harness.app, harness.clock, MemoryLimiter())
    told = [t for t in chat.history if t.startswith(f"Обращение № {number} «")]
    assert len(told) == 1 and "в работе" in told[0]

    await advance(harness, number, to="answered", status_notes="Яму заделали")
    await poll_reports(harness.app, harness.clock)
    await deliver_notifications(harness.app, harness.clock, MemoryLimiter())
    told = [t for t in chat.history if t.startswith(f"Обращение № {number} «")]
    assert len(told) == 2 and "Яму заделали" in told[1]
    assert chat.buttons == ["✅ Подтвердить", "❌ Не устранено"]
    reply = await chat.press("Подтвердить")
    assert "Спасибо, что подтвердили" in reply.text
    [request] = await open311(harness, f"requests/{number}.json")
    assert request["status"] == "closed" and request["extended_status"] == "closed"


async def test_not_fixed_goes_back_to_work(harness: Harness) -> None:
    chat, number = await sent_report(harness)
    assert harness.app is not None
    await advance(harness, number, to="answered", status_notes="Выполнено")
    await poll_reports(harness.app, harness.clock)
    await deliver_notifications(harness.app, harness.clock, MemoryLimiter())
    await chat.press("Не устранено")
    assert "Что не так?" in chat.last_text
    await chat.send("Яма на месте")
    assert "Добавьте фото" in chat.last_text
    reply = await chat.send_photo(photo(30))
    assert "вернули в работу" in reply.text
    [request] = await open311(harness, f"requests/{number}.json")
    assert request["extended_status"] == "returned"
    updates = await open311(harness, f"requests/{number}/updates.json")
    assert updates[-1]["description"].startswith("Яма на месте")


async def test_after_fifteen_days_the_buttons_are_gone(harness: Harness) -> None:
    chat, number = await sent_report(harness)
    assert harness.app is not None
    await advance(harness, number, to="answered", status_notes="Выполнено")
    await poll_reports(harness.app, harness.clock)
    await deliver_notifications(harness.app, harness.clock, MemoryLimiter())
    later = harness.clock.now + timedelta(days=16)
    harness.clock.now = later
    await harness.sandbox_call("PUT", "/sandbox/clock", json={"now": later.isoformat()})
    reply = await chat.press("Подтвердить")
    assert "Срок подтверждения истёк" in reply.text
    await chat.send("/start")
    await chat.press("Мои обращения")
    await chat.press(number)
    assert "получен ответ" in chat.last_text
    assert "✅ Подтвердить" not in chat.buttons


async def test_two_residents_following_one_report_both_hear_of_its_news(harness: Harness) -> None:
    """The author and a neighbour who chose «Следить за этим обращением» on the duplicate hint
    are each told of every status change: the outbox's key names the resident too."""
    chat, number = await sent_report(harness)
    assert harness.app is not None
    neighbour = harness.chat(200002, "Олег")
    await harness.link(neighbour, "demo-standard")
    await neighbour.press("Сообщить о проблеме")
    await neighbour.send("яма на дороге")
    await neighbour.press("Яма на дороге")
    await neighbour.send_location(*ARBAT_10)
    await neighbour.press("Пропустить")
    await neighbour.press("Пропустить")
    reply = await neighbour.press("Отправить")
    assert number in reply.text
    await neighbour.press("Следить за этим обращением")

    await advance(harness, number, to="in_work")
    await poll_reports(harness.app, harness.clock)
    await deliver_notifications(harness.app, harness.clock, MemoryLimiter())
    for resident in (chat, neighbour):
        told = [t for t in resident.history if t.startswith(f"Обращение № {number} «")]
        assert len(told) == 1 and "в работе" in told[0], resident.history[-3:]
