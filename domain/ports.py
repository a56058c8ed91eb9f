"""What the domain needs from the outside world. Adapters in storage/ and city/ implement these."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self

if TYPE_CHECKING:
    from domain.accounts import CityProfile, Resident, TokenSet
    from domain.autopay import Autopay, AutopayRun
    from domain.bills import Bill
    from domain.boundary import Boundary
    from domain.charity import Fund, FundCategory, PastDonation
    from domain.linking_state import LinkAttempt
    from domain.meters import Meter, SubmittedReading
    from domain.payable import Payable
    from domain.payments import ExternalCharge, Payment, PaymentIntent, PaymentMethod
    from domain.points import PointsAccount, Transfer
    from domain.prizes import OwnedPrize, Prize, PrizeCategory, PrizeExchange
    from domain.quiet_hours import QuietHours
    from domain.reports import Draft, Point, Report, ReportUpdate, Theme, ThemeQuestion
    from domain.templates import PaymentTemplate
    from domain.topups import AccountBalance, ServiceInfo, TopupService


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

    async def paid_bills(self, session: CitySession) -> list[Bill]:
        """The resident's bills the city has as paid (by any road)."""
        ...


class CityPayments(Protocol):
    async def payment_methods(self, session: CitySession) -> list[PaymentMethod]: ...

    async def create_payment(
        self,
        session: CitySession,
        key: str,
        *,
        payable: Payable,
        amount: int,
        method_id: str | None,
        external: ExternalCharge | None = None,
    ) -> Payment:
        """Charge `amount` kopecks for exactly `payable` under the idempotency `key`.

        Raises BillAlreadyPaid, AmountChanged, PaymentRefused (the city refused the request:
        4xx with its reason, nothing charged), NotFound, CityUnavailable (no answer: the
        outcome is unknown and is found later by the key)."""
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

    async def correct_reading(
        self, session: CitySession, key: str, meter_id: str, value: str
    ) -> SubmittedReading:
        """Replace this period's reading (`"correction": true`); no points are credited.
        Raises WindowClosed, NothingToCorrect, ReadingBelowPrevious, NotFound."""
        ...


@dataclass(frozen=True, slots=True)
class Place:
    address: str
    point: Point


class CityReports(Protocol):
    """«Наш город» over Open311 GeoReport v2 (+ the platform's extensions) and its gazetteer."""

    async def themes(self) -> list[Theme]: ...

    async def boundary(self, session: CitySession) -> Boundary: ...

    async def nearest_address(
        self, session: CitySession, point: Point, within_m: float
    ) -> Place | None: ...

    async def search_address(self, session: CitySession, query: str) -> list[Place]: ...

    async def reverse_geocode(self, session: CitySession, point: Point) -> str | None: ...

    async def upload_media(self, data: bytes, content_type: str) -> str: ...

    async def service_definition(self, theme_code: str) -> list[ThemeQuestion]: ...

    async def create_report(
        self,
        account_id: str,
        draft: Draft,
        media_urls: list[str],
        attributes: dict[str, list[str]],
        key: str,
    ) -> str:
        """POST requests.json once per `key` (Idempotence-Key): a repeat gets the same id."""
        ...

    async def report(self, report_id: str) -> Report: ...

    async def reports_of(self, account_id: str, *, recent: bool = False) -> list[Report]:
        """The account's requests, newest first: about a year of them, or with `recent` the
        platform's default window (its last 90 days) in one request."""
        ...

    async def nearby_open(self, theme_code: str, point: Point, radius_m: int) -> list[Report]: ...

    async def report_updates(self, report_id: str) -> list[ReportUpdate]: ...

    async def confirm_report(self, report_id: str, account_id: str) -> Report: ...

    async def refute_report(
        self, report_id: str, account_id: str, description: str, media_url: str | None
    ) -> Report: ...


