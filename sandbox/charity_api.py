"""Charity (mos.ru/blago): fund categories, funds, «Вы помогали» and the funds' report pages.

Donations themselves are payments (`POST /api/v1/payments` with `fund_id`, see payments.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from sandbox.clock import CLOCK_KEY
from sandbox.common import authenticated_resident, error_response, html_response, iso_datetime
from sandbox.funds import (
    CATEGORIES,
    CATEGORY_IDS,
    Fund,
    category_counts,
    fund_by_id,
    funds_in,
)
from sandbox.payments import PaymentBook, PaymentStatus
from sandbox.payments_api import PAYMENTS_KEY
from sandbox.reports import Quarter, latest_quarter, report_exists, report_html, report_path

routes = web.RouteTableDef()


@routes.get("/api/v1/fund-categories")
async def fund_categories(request: web.Request) -> web.Response:
    authenticated_resident(request)
    counts = category_counts()
    categories = [{"id": c.id, "title": c.title, "count": counts[c.id]} for c in CATEGORIES]
    return web.json_response({"categories": categories})


@routes.get("/api/v1/funds")
async def funds(request: web.Request) -> web.Response:
    authenticated_resident(request)
    category = request.query.get("category")
    if category is not None and category not in CATEGORY_IDS:
        known = ", ".join(c.id for c in CATEGORIES)
        return error_response(400, f"unknown category {category!r}: use one of {known}")
    chosen = funds_in(category)
    return web.json_response({"funds": [fund_json(request, fund) for fund in chosen]})


@routes.get("/api/v1/funds/{fund_id}")
async def fund(request: web.Request) -> web.Response:
    authenticated_resident(request)
    found = fund_by_id(request.match_info["fund_id"])
    if found is None:
        return error_response(404, f"no fund {request.match_info['fund_id']!r}")
    return web.json_response(fund_json(request, found))


def fund_json(request: web.Request, fund: Fund) -> dict[str, Any]:
    """The contract's `Fund` (its latest report as of the sandbox's today)."""
    quarter = latest_quarter(request.app[CLOCK_KEY].moscow_today())
    return {
        "id": fund.id,
        "name": fund.name,
        "category": fund.category,
        "summary": fund.summary,
        "description": fund.description,
        "programs": list(fund.programs),
        "report_url": f"{request.url.origin()}{report_path(fund, quarter)}",
        "report_period": quarter.title,
    }


# ---------------------------------------------------------------- «Вы помогали»


@dataclass(slots=True)
class _Helped:
    fund: Fund
    last_amount: int
    last_donated_at: datetime
    total: int = 0
    count: int = 0


def donations_of(book: PaymentBook, account_id: str) -> list[_Helped]:
    """One row per fund the resident gave money to (succeeded payments), newest first."""
    rows: dict[str, _Helped] = {}
    for payment in book.payments.values():  # in creation order
        fund_id = payment.request.fund_id
        if (
            payment.account_id != account_id
            or fund_id is None
            or payment.status is not PaymentStatus.SUCCEEDED
            or payment.receipt is None
        ):
            continue
        fund = fund_by_id(fund_id)
        if fund is None:
            continue
        at = payment.receipt.issued_at
        row = rows.setdefault(fund_id, _Helped(fund, payment.amount, at))
        if at >= row.last_donated_at:
            row.last_amount, row.last_donated_at = payment.amount, at
        row.total += payment.amount
        row.count += 1
    return sorted(rows.values(), key=lambda row: row.last_donated_at, reverse=True)


@routes.get("/api/v1/donations")
async def donations(request: web.Request) -> web.Response:
    resident = authenticated_resident(request)
    rows = donations_of(request.app[PAYMENTS_KEY], resident.account_id)
    return web.json_response(
        {
            "donations": [
                {
                    "fund_id": row.fund.id,
                    "fund_name": row.fund.name,
                    "last_amount": row.last_amount,
                    "last_donated_at": iso_datetime(row.last_donated_at),
                    "total": row.total,
                    "count": row.count,
                }
                for row in rows
            ]
        }
    )


# ---------------------------------------------------------------- report pages


@routes.get("/reports/{fund_id}/{name}.html")
async def report_page(request: web.Request) -> web.Response:
    fund = fund_by_id(request.match_info["fund_id"])
    quarter = Quarter.parse(request.match_info["name"])
    today = request.app[CLOCK_KEY].moscow_today()
    if fund is None or quarter is None or not report_exists(quarter, today):
        body = "<h1>Отчёт не найден</h1><p>Такого отчёта фонда нет.</p>"
        return html_response(404, "Отчёт не найден — песочница", body)
    title = f"{fund.name}: отчёт за {quarter.title} — песочница"
    return html_response(200, title, report_html(fund, quarter))
