"""Telegram Payments (when PAYMENTS_PROVIDER_TOKEN is set): an invoice per payment intent, a
pre-checkout answered within Telegram's 10 seconds, and the payment registered with the city
exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

import structlog
from aiogram import Bot, F, Router
from aiogram.types import LabeledPrice, Message, PreCheckoutQuery, SuccessfulPayment

from domain import support
from domain.accounts import Resident
from domain.errors import DomainError
from domain.limits import DEFAULT_LIMITS, AmountLimits
from domain.money import format_rub
from domain.payments import (
    CHARGE_MISMATCH,
    SECOND_CHARGE,
    SECOND_CHARGE_UNPAID,
    TELEGRAM_CURRENCY,
    CheckoutRefusal,
    OutcomeKind,
    PaymentIntent,
    TelegramRefund,
    check_checkout,
    register_external_payment,
)
from domain.ports import City, UnitOfWork
from handlers.ports import Texts
from handlers.texts import shorten

log = structlog.get_logger(__name__)

CHECKOUT_BUDGET = 7.0  # seconds: Telegram gives 10 to answer a pre-checkout query
REFUSAL_KEYS = {
    CheckoutRefusal.UNKNOWN: "tgpay-refused-unknown",
    CheckoutRefusal.ALREADY_PAID: "pay-already-paid",
    CheckoutRefusal.AMOUNT_CHANGED: "tgpay-refused-amount",
    CheckoutRefusal.FUND_GONE: "pay-refused-fund",
    CheckoutRefusal.TOPUP_CLOSED: "tgpay-refused-topup-closed",
    CheckoutRefusal.TOPUP_ACCOUNT: "pay-refused-account",
    CheckoutRefusal.TOPUP_LIMITS: "pay-refused-topup-limits",
}
# Money taken that the city would not register: what the resident is told, by the city's reason.
REFUND_KEYS = {
    OutcomeKind.ALREADY_PAID: "tgpay-refund-already-paid",
    OutcomeKind.AMOUNT_CHANGED: "tgpay-refund-amount-changed",
}


INVOICE_DESCRIPTION = 255  # sendInvoice: description, 1-255 characters (Bot API)


async def send_invoice(
    bot: Bot, tr: Texts, token: str, chat_id: int, intent: PaymentIntent, lines: list[str]
) -> None:
    # An invoice's fields are plain text: labels, not HTML; the Bot API takes a description of
    # 1-255 characters (cut in UTF-16 units, never more than Telegram counts).
    description = shorten("; ".join(lines), INVOICE_DESCRIPTION) or tr.label("tgpay-description")
    await bot.send_invoice(
        chat_id=chat_id,
        title=tr.label("tgpay-title"),
        description=description,
        payload=intent.key,  # the intent's idempotency key ties the money to the intent
        provider_token=token,
        currency=TELEGRAM_CURRENCY,
        prices=[LabeledPrice(label=tr.label("tgpay-title"), amount=intent.amount)],
    )


async def on_pre_checkout(
    query: PreCheckoutQuery,
    uow: UnitOfWork,
    city: City,
    tr: Texts,
    resident: Resident | None = None,
    limits: AmountLimits = DEFAULT_LIMITS,
) -> None:
    refusal: CheckoutRefusal | None = CheckoutRefusal.UNKNOWN
    key = "tgpay-refused-unknown"
    if resident is not None and query.currency == TELEGRAM_CURRENCY:
        try:
            refusal = await asyncio.wait_for(
                check_checkout(
                    uow, city, city, resident, query.invoice_payload, query.total_amount, limits
                ),
                CHECKOUT_BUDGET,
            )
        except (TimeoutError, DomainError):
            refusal, key = CheckoutRefusal.UNKNOWN, "error-city-unavailable"
    if refusal is None:
        await query.answer(ok=True)
        return
    if key != "error-city-unavailable":
        key = REFUSAL_KEYS[refusal]
    log.info("tgpay.refused", reason=refusal.value)
    await query.answer(ok=False, error_message=tr.label(key))


async def on_successful_payment(
    message: Message,
    uow: UnitOfWork,
    city: City,
    tr: Texts,
    clock: Callable[[], datetime],
    resident: Resident | None = None,
) -> None:
    payment = message.successful_payment
    assert payment is not None
    if resident is None:  # unlinked between the checkout and the payment: owed back
        log.error("tgpay.orphan_payment", charge=payment.telegram_payment_charge_id)
        await _owe_back_unowned(message, uow, tr, clock())
        return
    outcome = await register_external_payment(
        uow,
        city,
        city,
        resident,
        payment.invoice_payload,
        payment.telegram_payment_charge_id,
        clock(),
        provider_charge_id=payment.provider_payment_charge_id,
        currency=payment.currency,
        total_amount=payment.total_amount,
    )
    if outcome is None:  # not this resident's invoice (unlinked and linked again meanwhile)
        log.error("tgpay.unknown_payload", charge=payment.telegram_payment_charge_id)
        await _owe_back_unowned(message, uow, tr, clock())
    elif isinstance(outcome, TelegramRefund):  # the city refused it: the money must go back
        intent = outcome.outcome.intent
        log.error(
            "tgpay.refund_needed",
            intent_id=intent.id,
            reason=intent.failure,
            charge=intent.external_charge_id,
            amount=intent.amount,
            staff_told=outcome.staff_told,  # False: told before, or no support chat configured
            currency=payment.currency,
            total_amount=payment.total_amount,  # in the currency's smallest units
        )
        if intent.failure == CHARGE_MISMATCH:  # not the invoice's sum: the intent's is not it
            await message.answer(tr("tgpay-refund-mismatch"))
            return
        if intent.failure == SECOND_CHARGE:  # the invoice had its charge: this one goes back
            await message.answer(tr("tgpay-refund-second", amount=format_rub(intent.amount)))
            return
        if intent.failure == SECOND_CHARGE_UNPAID:  # … and that one was not taken either
            await message.answer(tr("tgpay-refund-second-unpaid", amount=format_rub(intent.amount)))
            return
        key = REFUND_KEYS.get(outcome.outcome.kind, "tgpay-refund-refused")
        await message.answer(tr(key, amount=format_rub(intent.amount)))
    elif outcome.kind is OutcomeKind.PAID and outcome.intent.receipt is not None:
        receipt = outcome.intent.receipt
        await message.answer(tr("tgpay-registered", number=receipt.number))
    else:  # the city did not answer: reconciliation registers it later under the same key
        await message.answer(tr("tgpay-pending"))


async def _owe_back_unowned(message: Message, uow: UnitOfWork, tr: Texts, now: datetime) -> None:
    """Telegram took money for an invoice no linked resident owns: nothing can register it, so
    support's Dashboard is told to return it (review 33e: before, a log line was all), and the
    resident is told the money comes back."""
    payment = message.successful_payment
    assert payment is not None
    told = await support.telegram_charge_unowned(
        uow,
        payment.telegram_payment_charge_id,
        payment.provider_payment_charge_id,
        (payment.total_amount, payment.currency),
        now,
    )
    desk = await support.has_desk(uow)
    await uow.commit()
    log.error(
        "tgpay.refund_needed_unowned",
        staff_told=told,
        charge=payment.telegram_payment_charge_id,
        currency=payment.currency,
        total_amount=payment.total_amount,  # in the currency's smallest units
    )
    # With no support chat nobody was told: the resident keeps the charge's number to claim
    # the money (review 34a: «поддержка уже знает» was said regardless).
    await message.answer(
        tr(
            "tgpay-orphan-refund" if desk else "tgpay-orphan-refund-untold",
            amount=_taken(tr, payment),
            charge=payment.telegram_payment_charge_id,
        )
    )


def _taken(tr: Texts, payment: SuccessfulPayment) -> str:
    """« на 100,00 ₽»; nothing for another currency (its smallest units are its own)."""
    if payment.currency == TELEGRAM_CURRENCY:
        return tr("tgpay-orphan-amount", amount=format_rub(payment.total_amount))
    return ""


def build_router() -> Router:
    router = Router(name="telegram_pay")
    router.pre_checkout_query.register(on_pre_checkout)
    router.message.register(on_successful_payment, F.successful_payment)
    return router
