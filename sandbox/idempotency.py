"""Remembered answers for `Idempotence-Key` requests (points transfers, meter readings).

The same key (per resident) with the same request gets the remembered answer again; with
another request it is refused. Only requests that did something are remembered: a refused one
leaves its key free.
"""

from __future__ import annotations

from typing import Generic, TypeVar

Answer = TypeVar("Answer")


class KeyReused(Exception):
    """The key was used for another request (answered with 422 `idempotency_key_reused`)."""

    def __init__(self, original: object) -> None:
        super().__init__("this Idempotence-Key was used for another request: use a new key")
        self.original = original


class AnswerMemory(Generic[Answer]):
    def __init__(self) -> None:
        self._answers: dict[tuple[str, str], tuple[str, Answer]] = {}

    def recall(self, account_id: str, key: str, fingerprint: str) -> Answer | None:
        """The answer given before to this request, None for a new key; raises KeyReused."""
        known = self._answers.get((account_id, key))
        if known is None:
            return None
        if known[0] != fingerprint:
            raise KeyReused(known[1])
        return known[1]

    def remember(self, account_id: str, key: str, fingerprint: str, answer: Answer) -> None:
        self._answers[(account_id, key)] = (fingerprint, answer)
