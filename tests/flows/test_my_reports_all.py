"""«Мои обращения» with every report the city has for the resident's account: the bot's own and
those filed on the site or in the app (also older than the platform's 90-day default window),
newest first and paged; a confirmed fix brings points; «Не устранено» is the resident's own
comment and no news to them."""

from __future__ import annotations

import aiohttp
import pytest

from bot.jobs import deliver_notifications, poll_reports
from bot.ratelimit import MemoryLimiter
from domain import reporting
from domain.reporting import DiscoveryCursor
from sandbox.conversation import Conversation
from tests.flows.conftest import Harness
from tests.flows.test_reports import ARBAT_10, advance, open311, start_pothole

FULL = "C-100003"  # demo-full


async def seeded(harness: Harness) -> dict[str, str]:
    """demo-full's seeded reports filed elsewhere within 90 days: number suffix → id."""
    found = await open311(harness, f"requests.json?account_id={FULL}")
    return {r["service_request_id"][-6:]: r["service_request_id"] for r in found}


async def linked(harness: Harness) -> Conversation:
    chat = harness.chat()
    await harness.link(chat)
    return chat


async def file_in_bot(harness: Harness) -> tuple[Conversation, str]:
    chat = await start_pothole(harness)
    await chat.send_location(*ARBAT_10)
    for _ in range(10):  # photo, description and the theme's questions: all skipped
        if any("Отправить" in text for text in chat.buttons):
            break
        await chat.press("Пропустить")
    reply = await chat.press("Отправить")
    return chat, reply.text.split("№ ")[1].split()[0]


async def my_reports_list(chat: Conversation) -> list[str]:
    await chat.send("/start")
    await chat.press("Мои обращения")
    return [text.split()[1] for text in chat.buttons if text.startswith("№ ")]


async def tick(harness: Harness) -> None:
    assert harness.app is not None
    await poll_reports(harness.app, harness.clock)
    await deliver_notifications(harness.app, harness.clock, MemoryLimiter())


def told_about(chat: Conversation, number: str) -> list[str]:
    return [text for text in chat.history if text.startswith(f"Обращение № {number} «")]


async def test_every_report_of_the_account_newest_first(harness: Harness) -> None:
    chat, number = await file_in_bot(harness)

    numbers = await my_reports_list(chat)

    assert numbers[0] == number  # made in the bot just now
    # filed elsewhere: in work (1 day), answered (5 days), closed 250 days ago
    assert [n[-6:] for n in numbers[1:]] == ["000109", "000108", "000110"]


async def test_a_long_list_is_paged(harness: Harness) -> None:
    chat = await linked(harness)
    async with aiohttp.ClientSession() as http:
        for _ in range(7):
            form = {
                "api_key": "sandbox-open311-key",
                "service_code": "road-01",
                "address_id": "MSK-0006",
                "account_id": FULL,
            }
            url = f"{harness.sandbox.url}/open311/v2/requests.json"
            async with http.post(url, data=form) as answer:
                assert answer.status == 201, await answer.text()

    first_page = await my_reports_list(chat)
    assert len(first_page) == 8 and ">" in chat.buttons
    await chat.press(">")
    second_page = [text.split()[1] for text in chat.buttons if text.startswith("№ ")]

    assert [n[-6:] for n in second_page] == ["000108", "000110"]
    assert not set(first_page) & set(second_page)


async def test_an_answer_filed_elsewhere_is_confirmed_for_points_once(harness: Harness) -> None:
    answered = (await seeded(harness))["000108"]
    chat = await linked(harness)
    await my_reports_list(chat)
    await chat.press(answered)
    assert "✅ Подтвердить" in chat.buttons

    reply = await chat.press("Подтвердить")

    assert "Спасибо, что подтвердили! Начислено 50 баллов" in reply.text
    assert "придут в течение нескольких дней" not in reply.text
    async with aiohttp.ClientSession() as http:  # confirming again credits nothing
        url = f"{harness.sandbox.url}/open311/v2/requests/{answered}/confirm"
        form = {"api_key": "sandbox-open311-key", "account_id": FULL}
        async with http.post(url, data=form) as again:
            assert again.status == 409
    await chat.send("/start")
    await chat.press("Баллы")
    shown = chat.last_text
    assert shown.count(f"Подтверждено решение по обращению № {answered}") == 1
    assert "У вас 1\xa0300 баллов" in shown  # 1 250 + 50


async def test_a_change_of_a_report_filed_elsewhere_is_told(harness: Harness) -> None:
    reports = await seeded(harness)
    in_work, answered = reports["000109"], reports["000108"]
    chat = await linked(harness)
    await tick(harness)  # the poll finds the account's reports: their past is no news
    assert told_about(chat, in_work) == [] and told_about(chat, answered) == []

    await advance(harness, in_work, to="answered", status_notes="Контейнеры вывезли")
    await tick(harness)
    await tick(harness)

    [told] = told_about(chat, in_work)
    assert "Контейнеры вывезли" in told
    assert chat.buttons == ["✅ Подтвердить", "❌ Не устранено"]
    reply = await chat.press("Подтвердить")
    assert "Начислено 50 баллов" in reply.text


async def test_not_fixed_is_the_residents_own_comment_and_no_news(harness: Harness) -> None:
    answered = (await seeded(harness))["000108"]
    chat = await linked(harness)
    await my_reports_list(chat)
    await chat.press(answered)

    await chat.press("Не устранено")
    await chat.send("Два фонаря так и не горят")
    await chat.press("Без фото")

    card = chat.last_text
    assert "вернули в работу" in card
    assert "Ваш комментарий: Два фонаря так и не горят" in card
    assert "Ответ города: Два фонаря" not in card
    assert "(ваш комментарий): Два фонаря так и не горят" in card  # in the history
    await tick(harness)
    assert told_about(chat, answered) == []  # no echo of the resident's own refusal

    await advance(harness, answered, to="answered", status_notes="Заменили лампы")
    await tick(harness)
    [told] = told_about(chat, answered)
    assert "Заменили лампы" in told


async def test_discovery_goes_round_the_residents_a_batch_a_tick(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """However many residents there are, one poll tick looks for reports made elsewhere for
    one batch of them, and the next tick goes on where it stopped (then from the top)."""
    assert harness.app is not None
    monkeypatch.setattr(reporting, "POLL_BATCH", 1)
    first, second = harness.chat(100001), harness.chat(100002)
    await harness.link(first)
    await harness.link(second, login="demo-standard")
    cursor = DiscoveryCursor()
    looked: list[str] = []
    city = harness.app.city
    original = city.reports_of

    async def spy(account_id: str, **kwargs: object) -> object:
        looked.append(account_id)
        return await original(account_id, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(city, "reports_of", spy)
    for _ in range(3):
        async with harness.app.uow_factory() as uow:
            await reporting.discover_reports(uow, city, harness.clock(), cursor)
    assert len(looked) == 3 and looked[0] != looked[1] and looked[2] == looked[0], looked
