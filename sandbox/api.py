"""The sandbox's resident API (`/api/v1/...`) and its demo/test controls (`/sandbox/...`)."""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler

from sandbox.common import authenticated_resident, bill_json, error_response
from sandbox.data import BillStatus
from sandbox.oauth import DATA_KEY, TOKENS_KEY
from sandbox.open311_common import errors_response

FAULT_STATUSES = (500, 502, 503)
MAX_DELAY_SECONDS = 120
MAX_LOST_ANSWERS = 1000
LOST_ANSWER_STATUS = 504
FAULTED_PREFIXES = ("/api/", "/open311/")
MAX_FAULT_PATHS = 20

routes = web.RouteTableDef()


@dataclass(frozen=True, slots=True)
class Faults:
    delay_seconds: float | None = None
    status: int | None = None
    fail_after_processing: int | None = None
    paths: tuple[str, ...] | None = None  # only these path prefixes (None: every faulted path)

    def applies_to(self, path: str) -> bool:
        return self.paths is None or path.startswith(self.paths)

    def to_json(self) -> dict[str, float | int | list[str]]:
        body: dict[str, float | int | list[str]] = {}
        if self.delay_seconds is not None:
            body["delay_seconds"] = self.delay_seconds
        if self.status is not None:
            body["status"] = self.status
        if self.fail_after_processing is not None:
            body["fail_after_processing"] = self.fail_after_processing
        if self.paths is not None:
            body["paths"] = list(self.paths)
        return body


class FaultsHolder:
    """The faults in force for one sandbox instance (replaced as a whole by PUT)."""

    def __init__(self) -> None:
        self.current = Faults()
        self.lost_answers_left = 0  # counts down from `fail_after_processing`

    def replace(self, faults: Faults) -> None:
        self.current = faults
        self.lost_answers_left = faults.fail_after_processing or 0

    def take_lost_answer(self) -> bool:
        """True when this answer is to be lost (and one fewer remains)."""
        if self.lost_answers_left <= 0:
            return False
        self.lost_answers_left -= 1
        return True


FAULTS_KEY = web.AppKey("sandbox_faults", FaultsHolder)


# ---------------------------------------------------------------- faults middleware


