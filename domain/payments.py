"""Paying bills: payment intents stored before the platform is called, idempotency keys, and the
outcomes a resident is told about. A charge happens at most once per intent because every call
for an intent carries the intent's key, and the platform answers a repeated key with the same
payment."""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from domain import support
from domain.accounts import Resident
from domain.bills import Bill
from domain.charity import MIN_DONATION
from domain.errors import CityUnavailable, DomainError, NotFound
from domain.fines import DocumentKind
from domain.limits import DEFAULT_LIMITS, AmountLimits, LimitKind
from domain.payable import Payable, PayableKind
from domain.payable import Requisites as Requisites  # re-exported for older imports
from domain.ports import City, CityApi, CityAuth, CityPayments, UnitOfWork
from domain.sessions import ResidentSession
from domain.topups import (
    AccountProblem,
    AmountProblem,
    TopupRefused,
    TopupService,
    UnknownTopupAccount,
    check_account,
    check_amount,
    service_of,
    topup_balance,
    topup_services,
)


class PaymentStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    DECLINED = "declined"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    EXPIRED_CARD = "expired_card"
    CANCELED = "canceled"
    # Not the platform's: a status the contract does not list (one the platform added after
    # this bot, «refunded», say), as read in a list of payments — shown as «уточняется». The
    # city client never hands it to a use case that decides about money: a single payment
    # with it is an answer not understood (`CityUnavailable`: in doubt, its key kept).
    UNKNOWN = "unknown"

    @property
    def final(self) -> bool:
        return self not in (PaymentStatus.PENDING, PaymentStatus.UNKNOWN)

    @classmethod
    def read(cls, value: object) -> PaymentStatus:
        """The platform's status of a payment; UNKNOWN for one the contract does not list
        (reviews 27, 28: never an error that hides the rest of a list, never PENDING — that
        means a bank page to confirm on)."""
        try:
            status = cls(str(value))
        except ValueError:
            return cls.UNKNOWN
        return cls.UNKNOWN if status is cls.UNKNOWN else status


@dataclass(frozen=True, slots=True)
class PaymentMethod:
    id: str
    brand: str
    last4: str
    expires: str  # MM/YYYY
    is_default: bool = False
    # Its bank asks the cardholder to confirm (3-D Secure) every charge: it cannot be charged
    # while nobody is there, e.g. by an autopay.
    requires_confirmation: bool = False


@dataclass(frozen=True, slots=True)
class ReceiptLine:
    title: str
    provider: str
    amount: int
    uin: str | None = None
    bill_id: str | None = None


@dataclass(frozen=True, slots=True)
class Receipt:
    number: str
    issued_at: datetime
    total: int
    card_last4: str | None
    lines: tuple[ReceiptLine, ...]


@dataclass(frozen=True, slots=True)
class Payment:
    id: str
    status: PaymentStatus
    amount: int
    bill_ids: tuple[str, ...]
    created_at: datetime
    card_last4: str | None = None
    confirmation_url: str | None = None
    receipt: Receipt | None = None
    idempotence_key: str = ""
    payable: Payable | None = None  # what the city says it paid (None: not told)


@dataclass(frozen=True, slots=True)
class ExternalCharge:
    """A payment taken by someone else (Telegram Payments) that the platform must register."""

    provider: str
    charge_id: str


class BillAlreadyPaid(DomainError):
    def __init__(self, bill_ids: Sequence[str] = ()) -> None:
        super().__init__(f"already paid: {list(bill_ids)}")
        self.bill_ids = tuple(bill_ids)


class AmountChanged(DomainError):
    def __init__(self, amount: int) -> None:
        super().__init__(f"the amount is now {amount}")
        self.amount = amount


class PaymentRefused(DomainError):
    """The city refused the payment request (a 4xx other than already paid / amount changed):
    nothing was charged and the same request will be refused again. `reason` is the city's
    machine-readable reason (`unknown_payment_method`, `unknown_bill`, `unknown_fund`,
    `below_minimum`, `idempotency_key_reused`) or `invalid_request` for an invalid body (e.g.
    requisites the city does not accept)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"refused: {reason} {detail}".strip())
        self.reason = reason
        self.detail = detail


REFUSED_PREFIX = "refused:"  # an intent's `failure` for a refusal: "refused:<reason>"
CHARGE_MISMATCH = "charge_mismatch"  # Telegram took another sum or currency than the intent's
SECOND_CHARGE = "second_charge"  # a Telegram charge for an invoice that had one already
SECOND_CHARGE_UNPAID = "second_charge_unpaid"  # … whose own one failed too: the bill is unpaid
TELEGRAM_CURRENCY = "RUB"  # what every invoice asks for (an intent's amount is in kopecks)


class UnknownBill(DomainError):
    """A bill id that is not among this resident's unpaid bills (forged, stale or paid)."""


class IntentStatus(StrEnum):
    NEW = "new"  # stored; the platform has not been asked yet
    SUBMITTED = "submitted"  # the platform was asked; the answer is not recorded yet
    PENDING = "pending"  # the platform waits for the resident (hosted page, 3-D Secure)
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # nothing was charged

    @property
    def final(self) -> bool:
        return self in (IntentStatus.SUCCEEDED, IntentStatus.FAILED)


