"""Payment templates («Шаблоны», as in mos.ru's «Мои платежи»): a payment's settings kept so
the next payment to the same payee is two taps.

A template keeps what the *next* payment needs, never a stale id:

- bills: the service (the bill's kind), the payer code and the provider — paying the template
  pays the bill of that service that is unpaid at the city *now* (next month's ЕПД, with its own
  amount): the one with the payer code, or, for a service the city gives no payer code for (a
  kindergarten, МГТС, a club), the one of the same provider — never another kindergarten's;
- requisites: the payee's requisites and the last amount — only requisites that name no one
  accrual: a receipt with a period or a UIN (a month's ЕПД, a fine) makes no template, since
  its next use would pay that month or that fine again (the purpose names it) without the pay
  step's «Уже оплачено» check recognising it. Next month's receipt is scanned instead;
- a donation: the fund and the last amount;
- any other kind of payable: the payable as it was paid (`Payable.to_json`) and the last
  amount — a new `PayableKind` needs nothing here unless its payee can be checked beforehand
  (one entry in `_CHECKS`).

The pay step is the same as everywhere (`domain.payments.prepare_*`, intents, keys): a template
only builds its `Payable` and amount, after checking that the payee still takes payments (a
fund gone at the platform, a service with no unpaid bill now). Requisites are checked by the
platform itself when paid (its refusal is told by the pay step).

A row this version cannot read (a kind added by a newer release and rolled back, a field
renamed) is a template with `kind` None: listed as unavailable, deletable, never paid.

At most `MAX_TEMPLATES` per resident: the list stays a few screens long (a resident pays a
handful of payees a month; mos.ru's own list is meant the same way) and a forged or scripted
chat cannot grow the table without bound. A template of a payee already kept is replaced, not
added, so saving twice (a double tap, the same fund again) keeps one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from domain.bills import Bill, BillKind, by_due_date
from domain.errors import DomainError, NotFound
from domain.payable import Payable, PayableKind
from domain.payments import IntentStatus
from domain.sessions import ResidentSession
from domain.typed_text import without_invisible

if TYPE_CHECKING:
    from domain.accounts import Resident
    from domain.payments import PaymentIntent
    from domain.ports import City, UnitOfWork

MAX_TEMPLATES = 20
NAME_MAX = 64  # characters of a template's name (plain text, escaped when shown)
# Bills of a service that comes again (the same kinds an autopay by bill pays); a fine or a
# bill found by UIN is paid once, so it makes no template.
TEMPLATE_BILL_KINDS = frozenset({BillKind.EPD, BillKind.MGTS, BillKind.KINDERGARTEN, BillKind.CLUB})


class NameProblem(StrEnum):
    EMPTY = "empty"
    TOO_LONG = "too_long"


def _squash(text: str) -> str:
    """What shows nothing dropped (`typed_text.without_invisible`), every run of white space
    one space, trimmed."""
    return " ".join(without_invisible(text).split())


def clean_name(text: str) -> str | NameProblem:
    """A typed name → the name kept (`_squash`ed); empty or over `NAME_MAX` characters is
    refused, never cut (the resident would not see what was kept)."""
    name = _squash(text)
    if not name:
        return NameProblem.EMPTY
    if len(name) > NAME_MAX:
        return NameProblem.TOO_LONG
    return name


def proposed_name(*parts: str | None) -> str:
    """A name proposed from outside values (a service and payer code, a fund's name, a
    payee): the non-empty parts joined with «, », cleaned and cut with «…» to fit."""
    name = _squash(", ".join(p for p in parts if p and _squash(p)))
    return name if len(name) <= NAME_MAX else name[: NAME_MAX - 1] + "…"


@dataclass(slots=True)
class PaymentTemplate:
    """One resident's template. `target` is JSON: for bills `{"bill_kind", "payer_code",
    "provider"}`, for any other kind the payable (requisites naming no period or UIN).
    `amount` is the last amount paid (kopecks; None for bills, priced by the city each time).
    `display` holds the pay step's display-only values (`fund_name`). `kind` None: a stored
    row this version cannot read (`target` then empty) — shown as unavailable, only deleted."""

    telegram_user_id: int
    name: str
    kind: PayableKind | None
    target: dict[str, Any]
    amount: int | None = None
    display: dict[str, str] = field(default_factory=dict)
    id: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def same_payee(self, other: PaymentTemplate) -> bool:
        return self.kind is other.kind and self.target == other.target

    @property
    def readable(self) -> bool:
        return self.kind is not None

    @property
    def bill_kind(self) -> BillKind | None:
        return BillKind(self.target["bill_kind"]) if self.kind is PayableKind.BILLS else None

    @property
    def payer_code(self) -> str | None:
        code = self.target.get("payer_code") if self.kind is PayableKind.BILLS else None
        return str(code) if code else None

    @property
    def provider(self) -> str | None:
        provider = self.target.get("provider") if self.kind is PayableKind.BILLS else None
        return str(provider) if provider else None


class NotTemplatable(DomainError):
    """This payment makes no template (several bills at once, a fine, a one-off bill)."""


class TemplateUnreadable(DomainError):
    """A stored template this version cannot read: it pays nothing (only «Удалить»)."""


class TooManyTemplates(DomainError):
    """The resident keeps `MAX_TEMPLATES` already."""


class TemplateNotFound(NotFound):
    """Not this resident's template (deleted, forgotten, or a forged id)."""


class NoBillNow(DomainError):
    """The template's service has no unpaid bill at the city now: nothing to pay."""


class PayeeGone(DomainError):
    """The template's payee stopped taking payments (the fund is gone at the platform)."""


def template_target(
    payable: Payable,
    bill_kind: BillKind | None = None,
    payer_code: str | None = None,
    provider: str | None = None,
) -> dict[str, Any]:
    """What a template of this payment keeps. Bills: only one bill of a service that comes
    again (`bill_kind`, `payer_code`, `provider` of the bill just paid; without a payer code
    the provider is what tells the payee, so it is needed). Requisites: only those naming no
    period and no UIN. Anything else raises NotTemplatable."""
    if payable.kind is PayableKind.BILLS:
        if len(payable.bill_ids) != 1 or bill_kind not in TEMPLATE_BILL_KINDS:
            raise NotTemplatable()
        assert bill_kind is not None
        if not payer_code and not (provider and provider.strip()):
            raise NotTemplatable()  # nothing would tell this payee's bill from another's
        return {
            "bill_kind": bill_kind.value,
            "payer_code": payer_code or None,
            "provider": provider or None,
        }
    if payable.kind is PayableKind.REQUISITES:
        assert payable.requisites is not None
        if payable.requisites.period or payable.requisites.uin:
            raise NotTemplatable()  # one accrual: a template would pay it again
    return payable.to_json()


async def save_template(
    uow: UnitOfWork, resident: Resident, template: PaymentTemplate, now: datetime
) -> tuple[PaymentTemplate, bool]:
    """Keep the template (does not commit). A template of the same payee is replaced (its name
    and amount updated): returns (the kept template, whether one was replaced). Raises
    TooManyTemplates when a new one would pass `MAX_TEMPLATES`."""
    template.telegram_user_id = resident.telegram_user_id
    kept = await uow.templates.of_resident(resident.telegram_user_id)
    same = next((t for t in kept if t.same_payee(template)), None)
    if same is not None:
        same.name, same.amount, same.display = template.name, template.amount, template.display
        await uow.templates.save(same, now)
        return same, True
    if len(kept) >= MAX_TEMPLATES:
        raise TooManyTemplates()
    await uow.templates.add(template, now)
    return template, False


async def templates(uow: UnitOfWork, resident: Resident) -> list[PaymentTemplate]:
    return await uow.templates.of_resident(resident.telegram_user_id)


async def template_of(uow: UnitOfWork, resident: Resident, template_id: int) -> PaymentTemplate:
    """The resident's own template; raises TemplateNotFound for any other id."""
    template = await uow.templates.get(resident.telegram_user_id, template_id)
    if template is None:
        raise TemplateNotFound()
    return template


async def rename_template(
    uow: UnitOfWork, resident: Resident, template_id: int, name: str, now: datetime
) -> PaymentTemplate:
    """`name` as cleaned by `clean_name`. Raises TemplateNotFound."""
    template = await template_of(uow, resident, template_id)
    template.name = name
    await uow.templates.save(template, now)
    return template


async def delete_template(uow: UnitOfWork, resident: Resident, template_id: int) -> bool:
    """Whether it was there (a second «Удалить» finds nothing and changes nothing)."""
    return await uow.templates.delete(resident.telegram_user_id, template_id)


async def remember_amount(
    uow: UnitOfWork, resident: Resident, template_id: int, intent: PaymentIntent, now: datetime
) -> None:
    """After a payment from the template succeeded: its amount becomes the template's «last
    amount» (not for bills, priced by the city each time)."""
    if intent.status is not IntentStatus.SUCCEEDED or intent.payable.kind is PayableKind.BILLS:
        return
    template = await uow.templates.get(resident.telegram_user_id, template_id)
    if template is None or template.kind is not intent.payable.kind:
        return
    if template.amount == intent.amount:
        return
    template.amount = intent.amount
    await uow.templates.save(template, now)


@dataclass(frozen=True, slots=True)
class TemplatePayment:
    """What paying a template now means: the payable, the amount (None: the city's, for bills)
    and, for bills, the bill found."""

    payable: Payable
    amount: int | None
    bill: Bill | None = None


_Check = Callable[["UnitOfWork", "City", "Resident", PaymentTemplate], Awaitable[TemplatePayment]]


async def _current_bill(
    uow: UnitOfWork, city: City, resident: Resident, template: PaymentTemplate
) -> TemplatePayment:
    session = ResidentSession(resident, city, uow)
    unpaid = by_due_date(await city.unpaid_bills(session))
    code, provider = template.payer_code, template.provider
    bills = [
        b
        for b in unpaid
        if b.kind == template.bill_kind
        and not b.paid
        # the payer code tells the payee; without one, the provider (never «any of them»)
        and (b.payer_code == code if code else bool(provider) and b.provider == provider)
    ]
    if not bills:
        raise NoBillNow()
    return TemplatePayment(Payable.bills([bills[0].id]), None, bills[0])


async def _open_fund(
    uow: UnitOfWork, city: City, resident: Resident, template: PaymentTemplate
) -> TemplatePayment:
    payable = Payable.from_json(template.target)
    assert payable.fund_id is not None
    try:
        await city.fund(ResidentSession(resident, city, uow), payable.fund_id)
    except NotFound as error:
        raise PayeeGone() from error
    return TemplatePayment(payable, template.amount)


# Kinds whose payee is checked before paying; any other kind is paid as kept.
_CHECKS: dict[PayableKind, _Check] = {
    PayableKind.BILLS: _current_bill,
    PayableKind.DONATION: _open_fund,
}


async def template_payment(
    uow: UnitOfWork, city: City, resident: Resident, template: PaymentTemplate
) -> TemplatePayment:
    """What paying the template means now. Raises TemplateUnreadable, NoBillNow, PayeeGone,
    and the city's errors (CityUnavailable, RelinkRequired)."""
    if template.kind is None:
        raise TemplateUnreadable()
    check = _CHECKS.get(template.kind)
    if check is not None:
        return await check(uow, city, resident, template)
    return TemplatePayment(Payable.from_json(template.target), template.amount)


def readable_target(kind: str, target: Any) -> tuple[PayableKind, dict[str, Any]] | None:
    """A stored (kind, target) as this version reads it, or None when it cannot (an unknown
    kind, a field it does not know, a value of the wrong type)."""
    try:
        payable_kind = PayableKind(kind)
        if not isinstance(target, dict):
            return None
        if payable_kind is PayableKind.BILLS:
            if BillKind(target["bill_kind"]) not in TEMPLATE_BILL_KINDS:
                return None
            if set(target) - {"bill_kind", "payer_code", "provider"}:
                return None
            if not target.get("payer_code") and not target.get("provider"):
                return None  # an old key by service alone: it would pay any payee's bill
        else:
            payable = Payable.from_json(target)
            if payable.kind is not payable_kind:
                return None
            if payable.requisites is not None and (
                payable.requisites.period or payable.requisites.uin
            ):
                return None  # one accrual: never paid again by a template
    except (DomainError, KeyError, TypeError, ValueError, AttributeError):
        return None
    return payable_kind, dict(target)


def templatable(payable: Payable, bill_service: list[str | None] | None = None) -> bool:
    """Whether a payment of `payable` makes a template (`bill_service`: the one bill's kind,
    payer code and provider, for bills)."""
    kind, code, provider = [*(bill_service or []), None, None, None][:3]
    try:
        bill_kind = BillKind(kind) if kind else None
        template_target(payable, bill_kind, code, provider)
    except (NotTemplatable, ValueError):
        return False
    return True
