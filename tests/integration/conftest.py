"""Fixtures the autopay job's tests share (`test_autopay_job`, `test_autopay_batched` and their
reviews): the city sandbox and a client of it, demo-full linked as resident 7 on the test's
database, and a PostgreSQL engine for two schedulers. A test module's own fixture of the same
name (several integration modules have their own sandbox) takes precedence over these."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from city.client import CityClient
from sandbox import SandboxServer
from storage.uow import UnitOfWorkFactory
from tests.conftest import fresh_engine
from tests.integration.test_autopay_job import client, linked


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    async with SandboxServer() as server:
        yield server


@pytest.fixture
async def city(sandbox: SandboxServer) -> AsyncIterator[CityClient]:
    city = client(sandbox)
    yield city
    await city.close()


@pytest.fixture
async def factory(engine: AsyncEngine, city: CityClient) -> UnitOfWorkFactory:
    """demo-full linked as resident 7 (SQLite and PostgreSQL)."""
    return await linked(engine, city)


@pytest.fixture
async def pg_engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = await fresh_engine("postgres", tmp_path)
    yield engine
    await engine.dispose()
