"""The sandbox serves exactly city/openapi.yaml: routes, resident API, demo data, faults."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import date, timedelta
from typing import Any

import aiohttp
import pytest

from domain.uin import check_uin
from sandbox import SandboxServer, create_app
from sandbox.data import build_data

from .conftest import TODAY
from .openapi import declared_operations
from .sandbox_client import LOGINS, ContractClient

# ---------------------------------------------------------------- routes


def test_routes_are_exactly_the_contract() -> None:
    app = create_app()
    served = {
        (route.method, resource.canonical)
        for resource in app.router.resources()
        for route in resource
        if route.method not in ("HEAD", "OPTIONS")
    }

    assert served - declared_operations() == set(), "served but not in the contract"
    assert declared_operations() - served == set(), "in the contract but not served"


async def test_server_reports_its_url_and_stops() -> None:
    server = SandboxServer()
    await server.start()
    url = server.url
    async with aiohttp.ClientSession() as http:
        async with http.get(url + "/sandbox/residents") as response:
            assert response.status == 200
        await server.stop()
        try:
            async with http.get(url + "/sandbox/residents"):
                raise AssertionError("the server still answers after stop()")
        except aiohttp.ClientConnectionError:
            pass
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)


async def test_a_client_giving_up_on_a_slow_answer_does_not_hold_up_stop() -> None:
    server = SandboxServer()
    await server.start()
    try:
        async with aiohttp.ClientSession() as http:
            city = ContractClient(http, server.url)
            await city.put_faults({"delay_seconds": 30})
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.1):
                    await city.request("GET", "/api/v1/profile")
    finally:
        await asyncio.wait_for(server.stop(), timeout=2)


# ---------------------------------------------------------------- residents and profile


async def test_demo_residents_cover_every_account_level(city: ContractClient) -> None:
    answer = await city.request("GET", "/sandbox/residents")

    residents = answer.body["residents"]
    assert [r["login"] for r in residents] == list(LOGINS)
    assert {r["account_level"] for r in residents} == {"simple", "standard", "full"}
    for resident in residents:
        assert len(resident["full_name"].split()) == 3  # Фамилия Имя Отчество
        assert re.search("[а-яё]", resident["description"])


async def test_resident_api_needs_a_valid_bearer_token(city: ContractClient) -> None:
    for path in ("/api/v1/profile", "/api/v1/bills"):
        for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Basic dXNlcjpwdw=="}):
            missing = await city.request("GET", path, headers=headers)
            assert missing.status == 401
            assert missing.body["code"] == 401
            assert missing.headers["WWW-Authenticate"].startswith("Bearer")
        unknown = await city.request("GET", path, token="never-issued-" + "x" * 32)
        assert unknown.status == 401
        assert unknown.body["code"] == 401


# ---------------------------------------------------------------- bills


async def _bills(
    city: ContractClient, login: str, status: str | None = None
) -> list[dict[str, Any]]:
    tokens = await city.login(login)
    answer = await city.bills(tokens.access_token, status)
    assert answer.status == 200, answer.body
    return answer.body["bills"]  # type: ignore[no-any-return]


async def test_every_uin_is_valid(city: ContractClient) -> None:
    uins = [
        bill["uin"]
        for login in LOGINS
        for bill in await _bills(city, login, "all")
        if bill["uin"] is not None
    ]

    assert len(uins) >= 10
    assert [uin for uin in uins if not check_uin(uin).ok] == []
    assert len(set(uins)) == len(uins)


async def test_fines_have_realistic_uins(city: ContractClient) -> None:
    bills = await _bills(city, "demo-full", "all")

    traffic = [b["uin"] for b in bills if b["kind"] == "traffic_fine"]
    parking = [b["uin"] for b in bills if b["kind"] == "parking_fine"]
    assert traffic and all(len(u) == 20 and u.startswith("18810177") for u in traffic)
    assert parking and all(len(u) == 25 and u.startswith("0355431") for u in parking)


async def test_epd_bills_have_payer_code_and_period(city: ContractClient) -> None:
    epd = [b for b in await _bills(city, "demo-full", "all") if b["kind"] == "epd"]

    assert epd
    for bill in epd:
        assert re.fullmatch(r"\d{10}", bill["payer_code"])
        assert re.fullmatch(r"\d{2}\.\d{4}", bill["period"])
        assert 500_000 <= bill["amount"] <= 900_000


async def test_status_filter(city: ContractClient) -> None:
    tokens = await city.login("demo-full")

    default = (await city.bills(tokens.access_token)).body["bills"]
    unpaid = (await city.bills(tokens.access_token, "unpaid")).body["bills"]
    paid = (await city.bills(tokens.access_token, "paid")).body["bills"]
    every = (await city.bills(tokens.access_token, "all")).body["bills"]

    assert default == unpaid
    assert {b["status"] for b in unpaid} == {"unpaid"}
    assert {b["status"] for b in paid} == {"paid"}
    assert len(unpaid) >= 11  # enough for three pages of five
    assert len(paid) == 2
    assert sorted(b["id"] for b in every) == sorted(b["id"] for b in unpaid + paid)


async def test_unknown_status_filter_is_400(city: ContractClient) -> None:
    tokens = await city.login("demo-full")

    answer = await city.bills(tokens.access_token, "overdue")

    assert answer.status == 400
    assert answer.body["code"] == 400


async def test_bills_come_earliest_due_first(city: ContractClient) -> None:
    for login in LOGINS:
        for status in ("unpaid", "all"):
            bills = await _bills(city, login, status)
            keys = [(b["due_date"], b["id"]) for b in bills]
            assert keys == sorted(keys), (login, status)


async def test_due_dates_span_overdue_soon_and_later(city: ContractClient) -> None:
    due = [date.fromisoformat(b["due_date"]) for b in await _bills(city, "demo-full")]

    assert any(day < TODAY for day in due)
    assert any(TODAY <= day <= TODAY + timedelta(days=3) for day in due)
    assert any(day > TODAY + timedelta(days=3) for day in due)
    kinds = {b["kind"] for b in await _bills(city, "demo-full")}
    assert kinds == {"epd", "mgts", "kindergarten", "club", "traffic_fine", "parking_fine"}


async def test_each_resident_sees_only_their_own_bills(city: ContractClient) -> None:
    seen = {login: {b["id"] for b in await _bills(city, login, "all")} for login in LOGINS}

    assert seen["demo-simple"] == set()  # the bot's empty state
    assert 4 <= len(seen["demo-standard"]) <= len(seen["demo-full"])
    assert seen["demo-standard"].isdisjoint(seen["demo-full"])
    assert len(await _bills(city, "demo-standard")) == 4


def test_demo_data_is_deterministic_and_relative_to_today() -> None:
    first, again = build_data(TODAY), build_data(TODAY)
    later = build_data(TODAY + timedelta(days=40))

    assert first == again
    for bill, moved in zip(first.bills, later.bills, strict=True):
        assert moved.id == bill.id
        assert moved.due_date - bill.due_date == timedelta(days=40)
        assert moved.uin is None or check_uin(moved.uin).ok


# ---------------------------------------------------------------- faults


async def test_delay_applies_to_the_api_only(city: ContractClient) -> None:
    tokens = await city.login("demo-full")
    assert (await city.put_faults({"delay_seconds": 0.2})).body == {"delay_seconds": 0.2}
    try:
        started = time.monotonic()
        assert (await city.profile(tokens.access_token)).status == 200
        api_took = time.monotonic() - started
        started = time.monotonic()
        await city.request("GET", "/sandbox/residents")
        control_took = time.monotonic() - started
    finally:
        assert (await city.put_faults({})).body == {}

    assert api_took >= 0.2
    assert control_took < 0.2


async def test_status_fault_applies_to_the_api_but_not_to_oauth(city: ContractClient) -> None:
    tokens = await city.login("demo-standard")
    assert (await city.put_faults({"status": 503})).body == {"status": 503}

    for path in ("/api/v1/profile", "/api/v1/bills"):
        failing = await city.request("GET", path, token=tokens.access_token)
        assert failing.status == 503
        assert failing.body["code"] == 503
    linked = await city.login("demo-full")  # OAuth keeps working
    assert (await city.refresh(linked.refresh_token)).status == 200

    assert (await city.put_faults({})).body == {}
    assert (await city.profile(tokens.access_token)).status == 200


async def test_faults_are_replaced_as_a_whole(city: ContractClient) -> None:
    both = await city.put_faults({"delay_seconds": 0, "status": 500})
    only_status = await city.put_faults({"status": 502})

    assert both.body == {"delay_seconds": 0, "status": 500}
    assert only_status.body == {"status": 502}
    assert (await city.request("GET", "/api/v1/profile")).status == 502
    await city.put_faults({})


async def test_invalid_faults_are_400(city: ContractClient) -> None:
    faults: Any
    for faults in (
        {"status": 404},
        {"status": True},
        {"status": "503"},
        {"delay_seconds": -1},
        {"delay_seconds": 121},
        {"delay_seconds": "1"},
        {"slow": True},
        [],
    ):
        answer = await city.put_faults(faults)
        assert answer.status == 400, faults
        assert answer.body["code"] == 400
    for raw in ("null", "not json", ""):
        answer = await city.request(
            "PUT", "/sandbox/faults", data=raw, headers={"Content-Type": "application/json"}
        )
        assert answer.status == 400, raw
    assert (await city.request("GET", "/api/v1/profile")).status == 401  # nothing changed


async def test_two_sandboxes_share_no_state(
    city: ContractClient, http: aiohttp.ClientSession
) -> None:
    tokens = await city.login("demo-full")
    await city.put_faults({"status": 503})
    async with SandboxServer(create_app(today=TODAY)) as other_server:
        other = ContractClient(http, other_server.url)
        assert (await other.profile(tokens.access_token)).status == 401  # not its token
        other_tokens = await other.login("demo-full")
        assert (await other.profile(other_tokens.access_token)).status == 200  # no faults
    await city.put_faults({})
