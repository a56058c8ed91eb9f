"""Bills the city has issued to a resident."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import TYPE_CHECKING

from domain.sessions import ResidentSession

if TYPE_CHECKING:
    from domain.accounts import Resident
    from domain.ports import CityApi, CityAuth, UnitOfWork


class BillKind(StrEnum):
    EPD = "epd"  # единый платёжный документ (housing and utilities)
    MGTS = "mgts"  # telephone / internet
    KINDERGARTEN = "kindergarten"
    CLUB = "club"
    TRAFFIC_FINE = "traffic_fine"
    PARKING_FINE = "parking_fine"
    OTHER = "other"  # found by UIN, from a payee the city does not classify

    @classmethod
    def read(cls, value: object) -> BillKind:
        """The platform's kind of a bill; one the contract does not list (a kind the platform
        added after this bot) is OTHER — paid as any bill by its amount — never an error that
        hides the resident's other bills (review 27)."""
        try:
            return cls(str(value))
        except ValueError:
            return cls.OTHER


@dataclass(frozen=True, slots=True)
class Bill:
    id: str
    kind: BillKind
    title: str
    provider: str
    amount: int  # kopecks
    due_date: date
    uin: str | None = None
    payer_code: str | None = None
    period: str | None = None  # MM.YYYY
    paid: bool = False  # the city's status: paid by any road (the bot, the site, a bank)

    def is_overdue(self, today: date) -> bool:
        return self.due_date < today


def by_due_date(bills: Iterable[Bill]) -> list[Bill]:
    """Unpaid bills in the order a resident should pay them: earliest due first."""
    return sorted(bills, key=lambda bill: (bill.due_date, bill.id))


async def unpaid_bills(
    uow: UnitOfWork, auth: CityAuth, city: CityApi, resident: Resident
) -> list[Bill]:
    """The resident's unpaid bills, earliest due first."""
    session = ResidentSession(resident, auth, uow)
    return by_due_date(await city.unpaid_bills(session))
