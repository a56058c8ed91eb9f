"""Top-up services of the sandbox: «Тройка» cards, «Московский паркинг» accounts and МГТС
accounts (a payment of any amount to the landline's account: an advance its next bills are paid
from), their balances and limits, and the accounts each demo resident has in their profile.

The limits are the sandbox's, chosen to be realistic (the carriers publish their own, and
change them): a «Тройка» takes 1 to 3 000 ₽ in one payment and holds at most 3 000 ₽ (the
e-wallet's ceiling); a parking account takes 10 to 15 000 ₽ in one payment and has no ceiling;
an МГТС account takes 1 to 15 000 ₽ in one payment and has no ceiling. Every service listed
takes a fixed amount on a schedule (`fixed_amount`: an autopay); ЕПД, kindergartens and clubs
are not listed — they take only their issued bill.
A top-up is credited the moment its payment succeeds (on a real «Тройка» an online top-up is
written to the chip at the next validator; the platform's balance counts it at once).

Nothing here awaits: the payment book calls `check` and `credit` inside one synchronous
operation, so two payments can never both fit under a ceiling that only one fits under.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from domain.topups import LANDLINE_CODES, PHONE_DIGITS, TROIKA_DIGITS, TROIKA_MAX
from sandbox.common import Refused


@dataclass(frozen=True, slots=True)
class Service:
    code: str
    title: str
    min_amount: int  # kopecks, one payment
    max_amount: int
    max_balance: int | None  # the most an account may hold; None: no ceiling
    receipt_title: str  # the receipt line: «… № <account>»
    provider: str
    fixed_amount: bool = True  # takes scheduled payments of a fixed amount (autopays)


SERVICES: dict[str, Service] = {
    "troika": Service(
        "troika",
        "Карта «Тройка»",
        100,
        300_000,
        300_000,
        "Пополнение карты «Тройка» №",
        "ГКУ «Организатор перевозок»",
    ),
    "parking": Service(
        "parking",
        "Парковочный счёт «Московский паркинг»",
        1_000,
        1_500_000,
        None,
        "Пополнение парковочного счёта",
        "ГКУ «Администратор Московского парковочного пространства»",
    ),
    "mgts": Service(
        "mgts",
        "Телефон и интернет МГТС",
        100,
        1_500_000,
        None,
        "Оплата услуг МГТС, телефон",
        "ПАО «МГТС»",
    ),
}


class TopupRefused(Refused):
    """Answered with a `PaymentProblem` (`status`, `reason`, details)."""


@dataclass(slots=True)
class AccountState:
    balance: int  # kopecks
    shows_balance: bool = True  # False: the platform does not tell the balance (None)


def well_formed(service: str, account: object) -> bool:
    """The carrier's format: a «Тройка» serial (10 digits, 32 bits, no check digit), a mobile
    phone «79XXXXXXXXX» for parking, a Moscow landline «7495…»/«7499…» for МГТС."""
    if not isinstance(account, str) or not (account.isascii() and account.isdigit()):
        return False
    if service == "troika":
        return len(account) == TROIKA_DIGITS and int(account) <= TROIKA_MAX
    if service == "mgts":
        return len(account) == PHONE_DIGITS and account.startswith(LANDLINE_CODES)
    return len(account) == PHONE_DIGITS and account.startswith("79")


def _seed() -> dict[tuple[str, str], AccountState]:
    return {
        ("troika", "0012345678"): AccountState(15_000),
        ("troika", "1234567890"): AccountState(295_000),  # 50 ₽ below the ceiling
        ("troika", "0300000000"): AccountState(0, shows_balance=False),
        ("parking", "79161234567"): AccountState(42_000),
        ("parking", "79031112233"): AccountState(0),
        ("parking", "79990000000"): AccountState(5_000),
        ("mgts", "74951234567"): AccountState(12_000),  # an advance of 120 ₽ left
        ("mgts", "74997654321"): AccountState(0),
    }


# The accounts in each demo resident's profile (by city account id), per service.
OWN_ACCOUNTS: dict[str, dict[str, tuple[str, ...]]] = {
    "C-100003": {"troika": ("0012345678",), "parking": ("79161234567",), "mgts": ("74951234567",)},
    "C-100002": {"parking": ("79031112233",), "mgts": ("74997654321",)},
}


@dataclass(slots=True)
class TopupBook:
    """Every top-up account of one sandbox instance."""

    accounts: dict[tuple[str, str], AccountState] = field(default_factory=_seed)

    def service(self, code: object) -> Service:
        service = SERVICES.get(code) if isinstance(code, str) else None
        if service is None:
            raise TopupRefused(404, "unknown_service", f"no top-up service {code!r}")
        return service

    def account(self, service: str, account: object) -> AccountState:
        """The account; TopupRefused 400 `invalid_account` / 404 `unknown_account`."""
        if not well_formed(service, account):
            raise TopupRefused(
                400, "invalid_account", f"{account!r} is not a {service} account number"
            )
        assert isinstance(account, str)
        state = self.accounts.get((service, account))
        if state is None:
            raise TopupRefused(404, "unknown_account", f"no {service} account {account}")
        return state

    def balance(self, service: str, account: str) -> int | None:
        state = self.account(service, account)
        return state.balance if state.shows_balance else None

    def check(self, service_code: str, account: str, amount: int) -> None:
        """Whether `amount` may be added now; raises TopupRefused."""
        service = self.service(service_code)
        state = self.account(service_code, account)
        most = service.max_amount
        if service.max_balance is not None:
            most = min(most, service.max_balance - state.balance)
        if not service.min_amount <= amount <= most:
            raise TopupRefused(
                400,
                "amount_out_of_limits",
                f"a {service_code} top-up of this account is from {service.min_amount} to "
                f"{max(most, 0)} kopecks now",
                min_amount=service.min_amount,
                max_amount=max(most, 0),
            )

    def credit(self, service: str, account: str, amount: int) -> None:
        self.account(service, account).balance += amount

    def set_balance(self, service: str, account: str, balance: int, shows: bool = True) -> None:
        """A sandbox control: the account gets this balance (created if new)."""
        self.service(service)
        if not well_formed(service, account):
            raise TopupRefused(400, "invalid_account", f"{account!r} is not a {service} account")
        self.accounts[(service, account)] = AccountState(balance, shows)

    def services_of(self, account_id: str) -> list[dict[str, Any]]:
        """The contract's `TopupService` list for a resident."""
        own = OWN_ACCOUNTS.get(account_id, {})
        return [
            {
                "code": s.code,
                "title": s.title,
                "min_amount": s.min_amount,
                "max_amount": s.max_amount,
                "max_balance": s.max_balance,
                "own_accounts": list(own.get(s.code, ())),
                "fixed_amount": s.fixed_amount,
            }
            for s in SERVICES.values()
        ]
