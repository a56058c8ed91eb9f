"""Payments of one sandbox instance: requests, idempotency, card outcomes, receipts, the ledger.

Nothing here awaits, so every operation runs to its end before another request is looked at:
two identical requests that arrive together cannot both charge.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from domain.uin import check_uin
from sandbox.cards import CardBehaviour, SavedCard, behaviour_of, saved_card
from sandbox.data import BillStatus, CityBill, CityData
from sandbox.funds import MIN_DONATION, fund_by_id
from sandbox.topups import SERVICES, TopupBook, TopupRefused

Clock = Callable[[], datetime]
# Called after a payment succeeded, with the bills it paid (points take ЕПД cashback from it).
SuccessListener = Callable[["Payment", list[CityBill]], None]

IDEMPOTENCE_KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_BILLS_PER_PAYMENT = 50
EXTERNAL_PROVIDERS = ("telegram",)

_DIGITS = {"payee_inn": (10, 12), "personal_acc": (20,), "bic": (9,)}
_PERIOD = re.compile(r"^(0[1-9]|1[0-2])\.[0-9]{4}$")


class PaymentStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    DECLINED = "declined"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    EXPIRED_CARD = "expired_card"
    CANCELED = "canceled"


class Awaiting(StrEnum):
    """What a pending payment waits for on the hosted payment page."""

    CARD = "card"  # a new card's number
    CONFIRMATION = "confirmation"  # 3-D Secure: confirm or reject


_FAILURES = {
    CardBehaviour.DECLINED: PaymentStatus.DECLINED,
    CardBehaviour.INSUFFICIENT_FUNDS: PaymentStatus.INSUFFICIENT_FUNDS,
    CardBehaviour.EXPIRED_CARD: PaymentStatus.EXPIRED_CARD,
}


# ---------------------------------------------------------------- the request


class InvalidPaymentRequest(ValueError):
    """The body is not a valid `PaymentRequest` (answered with 400)."""


class BelowMinimum(InvalidPaymentRequest):
    """A donation below the minimum (answered with 400 `PaymentProblem` `below_minimum`)."""

    def __init__(self, minimum: int) -> None:
        super().__init__(f"the minimum donation is {minimum} kopecks")
        self.minimum = minimum


@dataclass(frozen=True, slots=True)
class Requisites:
    payee_name: str
    payee_inn: str
    personal_acc: str
    bic: str
    purpose: str
    pers_acc: str | None = None
    period: str | None = None  # MM.YYYY
    uin: str | None = None


@dataclass(frozen=True, slots=True)
class ExternalCharge:
    provider: str
    charge_id: str


@dataclass(frozen=True, slots=True)
class TopupTarget:
    service: str
    account: str


@dataclass(frozen=True, slots=True)
class PaymentRequest:
    amount: int
    bill_ids: tuple[str, ...] = ()
    requisites: Requisites | None = None
    payment_method_id: str | None = None
    external_charge: ExternalCharge | None = None
    fund_id: str | None = None  # a donation
    topup: TopupTarget | None = None  # a top-up of a «Тройка» card or a parking account

    def fingerprint(self) -> str:
        """Equal for equal requests (an omitted nullable field counts as null)."""
        return json.dumps(asdict(self), sort_keys=True, ensure_ascii=False)


def parse_payment_request(body: object) -> PaymentRequest:
    """Validate a `PaymentRequest` (see the contract); raises InvalidPaymentRequest."""
    if not isinstance(body, dict):
        raise InvalidPaymentRequest("the body must be a JSON object")
    targets = ("bill_ids", "requisites", "fund_id", "topup")
    fields = {*targets, "amount", "payment_method_id", "external_charge"}
    _no_unknown(body, fields, "")
    if sum(name in body for name in targets) != 1:
        raise InvalidPaymentRequest("give exactly one of bill_ids, requisites, fund_id and topup")
    amount = body.get("amount")
    if type(amount) is not int or amount < 1:
        raise InvalidPaymentRequest("amount must be a positive integer (kopecks)")
    method_id = body.get("payment_method_id")
    if method_id is not None and (not isinstance(method_id, str) or not method_id):
        raise InvalidPaymentRequest("payment_method_id must be a non-empty string or null")
    external = _external_charge(body.get("external_charge"))
    if method_id is not None and external is not None:
        raise InvalidPaymentRequest("give payment_method_id or external_charge, not both")
    if "bill_ids" in body:
        return PaymentRequest(amount, _bill_ids(body["bill_ids"]), None, method_id, external)
    if "requisites" in body:
        return PaymentRequest(amount, (), _requisites(body["requisites"]), method_id, external)
    if "topup" in body:
        topup = _topup(body["topup"])
        return PaymentRequest(amount, (), None, method_id, external, None, topup)
    fund_id = body["fund_id"]
    if not isinstance(fund_id, str) or not fund_id:
        raise InvalidPaymentRequest("fund_id must be a non-empty string")
    if amount < MIN_DONATION:
        raise BelowMinimum(MIN_DONATION)
    return PaymentRequest(amount, (), None, method_id, external, fund_id)


def _no_unknown(body: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = set(body) - allowed
    if unknown:
        raise InvalidPaymentRequest(f"unknown fields{where}: {', '.join(sorted(unknown))}")


def _bill_ids(value: object) -> tuple[str, ...]:
    if (
        not isinstance(value, list)
        or not 1 <= len(value) <= MAX_BILLS_PER_PAYMENT
        or not all(isinstance(item, str) and item for item in value)
    ):
        raise InvalidPaymentRequest(
            f"bill_ids must be a list of 1 to {MAX_BILLS_PER_PAYMENT} bill ids"
        )
    if len(set(value)) != len(value):
        raise InvalidPaymentRequest("bill_ids must not repeat a bill")
    return tuple(value)


def _topup(value: object) -> TopupTarget:
    """The shape only; the service, the account and the amount are checked when the payment
    is made (after the key's replay: a repeated request gets its payment back)."""
    if not isinstance(value, dict):
        raise InvalidPaymentRequest("topup must be an object")
    _no_unknown(value, {"service", "account"}, " in topup")
    service, account = value.get("service"), value.get("account")
    if not isinstance(service, str) or not service or not isinstance(account, str) or not account:
        raise InvalidPaymentRequest("topup.service and topup.account are non-empty strings")
    return TopupTarget(service, account)


def _external_charge(value: object) -> ExternalCharge | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidPaymentRequest("external_charge must be an object or null")
    _no_unknown(value, {"provider", "charge_id"}, " in external_charge")
    provider, charge_id = value.get("provider"), value.get("charge_id")
    if provider not in EXTERNAL_PROVIDERS:
        raise InvalidPaymentRequest("external_charge.provider must be 'telegram'")
    if not isinstance(charge_id, str) or not 1 <= len(charge_id) <= 255:
        raise InvalidPaymentRequest("external_charge.charge_id must be 1 to 255 characters")
    return ExternalCharge(provider, charge_id)


def _requisites(value: object) -> Requisites:
    if not isinstance(value, dict):
        raise InvalidPaymentRequest("requisites must be an object")
    required = ("payee_name", "payee_inn", "personal_acc", "bic", "purpose")
    nullable = ("pers_acc", "period", "uin")
    _no_unknown(value, {*required, *nullable}, " in requisites")
    for name in required:
        if not isinstance(value.get(name), str) or not value[name].strip():
            raise InvalidPaymentRequest(f"requisites.{name} is required (a non-empty string)")
    for name, lengths in _DIGITS.items():
        if not (value[name].isascii() and value[name].isdigit() and len(value[name]) in lengths):
            wanted = " or ".join(str(length) for length in lengths)
            raise InvalidPaymentRequest(f"requisites.{name} must be {wanted} digits")
    for name in nullable:
        if value.get(name) is not None and not isinstance(value[name], str):
            raise InvalidPaymentRequest(f"requisites.{name} must be a string or null")
    period, uin = value.get("period"), value.get("uin")
    if period is not None and not _PERIOD.fullmatch(period):
        raise InvalidPaymentRequest("requisites.period must be MM.YYYY")
    if uin is not None and not check_uin(uin).ok:
        raise InvalidPaymentRequest(f"requisites.uin is not a valid UIN ({check_uin(uin).problem})")
    return Requisites(
        payee_name=value["payee_name"].strip(),
        payee_inn=value["payee_inn"],
        personal_acc=value["personal_acc"],
        bic=value["bic"],
        purpose=value["purpose"].strip(),
        pers_acc=value.get("pers_acc"),
        period=period,
        uin=None if uin is None else check_uin(uin).uin,
    )


# ---------------------------------------------------------------- payments and the ledger


class PaymentRefused(Exception):
    """The request is refused before any payment exists (answered with `PaymentProblem`)."""

    def __init__(self, status: int, reason: str, description: str, **details: object) -> None:
        super().__init__(description)
        self.status = status
        self.reason = reason
        self.description = description
        self.details = details


@dataclass(frozen=True, slots=True)
class ReceiptLine:
    title: str
    provider: str
    amount: int
    uin: str | None
    bill_id: str | None


@dataclass(frozen=True, slots=True)
class Receipt:
    number: str
    issued_at: datetime
    total: int
    card_last4: str | None
    lines: tuple[ReceiptLine, ...]


@dataclass(slots=True)
class Payment:
    id: str
    account_id: str
    idempotence_key: str
    fingerprint: str
    request: PaymentRequest
    status: PaymentStatus
    created_at: datetime
    updated_at: datetime
    awaiting: Awaiting | None = None
    card_last4: str | None = None
    confirmation_url: str | None = None  # set while the resident has something to do
    receipt: Receipt | None = None
    note: str | None = None  # why a pending payment was canceled (shown on the page)

    @property
    def amount(self) -> int:
        return self.request.amount


@dataclass(frozen=True, slots=True)
class Charge:
    """A successful charge: what `/sandbox/ledger` lists (exactly one per paid payment)."""

    payment_id: str
    account_id: str
    idempotence_key: str
    amount: int
    card_last4: str | None
    external_charge_id: str | None
    charged_at: datetime


@dataclass(slots=True)
class PaymentBook:
    """Every payment, idempotency key and charge of one sandbox instance."""

    data: CityData
    clock: Clock
    payments: dict[str, Payment] = field(default_factory=dict)  # in creation order
    ledger: list[Charge] = field(default_factory=list)
    listeners: list[SuccessListener] = field(default_factory=list)
    topups: TopupBook = field(default_factory=TopupBook)  # «Тройка» and parking balances
    _by_key: dict[tuple[str, str], str] = field(default_factory=dict)
    _by_charge_id: dict[str, str] = field(default_factory=dict)

    # ------------------------------------------------------------ reading

    def of_account(self, account_id: str, payment_id: str) -> Payment | None:
        payment = self.payments.get(payment_id)
        return payment if payment is not None and payment.account_id == account_id else None

    def history(self, account_id: str, *, limit: int, key: str | None = None) -> list[Payment]:
        """The account's payments, newest first."""
        chosen = [
            payment
            for payment in reversed(self.payments.values())
            if payment.account_id == account_id and (key is None or payment.idempotence_key == key)
        ]
        return chosen[:limit]

    # ------------------------------------------------------------ creating

    def create(
        self, account_id: str, key: str, request: PaymentRequest, page_base: str
    ) -> tuple[Payment, bool]:
        """The payment for this key: (payment, True) when created now, (payment, False) when the
        same request was made before with this key. Raises PaymentRefused."""
        fingerprint = request.fingerprint()
        known = self._by_key.get((account_id, key))
        if known is not None:
            payment = self.payments[known]
            if payment.fingerprint != fingerprint:
                raise PaymentRefused(
                    422,
                    "idempotency_key_reused",
                    "this Idempotence-Key was used for another request: use a new key",
                    payment_id=payment.id,
                )
            return payment, False
        external = request.external_charge
        if external is not None and external.charge_id in self._by_charge_id:
            raise PaymentRefused(
                409,
                "already_registered",
                "this external charge is already registered as a payment",
                payment_id=self._by_charge_id[external.charge_id],
            )
        self._check_bills(account_id, request)
        self._check_fund(request)
        self._check_topup(request)
        card = self._card(account_id, request.payment_method_id)

        now = self.clock()
        payment = Payment(
            id=str(uuid.uuid4()),
            account_id=account_id,
            idempotence_key=key,
            fingerprint=fingerprint,
            request=request,
            status=PaymentStatus.PENDING,
            created_at=now,
            updated_at=now,
        )
        self.payments[payment.id] = payment
        self._by_key[(account_id, key)] = payment.id
        confirmation_url = f"{page_base}/pay/{payment.id}"
        if external is not None:
            self._by_charge_id[external.charge_id] = payment.id
            self._succeed(payment)
        elif card is not None:
            self._charge_card(payment, card.number, confirmation_url)
        else:
            payment.awaiting, payment.confirmation_url = Awaiting.CARD, confirmation_url
        return payment, True

    def _card(self, account_id: str, method_id: str | None) -> SavedCard | None:
        if method_id is None:
            return None
        card = saved_card(account_id, method_id)
        if card is None:
            raise PaymentRefused(
                404, "unknown_payment_method", f"no saved payment method {method_id!r}"
            )
        return card

    def _check_topup(self, request: PaymentRequest) -> None:
        """A top-up's service, account and amount (within the limits and the ceiling now)."""
        if request.topup is None:
            return
        try:
            self.topups.check(request.topup.service, request.topup.account, request.amount)
        except TopupRefused as refused:
            raise PaymentRefused(
                refused.status, refused.reason, refused.description, **refused.details
            ) from None

    @staticmethod
    def _check_fund(request: PaymentRequest) -> None:
        if request.fund_id is not None and fund_by_id(request.fund_id) is None:
            raise PaymentRefused(404, "unknown_fund", f"no fund {request.fund_id!r}")

    def _check_bills(self, account_id: str, request: PaymentRequest) -> list[CityBill]:
        """The request's bills if all are this account's, unpaid and sum to its amount."""
        if not request.bill_ids:
            return []  # requisites or a donation
        bills = [self.data.bill(bill_id) for bill_id in request.bill_ids]
        unknown = [
            bill_id
            for bill_id, bill in zip(request.bill_ids, bills, strict=True)
            if bill is None or bill.account_id != account_id
        ]
        if unknown:
            raise PaymentRefused(
                404, "unknown_bill", f"no such bills: {', '.join(unknown)}", bill_ids=unknown
            )
        found = [bill for bill in bills if bill is not None]
        paid = [bill.id for bill in found if bill.status is BillStatus.PAID]
        if paid:
            raise PaymentRefused(
                409, "already_paid", f"already paid: {', '.join(paid)}", bill_ids=paid
            )
        total = sum(bill.amount for bill in found)
        if total != request.amount:
            raise PaymentRefused(
                409,
                "amount_changed",
                f"the bills now total {total} kopecks, not {request.amount}",
                bill_ids=[bill.id for bill in found],
                amount=total,
            )
        return found

    # ------------------------------------------------------------ the hosted page

    def submit_card(self, payment: Payment, number: str) -> None:
        """A new card typed on the page (the number is already normalised and Luhn-valid)."""
        self._expect(payment, Awaiting.CARD)
        self._charge_card(payment, number, payment.confirmation_url or "")

    def confirm(self, payment: Payment) -> None:
        """3-D Secure confirmed: the card is charged."""
        self._expect(payment, Awaiting.CONFIRMATION)
        self._succeed(payment)

    def cancel(self, payment: Payment) -> None:
        """The resident rejected 3-D Secure or gave up on the card form."""
        if payment.status is not PaymentStatus.PENDING:
            raise ValueError(f"payment {payment.id} is {payment.status}, not pending")
        self._finish(payment, PaymentStatus.CANCELED)

    @staticmethod
    def _expect(payment: Payment, awaiting: Awaiting) -> None:
        if payment.status is not PaymentStatus.PENDING or payment.awaiting is not awaiting:
            raise ValueError(f"payment {payment.id} is not waiting for {awaiting}")

    # ------------------------------------------------------------ outcomes

    def _charge_card(self, payment: Payment, number: str, confirmation_url: str) -> None:
        payment.card_last4 = number[-4:]
        behaviour = behaviour_of(number)
        if behaviour is CardBehaviour.SUCCEEDS:
            self._succeed(payment)
        elif behaviour is CardBehaviour.REQUIRES_CONFIRMATION:
            payment.awaiting, payment.confirmation_url = Awaiting.CONFIRMATION, confirmation_url
            payment.updated_at = self.clock()
        else:
            self._finish(payment, _FAILURES[behaviour])

    def _succeed(self, payment: Payment) -> None:
        """Charge, mark the bills paid and issue the receipt; if the bills changed while the
        payment was pending, cancel it instead (nothing is charged)."""
        try:
            bills = self._check_bills(payment.account_id, payment.request)
            self._check_topup(payment.request)  # a wallet filled meanwhile takes no more
        except PaymentRefused as refused:
            payment.note = refused.description
            self._finish(payment, PaymentStatus.CANCELED)
            return
        now = self.clock()
        for bill in bills:
            self.data.update_bill(bill.id, status=BillStatus.PAID)
        topup = payment.request.topup
        if topup is not None:
            self.topups.credit(topup.service, topup.account, payment.amount)
        external = payment.request.external_charge
        self.ledger.append(
            Charge(
                payment_id=payment.id,
                account_id=payment.account_id,
                idempotence_key=payment.idempotence_key,
                amount=payment.amount,
                card_last4=payment.card_last4,
                external_charge_id=None if external is None else external.charge_id,
                charged_at=now,
            )
        )
        payment.receipt = Receipt(
            number=f"{len(self.ledger):08d}",
            issued_at=now,
            total=payment.amount,
            card_last4=payment.card_last4,
            lines=_receipt_lines(payment.request, bills),
        )
        self._finish(payment, PaymentStatus.SUCCEEDED, now)
        for listener in self.listeners:
            listener(payment, bills)

    def _finish(self, payment: Payment, status: PaymentStatus, now: datetime | None = None) -> None:
        payment.status = status
        payment.awaiting = None
        payment.confirmation_url = None
        payment.updated_at = now or self.clock()


def _receipt_lines(request: PaymentRequest, bills: list[CityBill]) -> tuple[ReceiptLine, ...]:
    if request.topup is not None:
        service = SERVICES[request.topup.service]
        title = f"{service.receipt_title} {request.topup.account}"
        return (ReceiptLine(title, service.provider, request.amount, None, None),)
    fund = None if request.fund_id is None else fund_by_id(request.fund_id)
    if fund is not None:
        return (ReceiptLine(f"Пожертвование: {fund.name}", fund.name, request.amount, None, None),)
    requisites = request.requisites
    if requisites is None:
        return tuple(
            ReceiptLine(bill.title, bill.provider, bill.amount, bill.uin, bill.id) for bill in bills
        )
    line = ReceiptLine(
        requisites.purpose, requisites.payee_name, request.amount, requisites.uin, None
    )
    return (line,)
