"""Find QR codes in a photo a resident sent: Pillow opens it, zxing-cpp reads it, off the loop.

The edge adapter for payment QR codes. It knows pixels, not payments: it returns every QR
code's raw bytes (and the reader's text) and leaves the meaning to
``domain.payment_qr.parse_payment_qr``. Raw bytes matter: receipts usually carry windows-1251
without an ECI marker, and zxing-cpp then guesses a character set (Latin-1, sometimes
Shift_JIS, sometimes losing bytes to U+FFFD) for the text, while ``Barcode.bytes`` stays exact.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import zxingcpp
from PIL import Image, ImageOps

# The errors are declared with the port the handlers depend on (handlers.ports.QrDecoder).
from handlers.ports import ImageTooLarge as ImageTooLarge
from handlers.ports import NotAnImage as NotAnImage
from handlers.ports import QrImageError as QrImageError

DEFAULT_MAX_PIXELS = 40_000_000
# The retries work on a copy at most this big: phone cameras give 4000+ px, and resampling a
# 12-megapixel photo down keeps three more passes cheap and averages out sensor noise.
RETRY_MAX_SIDE = 2000
# Pictures up to half this side get a last pass enlarged ×2 or ×3 (never beyond this side).
UPSCALE_TARGET_SIDE = 4000
MAX_UPSCALE = 3
AUTOCONTRAST_CUTOFF_PERCENT = 1

# QR model 1/2, micro and rMQR: no other symbology, which is faster and never misreads a
# barcode on the receipt as something else.
_QR_FORMATS = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)


@dataclass(frozen=True, slots=True)
class QrPayload:
    text: str  # the reader's decoding; may be mojibake for windows-1251 payloads
    raw: bytes  # exactly the bytes in the symbol: give these to the parser


async def find_qr_payloads(
    image: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> list[QrPayload]:
    """Every QR code found in the picture, in the reader's order; ``[]`` when there is none.

    Raises ``NotAnImage`` or ``ImageTooLarge``. Opening, decoding pixels and reading all run in
    a worker thread: a 12-megapixel JPEG takes long enough to stall every other chat.
    """
    return await asyncio.to_thread(find_qr_payloads_sync, image, max_pixels=max_pixels)


def find_qr_payloads_sync(image: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> list[QrPayload]:
    """The blocking implementation of ``find_qr_payloads``; never call it on the event loop."""
    grey = _open_grey(image, max_pixels)
    for read in _passes(grey):
        found = _payloads(read())
        if found:
            return found
    return []


def _open_grey(image: bytes, max_pixels: int) -> Image.Image:
    """Open, check the size before decoding a single pixel, upright it, flatten it to grey."""
    try:
        # Image.open reads the header only; pixels are decoded by load(), after the size check.
        picture = Image.open(io.BytesIO(image))
        width, height = picture.size
        if width * height > max_pixels:
            raise ImageTooLarge(f"{width}x{height} is over {max_pixels} pixels")
        if width == 0 or height == 0:
            raise NotAnImage("empty picture")
        picture.load()
        upright = ImageOps.exif_transpose(picture)
    except Image.DecompressionBombError as error:  # Pillow's own limit, checked in open()
        raise ImageTooLarge(str(error)) from None
    except QrImageError:
        raise
    except (OSError, ValueError, SyntaxError, EOFError, IndexError) as error:
        # UnidentifiedImageError is an OSError; truncated and malformed files raise the rest.
        raise NotAnImage(type(error).__name__) from None
    return _flatten(upright)


def _flatten(picture: Image.Image) -> Image.Image:
    """Greyscale on white: a transparent PNG's see-through pixels are often black underneath."""
    if picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info:
        rgba = picture.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        picture = Image.alpha_composite(white, rgba)
    return picture.convert("L")


def _passes(grey: Image.Image) -> Iterator[Callable[[], list[zxingcpp.Barcode]]]:
    """Reading strategies, cheapest and most likely first; the caller stops at the first hit."""
    # 1. The picture as it is, with zxing-cpp's own search: any rotation, its downscaled
    #    pyramid, inverted (light on dark) codes, the local-average binarizer that copes with
    #    uneven light. Screenshots and decent photos end here.
    yield lambda: _read(grey)

    normalised = _normalised(grey)
    # 2. Contrast stretched (1 % clipped at both ends) and at most RETRY_MAX_SIDE: a faint,
    #    blurred print photographed in poor light, where black is dark grey and white is grey.
    yield lambda: _read(normalised)
    # 3. The same with one threshold from the whole histogram: it fails differently from the
    #    local binarizer, which can break soft-edged modules apart on a textured background.
    yield lambda: _read(normalised, binarizer=zxingcpp.Binarizer.GlobalHistogram)
    # 4. After stretching, a fixed mid-grey threshold: rotated, JPEG-smeared small codes where
    #    both adaptive binarizers misjudge the thin modules.
    yield lambda: _read(normalised, binarizer=zxingcpp.Binarizer.FixedThreshold)
    factor = min(MAX_UPSCALE, UPSCALE_TARGET_SIDE // max(grey.size))
    if factor >= 2:
        # 5. Enlarged: in a whole receipt at Telegram's 1280 px a QR module is 1-2 px, below
        #    what the finder-pattern detector resolves; bicubic ×2-3 brings it back in range.
        enlarged = normalised.resize(
            (normalised.width * factor, normalised.height * factor), Image.Resampling.BICUBIC
        )
        yield lambda: _read(enlarged)


def _normalised(grey: Image.Image) -> Image.Image:
    stretched = ImageOps.autocontrast(grey, cutoff=AUTOCONTRAST_CUTOFF_PERCENT)
    if max(stretched.size) > RETRY_MAX_SIDE:
        # reducing_gap keeps it fast; Lanczos keeps module edges sharp enough to binarize.
        stretched.thumbnail(
            (RETRY_MAX_SIDE, RETRY_MAX_SIDE), Image.Resampling.LANCZOS, reducing_gap=3.0
        )
    return stretched


def _read(
    picture: Image.Image, *, binarizer: zxingcpp.Binarizer = zxingcpp.Binarizer.LocalAverage
) -> list[zxingcpp.Barcode]:
    return zxingcpp.read_barcodes(
        picture,
        formats=_QR_FORMATS,
        try_rotate=True,
        try_downscale=True,
        try_invert=True,
        text_mode=zxingcpp.TextMode.Plain,
        binarizer=binarizer,
    )


def _payloads(barcodes: list[zxingcpp.Barcode]) -> list[QrPayload]:
    payloads: list[QrPayload] = []
    seen: set[bytes] = set()
    for barcode in barcodes:
        raw = bytes(barcode.bytes)
        if not barcode.valid or raw in seen:
            continue
        seen.add(raw)
        payloads.append(QrPayload(text=barcode.text, raw=raw))
    return payloads
