"""Places and theme search at their edges (found by a reviewer breaking the work)."""

from __future__ import annotations

import pytest

from tests.flows.conftest import Harness
from tests.flows.test_report_questions import press_stale
from tests.flows.test_reports_place_and_search import KHIMKI, start_lamp

KOMMUNARKA = (55.56, 37.48)
ZELENOGRAD = (55.9825, 37.1814)
MYTISHCHI = (55.9116, 37.7308)


async def test_new_moscow_kommunarka_is_in_the_city(harness: Harness) -> None:
    chat = await start_lamp(harness)
    await chat.send_location(*KOMMUNARKA)
    assert "Пришлите фото" in chat.last_text, chat.last_text


async def test_mytishchi_is_refused(harness: Harness) -> None:
    chat = await start_lamp(harness)
    reply = await chat.send_location(*MYTISHCHI)
    assert any("за пределами города" in t for t in reply.texts), reply.texts


@pytest.mark.parametrize(
    "point", [(0.0, 0.0), (91.0, 37.6), (55.75, 181.0), (-90.0, -180.0), (float("nan"), 37.6)]
)
async def test_absurd_points_are_refused_calmly(
    harness: Harness, point: tuple[float, float]
) -> None:
    """For lat 91, long 181, NaN: answered
    «Сервис города временно недоступен» — the gazetteer 4xx on /geo/reverse becomes
    CityUnavailable (city/client.py nearest_address)."""
    chat = await start_lamp(harness)
    reply = await chat.send_location(*point)
    assert any("за пределами города" in t for t in reply.texts), reply.texts
    assert "Пришлите фото" not in chat.last_text


async def test_suggestion_pressed_twice(harness: Harness) -> None:
    chat = await start_lamp(harness)
    await chat.send_location(*KHIMKI)
    offer = chat.last_message
    assert offer is not None
    await chat.press("ул. Дыбенко, 7")
    assert "Пришлите фото" in chat.last_text
    reply = await press_stale(chat, offer, "ул. Дыбенко, 7")
    assert "Ошибка" not in reply.text and "Что-то пошло не так" not in reply.text, reply.texts
    print("TWICE:", reply.texts, chat.last_text[:200])


async def test_suggestion_after_the_draft_was_discarded(harness: Harness) -> None:
    chat = await start_lamp(harness)
    await chat.send_location(*KHIMKI)
    offer = chat.last_message
    assert offer is not None
    await chat.send("/start")
    await chat.press("Сообщить о проблеме")
    if "Начать заново" in " ".join(chat.buttons):
        await chat.press("Начать заново")
    reply = await press_stale(chat, offer, "ул. Дыбенко, 7")
    assert "Что-то пошло не так" not in reply.text, reply.texts
    print("DISCARDED:", reply.texts, chat.last_text[:300])


@pytest.mark.parametrize(
    "query",
    ["", " ", "а" * 4000, "🕳️🚧💡", "1234567", "'; DROP TABLE themes; --", "ам ам ам ам " * 300],
)
async def test_theme_search_junk(harness: Harness, query: str) -> None:
    chat = harness.chat()
    await harness.link(chat, "demo-full")
    await chat.press("Сообщить о проблеме")
    reply = await chat.send(query or "\u200b")
    assert "Что-то пошло не так" not in reply.text, reply.texts
    assert len(chat.buttons) <= 3 + 2 or "Разделы" in chat.last_text, chat.buttons
