"""Logs carry ids and hashes, never phones, card numbers or tokens."""

from __future__ import annotations

from bot.logs import scrub_processor, user_hash


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
