"""What is paid: one value built once — when the resident picks bills, enters a UIN, photographs
a receipt or chooses a fund — and carried unchanged through the confirmation, the stored intent,
the charge, an autopay's run, the receipt and the city client.

A payable is exactly one of: some of the resident's bills (by the city's bill ids; a UIN found
at the city becomes a bill id), a receipt's requisites (payee, accounts, payer code, period), a
donation to a charity fund, or a top-up of an account at a city service (a «Тройка» card, a
parking account). A mixed value cannot be built, so nothing downstream can prefer one target
over another.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


@dataclass(frozen=True, slots=True)
class Requisites:
    """What a receipt without a city bill carries (GOST R 56042-2014 fields, normalised):
    `payee_inn` 10 or 12 digits, `personal_acc` 20 digits, `bic` 9 digits, `pers_acc` the payer
    code with the provider (the ЕПД payer code), `period` MM.YYYY, `uin` a valid UIN or None."""

    payee_name: str
    payee_inn: str
    personal_acc: str
    bic: str
    purpose: str
    pers_acc: str | None = None
    period: str | None = None
    uin: str | None = None


@dataclass(frozen=True, slots=True)
class TopupTarget:
    """An account at a city service that takes top-ups: `service` the platform's service code
    («troika», «parking»), `account` the account as the platform names it (a card number, a
    phone number in digits) — normalised by domain/topups.py before it gets here."""

    service: str
    account: str


class PayableKind(StrEnum):
    BILLS = "bills"
    REQUISITES = "requisites"
    DONATION = "donation"
    TOPUP = "topup"


class MixedPayable(ValueError):
    """A payable must name exactly one kind of target."""


@dataclass(frozen=True, slots=True)
class Payable:
    """Exactly one target: `bill_ids` (BILLS), `requisites` (REQUISITES), `fund_id`
    (DONATION) or `topup` (TOPUP). Raises MixedPayable when built with none, another or more
    than one."""

    kind: PayableKind
    bill_ids: tuple[str, ...] = ()
    requisites: Requisites | None = None
    fund_id: str | None = None
    topup: TopupTarget | None = None

    def __post_init__(self) -> None:
        given = {
            PayableKind.BILLS: bool(self.bill_ids),
            PayableKind.REQUISITES: self.requisites is not None,
            PayableKind.DONATION: bool(self.fund_id),
            PayableKind.TOPUP: self.topup is not None,
        }
        if not given[self.kind] or any(has for kind, has in given.items() if kind != self.kind):
            raise MixedPayable(f"a {self.kind.value} payable must name only its own target")
        if self.topup is not None and not (self.topup.service and self.topup.account):
            raise MixedPayable("a top-up must name its service and account")

    @classmethod
    def bills(cls, bill_ids: tuple[str, ...] | list[str]) -> Payable:
        return cls(PayableKind.BILLS, bill_ids=tuple(dict.fromkeys(bill_ids)))

    @classmethod
    def by_requisites(cls, requisites: Requisites) -> Payable:
        return cls(PayableKind.REQUISITES, requisites=requisites)

    @classmethod
    def donation(cls, fund_id: str) -> Payable:
        return cls(PayableKind.DONATION, fund_id=fund_id)

    @classmethod
    def top_up(cls, service: str, account: str) -> Payable:
        return cls(PayableKind.TOPUP, topup=TopupTarget(service, account))

    def to_json(self) -> dict[str, Any]:
        """Small scalars only (dialog data is JSON in Redis)."""
        if self.kind is PayableKind.BILLS:
            return {"kind": self.kind.value, "bill_ids": list(self.bill_ids)}
        if self.kind is PayableKind.REQUISITES:
            assert self.requisites is not None
            return {"kind": self.kind.value, "requisites": asdict(self.requisites)}
        if self.kind is PayableKind.TOPUP:
            assert self.topup is not None
            return {"kind": self.kind.value, "topup": asdict(self.topup)}
        return {"kind": self.kind.value, "fund_id": self.fund_id}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Payable:
        """Raises MixedPayable (or KeyError/TypeError) for anything but what to_json wrote."""
        kind = PayableKind(data["kind"])
        if kind is PayableKind.BILLS:
            return cls.bills([str(b) for b in data["bill_ids"]])
        if kind is PayableKind.REQUISITES:
            return cls.by_requisites(Requisites(**data["requisites"]))
        if kind is PayableKind.TOPUP:
            topup = TopupTarget(**data["topup"])
            return cls.top_up(str(topup.service), str(topup.account))
        return cls.donation(str(data["fund_id"]))
