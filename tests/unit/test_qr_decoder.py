"""Finding QR codes in pictures: generated with segno, staged as photos with Pillow."""

from __future__ import annotations

import io
import random
import struct
import threading
import zlib
from typing import Any, cast

import pytest
import segno
import zxingcpp
from PIL import Image, ImageDraw, ImageFilter

from bot import qr_decoder
from bot.qr_decoder import ImageTooLarge, NotAnImage, QrPayload, find_qr_payloads
from domain.payment_qr import parse_payment_qr

PAYMENT = (
    "ST0001{digit}|Name=ООО «Ромашка»|PersonalAcc=40702810138000000001|BankName=ПАО СБЕРБАНК"
    "|BIC=044525225|CorrespAcc=30101810400000000225|Sum=123456|Purpose=Оплата по счёту № 17"
)
UTF8 = PAYMENT.format(digit=2)
CP1251 = PAYMENT.format(digit=1)
PAPER = 235


def qr_picture(
    content: str | bytes, *, scale: int = 3, encoding: str | None = None, eci: bool = False
) -> Image.Image:
    """A clean QR code, black on white, ``scale`` pixels per module, quiet zone included."""
    code = segno.make(content, error="m", encoding=encoding, eci=eci)
    buffer = io.BytesIO()
    code.save(buffer, kind="png", scale=scale, border=4)
    buffer.seek(0)
    return Image.open(buffer).convert("L")


def photo(
    code: Image.Image | None,
    *,
    size: tuple[int, int] = (640, 480),
    at: tuple[int, int] = (60, 50),
    angle: float = 0,
    clutter: int = 0,
    noise: float = 0,
    seed: int = 7,
) -> Image.Image:
    """Paper-grey canvas, the code pasted (optionally rotated), boxes and receipt text around.

    ``noise`` is the share (0-1) of uniform random grain blended in; everything is seeded.
    """
    rnd = random.Random(seed)
    canvas = Image.new("L", size, PAPER)
    draw = ImageDraw.Draw(canvas)
    for _ in range(clutter):
        x, y = rnd.randrange(size[0]), rnd.randrange(size[1])
        box = [x, y, x + rnd.randint(5, 120), y + rnd.randint(5, 60)]
        draw.rectangle(box, outline=rnd.randint(0, 120), width=2)
        draw.text((rnd.randrange(size[0]), rnd.randrange(size[1])), "Итого 1234,56", fill=40)
    if code is not None:
        if angle:
            code = code.rotate(
                angle, expand=True, fillcolor=PAPER, resample=Image.Resampling.BICUBIC
            )
        canvas.paste(code, at)
    if noise:
        grain = Image.frombytes("L", size, rnd.randbytes(size[0] * size[1]))
        canvas = Image.blend(canvas, grain, noise)
    return canvas


def encode(picture: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, fmt, **options)
    return buffer.getvalue()


async def payments_in(image: bytes) -> list[str]:
    """Names of the payees of every payment code found, parsed from the raw bytes."""
    return [parse_payment_qr(found.raw).name or "" for found in await find_qr_payloads(image)]


# --- what comes back -----------------------------------------------------------------------


async def test_plain_utf8_code() -> None:
    found = await find_qr_payloads(encode(qr_picture(UTF8)))
    assert found == [QrPayload(text=UTF8, raw=UTF8.encode("utf-8"))]


async def test_windows_1251_bytes_come_back_exact() -> None:
    raw = CP1251.encode("cp1251")
    [found] = await find_qr_payloads(encode(qr_picture(raw, encoding="cp1251")))
    assert found.raw == raw
    qr = parse_payment_qr(found.raw)
    assert (qr.name, qr.bank_name, qr.amount) == ("ООО «Ромашка»", "ПАО СБЕРБАНК", 123456)
    assert qr.purpose == "Оплата по счёту № 17"
    # Without an ECI marker zxing-cpp guesses the text's charset; the parser repairs it.
    assert parse_payment_qr(found.text) == qr


