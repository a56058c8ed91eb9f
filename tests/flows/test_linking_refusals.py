"""Linking refuses what it must, and each refusal tells the resident what to do next."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import aiohttp
from sqlalchemy import text

from tests.flows.conftest import START_LINK, Harness

WHAT_TO_DO = "нажмите «привязать аккаунт»"  # compared with lower-cased text


async def callback(harness: Harness, query: str) -> tuple[int, str]:
    assert harness.app is not None
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{harness.app.web_url}/oauth/callback?{query}") as answer:
            return answer.status, await answer.text()


async def login_redirect(harness: Harness, chat_url: str, login: str = "demo-full") -> str:
    """Log in at the sandbox but stop at its redirect: returns our callback's query string."""
    async with aiohttp.ClientSession() as http:
        async with http.get(chat_url) as page:
            assert page.status == 200
        form = {k: v[0] for k, v in parse_qs(urlsplit(chat_url).query).items()}
        form["login"] = login
        async with http.post(chat_url.split("?")[0], data=form, allow_redirects=False) as answer:
            return urlsplit(answer.headers["Location"]).query


async def residents(harness: Harness) -> int:
    assert harness.app is not None
    async with harness.app.engine.connect() as connection:
        return int((await connection.execute(text("SELECT count(*) FROM residents"))).scalar())


async def open_login(harness: Harness, user_id: int = 100001, name: str = "Мария"):
    chat = harness.chat(user_id, name)
    await chat.send("/start")
    await chat.press("Привязать")
    return chat, chat.url_of("mos.ru")


async def test_a_wrong_state_is_refused(harness: Harness) -> None:
    status, page = await callback(harness, "state=forged-state-123&code=whatever")
    assert status == 400
    assert "Ссылка для привязки не подошла" in page and WHAT_TO_DO in page.lower()
    assert "t.me" not in page


async def test_a_callback_without_parameters_is_refused(harness: Harness) -> None:
    status, page = await callback(harness, "")
    assert status == 400 and "не хватает данных" in page


async def test_an_expired_state_is_refused(harness: Harness) -> None:
    _chat, url = await open_login(harness)
    query = await login_redirect(harness, url)
    harness.clock.advance(timedelta(minutes=11).total_seconds())
    status, page = await callback(harness, query)
    assert status == 400
    assert "устарела" in page and WHAT_TO_DO in page.lower()
    assert await residents(harness) == 0


async def test_a_reused_state_is_refused(harness: Harness) -> None:
    _chat, url = await open_login(harness)
    query = await login_redirect(harness, url)
    status, first = await callback(harness, query)
    assert status == 200 and START_LINK.search(first)
    status, again = await callback(harness, query)
    assert status == 400
    assert "уже использована" in again and "t.me" not in again


async def test_a_wrong_pkce_verifier_is_refused_by_the_city(harness: Harness) -> None:
    _chat, url = await open_login(harness)
    assert harness.app is not None
    async with harness.app.engine.begin() as connection:  # the verifier no longer matches
        await connection.execute(
            text("UPDATE link_attempts SET code_verifier = :v"), {"v": "x" * 64}
        )
    status, page = await callback(harness, await login_redirect(harness, url))
    assert status == 400
    assert "mos.ru не подтвердил вход" in page and "ещё раз" in page
    assert await residents(harness) == 0


async def test_a_denied_login_says_so(harness: Harness) -> None:
    _chat, url = await open_login(harness)
    state = parse_qs(urlsplit(url).query)["state"][0]
    status, page = await callback(harness, f"error=access_denied&state={state}")
    assert status == 200 and "Вход отменён" in page


async def test_another_telegram_user_cannot_finish_someone_elses_link(harness: Harness) -> None:
    owner, url = await open_login(harness, 100001, "Мария")
    status, page = await callback(harness, await login_redirect(harness, url))
    deep_link = START_LINK.search(page)
    assert status == 200 and deep_link

    stranger = harness.chat(200002, "Олег")
    reply = await stranger.send(f"/start {deep_link.group(1)}")
    assert "создал другой пользователь Telegram" in reply.text and WHAT_TO_DO in reply.text.lower()
    assert await residents(harness) == 0

    # The link is burnt: not even its owner can use it now.
    reply = await owner.send(f"/start {deep_link.group(1)}")
    assert "уже использована" in reply.text
    assert await residents(harness) == 0


async def test_an_unknown_deep_link_is_refused(harness: Harness) -> None:
    chat = harness.chat()
    reply = await chat.send("/start link-does-not-exist")
    assert "Ссылка для привязки не подошла" in reply.text
    assert chat.buttons == ["🔑 Привязать аккаунт mos.ru"]


async def test_a_deep_link_opened_too_late_is_refused(harness: Harness) -> None:
    chat, url = await open_login(harness)
    _status, page = await callback(harness, await login_redirect(harness, url))
    deep_link = START_LINK.search(page)
    assert deep_link
    harness.clock.advance(timedelta(minutes=11).total_seconds())
    reply = await chat.send(f"/start {deep_link.group(1)}")
    assert "устарела" in reply.text
    assert await residents(harness) == 0
