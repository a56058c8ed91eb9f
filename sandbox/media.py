"""Report photos: `POST /open311/v2/media` (upload, an extension) and `GET /media/{name}`.

A sandbox app keeps its uploads in memory. Seeded reports and the city's «after» photos use
small generated placeholder pictures.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from io import BytesIO

from aiohttp import BodyPartReader, web
from PIL import Image

from sandbox.open311_common import (
    BASE_PATH,
    Open311Error,
    base_url,
    check_api_key,
    errors_response,
)

MAX_MEDIA_BYTES = 10 * 1024 * 1024
_CHUNK = 64 * 1024
_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True, slots=True)
class StoredMedia:
    content_type: str
    data: bytes


class MediaStore:
    """The pictures one sandbox app serves at `/media/{name}`."""

    def __init__(self) -> None:
        self._items: dict[str, StoredMedia] = {}
        self._uploaded = 0

    def get(self, name: str) -> StoredMedia | None:
        return self._items.get(name)

    def upload(self, data: bytes) -> str:
        """Store an uploaded JPEG or PNG; its path (`/media/<name>`). Raises a 400 Open311Error
        for anything else."""
        kind = picture_kind(data)
        if kind is None:
            raise Open311Error(400, "media must be a JPEG or PNG picture")
        self._uploaded += 1
        extension = "jpg" if kind == "image/jpeg" else "png"
        return self.put(f"ph-{self._uploaded:06d}.{extension}", StoredMedia(kind, data))

    def put(self, name: str, media: StoredMedia) -> str:
        self._items[name] = media
        return f"/media/{name}"

    def placeholder(self, name: str, kind: str) -> str:
        """Store a generated picture (`before` or `after`) as `name`; its path."""
        return self.put(name, StoredMedia("image/jpeg", placeholder_jpeg(kind)))


def picture_kind(data: bytes) -> str | None:
    """'image/jpeg' or 'image/png' by the content's signature, else None."""
    if data.startswith(_JPEG_MAGIC):
        return "image/jpeg"
    if data.startswith(_PNG_MAGIC):
        return "image/png"
    return None


@cache
def placeholder_jpeg(kind: str) -> bytes:
    """A small plain JPEG: brownish for a problem («before»), greenish for a fix («after»)."""
    color = (150, 118, 92) if kind == "before" else (96, 150, 112)
    buffer = BytesIO()
    Image.new("RGB", (64, 48), color).save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


MEDIA_KEY = web.AppKey("sandbox_media", MediaStore)

routes = web.RouteTableDef()


@routes.post(f"{BASE_PATH}/media")
async def upload(request: web.Request) -> web.Response:
    if "api_key" in request.query:
        check_api_key(request.query)
    data, fields = await _read_upload(request)
    if "api_key" not in request.query:
        check_api_key(fields)
    if data is None:
        raise Open311Error(400, "a multipart/form-data body with a media file is required")
    path = request.app[MEDIA_KEY].upload(data)
    return web.json_response({"media_url": base_url(request) + path}, status=201)


@routes.get("/media/{name}")
async def serve(request: web.Request) -> web.StreamResponse:
    media = request.app[MEDIA_KEY].get(request.match_info["name"])
    if media is None:
        return errors_response(404, f"no media {request.match_info['name']!r}")
    return web.Response(body=media.data, content_type=media.content_type)


async def _read_upload(request: web.Request) -> tuple[bytes | None, dict[str, str]]:
    """The `media` file and the other (text) fields of a multipart/form-data body."""
    if request.content_type == "application/x-www-form-urlencoded":
        form = await request.post()
        return None, {name: value for name, value in form.items() if isinstance(value, str)}
    if request.content_type != "multipart/form-data":
        return None, {}
    reader = await request.multipart()
    data: bytes | None = None
    fields: dict[str, str] = {}
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise Open311Error(400, "nested multipart bodies are not accepted")
        if part.name == "media":
            data = await _read_limited(part)
        elif part.name is not None:
            fields[part.name] = (await _read_limited(part)).decode("utf-8", "replace")
    return data, fields


async def _read_limited(part: BodyPartReader) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := await part.read_chunk(_CHUNK):
        size += len(chunk)
        if size > MAX_MEDIA_BYTES:
            raise Open311Error(400, "media must be at most 10 MB")
        chunks.append(chunk)
    return b"".join(chunks)
