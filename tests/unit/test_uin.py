"""UIN validation: the Moscow DIT description's vectors, and properties against an independent
formula."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.uin import UinProblem, check_uin, control_digit, with_control_digit

VALID = [
    "18810136161108008161",
    "18810177181128202096",
    "18810177190218155028",
    "18810177170712879661",
    "18810177181044064881",
    "18810177200104519116",
    "18810177200855150244",
    "0349347501810000000132623",
    "0355431010119102401042373",
    "0355431010117031600011275",
]


@pytest.mark.parametrize("uin", VALID)
def test_reference_uins_are_valid(uin: str) -> None:
    assert check_uin(uin).ok


@pytest.mark.parametrize(
    ("uin", "expected_digit"),
    [("18810177200718000123", 7), ("18810177220123456789", 5)],
)
def test_reference_invalid_uins_name_the_right_digit(uin: str, expected_digit: int) -> None:
    assert check_uin(uin).problem is UinProblem.CONTROL
    assert control_digit(uin[:-1]) == expected_digit


def test_second_pass_vector_needs_shifted_weights() -> None:
    body = "0355431010117031600011275"[:-1]
    first = sum(int(d) * (i % 10 + 1) for i, d in enumerate(body)) % 11
    assert first == 10  # the first pass gives 10, so the shifted weights decide
    assert control_digit(body) == 5


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", UinProblem.EMPTY),
        ("1881017720071800012", UinProblem.LENGTH),
        ("188101772007180001234", UinProblem.LENGTH),
        ("1881017720071800012x!", UinProblem.CHARACTERS),
        ("00000000000000000000", UinProblem.ZEROS),
    ],
)
def test_problems_are_named(text: str, problem: UinProblem) -> None:
    assert check_uin(text).problem is problem


def test_spaces_are_tolerated() -> None:
    assert check_uin(" 1881 0136 1611 0800 8161 ").ok


def independent_control(body: str) -> int:
    """The DIT description's algorithm, written again plainly for digits only."""
    digits = [int(c) for c in body]
    total = sum(
        d * w for d, w in zip(digits, [(i % 10) + 1 for i in range(len(digits))], strict=True)
    )
    if total % 11 != 10:
        return total % 11
    total = sum(
        d * w for d, w in zip(digits, [((i + 2) % 10) + 1 for i in range(len(digits))], strict=True)
    )
    return 0 if total % 11 == 10 else total % 11


bodies = st.sampled_from([19, 24]).flatmap(
    lambda n: st.text(alphabet="0123456789", min_size=n, max_size=n)
)


@given(bodies)
def test_agrees_with_independent_formula(body: str) -> None:
    assert control_digit(body) == independent_control(body)


def first_pass(body: str) -> int:
    return sum(int(d) * (i % 10 + 1) for i, d in enumerate(body)) % 11


@given(bodies, st.data())
def test_one_changed_digit_is_caught(body: str, data: st.DataObject) -> None:
    """Weights 1..10 are invertible mod 11, so one changed digit always changes the first-pass
    sum. The algorithm's fallbacks (a first-pass 10 goes to a second pass whose 10 becomes 0)
    can map two bodies to the same digit, so the guarantee holds when neither body falls back."""
    uin = with_control_digit(body)
    position = data.draw(st.integers(0, len(uin) - 1))
    new_digit = data.draw(st.sampled_from([d for d in "0123456789" if d != uin[position]]))
    changed = uin[:position] + new_digit + uin[position + 1 :]
    assert set(uin) == {"0"} or check_uin(uin).ok
    if first_pass(uin[:-1]) != 10 and first_pass(changed[:-1]) != 10:
        assert not check_uin(changed).ok


def test_a_change_hidden_by_the_fallback_is_a_property_of_the_algorithm() -> None:
    """Documented limit, not a bug: the algorithm's fallbacks collapse some values to 0."""
    body = "0053332901715219971"
    uin = with_control_digit(body)
    hidden = [
        uin[:i] + d + uin[i + 1 :]
        for i in range(len(uin) - 1)
        for d in "0123456789"
        if d != uin[i] and check_uin(uin[:i] + d + uin[i + 1 :]).ok
    ]
    assert hidden, "this body was found by hypothesis to have an undetectable neighbour"
    assert all(first_pass(h[:-1]) == 10 or first_pass(uin[:-1]) == 10 for h in hidden)


@pytest.mark.parametrize(
    "pasted",
    [
        "УИН 18810136161108008161",
        "уин: 18810136161108008161",
        "UIN18810136161108008161",
        "УИН № 18810136161108008161",
        "№ 18810136161108008161",
        "18810136161108008161.",
    ],
)
def test_a_uin_pasted_with_its_label_is_read_without_it(pasted: str) -> None:
    """As an SMS or Госуслуги put it (review 33d): У, И, Н are letters of the table."""
    assert check_uin(pasted) == check_uin("18810136161108008161")
    assert check_uin(pasted).ok


def test_a_label_is_kept_when_what_follows_is_not_a_uin_length() -> None:
    assert check_uin("УИН 1881013616110800816").problem is UinProblem.LENGTH
