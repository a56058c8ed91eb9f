"""The frame of the sandbox's HTML pages (login page, hosted payment page)."""

from __future__ import annotations

from html import escape

_PAGE = """<!doctype html>
<html lang="ru">
<head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; max-width: 40em; margin: 2em auto; }}
.sandbox {{ background: #fff3cd; border: 1px solid #e0b800; padding: .5em 1em; }}
.resident, .card {{ border: 1px solid #ccc; padding: .5em 1em; margin: 1em 0; }}
</style></head>
<body>
<p class="sandbox"><b>ПЕСОЧНИЦА</b> городской платформы: это не настоящий mos.ru,
все данные вымышленные.</p>
{body}
</body></html>
"""


def render_page(title: str, body_html: str) -> str:
    """A whole page; `title` is escaped here, `body_html` must already be safe HTML."""
    return _PAGE.format(title=escape(title), body=body_html)
