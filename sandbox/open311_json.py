"""The JSON shapes of the sandbox's Open311 answers (see `Open311*` in city/openapi.yaml)."""

from __future__ import annotations

from typing import Any

from sandbox.open311 import ServiceRequest, Update
from sandbox.open311_common import iso
from sandbox.themes import Attribute, Theme


def service_json(theme: Theme) -> dict[str, Any]:
    """`Open311Service`: the spec's fields plus `photo_required` and `seasonal`."""
    return {
        "service_code": theme.code,
        "service_name": theme.name,
        "description": theme.description,
        "metadata": theme.metadata,
        "type": "realtime",
        "keywords": ",".join(theme.keywords),
        "group": theme.group,
        "photo_required": theme.photo_required,
        "seasonal": None if theme.season is None else theme.season.to_json(),
    }


def definition_json(theme: Theme) -> dict[str, Any]:
    """`Open311ServiceDefinition`."""
    return {
        "service_code": theme.code,
        "attributes": [
            _attribute_json(attribute, order)
            for order, attribute in enumerate(theme.attributes, start=1)
        ],
    }


def _attribute_json(attribute: Attribute, order: int) -> dict[str, Any]:
    return {
        "variable": attribute.variable,
        "code": attribute.code,
        "datatype": attribute.datatype,
        "required": attribute.required,
        "datatype_description": attribute.datatype_description,
        "order": order,
        "description": attribute.description,
        "values": [{"key": value.key, "name": value.name} for value in attribute.values],
    }


def created_json(request: ServiceRequest) -> dict[str, Any]:
    """`Open311RequestCreated`."""
    return {
        "service_request_id": request.id,
        "service_notice": request.service_notice,
        "account_id": request.submission.account_id,
    }


def request_json(request: ServiceRequest, base: str) -> dict[str, Any]:
    """`Open311Request`: the spec's fields plus the extensions."""
    submission = request.submission
    location = submission.location
    photos = [absolute(media, base) for media in submission.media]
    return {
        "service_request_id": request.id,
        "status": request.extended_status.status,
        "status_notes": request.status_notes,
        "service_name": request.theme.name,
        "service_code": request.theme.code,
        "description": submission.description,
        "agency_responsible": request.theme.agency,
        "service_notice": request.service_notice,
        "requested_datetime": iso(request.requested_at),
        "updated_datetime": iso(request.updated_at),
        "expected_datetime": iso(request.expected_at),
        "address": location.address,
        "address_id": location.address_id,
        "zipcode": location.zipcode,
        "lat": location.lat,
        "long": location.long,
        "media_url": photos[0] if photos else None,
        "extended_status": request.extended_status.value,
        "media_urls": photos,
        "answer_media_url": _maybe_absolute(request.answer_media, base),
        "confirm_until": None if request.confirm_until is None else iso(request.confirm_until),
        "account_id": submission.account_id,
    }


def update_json(request: ServiceRequest, update: Update, base: str) -> dict[str, Any]:
    """`Open311Update`."""
    return {
        "update_id": f"{request.id}.{update.number}",
        "service_request_id": request.id,
        "status": update.extended_status.status,
        "extended_status": update.extended_status.value,
        "description": update.description,
        "media_url": _maybe_absolute(update.media, base),
        "updated_datetime": iso(update.at),
        "author": "resident" if update.by_author else "city",
    }


def absolute(media: str, base: str) -> str:
    """A stored media reference as a URL: this sandbox's own `/media/...` paths get `base`."""
    return base + media if media.startswith("/") else media


def _maybe_absolute(media: str | None, base: str) -> str | None:
    return None if media is None else absolute(media, base)
