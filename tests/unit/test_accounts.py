from __future__ import annotations

import pytest

from domain.accounts import mask_name
from domain.linking import pkce_challenge


@pytest.mark.parametrize(
    ("full", "masked"),
    [
        ("Иванова Мария Петровна", "Мария И."),
        ("Петров Олег", "Олег П."),
        ("Cher", "C."),
        ("", "—"),
    ],
)
def test_mask_name_keeps_given_name_and_initial_only(full: str, masked: str) -> None:
    assert mask_name(full) == masked


def test_pkce_challenge_matches_rfc7636_appendix_b() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert pkce_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