class ResidentRepository(Protocol):
    async def get(self, telegram_user_id: int) -> Resident | None: ...

    async def get_many(self, telegram_user_ids: Sequence[int]) -> dict[int, Resident]:
        """The linked residents among these users, by user id (one statement)."""
        ...

    async def save(self, resident: Resident) -> None: ...

    async def accounts(self, after: int, limit: int) -> list[tuple[int, str]]:
        """(Telegram user id, city account id) of linked residents with a user id above
        `after`, in that order."""
        ...

    async def delete(self, telegram_user_id: int) -> None: ...

    async def lock(self, telegram_user_id: int, *, writing: bool = False) -> None:
        """Lock the resident's row until the transaction ends (FOR UPDATE on PostgreSQL):
        one of their set-ups at a time. No row: nothing. On SQLite only with `writing` (the
        database's write lock; for a caller that commits at once, never an update's
        transaction: its dialog state is written on another connection)."""
        ...


class LinkAttemptRepository(Protocol):
    async def add(self, attempt: LinkAttempt) -> None: ...

    async def by_state(self, state_hash: str) -> LinkAttempt | None: ...

    async def by_nonce(self, nonce_hash: str) -> LinkAttempt | None: ...

    async def save(self, attempt: LinkAttempt) -> None: ...

    async def advance(self, attempt: LinkAttempt, expected_status: str) -> bool:
        """Write the attempt only if its stored status is still `expected_status` (atomic claim)."""
        ...

    async def delete_expired(self, before: datetime) -> list[TokenSet]:
        """Delete attempts expired before `before`; the tokens they still held, to revoke."""
        ...

    async def forget(self, telegram_user_id: int) -> list[TokenSet]:
        """Delete every attempt of this user; the tokens they still held, to revoke."""
        ...


class PaymentIntentRepository(Protocol):
    async def add(self, intent: PaymentIntent) -> None: ...

    async def get(self, intent_id: int) -> PaymentIntent | None: ...

    async def by_key(self, key: str) -> PaymentIntent | None: ...

    async def save(self, intent: PaymentIntent) -> None: ...

    async def advance(self, intent: PaymentIntent, expected_status: str) -> bool:
        """Write the intent only if its stored status is still `expected_status`."""
        ...

    async def retire(self, intent_id: int, reason: str, now: datetime) -> bool:
        """NEW → FAILED(`reason`) only while NEW with no outside charge; nothing else written."""
        ...

    async def attach_external_charge(self, intent_id: int, charge_id: str, now: datetime) -> None:
        """Record an outside charge id on the intent (whatever its status) unless one is."""
        ...

    async def unsettled(self, updated_before: datetime) -> list[PaymentIntent]:
        """Intents left SUBMITTED or PENDING, last touched before the given time."""
        ...

    async def recent(self, telegram_user_id: int, limit: int) -> list[PaymentIntent]: ...

    async def open_of(self, telegram_user_id: int) -> list[PaymentIntent]:
        """SUBMITTED or PENDING intents, and NEW ones holding a Telegram charge."""
        ...

    async def anonymise(self, telegram_user_id: int) -> int:
        """Unlinking: intents that charged nothing are deleted, the others kept as accounting
        records without the person (user, card, payer code). Returns how many were kept."""
        ...


class DraftRepository(Protocol):
    async def get(self, telegram_user_id: int) -> Draft | None: ...

    async def save(self, telegram_user_id: int, draft: Draft, now: datetime) -> None: ...

    async def delete(self, telegram_user_id: int) -> None: ...

    async def touch(self, telegram_user_id: int, now: datetime) -> None:
        """The draft counts as written at `now` (the resident came back to it); none: nothing."""
        ...

    async def purge_stale(self, before: datetime) -> int:
        """Drafts not written (nor come back to) since `before` deleted; returns how many."""
        ...


@dataclass(slots=True)
class TrackedReport:
    """A report whose changes the resident hears about (their own, or one they follow)."""

    telegram_user_id: int
    report_id: str
    last_update_id: str | None = None
    closed: bool = False
    own: bool = True
    checked_at: datetime | None = None  # when the status poll last asked (None: not stored)
    draft_id: str | None = None  # the draft whose send made it (`Draft.draft_id`), if one did


