"""Open311 GeoReport v2 conformance of the city sandbox, written from the specification.

The specification is http://wiki.open311.org/GeoReport_v2. The suite is an independent check of the
server: it reads nothing of the implementation and imports only ``SandboxServer``.

Deployment facts used here: the base URL is ``<server>/open311/v2``, the API key is
``sandbox-open311-key``, the city is Moscow (Тверская ул. is inside, Saint Petersburg is not),
about two hundred services with Russian names, some with ``metadata: true`` and some with the
extension field ``photo_required: true``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote, urlparse

import aiohttp
import pytest

from sandbox import SandboxServer

API_KEY = "sandbox-open311-key"
PREFIX = "/open311/v2"
SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
TVERSKAYA = (55.7575, 37.6130)
SAINT_PETERSBURG = (59.93, 30.31)
ACCOUNT_ID = "C-100003"
MEDIA_URL = "https://example.org/open311/pothole.jpg"
MOSCOW = timezone(timedelta(hours=3))

SERVICE_FIELDS = {
    "service_code": str,
    "service_name": str,
    "description": str,
    "metadata": bool,
    "type": str,
    "keywords": str,
    "group": str,
}
SERVICE_TYPES = {"realtime", "batch", "blackbox"}
DATATYPES = {"string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"}
LIST_DATATYPES = {"singlevaluelist", "multivaluelist"}
STATUSES = {"open", "closed"}
DATETIME_FIELDS = ("requested_datetime", "updated_datetime", "expected_datetime")
OPTIONAL_TEXT_FIELDS = (
    "status_notes",
    "service_name",
    "description",
    "agency_responsible",
    "service_notice",
    "address",
    "media_url",
)

NOT_JSON = object()


# ---------------------------------------------------------------- client


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    text: str
    body: Any

    def __str__(self) -> str:
        return f"HTTP {self.status} {self.content_type}: {self.text[:600]}"


class GeoReport:
    """A bare HTTP client for the GeoReport v2 endpoints (JSON format)."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base

    async def get(self, path: str, params: dict[str, str] | None = None) -> Answer:
        async with self.http.get(f"{self.base}/{path}", params=params) as response:
            return await self._answer(response)

    async def post_request(self, form: list[tuple[str, str]]) -> Answer:
        async with self.http.post(f"{self.base}/requests.json", data=form) as response:
            return await self._answer(response)

    @staticmethod
    async def _answer(response: aiohttp.ClientResponse) -> Answer:
        text = await response.text()
        try:
            body: Any = json.loads(text)
        except ValueError:
            body = NOT_JSON
        return Answer(response.status, response.content_type, text, body)


@dataclass(frozen=True)
class Postable:
    """A service a request can be posted to, with what it needs besides a location."""

    code: str
    extra: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Created:
    id: str
    service_code: str
    description: str
    lat: float
    long: float


# ---------------------------------------------------------------- helpers


def assert_json(answer: Answer) -> Any:
    assert answer.body is not NOT_JSON, f"not JSON: {answer}"
    assert answer.content_type == "application/json", f"wrong content type: {answer}"
    return answer.body


def assert_error(answer: Answer, *statuses: int) -> None:
    """An error: an expected HTTP status, body [{"code": int, "description": str}, …]."""
    assert answer.status in statuses, f"expected HTTP {statuses}, got {answer}"
    body = assert_json(answer)
    assert isinstance(body, list), f"an error body must be a JSON array: {answer}"
    assert body, f"an error array must not be empty: {answer}"
    for error in body:
        assert isinstance(error, dict), f"each error must be an object: {answer}"
        assert type(error.get("code")) is int, f"error code must be an integer: {answer}"
        description = error.get("description")
        assert isinstance(description, str), f"error description must be a string: {answer}"
        assert description.strip(), f"error description must not be blank: {answer}"


