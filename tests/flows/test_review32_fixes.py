"""Review 32: attacks on the fixes of 4cceea4 and 2114c38 (typed values read from what shows,
the receipt's period, photos at a report's other steps, the report poll and the meter reminders
under a city that fails) and the same kinds of fault where they were not fixed."""

from __future__ import annotations

from typing import Any

import pytest

from bot.jobs import deliver_notifications, poll_reports
from bot.ratelimit import MemoryLimiter
from domain.errors import CityUnavailable
from domain.meter_reminders import MeterRound, remind_meter_windows
from domain.money import MoneyParseError, parse_rub
from domain.payment_qr import period_in_text
from tests.flows.conftest import Harness
from tests.flows.test_charity_points_meters import at
from tests.flows.test_hostile_input import no_crash
from tests.flows.test_meter_readings import next_month
from tests.flows.test_reports import ARBAT_10, advance, photo, sent_report, start_pothole
from tests.flows.test_review30e_fixes import (
    _MONTHS,
    WITH_INSURANCE,
    _epd,
    _last_month,
    _pay_receipt,
)
from tests.flows.test_review31_reports_faults import calm
from tests.flows.test_review31_stale_screens import autopay_setup, world

# ---------------------------------------------------------------- typed values: what shows


def test_amounts_pasted_with_marks_at_the_ends_are_read_and_inside_refused() -> None:
    """Guard (4cceea4): marks at the ends go, a zero-width character inside is still refused."""
    assert parse_rub("\u202a1 500\u202c") == 150_000
    assert parse_rub("\u2066150\u2069") == 15_000
    for inside in ("1\u200b500", "1\u00ad500"):
        with pytest.raises(MoneyParseError):
            parse_rub(inside)


# handlers/autopay.py on_day reads the day with `.strip()`, not `visible()`: a day pasted with
# direction marks (as every other typed number now is) is refused «Нужно число от 1 до 31».
# Was (review 32): autopay day typed with direction marks refused: on_day uses .strip()
async def test_an_autopay_day_pasted_with_direction_marks_is_taken(harness: Harness) -> None:
    chat = harness.chat()
    await harness.link(chat, "demo-full")
    await chat.press("Автоплатежи")
    await chat.press("Подключить автоплатёж")
    await chat.press("Пожертвование фонду")
    await chat.press(1)
    await chat.press("Раз в месяц")
    reply = await chat.send("\u202a25\u202c")
    no_crash(reply)
    assert "Нужно число от 1 до 31" not in reply.text, reply.texts
    assert "Сколько перечислять" in chat.last_text, chat.last_text


# ---------------------------------------------------------------- the period in the purpose


# `_after_deadline` (domain/payment_qr.py) drops every month after a deadline's word anywhere
# earlier in the same clause, and «от» is one of them: «Оплата ЖКУ от собственника за 10.2026»
# (a payer), «Оплатить до 10.11.2026 за 10.2026» (the deadline first) name no period.
# Was (review 32): period_in_text drops the period after «от»/a deadline earlier in the same clause
@pytest.mark.parametrize(
    "purpose",
    [
        "Оплата ЖКУ от собственника за 10.2026",
        "Оплата ЖКУ от Иванова за октябрь 2026",
        "Оплатить до 10.11.2026 за 10.2026",
        "ЕПД до 10 ноября 2026 за октябрь 2026",
    ],
)
def test_a_period_after_a_payer_or_a_deadline_in_the_same_clause_is_read(purpose: str) -> None:
    assert period_in_text(purpose) == "10.2026"


# The same in the flow: an ЕПД whose amount includes the insurance is found among the resident's
# bills by its period only; unread, it is paid by requisites while the bill stays unpaid.
# Was (review 32): an ЕПД naming the deadline before its period is paid by requisites, the bill
# unpaid
async def test_an_epd_receipt_with_the_deadline_before_the_period_pays_the_bill(
    harness: Harness,
) -> None:
    month = _last_month(harness)
    purpose = f"Оплатить до 25.12.2099 за {_MONTHS[month.month - 1]} {month.year}"
    _card, text, _buttons = await _pay_receipt(
        harness, _epd(purpose=purpose, amount=WITH_INSURANCE)
    )
    assert "К оплате 1 счёт" in text, text
    assert "Оплата по реквизитам" not in text


# ---------------------------------------------------------------- photos at other report steps


async def _at_refute_comment(harness: Harness) -> Any:
    chat, number = await sent_report(harness)
    assert harness.app is not None
    await advance(harness, number, to="answered", status_notes="Выполнено")
    await poll_reports(harness.app, harness.clock)
    await deliver_notifications(harness.app, harness.clock, MemoryLimiter())
    await chat.press("Не устранено")
    assert "Что не так?" in chat.last_text
    return chat


