"""Every domain error has a sentence of its own (`handlers.texts.ERROR_KEYS`): an error a step
did not expect is told as what it is, never as the bot's own failure («Что-то пошло не так. Мы
уже разбираемся»), which a resident reads as «try again» — in a loop that cannot succeed when
the card, the fund or the bill is gone (review 30c)."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator

import pytest

import city
import domain
from bot.i18n import load_translator
from domain.errors import DomainError
from domain.limits import AmountTooLarge, LimitKind
from handlers.texts import error_key, error_text


def _modules() -> None:
    for package in (domain, city):
        for module in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{package.__name__}.{module.name}")


def _subclasses(cls: type[DomainError]) -> Iterator[type[DomainError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


_modules()
ERRORS = sorted(set(_subclasses(DomainError)), key=lambda c: f"{c.__module__}.{c.__name__}")


def test_the_domain_errors_are_found() -> None:
    names = {cls.__name__ for cls in ERRORS}
    assert {"PayeeGone", "UnknownTopupAccount", "WindowClosed", "CityUnavailable"} <= names


def _instance(cls: type[DomainError]) -> DomainError:
    if cls is AmountTooLarge:
        return AmountTooLarge(LimitKind.PAYMENT, 15_000_000)
    return cls.__new__(cls)  # the sentence depends on the class alone


@pytest.mark.parametrize("cls", ERRORS, ids=lambda cls: cls.__name__)
def test_every_domain_error_has_its_own_sentence(cls: type[DomainError]) -> None:
    error = _instance(cls)
    assert error_key(error) != "error-generic", f"{cls.__name__} reads as the bot's own failure"
    text = str(error_text(load_translator(), error))
    assert text and "{" not in text and "???" not in text, text  # no value left out