@dataclass(slots=True)
class PaymentIntent:
    key: str  # the Idempotence-Key sent with every call for this intent
    telegram_user_id: int
    payable: Payable  # what is charged: exactly one of bills, requisites or a fund
    amount: int
    method_id: str | None  # None: a new card on the platform's page
    created_at: datetime
    updated_at: datetime
    status: IntentStatus = IntentStatus.NEW
    payment_id: str | None = None
    failure: str | None = None  # a PaymentStatus value or "already_paid" / "amount_changed"
    confirmation_url: str | None = None
    receipt: Receipt | None = None
    card_last4: str | None = None
    external_charge_id: str | None = None  # taken by Telegram Payments, to register
    id: int | None = None

    @property
    def bill_ids(self) -> tuple[str, ...]:
        return self.payable.bill_ids

    @property
    def requisites(self) -> Requisites | None:
        return self.payable.requisites

    @property
    def fund_id(self) -> str | None:
        return self.payable.fund_id


TELEGRAM_METHOD = "telegram"  # method_id of an intent paid through a Telegram invoice


class OutcomeKind(StrEnum):
    PAID = "paid"
    NEEDS_CONFIRMATION = "needs_confirmation"  # open confirmation_url
    DECLINED = "declined"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    EXPIRED_CARD = "expired_card"
    CANCELED = "canceled"
    ALREADY_PAID = "already_paid"
    AMOUNT_CHANGED = "amount_changed"
    REFUSED = "refused"  # the city refused the request itself; nothing was charged
    UNKNOWN = "unknown"  # no answer: we will find out; do not pay again
    IN_PROGRESS = "in_progress"


@dataclass(frozen=True, slots=True)
class PaymentOutcome:
    kind: OutcomeKind
    intent: PaymentIntent
    new_amount: int | None = None
    paid_bill_ids: tuple[str, ...] = field(default_factory=tuple)
    left_because: DomainError | None = None  # reconcile: why the intent could not be asked

    @property
    def refusal(self) -> str | None:
        """REFUSED: the city's reason (see PaymentRefused)."""
        failure = self.intent.failure or ""
        return failure.removeprefix(REFUSED_PREFIX) if failure.startswith(REFUSED_PREFIX) else None


# An intent's `failure` → what the resident is told. Nothing was charged in any of these.
FAILURES: dict[str, OutcomeKind] = {
    PaymentStatus.DECLINED: OutcomeKind.DECLINED,
    PaymentStatus.INSUFFICIENT_FUNDS: OutcomeKind.INSUFFICIENT_FUNDS,
    PaymentStatus.EXPIRED_CARD: OutcomeKind.EXPIRED_CARD,
    PaymentStatus.CANCELED: OutcomeKind.CANCELED,
    "already_paid": OutcomeKind.ALREADY_PAID,
    "amount_changed": OutcomeKind.AMOUNT_CHANGED,
    "not_submitted": OutcomeKind.CANCELED,
    "replaced": OutcomeKind.CANCELED,  # a newer intent for the same obligation took its place
    CHARGE_MISMATCH: OutcomeKind.REFUSED,
    SECOND_CHARGE: OutcomeKind.REFUSED,
    SECOND_CHARGE_UNPAID: OutcomeKind.REFUSED,
}


def new_key() -> str:
    return secrets.token_hex(16)


def choose_bills(unpaid: Sequence[Bill], bill_ids: Sequence[str]) -> list[Bill]:
    """The resident's own unpaid bills for these ids; any other id is refused (a forged or stale
    button must never pay someone else's bill)."""
    by_id = {bill.id: bill for bill in unpaid}
    unknown = [bill_id for bill_id in bill_ids if bill_id not in by_id]
    if unknown or not bill_ids:
        raise UnknownBill(", ".join(unknown))
    return [by_id[bill_id] for bill_id in dict.fromkeys(bill_ids)]


def default_method(methods: Sequence[PaymentMethod]) -> PaymentMethod | None:
    return next((m for m in methods if m.is_default), methods[0] if methods else None)


async def prepare_bills_payment(
    uow: UnitOfWork,
    auth: CityAuth,
    city: CityApi,
    resident: Resident,
    bill_ids: Sequence[str],
    method_id: str | None,
    now: datetime,
    limits: AmountLimits = DEFAULT_LIMITS,
) -> tuple[PaymentIntent, list[Bill]]:
    """Check the bills against the city's current list and store an intent for their total.

    Raises UnknownBill (not this resident's unpaid bill), AmountTooLarge (above the ceiling
    for one payment)."""
    session = ResidentSession(resident, auth, uow)
    bills = choose_bills(await city.unpaid_bills(session), bill_ids)
    total = limits.check(LimitKind.PAYMENT, sum(b.amount for b in bills))
    payable = Payable.bills([b.id for b in bills])
    intent = await _new_intent(uow, resident, payable, total, method_id, now)
    return intent, bills


