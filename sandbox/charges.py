"""Finding charges the resident does not have yet: a bill by its UIN, fines by СТС or licence.

Both are deterministic (see city/openapi.yaml) and add what they find to the resident's bills,
so that it shows in `/api/v1/bills` and can be paid; asking again finds the same bill.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta

from aiohttp import web

from domain.uin import UinProblem, check_uin, with_control_digit
from sandbox.common import (
    authenticated_resident,
    bill_json,
    error_response,
    problem_response,
)
from sandbox.data import (
    AMPP,
    FULL,
    GIBDD,
    BillKind,
    BillStatus,
    CityBill,
    CityData,
)
from sandbox.oauth import DATA_KEY

routes = web.RouteTableDef()

# ---------------------------------------------------------------- bill by UIN

FOUND_DIGITS = "0123456"  # uin[-2] (the digit before the control digit); a letter counts as found
NOT_FOUND_DIGITS = "78"
# "9": already paid
LOOKUP_AMOUNTS_RUB = (500, 1000, 1500, 2500, 3000, 5000)  # by uin[-3] mod 6; a letter: the first
LOOKUP_DUE_DAYS = 20

_UIN_PROBLEMS = {
    UinProblem.EMPTY: "uin is required",
    UinProblem.CHARACTERS: "a UIN has digits (and, in old traffic-police UINs, letters) only",
    UinProblem.LENGTH: "a UIN has 20 or 25 characters",
    UinProblem.ZEROS: "a UIN of zeros means 'no UIN'",
    UinProblem.CONTROL: "the UIN's control digit is wrong",
}


@routes.get("/api/v1/bills/lookup")
async def bill_by_uin(request: web.Request) -> web.Response:
    resident = authenticated_resident(request)
    check = check_uin(request.query.get("uin", ""))
    if check.problem is not None:
        return error_response(400, _UIN_PROBLEMS[check.problem])
    data = request.app[DATA_KEY]
    uin = check.uin
    own = data.bill_by_uin(resident.account_id, uin)
    if own is not None:
        return web.json_response({"bill": bill_json(own)})
    someone_elses = any(bill.uin == uin for bill in data.bills)
    rule = uin[-2]
    if someone_elses or rule in NOT_FOUND_DIGITS:
        return error_response(404, f"no charge with UIN {uin}")
    if rule == "9":
        description = f"the charge {uin} is already paid"
        return problem_response(409, description, "already_paid", bill_ids=[])
    bill = data.add_bill(_bill_for_uin(data, resident.account_id, uin))
    return web.json_response({"bill": bill_json(bill)})


def _bill_for_uin(data: CityData, account_id: str, uin: str) -> CityBill:
    if uin.startswith("188"):
        kind, title, provider = BillKind.TRAFFIC_FINE, "Штраф ГИБДД", GIBDD
    elif uin.startswith("0355431"):
        kind, title, provider = BillKind.PARKING_FINE, "Штраф за неоплату парковки", AMPP
    else:
        kind, title, provider = BillKind.OTHER, "Начисление по УИН", "Получатель по данным ГИС ГМП"
    digit = uin[-3]
    rubles = LOOKUP_AMOUNTS_RUB[int(digit) % 6 if digit.isascii() and digit.isdigit() else 0]
    return CityBill(
        id=data.new_bill_id(),
        account_id=account_id,
        kind=kind,
        title=title,
        provider=provider,
        amount=rubles * 100,
        due_date=data.today + timedelta(days=LOOKUP_DUE_DAYS),
        status=BillStatus.UNPAID,
        uin=uin,
    )


# ---------------------------------------------------------------- fines by СТС or licence

STS = re.compile(r"^[0-9]{2}[0-9А-ЯЁ]{2}[0-9]{6}$")  # свидетельство о регистрации ТС
DRIVER_LICENSE = re.compile(r"^[0-9]{10}$")  # водительское удостоверение
_LATIN_LOOKALIKES = str.maketrans("ABEKMHOPCTYX", "АВЕКМНОРСТУХ")

# demo-full's car and licence: their traffic fines are the demo data's.
REGISTERED = {
    ("sts", "77АВ123456"): FULL.account_id,
    ("driver_license", "7701123456"): FULL.account_id,
}

# Fines found for any other number whose last digit is odd (chosen by the last-but-one digit).
_OFFENCES = (
    ("превышение скорости на 20–40 км/ч", 50_000),
    ("проезд на запрещающий сигнал светофора", 100_000),
    ("остановка в запрещённом месте", 300_000),
    ("превышение скорости на 40–60 км/ч", 150_000),
    ("непристёгнутый ремень безопасности", 100_000),
    ("движение по полосе для общественного транспорта", 300_000),
)
FINE_DECIDED_DAYS_AGO = 12
FINE_DAYS_TO_PAY = 70  # from the decision: 10 days to take effect, then 60 days to pay


@dataclass(slots=True)
class FineRegistry:
    """The fines found by number so far: (account, document, number) → bill id (per app)."""

    found: dict[tuple[str, str, str], str] = field(default_factory=dict)


FINES_KEY = web.AppKey("sandbox_fines", FineRegistry)


@routes.get("/api/v1/fines")
async def fines(request: web.Request) -> web.Response:
    resident = authenticated_resident(request)
    given = [name for name in ("sts", "driver_license") if name in request.query]
    if len(given) != 1:
        return error_response(400, "give exactly one of sts and driver_license")
    document = given[0]
    number = _normalized(document, request.query[document])
    if number is None:
        wanted = (
            "10 characters: 2 digits, 2 digits or Cyrillic capitals, 6 digits (77АВ123456)"
            if document == "sts"
            else "10 digits (7701123456)"
        )
        return error_response(400, f"{document} must be {wanted}")
    data = request.app[DATA_KEY]
    if REGISTERED.get((document, number)) == resident.account_id:
        found = [
            bill
            for bill in data.bills_of(resident.account_id, BillStatus.UNPAID)
            if bill.kind is BillKind.TRAFFIC_FINE
        ]
        return web.json_response({"fines": [bill_json(bill) for bill in found]})
    if int(number[-1]) % 2 == 0:
        return web.json_response({"fines": []})
    registry = request.app[FINES_KEY]
    key = (resident.account_id, document, number)
    bill_id = registry.found.get(key)
    bill = data.bill(bill_id) if bill_id is not None else None
    if bill is None:
        bill = data.add_bill(_fine_for(data, resident.account_id, number))
        registry.found[key] = bill.id
    unpaid = [bill] if bill.status is BillStatus.UNPAID else []
    return web.json_response({"fines": [bill_json(fine) for fine in unpaid]})


def _normalized(document: str, raw: str) -> str | None:
    text = "".join(raw.split()).upper()
    if document == "sts":
        text = text.translate(_LATIN_LOOKALIKES)
        return text if STS.match(text) else None
    return text if DRIVER_LICENSE.match(text) and text.isascii() else None


def _fine_for(data: CityData, account_id: str, number: str) -> CityBill:
    offence, amount = _OFFENCES[int(number[-2]) % len(_OFFENCES)]
    decided = data.today - timedelta(days=FINE_DECIDED_DAYS_AGO)
    serial = int(number[-5:])
    uins = {bill.uin for bill in data.bills}
    while (uin := with_control_digit(f"18810177{decided:%y%m%d}{serial:05d}")) in uins:
        serial = (serial + 1) % 100_000
    return CityBill(
        id=data.new_bill_id(),
        account_id=account_id,
        kind=BillKind.TRAFFIC_FINE,
        title=f"Штраф ГИБДД: {offence}",
        provider=GIBDD,
        amount=amount,
        due_date=decided + timedelta(days=FINE_DAYS_TO_PAY),
        status=BillStatus.UNPAID,
        uin=uin,
    )