async def test_windows_1251_with_eci_marker() -> None:
    raw = CP1251.encode("cp1251")
    [found] = await find_qr_payloads(encode(qr_picture(raw, encoding="cp1251", eci=True)))
    assert found.raw == raw  # bytes without the ECI designator
    assert found.text == CP1251  # zxing decoded it right this time
    assert parse_payment_qr(found.raw) == parse_payment_qr(found.text)


async def test_koi8r_bytes_come_back_exact() -> None:
    payload = "ST00013|Name=ООО Ромашка|PersonalAcc=40702810138000000001|BIC=044525225"
    raw = payload.encode("koi8_r")
    # segno knows no KOI8-R: hand it the bytes as Latin-1 so it writes them untouched.
    [found] = await find_qr_payloads(encode(qr_picture(raw, encoding="latin-1")))
    assert found.raw == raw
    assert parse_payment_qr(found.raw).name == "ООО Ромашка"


async def test_two_codes_in_one_picture_identical_ones_once() -> None:
    other = UTF8.replace("Ромашка", "Василёк")
    canvas = photo(qr_picture(UTF8), size=(700, 360), at=(20, 20))
    canvas.paste(qr_picture(other), (370, 20))
    assert sorted(await payments_in(encode(canvas))) == ["ООО «Василёк»", "ООО «Ромашка»"]

    twice = photo(qr_picture(UTF8), size=(700, 360), at=(20, 20))
    twice.paste(qr_picture(UTF8), (370, 20))
    assert await payments_in(encode(twice)) == ["ООО «Ромашка»"]


# --- photos --------------------------------------------------------------------------------


@pytest.mark.parametrize("angle", [17, 90, 180, -33])
async def test_rotated(angle: float) -> None:
    image = encode(photo(qr_picture(UTF8), angle=angle, clutter=10))
    assert await payments_in(image) == ["ООО «Ромашка»"]


async def test_small_code_in_a_large_picture() -> None:
    image = encode(photo(qr_picture(UTF8, scale=2), size=(1600, 1200), at=(1150, 850)))
    assert await payments_in(image) == ["ООО «Ромашка»"]


