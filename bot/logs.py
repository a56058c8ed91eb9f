"""Structured logs (structlog): readable in a terminal, JSON in production; no personal data.

Log events carry ids and hashes only. As a last line of defence, values that look like phone
numbers, card numbers or bearer tokens are masked by a processor before anything is written.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sys
from typing import Any

import structlog

_PHONE = re.compile(r"\+?\d[\d\s()-]{9,}\d")
_CARD = re.compile(r"\b(?:\d[ -]?){13,19}\b")
_BEARER = re.compile(r"(?i)bearer\s+\S+")


def user_hash(user_id: int | None) -> str | None:
    """A stable, non-reversible handle for a Telegram user in logs."""
    if user_id is None:
        return None
    return hashlib.sha256(f"resident:{user_id}".encode()).hexdigest()[:12]


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        value = _BEARER.sub("Bearer ***", value)
        value = _CARD.sub("***", value)
        return _PHONE.sub("***", value)
    return value


def scrub_processor(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    return {key: _scrub(value) for key, value in event.items()}


def setup_logging(level: str = "INFO", fmt: str = "console") -> None:
    renderer: Any = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        scrub_processor,
    ]
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=logging.WARNING if level != "DEBUG" else logging.INFO)