async def _new_intent(
    uow: UnitOfWork,
    resident: Resident,
    payable: Payable,
    amount: int,
    method_id: str | None,
    now: datetime,
) -> PaymentIntent:
    """Store a new intent with a fresh key for exactly this payable and amount. Older intents
    of the resident for the same obligation that never reached the city (NEW: a confirmation
    left open, a card changed, a Telegram invoice still out) are retired first, so only the
    newest can ever be paid — an old invoice is then refused at its pre-checkout."""
    await _retire_open(uow, resident, payable, now)
    intent = PaymentIntent(
        key=new_key(),
        telegram_user_id=resident.telegram_user_id,
        payable=payable,
        amount=amount,
        method_id=method_id,
        created_at=now,
        updated_at=now,
    )
    await uow.payment_intents.add(intent)
    return intent


async def _retire_open(
    uow: UnitOfWork, resident: Resident, payable: Payable, now: datetime
) -> None:
    for intent in await uow.payment_intents.recent(resident.telegram_user_id, EARLIER_LOOKBACK):
        if (
            intent.id is not None
            and intent.status is IntentStatus.NEW
            and intent.external_charge_id is None  # Telegram took money for it: never retired
            and same_target(intent.payable, payable)
        ):
            # Conditional in the database too: a charge recorded meanwhile keeps it alive.
            await uow.payment_intents.retire(intent.id, "replaced", now)


async def prepare_requisites_payment(
    uow: UnitOfWork,
    resident: Resident,
    requisites: Requisites,
    amount: int,
    method_id: str | None,
    now: datetime,
    limits: AmountLimits = DEFAULT_LIMITS,
) -> PaymentIntent:
    """A receipt's requisites for `amount` kopecks. Raises AmountTooLarge, InvalidAmount."""
    if amount <= 0:
        raise InvalidAmount()
    limits.check(LimitKind.PAYMENT, amount)
    return await _new_intent(
        uow, resident, Payable.by_requisites(requisites), amount, method_id, now
    )


async def prepare_donation(
    uow: UnitOfWork,
    resident: Resident,
    fund_id: str,
    amount: int,
    method_id: str | None,
    now: datetime,
    limits: AmountLimits = DEFAULT_LIMITS,
) -> PaymentIntent:
    """A donation is paid like a bill. Raises DonationTooSmall (below the platform's 50 ₽
    minimum for a donation) and AmountTooLarge (the operator's ceiling)."""
    if amount < MIN_DONATION:
        raise DonationTooSmall()
    limits.check(LimitKind.DONATION, amount)
    return await _new_intent(uow, resident, Payable.donation(fund_id), amount, method_id, now)


async def prepare_topup(
    uow: UnitOfWork,
    resident: Resident,
    service: TopupService,
    account: str,
    amount: int,
    method_id: str | None,
    now: datetime,
    limits: AmountLimits = DEFAULT_LIMITS,
) -> PaymentIntent:
    """A top-up of a «Тройка» card or a parking account, paid like a bill. The account is
    checked again (the carrier's format), the amount against the operator's ceiling; the
    service's own limits are the platform's, which refuses what is outside them. Raises
    InvalidAmount, AmountTooLarge, InvalidTopupAccount."""
    if amount <= 0:
        raise InvalidAmount()
    limits.check(LimitKind.PAYMENT, amount)
    checked = check_account(service, account)
    if isinstance(checked, AccountProblem):
        raise InvalidTopupAccount(checked.value)
    payable = Payable.top_up(service.value, checked)
    return await _new_intent(uow, resident, payable, amount, method_id, now)


class InvalidTopupAccount(DomainError):
    """A card or parking account number the carrier would not accept."""


class InvalidAmount(DomainError):
    """Zero or a negative amount of money."""


class DonationTooSmall(DomainError):
    """Below the platform's 50 ₽ minimum."""


@dataclass(frozen=True, slots=True)
class Earlier:
    """A payment of the same obligation made before. `settled` False: the resident's own
    intent `intent_id` still waits for the bank or the city — check it before paying again;
    True: it succeeded (`when`, `receipt_number`), by this bot or any other road the city knows
    of for this city account."""

    settled: bool
    amount: int
    when: datetime
    receipt_number: str | None = None
    intent_id: int | None = None


def same_target(a: Payable, b: Payable) -> bool:
    """Whether two payables pay the same obligation: a bill in common, the same fund, or
    requisites with the same payee account, payer code, period and UIN."""
    if a.kind is not b.kind:
        return False
    if a.kind is PayableKind.BILLS:
        return bool(set(a.bill_ids) & set(b.bill_ids))
    if a.kind is PayableKind.DONATION:
        return a.fund_id == b.fund_id
    if a.kind is PayableKind.TOPUP:
        return a.topup == b.topup
    ra, rb = a.requisites, b.requisites
    assert ra is not None and rb is not None
    return (ra.personal_acc, ra.bic, _payer_code(ra.pers_acc), ra.period, ra.uin) == (
        rb.personal_acc,
        rb.bic,
        _payer_code(rb.pers_acc),
        rb.period,
        rb.uin,
    )


EARLIER_LOOKBACK = 50  # the resident's latest intents (and city payments) looked at


