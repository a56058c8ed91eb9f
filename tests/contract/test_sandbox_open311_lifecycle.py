"""«Наш город» at the sandbox: the lifecycle by the clock and by the sandbox control, the
updates history, confirm / refute with the 15-day window, the 8-working-day deadline."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from .sandbox_client import ContractClient

AUTHOR = "C-100003"  # demo-full
OTHER = "C-100002"
START = datetime.fromisoformat("2026-03-10T09:30:00+03:00")  # the fixture clock, a Tuesday
ANSWERED_AT = START + timedelta(hours=1, days=3)
FULL_ANSWERED = "NG-2026-000108"
PHOTO = "https://photos.example.org/after.jpg"


async def post(city: ContractClient, account_id: str = AUTHOR, **fields: str) -> str:
    form = {
        "service_code": "road-01",
        "lat": "55.7512",
        "long": "37.5968",
        "account_id": account_id,
        "media_url": "https://photos.example.org/before.jpg",
        **fields,
    }
    return await city.report_id(form)


async def state(city: ContractClient, request_id: str) -> tuple[str, str]:
    found = await city.report_now(request_id)
    return found["status"], found["extended_status"]


async def history(city: ContractClient, request_id: str) -> list[dict[str, Any]]:
    answer = await city.report_updates(request_id)
    assert answer.status == 200, answer.body
    return answer.body  # type: ignore[no-any-return]


async def answered(city: ContractClient) -> str:
    """A fresh report of AUTHOR, answered by the clock (the clock is then at ANSWERED_AT)."""
    request_id = await post(city)
    await city.set_clock(ANSWERED_AT)
    assert await state(city, request_id) == ("open", "answered")
    return request_id


# ---------------------------------------------------------------- by the clock


async def test_the_lifecycle_follows_the_clock(city: ContractClient) -> None:
    request_id = await post(city)

    await city.set_clock(START + timedelta(minutes=59))
    assert await state(city, request_id) == ("open", "moderation")
    await city.set_clock(START + timedelta(hours=1))
    assert await state(city, request_id) == ("open", "in_work")
    await city.set_clock(ANSWERED_AT - timedelta(seconds=1))
    assert await state(city, request_id) == ("open", "in_work")
    await city.set_clock(ANSWERED_AT)
    found = await city.report_now(request_id)

    assert (found["status"], found["extended_status"]) == ("open", "answered")
    assert found["updated_datetime"] == "2026-03-13T10:30:00+03:00"
    assert found["confirm_until"] == "2026-03-28T10:30:00+03:00"
    assert found["answer_media_url"].startswith(city.base_url + "/media/")
    assert "28.03.2026" in found["status_notes"]
    assert found["requested_datetime"] == "2026-03-10T09:30:00+03:00"


async def test_the_updates_history_oldest_first(city: ContractClient) -> None:
    request_id = await post(city)
    await city.set_clock(ANSWERED_AT + timedelta(hours=2))

    updates = await history(city, request_id)

    assert [u["extended_status"] for u in updates] == ["moderation", "in_work", "answered"]
    assert [u["status"] for u in updates] == ["open", "open", "open"]
    assert [u["update_id"] for u in updates] == [f"{request_id}.{n}" for n in (1, 2, 3)]
    assert [u["updated_datetime"] for u in updates] == [
        "2026-03-10T09:30:00+03:00",
        "2026-03-10T10:30:00+03:00",
        "2026-03-13T10:30:00+03:00",
    ]
    assert updates[0]["media_url"] == "https://photos.example.org/before.jpg"
    assert updates[1]["description"] == "Сообщение передано в работу: ГБУ «Автомобильные дороги»"
    found = await city.report_now(request_id)
    assert updates[2]["media_url"] == found["answer_media_url"]
    assert updates[-1]["description"] == found["status_notes"]


async def test_a_seeded_closed_report_has_its_whole_history(city: ContractClient) -> None:
    updates = await history(city, "NG-2026-000102")

    assert [u["extended_status"] for u in updates] == [
        "moderation",
        "in_work",
        "answered",
        "closed",
    ]
    assert updates[-1]["status"] == "closed"
    assert updates[-1]["description"] == "Житель подтвердил, что проблема решена"


async def test_updates_of_an_unknown_request_are_404(city: ContractClient) -> None:
    answer = await city.report_updates("NG-2026-999999")

    assert answer.status == 404
    assert answer.body[0]["code"] == 404


# ---------------------------------------------------------------- confirm


async def test_the_author_confirms_an_answer(city: ContractClient) -> None:
    request_id = await answered(city)
    after_photo = (await city.report_now(request_id))["answer_media_url"]

    answer = await city.report_action(request_id, "confirm", {"account_id": AUTHOR})

    assert answer.status == 200
    [found] = answer.body
    assert (found["status"], found["extended_status"]) == ("closed", "closed")
    assert found["confirm_until"] is None
    assert found["answer_media_url"] == after_photo
    assert found["status_notes"] == "Житель подтвердил, что проблема решена"
    assert [u["extended_status"] for u in await history(city, request_id)][-1] == "closed"
    again = await city.report_action(request_id, "confirm", {"account_id": AUTHOR})
    assert again.status == 409


async def test_demo_full_can_confirm_the_seeded_answer(city: ContractClient) -> None:
    answer = await city.report_action(FULL_ANSWERED, "confirm", {"account_id": AUTHOR})

    assert answer.status == 200
    assert answer.body[0]["status"] == "closed"


async def test_another_account_may_not_confirm_or_refute(city: ContractClient) -> None:
    request_id = await answered(city)

    confirm = await city.report_action(request_id, "confirm", {"account_id": OTHER})
    refute = await city.report_action(
        request_id, "refute", {"account_id": OTHER, "description": "Яма на месте"}
    )

    assert (confirm.status, refute.status) == (409, 409)
    assert "author" in confirm.body[0]["description"]
    assert await state(city, request_id) == ("open", "answered")


async def test_only_an_answered_request_can_be_confirmed(city: ContractClient) -> None:
    request_id = await post(city)

    in_moderation = await city.report_action(request_id, "confirm", {"account_id": AUTHOR})
    await city.set_clock(START + timedelta(days=1))
    in_work = await city.report_action(request_id, "confirm", {"account_id": AUTHOR})

    assert (in_moderation.status, in_work.status) == (409, 409)
    assert "moderation" in in_moderation.body[0]["description"]
    assert await state(city, request_id) == ("open", "in_work")


async def test_confirm_refusals(city: ContractClient) -> None:
    request_id = await answered(city)

    no_key = await city.report_action(request_id, "confirm", {"account_id": AUTHOR}, api_key="")
    no_account = await city.report_action(request_id, "confirm", {})
    unknown = await city.report_action("NG-2026-999999", "confirm", {"account_id": AUTHOR})

    assert (no_key.status, no_account.status, unknown.status) == (403, 400, 404)
    assert await state(city, request_id) == ("open", "answered")


# ---------------------------------------------------------------- refute


async def test_the_author_refutes_and_the_city_answers_again(city: ContractClient) -> None:
    request_id = await answered(city)
    text = "Яму засыпали песком, она снова на месте"

    answer = await city.report_action(
        request_id, "refute", {"account_id": AUTHOR, "description": text, "media_url": PHOTO}
    )

    [found] = answer.body
    assert (found["status"], found["extended_status"]) == ("open", "returned")
    assert (found["answer_media_url"], found["confirm_until"]) == (None, None)
    assert found["status_notes"] == text
    last = (await history(city, request_id))[-1]
    assert (last["extended_status"], last["description"], last["media_url"]) == (
        "returned",
        text,
        PHOTO,
    )
    await city.set_clock(ANSWERED_AT + timedelta(days=3))
    again = await city.report_now(request_id)
    assert again["extended_status"] == "answered"
    assert again["confirm_until"] == "2026-03-31T10:30:00+03:00"
    second = await city.report_action(
        request_id, "refute", {"account_id": AUTHOR, "description": "Всё ещё яма"}
    )
    assert second.status == 200


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        ({"account_id": AUTHOR}, "description was not provided"),
        ({"account_id": AUTHOR, "description": "  "}, "description was not provided"),
        ({"description": "Не исправлено"}, "account_id was not provided"),
        ({"account_id": AUTHOR, "description": "<b>нет</b>"}, "HTML"),
        ({"account_id": AUTHOR, "description": "я" * 4001}, "4000"),
        ({"account_id": AUTHOR, "description": "x", "media_url": "file:///a.jpg"}, "media_url"),
    ],
)
async def test_refute_refusals(city: ContractClient, form: dict[str, str], expected: str) -> None:
    request_id = await answered(city)

    answer = await city.report_action(request_id, "refute", form)

    assert answer.status == 400
    assert any(expected in error["description"] for error in answer.body), answer.body
    assert await state(city, request_id) == ("open", "answered")


# ---------------------------------------------------------------- the 15-day window


async def test_confirm_works_until_the_last_minute_of_the_window(city: ContractClient) -> None:
    request_id = await answered(city)

    await city.set_clock(ANSWERED_AT + timedelta(days=15) - timedelta(minutes=1))
    answer = await city.report_action(request_id, "confirm", {"account_id": AUTHOR})

    assert answer.status == 200
    assert answer.body[0]["status"] == "closed"


async def test_after_15_days_the_answer_stands_and_nothing_can_change_it(
    city: ContractClient,
) -> None:
    request_id = await answered(city)

    await city.set_clock(ANSWERED_AT + timedelta(days=15, minutes=1))
    found = await city.report_now(request_id)
    confirm = await city.report_action(request_id, "confirm", {"account_id": AUTHOR})
    refute = await city.report_action(
        request_id, "refute", {"account_id": AUTHOR, "description": "Не исправлено"}
    )

    assert (found["status"], found["extended_status"]) == ("closed", "closed")
    assert found["updated_datetime"] == "2026-03-28T10:30:00+03:00"
    assert found["status_notes"] == "Срок подтверждения истёк: решение считается принятым"
    assert (confirm.status, refute.status) == (409, 409)


# ---------------------------------------------------------------- the sandbox control


async def test_advance_moves_a_request_at_once(city: ContractClient) -> None:
    request_id = await post(city)

    in_work = await city.advance_report(request_id, {"to": "in_work"})
    answer = await city.advance_report(
        request_id, {"to": "answered", "status_notes": "Яма заделана", "media_url": PHOTO}
    )

    assert in_work.status == 200
    assert in_work.body[0]["extended_status"] == "in_work"
    [found] = answer.body
    assert (found["extended_status"], found["status_notes"]) == ("answered", "Яма заделана")
    assert found["answer_media_url"] == PHOTO
    assert found["confirm_until"] == "2026-03-25T09:30:00+03:00"  # now + 15 days
    assert [u["extended_status"] for u in await history(city, request_id)] == [
        "moderation",
        "in_work",
        "answered",
    ]
    confirmed = await city.report_action(request_id, "confirm", {"account_id": AUTHOR})
    assert confirmed.status == 200


async def test_advance_to_rejected_closes_with_the_reason(city: ContractClient) -> None:
    request_id = await post(city)
    reason = "Отклонено: дорога не находится на содержании города"

    answer = await city.advance_report(request_id, {"to": "rejected", "status_notes": reason})

    assert (answer.body[0]["status"], answer.body[0]["extended_status"]) == ("closed", "rejected")
    assert answer.body[0]["status_notes"] == reason
    later = await city.advance_report(request_id, {"to": "in_work"})
    assert later.status == 409
    assert later.body[0]["code"] == 409


async def test_advance_to_closed_with_the_default_note(city: ContractClient) -> None:
    request_id = await post(city)
    await city.advance_report(request_id, {"to": "in_work"})

    answer = await city.advance_report(request_id, {"to": "closed"})

    [found] = answer.body
    assert (found["status"], found["extended_status"]) == ("closed", "closed")
    assert found["status_notes"] == "Работы завершены, сообщение закрыто"
    assert found["updated_datetime"] == "2026-03-10T09:30:00+03:00"
    again = await city.advance_report(request_id, {"to": "closed"})
    assert again.status == 409


async def test_advance_to_answered_without_a_photo_makes_one(city: ContractClient) -> None:
    request_id = await post(city)

    answer = await city.advance_report(request_id, {"to": "answered"})

    photo = answer.body[0]["answer_media_url"]
    status, content_type, data = await city.fetch_media(photo)
    assert (status, content_type) == (200, "image/jpeg")
    assert data.startswith(b"\xff\xd8\xff")


@pytest.mark.parametrize(
    "body",
    [
        {"to": "done"},
        {"to": "moderation"},
        {"to": "returned"},
        {},
        {"to": "in_work", "colour": "red"},
        {"to": "answered", "status_notes": ""},
        {"to": "answered", "media_url": "not a url"},
        [],
    ],
)
async def test_invalid_advance_bodies_are_400(city: ContractClient, body: Any) -> None:
    request_id = await post(city)

    answer = await city.advance_report(request_id, body)

    assert answer.status == 400
    assert await state(city, request_id) == ("open", "moderation")


async def test_advance_of_an_unknown_request_is_404(city: ContractClient) -> None:
    answer = await city.advance_report("NG-2026-999999", {"to": "in_work"})

    assert answer.status == 404


# ---------------------------------------------------------------- 8 working days


@pytest.mark.parametrize(
    ("made", "expected"),
    [
        ("2026-03-10T09:30:00+03:00", "2026-03-20T09:30:00+03:00"),  # Tuesday → Friday
        ("2026-03-13T18:00:00+03:00", "2026-03-25T18:00:00+03:00"),  # Friday → Wednesday
        ("2026-03-14T10:00:00+03:00", "2026-03-25T10:00:00+03:00"),  # Saturday
        ("2026-03-15T23:59:00+03:00", "2026-03-25T23:59:00+03:00"),  # Sunday
        ("2026-03-16T08:00:00+03:00", "2026-03-26T08:00:00+03:00"),  # Monday → Thursday
    ],
)
async def test_expected_datetime_is_8_working_days_later(
    city: ContractClient, made: str, expected: str
) -> None:
    await city.set_clock(datetime.fromisoformat(made))

    found = await city.report_now(await post(city))

    assert found["requested_datetime"] == made
    assert found["expected_datetime"] == expected
    day = datetime.fromisoformat(expected).strftime("%d.%m.%Y")
    assert day in found["service_notice"]


# ---------------------------------------------------------------- faults


async def test_faults_reach_open311_with_the_error_array(city: ContractClient) -> None:
    await city.put_faults({"status": 503})
    try:
        failing = await city.request("GET", "/open311/v2/services.json")
    finally:
        await city.put_faults({})

    assert failing.status == 503
    assert failing.body[0]["code"] == 503
    assert (await city.request("GET", "/open311/v2/services.json")).status == 200


async def test_a_lost_answer_still_created_the_request(city: ContractClient) -> None:
    before = (await city.reports(account_id="C-100001")).body
    await city.put_faults({"fail_after_processing": 1})

    lost = await city.post_report(
        {"service_code": "road-01", "address_id": "MSK-0003", "account_id": "C-100001"}
    )

    assert lost.status == 504
    assert lost.body[0]["code"] == 504
    after = (await city.reports(account_id="C-100001")).body
    assert (len(before), len(after)) == (0, 1)
