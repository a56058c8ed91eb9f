"""What handlers need from the outside, as Protocols: the texts and the QR code reader.

Handlers depend on these shapes only; bot/ (the wiring) passes the implementations in — the
Fluent translator (`bot.i18n.Translator`) as `tr`, the Pillow + zxing-cpp reader
(`bot.qr_decoder.find_qr_payloads`) as `qr_decoder` — through the dispatcher's workflow data.
So the dependency points bot → handlers, never back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from markupsafe import Markup


class Texts(Protocol):
    """The resident's words by key (locales/ru/*.ftl).

    `tr(key, **values)` → Markup: HTML for a message sent with parse_mode=HTML; a str value is
    escaped (and shortened to `handlers.texts.MAX_VALUE` UTF-16 units), a Markup value goes in
    as it is. `tr.label(key, **values)` → plain text for what Telegram shows as it is (button
    texts, callback alerts, topic names, invoice fields)."""

    def __call__(self, key: str, **values: Any) -> Markup: ...

    def label(self, key: str, **values: Any) -> str: ...


class QrImageError(ValueError):
    """The picture cannot be searched for QR codes."""


class NotAnImage(QrImageError):
    """The bytes are not a picture that can be opened (or the file is broken)."""


class ImageTooLarge(QrImageError):
    """More pixels than we agree to decode: a decompression bomb or an absurd scan."""


class QrCode(Protocol):
    """One QR code found in a picture: the reader's text (may be mojibake for windows-1251
    payloads) and exactly the bytes in the symbol (what the parser should get)."""

    @property
    def text(self) -> str: ...

    @property
    def raw(self) -> bytes: ...


class QrDecoder(Protocol):
    """`await qr_decoder(image)` → every QR code found in the picture (bytes of any image
    format), in the reader's order; empty when there is none. Raises `NotAnImage` or
    `ImageTooLarge`; never blocks the event loop."""

    async def __call__(self, image: bytes) -> Sequence[QrCode]: ...