def assert_ok_array(answer: Answer, *statuses: int) -> list[Any]:
    assert answer.status in (statuses or (200,)), str(answer)
    body = assert_json(answer)
    assert isinstance(body, list), f"a GeoReport JSON answer must be an array: {answer}"
    return body


def moment(value: Any, name: str) -> datetime:
    """A GeoReport datetime: ISO 8601 with a timezone (Z or ±HH:MM)."""
    assert isinstance(value, str), f"{name} must be a string, got {value!r}"
    parsed = datetime.fromisoformat(value)
    assert parsed.tzinfo is not None, f"{name} {value!r} carries no timezone"
    assert parsed.utcoffset() is not None, f"{name} {value!r} carries no timezone"
    return parsed


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def request_id(value: Any) -> str:
    assert isinstance(value, str | int) and not isinstance(value, bool), (
        f"service_request_id must be a string or an integer, got {value!r}"
    )
    assert str(value).strip(), "service_request_id must not be blank"
    return str(value)


def assert_request_element(element: Any) -> dict[str, Any]:
    """One element of GET requests(.json|/{id}.json) as the specification defines it."""
    assert isinstance(element, dict), f"a service request must be an object: {element!r}"
    assert "service_request_id" in element, f"no service_request_id: {element}"
    request_id(element["service_request_id"])
    assert element.get("status") in STATUSES, f"status must be open or closed: {element}"
    for name in DATETIME_FIELDS:
        if element.get(name) is not None:
            moment(element[name], name)
    for name in ("lat", "long"):
        if element.get(name) is not None:
            assert is_number(element[name]), f"{name} must be a number: {element}"
    for name in OPTIONAL_TEXT_FIELDS:
        if element.get(name) is not None:
            assert isinstance(element[name], str), f"{name} must be a string: {element}"
    return element


def ids_of(elements: list[Any]) -> list[str]:
    return [
        request_id(assert_request_element(element)["service_request_id"]) for element in elements
    ]


def marker() -> str:
    return uuid.uuid4().hex[:12]


def report_form(service: Postable, **fields: str | None) -> list[tuple[str, str]]:
    """A form-encoded POST requests.json; a field given as None is left out."""
    values: dict[str, str | None] = {
        "api_key": API_KEY,
        "service_code": service.code,
        "lat": str(TVERSKAYA[0]),
        "long": str(TVERSKAYA[1]),
        "description": f"Яма на проезжей части, проверка {marker()}",
    }
    values.update(fields)
    return [(name, value) for name, value in values.items() if value is not None] + list(
        service.extra
    )


def attribute_answer(attribute: dict[str, Any]) -> list[tuple[str, str]]:
    """A valid answer to one attribute of a service definition, as form pairs."""
    code, datatype = attribute["code"], attribute["datatype"]
    if datatype == "singlevaluelist":
        return [(f"attribute[{code}]", str(attribute["values"][0]["key"]))]
    if datatype == "multivaluelist":
        return [(f"attribute[{code}][]", str(attribute["values"][0]["key"]))]
    if datatype == "number":
        return [(f"attribute[{code}]", "1")]
    if datatype == "datetime":
        return [(f"attribute[{code}]", datetime.now(MOSCOW).replace(microsecond=0).isoformat())]
    return [(f"attribute[{code}]", "Проверка")]


def required_attributes(definition: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        attribute
        for attribute in definition["attributes"]
        if attribute.get("variable", True) and attribute.get("required") is True
    ]


async def resolve(georeport: GeoReport, element: dict[str, Any]) -> str:
    """The service_request_id of a POST answer, through GET tokens/{token}.json if need be."""
    if element.get("service_request_id") is not None:
        return request_id(element["service_request_id"])
    token = element.get("token")
    assert isinstance(token, str) and token, f"neither service_request_id nor token: {element}"
    answer = await georeport.get(f"tokens/{quote(token, safe='')}.json")
    body = assert_ok_array(answer)
    assert len(body) == 1, f"tokens/{token}.json must answer an array of one: {answer}"
    assert body[0].get("service_request_id") is not None, f"token not resolved yet: {answer}"
    return request_id(body[0]["service_request_id"])