async def earlier_payment(
    uow: UnitOfWork,
    auth: CityAuth,
    payments: CityPayments,
    resident: Resident,
    payable: Payable,
    amount: int | None,
) -> Earlier | None:
    """Before a new intent: an unsettled payment of the same obligation (any amount for bills
    and for a top-up of the same account, whose balance may not be shown; the same amount
    otherwise) — the resident checks it first, since a new key would charge again; or
    requisites already paid with the same payee account, payer code, period and
    amount — by this chat, or by any road the city's payment history shows for this city
    account (another Telegram account, the site) — the resident confirms explicitly before
    paying again. Bills and UINs need no history check: the city refuses a paid bill (409)."""
    for intent in await uow.payment_intents.recent(resident.telegram_user_id, EARLIER_LOOKBACK):
        if not same_target(intent.payable, payable):
            continue
        same_amount = amount is None or intent.amount == amount
        receipt = intent.receipt
        when = receipt.issued_at if receipt is not None else intent.updated_at
        number = receipt.number if receipt is not None else None
        if intent.status in (IntentStatus.SUBMITTED, IntentStatus.PENDING):
            if payable.kind in (PayableKind.BILLS, PayableKind.TOPUP) or same_amount:
                return Earlier(False, intent.amount, when, number, intent.id)
        elif intent.status is IntentStatus.SUCCEEDED and same_amount:
            if payable.kind is PayableKind.REQUISITES:
                return Earlier(True, intent.amount, when, number, intent.id)
    if payable.kind is not PayableKind.REQUISITES:
        return None
    session = ResidentSession(resident, auth, uow)
    for payment in await payments.payment_history(session, EARLIER_LOOKBACK):
        if (
            payment.status is PaymentStatus.SUCCEEDED
            and payment.payable is not None
            and same_target(payment.payable, payable)
            and (amount is None or payment.amount == amount)
        ):
            receipt = payment.receipt
            when = receipt.issued_at if receipt is not None else payment.created_at
            return Earlier(True, payment.amount, when, receipt.number if receipt else None)
    return None


@dataclass(frozen=True, slots=True)
class PaidAlready:
    """An obligation found paid: when and by which receipt, if the bot or the city knows."""

    bill: Bill | None
    paid_at: datetime | None
    receipt_number: str | None


async def paid_record(
    uow: UnitOfWork,
    payments: CityPayments,
    resident: Resident,
    session: ResidentSession,
    bill: Bill | None,
) -> PaidAlready:
    """When and how a paid bill was paid: from this resident's own intents first, then from
    the city's payment history; unknown (None) when it was paid elsewhere."""
    if bill is not None:
        for intent in await uow.payment_intents.recent(resident.telegram_user_id, EARLIER_LOOKBACK):
            if intent.status is IntentStatus.SUCCEEDED and bill.id in intent.bill_ids:
                receipt = intent.receipt
                return PaidAlready(
                    bill, receipt.issued_at if receipt else intent.updated_at,
                    receipt.number if receipt else None,
                )  # fmt: skip
        try:
            city_payments = await payments.payment_history(session, EARLIER_LOOKBACK)
        except DomainError:
            city_payments = []
        for payment in city_payments:
            if payment.status is PaymentStatus.SUCCEEDED and bill.id in payment.bill_ids:
                receipt = payment.receipt
                return PaidAlready(
                    bill, receipt.issued_at if receipt else payment.created_at,
                    receipt.number if receipt else None,
                )  # fmt: skip
    return PaidAlready(bill, None, None)


@dataclass(frozen=True, slots=True)
class ReceiptMatch:
    """What a receipt without a usable UIN is at the city: one of the resident's bills (unpaid
    → pay it as that bill; paid → «уже оплачено»), or nothing (pay by requisites)."""

    bill: Bill | None


def _payer_code(code: str | None) -> str:
    """A payer code as a number: spaces, dashes and leading zeros do not make another code."""
    return "".join(ch for ch in (code or "") if ch.isascii() and ch.isalnum()).lstrip("0")


# The capital repair contribution (взнос на капитальный ремонт, Housing Code art. 169) is told
# by its payee: the Moscow fund's INN, or a fund's own wording — «Фонд … капитального (кап.,
# кап) ремонта», «ФКР», «региональный оператор». Never by a purpose (an ЕПД's may say «без
# учёта взноса на капремонт», review 34a), and never a payee that only names repairs («УК
# Жилкапремонт», «Служба по содержанию и капитальному ремонту жилфонда», review 34b).
_CAPITAL_REPAIR = re.compile(
    r"\bфонд\w*\b.*?\bкап(?:итальн\w*|\.)?\s*ремонт|\bфкр\b|\bрегиональн\w*\s+оператор",
    re.IGNORECASE | re.DOTALL,
)
CAPITAL_REPAIR_FUND_INN = "7701090559"  # Фонд капитального ремонта многоквартирных домов Москвы


def _capital_repair(payee: str, inn: str | None = None) -> bool:
    """Whether a payee is a capital repair fund, by its name or the Moscow fund's INN."""
    return inn == CAPITAL_REPAIR_FUND_INN or bool(_CAPITAL_REPAIR.search(payee.replace("ё", "е")))


