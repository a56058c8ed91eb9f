"""Review 24: the fixes of review 23 (what shows nothing, a draft's `sent_as`, mismatched
Telegram charges, polling's shared dedup owner) broken as a resident, an operator or an
attacker would."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from domain.templates import clean_name
from sandbox import SandboxServer
from sandbox.conversation import Conversation
from tests.contract.sandbox_client import FakeClock
from tests.flows.conftest import Harness, _harness, settings_for
from tests.flows.test_hostile_input import no_crash
from tests.flows.test_payments import ledger
from tests.flows.test_reports import open311
from tests.flows.test_review23_session_fixes import (
    NEARBY,
    SUPPORT_CHAT,
    TOKEN,
    at_description,
    at_refute_comment,
    at_review_without_extras,
    back_to_review,
    paid_with,
    refund_events,
    reports_at,
    send_failing,
)
from tests.flows.test_telegram_payments import (
    invoice_for_first_bill,
    pre_checkout,
    successful_payment,
)

# ---- the «Не устранено» comment -------------------------------------------------------------


async def refute_with(harness: Harness, comment: str) -> tuple[Conversation, str, str]:
    chat, number = await at_refute_comment(harness)
    reply = await chat.send(comment)
    no_crash(reply)
    if "Добавьте фото" not in reply.text:
        return chat, number, reply.text
    reply = await chat.press("Без фото")
    no_crash(reply)
    return chat, number, reply.text


# Found: `on_refute_comment` (handlers/my_reports.py:199) cuts the comment at 2000 characters
# without a word: the rest of what the resident wrote never reaches the city, and nobody says so.
# Was (review 24): a long «Не устранено» comment is cut silently.
async def test_a_long_refute_comment_is_not_cut_silently(harness: Harness) -> None:
    comment = "Яма на месте, никто не приезжал. " * 70 + "Последняя фраза важна."
    assert len(comment) > 2000
    _chat, number, text = await refute_with(harness, comment)
    if "вернули в работу" in text:
        updates = await open311(harness, f"requests/{number}/updates.json")
        assert updates[-1]["description"] == comment.strip()
    else:  # or asked to shorten it, the comment kept
        assert "2000" in text, text


# Found: a description's «<» and «>» become «‹» «›» (`clean_description`, the city refuses what
# looks like HTML), a refute comment's do not (handlers/my_reports.py:199): the city answers 400
# and the resident reads a failure after choosing the photo; the refutation is lost.
# Was (review 24): a refute comment with <…> is refused.
async def test_a_refute_comment_with_angle_brackets_goes_back_to_work(harness: Harness) -> None:
    comment = "Снова яма, фото тут <https://disk.yandex.ru/i/abc>"
    _chat, number, text = await refute_with(harness, comment)
    assert "вернули в работу" in text, text
    updates = await open311(harness, f"requests/{number}/updates.json")
    assert "disk.yandex.ru" in updates[-1]["description"]


@pytest.mark.parametrize(
    "comment",
    [
        "\u0938\u0921\u093c\u0915 \u091f\u0942\u091f\u0940 \u0939\u0948",  # Devanagari
        "\u0e16\u0e19\u0e19\u0e19\u0e49\u0e33\u0e17\u0e48\u0e27\u0e21",  # Thai, marks last
        "\u0110u\u031bo\u031b\u0300ng h\u1ecfng",  # Vietnamese, decomposed
        "Кв. 1\ufe0f\u20e3",  # a keycap at the end
        "\U0001f44d\U0001f3fd",  # a skin tone
        "Ямы \U0001f1f7\U0001f1fa",  # a flag
        "cafe\u0301",  # a combining mark at the end
    ],
)
async def test_a_refute_comment_in_any_script_reaches_the_city_whole(
    harness: Harness, comment: str
) -> None:
    _chat, number, text = await refute_with(harness, comment)
    assert "вернули в работу" in text, text
    updates = await open311(harness, f"requests/{number}/updates.json")
    assert updates[-1]["description"] == comment


# ---- descriptions: scripts with marks and the 2000 limit -----------------------------------


SCRIPTS = [
    "\u0938\u0921\u093c\u0915 \u091f\u0942\u091f\u0940 \u0939\u0948",
    "\u0915\u094d\u200d\u0937",  # Devanagari half form: a ZWJ inside
    "\u0e16\u0e19\u0e19\u0e19\u0e49\u0e33\u0e17\u0e48\u0e27\u0e21",
    "\u0110u\u031bo\u031b\u0300ng",
    "Подъезд 1\ufe0f\u20e3",
    "\U0001f44d\U0001f3fd",
    "cafe\u0301",
]


@pytest.mark.parametrize("text", SCRIPTS)
async def test_a_description_in_a_script_with_marks_reaches_the_city_unchanged(
    harness: Harness, text: str
) -> None:
    chat = await at_description(harness)
    reply = await chat.send(text)
    no_crash(reply)
    assert "видимого текста" not in reply.text
    reply = await chat.press("Отправить")
    number = reply.text.split("№ ")[1].split()[0]
    [request] = await open311(harness, f"requests/{number}.json")
    assert request["description"] == text


async def test_a_description_of_2000_with_combining_marks_is_taken_2001_is_not(
    harness: Harness,
) -> None:
    chat = await at_description(harness)
    text = "\u0915\u093f" * 1000  # कि ×1000: 2000 code points, 1000 letters
    reply = await chat.send(text + "\u200b  ")  # what shows nothing after it is not counted
    no_crash(reply)
    assert "длиннее" not in reply.text and "видимого" not in reply.text, reply.texts
    await chat.press("Описание")
    reply = await chat.send(text + "\u0915")
    assert "длиннее 2000" in reply.text, reply.texts


# Found: the «too long» answer counts the raw message (handlers/reports.py:381) while the limit
# is checked on what shows (`clean_description`): 2001 letters and a few trailing spaces are
# told as «сейчас 2010».
# Was (review 24): «сейчас N» counts the invisible ends too.
async def test_the_too_long_answer_counts_what_the_limit_counts(harness: Harness) -> None:
    chat = await at_description(harness)
    reply = await chat.send("я" * 2001 + " " * 9)
    assert "длиннее 2000" in reply.text, reply.texts
    assert "2001" in reply.text, reply.text


# ---- template names ---------------------------------------------------------------------------


# Found: `without_invisible` (domain/typed_text.py:81) drops a ZERO WIDTH NON-JOINER between two
# letters: in Persian «می‌خواهم» and in Devanagari «क्‌ष» it is what keeps the letters apart (it
# shows), so the name kept is not what the resident wrote.
# Was (review 24): a ZWNJ between letters is dropped from names.
@pytest.mark.parametrize(
    "name",
    ["\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645", "\u0915\u094d\u200c\u0937"],
)
def test_a_template_name_keeps_a_non_joiner_between_letters(name: str) -> None:
    assert clean_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "Квартира 1\ufe0f\u20e3",
        "\U0001f3e0\U0001f3fd",
        "\U0001f468\u200d\U0001f469\u200d\U0001f467 дача",
        "\u0110u\u031bo\u031b\u0300ng",
        "\u0e1a\u0e49\u0e32\u0e19",
    ],
)
def test_a_template_name_in_any_script_is_kept(name: str) -> None:
    assert clean_name(name) == name


# ---- Telegram Payments: a correct charge after a mismatched one -------------------------------


@pytest.fixture
async def tg(
    request: pytest.FixtureRequest, tmp_path: Path, sandbox: SandboxServer, clock: FakeClock
) -> AsyncIterator[Harness]:
    """Telegram Payments on and a support supergroup with its «Dashboard» (as review 23's)."""
    from bot.jobs import support_dashboard

    settings = settings_for(tmp_path, payments_provider_token=TOKEN, support_chat_id=SUPPORT_CHAT)
    async for harness in _harness(settings, sandbox, clock, request):
        harness.telegram.register_chat(
            {"id": SUPPORT_CHAT, "type": "supergroup", "title": "Поддержка", "is_forum": True}
        )
        assert harness.app is not None
        await support_dashboard(harness.app, harness.clock)
        yield harness


# Found: after a mismatched charge fails the intent (charge A attached, `charge_mismatch`), a
# correct charge B for the same invoice goes to `pay`, finds the intent FAILED and is taken to
# `telegram_refund` (domain/payments.py:905) with the intent's charge A: the Dashboard event is
# keyed per intent (already written for A), so staff never hear of B; the log names A and the
# resident is told «не ту сумму» for the right sum.
# Was (review 24): a correct charge after a mismatch is never owed.
async def test_a_correct_charge_after_a_mismatched_one_is_owed_back_too(tg: Harness) -> None:
    chat, bill, payload = await invoice_for_first_bill(tg)
    assert (await pre_checkout(chat, payload, bill["amount"])).ok is True
    await paid_with(chat, payload, bill["amount"] - 1, "tg-odd-7")
    with capture_logs() as logs:
        text = await successful_payment(chat, payload, bill["amount"], "tg-good-7")
    events = await refund_events(tg)
    assert sorted(e["charge_id"] for e in events) == ["tg-good-7", "tg-odd-7"], events
    needed = [e for e in logs if e.get("event") == "tgpay.refund_needed"]
    assert [e["charge"] for e in needed] == ["tg-good-7"], needed
    assert "не ту сумму" not in text, text
    assert await ledger(tg) == []


# Found: two charges of the invoice's sum (two devices paid the same invoice: both pre-checkouts
# passed before either payment) — the second finds the intent SUCCEEDED under the first charge
# and is answered «зачислен» (domain/payments.py:903 never compares the charge ids): its money is
# neither registered nor owed back, and staff are never told.
# Was (review 24): a second charge of the right sum is lost.
async def test_a_second_charge_of_the_invoices_sum_is_owed_back(tg: Harness) -> None:
    chat, bill, payload = await invoice_for_first_bill(tg)
    assert (await pre_checkout(chat, payload, bill["amount"])).ok is True
    assert (await pre_checkout(chat, payload, bill["amount"])).ok is True  # a second device
    assert "зачислен" in await successful_payment(chat, payload, bill["amount"], "tg-a-8")
    await successful_payment(chat, payload, bill["amount"], "tg-b-8")
    assert [c["external_charge_id"] for c in await ledger(tg)] == ["tg-a-8"]
    events = await refund_events(tg)
    assert [e["charge_id"] for e in events] == ["tg-b-8"], events


# ---- a report draft's `sent_as` ---------------------------------------------------------------


async def drop_sent_as(harness: Harness, user_id: int) -> None:
    """The draft as a release before `sent_as` stored it: a send key, no fingerprint."""
    from storage.models import ReportDraftRow

    assert harness.app is not None
    async with harness.app.uow_factory() as uow:
        row = await uow.session.get(ReportDraftRow, user_id)
        assert row is not None and row.data.get("send_key")
        row.data = {k: v for k, v in row.data.items() if k != "sent_as"}
        await uow.commit()


# Found: `unchanged_since_sent` (domain/reports.py:231) is False for a draft stored before
# `sent_as` existed (5ff2a62 kept only the key), so after the upgrade such a draft — a send whose
# answer was lost — is checked for open reports again and offered its own report as «Рядом уже
# есть открытое обращение», which 5ff2a62 had stopped.
# Was (review 24): a pre-`sent_as` draft is offered its own report.
async def test_a_draft_keyed_before_sent_as_existed_is_not_offered_its_own_report(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat = await at_review_without_extras(harness)
    before = await reports_at(harness)
    await send_failing(harness, chat, monkeypatch, {"fail_after_processing": 5})
    assert await reports_at(harness) == before + 1
    await drop_sent_as(harness, chat.chat_id)
    await back_to_review(chat)
    reply = await chat.press("Отправить")
    no_crash(reply)
    assert NEARBY not in reply.text and "✅ Обращение № NG-" in reply.text, reply.texts
    assert await reports_at(harness) == before + 1


async def test_a_draft_edited_and_edited_back_after_a_lost_answer_gets_its_report(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat = await at_description(harness)
    await chat.send("Яма у подъезда")
    before = await reports_at(harness)
    await send_failing(harness, chat, monkeypatch, {"fail_after_processing": 5})
    assert await reports_at(harness) == before + 1
    await back_to_review(chat)
    await chat.press("Описание")
    await chat.send("Яма у второго подъезда")
    await chat.press("Описание")
    await chat.send("Яма у подъезда")
    reply = await chat.press("Отправить")
    no_crash(reply)
    assert NEARBY not in reply.text and "✅ Обращение № NG-" in reply.text, reply.texts
    assert await reports_at(harness) == before + 1


async def test_send_pressed_twice_at_once_makes_one_report(harness: Harness) -> None:
    import asyncio

    chat = await at_review_without_extras(harness)
    before = await reports_at(harness)
    replies = await asyncio.gather(chat.press("Отправить"), chat.press("Отправить"))
    for reply in replies:
        no_crash(reply)
    assert await reports_at(harness) == before + 1
    numbers = {r.text.split("№ ")[1].split()[0] for r in replies if "✅" in r.text}
    assert len(numbers) == 1, [r.texts for r in replies]


# ---- a typed address ---------------------------------------------------------------------------


async def test_an_address_of_nothing_visible_is_not_searched_as_an_address(
    harness: Harness,
) -> None:
    from tests.flows.test_reports import start_pothole

    chat = await start_pothole(harness)
    for blank in ("\u3164", "\u200b\u2800", "\ufe0f"):
        reply = await chat.send(blank)
        no_crash(reply)
        assert "Где это?" in chat.last_text or "Не нашёл" in reply.text, reply.texts


@pytest.mark.parametrize(
    "typed",
    ["\u200eАрбат 10\u200f", "Арбат\u00a010", "\u2068Арбат 10\u2069", "Арбат\u200b 10"],
)
async def test_an_address_copied_with_marks_around_or_a_no_break_space_is_found(
    harness: Harness, typed: str
) -> None:
    from tests.flows.test_reports import start_pothole

    chat = await start_pothole(harness)
    reply = await chat.send(typed)
    no_crash(reply)
    assert "ул. Арбат, 10" in chat.buttons, reply.texts


# Found: `visible` trims only the ends (domain/typed_text.py:67); an address copied from a web
# page with a soft hyphen (U+00AD, shown only at a line break) inside reaches the city's search
# as typed, and «Не нашёл такой адрес» answers an address that reads exactly right.
# Was (review 24): a soft hyphen inside an address is searched.
async def test_an_address_with_a_soft_hyphen_inside_is_found(harness: Harness) -> None:
    from tests.flows.test_reports import start_pothole

    chat = await start_pothole(harness)
    reply = await chat.send("Ар\u00adбат 10")
    no_crash(reply)
    assert "ул. Арбат, 10" in chat.buttons, reply.texts