@web.middleware
async def faults_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Delay, fail or lose `/api/` and `/open311/` answers; OAuth, pages, photos and sandbox
    controls are unaffected.

    A status fault answers without processing; a lost answer (`fail_after_processing`) comes
    after the request was processed completely, like a gateway timing out on a slow backend.
    Under `/open311/` the error body is the GeoReport v2 error array.
    """
    holder = request.app[FAULTS_KEY]
    faults = holder.current
    if not request.path.startswith(FAULTED_PREFIXES) or not faults.applies_to(request.path):
        return await handler(request)
    if faults.delay_seconds:
        await asyncio.sleep(faults.delay_seconds)
    if faults.status is not None:
        return _fault(request, faults.status, f"sandbox fault: status {faults.status}")
    if not holder.take_lost_answer():
        return await handler(request)
    try:
        await handler(request)
    except web.HTTPException:
        pass  # processed (and refused): the refusal is lost like any other answer
    return _fault(
        request,
        LOST_ANSWER_STATUS,
        "sandbox fault: the request was processed but the answer was lost",
    )


def _fault(request: web.Request, status: int, description: str) -> web.Response:
    if request.path.startswith("/open311/"):
        return errors_response(status, description)
    return error_response(status, description)


# ---------------------------------------------------------------- resident API


@routes.get("/api/v1/profile")
async def profile(request: web.Request) -> web.Response:
    resident = authenticated_resident(request)
    return web.json_response(
        {
            "account_id": resident.account_id,
            "full_name": resident.full_name,
            "account_level": resident.level.value,
        }
    )


@routes.get("/api/v1/bills")
async def bills(request: web.Request) -> web.Response:
    resident = authenticated_resident(request)
    wanted = request.query.get("status", "unpaid")
    if wanted not in ("unpaid", "paid", "all"):
        return error_response(400, f"unknown status {wanted!r}: use unpaid, paid or all")
    status = None if wanted == "all" else BillStatus(wanted)
    chosen = request.app[DATA_KEY].bills_of(resident.account_id, status)
    return web.json_response({"bills": [bill_json(bill) for bill in chosen]})


# ---------------------------------------------------------------- sandbox controls


@routes.get("/sandbox/residents")
async def residents(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "residents": [
                {
                    "login": r.login,
                    "full_name": r.full_name,
                    "account_level": r.level.value,
                    "description": r.description,
                }
                for r in request.app[DATA_KEY].residents
            ]
        }
    )


class _InvalidFaults(ValueError):
    pass


def parse_faults(body: object) -> Faults:
    """Validate a `Faults` object (see the contract); raises _InvalidFaults."""
    if not isinstance(body, dict):
        raise _InvalidFaults("faults must be a JSON object")
    unknown = set(body) - {"delay_seconds", "status", "fail_after_processing", "paths"}
    if unknown:
        raise _InvalidFaults(f"unknown fields: {', '.join(sorted(unknown))}")
    delay = body.get("delay_seconds")
    if delay is not None and not _is_delay(delay):
        raise _InvalidFaults(f"delay_seconds must be a number from 0 to {MAX_DELAY_SECONDS}")
    status = body.get("status")
    if status is not None and (type(status) is not int or status not in FAULT_STATUSES):
        raise _InvalidFaults("status must be one of 500, 502, 503")
    lost = body.get("fail_after_processing")
    if lost is not None and (type(lost) is not int or not 0 <= lost <= MAX_LOST_ANSWERS):
        raise _InvalidFaults(
            f"fail_after_processing must be an integer from 0 to {MAX_LOST_ANSWERS}"
        )
    paths = body.get("paths")
    if paths is not None and not (
        isinstance(paths, list)
        and 1 <= len(paths) <= MAX_FAULT_PATHS
        and all(isinstance(p, str) and p.startswith(FAULTED_PREFIXES) for p in paths)
    ):
        raise _InvalidFaults(
            f"paths must be 1 to {MAX_FAULT_PATHS} prefixes starting with /api/ or /open311/"
        )
    return Faults(
        delay_seconds=delay,
        status=status,
        fail_after_processing=lost,
        paths=None if paths is None else tuple(paths),
    )


def _is_delay(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0 <= value <= MAX_DELAY_SECONDS
    )


@routes.put("/sandbox/faults")
async def put_faults(request: web.Request) -> web.Response:
    try:
        faults = parse_faults(json.loads(await request.text()))
    except json.JSONDecodeError:
        return error_response(400, "the body must be a JSON object")
    except _InvalidFaults as exc:
        return error_response(400, str(exc))
    request.app[FAULTS_KEY].replace(faults)
    return web.json_response(faults.to_json())


@routes.post("/sandbox/tokens/expire")
async def expire_tokens(request: web.Request) -> web.Response:
    return web.json_response({"expired": request.app[TOKENS_KEY].expire_access_tokens()})


@routes.patch("/sandbox/bills/{bill_id}")
async def patch_bill(request: web.Request) -> web.Response:
    """A bill paid elsewhere (`status`) or re-issued with another amount (`amount`)."""
    try:
        body = json.loads(await request.text())
    except json.JSONDecodeError:
        return error_response(400, "the body must be a JSON object")
    if not isinstance(body, dict) or not body:
        return error_response(400, "the body must be a JSON object with status and/or amount")
    unknown = set(body) - {"status", "amount"}
    if unknown:
        return error_response(400, f"unknown fields: {', '.join(sorted(unknown))}")
    status = body.get("status")
    if status is not None and status not in ("paid", "unpaid"):
        return error_response(400, "status must be 'paid' or 'unpaid'")
    amount = body.get("amount")
    if amount is not None and (type(amount) is not int or amount < 1):
        return error_response(400, "amount must be a positive integer (kopecks)")
    try:
        bill = request.app[DATA_KEY].update_bill(
            request.match_info["bill_id"],
            status=None if status is None else BillStatus(status),
            amount=amount,
        )
    except KeyError:
        return error_response(404, f"unknown bill {request.match_info['bill_id']!r}")
    return web.json_response(bill_json(bill))