async def match_receipt(
    uow: UnitOfWork,
    auth: CityAuth,
    city: CityApi,
    resident: Resident,
    requisites: Requisites,
    amount: int | None = None,
) -> ReceiptMatch:
    """A receipt by requisites is the resident's bill when the payer code (PersAcc ⇄ the
    bill's payer code) and the period (MM.YYYY) agree — then it is paid as that bill, so it
    leaves «Мои счета» and can never be paid twice by two roads. A receipt without a readable
    period is the unpaid bill of that payer code with the receipt's `amount` (kopecks), when
    exactly one has it.

    The payer code is the flat's, not the payee's: a Moscow ЕПД carries two codes with the
    same payer code and month — the housing services' and the capital repair contribution's,
    paid to the capital repair fund. A receipt to the fund is never a bill of another provider
    (review 33d: it was paid as the ЕПД, another payee and amount, or called «уже оплачено»),
    nor a fund's bill another payee's; the payee decides, by name or INN (`_capital_repair`)."""
    code = _payer_code(requisites.pers_acc)
    if not code:
        return ReceiptMatch(None)
    session = ResidentSession(resident, auth, uow)
    contribution = _capital_repair(requisites.payee_name, requisites.payee_inn)
    bills = [
        bill
        for bill in [*await city.unpaid_bills(session), *await city.paid_bills(session)]
        if _payer_code(bill.payer_code) == code and _capital_repair(bill.provider) == contribution
    ]
    if requisites.period:
        same_period = [bill for bill in bills if bill.period == requisites.period]
        return ReceiptMatch(same_period[0] if same_period else None)
    # No period: only an unpaid bill of the same amount is that bill — a paid one of the same
    # amount is more likely an earlier month than this receipt (which then goes by requisites,
    # where a same-amount payment before is shown and confirmed explicitly).
    same_amount = [
        bill for bill in bills if not bill.paid and amount is not None and bill.amount == amount
    ]
    return ReceiptMatch(same_amount[0] if len(same_amount) == 1 else None)


async def own_intent(uow: UnitOfWork, resident: Resident, intent_id: int) -> PaymentIntent:
    intent = await uow.payment_intents.get(intent_id)
    if intent is None or intent.telegram_user_id != resident.telegram_user_id:
        raise NotFound(f"payment intent {intent_id}")
    return intent


async def change_method(
    uow: UnitOfWork, resident: Resident, intent_id: int, method_id: str | None, now: datetime
) -> PaymentIntent:
    """Another card before paying: a fresh key, since the platform ties a key to its body."""
    intent = await own_intent(uow, resident, intent_id)
    if intent.status is not IntentStatus.NEW and not _retryable(intent):
        return intent
    await _retire_open(uow, resident, intent.payable, now)
    fresh = replace(
        intent,
        id=None,
        key=new_key(),
        method_id=method_id,
        status=IntentStatus.NEW,
        failure=None,
        payment_id=None,
        confirmation_url=None,
        created_at=now,
        updated_at=now,
    )
    await uow.payment_intents.add(fresh)
    return fresh


def _retryable(intent: PaymentIntent) -> bool:
    """A declined card may be swapped for another; nothing was charged."""
    return intent.status is IntentStatus.FAILED and intent.failure in {
        PaymentStatus.DECLINED,
        PaymentStatus.INSUFFICIENT_FUNDS,
        PaymentStatus.EXPIRED_CARD,
        PaymentStatus.CANCELED,
    }


async def pay(
    uow: UnitOfWork,
    auth: CityAuth,
    payments: CityPayments,
    resident: Resident,
    intent_id: int,
    now: datetime,
    external: ExternalCharge | None = None,
) -> PaymentOutcome:
    """Ask the platform to charge for the intent, at most once whatever happens around it.

    The intent is marked SUBMITTED and committed *before* the call, so a crash after the charge
    leaves a record that reconciliation resolves by the key. A second press while the first is
    in flight is told to wait; a press after an unanswered call sends the same key again, which
    the platform answers with the same payment instead of a second charge.
    """
    intent = await own_intent(uow, resident, intent_id)
    if intent.status.final or intent.status is IntentStatus.PENDING:
        return outcome_of(intent)
    if intent.status is IntentStatus.NEW:
        submitted = replace(intent, status=IntentStatus.SUBMITTED, updated_at=now)
        if not await uow.payment_intents.advance(submitted, expected_status=IntentStatus.NEW):
            return PaymentOutcome(OutcomeKind.IN_PROGRESS, intent)
        await uow.commit()
        intent = submitted
    if external is None and intent.external_charge_id is not None:
        external = ExternalCharge("telegram", intent.external_charge_id)
    session = ResidentSession(resident, auth, uow)
    try:
        payment = await payments.create_payment(
            session,
            intent.key,
            payable=intent.payable,
            amount=intent.amount,
            method_id=None if external else intent.method_id,
            external=external,
        )
    except BillAlreadyPaid as error:
        await _fail(uow, intent, "already_paid", now)
        return PaymentOutcome(OutcomeKind.ALREADY_PAID, intent, paid_bill_ids=error.bill_ids)
    except AmountChanged as error:
        await _fail(uow, intent, "amount_changed", now)
        return PaymentOutcome(OutcomeKind.AMOUNT_CHANGED, intent, new_amount=error.amount)
    except PaymentRefused as error:
        await _fail(uow, intent, REFUSED_PREFIX + error.reason, now)  # settled: nothing charged
        return outcome_of(intent)
    except CityUnavailable:
        return PaymentOutcome(OutcomeKind.UNKNOWN, intent)  # stays SUBMITTED: reconcile
    return await record(uow, intent, payment, now)