async def test_tiny_modules_need_the_enlarged_retry() -> None:
    """Modules of ~1.4 px (a whole receipt in one photo): only the enlarged pass reads it."""
    code = qr_picture(UTF8, scale=2)
    code = code.resize((code.width * 7 // 10, code.height * 7 // 10), Image.Resampling.LANCZOS)
    image = encode(photo(code, size=(500, 400), at=(60, 40), clutter=5))
    assert await payments_in(image) == ["ООО «Ромашка»"]


async def test_faint_print_needs_the_contrast_stretched_retry() -> None:
    """A faded thermal receipt in a big photo: 19 grey levels between "black" and "white"."""
    scene = photo(qr_picture(UTF8), size=(2200, 1600), at=(900, 700), clutter=20)
    faint = scene.point(lambda v: 128 + (v - 128) * 8 // 100).filter(ImageFilter.GaussianBlur(0.6))
    assert await payments_in(encode(faint)) == ["ООО «Ромашка»"]


async def test_clutter_and_noise_around() -> None:
    image = encode(photo(qr_picture(UTF8), angle=8, clutter=40, noise=0.3))
    assert await payments_in(image) == ["ООО «Ромашка»"]


async def test_jpeg_colour_photo() -> None:
    scene = photo(qr_picture(CP1251.encode("cp1251"), encoding="cp1251"), angle=5, clutter=20)
    tinted = Image.merge("RGB", (scene, scene.point(lambda v: v * 9 // 10), scene))
    image = encode(tinted.filter(ImageFilter.GaussianBlur(0.6)), "JPEG", quality=60)
    assert await payments_in(image) == ["ООО «Ромашка»"]


async def test_webp() -> None:
    image = encode(photo(qr_picture(UTF8), angle=3).convert("RGB"), "WEBP", quality=80)
    assert await payments_in(image) == ["ООО «Ромашка»"]


async def test_light_on_dark() -> None:
    inverted = qr_picture(UTF8).point(lambda v: 255 - v)
    assert await payments_in(encode(inverted)) == ["ООО «Ромашка»"]


async def test_transparent_background_is_read_on_white() -> None:
    """Transparent pixels are black underneath; flattened naively the code disappears."""
    code = qr_picture(UTF8)
    alpha = code.point(lambda v: 255 if v < 128 else 0)
    rgba = Image.merge("RGBA", (*(Image.new("L", code.size, 0),) * 3, alpha))
    assert await payments_in(encode(rgba)) == ["ООО «Ромашка»"]


async def test_exif_orientation_is_applied() -> None:
    """Cameras store the sensor's landscape pixels and an Orientation tag to show them upright."""
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    image = encode(photo(qr_picture(UTF8), size=(400, 300)).convert("RGB"), "JPEG", exif=exif)
    assert qr_decoder._open_grey(image, 10**6).size == (300, 400)
    assert await payments_in(image) == ["ООО «Ромашка»"]


async def test_photo_without_a_code() -> None:
    image = encode(photo(None, clutter=60, noise=0.3).convert("RGB"), "JPEG", quality=80)
    assert await find_qr_payloads(image) == []


async def test_other_barcodes_are_ignored() -> None:
    """A DataMatrix with the same payload is not a QR code: the bot reads QR only."""
    matrix = zxingcpp.create_barcode(UTF8.encode("utf-8"), zxingcpp.BarcodeFormat.DataMatrix)
    pixels = memoryview(cast(Any, matrix.to_image(scale=4)))  # the stub omits the buffer API
    height, width = pixels.shape or (0, 0)
    picture = Image.frombytes("L", (width, height), pixels.tobytes())
    assert zxingcpp.read_barcodes(picture) != []  # the control: it is readable as DataMatrix
    assert await find_qr_payloads(encode(picture)) == []


# --- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"", random.Random(1).randbytes(2048), b"ST00012|Name=not a picture", b"%PDF-1.7\n"],
)
async def test_not_an_image(data: bytes) -> None:
    with pytest.raises(NotAnImage):
        await find_qr_payloads(data)


async def test_truncated_file_is_not_an_image() -> None:
    whole = encode(photo(qr_picture(UTF8), noise=0.2), "JPEG")
    with pytest.raises(NotAnImage):
        await find_qr_payloads(whole[: len(whole) // 2])


async def test_over_max_pixels() -> None:
    picture = qr_picture(UTF8)
    pixels = picture.width * picture.height
    with pytest.raises(ImageTooLarge):
        await find_qr_payloads(encode(picture), max_pixels=pixels - 1)
    assert len(await find_qr_payloads(encode(picture), max_pixels=pixels)) == 1


def png_claiming(width: int, height: int) -> bytes:
    """A valid PNG header for a huge picture with no pixel data: refused before decoding."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"") + chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [8_000, 100_000])  # ours refuses 64 MP, Pillow's own 10 GP
async def test_decompression_bomb_is_refused_unread(side: int) -> None:
    with pytest.raises(ImageTooLarge):
        await find_qr_payloads(png_claiming(side, side))


async def test_reading_runs_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[int] = []
    real = qr_decoder.find_qr_payloads_sync

    def spy(image: bytes, *, max_pixels: int) -> list[QrPayload]:
        threads.append(threading.get_ident())
        return real(image, max_pixels=max_pixels)

    monkeypatch.setattr(qr_decoder, "find_qr_payloads_sync", spy)
    assert await payments_in(encode(qr_picture(UTF8))) == ["ООО «Ромашка»"]
    assert threads and threads[0] != threading.get_ident()
