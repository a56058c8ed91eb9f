"""A top-up intent on SQLite and PostgreSQL: its target kept in the `topup` column (0014) and
read back as the same payable; on unlinking, the account (a parking account is a phone) is
masked on the intent and in its receipt's lines."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from domain.payable import Payable
from domain.payments import IntentStatus, PaymentIntent, Receipt, ReceiptLine
from storage.database import create_sessionmaker
from storage.payment_intents import MASKED_ACCOUNT
from storage.token_cipher import TokenCipher
from storage.uow import UnitOfWorkFactory

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
PHONE = "79161234567"


async def test_a_topup_intent_round_trips_and_is_masked_on_unlink(engine: AsyncEngine) -> None:
    uow_factory = UnitOfWorkFactory(
        create_sessionmaker(engine), TokenCipher([TokenCipher.generate_key()])
    )
    payable = Payable.top_up("parking", PHONE)
    receipt = Receipt(
        "00000001", NOW, 25_050, "4242",
        (ReceiptLine(f"Пополнение парковочного счёта {PHONE}", "ГКУ АМПП", 25_050),),
    )  # fmt: skip
    intent = PaymentIntent("k-1", 601, payable, 25_050, "pm-1", NOW, NOW)
    async with uow_factory() as uow:
        await uow.payment_intents.add(intent)
        intent.status, intent.receipt = IntentStatus.SUCCEEDED, receipt
        await uow.payment_intents.save(intent)
        await uow.commit()
    async with uow_factory() as uow:
        stored = await uow.payment_intents.by_key("k-1")
        assert stored is not None and stored.payable == payable
        assert stored.fund_id is None and stored.bill_ids == ()
        assert await uow.payment_intents.anonymise(601) == 1
        await uow.commit()
    async with uow_factory() as uow:
        kept = await uow.payment_intents.by_key("k-1")
        assert kept is not None and kept.payable.topup is not None
        assert kept.payable.topup.service == "parking"
        assert kept.payable.topup.account == MASKED_ACCOUNT
        assert kept.receipt is not None
        assert [line.title for line in kept.receipt.lines] == [
            f"Пополнение парковочного счёта {MASKED_ACCOUNT}"
        ]
        assert kept.amount == 25_050