async def _fail(uow: UnitOfWork, intent: PaymentIntent, reason: str, now: datetime) -> None:
    intent.status, intent.failure, intent.updated_at = IntentStatus.FAILED, reason, now
    await uow.payment_intents.save(intent)
    await uow.commit()


async def record(
    uow: UnitOfWork, intent: PaymentIntent, payment: Payment, now: datetime
) -> PaymentOutcome:
    """Write what the platform said about the intent's payment."""
    intent.payment_id = payment.id
    intent.card_last4 = payment.card_last4
    intent.confirmation_url = payment.confirmation_url
    intent.receipt = payment.receipt
    intent.updated_at = now
    if payment.status is PaymentStatus.SUCCEEDED:
        intent.status = IntentStatus.SUCCEEDED
    elif payment.status is PaymentStatus.PENDING:
        intent.status = IntentStatus.PENDING
    else:
        intent.status, intent.failure = IntentStatus.FAILED, payment.status.value
    await uow.payment_intents.save(intent)
    await uow.commit()
    return outcome_of(intent)


def outcome_of(intent: PaymentIntent) -> PaymentOutcome:
    if intent.status is IntentStatus.SUCCEEDED:
        return PaymentOutcome(OutcomeKind.PAID, intent)
    if intent.status is IntentStatus.PENDING:
        return PaymentOutcome(OutcomeKind.NEEDS_CONFIRMATION, intent)
    if intent.status is IntentStatus.SUBMITTED:
        return PaymentOutcome(OutcomeKind.UNKNOWN, intent)
    if intent.status is IntentStatus.NEW:
        return PaymentOutcome(OutcomeKind.IN_PROGRESS, intent)
    if (intent.failure or "").startswith(REFUSED_PREFIX):
        return PaymentOutcome(OutcomeKind.REFUSED, intent)
    return PaymentOutcome(FAILURES.get(intent.failure or "", OutcomeKind.DECLINED), intent)


async def check_payment(
    uow: UnitOfWork,
    auth: CityAuth,
    payments: CityPayments,
    resident: Resident,
    intent_id: int,
    now: datetime,
) -> PaymentOutcome:
    """«Проверить»: ask the platform about an unanswered or page-confirmed payment."""
    intent = await own_intent(uow, resident, intent_id)
    if intent.status.final or intent.status is IntentStatus.NEW:
        return outcome_of(intent)
    session = ResidentSession(resident, auth, uow)
    payment = await payments.find_payment(session, intent.key)
    if payment is None:
        return await pay(uow, auth, payments, resident, intent_id, now)  # never arrived: resend
    return await record(uow, intent, payment, now)


async def reconcile(
    uow: UnitOfWork,
    auth: CityAuth,
    payments: CityPayments,
    now: datetime,
    settled_before: datetime,
) -> list[PaymentOutcome]:
    """On start-up and periodically: intents left SUBMITTED or PENDING by a crash or a lost
    answer are settled by asking the platform about their keys. One that never reached the
    platform charged nothing and is closed as failed, so it cannot be sent later by surprise.

    An intent that cannot be asked about now (the city is down, the resident's token was
    revoked, any other domain error) is left exactly as it is and reported as UNKNOWN; the
    others are still settled. An intent whose resident unlinked is skipped: nobody to ask for."""
    outcomes = []
    for intent in await uow.payment_intents.unsettled(settled_before):
        resident = await uow.residents.get(intent.telegram_user_id)
        if resident is None:
            continue
        try:
            session = ResidentSession(resident, auth, uow)
            payment = await payments.find_payment(session, intent.key)
            if payment is None and intent.external_charge_id is not None:
                # Telegram took the money: the platform must learn about it, never drop it;
                # if the city refuses it now (paid meanwhile), a refund is owed and staff told.
                outcome = await pay(uow, auth, payments, resident, _id(intent), now)
                await telegram_refund(uow, outcome, now)
                outcomes.append(outcome)
                continue
            if payment is None:
                if intent.status is IntentStatus.SUBMITTED:
                    await _fail(uow, intent, "not_submitted", now)
                continue
            if payment.status is PaymentStatus.PENDING and intent.status is IntentStatus.PENDING:
                continue
            outcomes.append(await record(uow, intent, payment, now))
        except DomainError as error:  # for a later run
            outcomes.append(PaymentOutcome(OutcomeKind.UNKNOWN, intent, left_because=error))
    return outcomes


async def available_methods(
    uow: UnitOfWork, auth: CityAuth, payments: CityPayments, resident: Resident
) -> list[PaymentMethod]:
    return await payments.payment_methods(ResidentSession(resident, auth, uow))


async def history(
    uow: UnitOfWork, auth: CityAuth, payments: CityPayments, resident: Resident, limit: int = 10
) -> list[Payment]:
    return await payments.payment_history(ResidentSession(resident, auth, uow), limit)


async def lookup_bill(
    uow: UnitOfWork,
    auth: CityAuth,
    payments: CityPayments,
    resident: Resident,
    uin: str,
    *,
    now: datetime,
) -> Bill:
    """A checked UIN → the bill; the city adds it to the resident's bills so it can be paid.
    The bill is recorded as known to bill discovery (`known_bills`): the resident has just
    seen it, so its next scan does not announce it as «Пришёл счёт»."""
    bill = await payments.lookup_bill(ResidentSession(resident, auth, uow), uin)
    await uow.known_bills.add(resident.telegram_user_id, [bill.id], now)
    return bill


