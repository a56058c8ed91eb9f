"""Typed answers to a theme's questions at their edges (found by a reviewer breaking the work)."""

from __future__ import annotations

from domain.reports import AnswerProblem, ThemeQuestion, typed_answer

NUMBER = ThemeQuestion(code="entrance", datatype="number", required=True, description="Подъезд")


def test_ten_plain_digits_are_not_called_not_a_number() -> None:
    """«1234567890» is digits: it is too big, not «not a number»."""
    assert typed_answer(NUMBER, "1234567890") is not AnswerProblem.NOT_A_NUMBER
    assert typed_answer(NUMBER, "1234567890") is AnswerProblem.TOO_BIG


def test_negative_and_fractional_entrance_accepted() -> None:
    # a number attribute takes a sign and a decimal comma (sent with a point)
    assert typed_answer(NUMBER, "-1") == "-1"
    assert typed_answer(NUMBER, "2,5") == "2.5"
