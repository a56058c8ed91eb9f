"""Payment intents repository."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.linking import ANONYMOUS
from domain.payable import Payable, Requisites
from domain.payments import TELEGRAM_METHOD, IntentStatus, PaymentIntent, Receipt, ReceiptLine
from storage.models import PaymentIntentRow

MASKED_ACCOUNT = "***"  # an unlinked resident's top-up account (a card, a phone)
_FIELDS = (
    "status",
    "payment_id",
    "failure",
    "confirmation_url",
    "card_last4",
    "method_id",
    "external_charge_id",
    "updated_at",
)


class SqlPaymentIntentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, intent: PaymentIntent) -> None:
        row = PaymentIntentRow(
            key=intent.key,
            telegram_user_id=intent.telegram_user_id,
            bill_ids=list(intent.payable.bill_ids),
            requisites=asdict(intent.requisites) if intent.requisites else None,
            amount=intent.amount,
            fund_id=intent.payable.fund_id,
            topup=asdict(intent.payable.topup) if intent.payable.topup else None,
            created_at=intent.created_at,
        )
        self._fill(row, intent)
        self._session.add(row)
        await self._session.flush()
        intent.id = row.id

    async def get(self, intent_id: int) -> PaymentIntent | None:
        row = await self._session.get(PaymentIntentRow, intent_id, populate_existing=True)
        return None if row is None else _to_domain(row)

    async def by_key(self, key: str) -> PaymentIntent | None:
        result = await self._session.execute(
            select(PaymentIntentRow).where(PaymentIntentRow.key == key)
        )
        row = result.scalar_one_or_none()
        return None if row is None else _to_domain(row)

    async def save(self, intent: PaymentIntent) -> None:
        row = await self._session.get(PaymentIntentRow, intent.id)
        if row is None:
            raise LookupError(f"payment intent {intent.id} is gone")
        self._fill(row, intent)
        await self._session.flush()

    async def advance(self, intent: PaymentIntent, expected_status: str) -> bool:
        result = await self._session.execute(
            update(PaymentIntentRow)
            .where(PaymentIntentRow.id == intent.id, PaymentIntentRow.status == expected_status)
            .values(**_values(intent))
            .execution_options(synchronize_session="fetch")
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    async def retire(self, intent_id: int, reason: str, now: datetime) -> bool:
        """NEW → FAILED(`reason`) only while it is NEW and no outside charge is recorded on it;
        touches nothing else (a copy read earlier must never write back stale fields)."""
        result = await self._session.execute(
            update(PaymentIntentRow)
            .where(
                PaymentIntentRow.id == intent_id,
                PaymentIntentRow.status == IntentStatus.NEW,
                PaymentIntentRow.external_charge_id.is_(None),
            )
            .values(status=IntentStatus.FAILED.value, failure=reason, updated_at=now)
            .execution_options(synchronize_session="fetch")
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    async def attach_external_charge(self, intent_id: int, charge_id: str, now: datetime) -> None:
        """Record money taken outside (a Telegram charge id) on the intent, whatever its status,
        unless one is recorded already; touches nothing else."""
        await self._session.execute(
            update(PaymentIntentRow)
            .where(PaymentIntentRow.id == intent_id, PaymentIntentRow.external_charge_id.is_(None))
            .values(external_charge_id=charge_id, updated_at=now)
            .execution_options(synchronize_session="fetch")
        )

    async def unsettled(self, updated_before: datetime) -> list[PaymentIntent]:
        result = await self._session.execute(
            select(PaymentIntentRow)
            .where(
                PaymentIntentRow.status.in_([IntentStatus.SUBMITTED, IntentStatus.PENDING]),
                PaymentIntentRow.updated_at < updated_before,
            )
            .order_by(PaymentIntentRow.id)
        )
        return [_to_domain(row) for row in result.scalars()]

    async def recent(self, telegram_user_id: int, limit: int) -> list[PaymentIntent]:
        result = await self._session.execute(
            select(PaymentIntentRow)
            .where(PaymentIntentRow.telegram_user_id == telegram_user_id)
            .order_by(PaymentIntentRow.id.desc())
            .limit(limit)
        )
        return [_to_domain(row) for row in result.scalars()]

    async def open_of(self, telegram_user_id: int) -> list[PaymentIntent]:
        """The resident's intents the city may still settle: SUBMITTED or PENDING, and NEW
        ones holding a Telegram charge (money taken, not registered yet)."""
        result = await self._session.execute(
            select(PaymentIntentRow)
            .where(
                PaymentIntentRow.telegram_user_id == telegram_user_id,
                PaymentIntentRow.status.in_([IntentStatus.SUBMITTED, IntentStatus.PENDING])
                | (
                    (PaymentIntentRow.status == IntentStatus.NEW)
                    & PaymentIntentRow.external_charge_id.is_not(None)
                ),
            )
            .order_by(PaymentIntentRow.id)
        )
        return [_to_domain(row) for row in result.scalars()]

    async def anonymise(self, telegram_user_id: int) -> int:
        """Unlinking: the resident's intents stay as accounting records (key, amount, dates,
        status, the city's payment id, bill ids, fund, the receipt's lines, a Telegram charge
        id) and lose what points at the person: the Telegram user (set to `ANONYMOUS`), the
        card (id, last digits, also the receipt's), the confirmation URL, and a receipt's
        payer code and purpose (requisites keep the payee, period and UIN). Intents that
        charged nothing and never will (NEW or FAILED, no Telegram charge) are deleted.
        Returns how many were kept."""
        await self._session.execute(
            delete(PaymentIntentRow)
            .where(
                PaymentIntentRow.telegram_user_id == telegram_user_id,
                PaymentIntentRow.status.in_([IntentStatus.NEW, IntentStatus.FAILED]),
                PaymentIntentRow.external_charge_id.is_(None),
            )
            .execution_options(synchronize_session=False)
        )
        result = await self._session.execute(
            select(PaymentIntentRow).where(PaymentIntentRow.telegram_user_id == telegram_user_id)
        )
        rows = list(result.scalars())
        for row in rows:
            row.telegram_user_id = ANONYMOUS
            if row.method_id != TELEGRAM_METHOD:  # «paid in Telegram» says nothing of anyone
                row.method_id = None
            row.card_last4 = None
            row.confirmation_url = None
            if row.requisites:
                row.requisites = {**row.requisites, "pers_acc": None, "purpose": ""}
            if row.receipt:
                row.receipt = {**row.receipt, "card_last4": None}
            if row.topup:  # a parking account is the resident's phone: masked, here and below
                account = str(row.topup["account"])
                row.topup = {**row.topup, "account": MASKED_ACCOUNT}
                if row.receipt:
                    lines = [
                        {**line, "title": str(line["title"]).replace(account, MASKED_ACCOUNT)}
                        for line in row.receipt["lines"]
                    ]
                    row.receipt = {**row.receipt, "lines": lines}
        await self._session.flush()
        return len(rows)

    def _fill(self, row: PaymentIntentRow, intent: PaymentIntent) -> None:
        for name, value in _values(intent).items():
            setattr(row, name, value)


def _values(intent: PaymentIntent) -> dict[str, Any]:
    values: dict[str, Any] = {name: getattr(intent, name) for name in _FIELDS}
    values["status"] = intent.status.value
    values["receipt"] = _receipt_json(intent.receipt)
    return values


def _receipt_json(receipt: Receipt | None) -> dict[str, Any] | None:
    if receipt is None:
        return None
    data = asdict(receipt)
    data["issued_at"] = receipt.issued_at.isoformat()
    return data


def _receipt(data: dict[str, Any] | None) -> Receipt | None:
    if data is None:
        return None
    return Receipt(
        number=data["number"],
        issued_at=datetime.fromisoformat(data["issued_at"]),
        total=data["total"],
        card_last4=data["card_last4"],
        lines=tuple(ReceiptLine(**line) for line in data["lines"]),
    )


def _to_domain(row: PaymentIntentRow) -> PaymentIntent:
    return PaymentIntent(
        id=row.id,
        key=row.key,
        telegram_user_id=row.telegram_user_id,
        payable=_payable(row),
        amount=row.amount,
        method_id=row.method_id,
        status=IntentStatus(row.status),
        payment_id=row.payment_id,
        failure=row.failure,
        confirmation_url=row.confirmation_url,
        card_last4=row.card_last4,
        external_charge_id=row.external_charge_id,
        receipt=_receipt(row.receipt),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _payable(row: PaymentIntentRow) -> Payable:
    """A row stores one of its target columns (the domain value cannot hold two)."""
    if row.topup:
        return Payable.top_up(str(row.topup["service"]), str(row.topup["account"]))
    if row.fund_id:
        return Payable.donation(row.fund_id)
    if row.requisites:
        return Payable.by_requisites(Requisites(**row.requisites))
    return Payable.bills(tuple(row.bill_ids))
