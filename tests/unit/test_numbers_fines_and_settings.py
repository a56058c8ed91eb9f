"""СТС and licence numbers take ASCII digits only; the operator's amount ceilings as settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import SettingsError, load_settings
from domain.fines import DocumentKind, normalize_document
from domain.limits import AmountLimits, LimitKind

STS, LICENCE = DocumentKind.STS, DocumentKind.DRIVER_LICENSE
CEILINGS = ("MAX_PAYMENT_RUB", "MAX_DONATION_RUB", "MAX_AUTOPAY_RUB")


@pytest.mark.parametrize(
    ("kind", "text", "number"),
    [
        (STS, "77 ав 123456", "77АВ123456"),
        (STS, "77AB123456", "77АВ123456"),  # Latin look-alikes typed on a Latin keyboard
        (STS, "77-АВ-123456", "77АВ123456"),
        (LICENCE, "77 01 123456", "7701123456"),
        (STS, "７７АВ１２３４５６", None),  # full-width digits
        (STS, "٧٧АВ123456", None),  # Arabic-Indic digits
        (STS, "77АВ12345²", None),
        (LICENCE, "7701１23456", None),
        (STS, "77АВ1234567", None),
        (STS, "77ФЫВ12345", None),
    ],
)
def test_document_numbers(kind: DocumentKind, text: str, number: str | None) -> None:
    assert normalize_document(kind, text) == number


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in CEILINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no .env from the developer's checkout


@pytest.mark.usefixtures("clean_environment")
def test_the_ceilings_default_to_the_domains_and_are_given_in_kopecks() -> None:
    limits = load_settings().amount_limits()
    assert limits == AmountLimits()
    assert (limits.payment, limits.donation, limits.autopay) == (
        500_000_00,
        100_000_00,
        100_000_00,
    )


@pytest.mark.usefixtures("clean_environment")
def test_the_ceilings_are_set_in_rubles(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_PAYMENT_RUB", "700000")
    monkeypatch.setenv("MAX_DONATION_RUB", "5000")
    monkeypatch.setenv("MAX_AUTOPAY_RUB", "1")
    limits = load_settings().amount_limits()
    assert limits.of(LimitKind.PAYMENT) == 70_000_000
    assert limits.of(LimitKind.DONATION) == 500_000
    assert limits.of(LimitKind.AUTOPAY) == 100


@pytest.mark.usefixtures("clean_environment")
@pytest.mark.parametrize("name", CEILINGS)
@pytest.mark.parametrize("value", ["0", "-1", "1.5", "1e5", "много", "2000000000"])
def test_a_bad_ceiling_is_named(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert str(caught.value).startswith(f"Invalid setting {name}: ")


def test_every_ceiling_is_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text("utf-8")
    for name in CEILINGS:
        assert f"| `{name}` |" in readme
