"""Logs carry ids and hashes, never phones, card numbers or tokens."""

from __future__ import annotations

import io
import json
import logging

import structlog

from bot.logs import scrub_processor, setup_logging, user_hash


def test_user_hash_is_stable_and_not_the_id() -> None:
    assert user_hash(100001) == user_hash(100001)
    assert user_hash(100001) != user_hash(100002)
    assert "100001" not in (user_hash(100001) or "")
    assert user_hash(None) is None


def test_scrubber_masks_what_looks_personal() -> None:
    event = {
        "event": "city.call",
        "phone": "позвоните +7 (916) 123-45-67",
        "card": "card 4242 4242 4242 4242 declined",
        "auth": "Authorization: Bearer abc.def.ghi",
        "count": 12,
        "path": "/api/v1/bills",
    }
    scrubbed = scrub_processor(None, "info", event)
    joined = " ".join(str(v) for v in scrubbed.values())
    assert "916" not in joined and "4242" not in joined and "abc.def" not in joined
    assert scrubbed["count"] == 12 and scrubbed["path"] == "/api/v1/bills"


def test_every_line_is_json_and_scrubbed_libraries_included() -> None:
    """With LOG_FORMAT=json, aiogram's, aiohttp's and APScheduler's lines (the standard
    logging module) are JSON like ours, pass the same scrubber, and a traceback stays inside
    its line; library chatter below WARNING stays out."""
    out = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        setup_logging("INFO", "json", out)
        structlog.get_logger("bot.test").info("ours", phone="+7 916 123-45-67")
        logging.getLogger("aiogram.event").warning("Update id=%s: call 89161234567", 5)
        logging.getLogger("apscheduler.scheduler").warning("Run time of job was missed")
        logging.getLogger("apscheduler.scheduler").warning(  # a run still going: by design
            'Execution of job "%s" skipped: maximum number of running instances reached (%d)',
            "run_autopays",
            1,
        )
        try:
            raise ZeroDivisionError("boom")
        except ZeroDivisionError:
            logging.getLogger("aiohttp.server").exception("Error handling request")
        logging.getLogger("aiogram.dispatcher").info("Start polling")  # chatter: left out
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
        structlog.reset_defaults()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["logger"] for line in lines] == [
        "bot.test",
        "aiogram.event",
        "apscheduler.scheduler",
        "aiohttp.server",
    ]
    # the timestamps left out: their microseconds may hold «916» by chance
    untimed = json.dumps([{k: v for k, v in line.items() if k != "timestamp"} for line in lines])
    assert "916" not in untimed and lines[1]["event"] == "Update id=5: call •••"
    assert "ZeroDivisionError: boom" in lines[3]["exception"]