class TrackedReportRepository(Protocol):
    async def track(self, report: TrackedReport, now: datetime) -> None:
        """Start following; following twice changes nothing."""
        ...

    async def claim_for_poll(self, now: datetime, limit: int) -> list[TrackedReport]:
        """Up to `limit` open reports least recently checked, stamped as checked at `now`
        (each returned with its previous `checked_at`); another poller takes other ones."""
        ...

    async def give_back(self, reports: list[TrackedReport]) -> None:
        """Claimed but not asked about: their previous `checked_at` is restored."""
        ...

    async def of_resident(self, telegram_user_id: int) -> list[TrackedReport]: ...

    async def get(self, telegram_user_id: int, report_id: str) -> TrackedReport | None: ...

    async def made_by_draft(self, telegram_user_id: int, draft_id: str) -> TrackedReport | None:
        """The report the resident's send of draft `draft_id` made, if it is followed."""
        ...

    async def save(self, report: TrackedReport) -> None: ...

    async def forget(self, telegram_user_id: int) -> None: ...


@dataclass(frozen=True, slots=True)
class Notification:
    telegram_user_id: int
    kind: str
    data: dict[str, object]
    dedupe_key: str
    urgent: bool = False
    id: int | None = None
    attempts: int = 0
    # Written to go out later (not before this moment); None: due when written.
    due_at: datetime | None = None


class NotificationRepository(Protocol):
    """The outbox: written in the same transaction as the event that causes it."""

    async def add_once(self, notification: Notification, now: datetime) -> bool:
        """False when a notification with the same dedupe key already exists. Due at `now`,
        or at `notification.due_at` when that is later (then it counts as written then)."""
        ...

    async def add_all_once(self, notifications: Sequence[Notification], now: datetime) -> int:
        """`add_once` for many in one statement; returns how many were new."""
        ...

    async def existing(self, dedupe_keys: list[str]) -> set[str]:
        """Which of these dedupe keys are taken (written before, sent or not)."""
        ...

    async def claim(
        self, now: datetime, limit: int, urgent_only: bool = False
    ) -> list[Notification]:
        """Take due notifications for sending; another sender will not get the same ones."""
        ...

    async def fail_all(self, telegram_user_id: int) -> None: ...

    async def fail_waiting(self, kinds: frozenset[str]) -> int:
        """Waiting rows of `kinds` (not being sent) fail for good; how many (support off)."""
        ...

    async def readdress(self, kinds: frozenset[str], chat_id: int, thread_id: int) -> int:
        """Waiting rows of `kinds` addressed to another chat go to forum topic `thread_id` of
        `chat_id` instead (the support chat moved); how many."""
        ...

    async def hold_written_in(
        self, telegram_user_id: int, quiet: QuietHours, now: datetime
    ) -> None:
        """The resident leaves these quiet hours: what they held stays held (one digest)."""
        ...

    async def sent(self, notification_id: int, message_id: int | None, now: datetime) -> None: ...

    async def retry(self, notification_id: int, at: datetime, failed: bool) -> None: ...

    async def forget(self, telegram_user_id: int) -> None:
        """Delete every notification to this user, waiting or sent."""
        ...

    async def purge_finished(self, before: datetime) -> int:
        """Delete notifications sent before `before`, and those given up (failed) last due
        before it; how many."""
        ...


