"""A «Наш город» send whose answer was lost, and the resident never pressed «Отправить» again:
the report the city made is found by discovery (the status poll's round, or «Мои обращения»),
the draft is settled as sent — its number told once, followed from its first update, the
dashboard told once — and nothing is settled that the resident did not send as it stands."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.jobs import support_dashboard
from domain.errors import CityUnavailable
from sandbox.open311_api import REQUESTS_KEY
from storage.models import NotificationRow
from tests.flows.conftest import Harness
from tests.flows.test_reports import ARBAT_10, advance, start_pothole
from tests.flows.test_review27_support import desk  # noqa: F401 - the fixture
from tests.flows.test_review31_reports_faults import (
    at_city,
    calm,
    poll_and_deliver,
    press_send_with_faults,
    told_of,
)

UNSENT = "неотправленное обращение"
SETTLED = "отправлено: город его получил"
POST_PATH = "/open311/v2/requests.json"


async def lost_send(  # type: ignore[no-untyped-def]
    harness: Harness, monkeypatch: pytest.MonkeyPatch, *, made: bool = True, wait: bool = True
):
    """A pothole at Arbat 10 sent once: the city made it and every answer was lost (`made`),
    or the POST never got there (a 502 before processing). Returns the chat and, when made,
    the report's number."""
    chat = await start_pothole(harness)
    await chat.send_location(*ARBAT_10)
    await chat.press("Пропустить")
    await chat.press("Пропустить")
    before = at_city(harness)
    faults = {"fail_after_processing": 5} if made else {"status": 502, "paths": [POST_PATH]}
    calm(await press_send_with_faults(harness, chat, monkeypatch, faults))
    assert at_city(harness) == before + (1 if made else 0)
    number = harness.sandbox.app[REQUESTS_KEY].all()[-1].id if made else None
    if wait:
        harness.clock.advance(6 * 60)  # settled only SETTLE_AFTER after the send
    return chat, number


async def dashboard_events(harness: Harness, number: str) -> int:
    assert harness.app is not None
    async with harness.app.uow_factory() as uow:
        key = NotificationRow.dedupe_key == f"dashboard:report:{number}"
        query = select(func.count()).where(key)
        return int(await uow.session.scalar(query) or 0)


def settled_notices(history: list[str], number: str) -> list[str]:
    return [t for t in history if number in t and SETTLED in t]


async def test_settled_once_followed_from_its_first_update_and_the_dashboard_told_once(
    desk: Harness,  # noqa: F811 - the imported fixture
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    harness = desk
    assert harness.app is not None
    await support_dashboard(harness.app, harness.clock)  # the staff's «Dashboard» topic
    chat, number = await lost_send(harness, monkeypatch)
    assert number is not None
    made = at_city(harness)
    await poll_and_deliver(harness, times=3)
    assert at_city(harness) == made, "the repeated POST made a second report"
    told = settled_notices(chat.history, number)
    assert len(told) == 1, chat.history[-4:]
    calm(told)
    assert await dashboard_events(harness, number) == 1

    await chat.send("/start")
    await chat.press("Сообщить о проблеме")
    assert UNSENT not in chat.last_text, chat.last_text

    # Followed as sent in the bot: its first change is news, and its answer is the resident's
    # own to confirm.
    await advance(harness, number, to="in_work")
    await poll_and_deliver(harness)
    assert any("в работе" in t for t in told_of(chat, number)), chat.history[-3:]
    await advance(harness, number, to="answered", status_notes="Яму заделали")
    await poll_and_deliver(harness)
    assert "✅ Подтвердить" in chat.buttons, chat.history[-2:]


async def test_settled_when_the_resident_opens_my_reports_first(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat, number = await lost_send(harness, monkeypatch)
    assert number is not None
    await chat.send("/start")
    await chat.press("Мои обращения")
    assert number in chat.last_text or number in " ".join(chat.buttons), chat.last_text
    await poll_and_deliver(harness, times=2)
    assert len(settled_notices(chat.history, number)) == 1, chat.history[-4:]
    await chat.send("/start")
    await chat.press("Сообщить о проблеме")
    assert UNSENT not in chat.last_text, chat.last_text


async def test_a_draft_edited_after_the_lost_send_is_left_to_the_resident(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat, number = await lost_send(harness, monkeypatch)
    assert number is not None
    await chat.send("/start")
    await chat.press("Сообщить о проблеме")
    await chat.press("Продолжить")
    await chat.press("Описание")
    await chat.send("Яма глубже, чем казалось")
    made = at_city(harness)
    await poll_and_deliver(harness, times=2)
    assert at_city(harness) == made
    assert not settled_notices(chat.history, number), chat.history[-3:]
    await chat.send("/start")
    await chat.press("Сообщить о проблеме")
    assert UNSENT in chat.last_text, chat.last_text


async def test_a_send_that_never_reached_the_city_is_not_made_behind_the_residents_back(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat, _ = await lost_send(harness, monkeypatch, made=False)
    made = at_city(harness)
    await poll_and_deliver(harness, times=2)
    assert at_city(harness) == made
    await chat.send("/start")
    await chat.press("Сообщить о проблеме")
    assert UNSENT in chat.last_text, chat.last_text


async def test_a_report_of_another_theme_made_elsewhere_does_not_settle_the_draft(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat, _ = await lost_send(harness, monkeypatch, made=False)
    book = harness.sandbox.app[REQUESTS_KEY]
    themes = {r.submission.theme.code: r.submission.theme for r in book.all()}
    account = (await harness.stored_resident(chat)).city_account_id  # type: ignore[union-attr]
    seed = next(r for r in book.all() if r.submission.account_id is not None)
    assert harness.app is not None
    async with harness.app.uow_factory() as uow:
        draft = await uow.drafts.get(chat.chat_id)
    assert draft is not None and draft.send_key is not None
    other = next(t for code, t in themes.items() if code != draft.theme_code)
    book.create(dataclasses.replace(seed.submission, theme=other, account_id=account))
    made = at_city(harness)
    await poll_and_deliver(harness, times=2)
    assert at_city(harness) == made
    await chat.send("/start")
    await chat.press("Сообщить о проблеме")
    assert UNSENT in chat.last_text, chat.last_text


async def test_the_city_down_at_the_repeat_leaves_the_draft_for_the_next_round(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat, number = await lost_send(harness, monkeypatch)
    assert number is not None
    assert harness.app is not None
    real_create = harness.app.city.create_report
    repeats = []

    async def down(*args: Any, **kwargs: Any) -> str:
        repeats.append(args)
        raise CityUnavailable()

    monkeypatch.setattr(harness.app.city, "create_report", down)
    await poll_and_deliver(harness)
    monkeypatch.setattr(harness.app.city, "create_report", real_create)
    assert repeats, "discovery never tried to settle the draft"
    assert not settled_notices(chat.history, number)
    await poll_and_deliver(harness, times=2)
    assert len(settled_notices(chat.history, number)) == 1, chat.history[-4:]


async def test_not_settled_while_the_resident_may_still_be_pressing_again(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat, number = await lost_send(harness, monkeypatch, wait=False)
    assert number is not None
    await poll_and_deliver(harness)  # a minute after «Сервис города недоступен»
    assert not settled_notices(chat.history, number)
    harness.clock.advance(6 * 60)
    await poll_and_deliver(harness, times=2)
    assert len(settled_notices(chat.history, number)) == 1, chat.history[-3:]
