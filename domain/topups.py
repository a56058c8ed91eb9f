"""Top-ups: «Пополнить «Тройку»» and «Пополнить парковочный счёт».

What the resident types is checked here the way the carriers number their accounts:

- A «Тройка» card number is the 10 digits printed on the back of the card. It is the card's
  serial as the chip keeps it: a 32-bit number (field 201 of the Mosgortrans layouts) written
  with leading zeros, so it is at most 4 294 967 295. It carries no check digit (we found none:
  public readers of the card print the serial as it is, with nothing computed over it), so the
  check is the length, the digits and that range; whether the card exists only the platform
  knows («unknown_account»).
- A parking account («Московский паркинг») is the mobile phone number the parking account is
  registered to: +7 9XX XXX-XX-XX, typed in any usual way («8 916 123-45-67», «+7(916)1234567»,
  «9161234567»), kept as the 11 digits «79161234567».
- An МГТС account is the Moscow landline number its bills are for: +7 495 … or +7 499 …, typed
  the same ways as a phone («8 495 123-45-67», «4951234567»), kept as «74951234567». МГТС takes a
  payment of any amount to it (an advance, «аванс», spent by its next bills): that is what a
  fixed-amount autopay of МГТС pays (`fixed_amount_service`).

Spaces, no-break spaces, hyphens and brackets are allowed between digits; only the ASCII digits
0-9 are digits («²», «١» are refused, never converted). The amount limits (per payment and the
most a wallet may hold) are the platform's, read with the services; the amount a resident types
is read by the money parser (`domain.money.parse_rub`: «1e5», «²», signs, «1,005» refused).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from domain.accounts import Resident
from domain.bills import BillKind
from domain.errors import DomainError
from domain.money import GROUP_SPACES, MoneyParseError, MoneyProblem, has_foreign_digit, parse_rub
from domain.ports import CityAuth, CityTopups, UnitOfWork
from domain.sessions import ResidentSession
from domain.typed_text import visible


class TopupService(StrEnum):
    """The platform's service codes."""

    TROIKA = "troika"
    PARKING = "parking"
    MGTS = "mgts"  # an advance to the МГТС account (the landline its bills are for)


TROIKA_DIGITS = 10
TROIKA_MAX = 2**32 - 1  # the chip keeps the serial in 32 bits
PHONE_DIGITS = 11  # 7 + ten digits
LANDLINE_CODES = ("7495", "7499")  # Moscow's landline codes: МГТС numbers
_SEPARATORS = GROUP_SPACES + "-()\u2010\u2011\u2012\u2013"
_MAX_TEXT = 64  # a longer text is not an account number anyone types

# Preset amounts offered as buttons (kopecks); only those within the limits are shown.
PRESETS: dict[TopupService, tuple[int, ...]] = {
    TopupService.TROIKA: (10_000, 30_000, 50_000, 100_000),
    TopupService.PARKING: (10_000, 30_000, 50_000, 100_000),
    TopupService.MGTS: (50_000, 100_000, 150_000, 300_000),
}


class AccountProblem(StrEnum):
    """Why a typed account number is not one: handlers pick their hint by it."""

    DIGITS = "digits"  # a digit that is not 0-9 («²», «١»)
    FORMAT = "format"  # letters or other signs, or empty
    LENGTH = "length"  # not the number of digits the service's accounts have
    RANGE = "range"  # a Тройка number above what the chip can hold; a phone that is not mobile


def _digits(text: str) -> str | AccountProblem:
    stripped = visible(text)  # pasted: direction marks, zero-width at the ends
    if len(stripped) > _MAX_TEXT:
        return AccountProblem.LENGTH
    if has_foreign_digit(stripped):
        return AccountProblem.DIGITS
    kept = "".join(ch for ch in stripped if ch not in _SEPARATORS)
    if not kept or not all("0" <= ch <= "9" for ch in kept):
        return AccountProblem.FORMAT
    return kept


def troika_number(text: str) -> str | AccountProblem:
    """A typed «Тройка» card number → its 10 digits, or why it is not one."""
    digits = _digits(text)
    if isinstance(digits, AccountProblem):
        return digits
    if len(digits) != TROIKA_DIGITS:
        return AccountProblem.LENGTH
    if int(digits) > TROIKA_MAX:
        return AccountProblem.RANGE
    return digits


