"""Long and hostile report input: a description of 5,000 characters with `&`, `<` and emoji;
a typed address with markup characters (found by a reviewer breaking the work)."""

from __future__ import annotations

from tests.flows.conftest import Harness
from tests.flows.test_hostile_input import no_crash
from tests.flows.test_hostile_text import assert_clean
from tests.flows.test_reports import ARBAT_10, photo, start_pothole

LONG = ("Яма & <глубокая> 😀 «²» " * 300)[:2000]


async def test_long_description_review_send_and_card(harness: Harness) -> None:
    chat = await start_pothole(harness)
    await chat.send_venue(*ARBAT_10, title="Дом & <1>", address="Арбат & <10>")
    await chat.send_photo(photo())
    await chat.press("Дальше")
    reply = await chat.send(LONG)
    no_crash(reply)
    assert_clean(chat)
    sent = await chat.press("Отправить")
    no_crash(sent)
    assert "№ " in sent.text, sent.text[:300]
    number = sent.text.split("№ ")[1].split()[0]
    await chat.send("/start")
    await chat.press("Мои обращения")
    await chat.press(number[-6:])
    assert "Обращение № " in chat.last_text
    assert_clean(chat)


async def test_typed_address_with_markup(harness: Harness) -> None:
    chat = await start_pothole(harness)
    reply = await chat.send("Тверская & <b>1</b> " + "х" * 4000)
    no_crash(reply)
    assert_clean(chat)
