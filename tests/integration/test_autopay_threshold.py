"""Top-up autopays on SQLite and PostgreSQL, judged by the sandbox's ledger: a threshold
autopay («когда баланс ниже») charges once per drop of the balance — one charge with two
schedulers at once, none while the balance stays low, a second after it rose and fell again —
and a scheduled one skips a period when the wallet is full, pauses when the balance is hidden."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

from city.client import CityClient
from domain.autopay import (
    CHECK_EVERY,
    MOSCOW,
    Autopay,
    AutopayKind,
    AutopayStatus,
    Frequency,
    PauseReason,
    RunStatus,
    Schedule,
)
from domain.autopaying import AutopayExists, TopupDoesNotFit, set_up, tick
from domain.topups import AmountProblem, TopupLimits
from sandbox import SandboxServer
from sandbox.payments_api import PAYMENTS_KEY
from storage.uow import UnitOfWorkFactory
from tests.integration import test_autopay_exactly_once as base

START, ledger = base.START, base.ledger
sandbox, city, factory = base.sandbox, base.city, base.factory  # the fixtures

TROIKA = TopupLimits(100, 300_000, 300_000)
CARD = "0012345678"  # the sandbox's «Тройка» of demo-full, 150 ₽ on it


def topup(
    threshold: int | None, amount: int = 10_000, account: str = CARD, day: int = 0
) -> Autopay:
    return Autopay(
        telegram_user_id=7,
        kind=AutopayKind.TOPUP,
        schedule=Schedule.below() if threshold is not None else Schedule(Frequency.MONTHLY, day),
        method_id="pm-full-4242",
        next_due_at=START,
        amount=amount,
        topup_service="troika",
        topup_account=account,
        threshold=threshold,
    )


def set_balance(sandbox: SandboxServer, balance: int, account: str = CARD) -> None:
    sandbox.app[PAYMENTS_KEY].topups.set_balance("troika", account, balance)


def balance(sandbox: SandboxServer, account: str = CARD) -> int | None:
    return sandbox.app[PAYMENTS_KEY].topups.balance("troika", account)


async def test_threshold_fires_once_per_drop(
    factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    async with factory() as uow:
        autopay = await set_up(uow, topup(20_000), START, topup_limits=TROIKA)
    assert autopay.id is not None and autopay.next_due_at == START  # checked at once
    # 150 ₽ < 200 ₽: two schedulers at once — one charge.
    outcomes: list[str] = []
    await asyncio.gather(tick(factory, city, START, outcomes), tick(factory, city, START, outcomes))
    charges = await ledger(sandbox)
    assert [(c["amount"], c["idempotence_key"]) for c in charges] == [
        (10_000, f"ap-{autopay.id}-d-0-1")
    ]
    assert outcomes == [RunStatus.SUCCEEDED.value]
    assert balance(sandbox) == 25_000
    # Spent down again before the next check saw it above: the same drop — no charge, on
    # this tick or the next ones while it stays low.
    set_balance(sandbox, 5_000)
    now = START
    for _ in range(3):
        now += CHECK_EVERY
        outcomes = []
        await tick(factory, city, now, outcomes)
        assert outcomes == ["already_done"]
    assert len(await ledger(sandbox)) == 1
    # Rose above (topped up by hand) — seen by a check — and fell again: a second charge.
    set_balance(sandbox, 50_000)
    now += CHECK_EVERY
    outcomes = []
    await tick(factory, city, now, outcomes)
    assert outcomes == ["balance_ok"]
    set_balance(sandbox, 1_000)
    now += CHECK_EVERY
    await asyncio.gather(tick(factory, city, now), tick(factory, city, now))
    keys = [c["idempotence_key"] for c in await ledger(sandbox)]
    assert keys == [f"ap-{autopay.id}-d-0-1", f"ap-{autopay.id}-d-1-1"]
    assert balance(sandbox) == 11_000
    async with factory() as uow:
        runs = await uow.autopays.runs(autopay.id)
        assert [(r.period, r.status) for r in runs] == [
            ("d-0", RunStatus.SUCCEEDED),
            ("d-1", RunStatus.SUCCEEDED),
        ]
        stored = await uow.autopays.get(autopay.id)
        assert stored is not None and stored.drops == 1
        assert stored.next_due_at == now + CHECK_EVERY  # checked again later, not reminded
        assert await uow.autopays.reminders_due(now, now + timedelta(days=2), 10) == []


async def test_threshold_above_checks_without_charging_or_runs(
    factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    set_balance(sandbox, 90_000)
    async with factory() as uow:
        autopay = await set_up(uow, topup(20_000), START, topup_limits=TROIKA)
        assert autopay.id is not None
        with pytest.raises(AutopayExists):  # one card, one top-up autopay (scheduled too)
            await set_up(uow, topup(None, day=5), START, topup_limits=TROIKA)
        other = "0000000042"
        with pytest.raises(TopupDoesNotFit) as error:  # below the service's minimum
            await set_up(
                uow, topup(None, amount=50, account=other, day=5), START, topup_limits=TROIKA
            )
        assert error.value.problem is AmountProblem.TOO_SMALL
        with pytest.raises(TopupDoesNotFit) as error:  # 2 900 + 200 ₽ would overfill the card
            await set_up(uow, topup(290_000, 20_000, other), START, topup_limits=TROIKA)
        assert error.value.problem is AmountProblem.OVER_BALANCE
    for step in range(3):
        outcomes: list[str] = []
        await tick(factory, city, START + CHECK_EVERY * step, outcomes)
        assert outcomes == ["balance_ok"]
    assert await ledger(sandbox) == []
    async with factory() as uow:
        assert await uow.autopays.runs(autopay.id) == []
        stored = await uow.autopays.get(autopay.id)
        assert stored is not None and stored.drops == 0  # nothing handled: nothing to re-arm


async def test_full_wallet_skips_a_scheduled_top_up_and_a_hidden_balance_pauses(
    factory: UnitOfWorkFactory, city: CityClient, sandbox: SandboxServer
) -> None:
    full = "1234567890"  # 2 950 ₽ of at most 3 000 ₽
    async with factory() as uow:
        scheduled = await set_up(uow, topup(None, account=full, day=25), START, topup_limits=TROIKA)
        hidden = await set_up(uow, topup(20_000, account="0300000000"), START, topup_limits=TROIKA)
    outcomes: list[str] = []
    await tick(factory, city, datetime(2026, 11, 25, 10, 0, 1, tzinfo=MOSCOW), outcomes)
    assert sorted(outcomes) == sorted([RunStatus.SKIPPED.value, "paused"])
    assert await ledger(sandbox) == []
    async with factory() as uow:
        assert scheduled.id is not None and hidden.id is not None
        runs = await uow.autopays.runs(scheduled.id)
        assert [(r.period, r.status, r.failure) for r in runs] == [
            ("2026-11", RunStatus.SKIPPED, "topup_full")
        ]
        stored = await uow.autopays.get(scheduled.id)
        assert stored is not None and stored.status is AutopayStatus.ACTIVE
        assert stored.next_due_at.astimezone(MOSCOW).month == 12
        paused = await uow.autopays.get(hidden.id)
        assert paused is not None and paused.paused_reason is PauseReason.NO_BALANCE
        keys = {
            f"autopay:{scheduled.id}:2026-11:skipped",
            f"autopay:{hidden.id}:d-0:paused",
        }
        assert await uow.notifications.existing(sorted(keys)) == keys