async def accepted(georeport: GeoReport, form: list[tuple[str, str]]) -> tuple[dict[str, Any], str]:
    """POST requests.json that must succeed: the first element of the answer and the id."""
    answer = await georeport.post_request(form)
    body = assert_ok_array(answer, 200, 201)
    assert body, f"POST requests.json answered an empty array: {answer}"
    first = body[0]
    assert isinstance(first, dict), f"the answer's elements must be objects: {answer}"
    assert first.get("service_request_id") is not None or first.get("token") is not None, (
        f"the answer carries neither service_request_id nor token: {answer}"
    )
    return first, await resolve(georeport, first)


async def create(georeport: GeoReport, service: Postable, **fields: str | None) -> Created:
    form = report_form(service, **fields)
    _, new_id = await accepted(georeport, form)
    values = dict(form)
    return Created(
        id=new_id,
        service_code=service.code,
        description=values["description"],
        lat=float(values.get("lat", "nan")),
        long=float(values.get("long", "nan")),
    )


async def fetch(georeport: GeoReport, new_id: str) -> dict[str, Any]:
    answer = await georeport.get(f"requests/{quote(new_id, safe='')}.json")
    body = assert_ok_array(answer)
    assert len(body) == 1, f"requests/{new_id}.json must answer an array of exactly one: {answer}"
    return assert_request_element(body[0])


async def listing(georeport: GeoReport, **params: str) -> list[Any]:
    return assert_ok_array(await georeport.get("requests.json", params))


def iso(value: datetime) -> str:
    return value.isoformat()


def iso_z(value: datetime) -> str:
    return value.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"


# ---------------------------------------------------------------- fixtures


@pytest.fixture
async def georeport() -> AsyncIterator[GeoReport]:
    timeout = aiohttp.ClientTimeout(total=10)
    async with SandboxServer() as server, aiohttp.ClientSession(timeout=timeout) as http:
        yield GeoReport(http, server.url + PREFIX)


@pytest.fixture
async def services(georeport: GeoReport) -> list[dict[str, Any]]:
    body = assert_ok_array(await georeport.get("services.json"))
    assert body, "services.json is empty"
    return body


