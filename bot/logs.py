"""Structured logs (structlog): readable in a terminal, JSON in production; no personal data.

Log events carry ids and hashes only. As a last line of defence, values that look like phone
numbers, card numbers or bearer tokens are masked by a processor before anything is written.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sys
from typing import Any, TextIO

import structlog

from bot.failures import classify
from domain.support import mask_personal

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
        value = mask_personal(value)[0]  # phones in every writing, cards, e-mails (support's)
        value = _CARD.sub("***", value)
        return _PHONE.sub("***", value)
    return value


def scrub_processor(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    return {key: _scrub(value) for key, value in event.items()}


# Libraries that speak through the standard logging module; quiet unless DEBUG.
CHATTY = ("aiogram", "aiohttp", "alembic", "apscheduler", "asyncio", "aiosqlite", "sqlalchemy")


def _not_a_run_still_going(record: logging.LogRecord) -> bool:
    """APScheduler warns each time a job's next run comes while the last one still runs. Our
    jobs run one at a time on purpose (`max_instances=1`) and a run works while work is due
    (the outbox, autopays), so that is how they work, not a problem: a warning every second or
    five would bury the real ones. Logged at DEBUG instead."""
    if isinstance(record.msg, str) and "maximum number of running instances" in record.msg:
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
    return True


def _passing_window_failure(record: logging.LogRecord) -> bool:
    """aiogram-dialog logs «Cannot get window data» as an ERROR inside the `except` around a
    window's getters, then re-raises: a getter's read cut by a database or Redis that went
    away is a passing failure, retried and told as such (`bot.failures.classify`), not an
    error to page anyone about (review 35b). Logged as a WARNING then."""
    failure = sys.exc_info()[1]  # the filter runs inside that `except`
    if failure is not None and record.levelno >= logging.ERROR and classify(failure).transient:
        record.levelno, record.levelname = logging.WARNING, "WARNING"
    return True


def setup_logging(level: str = "INFO", fmt: str = "console", stream: TextIO | None = None) -> None:
    """structlog for our events and the standard logging module for every library's, through
    one handler and one formatter (structlog's ProcessorFormatter): with `fmt="json"` every
    line is one JSON object — aiogram's, aiohttp's and APScheduler's included — and every
    line passes the scrubber."""
    out = stream or sys.stderr
    renderer: Any = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        scrub_processor,
    ]
    level_no = logging.getLevelName(level.upper())
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(level_no),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,  # a library's record: the same fields, scrubbed
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level_no)
    for name in CHATTY:
        logging.getLogger(name).setLevel(logging.DEBUG if level.upper() == "DEBUG" else "WARNING")
    scheduler = logging.getLogger("apscheduler.scheduler")
    if _not_a_run_still_going not in scheduler.filters:
        scheduler.addFilter(_not_a_run_still_going)
    window = logging.getLogger("aiogram_dialog.window")
    if _passing_window_failure not in window.filters:
        window.addFilter(_passing_window_failure)
