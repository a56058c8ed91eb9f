"""What the bot logs while a resident links, pays, reports and unlinks: ids and hashes only —
no names, phones, tokens or card numbers (a test over the structured events themselves)."""

from __future__ import annotations

import structlog
from structlog.testing import capture_logs

from sandbox.browser import pay_on_page
from tests.flows.conftest import Harness
from tests.flows.test_payments import bill_buttons
from tests.flows.test_reports import ARBAT_10, start_pothole

PHONE = "+7 916 123-45-67"
CARD = "4242424242424242"


async def test_no_personal_data_reaches_the_logs(harness: Harness) -> None:
    structlog.configure(cache_logger_on_first_use=False)
    with capture_logs() as events:
        chat = await start_pothole(harness)  # links demo-full (Воронцова Мария Сергеевна)
        await chat.send_location(*ARBAT_10)
        await chat.press("Пропустить")
        await chat.send(f"Яма у подъезда, мой телефон {PHONE}")
        await chat.press("Отправить")
        await chat.send("/start")
        await chat.press("Мои счета")
        await chat.press(bill_buttons(chat)[0])
        await chat.press("Оплатить выбранные")
        await chat.press("Другой способ оплаты")
        await chat.press("Новая карта")
        await chat.press("Оплатить")
        await pay_on_page(chat.url_of("Перейти к оплате"), card_number=CARD)
        await chat.press("Проверить оплату")
        resident = await harness.stored_resident(chat)
        assert resident is not None
        await chat.send("/start")
        await chat.press("Отвязать аккаунт")
        await chat.press("Да, отвязать")

    logged = repr(events)
    assert len(events) > 10  # the journey did log (ids, hashes, statuses)
    for secret in (
        "Воронцова",
        "Мария",
        "Сергеевна",
        PHONE,
        "916 123",
        CARD,
        resident.tokens.access_token,
        resident.tokens.refresh_token,
        str(chat.chat_id),  # not even the raw Telegram id: a hash stands for it
    ):
        assert secret not in logged, secret
