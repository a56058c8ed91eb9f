"""Funds' quarterly reports: `/reports/{fund_id}/{YYYY}-Q{n}.html` (fictional, deterministic).

Every fund has a report for each quarter from `FIRST_QUARTER` to the last quarter that ended
before the sandbox's (Moscow) today; the figures are derived from the fund id and the quarter.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from datetime import date
from html import escape

from domain.money import format_rub
from sandbox.funds import Fund

_NAME = re.compile(r"^(?P<year>[0-9]{4})-Q(?P<quarter>[1-4])$")
_ROMAN = ("I", "II", "III", "IV")


@dataclass(frozen=True, slots=True, order=True)
class Quarter:
    year: int
    number: int  # 1..4

    @property
    def name(self) -> str:
        """'2026-Q3': the report page's name."""
        return f"{self.year}-Q{self.number}"

    @property
    def title(self) -> str:
        """'III квартал 2026'."""
        return f"{_ROMAN[self.number - 1]} квартал {self.year}"

    @classmethod
    def parse(cls, name: str) -> Quarter | None:
        match = _NAME.match(name)
        if match is None:
            return None
        return cls(int(match["year"]), int(match["quarter"]))


FIRST_QUARTER = Quarter(2024, 1)


def latest_quarter(today: date) -> Quarter:
    """The last quarter that ended before `today`."""
    number = (today.month - 1) // 3 + 1
    return Quarter(today.year - 1, 4) if number == 1 else Quarter(today.year, number - 1)


def report_path(fund: Fund, quarter: Quarter) -> str:
    return f"/reports/{fund.id}/{quarter.name}.html"


def report_exists(quarter: Quarter, today: date) -> bool:
    return FIRST_QUARTER <= quarter <= latest_quarter(today)


def report_html(fund: Fund, quarter: Quarter) -> str:
    """The report's body (to go into the sandbox page frame)."""
    seed = zlib.crc32(f"{fund.id}:{quarter.name}".encode())
    raised = (400_000 + seed % 4_600_000) * 100  # kopecks, whole rubles
    admin_share = 6 + seed % 9  # percent
    admin = raised * admin_share // 100
    left = raised - admin
    shares = _shares(len(fund.programs), seed)
    spent = [left * share // 100 for share in shares]
    spent[0] += left - sum(spent)
    rows = "".join(
        f"<tr><td>{escape(program)}</td><td>{escape(format_rub(amount))}</td></tr>"
        for program, amount in zip(fund.programs, spent, strict=True)
    )
    return (
        f"<h1>{escape(fund.name)}</h1>"
        f'<p id="report-period" data-period="{quarter.name}">'
        f"Отчёт за {escape(quarter.title)}</p>"
        f"<p>{escape(fund.summary)}.</p>"
        f"<p>Собрано пожертвований: <b>{escape(format_rub(raised))}</b></p>"
        "<table><tr><th>Программа</th><th>Направлено</th></tr>"
        f"{rows}"
        f"<tr><td>Административные расходы ({admin_share}%)</td>"
        f"<td>{escape(format_rub(admin))}</td></tr></table>"
        "<p>Отчёт проверен аудитором фонда. Все данные вымышлены.</p>"
    )


def _shares(count: int, seed: int) -> list[int]:
    """Percentages of the programmes' spending (summing to 100)."""
    if count == 1:
        return [100]
    first = 40 + seed % 21
    if count == 2:
        return [first, 100 - first]
    second = (100 - first) // 2 + seed % 7
    return [first, second, 100 - first - second]
