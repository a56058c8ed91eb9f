"""Seeded demo data of the sandbox: three residents (one per account level) and their bills.

Everything is deterministic and built relative to `today`, so that a demo always has overdue
bills, bills due within three days and later ones. The people, payer codes and UINs are
fictional; the UINs carry valid control digits.

The bills are per app and mutable: a payment marks them paid, a UIN lookup or a fines search
adds new ones, and `/sandbox/bills/{id}` edits them. A bill itself is an immutable value that
is replaced as a whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from enum import StrEnum

from domain.accounts import AccountLevel
from domain.uin import with_control_digit

FIRST_ADDED_BILL_NUMBER = 5001  # bills added at run time are B-5001, B-5002, ...


class BillKind(StrEnum):
    """The platform's bill kinds (`BillKind` in city/openapi.yaml)."""

    EPD = "epd"  # единый платёжный документ (housing and utilities)
    MGTS = "mgts"  # telephone / internet
    KINDERGARTEN = "kindergarten"
    CLUB = "club"
    TRAFFIC_FINE = "traffic_fine"
    PARKING_FINE = "parking_fine"
    OTHER = "other"  # any other charge found by its UIN


class BillStatus(StrEnum):
    UNPAID = "unpaid"
    PAID = "paid"


@dataclass(frozen=True, slots=True)
class DemoResident:
    login: str
    account_id: str
    full_name: str  # surname, given name, patronymic
    level: AccountLevel
    description: str  # one line for the login page


@dataclass(frozen=True, slots=True)
class CityBill:
    id: str
    account_id: str
    kind: BillKind
    title: str
    provider: str
    amount: int  # kopecks
    due_date: date
    status: BillStatus
    uin: str | None = None
    payer_code: str | None = None
    period: str | None = None  # MM.YYYY


@dataclass(slots=True)
class CityData:
    """The residents and the (mutable) bills of one sandbox instance."""

    residents: tuple[DemoResident, ...]
    bills: list[CityBill]
    today: date
    _added: int = field(default=0, repr=False)

    def resident_by_login(self, login: str) -> DemoResident | None:
        return next((r for r in self.residents if r.login == login), None)

    def resident_by_account(self, account_id: str) -> DemoResident | None:
        return next((r for r in self.residents if r.account_id == account_id), None)

    def bills_of(self, account_id: str, status: BillStatus | None = None) -> list[CityBill]:
        """The account's bills (optionally of one status), earliest due first."""
        chosen = [
            bill
            for bill in self.bills
            if bill.account_id == account_id and (status is None or bill.status is status)
        ]
        return sorted(chosen, key=lambda bill: (bill.due_date, bill.id))

    def bill(self, bill_id: str) -> CityBill | None:
        return next((bill for bill in self.bills if bill.id == bill_id), None)

    def bill_by_uin(self, account_id: str, uin: str) -> CityBill | None:
        return next(
            (bill for bill in self.bills if bill.account_id == account_id and bill.uin == uin),
            None,
        )

    def new_bill_id(self) -> str:
        """A fresh id for a bill added at run time (deterministic within one app)."""
        number, self._added = FIRST_ADDED_BILL_NUMBER + self._added, self._added + 1
        return f"B-{number}"

    def add_bill(self, bill: CityBill) -> CityBill:
        if self.bill(bill.id) is not None:
            raise ValueError(f"bill {bill.id} already exists")
        self.bills.append(bill)
        return bill

    def update_bill(
        self, bill_id: str, *, status: BillStatus | None = None, amount: int | None = None
    ) -> CityBill:
        """Replace the bill with a changed copy; KeyError for an unknown bill."""
        index = next((i for i, bill in enumerate(self.bills) if bill.id == bill_id), None)
        if index is None:
            raise KeyError(bill_id)
        bill = self.bills[index]
        updated = replace(
            bill,
            status=bill.status if status is None else status,
            amount=bill.amount if amount is None else amount,
        )
        self.bills[index] = updated
        return updated