class AutopayRepository(Protocol):
    async def add(self, autopay: Autopay, now: datetime) -> None: ...

    async def get(self, autopay_id: int) -> Autopay | None: ...

    async def of_resident(self, telegram_user_id: int) -> list[Autopay]: ...

    async def save(self, autopay: Autopay) -> None: ...

    async def claim_due(self, now: datetime, limit: int) -> list[Autopay]:
        """Lease up to `limit` active autopays due at `now` and not leased by anyone (or whose
        lease has expired), oldest due first (next_due_at, id), in ONE statement; they are
        returned in that order. The lease lasts a few minutes from `now` (storage decides), so
        a scheduler that dies keeps it until it expires. The caller commits at once."""
        ...

    async def release(self, autopay_ids: Sequence[int], claimed_at: datetime | None = None) -> None:
        """End the lease of these autopays, in the caller's transaction (one statement). With
        `claimed_at` (the `now` given to `claim_due`), only the leases that claim took."""
        ...

    async def lock(self, autopay_id: int, claimed_at: datetime | None = None) -> Autopay | None:
        """The autopay as stored now, its row locked until the transaction ends (one
        statement). None if there is none — or, with `claimed_at` (the `now` given to
        `claim_due`), if that claim's lease has ended and someone else claimed it since."""
        ...

    async def lock_many(
        self, autopay_ids: Sequence[int], claimed_at: datetime | None = None
    ) -> dict[int, Autopay]:
        """`lock` for many in ONE statement, rows locked in id order: the autopays as stored
        now, by id, without those missing or (with `claimed_at`) leased by another claim."""
        ...

    async def save_progress_many(
        self, autopays: Sequence[Autopay], claims: Mapping[int, datetime] | None = None
    ) -> None:
        """`save_progress` (not paused) for many, sent once (one executemany); with `claims`
        (by autopay id, the `now` given to `claim_due`), that claim's lease ends too, as
        `release` would, on every autopay written (not on a DELETED one)."""
        ...

    async def runs_for(
        self,
        periods: Sequence[tuple[int, str, str]],
        now: datetime,
        *,
        first_amounts: Mapping[int, int] | None = None,
    ) -> tuple[dict[int, AutopayRun], set[int]]:
        """`run_for` for many (autopay id, period, first key): the runs by autopay id, created
        where missing, and the ids of those created (one statement, one more when some were
        there). With `first_amounts` (kopecks, by autopay id) a run created is its first
        attempt: attempts 1, that amount, the key on record."""
        ...

    async def save_runs(self, runs: Sequence[AutopayRun], now: datetime) -> None:
        """`save_run` for many, sent once (one executemany), unconditionally: the caller
        read these runs under their autopays' locks in this transaction (`runs_for`,
        `lock_runs`), so nobody wrote them since. The copies' `stored` versions are left as
        they were: the caller marks them (`AutopayRun.as_stored`) once the transaction
        commits — a record rolled back and tried again must still match the store."""
        ...

    async def save_progress(self, autopay: Autopay, *, paused: bool = False) -> None:
        """Write only what a charge run decides (one statement): the schedule's progress
        (`next_due_at`, `skip_period`, `retry_period`, `unanswered`) and, with `paused`, its
        `status` and `paused_reason` if the stored autopay is still ACTIVE. A DELETED autopay
        is left as it is; amount, limit, card, payer code and schedule stay as stored."""
        ...

    async def reminders_due(self, start: datetime, end: datetime, limit: int) -> list[Autopay]:
        """Up to `limit` active autopays due in [start, end), not yet reminded for that due
        moment and not being tried again."""
        ...

    async def finished_periods(self, periods: Sequence[tuple[int, str]]) -> set[tuple[int, str]]:
        """Which of these (autopay id, period) pairs have a run that is done for good
        (SUCCEEDED, SKIPPED, OVER_LIMIT: the job charges that period no more). One SELECT."""
        ...

    async def remind(
        self, autopays: list[Autopay], reminders: list[Notification], now: datetime
    ) -> int:
        """The reminders written (a dedupe key already there is skipped) and the autopays
        marked reminded for their due moment, one statement each. Returns the new ones."""
        ...

    async def run_for(
        self, autopay_id: int, period: str, key: str, now: datetime
    ) -> AutopayRun: ...

    async def save_run(self, run: AutopayRun, now: datetime) -> bool:
        """The run's values written over the version it was read as (`AutopayRun.stored`;
        None: whatever is stored), one statement. Returns False, writing nothing, when the
        stored run is no longer that version (another writer recorded it meanwhile)."""
        ...

    async def lock_runs(self, run_ids: Sequence[int]) -> dict[int, AutopayRun]:
        """The runs as stored now, by id, their rows locked until the transaction ends (one
        statement), for a job already holding their autopays' locks."""
        ...

    async def run_of(self, autopay_id: int, period: str) -> AutopayRun | None:
        """The run of this period if there is one (nothing is created)."""
        ...

    async def runs(self, autopay_id: int) -> list[AutopayRun]: ...

    async def started_runs(
        self,
        now: datetime,
        updated_before: datetime | None,
        telegram_user_id: int | None = None,
        *,
        updated_after: datetime | None = None,
        leased_too: bool = False,
    ) -> list[tuple[Autopay, AutopayRun]]:
        """Runs STARTED with a key recorded (attempts ≥ 1), last written before
        `updated_before` and after `updated_after` (None: whenever), of autopays not leased
        at `now` (`leased_too`: leased or not), each with its
        autopay as stored: of one resident, else of every linked one. One statement, oldest
        run first."""
        ...

    async def lock_started(
        self,
        autopay_id: int,
        run_id: int,
        now: datetime,
        updated_before: datetime | None,
        *,
        leased_too: bool = False,
    ) -> tuple[Autopay, AutopayRun] | None:
        """The autopay's row locked, then its run's, until the transaction ends: both as
        stored now — None if either is gone, the autopay is leased at `now` (unless
        `leased_too`), or the run was written since `updated_before` (None: not asked)."""
        ...

    async def forget(self, telegram_user_id: int) -> None:
        """Every autopay of the user DELETED and anonymous (runs keep what was charged)."""
        ...