def _phone(text: str) -> str | AccountProblem:
    """A typed Russian phone number → «7» and ten digits, or why it is not one. A leading
    «8» is the country code; ten digits alone are taken as a Russian number. After «+» comes
    the country code itself (ITU-T E.164), so only «+7» and ten digits are Russian: «+960 791
    2345» is a number of the Maldives, never +7 960 791-23-45 — someone else's account."""
    stripped = visible(text)  # pasted: direction marks, zero-width at the ends
    international = stripped.startswith("+")
    digits = _digits(stripped.removeprefix("+"))
    if isinstance(digits, AccountProblem):
        return digits
    if not international and len(digits) == PHONE_DIGITS - 1:
        digits = "7" + digits
    elif not international and len(digits) == PHONE_DIGITS and digits[0] == "8":
        digits = "7" + digits[1:]
    if len(digits) != PHONE_DIGITS:
        return AccountProblem.LENGTH
    if digits[0] != "7":
        return AccountProblem.RANGE  # another country's code
    return digits


def parking_account(text: str) -> str | AccountProblem:
    """A typed phone number of a parking account → «79…» (a mobile number), or why not."""
    digits = _phone(text)
    if not isinstance(digits, AccountProblem) and not digits.startswith("79"):
        return AccountProblem.RANGE  # parking accounts are mobile numbers
    return digits


def mgts_account(text: str) -> str | AccountProblem:
    """A typed МГТС number → «7495…» or «7499…» (a Moscow landline), or why not."""
    digits = _phone(text)
    if not isinstance(digits, AccountProblem) and not digits.startswith(LANDLINE_CODES):
        return AccountProblem.RANGE  # МГТС bills Moscow landlines
    return digits


def check_account(service: TopupService, text: str) -> str | AccountProblem:
    if service is TopupService.TROIKA:
        return troika_number(text)
    if service is TopupService.MGTS:
        return mgts_account(text)
    return parking_account(text)


def shown_account(service: TopupService | str, account: str) -> str:
    """How an account is written for the resident: «0012 345 678», «+7 916 123-45-67»."""
    if service == TopupService.TROIKA and len(account) == TROIKA_DIGITS:
        return f"{account[:4]} {account[4:7]} {account[7:]}"
    if service in (TopupService.PARKING, TopupService.MGTS) and len(account) == PHONE_DIGITS:
        a = account
        return f"+{a[0]} {a[1:4]} {a[4:7]}-{a[7:9]}-{a[9:]}"
    return account


@dataclass(frozen=True, slots=True)
class TopupLimits:
    """The platform's limits for one service, kopecks: one payment from `min_amount` to
    `max_amount`; `max_balance` the most the account may hold (None: no ceiling)."""

    min_amount: int
    max_amount: int
    max_balance: int | None = None

    def most(self, balance: int | None) -> int:
        """The largest top-up allowed now (below `min_amount`: none is)."""
        if self.max_balance is None or balance is None:
            return self.max_amount
        return min(self.max_amount, self.max_balance - balance)


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    """A top-up service as the platform describes it for this resident: its limits and the
    resident's own accounts there (the parking account of the profile, linked cards, the МГТС
    number); `fixed_amount`: it takes scheduled payments of a fixed amount (an autopay)."""

    code: TopupService
    title: str
    limits: TopupLimits
    own_accounts: tuple[str, ...] = ()
    fixed_amount: bool = False


@dataclass(frozen=True, slots=True)
class AccountBalance:
    """An account's balance at the platform, kopecks (None: the platform does not show it)."""

    service: TopupService
    account: str
    balance: int | None


class UnknownTopupAccount(DomainError):
    """The platform knows no such card or parking account."""


class TopupRefused(DomainError):
    """The platform refused to read the account (a number it does not accept)."""


class AmountProblem(StrEnum):
    NOT_A_NUMBER = "not_a_number"
    GROUPING = "grouping"  # «1500 50»
    DIGITS = "digits"  # «²»
    TOO_SMALL = "too_small"  # zero, negative or below the service's minimum
    TOO_LARGE = "too_large"  # above one payment's maximum (the platform's or the operator's)
    OVER_BALANCE = "over_balance"  # the wallet would hold more than it may


