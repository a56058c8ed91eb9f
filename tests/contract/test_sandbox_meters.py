"""Meters («Электронный дом») at the sandbox: windows, periods, readings, points, the clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from domain.accounts import AccountLevel
from sandbox import SandboxServer, create_app
from sandbox.points import READING_POINTS

from .conftest import MOSCOW
from .sandbox_client import ContractClient, FakeClock

COLD, HOT, POWER = "M-3101", "M-3102", "M-3103"  # demo-full
STD_COLD, STD_HOT = "M-2101", "M-2102"  # demo-standard
WATER_OPEN = datetime(2026, 3, 20, 12, 0, tzinfo=MOSCOW)  # both windows open, period 03.2026


def msk(day: str, time: str = "12:00:00") -> datetime:
    return datetime.fromisoformat(f"{day}T{time}+03:00")


def value(text: str) -> dict[str, Any]:
    return {"value": text}


def correction(text: str) -> dict[str, Any]:
    return {"value": text, "correction": True}


# ---------------------------------------------------------------- the demo meters


async def test_demo_full_has_three_meters_with_past_readings(
    city: ContractClient, full_token: str
) -> None:
    answer = await city.meters(full_token)

    assert answer.status == 200
    meters = {meter["id"]: meter for meter in answer.body["meters"]}
    assert {(m["id"], m["kind"], m["unit"]) for m in meters.values()} == {
        (COLD, "cold_water", "m3"),
        (HOT, "hot_water", "m3"),
        (POWER, "electricity", "kWh"),
    }
    # 10 March 2026: every window is closed; the next ones open on the 15th for March.
    cold, power = meters[COLD], meters[POWER]
    assert (cold["last_reading"]["value"], cold["last_reading"]["period"]) == ("425.371", "02.2026")
    assert (power["last_reading"]["value"], power["last_reading"]["period"]) == ("15234", "02.2026")
    assert cold["window"] == {"opens_on": "2026-03-15", "closes_on": "2026-04-03", "open": False}
    assert power["window"] == {"opens_on": "2026-03-15", "closes_on": "2026-03-26", "open": False}
    for meter in meters.values():
        assert (meter["current_period"], meter["submitted_this_period"]) == ("03.2026", False)
        assert meter["serial"]


async def test_demo_standard_has_water_meters_and_demo_simple_none(
    city: ContractClient, standard_token: str
) -> None:
    meters = {m["id"]: m for m in (await city.meters(standard_token)).body["meters"]}

    assert {(m["id"], m["kind"]) for m in meters.values()} == {
        (STD_COLD, "cold_water"),
        (STD_HOT, "hot_water"),
    }
    assert meters[STD_COLD]["last_reading"]["value"] == "87.204"
    assert meters[STD_HOT]["last_reading"] is None
    simple = (await city.login("demo-simple")).access_token
    assert (await city.meters(simple)).body["meters"] == []


# ---------------------------------------------------------------- windows


WINDOW_EDGES = [
    # (moment, meter, open, opens_on, closes_on, period)
    (msk("2026-03-14", "23:59:59"), COLD, False, "2026-03-15", "2026-04-03", "03.2026"),
    (msk("2026-03-15", "00:00:00"), COLD, True, "2026-03-15", "2026-04-03", "03.2026"),
    (msk("2026-04-03", "23:59:59"), HOT, True, "2026-03-15", "2026-04-03", "03.2026"),
    (msk("2026-04-04", "00:00:00"), HOT, False, "2026-04-15", "2026-05-03", "04.2026"),
    (msk("2026-03-14", "23:59:59"), POWER, False, "2026-03-15", "2026-03-26", "03.2026"),
    (msk("2026-03-15", "00:00:00"), POWER, True, "2026-03-15", "2026-03-26", "03.2026"),
    (msk("2026-03-26", "23:59:59"), POWER, True, "2026-03-15", "2026-03-26", "03.2026"),
    (msk("2026-03-27", "00:00:00"), POWER, False, "2026-04-15", "2026-04-26", "04.2026"),
    (msk("2026-04-02"), POWER, False, "2026-04-15", "2026-04-26", "04.2026"),
    (msk("2026-12-31"), COLD, True, "2026-12-15", "2027-01-03", "12.2026"),
    (msk("2027-01-02"), COLD, True, "2026-12-15", "2027-01-03", "12.2026"),
    # Moscow dates: 21:00 UTC on the 14th is already the 15th in Moscow.
    (datetime(2026, 3, 14, 21, 0, tzinfo=UTC), COLD, True, "2026-03-15", "2026-04-03", "03.2026"),
    (datetime(2026, 3, 14, 20, 59, tzinfo=UTC), COLD, False, "2026-03-15", "2026-04-03", "03.2026"),
]


@pytest.mark.parametrize(
    ("now", "meter_id", "is_open", "opens_on", "closes_on", "period"),
    WINDOW_EDGES,
    ids=[f"{edge[1]}@{edge[0].isoformat()}" for edge in WINDOW_EDGES],
)
async def test_windows_open_and_close_on_their_days(
    city: ContractClient,
    full_token: str,
    now: datetime,
    meter_id: str,
    is_open: bool,
    opens_on: str,
    closes_on: str,
    period: str,
) -> None:
    await city.set_clock(now)

    meter = await city.meter(full_token, meter_id)
    sent = await city.send_reading(full_token, "edge", meter_id, value("99999"))

    assert meter["window"] == {"opens_on": opens_on, "closes_on": closes_on, "open": is_open}
    assert meter["current_period"] == period
    if is_open:
        assert sent.status == 201, sent.body
        assert sent.body["reading"]["period"] == period
    else:
        assert sent.status == 409
        assert (sent.body["reason"], sent.body["opens_on"]) == ("window_closed", opens_on)


async def test_windows_follow_moscow_dates_whatever_the_clocks_timezone(
    http: aiohttp.ClientSession,
) -> None:
    clock = FakeClock(datetime(2026, 3, 14, 21, 30, tzinfo=UTC))  # 00:30 on the 15th in Moscow
    async with SandboxServer(create_app(clock=clock)) as server:
        city = ContractClient(http, server.url)
        token = (await city.login("demo-full")).access_token

        assert (await city.meter(token, COLD))["window"]["open"] is True
        clock.advance(-3600)  # 23:30 on the 14th in Moscow
        assert (await city.meter(token, COLD))["window"]["open"] is False


async def test_a_reading_on_the_2nd_belongs_to_the_previous_month(
    city: ContractClient, full_token: str
) -> None:
    await city.set_clock(msk("2026-12-02", "18:45:00"))

    sent = await city.send_reading(full_token, "december", COLD, value("431.002"))

    assert sent.status == 201
    assert sent.body["reading"] == {
        "value": "431.002",
        "period": "11.2026",
        "submitted_at": sent.body["reading"]["submitted_at"],
    }
    assert datetime.fromisoformat(sent.body["reading"]["submitted_at"]) == msk(
        "2026-12-02", "18:45:00"
    )
    meter = await city.meter(full_token, COLD)
    assert meter["last_reading"] == sent.body["reading"]
    assert (meter["current_period"], meter["submitted_this_period"]) == ("11.2026", True)


# ---------------------------------------------------------------- values


async def test_a_reading_below_the_previous_period_is_409(
    city: ContractClient, full_token: str
) -> None:
    await city.set_clock(WATER_OPEN)

    water = await city.send_reading(full_token, "low", COLD, value("425.370"))
    power = await city.send_reading(full_token, "low-kwh", POWER, value("15233"))

    assert water.status == 409
    assert (water.body["reason"], water.body["last_value"]) == ("below_previous", "425.371")
    assert (power.status, power.body["last_value"]) == (409, "15234")
    assert (await city.meter(full_token, COLD))["submitted_this_period"] is False
    # The same value as last time is fine, and the refused key is still free.
    same = await city.send_reading(full_token, "low", COLD, value("425.371"))
    assert same.status == 201


async def test_a_big_jump_is_accepted(city: ContractClient, full_token: str) -> None:
    await city.set_clock(WATER_OPEN)

    sent = await city.send_reading(full_token, "leak", HOT, value("9999.999"))

    assert (sent.status, sent.body["reading"]["value"]) == (201, "9999.999")


async def test_values_are_normalised(city: ContractClient, full_token: str) -> None:
    await city.set_clock(WATER_OPEN)

    water = await city.send_reading(full_token, "short", COLD, value("430.4"))
    power = await city.send_reading(full_token, "zeros", POWER, value("0015300"))

    assert water.body["reading"]["value"] == "430.400"
    assert power.body["reading"]["value"] == "15300"


MALFORMED = [
    (COLD, "430.4567"),
    (COLD, "430,456"),
    (COLD, "-1"),
    (COLD, "+430"),
    (COLD, "4.3e2"),
    (COLD, " 430"),
    (COLD, "430."),
    (COLD, ".5"),
    (COLD, ""),
    (COLD, "NaN"),
    (POWER, "15300.5"),
    (POWER, "15300.0"),
    (COLD, "1e5"),
    (COLD, "1E5"),
    (COLD, "1e999999999"),
    (COLD, "0x10"),
    (COLD, "430\n"),
    (COLD, "４３０"),  # full-width digits
    (COLD, "٤٣٠"),  # Arabic-Indic digits
    (COLD, "430²"),
    (COLD, "100000"),  # above the dial: 5 digits of m³
    (COLD, "100000.000"),
    (POWER, "1000000"),  # above the dial: 6 digits of kWh
    (POWER, "9" * 40),
]


@pytest.mark.parametrize(("meter_id", "raw"), MALFORMED, ids=[repr(m[1]) for m in MALFORMED])
async def test_a_malformed_value_is_400(
    city: ContractClient, full_token: str, meter_id: str, raw: str
) -> None:
    await city.set_clock(WATER_OPEN)

    answer = await city.send_reading(full_token, "bad", meter_id, value(raw))

    assert answer.status == 400, answer.body
    assert (await city.meter(full_token, meter_id))["submitted_this_period"] is False


async def test_the_dials_maximum_is_accepted(city: ContractClient, full_token: str) -> None:
    await city.set_clock(WATER_OPEN)

    water = await city.send_reading(full_token, "max-water", HOT, value("99999.999"))
    power = await city.send_reading(full_token, "max-power", POWER, value("999999"))

    assert (water.status, water.body["reading"]["value"]) == (201, "99999.999")
    assert (power.status, power.body["reading"]["value"]) == (201, "999999")


@pytest.mark.parametrize(
    "body",
    [
        {"value": 430.5},
        {"value": None},
        {},
        {"v": "1"},
        ["430"],
        {"value": "430.000", "correction": "yes"},
        {"value": "430.000", "correction": 1},
        {"value": "430.000", "correction": None},
        {"value": "430.000", "correction": False, "extra": 1},
        {"correction": True},
    ],
)
async def test_a_value_must_be_a_string(city: ContractClient, full_token: str, body: Any) -> None:
    await city.set_clock(WATER_OPEN)

    answer = await city.send_reading(full_token, "bad", COLD, body)

    assert answer.status == 400, answer.body


@pytest.mark.parametrize("key", [None, "", "ключ", "k" * 65])
async def test_a_reading_needs_a_valid_idempotence_key(
    city: ContractClient, full_token: str, key: str | None
) -> None:
    await city.set_clock(WATER_OPEN)

    answer = await city.send_reading(full_token, key, COLD, value("430.000"))

    assert answer.status == 400
    assert (await city.meter(full_token, COLD))["submitted_this_period"] is False


async def test_another_residents_meter_is_404(
    city: ContractClient, full_token: str, standard_token: str
) -> None:
    await city.set_clock(WATER_OPEN)

    for token, meter_id in ((standard_token, COLD), (full_token, STD_COLD), (full_token, "M-0")):
        answer = await city.send_reading(token, "theirs", meter_id, value("500.000"))
        assert answer.status == 404, meter_id
    assert (await city.meter(full_token, COLD))["last_reading"]["value"] == "425.371"


async def test_meters_need_a_token(city: ContractClient) -> None:
    assert (await city.meters(None)).status == 401
    assert (await city.send_reading(None, "k", COLD, value("500.000"))).status == 401


# ---------------------------------------------------------------- points for readings


def test_a_reading_earns_10_points_on_a_simple_account_and_20_otherwise() -> None:
    # Over HTTP only 20 can be seen: demo-simple has no meters (as on mos.ru).
    assert READING_POINTS == {
        AccountLevel.SIMPLE: 10,
        AccountLevel.STANDARD: 20,
        AccountLevel.FULL: 20,
    }


@pytest.mark.parametrize(("login", "meter_id"), [("demo-full", COLD), ("demo-standard", STD_HOT)])
async def test_the_first_reading_of_a_period_earns_20_points(
    city: ContractClient, login: str, meter_id: str
) -> None:
    token = (await city.login(login)).access_token
    before = await city.balance(token)
    await city.set_clock(WATER_OPEN)

    sent = await city.send_reading(token, "first", meter_id, value("500.125"))

    assert (sent.status, sent.body["points_credited"]) == (201, 20)
    assert await city.balance(token) == before + 20
    newest = (await city.points(token)).body["entries"][0]
    assert (newest["kind"], newest["amount"]) == ("meter_reading", 20)
    water = "холодной" if meter_id == COLD else "горячей"
    assert newest["reason"] == f"Показания счётчика {water} воды за 03.2026"


async def test_each_meter_earns_once_per_period_and_a_correction_earns_nothing(
    city: ContractClient, full_token: str, clock: FakeClock
) -> None:
    await city.set_clock(WATER_OPEN)

    cold = await city.send_reading(full_token, "cold-1", COLD, value("430.000"))
    hot = await city.send_reading(full_token, "hot-1", HOT, value("250.000"))
    clock.advance(60)
    corrected = await city.send_reading(full_token, "cold-2", COLD, correction("428.500"))

    assert [a.body["points_credited"] for a in (cold, hot, corrected)] == [20, 20, 0]
    assert corrected.status == 201
    assert await city.balance(full_token) == 1_250 + 40
    meter = await city.meter(full_token, COLD)
    assert meter["last_reading"] == corrected.body["reading"]  # the period's value replaced
    assert meter["last_reading"]["value"] == "428.500"  # below 430 is fine: same period

    # The next period earns again.
    await city.set_clock(msk("2026-04-20"))
    next_period = await city.send_reading(full_token, "cold-3", COLD, value("428.500"))
    assert (next_period.body["reading"]["period"], next_period.body["points_credited"]) == (
        "04.2026",
        20,
    )
    below = await city.send_reading(full_token, "cold-4", COLD, correction("428.499"))
    assert (below.status, below.body["last_value"]) == (409, "428.500")


async def test_a_replayed_reading_credits_once_even_after_the_window_closed(
    city: ContractClient, full_token: str
) -> None:
    await city.set_clock(msk("2026-04-03", "23:59:00"))
    first = await city.send_reading(full_token, "late", COLD, value("431.5"))
    await city.set_clock(msk("2026-04-04", "00:01:00"))  # the answer was lost; the window closed

    again = await city.send_reading(full_token, "late", COLD, value("431.500"))
    other_value = await city.send_reading(full_token, "late", COLD, value("431.6"))
    other_meter = await city.send_reading(full_token, "late", HOT, value("431.5"))

    assert (first.status, again.status) == (201, 200)
    assert again.body == first.body
    assert first.body["points_credited"] == 20
    assert (other_value.status, other_value.body["reason"]) == (422, "idempotency_key_reused")
    assert other_meter.status == 422
    assert await city.balance(full_token) == 1_270
    entries = (await city.points(full_token)).body["entries"]
    assert [e["reason"] for e in entries].count("Показания счётчика холодной воды за 03.2026") == 1


# ---------------------------------------------------------------- corrections


async def test_a_second_reading_in_a_period_is_refused_unless_a_correction(
    city: ContractClient, full_token: str
) -> None:
    await city.set_clock(WATER_OPEN)
    first = await city.send_reading(full_token, "first", COLD, value("430.000"))

    second = await city.send_reading(full_token, "second", COLD, value("431.000"))

    assert first.status == 201
    assert second.status == 409
    assert (second.body["reason"], second.body["period"], second.body["value"]) == (
        "already_submitted",
        "03.2026",
        "430.000",
    )
    assert (await city.meter(full_token, COLD))["last_reading"]["value"] == "430.000"
    # The refused key is still free: used as a correction it replaces the value.
    fixed = await city.send_reading(full_token, "second", COLD, correction("431.000"))
    assert (fixed.status, fixed.body["points_credited"]) == (201, 0)
    assert (await city.meter(full_token, COLD))["last_reading"]["value"] == "431.000"


async def test_a_correction_needs_a_reading_to_correct(
    city: ContractClient, full_token: str
) -> None:
    await city.set_clock(WATER_OPEN)
    before = await city.balance(full_token)

    answer = await city.send_reading(full_token, "fix", COLD, correction("430.000"))

    assert answer.status == 409
    assert (answer.body["reason"], answer.body["period"]) == ("nothing_to_correct", "03.2026")
    meter = await city.meter(full_token, COLD)
    assert (meter["submitted_this_period"], meter["last_reading"]["period"]) == (False, "02.2026")
    assert await city.balance(full_token) == before
    # The key stayed free: the period's first reading can be sent with it and earns points.
    sent = await city.send_reading(full_token, "fix", COLD, value("430.000"))
    assert (sent.status, sent.body["points_credited"]) == (201, 20)


async def test_corrections_replace_the_value_and_never_credit(
    city: ContractClient, full_token: str, clock: FakeClock
) -> None:
    await city.set_clock(WATER_OPEN)
    before = await city.balance(full_token)
    first = await city.send_reading(full_token, "r-1", POWER, value("15300"))

    values = []
    for n, raw in enumerate(["15400", "15300", "15400", "15350"], start=1):
        clock.advance(1)
        fixed = await city.send_reading(full_token, f"c-{n}", POWER, correction(raw))
        assert (fixed.status, fixed.body["points_credited"]) == (201, 0), fixed.body
        values.append((await city.meter(full_token, POWER))["last_reading"]["value"])

    assert first.body["points_credited"] == 20
    assert values == ["15400", "15300", "15400", "15350"]  # back and forth: each one applied
    assert await city.balance(full_token) == before + 20
    meter = await city.meter(full_token, POWER)
    assert (meter["submitted_this_period"], meter["last_reading"]["period"]) == (True, "03.2026")
    entries = (await city.points(full_token)).body["entries"]
    assert [e["reason"] for e in entries].count("Показания счётчика электроэнергии за 03.2026") == 1


async def test_a_replayed_correction_is_answered_again_and_changes_nothing(
    city: ContractClient, full_token: str, clock: FakeClock
) -> None:
    await city.set_clock(WATER_OPEN)
    await city.send_reading(full_token, "first", COLD, value("430.000"))
    fixed = await city.send_reading(full_token, "fix-1", COLD, correction("429.5"))
    clock.advance(30)
    later = await city.send_reading(full_token, "fix-2", COLD, correction("429.700"))

    again = await city.send_reading(full_token, "fix-1", COLD, correction("429.500"))
    as_reading = await city.send_reading(full_token, "fix-1", COLD, value("429.500"))
    first_again = await city.send_reading(full_token, "first", COLD, value("430.000"))

    assert (fixed.status, later.status, again.status) == (201, 201, 200)
    assert again.body == fixed.body  # the first answer, as the contract says for a replay
    assert (as_reading.status, as_reading.body["reason"]) == (422, "idempotency_key_reused")
    assert (first_again.status, first_again.body["points_credited"]) == (200, 20)  # a replay
    assert (await city.meter(full_token, COLD))["last_reading"]["value"] == "429.700"
    assert await city.balance(full_token) == 1_250 + 20


async def test_a_correction_is_checked_like_a_reading(
    city: ContractClient, full_token: str
) -> None:
    await city.set_clock(WATER_OPEN)
    await city.send_reading(full_token, "first", COLD, value("430.000"))

    below = await city.send_reading(full_token, "low", COLD, correction("425.370"))
    same_as_last_period = await city.send_reading(full_token, "eq", COLD, correction("425.371"))
    huge = await city.send_reading(full_token, "huge", COLD, correction("1e5"))
    await city.set_clock(msk("2026-04-04", "00:00:01"))  # the window closed
    late = await city.send_reading(full_token, "late", COLD, correction("430.100"))

    assert (below.status, below.body["reason"], below.body["last_value"]) == (
        409,
        "below_previous",
        "425.371",
    )
    assert same_as_last_period.status == 201
    assert huge.status == 400
    assert (late.status, late.body["reason"]) == (409, "window_closed")
    last = (await city.meter(full_token, COLD))["last_reading"]
    assert (last["value"], last["period"]) == ("425.371", "03.2026")


# ---------------------------------------------------------------- the clock


async def test_the_clock_moves_and_goes_on_with_the_injected_clock(
    city: ContractClient, full_token: str, clock: FakeClock
) -> None:
    target = msk("2026-03-15", "00:00:00")

    answer = await city.set_clock(target)
    clock.advance(90)

    assert datetime.fromisoformat(answer.body["now"]) == target
    sent = await city.send_reading(full_token, "after", COLD, value("430.000"))
    assert datetime.fromisoformat(sent.body["reading"]["submitted_at"]) == target + timedelta(
        seconds=90
    )


async def test_moving_the_clock_expires_no_token(city: ContractClient, full_token: str) -> None:
    await city.set_clock(msk("2027-01-01"))

    assert (await city.profile(full_token)).status == 200
    await city.set_clock(msk("2025-01-01"))  # backwards too
    assert (await city.meters(full_token)).status == 200


@pytest.mark.parametrize(
    "body",
    [{"now": "2026-03-15T00:00:00"}, {"now": "tomorrow"}, {"now": 1}, {}, {"now": None}, []],
    ids=repr,
)
async def test_the_clock_needs_a_datetime_with_a_timezone(city: ContractClient, body: Any) -> None:
    answer = await city.request("PUT", "/sandbox/clock", json=body)

    assert answer.status == 400
    assert answer.body["code"] == 400
