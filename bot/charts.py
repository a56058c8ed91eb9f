"""The digest's chart: seven bars of money paid per day, drawn with Pillow.

A plotting library would be heavier than this one picture needs; Pillow is already here for
receipt photos. It is imported on the first chart, not at start-up."""

from __future__ import annotations

import io
from collections.abc import Sequence

WIDTH, HEIGHT, MARGIN = 700, 360, 40
BAR = (42, 171, 238)
INK = (40, 40, 40)


def payments_chart(series: Sequence[Sequence[object]]) -> bytes:
    """`series`: [[ISO date, kopecks, count], …] oldest first → PNG bytes."""
    from PIL import Image, ImageDraw  # ~5 MB of RSS: only once a chart is drawn

    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    values = [int(str(item[1])) for item in series] or [0]
    top = max(values) or 1
    slot = (WIDTH - 2 * MARGIN) / max(len(values), 1)
    base = HEIGHT - MARGIN
    draw.line((MARGIN, base, WIDTH - MARGIN, base), fill=INK, width=2)
    for n, (item, value) in enumerate(zip(series, values, strict=False)):
        left = MARGIN + n * slot + slot * 0.15
        height = (base - MARGIN) * value / top
        draw.rectangle((left, base - height, left + slot * 0.7, base), fill=BAR)
        draw.text((left, base + 8), str(item[0])[5:], fill=INK)  # MM-DD under each bar
        draw.text((left, base - height - 14), f"{value // 100}", fill=INK)  # rubles
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
