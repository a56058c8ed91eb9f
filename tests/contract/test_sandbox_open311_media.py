"""«Наш город» at the sandbox: uploading photos (`POST /open311/v2/media`) and serving them."""

from __future__ import annotations

from io import BytesIO

import aiohttp
import pytest
from PIL import Image

from sandbox import SandboxServer, create_app
from sandbox.media import MAX_MEDIA_BYTES

from .sandbox_client import OPEN311, ContractClient


def picture(kind: str = "JPEG", size: tuple[int, int] = (32, 24)) -> bytes:
    buffer = BytesIO()
    Image.new("RGB", size, (200, 40, 40)).save(buffer, kind)
    return buffer.getvalue()


async def test_an_uploaded_jpeg_is_served_back(city: ContractClient) -> None:
    data = picture()

    answer = await city.upload_media(data)

    assert answer.status == 201
    url = answer.body["media_url"]
    assert url.startswith(city.base_url + "/media/") and url.endswith(".jpg")
    assert await city.fetch_media(url) == (200, "image/jpeg", data)


async def test_an_uploaded_png_keeps_its_type(city: ContractClient) -> None:
    data = picture("PNG")

    url = (await city.upload_media(data, content_type="image/png")).body["media_url"]

    assert url.endswith(".png")
    assert await city.fetch_media(url) == (200, "image/png", data)


async def test_two_uploads_get_two_urls(city: ContractClient) -> None:
    first = (await city.upload_media(picture())).body["media_url"]
    second = (await city.upload_media(picture(size=(8, 8)))).body["media_url"]

    assert first != second


async def test_the_api_key_may_come_in_the_query(city: ContractClient) -> None:
    form_answer = await city.upload_media(picture(), api_key=None)
    form = aiohttp.FormData()
    form.add_field("media", picture(), filename="a.jpg", content_type="image/jpeg")
    query_answer = await city.request(
        "POST",
        f"{OPEN311}/media?api_key=sandbox-open311-key",
        data=form,
        template=f"{OPEN311}/media",
    )

    assert form_answer.status == 403
    assert query_answer.status == 201


@pytest.mark.parametrize("key", [None, "", "wrong"])
async def test_missing_or_wrong_api_key_is_403(city: ContractClient, key: str | None) -> None:
    answer = await city.upload_media(picture(), api_key=key)

    assert answer.status == 403
    assert "api_key" in answer.body[0]["description"]


@pytest.mark.parametrize(
    "data",
    [
        b"GIF89a" + b"\x00" * 64,
        b"%PDF-1.7 not a picture",
        b"",
    ],
)
async def test_only_jpeg_and_png_are_taken(city: ContractClient, data: bytes) -> None:
    answer = await city.upload_media(data, content_type="image/jpeg")

    assert answer.status == 400
    assert answer.body[0]["code"] == 400


async def test_no_media_field_is_400(city: ContractClient) -> None:
    answer = await city.upload_media(None)

    assert answer.status == 400
    assert "media" in answer.body[0]["description"]


async def test_a_form_encoded_body_is_refused(city: ContractClient) -> None:
    answer = await city.request(
        "POST", f"{OPEN311}/media", data={"api_key": "sandbox-open311-key", "media": "x"}
    )

    assert answer.status == 400


async def test_larger_than_10_mb_is_400_and_exactly_10_mb_is_fine(city: ContractClient) -> None:
    jpeg = picture()
    exactly = jpeg + b"\x00" * (MAX_MEDIA_BYTES - len(jpeg))

    fits = await city.upload_media(exactly)
    too_big = await city.upload_media(exactly + b"\x00")

    assert fits.status == 201
    assert too_big.status == 400
    assert "10 MB" in too_big.body[0]["description"]


async def test_an_unknown_media_name_is_404(city: ContractClient) -> None:
    status, content_type, _ = await city.fetch_media(city.base_url + "/media/ph-999999.jpg")

    assert (status, content_type) == (404, "application/json")


async def test_seeded_reports_show_their_photos(city: ContractClient) -> None:
    found = await city.report_now("NG-2026-000107")

    assert len(found["media_urls"]) == 2
    for url in found["media_urls"]:
        status, content_type, data = await city.fetch_media(url)
        assert (status, content_type) == (200, "image/jpeg")
        assert Image.open(BytesIO(data)).size == (64, 48)


async def test_an_uploaded_photo_goes_into_a_report(city: ContractClient) -> None:
    url = (await city.upload_media(picture())).body["media_url"]

    request_id = await city.report_id(
        {"service_code": "improve-01", "address_id": "MSK-0014", "media_url": url}
    )

    found = await city.report_now(request_id)
    assert found["media_url"] == url
    assert (await city.fetch_media(found["media_url"]))[0] == 200


async def test_photos_are_per_sandbox(city: ContractClient) -> None:
    url = (await city.upload_media(picture())).body["media_url"]
    name = url.rsplit("/", 1)[1]
    async with SandboxServer(create_app()) as other:
        async with city.http.get(f"{other.url}/media/{name}") as response:
            assert response.status == 404