@pytest.fixture
async def definitions(
    georeport: GeoReport, services: list[dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """services/{code}.json of every service with metadata: true, by code."""
    found = {}
    for service in services:
        if service.get("metadata") is True:
            code = service["service_code"]
            answer = await georeport.get(f"services/{quote(code, safe='')}.json")
            assert answer.status == 200, f"services/{code}.json: {answer}"
            found[code] = assert_json(answer)
    return found


@pytest.fixture
async def postables(georeport: GeoReport, services: list[dict[str, Any]]) -> list[Postable]:
    """Up to two services that take a request without a photo, plainest first."""
    plain = [s for s in services if not s.get("photo_required")]
    assert plain, "every service requires a photo"
    plain.sort(key=lambda service: service.get("metadata") is True)
    chosen: list[Postable] = []
    for service in plain[:2]:
        code = service["service_code"]
        extra: list[tuple[str, str]] = []
        if service.get("metadata") is True:
            answer = await georeport.get(f"services/{quote(code, safe='')}.json")
            definition = assert_json(answer)
            for attribute in required_attributes(definition):
                extra += attribute_answer(attribute)
        chosen.append(Postable(code, tuple(extra)))
    return chosen


@pytest.fixture
def postable(postables: list[Postable]) -> Postable:
    return postables[0]


@pytest.fixture
async def created(georeport: GeoReport, postable: Postable) -> Created:
    return await create(georeport, postable)


# ---------------------------------------------------------------- discovery


async def test_discovery_lists_the_georeport_v2_endpoint(georeport: GeoReport) -> None:
    answer = await georeport.get("discovery.json")

    assert answer.status == 200, str(answer)
    body = assert_json(answer)
    assert isinstance(body, dict), f"discovery.json must be an object: {answer}"
    endpoints = body.get("endpoints")
    assert isinstance(endpoints, list) and endpoints, f"no endpoints: {answer}"
    for endpoint in endpoints:
        assert isinstance(endpoint, dict), str(answer)
        assert isinstance(endpoint.get("specification"), str), f"no specification: {endpoint}"
        assert isinstance(endpoint.get("url"), str), f"no url: {endpoint}"
        if endpoint.get("changeset") is not None:
            moment(endpoint["changeset"], "changeset")
        if endpoint.get("type") is not None:
            assert endpoint["type"] in {"production", "test"}, str(endpoint)
    georeport_v2 = [e for e in endpoints if e["specification"] == SPECIFICATION]
    assert georeport_v2, f"no endpoint declares {SPECIFICATION}: {answer}"
    for endpoint in georeport_v2:
        assert urlparse(endpoint["url"]).path.rstrip("/") == PREFIX, str(endpoint)
        if endpoint.get("formats") is not None:
            assert "application/json" in endpoint["formats"], str(endpoint)


# ---------------------------------------------------------------- services


async def test_services_carry_every_spec_field_with_its_type(
    georeport: GeoReport,
) -> None:
    answer = await georeport.get("services.json")

    body = assert_ok_array(answer)
    assert body, "services.json is empty"
    for service in body:
        assert isinstance(service, dict), f"a service must be an object: {service!r}"
        for name, kind in SERVICE_FIELDS.items():
            assert name in service, f"{name} missing from {service}"
            assert isinstance(service[name], kind), f"{name} must be {kind.__name__}: {service}"
        assert service["service_code"].strip(), f"blank service_code: {service}"
        assert service["service_name"].strip(), f"blank service_name: {service}"
        assert service["type"] in SERVICE_TYPES, f"type must be one of {SERVICE_TYPES}: {service}"


async def test_service_codes_are_unique(services: list[dict[str, Any]]) -> None:
    codes = [service.get("service_code") for service in services]

    duplicates = sorted({code for code in codes if codes.count(code) > 1}, key=str)
    assert duplicates == []


async def test_the_city_offers_about_two_hundred_services_some_with_metadata(
    services: list[dict[str, Any]],
) -> None:
    assert 150 <= len(services) <= 300
    assert any(service.get("metadata") is True for service in services)
    assert any(service.get("metadata") is False for service in services)


async def test_every_metadata_service_defines_its_attributes(
    services: list[dict[str, Any]], definitions: dict[str, dict[str, Any]]
) -> None:
    assert definitions, "no service has metadata: true"
    for code, definition in definitions.items():
        assert isinstance(definition, dict), f"services/{code}.json must be an object"
        assert definition.get("service_code") == code, definition
        attributes = definition.get("attributes")
        assert isinstance(attributes, list) and attributes, f"{code}: no attributes"
        attribute_codes = []
        for attribute in attributes:
            assert isinstance(attribute, dict), f"{code}: {attribute!r}"
            assert isinstance(attribute.get("variable"), bool), f"{code}: {attribute}"
            assert isinstance(attribute.get("code"), str) and attribute["code"], attribute
            assert attribute.get("datatype") in DATATYPES, f"{code}: {attribute}"
            assert isinstance(attribute.get("required"), bool), f"{code}: {attribute}"
            assert "datatype_description" in attribute, f"{code}: {attribute}"
            assert isinstance(attribute["datatype_description"], str | None), attribute
            assert type(attribute.get("order")) is int, f"{code}: order {attribute}"
            assert isinstance(attribute.get("description"), str), f"{code}: {attribute}"
            if attribute["datatype"] in LIST_DATATYPES:
                values = attribute.get("values")
                assert isinstance(values, list) and values, f"{code}: list without values"
                for value in values:
                    assert isinstance(value, dict), f"{code}: {value!r}"
                    assert isinstance(value.get("key"), str | int), f"{code}: {value}"
                    assert not isinstance(value["key"], bool), f"{code}: {value}"
                    assert isinstance(value.get("name"), str) and value["name"], value
                keys = [value["key"] for value in values]
                assert len(keys) == len(set(keys)), f"{code}: duplicate value keys {keys}"
            attribute_codes.append(attribute["code"])
        assert len(attribute_codes) == len(set(attribute_codes)), f"{code}: duplicate codes"


async def test_unknown_service_definition_is_404(georeport: GeoReport) -> None:
    answer = await georeport.get("services/no-such-service-42.json")

    assert_error(answer, 404)


# ---------------------------------------------------------------- POST requests.json


async def test_post_with_lat_long_answers_an_array_with_an_id(
    georeport: GeoReport, postable: Postable
) -> None:
    answer = await georeport.post_request(report_form(postable))

    body = assert_ok_array(answer, 200, 201)
    assert len(body) >= 1, str(answer)
    first = body[0]
    assert isinstance(first, dict), str(answer)
    if first.get("service_request_id") is not None:
        request_id(first["service_request_id"])
    else:
        assert isinstance(first.get("token"), str) and first["token"], str(answer)
    if first.get("service_notice") is not None:
        assert isinstance(first["service_notice"], str), str(answer)


async def test_post_with_only_an_address_string_is_accepted(
    georeport: GeoReport, postable: Postable
) -> None:
    form = report_form(postable, lat=None, long=None, address_string="Тверская ул., 7, Москва")

    _, new_id = await accepted(georeport, form)

    assert (await fetch(georeport, new_id))["service_code"] == postable.code


async def test_post_with_an_account_id_is_accepted(
    georeport: GeoReport, postable: Postable
) -> None:
    first, _ = await accepted(georeport, report_form(postable, account_id=ACCOUNT_ID))

    if first.get("account_id") is not None:
        assert first["account_id"] == ACCOUNT_ID


async def test_post_with_a_description_of_4000_characters_is_accepted(
    georeport: GeoReport, postable: Postable
) -> None:
    description = "я" * 4000

    _, new_id = await accepted(georeport, report_form(postable, description=description))

    assert (await fetch(georeport, new_id)).get("description") in (description, None)


REFUSALS = {
    "no-location": ({"lat": None, "long": None}, (400,)),
    "lat-without-long": ({"long": None}, (400,)),
    "no-service-code": ({"service_code": None}, (400,)),
    "html-description": ({"description": "<script>alert(1)</script> <b>Яма</b>"}, (400,)),
    "description-over-4000": ({"description": "я" * 4001}, (400,)),
    "outside-the-city": (
        {"lat": str(SAINT_PETERSBURG[0]), "long": str(SAINT_PETERSBURG[1])},
        (400,),
    ),
    "unknown-service": ({"service_code": "no-such-service-42"}, (404,)),
    "wrong-api-key": ({"api_key": "not-the-sandbox-key"}, (403,)),
    "no-api-key": ({"api_key": None}, (403, 400)),
}


@pytest.mark.parametrize("case", list(REFUSALS))
async def test_post_is_refused(georeport: GeoReport, postable: Postable, case: str) -> None:
    fields, statuses = REFUSALS[case]
    form = report_form(postable, **fields)
    if case == "unknown-service":
        form = [pair for pair in form if not pair[0].startswith("attribute[")]

    answer = await georeport.post_request(form)

    assert_error(answer, *statuses)


async def test_a_refused_post_stores_nothing(georeport: GeoReport, postable: Postable) -> None:
    description = f"Вне города {marker()}"
    outside = {"lat": str(SAINT_PETERSBURG[0]), "long": str(SAINT_PETERSBURG[1])}
    assert_error(
        await georeport.post_request(report_form(postable, description=description, **outside)),
        400,
    )

    stored = await listing(georeport, service_code=postable.code)

    assert [e for e in stored if isinstance(e, dict) and e.get("description") == description] == []


async def test_post_without_a_required_attribute_is_refused_and_with_it_accepted(
    georeport: GeoReport, definitions: dict[str, dict[str, Any]]
) -> None:
    with_required = [
        code for code, definition in definitions.items() if required_attributes(definition)
    ]
    if not with_required:
        pytest.skip("no service has a required attribute")
    code = with_required[0]
    answers = [pair for a in required_attributes(definitions[code]) for pair in attribute_answer(a)]
    bare = Postable(code)

    assert_error(await georeport.post_request(report_form(bare, media_url=MEDIA_URL)), 400)
    await accepted(georeport, report_form(Postable(code, tuple(answers)), media_url=MEDIA_URL))


async def test_photo_required_service_needs_a_media_url(
    georeport: GeoReport, services: list[dict[str, Any]], definitions: dict[str, dict[str, Any]]
) -> None:
    needing = [s for s in services if s.get("photo_required") is True]
    if not needing:
        pytest.skip("no service requires a photo")
    code = needing[0]["service_code"]
    answers = [
        pair
        for a in required_attributes(definitions.get(code, {"attributes": []}))
        for pair in attribute_answer(a)
    ]
    service = Postable(code, tuple(answers))

    assert_error(await georeport.post_request(report_form(service)), 400)
    _, new_id = await accepted(georeport, report_form(service, media_url=MEDIA_URL))
    assert (await fetch(georeport, new_id)).get("media_url") == MEDIA_URL


# ---------------------------------------------------------------- GET requests/{id}.json


async def test_get_request_answers_an_array_of_exactly_that_request(
    georeport: GeoReport, created: Created
) -> None:
    element = await fetch(georeport, created.id)

    assert request_id(element["service_request_id"]) == created.id
    assert element["status"] in STATUSES
    assert element.get("service_code") == created.service_code
    requested = moment(element.get("requested_datetime"), "requested_datetime")
    if element.get("updated_datetime") is not None:
        assert moment(element["updated_datetime"], "updated_datetime") >= requested
    if element.get("expected_datetime") is not None:
        assert moment(element["expected_datetime"], "expected_datetime") > requested
    assert is_number(element.get("lat")), f"lat must be a number: {element}"
    assert is_number(element.get("long")), f"long must be a number: {element}"
    assert abs(element["lat"] - created.lat) < 1e-3, element
    assert abs(element["long"] - created.long) < 1e-3, element
    if element.get("description") is not None:
        assert element["description"] == created.description


async def test_get_request_keeps_the_media_url(georeport: GeoReport, postable: Postable) -> None:
    new = await create(georeport, postable, media_url=MEDIA_URL)

    assert (await fetch(georeport, new.id)).get("media_url") == MEDIA_URL


async def test_unknown_request_is_404(georeport: GeoReport) -> None:
    answer = await georeport.get("requests/999999999.json")

    assert_error(answer, 404)


# ---------------------------------------------------------------- GET requests.json


async def test_requests_is_an_array_of_well_formed_requests(
    georeport: GeoReport, created: Created
) -> None:
    body = await listing(georeport)

    ids = ids_of(body)
    assert len(ids) == len(set(ids)), "a request is listed twice"
    if len(body) < 1000:
        assert created.id in ids, "a new request is missing from the default listing"


async def test_requests_by_two_ids_are_exactly_those(
    georeport: GeoReport, postable: Postable
) -> None:
    first = await create(georeport, postable)
    second = await create(georeport, postable)
    await create(georeport, postable)

    body = await listing(georeport, service_request_id=f"{first.id},{second.id}")

    assert sorted(ids_of(body)) == sorted([first.id, second.id])


async def test_request_id_filter_overrides_all_other_arguments(
    georeport: GeoReport, created: Created
) -> None:
    status = (await fetch(georeport, created.id))["status"]
    other = "closed" if status == "open" else "open"

    body = await listing(
        georeport,
        service_request_id=created.id,
        status=other,
        service_code="no-such-service-42",
        start_date="2001-01-01T00:00:00+03:00",
        end_date="2001-02-01T00:00:00+03:00",
    )

    assert ids_of(body) == [created.id]


@pytest.mark.parametrize("status", sorted(STATUSES))
async def test_status_filter_returns_only_that_status(
    georeport: GeoReport, created: Created, status: str
) -> None:
    actual = (await fetch(georeport, created.id))["status"]

    body = await listing(georeport, status=status)

    assert {element["status"] for element in body if isinstance(element, dict)} <= {status}
    ids = ids_of(body)
    assert (created.id in ids) == (actual == status)


async def test_service_code_filter_returns_only_that_service(
    georeport: GeoReport, postables: list[Postable]
) -> None:
    mine = await create(georeport, postables[0])
    others = [await create(georeport, p) for p in postables[1:]]

    body = await listing(georeport, service_code=postables[0].code)

    ids = ids_of(body)
    assert mine.id in ids
    assert all(element.get("service_code") == postables[0].code for element in body), body
    for other in others:
        assert other.id not in ids


async def _requested(georeport: GeoReport, created: Created) -> datetime:
    return moment((await fetch(georeport, created.id))["requested_datetime"], "requested")


def assert_within(body: list[Any], start: datetime, end: datetime) -> None:
    for element in body:
        requested = moment(assert_request_element(element).get("requested_datetime"), "requested")
        assert start <= requested <= end, f"{element} is outside [{start}, {end}]"


async def test_date_window_around_the_request_includes_it(
    georeport: GeoReport, created: Created
) -> None:
    requested = await _requested(georeport, created)
    start, end = requested - timedelta(hours=1), requested + timedelta(hours=1)

    body = await listing(georeport, start_date=iso(start), end_date=iso(end))

    assert created.id in ids_of(body)
    assert_within(body, start, end)


async def test_date_window_compares_instants_across_timezones(
    georeport: GeoReport, created: Created
) -> None:
    requested = await _requested(georeport, created)
    start, end = requested - timedelta(minutes=2), requested + timedelta(minutes=2)

    in_utc = await listing(georeport, start_date=iso_z(start), end_date=iso_z(end))
    far_east = timezone(timedelta(hours=10))
    in_vladivostok = await listing(
        georeport,
        start_date=iso(start.astimezone(far_east)),
        end_date=iso(end.astimezone(far_east)),
    )

    assert created.id in ids_of(in_utc)
    assert created.id in ids_of(in_vladivostok)
    assert_within(in_utc, start, end)


async def test_date_window_before_the_request_excludes_it(
    georeport: GeoReport, created: Created
) -> None:
    requested = await _requested(georeport, created)
    start, end = requested - timedelta(days=30), requested - timedelta(minutes=5)

    body = await listing(georeport, start_date=iso(start), end_date=iso(end))

    assert created.id not in ids_of(body)
    assert_within(body, start, end)


async def test_start_date_after_the_request_excludes_it(
    georeport: GeoReport, created: Created
) -> None:
    requested = await _requested(georeport, created)
    start = requested + timedelta(minutes=5)

    body = await listing(georeport, start_date=iso(start))

    assert created.id not in ids_of(body)
    assert_within(body, start, datetime.max.replace(tzinfo=UTC))


async def test_date_window_in_the_far_past_returns_none_of_the_new_requests(
    georeport: GeoReport, postable: Postable
) -> None:
    new = [await create(georeport, postable) for _ in range(2)]
    start = datetime(2001, 1, 1, tzinfo=MOSCOW)
    end = datetime(2001, 3, 1, tzinfo=MOSCOW)

    body = await listing(georeport, start_date=iso(start), end_date=iso(end))

    assert not {request.id for request in new} & set(ids_of(body))
    assert_within(body, start, end)
