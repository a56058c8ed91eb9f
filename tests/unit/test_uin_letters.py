"""UIN letters by the DIT table, ASCII digits only, and no exception for any text."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from domain.uin import UinProblem, char_value, check_uin, control_digit, with_control_digit

# The Moscow DIT letter table, typed again here (not imported) so a slip in one shows in the other.
DIT = (
    "А1 Б2 В3 Г4 Д5 Е6 Ж7 З8 И9 К10 Л11 М12 Н13 О14 П15 Р16 С17 Т18 У19 Ф20 Х21 Ц22 Ч23 Ш24 Щ25"
    " Э26 Ю27 Я28 Ъ33 Ы36 Ь42"
    " A1 B3 E6 K10 M12 H13 O14 P16 C17 T18 Y19 X21"
    " D29 F30 G31 I32 J33 L34 N35 Q36 R37 S38 U39 V40 W41 Z42"
)
TABLE = {entry[0]: int(entry[1:]) for entry in DIT.split()}


def independent_control(body: str) -> int:
    values = [int(ch) if ch in "0123456789" else TABLE[ch.upper()] % 10 for ch in body]
    for shift in (0, 2):
        total = sum(v * ((i + shift) % 10 + 1) for i, v in enumerate(values))
        if total % 11 != 10:
            return total % 11
    return 0


@pytest.mark.parametrize(
    ("uin", "ok"),
    [
        ("М00007229740048364Z5", True),  # Cyrillic М
        ("M00007229730048364Z9", True),  # Latin M
        ("М00007229740048364Z4", False),  # the control digit should be 5
        ("м00007229740048364z5", True),  # lower case as typed
        # real UINs (the DIT description's examples)
        ("18810136161108008161", True),
        ("18810177181128202096", True),
        ("18810177190218155028", True),
        ("18810177170712879661", True),
        ("18810177181044064881", True),
        ("18810177200104519116", True),
        ("18810177200855150244", True),
        ("0349347501810000000132623", True),
        ("0355431010119102401042373", True),
        ("0355431010117031600011275", True),
        ("18810177200718000123", False),
        ("18810177220123456789", False),
    ],
)
def test_reference_uins(uin: str, ok: bool) -> None:
    check = check_uin(uin)
    assert check.ok is ok
    if not ok:
        assert check.problem is UinProblem.CONTROL


def test_the_dit_examples_and_the_table() -> None:
    assert char_value("Л") == 1 and char_value("О") == 4  # the DIT's worked examples
    for letter, value in TABLE.items():
        assert char_value(letter) == value % 10, letter
        assert char_value(letter.lower()) == value % 10, letter
    assert char_value("M") == char_value("М") == 2  # a look-alike takes the Cyrillic value
    assert char_value("Z") == 2 and char_value("D") == 9  # other Latin go on after Я


@pytest.mark.parametrize("letter", ["Ё", "ё", "Й", "й"])
def test_yo_and_short_i_are_not_uin_letters(letter: str) -> None:
    assert check_uin(letter + "0007229740048364Z55").problem is UinProblem.CHARACTERS


@pytest.mark.parametrize(
    "text",
    [
        "1881013616110800816²",
        "１８８１０１３６１６１１０８００８１６１",
        "١٨٨١٠١٣٦١٦١١٠٨٠٠٨١٦١",
        "۱۸۸۱۰۱۳۶۱۶۱۱۰۸۰۰۸۱۶۱",
        "18810136161108008¹61",
        "1881013616110800816½",
        "1881013616110800816\u0661",
        "1881013616110800816ı",  # dotless i: upper() would make it I
        "188101361611080081\u212a1",  # the Kelvin sign, not K
    ],
)
def test_only_ascii_digits_are_digits(text: str) -> None:
    assert check_uin(text).problem is UinProblem.CHARACTERS


letters = st.sampled_from(sorted(TABLE) + sorted(t.lower() for t in TABLE))
bodies = st.sampled_from([19, 24]).flatmap(
    lambda n: st.lists(
        st.one_of(st.sampled_from("0123456789"), letters), min_size=n, max_size=n
    ).map("".join)
)


@given(bodies)
def test_letters_agree_with_an_independent_formula(body: str) -> None:
    assert control_digit(body) == independent_control(body)
    assert check_uin(with_control_digit(body)).ok or set(body) == {"0"}


@given(st.text(max_size=40))
@example("1881013616110800816²")
@example("ß" * 20)
def test_any_text_is_answered_without_an_exception(text: str) -> None:
    check = check_uin(text)
    if any(unicodedata.numeric(ch, None) is not None and ch not in "0123456789" for ch in text):
        assert check.problem is UinProblem.CHARACTERS
    if check.ok:
        assert all(ch in "0123456789" or ch.upper() in TABLE for ch in check.uin)
