"""A theme's questions without I/O: typed answers, list choices, what is sent, old drafts,
and how the client names the platform's refusals."""

from __future__ import annotations

from city.client import _open311_error, refusal_kind
from domain.errors import ReportRefused
from domain.reports import (
    AnswerProblem,
    AttributeChoice,
    Draft,
    ThemeQuestion,
    answers_to_send,
    choose,
    is_russian,
    notices,
    questions,
    typed_answer,
    unanswered,
)

ENTRANCE = ThemeQuestion("entrance", "number", True, "Номер подъезда", order=2)
FLOOR = ThemeQuestion("floor", "number", False, "Этаж", order=3)
NOTICE = ThemeQuestion("lift_notice", "string", False, "Звоните 112", order=1, variable=False)
WHEN = ThemeQuestion("noticed_at", "datetime", False, "Когда", order=4)
ELEMENTS = ThemeQuestion(
    "elements",
    "multivaluelist",
    True,
    "Что повреждено",
    choices=(AttributeChoice("swing", "Качели"), AttributeChoice("slide", "Горка")),
)
LIFT = [FLOOR, ENTRANCE, NOTICE, WHEN]


def test_questions_in_order_without_notices_and_optional_datetimes() -> None:
    assert questions(LIFT) == [ENTRANCE, FLOOR]
    assert notices(LIFT) == ["Звоните 112"]


def test_numbers_take_ascii_digits_only() -> None:
    assert typed_answer(ENTRANCE, " 3 ") == "3"
    assert typed_answer(ENTRANCE, "2,5") == "2.5"
    assert typed_answer(ENTRANCE, "٣") is AnswerProblem.FOREIGN_DIGITS
    assert typed_answer(ENTRANCE, "３") is AnswerProblem.FOREIGN_DIGITS
    assert typed_answer(ENTRANCE, "третий") is AnswerProblem.NOT_A_NUMBER
    assert typed_answer(ENTRANCE, "1e3") is AnswerProblem.NOT_A_NUMBER
    assert typed_answer(ENTRANCE, "  ") is AnswerProblem.EMPTY


def test_strings_are_one_short_line_without_tags() -> None:
    pole = ThemeQuestion("pole", "string", False, "Номер опоры")
    assert typed_answer(pole, "12-345\n<b>") == "12-345 ‹b›"
    assert typed_answer(pole, "x" * 256) is AnswerProblem.TOO_LONG


def test_a_multivaluelist_toggles_in_the_lists_order() -> None:
    draft = Draft()
    assert choose(ELEMENTS, draft, "slide") is None
    assert choose(ELEMENTS, draft, "swing") is None
    assert draft.answers == {"elements": ["swing", "slide"]}
    choose(ELEMENTS, draft, "swing")
    choose(ELEMENTS, draft, "slide")
    assert draft.answers == {}
    assert choose(ELEMENTS, draft, "rocket") is AnswerProblem.NOT_A_CHOICE


def test_required_answers_and_what_is_sent() -> None:
    draft = Draft(theme_code="house-01")
    assert unanswered(LIFT, draft) == [ENTRANCE]
    draft.answers = {"entrance": ["3"], "pit_size": ["large"]}  # pit_size: another theme's
    assert unanswered(LIFT, draft) == []
    assert answers_to_send(LIFT, draft) == {"entrance": ["3"]}


def test_answers_and_the_key_survive_json_and_old_drafts_read() -> None:
    draft = Draft(theme_code="house-01", answers={"entrance": ["3"]}, send_key="abc")
    again = Draft.from_json(draft.to_json())
    assert again.answers == {"entrance": ["3"]} and again.send_key == "abc"
    old = Draft.from_json({"theme_code": "road-01", "stage": "review"})
    assert old.answers == {} and old.send_key is None and old.stage == "review"
    odd = Draft.from_json({"answers": {"a": "not a list", "b": []}, "send_key": 5})
    assert odd.answers == {} and odd.send_key is None


def test_refusals_are_named() -> None:
    assert refusal_kind("media must be a JPEG or PNG picture") == "photo_format"
    assert refusal_kind("Не заполнено поле «Номер подъезда»") == "answer_missing"
    assert refusal_kind("something new") == "other"
    body = [
        {"code": 400, "description": "media_url must be an http(s) URL: x"},
        {"code": 400, "description": "Не заполнено поле «Номер подъезда»"},
    ]
    error = _open311_error(400, body)
    assert isinstance(error, ReportRefused)
    assert error.kinds == ("photo_link", "answer_missing")
    assert is_russian("Не заполнено") and not is_russian("media must be")
