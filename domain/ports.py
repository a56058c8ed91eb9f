"""What the domain needs from the outside world. Adapters in storage/ and city/ implement these."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from domain.accounts import CityProfile, Resident, TokenSet
    from domain.bills import Bill
    from domain.charity import Fund, FundCategory, PastDonation
    from domain.linking_state import LinkAttempt
    from domain.meters import Meter, SubmittedReading
    from domain.payments import (
        ExternalCharge,
        Payment,
        PaymentIntent,
        PaymentMethod,
        Requisites,
    )
    from domain.points import PointsAccount, Transfer


class CitySession(Protocol):
    """Credentials of one resident for one piece of work; the client refreshes once on 401."""

    @property
    def access_token(self) -> str: ...

    async def refresh(self) -> None: ...


class CityAuth(Protocol):
    """OAuth 2.0 authorization code + PKCE (S256) at the city platform."""

    def authorization_url(self, *, state: str, code_challenge: str) -> str: ...

    async def exchange_code(self, *, code: str, code_verifier: str) -> TokenSet: ...

    async def refresh(self, refresh_token: str) -> TokenSet: ...

    async def revoke(self, token: str) -> None: ...


class CityApi(Protocol):
    async def profile(self, session: CitySession) -> CityProfile: ...

    async def unpaid_bills(self, session: CitySession) -> list[Bill]: ...


class CityPayments(Protocol):
    async def payment_methods(self, session: CitySession) -> list[PaymentMethod]: ...

    async def create_payment(
        self,
        session: CitySession,
        key: str,
        *,
        bill_ids: Sequence[str],
        requisites: Requisites | None,
        amount: int,
        method_id: str | None,
        external: ExternalCharge | None = None,
        fund_id: str | None = None,
    ) -> Payment:
        """Raises BillAlreadyPaid, AmountChanged, NotFound, CityUnavailable."""
        ...

    async def find_payment(self, session: CitySession, key: str) -> Payment | None: ...

    async def payment_history(self, session: CitySession, limit: int) -> list[Payment]: ...

    async def lookup_bill(self, session: CitySession, uin: str) -> Bill:
        """Raises NotFound or BillAlreadyPaid."""
        ...

    async def find_fines(
        self, session: CitySession, *, sts: str | None = None, driver_license: str | None = None
    ) -> list[Bill]: ...


class CityCharity(Protocol):
    """Funds, «Вы помогали», points and meters. Donations are payments with a fund_id."""

    async def fund_categories(self, session: CitySession) -> list[FundCategory]: ...

    async def funds(self, session: CitySession, category: str | None) -> list[Fund]: ...

    async def fund(self, session: CitySession, fund_id: str) -> Fund: ...

    async def donations(self, session: CitySession) -> list[PastDonation]: ...

    async def points(self, session: CitySession, limit: int) -> PointsAccount: ...

    async def transfer_points(
        self, session: CitySession, key: str, fund_id: str, points: int
    ) -> Transfer:
        """Raises InsufficientPoints, NotFound."""
        ...

    async def meters(self, session: CitySession) -> list[Meter]: ...

    async def submit_reading(
        self, session: CitySession, key: str, meter_id: str, value: str
    ) -> SubmittedReading:
        """`value` as the platform reads it: `format_reading(kind, value)`."""
        ...


class ResidentRepository(Protocol):
    async def get(self, telegram_user_id: int) -> Resident | None: ...

    async def save(self, resident: Resident) -> None: ...

    async def delete(self, telegram_user_id: int) -> None: ...


class LinkAttemptRepository(Protocol):
    async def add(self, attempt: LinkAttempt) -> None: ...

    async def by_state(self, state_hash: str) -> LinkAttempt | None: ...

    async def by_nonce(self, nonce_hash: str) -> LinkAttempt | None: ...

    async def save(self, attempt: LinkAttempt) -> None: ...

    async def advance(self, attempt: LinkAttempt, expected_status: str) -> bool:
        """Write the attempt only if its stored status is still `expected_status` (atomic claim)."""
        ...


class PaymentIntentRepository(Protocol):
    async def add(self, intent: PaymentIntent) -> None: ...

    async def get(self, intent_id: int) -> PaymentIntent | None: ...

    async def by_key(self, key: str) -> PaymentIntent | None: ...

    async def save(self, intent: PaymentIntent) -> None: ...

    async def advance(self, intent: PaymentIntent, expected_status: str) -> bool:
        """Write the intent only if its stored status is still `expected_status`."""
        ...

    async def unsettled(self, updated_before: datetime) -> list[PaymentIntent]:
        """Intents left SUBMITTED or PENDING, last touched before the given time."""
        ...

    async def recent(self, telegram_user_id: int, limit: int) -> list[PaymentIntent]: ...


class UnitOfWork(Protocol):
    residents: ResidentRepository
    link_attempts: LinkAttemptRepository
    payment_intents: PaymentIntentRepository

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...


class City(CityAuth, CityApi, CityPayments, CityCharity, Protocol):
    """The whole city platform as one adapter offers it (city/client.py)."""
