"""Open311 GeoReport v2 endpoints under `/open311/v2/` («Наш город»), their extensions
(updates, confirm, refute) and the sandbox control `/sandbox/open311/.../advance`.

Handlers raise `Open311Error`; `open311_common.errors_middleware` answers it with the spec's
error array. `jurisdiction_id` is accepted everywhere and ignored (one jurisdiction).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from multidict import MultiDict

from sandbox.clock import moscow_date
from sandbox.idempotency import KeyReused
from sandbox.open311 import ADVANCES, ExtendedStatus, RequestBook
from sandbox.open311_common import (
    API_KEY,
    BASE_PATH,
    Open311Error,
    argument,
    base_url,
    check_api_key,
)
from sandbox.open311_forms import (
    description_problems,
    is_web_url,
    media_urls,
    parse_submission,
)
from sandbox.open311_json import (
    created_json,
    definition_json,
    request_json,
    service_json,
    update_json,
)
from sandbox.open311_query import parse_query, select
from sandbox.payments import IDEMPOTENCE_KEY
from sandbox.themes import THEMES, theme_by_code

REQUESTS_KEY = web.AppKey("sandbox_open311_requests", RequestBook)
SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
CHANGESET = "2026-03-01T00:00:00+03:00"  # the last change of the themes catalogue
KEY_FORMAT = "the Idempotence-Key header must be 1 to 64 of A-Z, a-z, 0-9, '_' and '-'"

routes = web.RouteTableDef()


def _json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


# ---------------------------------------------------------------- GeoReport v2


@routes.get(f"{BASE_PATH}/discovery.json")
async def discovery(request: web.Request) -> web.Response:
    return _json(
        {
            "changeset": CHANGESET,
            "contact": "Песочница «Наш город»: демонстрационные данные, не городская платформа",
            "key_service": f"Ключ песочницы: {API_KEY} (поле api_key)",
            "endpoints": [
                {
                    "specification": SPECIFICATION,
                    "url": base_url(request) + BASE_PATH,
                    "changeset": CHANGESET,
                    "type": "test",
                    "formats": ["application/json"],
                }
            ],
        }
    )


@routes.get(f"{BASE_PATH}/services.json")
async def services(request: web.Request) -> web.Response:
    return _json([service_json(theme) for theme in THEMES])


@routes.get(BASE_PATH + "/services/{service_code}.json")
async def service_definition(request: web.Request) -> web.Response:
    code = request.match_info["service_code"]
    theme = theme_by_code(code)
    if theme is None:
        raise Open311Error(404, f"service_code {code} not found")
    return _json(definition_json(theme))


@routes.post(f"{BASE_PATH}/requests.json")
async def create_request(request: web.Request) -> web.Response:
    """With the optional `Idempotence-Key` header (an extension) a repeat of the same form
    gets the request it made again (200); the key with another form → 422."""
    form = await _form(request)
    check_api_key(form, request.query)
    book = request.app[REQUESTS_KEY]
    key = request.headers.get("Idempotence-Key")
    account = argument(form, "account_id") or ""
    fingerprint = json.dumps(sorted((k, str(v)) for k, v in form.items() if k != "api_key"))
    if key is not None:
        if not IDEMPOTENCE_KEY.match(key):
            raise Open311Error(400, KEY_FORMAT)
        try:
            known = book.created_by_key.recall(account, key, fingerprint)
        except KeyReused as reused:
            raise Open311Error(422, str(reused)) from None
        if known is not None:
            return _json([created_json(book.existing(known))], status=200)
    submission = parse_submission(form, moscow_date(book.clock()))
    created = book.create(submission)
    if key is not None:
        book.created_by_key.remember(account, key, fingerprint, created.id)
    return _json([created_json(created)], status=201)


@routes.get(f"{BASE_PATH}/requests.json")
async def requests_list(request: web.Request) -> web.Response:
    book = request.app[REQUESTS_KEY]
    query = parse_query(request.query, book.clock())
    base = base_url(request)
    return _json([request_json(found, base) for found in select(book.all(), query)])


@routes.get(BASE_PATH + "/requests/{service_request_id}.json")
async def one_request(request: web.Request) -> web.Response:
    found = request.app[REQUESTS_KEY].existing(request.match_info["service_request_id"])
    return _json([request_json(found, base_url(request))])


# ---------------------------------------------------------------- extensions


@routes.get(BASE_PATH + "/requests/{service_request_id}/updates.json")
async def updates(request: web.Request) -> web.Response:
    found = request.app[REQUESTS_KEY].existing(request.match_info["service_request_id"])
    base = base_url(request)
    return _json([update_json(found, update, base) for update in found.updates])


@routes.post(BASE_PATH + "/requests/{service_request_id}/confirm")
async def confirm(request: web.Request) -> web.Response:
    form = await _form(request)
    check_api_key(form, request.query)
    account_id = _account_id(form)
    book = request.app[REQUESTS_KEY]
    confirmed, points = book.confirm(request.match_info["service_request_id"], account_id)
    return _json([{**request_json(confirmed, base_url(request)), "points_credited": points}])


@routes.post(BASE_PATH + "/requests/{service_request_id}/refute")
async def refute(request: web.Request) -> web.Response:
    form = await _form(request)
    check_api_key(form, request.query)
    errors: list[str] = []
    account_id = argument(form, "account_id")
    if account_id is None:
        errors.append("account_id was not provided")
    description = argument(form, "description")
    if description is None:
        errors.append("description was not provided: say what is still wrong")
    else:
        errors.extend(description_problems(description))
    photos = media_urls(form, errors)
    if len(photos) > 1:
        errors.append("a refutation takes one media_url")
    if errors:
        raise Open311Error(400, *errors)
    assert account_id is not None and description is not None
    book = request.app[REQUESTS_KEY]
    returned = book.refute(
        request.match_info["service_request_id"],
        account_id,
        description,
        photos[0] if photos else None,
    )
    return _json([request_json(returned, base_url(request))])


async def _form(request: web.Request) -> MultiDict[str]:
    """The posted form's text fields (the API takes no file uploads: those are left out)."""
    posted = await request.post()
    return MultiDict((name, value) for name, value in posted.items() if isinstance(value, str))


