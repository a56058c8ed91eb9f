"""Validating `POST /open311/v2/requests.json` (and the refute form): location, description,
photos and attributes. Refusals collect every problem into one 400 error array."""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from urllib.parse import urlsplit

from multidict import MultiMapping

from sandbox import gazetteer
from sandbox.geo_api import parse_point
from sandbox.open311 import Location, Submission
from sandbox.open311_common import Open311Error, argument
from sandbox.themes import Attribute, Theme, theme_by_code

MAX_DESCRIPTION = 4000
MAX_STRING = 255
MAX_MEDIA = 10
CONTACT_FIELDS = ("first_name", "last_name", "email", "phone", "device_id")
OUTSIDE_CITY = "Точка за пределами города"
NO_LOCATION = (
    "A full location parameter must be submitted: lat & long, address_string or address_id"
)
_HTML = re.compile(r"<\s*/?\s*[A-Za-z!?][^>]*>")
_ATTRIBUTE = re.compile(r"^attribute\[(?P<code>[^\[\]]+)\](?P<many>\[\])?$")


def parse_submission(form: MultiMapping[str], today: date) -> Submission:
    """The validated submission; raises Open311Error (400 or 404)."""
    code = argument(form, "service_code")
    if code is None:
        raise Open311Error(400, "service_code was not provided")
    theme = theme_by_code(code)
    if theme is None:
        raise Open311Error(404, f"service_code {code} not found")
    errors: list[str] = []
    location = _location(form, errors)
    description = argument(form, "description")
    if description is not None:
        errors.extend(description_problems(description))
    media = media_urls(form, errors)
    if theme.photo_required and not media:
        errors.append(f"Для темы «{theme.name}» нужна хотя бы одна фотография")
    if theme.season is not None and not theme.season.contains(today):
        errors.append(f"Тема «{theme.name}» доступна только {theme.season.describe()}")
    attributes = _attributes(theme, form, errors)
    contact = {name: value for name in CONTACT_FIELDS if (value := argument(form, name))}
    errors.extend(
        f"{name} must be at most {MAX_STRING} characters"
        for name, value in contact.items()
        if len(value) > MAX_STRING
    )
    account_id = argument(form, "account_id")
    if account_id is not None and len(account_id) > MAX_STRING:
        errors.append(f"account_id must be at most {MAX_STRING} characters")
    if errors:
        raise Open311Error(400, *errors)
    assert location is not None
    return Submission(theme, location, description, media, account_id, attributes, contact)


def description_problems(text: str) -> list[str]:
    problems = []
    if len(text) > MAX_DESCRIPTION:
        problems.append(f"Описание длиннее {MAX_DESCRIPTION} символов")
    if _HTML.search(text):
        problems.append("Описание не может содержать HTML или код")
    return problems


def media_urls(form: MultiMapping[str], errors: list[str]) -> tuple[str, ...]:
    """`media_url` and the repeated `media_url[]` (an extension), in order, without blanks."""
    urls = [
        value.strip()
        for name in ("media_url", "media_url[]")
        for value in form.getall(name, [])
        if value.strip()
    ]
    bad = [url for url in urls if not is_web_url(url)]
    if bad:
        errors.append(f"media_url must be an http(s) URL: {bad[0]}")
    if len(urls) > MAX_MEDIA:
        errors.append(f"at most {MAX_MEDIA} media URLs per request")
    return tuple(urls)


def is_web_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and " " not in url


def _location(form: MultiMapping[str], errors: list[str]) -> Location | None:
    lat_text, long_text = argument(form, "lat"), argument(form, "long")
    address_string = argument(form, "address_string")
    address_id = argument(form, "address_id")
    point = None
    if lat_text is not None or long_text is not None:
        point = parse_point(lat_text, long_text)
        if point is None:
            errors.append("lat & long must both be sent, as decimal degrees (WGS84)")
            return None
    elif address_string is None and address_id is None:
        errors.append(NO_LOCATION)
        return None
    place = None
    if address_id is not None:
        place = gazetteer.by_id(address_id)
        if place is None:
            errors.append(f"address_id {address_id} not found")
            return None
    elif address_string is not None:
        place = gazetteer.exact(address_string)
    if point is None and place is not None:
        point = (place.lat, place.long)
    if point is not None and not gazetteer.inside_city(*point):
        errors.append(OUTSIDE_CITY)
        return None
    if place is None and point is not None and address_string is None:
        place = gazetteer.nearest(*point)  # the address comes from the nearest known one
    lat, long = point if point is not None else (None, None)
    return Location(
        lat=lat,
        long=long,
        address=address_string or (place.address if place else None),
        address_id=place.id if place else None,
        zipcode=place.zipcode if place else None,
    )


def _attributes(
    theme: Theme, form: MultiMapping[str], errors: list[str]
) -> dict[str, tuple[str, ...]]:
    given: dict[str, list[str]] = {}
    for key in set(form.keys()):
        match = _ATTRIBUTE.match(key)
        if match:
            values = [value.strip() for value in form.getall(key) if value.strip()]
            given.setdefault(match["code"], []).extend(values)
    chosen: dict[str, tuple[str, ...]] = {}
    for attribute in theme.attributes:
        if not attribute.variable:
            continue
        values = given.get(attribute.code, [])
        if not values:
            if attribute.required:
                errors.append(f"Не заполнено поле «{attribute.description}»")
            continue
        problem = _attribute_problem(attribute, values)
        if problem is not None:
            errors.append(f"Поле «{attribute.description}»: {problem}")
        chosen[attribute.code] = tuple(values)
    return chosen  # attributes the theme does not define are ignored


def _attribute_problem(attribute: Attribute, values: list[str]) -> str | None:
    if attribute.datatype == "multivaluelist":
        unknown = [value for value in values if value not in attribute.keys]
        if unknown:
            return f"нет варианта {unknown[0]!r}"
        return "варианты повторяются" if len(set(values)) != len(values) else None
    if len(values) > 1:
        return "нужно одно значение"
    value = values[0]
    if attribute.datatype == "singlevaluelist":
        return None if value in attribute.keys else f"нет варианта {value!r}"
    if attribute.datatype == "number":
        return None if _is_number(value) else "нужно число"
    if attribute.datatype == "datetime":
        return None if _is_datetime(value) else "нужны дата и время ISO 8601"
    if attribute.datatype == "string" and ("\n" in value or len(value) > MAX_STRING):
        return f"одна строка, не длиннее {MAX_STRING} символов"
    if attribute.datatype == "text":
        problems = description_problems(value)
        return problems[0] if problems else None
    return None


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text.replace(",", ".")))
    except ValueError:
        return False


def _is_datetime(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True
