"""Points («Миллион призов») of one sandbox instance: entries, balance, transfers to funds.

An entry counts towards the balance once it is available (`available_at` has come by the
sandbox's clock). The sandbox credits points itself: ЕПД cashback when an ЕПД bill is paid
(pending for 7 days), meter readings (see meters.py) and confirmed «Наш город» fixes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from domain.accounts import AccountLevel
from sandbox.clock import MOSCOW, Clock
from sandbox.common import Refused
from sandbox.data import FULL, STANDARD, BillKind, CityBill
from sandbox.funds import fund_by_id
from sandbox.idempotency import AnswerMemory, KeyReused
from sandbox.open311 import ServiceRequest
from sandbox.payments import Payment

READING_POINTS = {AccountLevel.SIMPLE: 10, AccountLevel.STANDARD: 20, AccountLevel.FULL: 20}
EPD_CASHBACK_PERCENT = 5
REPORT_CONFIRMED_POINTS = 50  # for a «Наш город» report whose fix its author confirmed
CASHBACK_DELAY = timedelta(days=7)


class PointsKind(StrEnum):
    METER_READING = "meter_reading"
    EPD_CASHBACK = "epd_cashback"
    REPORT_CONFIRMED = "report_confirmed"
    TRANSFER = "transfer"
    WELCOME = "welcome"
    PRIZE = "prize"  # points exchanged for a prize (sandbox/prizes.py)


@dataclass(frozen=True, slots=True)
class PointsEntry:
    id: str
    account_id: str
    amount: int  # + credit, − debit
    kind: PointsKind
    reason: str
    created_at: datetime
    available_at: datetime


@dataclass(frozen=True, slots=True)
class PointsTransfer:
    id: str
    fund_id: str
    fund_name: str
    points: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class TransferAnswer:
    transfer: PointsTransfer
    balance: int  # right after the transfer


def epd_cashback(amount: int) -> int:
    """Points for an ЕПД paid in kopecks: 5% of the amount in rubles, rounded down."""
    return amount * EPD_CASHBACK_PERCENT // (100 * 100)


class PointsBook:
    """Every points entry and transfer of one sandbox instance."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.entries: list[PointsEntry] = []  # in the order they were added
        self._transfers: AnswerMemory[TransferAnswer] = AnswerMemory()
        self._confirmed_reports: set[str] = set()  # requests already credited

    # ------------------------------------------------------------ reading

    def balance(self, account_id: str) -> int:
        now = self.clock()
        return sum(e.amount for e in self._of(account_id) if e.available_at <= now)

    def available(self, account_id: str, *, limit: int) -> list[PointsEntry]:
        """The entries that count, newest first."""
        now = self.clock()
        return [e for e in self._newest_first(account_id) if e.available_at <= now][:limit]

    def pending(self, account_id: str) -> list[PointsEntry]:
        """The entries not available yet, newest first."""
        now = self.clock()
        return [e for e in self._newest_first(account_id) if e.available_at > now]

    def _of(self, account_id: str) -> list[PointsEntry]:
        return [entry for entry in self.entries if entry.account_id == account_id]

    def _newest_first(self, account_id: str) -> list[PointsEntry]:
        ordered = list(enumerate(self._of(account_id)))
        ordered.sort(key=lambda pair: (pair[1].created_at, pair[0]), reverse=True)
        return [entry for _, entry in ordered]

    # ------------------------------------------------------------ crediting

    def add(
        self,
        account_id: str,
        amount: int,
        kind: PointsKind,
        reason: str,
        *,
        at: datetime | None = None,
        available_at: datetime | None = None,
    ) -> PointsEntry:
        created = at or self.clock()
        entry = PointsEntry(
            id=f"PT-{len(self.entries) + 1:05d}",
            account_id=account_id,
            amount=amount,
            kind=kind,
            reason=reason,
            created_at=created,
            available_at=available_at or created,
        )
        self.entries.append(entry)
        return entry

    def credit_epd_cashback(self, payment: Payment, bills: list[CityBill]) -> None:
        """A payment listener: every ЕПД bill it paid brings 5% back, available in 7 days."""
        receipt = payment.receipt
        paid_at = receipt.issued_at if receipt is not None else self.clock()
        for bill in bills:
            points = epd_cashback(bill.amount)
            if bill.kind is not BillKind.EPD or points <= 0:
                continue
            self.add(
                payment.account_id,
                points,
                PointsKind.EPD_CASHBACK,
                _cashback_reason(bill.period),
                at=paid_at,
                available_at=paid_at + CASHBACK_DELAY,
            )

    def credit_report_confirmed(self, request: ServiceRequest) -> int:
        """A confirm listener of the requests: the author gets points for a confirmed fix,
        available at once, once per request (a second call credits nothing). Returns them."""
        account_id = request.submission.account_id
        if account_id is None or request.id in self._confirmed_reports:
            return 0
        self._confirmed_reports.add(request.id)
        self.add(
            account_id,
            REPORT_CONFIRMED_POINTS,
            PointsKind.REPORT_CONFIRMED,
            f"Подтверждено решение по обращению № {request.id}",
        )
        return REPORT_CONFIRMED_POINTS

    # ------------------------------------------------------------ transfers

    def transfer(
        self, account_id: str, key: str, fund_id: str, points: int
    ) -> tuple[TransferAnswer, bool]:
        """Points to a fund: (answer, True) when made now, (answer, False) for a replay of this
        key with the same request. Raises Refused (404, 409, 422)."""
        fingerprint = f"{fund_id}\n{points}"
        try:
            known = self._transfers.recall(account_id, key, fingerprint)
        except KeyReused as reused:
            original = reused.original
            assert isinstance(original, TransferAnswer)
            raise Refused(
                422,
                "idempotency_key_reused",
                str(reused),
                transfer_id=original.transfer.id,
            ) from None
        if known is not None:
            return known, False
        fund = fund_by_id(fund_id)
        if fund is None:
            raise Refused(404, "unknown_fund", f"no fund {fund_id!r}")
        balance = self.balance(account_id)
        if points > balance:
            raise Refused(
                409,
                "insufficient_points",
                f"the balance is {balance} points, fewer than {points}",
                balance=balance,
            )
        entry = self.add(
            account_id, -points, PointsKind.TRANSFER, f"Пожертвование баллами: {fund.name}"
        )
        transfer = PointsTransfer(str(uuid.uuid4()), fund.id, fund.name, points, entry.created_at)
        answer = TransferAnswer(transfer, balance - points)
        self._transfers.remember(account_id, key, fingerprint, answer)
        return answer, True