def parse_topup_amount(
    text: str, limits: TopupLimits, balance: int | None, ceiling: int
) -> int | AmountProblem:
    """What the resident typed → kopecks within the service's limits, the room left in the
    wallet and the operator's `ceiling` for one payment; or why not."""
    stripped = visible(text)  # pasted: direction marks, zero-width at the ends
    if stripped.startswith(("-", "\u2212")):
        return AmountProblem.TOO_SMALL
    try:
        amount = parse_rub(stripped)
    except MoneyParseError as error:
        if error.reason is MoneyProblem.GROUPING:
            return AmountProblem.GROUPING
        if error.reason is MoneyProblem.DIGITS:
            return AmountProblem.DIGITS
        return AmountProblem.NOT_A_NUMBER
    return check_amount(amount, limits, balance, ceiling)


def check_amount(
    amount: int, limits: TopupLimits, balance: int | None, ceiling: int
) -> int | AmountProblem:
    if amount <= 0 or amount < limits.min_amount:
        return AmountProblem.TOO_SMALL
    if amount > limits.max_amount or amount > ceiling:
        return AmountProblem.TOO_LARGE
    if amount > limits.most(balance):
        return AmountProblem.OVER_BALANCE
    return amount


def presets(
    service: TopupService, limits: TopupLimits, balance: int | None, ceiling: int
) -> list[int]:
    """The preset amounts that may be paid now."""
    return [
        a for a in PRESETS[service] if isinstance(check_amount(a, limits, balance, ceiling), int)
    ]


def can_top_up(limits: TopupLimits, balance: int | None, ceiling: int) -> bool:
    """Whether any amount fits now (a full wallet takes none)."""
    return min(limits.most(balance), limits.max_amount, ceiling) >= limits.min_amount


class Closed(StrEnum):
    """Why no amount fits: handlers pick their sentence by it."""

    LIMITS = "limits"  # the platform's own limits leave none (its maximum below its minimum)
    CEILING = "ceiling"  # the operator's ceiling on one payment is below the service's minimum
    FULL = "full"  # the account holds (nearly) as much as it may: `max_balance` is set


def closed(limits: TopupLimits, balance: int | None, ceiling: int) -> Closed | None:
    """Why no amount can be paid now, or None when one can (`can_top_up`)."""
    if can_top_up(limits, balance, ceiling):
        return None
    if limits.max_amount < limits.min_amount:
        return Closed.LIMITS
    if ceiling < limits.min_amount:
        return Closed.CEILING
    return Closed.FULL  # only the room left is below the minimum: a ceiling and a balance


async def topup_services(
    uow: UnitOfWork, auth: CityAuth, city: CityTopups, resident: Resident
) -> list[ServiceInfo]:
    return await city.topup_services(ResidentSession(resident, auth, uow))


async def topup_balance(
    uow: UnitOfWork,
    auth: CityAuth,
    city: CityTopups,
    resident: Resident,
    service: TopupService,
    account: str,
) -> AccountBalance:
    """The account's balance (it also tells whether the platform knows the account). Raises
    UnknownTopupAccount, TopupRefused."""
    return await city.topup_balance(ResidentSession(resident, auth, uow), service, account)


def service_of(services: Sequence[ServiceInfo], code: str) -> ServiceInfo | None:
    return next((s for s in services if s.code == code), None)


def fixed_amount_service(services: Sequence[ServiceInfo], bill_kind: str) -> ServiceInfo | None:
    """The service through which a bill service (`BillKind` value) takes a fixed amount on a
    schedule, or None: the platform lists, among the services taking a payment of any amount
    to an account, one with the bill service's own code (`mgts`) and `fixed_amount`. A bill
    service it does not list (ЕПД, a kindergarten, a club) takes only its issued bill."""
    return next((s for s in services if s.code == bill_kind and s.fixed_amount), None)


def advances_bill(service: str) -> bool:
    """Whether a top-up service is the advance to the account a bill service bills (its code
    is that bill service's: `mgts`) rather than a wallet of its own («Тройка», parking)."""
    return service in _BILL_KINDS


_BILL_KINDS = frozenset(k.value for k in BillKind)
