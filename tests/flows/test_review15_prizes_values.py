"""Review of issue 15 («Обменять», «Мои призы»): hostile and unexpected values from the platform —
codes, descriptions, ids and categories — and «Мои призы» with many prizes."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest

from sandbox.conversation import Conversation
from sandbox.data import FULL
from sandbox.prizes import Exchange, PrizeCategory
from sandbox.prizes_api import PRIZES_KEY
from tests.flows.conftest import Harness
from tests.flows.test_charity_points_meters import linked
from tests.flows.test_hostile_input import no_crash
from tests.flows.test_hostile_text import assert_clean
from tests.flows.test_prizes import COFFEE, _open_prize

MAX_TEXT = 4096


def _owned(n: int, name: str = COFFEE, code: str | None = None) -> Exchange:
    return Exchange(
        id=f"EX-{n:05d}",
        account_id=FULL.account_id,
        prize_id="301",
        name=name,
        category=PrizeCategory.PROMO_CODES,
        points=200,
        code=code or f"MOS-{n:04d}-ABCD",
        valid_until=date.today() + timedelta(days=90),
        created_at=datetime.now(UTC) - timedelta(hours=n),
    )


async def _all_pages(chat: Conversation) -> list[str]:
    """Every page of the current window's text (‹ n/m ›)."""
    pages = [chat.last_text]
    counter = next((b for b in chat.buttons if re.fullmatch(r"\d+/\d+", b)), None)
    if counter is None:
        return pages
    for _ in range(int(counter.split("/")[1]) - 1):
        await chat.press("›")
        pages.append(chat.last_text)
    return pages


async def test_many_prizes_are_paged_and_every_code_is_reachable(harness: Harness) -> None:
    shop = harness.sandbox.app[PRIZES_KEY]
    shop.exchanges.extend(_owned(n) for n in range(1, 81))
    chat = await linked(harness)
    await chat.press("Баллы")
    reply = await chat.press("Мои призы")
    no_crash(reply)
    pages = await _all_pages(chat)
    assert all(len(page) <= MAX_TEXT for page in pages)
    shown = "\n".join(pages)
    missing = [n for n in range(1, 81) if f"MOS-{n:04d}-ABCD" not in shown]
    assert missing == []
    print(f"\n80 prizes: {len(pages)} pages")
    assert_clean(chat)


@pytest.mark.markup_in_values
@pytest.mark.parametrize(
    "code",
    [
        "A<B>&C</code><b>",
        "КОД-²-🎟-\u200f\u202eXYZ",
        "X" * 5_000,  # a ticket's whole barcode payload, say
    ],
)
async def test_hostile_codes_render_and_are_shown_whole(harness: Harness, code: str) -> None:
    shop = harness.sandbox.app[PRIZES_KEY]
    shop.exchanges.append(_owned(1, code=code))
    chat = await linked(harness)
    await chat.press("Баллы")
    reply = await chat.press("Мои призы")
    no_crash(reply)
    shown = "".join(await _all_pages(chat))
    assert code in shown, "the code the resident must type at the till is not shown whole"