# handlers/receipts.py on_report_photo_elsewhere answers every step but the place with
# «report-photo-elsewhere»: «На проверке обращения нажмите «✏️ Фото»» — at «Не устранено»
# (MyReportsSG.refute) there is no review and no «✏️ Фото»; the photo step comes right after the
# comment. The caption (the comment the resident wrote) is dropped unsaid.
# Was (review 32): a photo at the «Не устранено» comment step is told to use «✏️ Фото» on a review
async def test_a_photo_at_the_refute_comment_step_is_told_the_way_of_this_flow(
    harness: Harness,
) -> None:
    chat = await _at_refute_comment(harness)
    reply = await chat.send_photo(photo(30), caption="Яма так и осталась")
    no_crash(reply)
    calm(reply.texts)
    assert "✏️ Фото" not in reply.text and "проверке обращения" not in reply.text, reply.texts
    # the comment first, the photo at the next step
    assert "коммент" in reply.text.lower() or "Добавьте фото" in chat.last_text, reply.texts


async def test_an_album_at_the_description_step_is_answered_once_not_as_receipts(
    harness: Harness,
) -> None:
    """Guard (2114c38): an album of ten at a report step gets one answer, no receipt talk."""
    chat = await start_pothole(harness)
    await chat.send_location(*ARBAT_10)
    await chat.send_photo(photo(10))
    await chat.press("Дальше")
    reply = await chat.send_album([photo(n * 20) for n in range(10)])
    no_crash(reply)
    assert len(reply.texts) == 1 and "QR" not in reply.text, reply.texts
    reply = await chat.send_document(photo(40), "IMG_0001.jpg", "image/jpeg")
    assert len(reply.texts) == 1 and "QR" not in reply.text, reply.texts
    await chat.send("Глубокая яма")
    assert "Фото: 1" in chat.last_text and "Описание: Глубокая яма" in chat.last_text


# At the description step a photo with a caption — the description written on it — is answered
# «это фото я не сохранил»: the caption goes unsaved and unsaid, and the step's question is not
# asked again below the answer.
# Was (review 32): a photo's caption at the description step is dropped without a word
async def test_a_captioned_photo_at_the_description_step_keeps_or_mentions_the_text(
    harness: Harness,
) -> None:
    chat = await start_pothole(harness)
    await chat.send_location(*ARBAT_10)
    await chat.send_photo(photo(10))
    await chat.press("Дальше")
    reply = await chat.send_photo(photo(50), caption="Глубокая яма у подъезда")
    no_crash(reply)
    kept = "Описание: Глубокая яма у подъезда" in chat.last_text
    told = "подпис" in reply.text.lower() or "текст" in reply.text.lower()
    assert kept or told, reply.texts


# ---------------------------------------------------------------- autopay «Подключить»


async def test_connect_while_the_city_is_down_stores_nothing_and_says_so(
    harness: Harness,
) -> None:
    """Guard (2114c38): the card recheck at «Подключить» meets a 503: said calmly, nothing
    stored, «Подключить» still there."""
    chat = harness.chat()
    await harness.link(chat, "demo-full")
    await autopay_setup(harness, chat)
    before = await world(harness, chat)
    await harness.sandbox_call("PUT", "/sandbox/faults", json={"status": 503})
    reply = await chat.press("Подключить")
    await harness.sandbox_call("PUT", "/sandbox/faults", json={})
    no_crash(reply)
    calm(reply.texts)
    assert "временно недоступен" in reply.text, reply.texts
    assert (await world(harness, chat))["autopays"] == before["autopays"]
    assert "Подключить" in chat.buttons


# ---------------------------------------------------------------- meter reminders, city down


# domain/meter_reminders.py remind_meter_windows: fewer than DOWN_AFTER residents left to ask and
# the city down — each fails «alone», the batch ends short, the round is marked finished for the
# day (`finished_on = today`): nobody is reminded today, though the city comes back a minute later
# (before 2114c38 the CityUnavailable kept the cursor and the next tick asked again). On the
# window's last day they are never reminded.
# Was (review 32): meter round with <3 residents left and the city down is marked finished for the
# day
async def test_meter_reminders_when_the_city_is_down_for_the_last_residents_come_once_it_is_back(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert harness.app is not None
    app = harness.app
    full, standard = harness.chat(user_id=100001), harness.chat(user_id=100002)
    await harness.link(full, "demo-full")
    await harness.link(standard, "demo-standard")
    await at(harness, next_month(harness, 15, hour=12))
    rounds = MeterRound()

    async def tick() -> int:
        try:
            async with app.uow_factory() as uow:
                return await remind_meter_windows(uow, app.city, app.city, harness.clock(), rounds)
        except CityUnavailable:
            return 0

    real_meters = app.city.meters

    async def down(session: Any) -> Any:
        raise CityUnavailable("down")

    monkeypatch.setattr(app.city, "meters", down)
    await tick()
    monkeypatch.setattr(app.city, "meters", real_meters)
    written = sum([await tick() for _ in range(3)])
    assert written == 2, rounds