SIMPLE = DemoResident(
    login="demo-simple",
    account_id="C-100001",
    full_name="Орлов Денис Андреевич",
    level=AccountLevel.SIMPLE,
    description="Упрощённая учётная запись: только телефон и почта, счетов нет",
)
STANDARD = DemoResident(
    login="demo-standard",
    account_id="C-100002",
    full_name="Кузнецова Елена Викторовна",
    level=AccountLevel.STANDARD,
    description="Стандартная учётная запись: ЕПД, МГТС и штрафы",
)
FULL = DemoResident(
    login="demo-full",
    account_id="C-100003",
    full_name="Воронцова Мария Сергеевна",
    level=AccountLevel.FULL,
    description="Полная учётная запись: счета ЕПД, МГТС, штрафы, детский сад и кружок",
)
RESIDENTS = (SIMPLE, STANDARD, FULL)

GIBDD = "ЦАФАП ГИБДД ГУ МВД России по г. Москве"
AMPP = "ГКУ «Администратор Московского парковочного пространства»"
MGTS = "ПАО «МГТС»"


def build_data(today: date) -> CityData:
    """Fresh demo data (every call builds new, unshared state)."""
    return CityData(
        residents=RESIDENTS, bills=[*_standard_bills(today), *_full_bills(today)], today=today
    )


def _full_bills(today: date) -> list[CityBill]:
    """Twelve unpaid bills of every kind (three pages of five) and two paid ones."""
    acc = FULL.account_id
    payer = "4703159826"
    housing = "ГБУ «Жилищник района Сосновая Роща»"
    return [
        _epd("B-1001", acc, today, -34, 812_450, payer, housing, months_back=2),
        _traffic_fine("B-1002", acc, today, -9, 50_000, "превышение скорости на 20–40 км/ч", 412),
        _mgts("B-1003", acc, today, -2, 89_000, months_back=1),
        _kindergarten("B-1004", acc, today, 1, 346_000),
        _parking_fine("B-1005", acc, today, 2, 500_000, 10_734),
        _club("B-1006", acc, today, 3, 450_000),
        _traffic_fine("B-1007", acc, today, 6, 100_000, "проезд на запрещающий сигнал", 1_587),
        _epd("B-1008", acc, today, 10, 764_318, payer, housing, months_back=1),
        _traffic_fine("B-1009", acc, today, 14, 300_000, "остановка в запрещённом месте", 2_044),
        _mgts("B-1010", acc, today, 18, 89_000, months_back=0),
        _parking_fine("B-1011", acc, today, 25, 500_000, 21_906),
        _traffic_fine(
            "B-1012", acc, today, 30, 150_000, "превышение скорости на 40–60 км/ч", 3_310
        ),
        _epd("B-1013", acc, today, -40, 698_204, payer, housing, months_back=3, paid=True),
        _traffic_fine(
            "B-1014", acc, today, -20, 250_000, "превышение скорости на 60–80 км/ч", 95, paid=True
        ),
    ]


def _standard_bills(today: date) -> list[CityBill]:
    """Four unpaid bills (housing, telephone, two fines) and one paid ЕПД."""
    acc = STANDARD.account_id
    payer = "8215604937"
    housing = "ЕИРЦ «Городской расчётный центр»"
    return [
        _epd("B-2001", acc, today, -5, 623_790, payer, housing, months_back=1),
        _mgts("B-2002", acc, today, 2, 69_000, months_back=1),
        _traffic_fine("B-2003", acc, today, 9, 50_000, "превышение скорости на 20–40 км/ч", 7_251),
        _parking_fine("B-2004", acc, today, 21, 500_000, 48_113),
        _epd("B-2005", acc, today, -35, 587_140, payer, housing, months_back=2, paid=True),
    ]


def _status(paid: bool) -> BillStatus:
    return BillStatus.PAID if paid else BillStatus.UNPAID


