"""«Наш город» at the sandbox: posting reports (GeoReport v2 POST requests) and its refusals."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import pytest

from .sandbox_client import OPEN311, ContractClient

TVERSKAYA_7 = {"lat": "55.7577", "long": "37.6107"}
POTHOLE = "road-01"
LAMP = "light-01"  # lamp_count is required
PLAYGROUND = "yard-02"  # photo required, elements (multivaluelist) required
GRAFFITI = "improve-01"  # photo required
MOWING = "green-04"  # summer only
SNOW = "winter-01"  # winter only
PHOTO = "https://photos.example.org/pothole.jpg"


def report(**fields: str) -> dict[str, str]:
    return {"service_code": POTHOLE, **TVERSKAYA_7, **fields}


def descriptions(answer: Any) -> list[str]:
    return [error["description"] for error in answer.body]


# ---------------------------------------------------------------- created


async def test_a_report_with_coordinates(city: ContractClient) -> None:
    answer = await city.post_report(
        report(account_id="C-100003", description="Яма у перехода\nглубокая")
    )

    assert answer.status == 201
    [created] = answer.body
    assert re.fullmatch(r"NG-2026-\d{6}", created["service_request_id"])
    assert created["account_id"] == "C-100003"
    assert "20.03.2026" in created["service_notice"]
    found = await city.report_now(created["service_request_id"])
    assert found["service_code"] == POTHOLE
    assert found["service_name"] == "Яма на дороге"
    assert (found["lat"], found["long"]) == (55.7577, 37.6107)
    # the nearest gazetteer address names the point
    assert (found["address"], found["address_id"], found["zipcode"]) == (
        "Тверская ул., 7",
        "MSK-0001",
        "125009",
    )
    assert (found["status"], found["extended_status"]) == ("open", "moderation")
    assert found["description"] == "Яма у перехода\nглубокая"
    assert found["requested_datetime"] == "2026-03-10T09:30:00+03:00"
    assert found["updated_datetime"] == found["requested_datetime"]
    assert found["agency_responsible"] == "ГБУ «Автомобильные дороги»"
    assert found["service_notice"] == created["service_notice"]
    assert (found["media_url"], found["media_urls"]) == (None, [])
    assert (found["answer_media_url"], found["confirm_until"]) == (None, None)
    assert found["account_id"] == "C-100003"


async def test_posted_ids_are_new_and_distinct(city: ContractClient) -> None:
    first = await city.report_id(report())
    second = await city.report_id(report())

    assert first != second
    seeded = {r["service_request_id"] for r in (await city.reports()).body}
    assert first in seeded and second in seeded


async def test_a_report_by_address_string_takes_the_gazetteer_point(city: ContractClient) -> None:
    request_id = await city.report_id(
        {"service_code": POTHOLE, "address_string": "тверская улица, д. 7"}
    )

    found = await city.report_now(request_id)
    assert (found["lat"], found["long"]) == (55.7577, 37.6107)
    assert found["address"] == "тверская улица, д. 7"
    assert (found["address_id"], found["zipcode"]) == ("MSK-0001", "125009")


async def test_an_unknown_address_string_is_kept_without_coordinates(
    city: ContractClient,
) -> None:
    text = "у третьего подъезда, во дворе за школой"
    request_id = await city.report_id({"service_code": POTHOLE, "address_string": text})

    found = await city.report_now(request_id)
    assert found["address"] == text
    assert (found["lat"], found["long"], found["address_id"]) == (None, None, None)


async def test_a_report_by_address_id(city: ContractClient) -> None:
    request_id = await city.report_id({"service_code": POTHOLE, "address_id": "MSK-0004"})

    found = await city.report_now(request_id)
    assert (found["address"], found["address_id"]) == ("ул. Арбат, 10", "MSK-0004")
    assert found["lat"] is not None and found["long"] is not None


async def test_several_photos_with_media_url_and_the_repeated_extension(
    city: ContractClient,
) -> None:
    photos = [f"https://photos.example.org/{n}.jpg" for n in range(3)]
    form = [
        ("service_code", GRAFFITI),
        ("address_string", "ул. Мясницкая, 20"),
        ("media_url", photos[0]),
        ("media_url[]", photos[1]),
        ("media_url[]", photos[2]),
    ]

    found = await city.report_now(await city.report_id(form))

    assert found["media_url"] == photos[0]
    assert found["media_urls"] == photos


async def test_attributes_are_accepted_when_they_fit(city: ContractClient) -> None:
    lamp = await city.post_report(
        {"service_code": LAMP, **TVERSKAYA_7, "attribute[lamp_count]": "several"}
    )
    pothole = await city.post_report(report(**{"attribute[pit_size]": "large"}))
    playground = await city.post_report(
        [
            ("service_code", PLAYGROUND),
            ("address_id", "MSK-0010"),
            ("media_url", PHOTO),
            ("attribute[elements][]", "swing"),
            ("attribute[elements][]", "slide"),
        ]
    )
    unknown_attribute = await city.post_report(report(**{"attribute[colour]": "red"}))

    assert [lamp.status, pothole.status, playground.status, unknown_attribute.status] == [201] * 4


async def test_an_empty_argument_counts_as_not_given(city: ContractClient) -> None:
    answer = await city.post_report(
        {
            "service_code": POTHOLE,
            "lat": "",
            "long": "",
            "address_string": "Тверская ул., 7",
            "description": "",
            "jurisdiction_id": "",
        }
    )

    assert answer.status == 201
    found = await city.report_now(answer.body[0]["service_request_id"])
    assert found["description"] is None
    assert found["address_id"] == "MSK-0001"


async def test_a_description_of_4000_characters_and_a_less_than_sign_are_fine(
    city: ContractClient,
) -> None:
    longest = await city.post_report(report(description="я" * 4000))
    heart = await city.post_report(report(description="Спасибо <3, и 2 < 5"))

    assert (longest.status, heart.status) == (201, 201)


async def test_a_winter_theme_in_winter(city: ContractClient) -> None:
    answer = await city.post_report({"service_code": SNOW, **TVERSKAYA_7})

    assert answer.status == 201


# ---------------------------------------------------------------- refused


async def test_missing_or_wrong_api_key_is_403(city: ContractClient) -> None:
    for key in (None, "", "wrong-key"):
        answer = await city.post_report(report(), api_key=key)
        assert answer.status == 403, key
        assert answer.body[0]["code"] == 403
        assert "api_key" in answer.body[0]["description"]


async def test_service_code_missing_is_400_and_unknown_is_404(city: ContractClient) -> None:
    missing = await city.post_report(dict(TVERSKAYA_7))
    unknown = await city.post_report(report(service_code="road-99"))

    assert missing.status == 400
    assert missing.body == [{"code": 400, "description": "service_code was not provided"}]
    assert unknown.status == 404
    assert unknown.body[0]["code"] == 404 and "road-99" in unknown.body[0]["description"]


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        ({"service_code": POTHOLE}, "A full location parameter must be submitted"),
        ({"service_code": POTHOLE, "lat": "55.75"}, "lat & long must both be sent"),
        ({"service_code": POTHOLE, "lat": "север", "long": "37.6"}, "lat & long"),
        ({"service_code": POTHOLE, "address_id": "MSK-9999"}, "address_id MSK-9999"),
        (report(lat="59.9386", long="30.3141"), "Точка за пределами города"),
        (report(lat="55.8970", long="37.4297"), "Точка за пределами города"),  # Химки
        (report(description="я" * 4001), "Описание длиннее 4000 символов"),
        (report(description="<b>Яма</b>"), "Описание не может содержать HTML или код"),
        (report(description="<script>alert(1)</script>"), "не может содержать HTML"),
        (report(media_url="ftp://photos.example.org/a.jpg"), "media_url must be an http(s)"),
        (report(media_url="не ссылка"), "media_url must be an http(s)"),
        (
            {"service_code": GRAFFITI, **TVERSKAYA_7},
            "Для темы «Граффити на стене» нужна хотя бы одна фотография",
        ),
        (
            {"service_code": MOWING, **TVERSKAYA_7},
            "Тема «Не скошена трава» доступна только с 01.05 по 30.09",
        ),
        ({"service_code": LAMP, **TVERSKAYA_7}, "Не заполнено поле «Сколько фонарей не горит»"),
        (
            {"service_code": LAMP, **TVERSKAYA_7, "attribute[lamp_count]": "all"},
            "Поле «Сколько фонарей не горит»: нет варианта 'all'",
        ),
        (report(**{"attribute[depth_cm]": "глубокая"}), "Поле «Глубина ямы, см»: нужно число"),
        (
            {"service_code": "build-01", **TVERSKAYA_7, "attribute[noticed_at]": "вчера"},
            "нужны дата и время ISO 8601",
        ),
        (
            {
                "service_code": PLAYGROUND,
                **TVERSKAYA_7,
                "media_url": PHOTO,
                "attribute[elements][]": "trampoline",
            },
            "Поле «Что повреждено»: нет варианта 'trampoline'",
        ),
    ],
)
async def test_invalid_reports_are_400(
    city: ContractClient, form: dict[str, str], expected: str
) -> None:
    answer = await city.post_report(form)

    assert answer.status == 400, answer.body
    assert {error["code"] for error in answer.body} == {400}
    assert any(expected in text for text in descriptions(answer)), answer.body


async def test_outside_the_city_is_exactly_that_error(city: ContractClient) -> None:
    answer = await city.post_report(report(lat="59.9386", long="30.3141"))

    assert answer.body == [{"code": 400, "description": "Точка за пределами города"}]


async def test_every_problem_is_listed_at_once(city: ContractClient) -> None:
    answer = await city.post_report(
        {"service_code": GRAFFITI, "lat": "59.9386", "long": "30.3141", "description": "<i>x</i>"}
    )

    assert answer.status == 400
    assert len(answer.body) == 3
    assert "Точка за пределами города" in descriptions(answer)


async def test_more_than_ten_photos_are_refused(city: ContractClient) -> None:
    form = [("media_url[]", f"https://photos.example.org/{n}.jpg") for n in range(11)]

    answer = await city.post_report([*report().items(), *form])

    assert answer.status == 400
    assert any("at most 10" in text for text in descriptions(answer))


async def test_a_refused_report_creates_nothing(city: ContractClient) -> None:
    before = (await city.reports()).body
    await city.post_report(report(lat="59.9386", long="30.3141"))
    await city.post_report(report(), api_key="wrong")

    assert (await city.reports()).body == before


# ---------------------------------------------------------------- one request


async def test_one_request_is_an_array_of_one(city: ContractClient) -> None:
    answer = await city.report("NG-2026-000101")

    assert answer.status == 200
    assert isinstance(answer.body, list) and len(answer.body) == 1
    assert answer.body[0]["service_request_id"] == "NG-2026-000101"


async def test_an_unknown_request_is_a_404_error_array(city: ContractClient) -> None:
    for unknown in ("NG-2026-999999", "nothing"):
        answer = await city.report(unknown)
        assert answer.status == 404
        assert answer.body[0]["code"] == 404
        assert unknown in answer.body[0]["description"]


async def test_datetimes_carry_the_moscow_offset(city: ContractClient) -> None:
    for found in (await city.reports(status="open,closed")).body:
        for name in ("requested_datetime", "updated_datetime", "expected_datetime"):
            assert found[name].endswith("+03:00"), (name, found[name])
        assert found["confirm_until"] is None or found["confirm_until"].endswith("+03:00")


async def test_the_form_may_also_come_as_multipart(city: ContractClient) -> None:
    form = aiohttp.FormData(default_to_multipart=True)
    for name, value in {"api_key": "sandbox-open311-key", **report()}.items():
        form.add_field(name, value)

    answer = await city.request("POST", f"{OPEN311}/requests.json", data=form)

    assert answer.status == 201
