"""SQLAlchemy models. The domain never sees these; repositories map them to domain objects."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from storage.types import BigId, UtcDateTime

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class ResidentRow(Base):
    """A linked resident. Tokens are encrypted (Fernet); no full name, phone or address."""

    __tablename__ = "residents"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    telegram_user_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    city_account_id: Mapped[str] = mapped_column(Text, index=True)  # the platform's: no limit
    account_level: Mapped[str] = mapped_column(String(16))
    masked_name: Mapped[str] = mapped_column(Text)  # «Мария И.»: a first name has no limit
    access_token_enc: Mapped[bytes] = mapped_column(LargeBinary)
    refresh_token_enc: Mapped[bytes] = mapped_column(LargeBinary)
    token_expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    locale: Mapped[str] = mapped_column(String(8), default="ru")
    linked_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class LinkAttemptRow(Base):
    """One OAuth login attempt. States and nonces are stored as hashes; tokens encrypted."""

    __tablename__ = "link_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    state_hash: Mapped[str] = mapped_column(String(64), unique=True)
    nonce_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    telegram_user_id: Mapped[int] = mapped_column(BigInteger, index=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    code_verifier: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    secret_enc: Mapped[bytes | None] = mapped_column(LargeBinary)  # tokens + profile, encrypted
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class FsmRow(Base):
    """aiogram FSM and aiogram-dialog state for the embedded (no Redis) mode."""

    __tablename__ = "fsm_state"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    state: Mapped[str | None] = mapped_column(String(255))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # indexed for the retention purge (`SqlStorage.purge_stale`), which reads by age
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class PaymentIntentRow(Base):
    """A payment the resident confirmed, stored before the platform is asked to charge.

    `key` is the Idempotence-Key of every call for it: the platform charges a key once."""

    __tablename__ = "payment_intents"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    telegram_user_id: Mapped[int] = mapped_column(BigInteger, index=True)
    bill_ids: Mapped[list[str]] = mapped_column(JSON)
    requisites: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    amount: Mapped[int] = mapped_column(BigInteger)
    # The platform's ids and refusal reasons have no length limit in the contract: Text.
    method_id: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True)
    payment_id: Mapped[str | None] = mapped_column(Text)
    failure: Mapped[str | None] = mapped_column(Text)
    confirmation_url: Mapped[str | None] = mapped_column(String(512))
    card_last4: Mapped[str | None] = mapped_column(String(4))
    external_charge_id: Mapped[str | None] = mapped_column(String(128))
    fund_id: Mapped[str | None] = mapped_column(Text)
    receipt: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    topup: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # {"service", "account"}
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class ReportDraftRow(Base):
    """A «Наш город» report being written: survives restarts and /start."""

    __tablename__ = "report_drafts"

    telegram_user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class TrackedReportRow(Base):
    __tablename__ = "tracked_reports"
    __table_args__ = (UniqueConstraint("telegram_user_id", "report_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    telegram_user_id: Mapped[int] = mapped_column(BigInteger, index=True)
    report_id: Mapped[str] = mapped_column(String(64), index=True)
    last_update_id: Mapped[str | None] = mapped_column(String(64))
    closed: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    own: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # When the status poll last asked the city (or, until then, when following began): the
    # poll takes the open reports least recently checked, so every one comes round in turn.
    checked_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # The draft whose send made this report (`Draft.draft_id`; None: followed, adopted, or
    # sent before it was kept): a screen left on that draft is told this report's number.
    draft_id: Mapped[str | None] = mapped_column(String(32))


# The status poll's order over open reports (a partial index: closed ones are never polled).
# Queries use OPEN_REPORT itself: SQLite proves a partial index usable only from the same terms
# (SQLAlchemy would render `~closed` there as `closed = ?`, which the planner cannot match).
OPEN_REPORT = text("NOT closed")
Index(
    "ix_tracked_reports_open_checked",
    TrackedReportRow.checked_at,
    TrackedReportRow.id,
    postgresql_where=OPEN_REPORT,
    sqlite_where=OPEN_REPORT,
)


class NotificationRow(Base):
    """The outbox. `dedupe_key` is unique: an event noticed twice is written once."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    telegram_user_id: Mapped[int] = mapped_column(BigInteger, index=True)
    kind: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    dedupe_key: Mapped[str] = mapped_column(String(128), unique=True)
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), index=True)  # pending/sending/sent/failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    due_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Quiet hours (storage/notifications.py): True — held by the hours in force when it was
    # written (the resident changed them since: it still goes in the digest); False — sent
    # alone (a digest with it was refused); None — by the resident's hours.
    held: Mapped[bool | None] = mapped_column(Boolean)
    # A notice offering to stop a charge: quiet hours never hold it past this moment
    # (domain.quiet_hours.send_by of `kind` and `data`, written by each INSERT of the outbox:
    # SqlNotificationRepository.add_once and SqlAutopayRepository.remind).
    send_by: Mapped[datetime | None] = mapped_column(UtcDateTime)


