"""City points («Миллион призов»): the account, and what earns points right now."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from domain.accounts import AccountLevel, Resident
from domain.errors import DomainError
from domain.meters import POINTS_BY_LEVEL, MeterKind, open_window, upcoming_window
from domain.ports import CityAuth, CityCharity, UnitOfWork
from domain.sessions import ResidentSession

EPD_CASHBACK_PERCENT = 5


@dataclass(frozen=True, slots=True)
class PointsEntry:
    id: str
    amount: int
    kind: str
    reason: str
    created_at: datetime
    available_at: datetime


@dataclass(frozen=True, slots=True)
class PointsAccount:
    balance: int
    pending: tuple[PointsEntry, ...]
    entries: tuple[PointsEntry, ...]

    @property
    def pending_total(self) -> int:
        return sum(entry.amount for entry in self.pending)


@dataclass(frozen=True, slots=True)
class Transfer:
    id: str
    fund_id: str
    fund_name: str
    points: int
    balance: int  # after the transfer


class InsufficientPoints(DomainError):
    def __init__(self, balance: int) -> None:
        super().__init__(f"balance {balance}")
        self.balance = balance


@dataclass(frozen=True, slots=True)
class MeterState:
    """What the tips need to know about one meter."""

    kind: MeterKind
    submitted_this_period: bool


class TipKind(StrEnum):
    READINGS_NOW = "readings_now"  # windows open, readings missing: +N points
    READINGS_LATER = "readings_later"  # nothing to send now: the next window opens on a date
    EPD_CASHBACK = "epd_cashback"


@dataclass(frozen=True, slots=True)
class EarnTip:
    kind: TipKind
    points: int = 0
    meters: int = 0
    until: date | None = None  # READINGS_NOW: the earliest closing date of the open windows
    opens_on: date | None = None  # READINGS_LATER


def how_to_earn_now(today: date, level: AccountLevel, meters: list[MeterState]) -> list[EarnTip]:
    """Tips that depend on the date and the resident: open windows with missing readings first."""
    tips: list[EarnTip] = []
    due = [m for m in meters if not m.submitted_this_period and open_window(m.kind, today)]
    if due:
        closing = min(w.closes_on for m in due if (w := open_window(m.kind, today)) is not None)
        tips.append(
            EarnTip(
                TipKind.READINGS_NOW,
                points=POINTS_BY_LEVEL[level] * len(due),
                meters=len(due),
                until=closing,
            )
        )
    elif meters:
        opens = min(upcoming_window(m.kind, today).opens_on for m in meters)
        tips.append(EarnTip(TipKind.READINGS_LATER, opens_on=opens))
    tips.append(EarnTip(TipKind.EPD_CASHBACK, points=EPD_CASHBACK_PERCENT))
    return tips


def epd_cashback(amount_kopecks: int) -> int:
    """Points that come back for an ЕПД payment: 5% of the rubles, rounded down."""
    return amount_kopecks // 100 * EPD_CASHBACK_PERCENT // 100


async def points_account(
    uow: UnitOfWork, auth: CityAuth, city: CityCharity, resident: Resident, limit: int = 10
) -> PointsAccount:
    return await city.points(ResidentSession(resident, auth, uow.residents), limit)


async def transfer_points(
    uow: UnitOfWork,
    auth: CityAuth,
    city: CityCharity,
    resident: Resident,
    key: str,
    fund_id: str,
    points: int,
) -> Transfer:
    """Points to a fund. The key is made when the confirmation is shown, so pressing
    «Подтвердить» twice sends the same key and the platform debits once."""
    return await city.transfer_points(
        ResidentSession(resident, auth, uow.residents), key, fund_id, points
    )