async def test_a_long_code_at_the_exchange_is_shown_whole(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sandbox import prizes as sandbox_prizes

    long_code = "Q" * 700
    monkeypatch.setattr(sandbox_prizes, "_code", lambda *_: long_code)
    chat = await linked(harness)
    await _open_prize(chat, "Промокоды", COFFEE)
    await chat.press("Обменять на баллы")
    reply = await chat.press("Подтвердить")
    no_crash(reply)
    assert long_code in chat.last_text, "the code was cut with «…»"


async def test_a_long_description_can_be_read_in_full(harness: Harness) -> None:
    coffee = harness.sandbox.app[PRIZES_KEY].prize("301")
    assert coffee is not None
    coffee.description = "Условия акции. " * 300 + "КОНЕЦ"
    chat = await linked(harness)
    await _open_prize(chat, "Промокоды", COFFEE)
    shown = "".join(await _all_pages(chat))
    assert "КОНЕЦ" in shown, "the prize's terms are cut"


async def test_an_unknown_category_in_my_prizes(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The platform starts a fifth category (e.g. charity or «Транспорт») — «Мои призы» of a
    resident who has one such prize."""
    from sandbox import prizes_api

    real = prizes_api.owned_json

    def owned_json(exchange: Exchange) -> dict[str, object]:
        body = real(exchange)
        body["category"] = "transport"
        return body

    monkeypatch.setattr(prizes_api, "owned_json", owned_json)
    harness.sandbox.app[PRIZES_KEY].exchanges.append(_owned(1))
    chat = await linked(harness)
    await chat.press("Баллы")
    reply = await chat.press("Мои призы")
    no_crash(reply)
    assert "MOS-0001-ABCD" in chat.last_text


async def test_an_unknown_category_in_the_catalogue(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A prize of a category this bot does not know yet is listed and opens (read as
    «Другое»), and the exchange works."""
    from sandbox import prizes_api

    real = prizes_api.prize_json

    def prize_json(prize: object) -> dict[str, object]:
        body = real(prize)  # type: ignore[arg-type]
        if body["id"] == "301":
            body["category"] = "transport"
        return body

    monkeypatch.setattr(prizes_api, "prize_json", prize_json)
    chat = await linked(harness)
    await _open_prize(chat, "Промокоды", COFFEE)
    assert "Цена:" in chat.last_text
    await chat.press("Обменять на баллы")
    no_crash(await chat.press("Подтвердить"))
    assert "Код:" in chat.last_text
    assert_clean(chat)


async def test_one_odd_prize_id_hides_its_whole_category(harness: Harness) -> None:
    shop = harness.sandbox.app[PRIZES_KEY]
    odd = shop.prize("303")
    assert odd is not None
    odd.id = "303a"
    chat = await linked(harness)
    await chat.press("Баллы")
    await chat.press("Обменять")
    reply = await chat.press("Промокоды")
    no_crash(reply)
    assert any(b.startswith(COFFEE) for b in chat.buttons), chat.last_text


@pytest.mark.parametrize("odd_id", ["0", "000", "0301"])
async def test_prize_id_zero_allowed_by_the_contract(harness: Harness, odd_id: str) -> None:
    """The contract's pattern was ^[0-9]{1,18}$: it allowed "0" and "000", which no button's
    ButtonId takes. Fixed (review 15): the contract says ^[1-9][0-9]{0,17}$, and a prize
    outside it (a platform breaking the contract) is skipped alone — the rest of its category
    still shows and opens."""
    shop = harness.sandbox.app[PRIZES_KEY]
    coffee = shop.prize("301")
    assert coffee is not None
    coffee.id = odd_id
    chat = await linked(harness)
    await chat.press("Баллы")
    await chat.press("Обменять")
    reply = await chat.press("Промокоды")
    no_crash(reply)
    assert not [b for b in chat.buttons if b.startswith(COFFEE)]
    reply = await chat.press(next(b for b in chat.buttons if b.startswith("Промокод в книжный")))
    no_crash(reply)
    assert "Цена:" in chat.last_text, [a.text for a in reply.callback_answers]


def test_the_contract_and_the_sandbox_agree_on_prize_ids() -> None:
    from city.prizes import PRIZE_ID
    from sandbox.prizes import demo_catalogue
    from tests.contract.openapi import spec

    pattern = spec()["components"]["schemas"]["Prize"]["properties"]["id"]["pattern"]
    assert pattern == f"^{PRIZE_ID.pattern}$"
    assert all(re.fullmatch(PRIZE_ID, p.id) for p in demo_catalogue())


@pytest.mark.markup_in_values
@pytest.mark.parametrize(
    "name",
    ["Кофе\nс переносом\nстрок", "\u202eфеок\u202c ² 🎁👨‍👩‍👧", "A & B < C"],
)
async def test_odd_names_on_buttons_and_cards(harness: Harness, name: str) -> None:
    coffee = harness.sandbox.app[PRIZES_KEY].prize("301")
    assert coffee is not None
    coffee.name = name
    chat = await linked(harness)
    await chat.press("Баллы")
    await chat.press("Обменять")
    await chat.press("Промокоды")
    message = chat.last_message
    assert message is not None
    for button in message.buttons:
        assert len((button.callback_data or "").encode()) <= 64
    label = next(b for b in chat.buttons if b.startswith(name[:3]))
    no_crash(await chat.press(label))
    no_crash(await chat.press("Обменять на баллы"))
    no_crash(await chat.press("Подтвердить"))
    no_crash(await chat.press("Мои призы"))
    assert_clean(chat)


async def test_my_prizes_when_the_city_fails(harness: Harness) -> None:
    harness.sandbox.app[PRIZES_KEY].exchanges.append(_owned(1))
    chat = await linked(harness)
    await chat.press("Баллы")
    await harness.sandbox_call(
        "PUT", "/sandbox/faults", json={"status": 503, "paths": ["/api/v1/points/my-prizes"]}
    )
    reply = await chat.press("Мои призы")
    no_crash(reply)
    assert "временно недоступен" in chat.last_text
    assert_clean(chat)


async def test_a_big_catalogue_with_long_names_pages_its_buttons(harness: Harness) -> None:
    from sandbox.prizes import Prize

    shop = harness.sandbox.app[PRIZES_KEY]
    shop.catalogue.extend(
        Prize(str(900_000_000_000_000_000 + n), f"{n} " + "Ж" * 3_000, PrizeCategory.PROMO_CODES,
              "d", 10 + n, 5)
        for n in range(40)
    )  # fmt: skip
    chat = await linked(harness)
    await chat.press("Баллы")
    await chat.press("Обменять")
    reply = await chat.press("Промокоды")
    no_crash(reply)
    message = chat.last_message
    assert message is not None
    assert all(len((b.callback_data or "").encode()) <= 64 for b in message.buttons)
    await chat.press(">")  # aiogram-dialog's own pager, as in the charity lists
    label = next(b for b in chat.buttons if b.startswith("5 "))
    no_crash(await chat.press(label))
    assert "Цена:" in chat.last_text
    assert_clean(chat)


async def test_another_residents_confirmation_data(harness: Harness) -> None:
    from tests.flows.test_hostile_input import forge
    from tests.flows.test_prizes import _prize_debits

    chat_a = await linked(harness)
    await _open_prize(chat_a, "Промокоды", COFFEE)
    await chat_a.press("Обменять на баллы")
    message = chat_a.last_message
    assert message is not None
    [yes] = [b for b in message.buttons if b.text == "Подтвердить"]
    chat_b = harness.chat(user_id=100002, first_name="Олег")
    await harness.link(chat_b, "demo-standard")
    await _open_prize(chat_b, "Промокоды", COFFEE)
    await chat_b.press("Обменять на баллы")  # B has 120 points: «не хватает»
    reply = await forge(chat_b, yes.callback_data or "")
    no_crash(reply)
    assert _prize_debits(harness) == []
