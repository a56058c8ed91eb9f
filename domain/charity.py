"""Charity (mos.ru/blago): funds by category, donations with a 50 ₽ minimum, «Вы помогали»."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from domain.accounts import Resident
from domain.limits import DEFAULT_LIMITS
from domain.money import MoneyParseError, MoneyProblem, parse_rub
from domain.ports import CityAuth, CityCharity, UnitOfWork
from domain.sessions import ResidentSession
from domain.typed_text import visible

MIN_DONATION = 5_000  # kopecks: 50 ₽
PRESET_AMOUNTS = (10_000, 30_000, 50_000)


@dataclass(frozen=True, slots=True)
class FundCategory:
    id: str
    title: str
    count: int


@dataclass(frozen=True, slots=True)
class Fund:
    id: str
    name: str
    category: str
    summary: str
    description: str
    programs: tuple[str, ...]
    report_url: str
    report_period: str


@dataclass(frozen=True, slots=True)
class PastDonation:
    """A row of «Вы помогали»: the last gift to a fund."""

    fund_id: str
    fund_name: str
    last_amount: int
    last_donated_at: datetime
    total: int
    count: int


class DonationProblem(StrEnum):
    NOT_A_NUMBER = "not_a_number"
    GROUPING = "grouping"  # «1500 50»: a space that does not group thousands
    TOO_SMALL = "too_small"
    TOO_LARGE = "too_large"


def parse_donation(text: str, ceiling: int = DEFAULT_LIMITS.donation) -> int | DonationProblem:
    """What the resident typed as «Другая сумма» → kopecks, or why it cannot be given: below
    the platform's 50 ₽ minimum, above the operator's `ceiling` (kopecks), not an amount."""
    stripped = visible(text)  # pasted: direction marks, zero-width at the ends
    if stripped.startswith("-"):
        return DonationProblem.TOO_SMALL
    try:
        amount = parse_rub(stripped)
    except MoneyParseError as error:
        if error.reason is MoneyProblem.GROUPING:
            return DonationProblem.GROUPING
        return DonationProblem.NOT_A_NUMBER
    if amount < MIN_DONATION:
        return DonationProblem.TOO_SMALL
    if amount > ceiling:
        return DonationProblem.TOO_LARGE
    return amount


async def fund_categories(
    uow: UnitOfWork, auth: CityAuth, city: CityCharity, resident: Resident
) -> list[FundCategory]:
    return await city.fund_categories(ResidentSession(resident, auth, uow))


async def funds(
    uow: UnitOfWork, auth: CityAuth, city: CityCharity, resident: Resident, category: str | None
) -> list[Fund]:
    return await city.funds(ResidentSession(resident, auth, uow), category)


async def fund(
    uow: UnitOfWork, auth: CityAuth, city: CityCharity, resident: Resident, fund_id: str
) -> Fund:
    return await city.fund(ResidentSession(resident, auth, uow), fund_id)


async def past_donations(
    uow: UnitOfWork, auth: CityAuth, city: CityCharity, resident: Resident
) -> list[PastDonation]:
    """«Вы помогали»: newest first."""
    return await city.donations(ResidentSession(resident, auth, uow))
