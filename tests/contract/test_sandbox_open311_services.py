"""«Наш город» at the sandbox: Open311 discovery, the themes (services) and their definitions."""

from __future__ import annotations

import re
from collections import Counter

from .sandbox_client import OPEN311, ContractClient

GROUPS = {
    "Дороги",
    "Дворы",
    "Освещение",
    "Мусор и уборка",
    "Благоустройство",
    "Транспорт",
    "Парки",
    "Зимняя уборка",
    "Подъезды и дома",
    "Торговля",
    "Парковки",
}


async def test_discovery_names_this_sandbox_as_a_json_test_endpoint(city: ContractClient) -> None:
    answer = await city.request("GET", f"{OPEN311}/discovery.json")

    assert answer.status == 200
    [endpoint] = answer.body["endpoints"]
    assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint["url"] == city.base_url + OPEN311
    assert (endpoint["type"], endpoint["formats"]) == ("test", ["application/json"])
    assert "sandbox-open311-key" in answer.body["key_service"]


async def test_about_two_hundred_themes_in_the_city_groups(city: ContractClient) -> None:
    services = await city.services()

    assert 180 <= len(services) <= 220
    groups = Counter(service["group"] for service in services)
    assert GROUPS <= set(groups)
    assert all(count >= 8 for count in groups.values()), groups
    codes = [service["service_code"] for service in services]
    names = [service["service_name"] for service in services]
    assert len(set(codes)) == len(codes) and len(set(names)) == len(names)
    assert {service["type"] for service in services} == {"realtime"}
    for service in services:
        assert re.search("[а-яё]", service["service_name"].lower())
        keywords = service["keywords"].split(",")
        assert len(keywords) >= 2 and all(word and word == word.strip() for word in keywords)


async def test_well_known_themes_and_their_keywords(city: ContractClient) -> None:
    by_name = {service["service_name"]: service for service in await city.services()}

    def keywords(name: str) -> list[str]:
        return by_name[name]["keywords"].split(",")

    # The leading keywords as the catalogue has always had them; everyday phrases follow.
    assert keywords("Яма на дороге")[:3] == ["яма", "выбоина", "асфальт"]
    assert by_name["Яма на дороге"]["group"] == "Дороги"
    assert keywords("Не горит фонарь")[:3] == ["фонарь", "освещение", "свет"]
    assert by_name["Не горит фонарь"]["group"] == "Освещение"
    assert keywords("Переполнены мусорные контейнеры")[:3] == ["мусор", "контейнер", "бак"]
    assert by_name["Переполнены мусорные контейнеры"]["group"] == "Мусор и уборка"


async def test_seasonal_and_photo_flags(city: ContractClient) -> None:
    services = await city.services()
    by_name = {service["service_name"]: service for service in services}

    winter = [s for s in services if s["group"] == "Зимняя уборка"]
    assert winter and all(s["seasonal"] == {"from": "11-01", "to": "04-15"} for s in winter)
    assert by_name["Не убран снег во дворе"]["seasonal"] == {"from": "11-01", "to": "04-15"}
    assert by_name["Не скошена трава"]["seasonal"] == {"from": "05-01", "to": "09-30"}
    assert by_name["Яма на дороге"]["seasonal"] is None
    assert by_name["Граффити на стене"]["photo_required"] is True
    assert by_name["Яма на дороге"]["photo_required"] is False
    photo = sum(service["photo_required"] for service in services)
    seasonal = sum(service["seasonal"] is not None for service in services)
    assert 10 <= photo < len(services) // 2
    assert 10 <= seasonal < len(services) // 2


async def test_metadata_themes_define_their_attributes(city: ContractClient) -> None:
    services = await city.services()
    with_metadata = [s["service_code"] for s in services if s["metadata"]]

    assert len(with_metadata) >= 5
    for code in with_metadata:
        answer = await city.service_definition(code)
        assert answer.status == 200
        assert answer.body["service_code"] == code
        attributes = answer.body["attributes"]
        assert 1 <= len(attributes) <= 3  # the lift: a notice and two questions
        assert [a["order"] for a in attributes] == list(range(1, len(attributes) + 1))
        for attribute in attributes:
            listed = attribute["datatype"] in ("singlevaluelist", "multivaluelist")
            assert bool(attribute["values"]) == listed, attribute


async def test_the_pothole_asks_for_its_size(city: ContractClient) -> None:
    answer = await city.service_definition("road-01")

    size = answer.body["attributes"][0]
    assert (size["code"], size["datatype"], size["description"]) == (
        "pit_size",
        "singlevaluelist",
        "Размер ямы",
    )
    assert size["variable"] is True and size["required"] is False
    assert [value["key"] for value in size["values"]] == ["small", "medium", "large"]


async def test_every_attribute_datatype_is_used(city: ContractClient) -> None:
    datatypes: set[str] = set()
    informational = []
    for service in await city.services():
        if service["metadata"]:
            for attribute in (await city.service_definition(service["service_code"])).body[
                "attributes"
            ]:
                datatypes.add(attribute["datatype"])
                if not attribute["variable"]:
                    informational.append(attribute["code"])

    assert datatypes == {
        "string",
        "number",
        "datetime",
        "text",
        "singlevaluelist",
        "multivaluelist",
    }
    assert informational == ["lift_notice"]


async def test_a_theme_without_metadata_has_no_attributes(city: ContractClient) -> None:
    answer = await city.service_definition("road-02")

    assert answer.status == 200
    assert answer.body == {"service_code": "road-02", "attributes": []}


async def test_unknown_service_definition_is_a_404_error_array(city: ContractClient) -> None:
    answer = await city.service_definition("no-such-theme")

    assert answer.status == 404
    assert answer.body[0]["code"] == 404
    assert "no-such-theme" in answer.body[0]["description"]


async def test_unknown_open311_path_answers_with_an_error_array(city: ContractClient) -> None:
    answer = await city.request("GET", f"{OPEN311}/services.xml", check=False)

    assert answer.status == 404
    assert answer.body == [{"code": 404, "description": "Not Found"}]
    wrong_method = await city.request("DELETE", f"{OPEN311}/services.json", check=False)
    assert wrong_method.status == 405
    assert wrong_method.body[0]["code"] == 405
    assert "GET" in wrong_method.headers["Allow"]


async def test_jurisdiction_id_is_ignored(city: ContractClient) -> None:
    plain = await city.services()
    answer = await city.request(
        "GET", f"{OPEN311}/services.json", params={"jurisdiction_id": "mos.ru"}
    )

    assert answer.body == plain
