"""«Наш город» and «Миллион призов» at the sandbox: a confirmed fix brings its author points
once; the updates say who wrote them; an account's history older than the default window is
reached window by window."""

from __future__ import annotations

from typing import Any

from .sandbox_client import ContractClient

AUTHOR = "C-100003"  # demo-full
FULL_ANSWERED = "NG-2026-000108"  # the fixture clock is 10 March 2026
FULL_CLOSED_LONG_AGO = "NG-2025-000110"  # 250 days old


async def report_entries(city: ContractClient, token: str) -> list[dict[str, Any]]:
    answer = await city.points(token, limit="100")
    assert answer.status == 200, answer.body
    return [e for e in answer.body["entries"] if e["kind"] == "report_confirmed"]


async def test_a_confirmed_fix_credits_points_once(city: ContractClient, full_token: str) -> None:
    before = await city.balance(full_token)

    confirmed = await city.report_action(FULL_ANSWERED, "confirm", {"account_id": AUTHOR})
    again = await city.report_action(FULL_ANSWERED, "confirm", {"account_id": AUTHOR})

    assert confirmed.status == 200 and confirmed.body[0]["points_credited"] == 50
    assert again.status == 409
    [entry] = await report_entries(city, full_token)
    assert entry["amount"] == 50 and FULL_ANSWERED in entry["reason"]
    assert await city.balance(full_token) == before + 50


async def test_updates_say_who_wrote_them(city: ContractClient) -> None:
    refuted = await city.report_action(
        FULL_ANSWERED, "refute", {"account_id": AUTHOR, "description": "Фонари не горят"}
    )
    assert refuted.status == 200, refuted.body

    answer = await city.report_updates(FULL_ANSWERED)

    authors = [(u["extended_status"], u["author"]) for u in answer.body]
    assert authors[-1] == ("returned", "resident")
    assert {author for _, author in authors[:-1]} == {"city"}


async def test_the_account_history_window_by_window(city: ContractClient) -> None:
    default = await city.reports(account_id=AUTHOR)
    older = await city.reports(
        account_id=AUTHOR,
        start_date="2025-06-01T00:00:00+03:00",
        end_date="2025-08-29T00:00:00+03:00",
    )

    assert FULL_CLOSED_LONG_AGO not in [r["service_request_id"] for r in default.body]
    [found] = older.body
    assert found["service_request_id"] == FULL_CLOSED_LONG_AGO
    assert found["extended_status"] == "closed"


def test_the_ledger_credits_a_request_once() -> None:
    from datetime import UTC, datetime

    from sandbox.media import MediaStore
    from sandbox.open311 import RequestBook
    from sandbox.open311_seed import seed_requests
    from sandbox.points import PointsBook, PointsKind

    now = datetime(2026, 3, 10, 6, 30, tzinfo=UTC)
    book, points = RequestBook(lambda: now, MediaStore()), PointsBook(lambda: now)
    seed_requests(book, now)
    request = book.existing(FULL_ANSWERED)

    credited = [points.credit_report_confirmed(request) for _ in range(2)]

    assert credited == [50, 0]
    assert [e.kind for e in points.entries] == [PointsKind.REPORT_CONFIRMED]
