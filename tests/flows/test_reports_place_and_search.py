"""«Сообщить о проблеме», the city's shape and the theme search as a resident meets them:
Zelenograd is Moscow, Khimki is not (the nearest Moscow address is offered), a typo finds
the theme, and a search that finds nothing offers the groups, never the previous list."""

from __future__ import annotations

from sandbox.conversation import Conversation
from tests.flows.conftest import Harness

ZELENOGRAD = (55.9825, 37.1814)
KHIMKI = (55.8970, 37.4297)
SAINT_PETERSBURG = (59.93, 30.31)


async def start_lamp(harness: Harness) -> Conversation:
    chat = harness.chat()
    await harness.link(chat, "demo-full")
    await chat.press("Сообщить о проблеме")
    await chat.send("фанарь")  # a typo
    assert len(chat.buttons) >= 3
    await chat.press("Не горит фонарь")
    assert "Где это?" in chat.last_text
    return chat


async def saved_place(chat: Conversation) -> str:
    """The draft as the resident sees it on coming back (its «Место:» line)."""
    await chat.send("/start")
    await chat.press("Сообщить о проблеме")
    assert "У вас есть неотправленное обращение" in chat.last_text
    return next(line for line in chat.last_text.splitlines() if line.startswith("Место:"))


async def test_zelenograd_is_in_the_city(harness: Harness) -> None:
    chat = await start_lamp(harness)
    await chat.send_location(*ZELENOGRAD)
    assert "Пришлите фото" in chat.last_text
    assert "г. Зеленоград, корп. 1106" in await saved_place(chat)  # named by the gazetteer


async def test_khimki_is_refused_with_the_nearest_moscow_address(harness: Harness) -> None:
    chat = await start_lamp(harness)
    reply = await chat.send_location(*KHIMKI)
    assert any("за пределами города" in t and "ул. Дыбенко, 7" in t for t in reply.texts)
    assert "ул. Дыбенко, 7" in chat.buttons and "Другой адрес" in chat.buttons
    await chat.press("ул. Дыбенко, 7")
    assert "Пришлите фото" in chat.last_text
    assert "Место: ул. Дыбенко, 7" in await saved_place(chat)


async def test_khimki_refused_then_another_place(harness: Harness) -> None:
    chat = await start_lamp(harness)
    await chat.send_location(*KHIMKI)
    await chat.press("Другой адрес")
    assert "Где это?" in chat.last_text
    reply = await chat.send_location(*SAINT_PETERSBURG)  # nothing in Moscow within 5 km
    assert "за пределами города" in reply.text and "Ближайший" not in reply.text
    await chat.send("Арбат 10")
    await chat.press("ул. Арбат, 10")
    assert "Пришлите фото" in chat.last_text


async def test_not_found_offers_the_groups_not_a_stale_list(harness: Harness) -> None:
    chat = harness.chat()
    await harness.link(chat, "demo-full")
    await chat.press("Сообщить о проблеме")
    await chat.send("ямы на дороге")
    assert "Яма на дороге" in chat.buttons and len(chat.buttons) <= 3 + 2
    reply = await chat.send("qwertyuiop")
    assert any("Не нашёл такой темы" in t for t in reply.texts)
    assert "Разделы" in chat.last_text
    assert "Яма на дороге" not in chat.buttons  # not the previous search's list
    assert "Дороги" in chat.buttons and "Освещение" in chat.buttons
    await chat.send("не горят фонари")  # the groups window takes another search
    assert chat.buttons[0] == "Не горит фонарь"
    await chat.press("Не горит фонарь")
    assert "Где это?" in chat.last_text