async def find_fines(
    uow: UnitOfWork,
    auth: CityAuth,
    payments: CityPayments,
    resident: Resident,
    kind: DocumentKind,
    number: str,
    *,
    now: datetime,
) -> list[Bill]:
    """The fines on a vehicle (СТС) or a driver's licence; recorded as known to bill
    discovery as `lookup_bill`'s bill is (shown here: no «Пришёл счёт» for them later)."""
    session = ResidentSession(resident, auth, uow)
    if kind is DocumentKind.STS:
        fines = await payments.find_fines(session, sts=number)
    else:
        fines = await payments.find_fines(session, driver_license=number)
    await uow.known_bills.add(resident.telegram_user_id, [f.id for f in fines], now)
    return fines


def _id(intent: PaymentIntent) -> int:
    assert intent.id is not None, "a stored intent has an id"
    return intent.id


class CheckoutRefusal(StrEnum):
    UNKNOWN = "unknown"
    ALREADY_PAID = "already_paid"
    AMOUNT_CHANGED = "amount_changed"
    FUND_GONE = "fund_gone"  # the platform no longer has the fund
    TOPUP_CLOSED = "topup_closed"  # the platform no longer offers the service
    TOPUP_ACCOUNT = "topup_account"  # the platform does not know (or take) the account
    TOPUP_LIMITS = "topup_limits"  # the amount is outside the service's limits or the room left


async def check_checkout(
    uow: UnitOfWork,
    auth: CityAuth,
    city: City,
    resident: Resident,
    key: str,
    total_amount: int,
    limits: AmountLimits = DEFAULT_LIMITS,
) -> CheckoutRefusal | None:
    """Telegram asks whether to take the money: only for this resident's open intent, for bills
    that are still unpaid and still cost what the invoice says, a fund the platform still has,
    and a top-up the account can still take (the checks of the top-up flow, asked again: the
    card may have filled up since). Requisites are not checked: the platform has no way to ask
    before paying (a duplicate is asked at the confirmation, `earlier_payment`)."""
    intent = await uow.payment_intents.by_key(key)
    if intent is None or intent.telegram_user_id != resident.telegram_user_id:
        return CheckoutRefusal.UNKNOWN
    if intent.failure == "replaced":  # the resident went on with another way to pay
        return CheckoutRefusal.UNKNOWN
    if intent.status is not IntentStatus.NEW:
        return CheckoutRefusal.ALREADY_PAID
    if intent.amount != total_amount:
        return CheckoutRefusal.AMOUNT_CHANGED
    if intent.bill_ids:
        unpaid = {b.id: b for b in await city.unpaid_bills(ResidentSession(resident, auth, uow))}
        if any(bill_id not in unpaid for bill_id in intent.bill_ids):
            return CheckoutRefusal.ALREADY_PAID
        if sum(unpaid[bill_id].amount for bill_id in intent.bill_ids) != intent.amount:
            return CheckoutRefusal.AMOUNT_CHANGED
    if intent.fund_id is not None:
        try:
            await city.fund(ResidentSession(resident, auth, uow), intent.fund_id)
        except NotFound:
            return CheckoutRefusal.FUND_GONE
    if intent.payable.topup is not None:
        return await _topup_refusal(uow, auth, city, resident, intent, limits)
    return None


async def _topup_refusal(
    uow: UnitOfWork,
    auth: CityAuth,
    city: City,
    resident: Resident,
    intent: PaymentIntent,
    limits: AmountLimits,
) -> CheckoutRefusal | None:
    """Whether the platform would still credit this top-up: the service offered, the account
    known, the amount within the service's limits, the room left and the operator's ceiling."""
    target = intent.payable.topup
    assert target is not None
    if target.service not in set(TopupService):
        return CheckoutRefusal.TOPUP_CLOSED
    service = TopupService(target.service)
    info = service_of(await topup_services(uow, auth, city, resident), service)
    if info is None:
        return CheckoutRefusal.TOPUP_CLOSED
    try:
        balance = await topup_balance(uow, auth, city, resident, service, target.account)
    except (UnknownTopupAccount, TopupRefused):
        return CheckoutRefusal.TOPUP_ACCOUNT
    checked = check_amount(intent.amount, info.limits, balance.balance, limits.payment)
    if isinstance(checked, AmountProblem):
        return CheckoutRefusal.TOPUP_LIMITS
    return None