def _cashback_reason(period: str | None) -> str:
    suffix = "" if period is None else f" за {period}"
    return f"Кешбэк {EPD_CASHBACK_PERCENT}% за оплату ЕПД{suffix}"


# ---------------------------------------------------------------- demo history

WELCOME_POINTS = 100
# demo-full's ЕПД cashback: (months back, points); with the welcome bonus and its nine past
# meter readings (9 × 20, see meters.py) it makes 1 250 points.
_FULL_CASHBACK = ((5, 303), (4, 318), (3, 349))


def seed_points(book: PointsBook, now: datetime) -> None:
    """The demo residents' history apart from meter readings (which meters.py credits):
    demo-full and demo-standard got the welcome bonus, demo-full three ЕПД cashbacks."""
    month = now.astimezone(MOSCOW).replace(day=1, hour=12, minute=0, second=0, microsecond=0)
    for resident in (FULL, STANDARD):
        book.add(
            resident.account_id,
            WELCOME_POINTS,
            PointsKind.WELCOME,
            "Приветственные баллы участника программы «Миллион призов»",
            at=_months_before(month, 6),
        )
    for months_back, points in _FULL_CASHBACK:
        paid = _months_before(month, months_back - 1).replace(day=9)  # paid the next month
        period = _months_before(month, months_back)
        book.add(
            FULL.account_id,
            points,
            PointsKind.EPD_CASHBACK,
            _cashback_reason(f"{period.month:02d}.{period.year}"),
            at=paid,
            available_at=paid + CASHBACK_DELAY,
        )


def _months_before(first_of_month: datetime, months: int) -> datetime:
    index = first_of_month.year * 12 + first_of_month.month - 1 - months
    return first_of_month.replace(year=index // 12, month=index % 12 + 1)
