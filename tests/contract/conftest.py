from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta, timezone

import aiohttp
import pytest

from sandbox import SandboxServer, create_app

from .sandbox_client import ContractClient, FakeClock

MOSCOW = timezone(timedelta(hours=3))
TODAY = date(2026, 3, 10)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 3, 10, 9, 30, tzinfo=MOSCOW))


@pytest.fixture
async def sandbox(clock: FakeClock) -> AsyncIterator[SandboxServer]:
    async with SandboxServer(create_app(clock=clock, today=TODAY)) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


@pytest.fixture
def city(http: aiohttp.ClientSession, sandbox: SandboxServer) -> ContractClient:
    return ContractClient(http, sandbox.url)


@pytest.fixture
async def full_token(city: ContractClient) -> str:
    """An access token of demo-full (four saved cards, twelve unpaid bills)."""
    return (await city.login("demo-full")).access_token


@pytest.fixture
async def standard_token(city: ContractClient) -> str:
    """An access token of demo-standard (one saved card, four unpaid bills)."""
    return (await city.login("demo-standard")).access_token