# The outbox's open rows (waiting or being sent), by due time: what a sender claims. Sent and
# failed rows, the bulk of the table, stay out of it. Queries use OPEN_NOTIFICATION itself
# (see OPEN_REPORT).
OPEN_NOTIFICATION = text("status IN ('pending', 'sending')")
# Sent rows by when they were sent: the retention purge (`purge_finished`, hourly) deletes the
# old ones without reading the whole table, whose bulk they are.
Index("ix_notifications_status_sent_at", NotificationRow.status, NotificationRow.sent_at)
Index(
    "ix_notifications_open_due",
    NotificationRow.due_at,
    postgresql_where=OPEN_NOTIFICATION,
    sqlite_where=OPEN_NOTIFICATION,
)
# A chat's open rows in order: the claim asks, for each candidate, whether an older row of its
# chat is being sent or due first (a chat's notifications go in order, across replicas).
Index(
    "ix_notifications_open_chat",
    NotificationRow.telegram_user_id,
    NotificationRow.id,
    postgresql_where=OPEN_NOTIFICATION,
    sqlite_where=OPEN_NOTIFICATION,
)


class AutopayRow(Base):
    __tablename__ = "autopays"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    telegram_user_id: Mapped[int] = mapped_column(BigInteger, index=True)
    kind: Mapped[str] = mapped_column(String(16))
    frequency: Mapped[str] = mapped_column(String(16))
    day: Mapped[int] = mapped_column(Integer)
    method_id: Mapped[str] = mapped_column(Text)  # the platform's ids: no length limit
    amount: Mapped[int | None] = mapped_column(BigInteger)
    limit: Mapped[int | None] = mapped_column(BigInteger)
    fund_id: Mapped[str | None] = mapped_column(Text)
    fund_name: Mapped[str | None] = mapped_column(Text)
    bill_kind: Mapped[str | None] = mapped_column(String(32))
    payer_code: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), index=True)
    next_due_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    skip_period: Mapped[str | None] = mapped_column(String(16))
    retry_period: Mapped[str | None] = mapped_column(String(16))
    paused_reason: Mapped[str | None] = mapped_column(String(32))  # a PauseReason when paused
    # Charges in a row the city did not answer: the exponent of the back-off.
    unanswered: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    claimed_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # The due moment the «tomorrow» reminder was last written for: the reminder step takes
    # only autopays whose next_due_at differs, so each reminder is written once.
    reminded_due_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # A BILL autopay on issue: the discovered bill it is to pay now (the platform's id: TEXT).
    bill_id: Mapped[str | None] = mapped_column(Text)
    # TOPUP: the service code and the account (a card number, a phone in digits) it tops up;
    # by threshold, the balance below which it does (kopecks) and the drops handled so far.
    topup_service: Mapped[str | None] = mapped_column(String(32))
    topup_account: Mapped[str | None] = mapped_column(Text)
    threshold: Mapped[int | None] = mapped_column(BigInteger)
    drops: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class AutopayRunRow(Base):
    """One run per autopay and period: the unique key is what makes a period charge once."""

    __tablename__ = "autopay_runs"
    __table_args__ = (UniqueConstraint("autopay_id", "period"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    autopay_id: Mapped[int] = mapped_column(BigInteger, index=True)
    period: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    amount: Mapped[int | None] = mapped_column(BigInteger)
    failure: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


# Runs whose outcome is not recorded yet (a charge maybe sent), by when they were last written:
# what the reconciliation of stranded runs reads (`started_runs`) without reading the whole
# table, whose bulk is finished runs. Queries use STARTED_RUN itself (see OPEN_REPORT).
STARTED_RUN = text("status = 'started'")
Index(
    "ix_autopay_runs_started",
    AutopayRunRow.updated_at,
    postgresql_where=STARTED_RUN,
    sqlite_where=STARTED_RUN,
)


class NotificationSettingsRow(Base):
    """Which kinds of notifications a resident turned off in «Настройки», and their quiet
    hours (Moscow minutes of the day, `domain.quiet_hours`; equal ends: off). A resident
    without a row has the defaults: nothing muted, 22:00–09:00."""

    __tablename__ = "notification_settings"

    telegram_user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    muted: Mapped[list[str]] = mapped_column(JSON)
    quiet_start: Mapped[int] = mapped_column(Integer, default=1320, server_default="1320")
    quiet_end: Mapped[int] = mapped_column(Integer, default=540, server_default="540")


class SupportTopicRow(Base):
    """A resident's topic in the support supergroup. `id` is the internal number in the
    topic's name; the thread is set once Telegram has created the topic."""

    __tablename__ = "support_topics"
    __table_args__ = (
        UniqueConstraint("telegram_user_id", "chat_id"),
        UniqueConstraint("chat_id", "thread_id"),
        # SQLite: ids never reused, a number never names a second resident (migration 0019)
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    telegram_user_id: Mapped[int] = mapped_column(BigInteger)
    thread_id: Mapped[int | None] = mapped_column(BigInteger)
    name: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class SupportDashboardRow(Base):
    """The «Dashboard» topic of the support supergroup (one row: the configured chat's)."""

    __tablename__ = "support_dashboards"

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    thread_id: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class PlatformHealthRow(Base):
    """The city platform as last seen by the health job: one row, changed by one replica."""

    __tablename__ = "platform_health"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reachable: Mapped[bool] = mapped_column(Boolean)
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime)


class PaymentTemplateRow(Base):
    """A resident's payment template («Шаблоны»): what the next payment to the payee needs
    (`target`, JSON: a service and payer code, requisites, a fund), never a bill's id."""

    __tablename__ = "payment_templates"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    telegram_user_id: Mapped[int] = mapped_column(BigInteger, index=True)
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    target: Mapped[dict[str, Any]] = mapped_column(JSON)
    amount: Mapped[int | None] = mapped_column(BigInteger)
    display: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class BillWatchRow(Base):
    """A resident whose bills discovery has scanned: the bills found at the first scan are the
    baseline (no notice), those found later are new."""

    __tablename__ = "bill_watches"

    telegram_user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class KnownBillRow(Base):
    """A bill discovery has seen for a resident (written once: INSERT … ON CONFLICT DO
    NOTHING, so two schedulers agree which of them found it). `autopay_id`: queued for that
    on-issue autopay, which is paying another bill now; cleared when it is handed over."""

    __tablename__ = "known_bills"
    __table_args__ = (UniqueConstraint("telegram_user_id", "bill_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    telegram_user_id: Mapped[int] = mapped_column(BigInteger)
    bill_id: Mapped[str] = mapped_column(Text)
    autopay_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