def _period(today: date, months_back: int) -> str:
    """'MM.YYYY' of the month `months_back` months before today's."""
    index = today.year * 12 + (today.month - 1) - months_back
    return f"{index % 12 + 1:02d}.{index // 12}"


def _yymmdd(day: date) -> str:
    return day.strftime("%y%m%d")


def _epd(
    bill_id: str,
    account_id: str,
    today: date,
    due_in: int,
    amount: int,
    payer_code: str,
    provider: str,
    *,
    months_back: int,
    paid: bool = False,
) -> CityBill:
    period = _period(today, months_back)
    return CityBill(
        id=bill_id,
        account_id=account_id,
        kind=BillKind.EPD,
        title=f"ЕПД за {period}",
        provider=provider,
        amount=amount,
        due_date=today + timedelta(days=due_in),
        status=_status(paid),
        payer_code=payer_code,
        period=period,
    )


def _mgts(
    bill_id: str, account_id: str, today: date, due_in: int, amount: int, *, months_back: int
) -> CityBill:
    return CityBill(
        id=bill_id,
        account_id=account_id,
        kind=BillKind.MGTS,
        title="Домашний телефон и интернет",
        provider=MGTS,
        amount=amount,
        due_date=today + timedelta(days=due_in),
        status=BillStatus.UNPAID,
        period=_period(today, months_back),
    )


def _kindergarten(bill_id: str, account_id: str, today: date, due_in: int, amount: int) -> CityBill:
    due = today + timedelta(days=due_in)
    return CityBill(
        id=bill_id,
        account_id=account_id,
        kind=BillKind.KINDERGARTEN,
        title="Родительская плата за детский сад",
        provider="ГБОУ «Школа № 1811», дошкольное отделение",
        amount=amount,
        due_date=due,
        status=BillStatus.UNPAID,
        uin=with_control_digit(f"0349347501{_yymmdd(due - timedelta(days=10))}00118110"),
        period=_period(today, 0),
    )


def _club(bill_id: str, account_id: str, today: date, due_in: int, amount: int) -> CityBill:
    due = today + timedelta(days=due_in)
    return CityBill(
        id=bill_id,
        account_id=account_id,
        kind=BillKind.CLUB,
        title="Кружок «Робототехника»",
        provider="ГБУ ДО «Дом творчества „Радуга“»",
        amount=amount,
        due_date=due,
        status=BillStatus.UNPAID,
        uin=with_control_digit(f"0349347502{_yymmdd(due - timedelta(days=7))}00420315"),
        period=_period(today, 0),
    )


def _traffic_fine(
    bill_id: str,
    account_id: str,
    today: date,
    due_in: int,
    amount: int,
    offence: str,
    serial: int,
    *,
    paid: bool = False,
) -> CityBill:
    """A camera-recorded fine: 20-character UIN 18810177 + decision date + serial."""
    due = today + timedelta(days=due_in)
    decided = due - timedelta(days=70)  # 10 days to take effect, then 60 days to pay
    return CityBill(
        id=bill_id,
        account_id=account_id,
        kind=BillKind.TRAFFIC_FINE,
        title=f"Штраф ГИБДД: {offence}",
        provider=GIBDD,
        amount=amount,
        due_date=due,
        status=_status(paid),
        uin=with_control_digit(f"18810177{_yymmdd(decided)}{serial:05d}"),
    )


def _parking_fine(
    bill_id: str, account_id: str, today: date, due_in: int, amount: int, serial: int
) -> CityBill:
    """An unpaid-parking fine: 25-digit UIN 0355431010 + decision date + serial."""
    due = today + timedelta(days=due_in)
    decided = due - timedelta(days=70)
    return CityBill(
        id=bill_id,
        account_id=account_id,
        kind=BillKind.PARKING_FINE,
        title="Штраф за неоплату парковки",
        provider=AMPP,
        amount=amount,
        due_date=due,
        status=BillStatus.UNPAID,
        uin=with_control_digit(f"0355431010{_yymmdd(decided)}{serial:08d}"),
    )
