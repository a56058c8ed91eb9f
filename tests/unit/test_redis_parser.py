"""redis-py's reply parser: the compiled one (hiredis, a runtime dependency)."""

from __future__ import annotations


def test_redis_replies_are_parsed_by_hiredis() -> None:
    """redis-py takes its compiled parser when hiredis is installed; its Python parser costs a
    third more CPU a command (docs/ARCHITECTURE.md, «Operations»)."""
    from redis._parsers.hiredis import _AsyncHiredisParser
    from redis.asyncio.connection import DefaultParser

    assert DefaultParser is _AsyncHiredisParser