def _account_id(form: MultiDict[str]) -> str:
    account_id = argument(form, "account_id")
    if account_id is None:
        raise Open311Error(400, "account_id was not provided")
    return account_id


# ---------------------------------------------------------------- sandbox control


@routes.post("/sandbox/open311/requests/{service_request_id}/advance")
async def advance(request: web.Request) -> web.Response:
    try:
        body = json.loads(await request.text())
    except json.JSONDecodeError:
        raise Open311Error(400, "the body must be a JSON object") from None
    target, notes, media = _advance_body(body)
    book = request.app[REQUESTS_KEY]
    moved = book.advance(request.match_info["service_request_id"], target, notes=notes, media=media)
    return _json([request_json(moved, base_url(request))])


def _advance_body(body: object) -> tuple[ExtendedStatus, str | None, str | None]:
    targets = ", ".join(sorted(ADVANCES))
    if not isinstance(body, dict) or "to" not in body:
        raise Open311Error(400, f'the body must be {{"to": ...}} with to one of {targets}')
    unknown = set(body) - {"to", "status_notes", "media_url"}
    if unknown:
        raise Open311Error(400, f"unknown fields: {', '.join(sorted(unknown))}")
    target = next((status for status in ADVANCES if status.value == body["to"]), None)
    if target is None:
        raise Open311Error(400, f"to must be one of {targets}")
    notes, media = body.get("status_notes"), body.get("media_url")
    if notes is not None and (not isinstance(notes, str) or not notes.strip()):
        raise Open311Error(400, "status_notes must be a non-empty string")
    if media is not None and (not isinstance(media, str) or not is_web_url(media)):
        raise Open311Error(400, "media_url must be an http(s) URL")
    return target, notes, media