class KnownBillRepository(Protocol):
    """What bill discovery has seen per resident, and bills queued for an on-issue autopay."""

    async def watched(self, telegram_user_id: int, *, lock: bool = False) -> bool:
        """Whether the resident's bills were scanned before (the baseline is taken); with
        `lock`, its mark is held until the transaction ends (an unlinking waits)."""
        ...

    async def watch(self, telegram_user_id: int, now: datetime) -> None: ...

    async def add(self, telegram_user_id: int, bill_ids: Sequence[str], now: datetime) -> set[str]:
        """Record the bills as seen (one statement, a second writer does nothing); returns
        those this call recorded first."""
        ...

    async def queue(self, telegram_user_id: int, bill_id: str, autopay_id: int) -> None: ...

    async def next_queued(self, autopay_id: int) -> str | None:
        """The oldest bill queued for the autopay, taken off the queue (the caller holds the
        autopay's row lock)."""
        ...

    async def queued(self, autopay_id: int) -> list[str]:
        """The bills waiting for the autopay, oldest first (the caller holds its row lock)."""
        ...

    async def unqueue(self, autopay_id: int, bill_id: str) -> None:
        """The bill no longer waits for the autopay (the resident pays it themselves)."""
        ...

    async def drop_queue(self, autopay_id: int) -> None: ...

    async def forget(self, telegram_user_id: int) -> None: ...


class NotificationSettings(Protocol):
    async def muted(self, telegram_user_id: int) -> set[str]: ...

    async def set_muted(self, telegram_user_id: int, kinds: set[str]) -> None: ...

    async def quiet_hours(self, telegram_user_id: int) -> QuietHours:
        """The resident's quiet hours (22:00–09:00 until they set others)."""
        ...

    async def set_quiet_hours(self, telegram_user_id: int, quiet: QuietHours) -> None: ...

    async def forget(self, telegram_user_id: int) -> None: ...


class TemplateRepository(Protocol):
    """Payment templates («Шаблоны»), each read and changed only by its own resident."""

    async def add(self, template: PaymentTemplate, now: datetime) -> None: ...

    async def get(self, telegram_user_id: int, template_id: int) -> PaymentTemplate | None: ...

    async def of_resident(self, telegram_user_id: int) -> list[PaymentTemplate]: ...

    async def save(self, template: PaymentTemplate, now: datetime) -> None: ...

    async def delete(self, telegram_user_id: int, template_id: int) -> bool: ...

    async def forget(self, telegram_user_id: int) -> None:
        """Unlinking: every template of the resident is deleted."""
        ...


class UnitOfWork(Protocol):
    """One transaction and its repositories. The repositories are read-only members, so an
    adapter may offer its own (narrower) repository classes; `storage/uow.py` checks that
    `SqlUnitOfWork` is one."""

    @property
    def residents(self) -> ResidentRepository: ...

    @property
    def link_attempts(self) -> LinkAttemptRepository: ...

    @property
    def payment_intents(self) -> PaymentIntentRepository: ...

    @property
    def drafts(self) -> DraftRepository: ...

    @property
    def tracked_reports(self) -> TrackedReportRepository: ...

    @property
    def notifications(self) -> NotificationRepository: ...

    @property
    def autopays(self) -> AutopayRepository: ...

    @property
    def notification_settings(self) -> NotificationSettings: ...

    @property
    def known_bills(self) -> KnownBillRepository: ...

    @property
    def support(self) -> SupportRepository: ...

    @property
    def templates(self) -> TemplateRepository: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    """Opens a fresh unit of work (its own transaction and connection) each call: work done
    concurrently, such as the autopay run's charges, gets one each."""

    def __call__(self) -> UnitOfWork: ...