async def register_external_payment(
    uow: UnitOfWork,
    auth: CityAuth,
    payments: CityPayments,
    resident: Resident,
    key: str,
    charge_id: str,
    now: datetime,
    provider_charge_id: str | None = None,
    *,
    currency: str = TELEGRAM_CURRENCY,
    total_amount: int | None = None,
) -> PaymentOutcome | TelegramRefund | None:
    """Telegram took the money: register it with the platform under the intent's key. A repeated
    successful_payment finds the intent settled and registers nothing again. Money the city
    will not take is owed back to the resident: a TelegramRefund (see `telegram_refund`).

    `currency` and `total_amount` (kopecks) are what Telegram says it took; when they are not
    the intent's (RUB, `intent.amount` — the pre-checkout's own check, so only a misbehaving
    provider gets here) the city is told nothing: the charge is recorded on the intent, the
    intent (still NEW) fails as `charge_mismatch`, and the money is owed back like a refusal's.
    """
    intent = await uow.payment_intents.by_key(key)
    if intent is None or intent.telegram_user_id != resident.telegram_user_id:
        return None
    taken = intent.amount if total_amount is None else total_amount
    mismatched = currency != TELEGRAM_CURRENCY or taken != intent.amount
    if intent.external_charge_id not in (None, charge_id):
        # Another charge for this invoice (two devices paid it, or one after a mismatch): the
        # intent has its own; this money is registered nowhere and owed back on its own.
        reason = CHARGE_MISMATCH if mismatched else _second_charge(intent)
        return await _another_charge(
            uow, intent, charge_id, reason, now, provider_charge_id, (taken, currency)
        )
    if mismatched:
        return await _mismatched_charge(
            uow, intent, charge_id, now, provider_charge_id, (taken, currency)
        )
    if intent.external_charge_id is None:
        # Only the charge id is written (never a stale copy of the rest): the charge is
        # remembered before the platform is asked, even on an intent retired meanwhile.
        await uow.payment_intents.attach_external_charge(_id(intent), charge_id, now)
        await uow.commit()
        stored = await uow.payment_intents.get(_id(intent))
        assert stored is not None
        if stored.external_charge_id != charge_id:  # another charge was attached first
            return await _another_charge(
                uow, stored, charge_id, _second_charge(stored), now, provider_charge_id
            )
    outcome = await pay(uow, auth, payments, resident, _id(intent), now)
    return await telegram_refund(uow, outcome, now, provider_charge_id) or outcome


@dataclass(frozen=True, slots=True)
class TelegramRefund:
    """Money Telegram took for an intent the city will never register: it is owed back."""

    outcome: PaymentOutcome  # why: ALREADY_PAID, AMOUNT_CHANGED, REFUSED or another failure
    staff_told: bool  # this call wrote the Dashboard event (False: written before, or no support)


def _second_charge(kept: PaymentIntent) -> str:
    """The reason a charge besides `kept`'s own is owed back: the invoice was paid (or is
    being paid) by that one — or that one failed too, and the bill is still to pay."""
    return SECOND_CHARGE_UNPAID if kept.status is IntentStatus.FAILED else SECOND_CHARGE


async def _mismatched_charge(
    uow: UnitOfWork,
    intent: PaymentIntent,
    charge_id: str,
    now: datetime,
    provider_charge_id: str | None,
    taken: tuple[int, str],
) -> TelegramRefund:
    """Telegram took another sum (or currency) than the intent's: nothing goes to the city.
    An intent still NEW fails as `charge_mismatch` (before the charge is attached: `retire`
    takes only an intent without one); one already settled otherwise keeps its status, and
    staff are told about this charge all the same."""
    await uow.payment_intents.retire(_id(intent), CHARGE_MISMATCH, now)
    await uow.payment_intents.attach_external_charge(_id(intent), charge_id, now)
    await uow.commit()
    stored = await uow.payment_intents.get(_id(intent))
    assert stored is not None
    if stored.status is IntentStatus.FAILED and stored.external_charge_id == charge_id:
        refund = await telegram_refund(uow, outcome_of(stored), now, provider_charge_id, taken)
        assert refund is not None
        return refund
    return await _another_charge(
        uow, stored, charge_id, CHARGE_MISMATCH, now, provider_charge_id, taken
    )


async def _another_charge(
    uow: UnitOfWork,
    intent: PaymentIntent,
    charge_id: str,
    reason: str,
    now: datetime,
    provider_charge_id: str | None,
    taken: tuple[int, str] | None = None,
) -> TelegramRefund:
    """A charge besides the one `intent` keeps (it was paid, or owed back, before): this
    charge is what is owed — staff told once per charge — and what the caller logs and the
    resident is told about (a copy of the intent with this charge and `reason`)."""
    owed = replace(intent, external_charge_id=charge_id, failure=reason)
    told = await support.telegram_refund_needed(
        uow, owed, now, provider_charge_id, another_charge=True, taken=taken
    )
    await uow.commit()
    return TelegramRefund(PaymentOutcome(OutcomeKind.REFUSED, owed), told)


async def telegram_refund(
    uow: UnitOfWork,
    outcome: PaymentOutcome,
    now: datetime,
    provider_charge_id: str | None = None,
    taken: tuple[int, str] | None = None,
) -> TelegramRefund | None:
    """An intent FAILED with a Telegram charge id is money taken and registered nowhere: the
    city refused it (the bill paid meanwhile — by another road or another invoice —, the amount
    changed, any other refusal, an invoice replaced after its pre-checkout) and will refuse it
    again. That pair of fields is the record that a refund is owed — `failure` keeps the city's
    reason, so `outcome_of` still says why; reconciliation never takes a FAILED intent up again.
    Support's Dashboard is told in this transaction, once per intent."""
    intent = outcome.intent
    if intent.status is not IntentStatus.FAILED or intent.external_charge_id is None:
        return None
    told = await support.telegram_refund_needed(uow, intent, now, provider_charge_id, taken=taken)
    await uow.commit()
    return TelegramRefund(outcome, told)
