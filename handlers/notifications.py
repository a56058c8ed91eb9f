"""How each kind of outbox notification reads and which buttons it carries."""

from __future__ import annotations

from typing import Any

from aiogram.types import InlineKeyboardMarkup

from bot.i18n import Translator
from domain.reports import ReportStatus
from handlers.my_reports import STATUS_KEYS, answer_keyboard


def render(
    kind: str, data: dict[str, Any], tr: Translator
) -> tuple[str, InlineKeyboardMarkup | None, str | None]:
    """(text, buttons, photo URL) for a notification; unknown kinds raise KeyError."""
    if kind == "report_status":
        status = ReportStatus(data["status"])
        text = tr(
            "notify-report-status",
            number=data["report_id"],
            theme=data.get("theme", ""),
            status=tr(STATUS_KEYS[status]),
            text=f"\n{data['text']}" if data.get("text") else "",
        )
        markup = answer_keyboard(tr, data["report_id"]) if data.get("askable") else None
        return text, markup, data.get("media_url")
    raise KeyError(kind)