class CityPrizes(Protocol):
    """Prizes for points («Миллион призов»): the catalogue, the exchange, «Мои призы»."""

    async def prizes(self, session: CitySession, category: PrizeCategory | None) -> list[Prize]: ...

    async def prize(self, session: CitySession, prize_id: str) -> Prize:
        """Raises NotFound."""
        ...

    async def exchange_prize(
        self, session: CitySession, key: str, prize_id: str, price: int
    ) -> PrizeExchange:
        """Once per `key` (Idempotence-Key). Raises InsufficientPoints, PrizeOutOfStock,
        PriceChanged, NotFound, CityUnavailable."""
        ...

    async def my_prizes(self, session: CitySession) -> list[OwnedPrize]: ...


class CityTopups(Protocol):
    """«Пополнить»: the services that take top-ups and an account's balance (domain/topups.py);
    the top-up itself is a payment (`CityPayments.create_payment` with a TOPUP payable)."""

    async def topup_services(self, session: CitySession) -> list[ServiceInfo]: ...

    async def topup_balance(
        self, session: CitySession, service: TopupService, account: str
    ) -> AccountBalance:
        """Raises UnknownTopupAccount, TopupRefused."""
        ...


class City(
    CityAuth, CityApi, CityPayments, CityCharity, CityReports, CityPrizes, CityTopups, Protocol
):
    """The whole city platform as one adapter offers it (city/client.py)."""


@dataclass(slots=True)
class SupportTopic:
    """A resident's own topic in the support supergroup. `id` is the internal number staff
    see in the topic's name and give to /resident; it says nothing about the resident."""

    id: int
    chat_id: int
    telegram_user_id: int
    thread_id: int | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Dashboard:
    """The «Dashboard» topic of the support supergroup: events staff must act on."""

    chat_id: int
    thread_id: int


@dataclass(frozen=True, slots=True)
class SupportStats:
    linked_residents: int
    payments_today: int
    paid_today: int  # kopecks
    reports_today: int
    failed_notifications: int


@dataclass(frozen=True, slots=True)
class DayFigures:
    """One day for the staff digest (counts and kopecks; nobody in particular)."""

    links: int
    payments: int
    paid: int
    donations: int
    donated: int
    reports: int
    failures: int


class SupportRepository(Protocol):
    async def day_figures(self, start: datetime, end: datetime) -> DayFigures: ...

    async def platform_changed(self, reachable: bool, now: datetime) -> bool:
        """Record the platform's state; True only for the one caller that changed it."""
        ...

    async def unanswered_payments(self, since: datetime) -> int:
        """Payments the platform never answered (left submitted, or closed as not submitted)."""
        ...

    async def topic_of(self, chat_id: int, telegram_user_id: int, now: datetime) -> SupportTopic:
        """The resident's topic in this chat; made on first contact (without a thread yet)."""
        ...

    async def by_thread(self, chat_id: int, thread_id: int) -> SupportTopic | None: ...

    async def get(self, topic_id: int) -> SupportTopic | None: ...

    async def set_thread(self, topic_id: int, thread_id: int, name: str, now: datetime) -> None: ...

    async def forget(self, telegram_user_id: int) -> list[SupportTopic]:
        """Delete the user's topics (the mapping); returns them, to make their names neutral."""
        ...

    async def dashboard(self) -> Dashboard | None: ...

    async def keep_dashboard(self, chat_id: int | None) -> None:
        """Forget the dashboards of every other chat (None: of all chats)."""
        ...

    async def add_dashboard(self, dashboard: Dashboard, now: datetime) -> Dashboard:
        """Store it unless the chat has one already; returns the stored one."""
        ...

    async def stats(self, since: datetime) -> SupportStats: ...

    async def counts(self, telegram_user_id: int) -> tuple[int, int]:
        """(own reports, autopays) of a resident."""
        ...
