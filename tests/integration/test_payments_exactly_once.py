"""Exactly once below the chat: two processes paying the same intent at the same moment, each
with its own unit of work, on SQLite and PostgreSQL, against the sandbox's ledger."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from city.client import CityClient
from domain.accounts import AccountLevel, Resident
from domain.linking import StaticSession
from domain.payments import IntentStatus, OutcomeKind, pay, prepare_bills_payment
from sandbox import SandboxServer
from storage.database import create_sessionmaker
from storage.token_cipher import TokenCipher
from storage.uow import UnitOfWorkFactory
from tests.contract.test_city_client import REDIRECT, VERIFIER, login_code

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    async with SandboxServer() as server:
        yield server


@pytest.fixture
async def city(sandbox: SandboxServer) -> AsyncIterator[CityClient]:
    client = CityClient(
        sandbox.url, client_id="resident-bot", client_secret="sandbox-secret", redirect_uri=REDIRECT
    )
    yield client
    await client.close()


async def stored_resident(uow_factory: UnitOfWorkFactory, city: CityClient) -> Resident:
    tokens = await city.exchange_code(
        code=await login_code(city, "demo-full"), code_verifier=VERIFIER
    )
    resident = Resident(7, 7, "C-100003", AccountLevel.FULL, "Мария В.", tokens, NOW)
    async with uow_factory() as uow:
        await uow.residents.save(resident)
        await uow.commit()
    return resident


async def charges(sandbox: SandboxServer) -> list[dict[str, object]]:
    async with aiohttp.ClientSession() as http:
        async with http.get(sandbox.url + "/sandbox/ledger") as answer:
            return (await answer.json())["charges"]


async def test_two_concurrent_payers_charge_once(
    engine: AsyncEngine, city: CityClient, sandbox: SandboxServer
) -> None:
    uow_factory = UnitOfWorkFactory(
        create_sessionmaker(engine), TokenCipher([TokenCipher.generate_key()])
    )
    resident = await stored_resident(uow_factory, city)
    async with uow_factory() as uow:
        bills = await city.unpaid_bills(StaticSession(resident.tokens))
        intent, _ = await prepare_bills_payment(
            uow, city, city, resident, [b.id for b in bills[:3]], "pm-full-4242", NOW
        )
        await uow.commit()
    assert intent.id is not None

    async def payer() -> OutcomeKind:
        async with uow_factory() as uow:
            outcome = await pay(uow, city, city, resident, intent.id, NOW)  # type: ignore[arg-type]
            return outcome.kind

    kinds = await asyncio.gather(payer(), payer(), payer())
    assert OutcomeKind.PAID in kinds
    assert set(kinds) <= {OutcomeKind.PAID, OutcomeKind.IN_PROGRESS}
    assert [c["amount"] for c in await charges(sandbox)] == [sum(b.amount for b in bills[:3])]
    async with uow_factory() as uow:
        stored = await uow.payment_intents.get(intent.id)
    assert stored is not None and stored.status is IntentStatus.SUCCEEDED

    async with uow_factory() as uow:  # pressed again much later: nothing new is charged
        again = await pay(uow, city, city, resident, intent.id, NOW)
    assert again.kind is OutcomeKind.PAID and len(await charges(sandbox)) == 1
