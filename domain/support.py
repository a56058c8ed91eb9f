"""Support: each resident's questions in a topic of their own in the staff supergroup, a
«Dashboard» topic with the events staff must act on, and the figures of staff commands.

Nothing personal goes to the supergroup: a topic is named by the masked name and an internal
number; dashboard events carry what staff need to act (a report's place, an autopay's number)
and never a phone, a resident's address, card data or a token. Phone- and card-like numbers a
resident types are masked before their message is passed on."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from itertools import pairwise
from typing import TYPE_CHECKING

from domain.accounts import AccountLevel
from domain.autopay import MOSCOW, Autopay, AutopayRun
from domain.ports import (
    Dashboard,
    DayFigures,
    Notification,
    SupportStats,
    SupportTopic,
    UnitOfWork,
)
from domain.reports import Draft

if TYPE_CHECKING:  # domain.payments tells the dashboard; no import cycle at run time
    from domain.payments import PaymentIntent

DASHBOARD_REPORT = "dashboard_report"
DASHBOARD_AUTOPAY_FAILED = "dashboard_autopay_failed"
DASHBOARD_DEAD_LETTER = "dashboard_dead_letter"
DASHBOARD_DIGEST = "dashboard_digest"
DASHBOARD_PLATFORM = "dashboard_platform"
DASHBOARD_PAYMENT_ERRORS = "dashboard_payment_errors"
DASHBOARD_TELEGRAM_REFUND = "dashboard_telegram_refund"
# Dashboard events that are the only record of money owed back (a Telegram charge no intent
# owns, review 35a): the retention purge of sent notifications never deletes them.
KEPT_FOR_GOOD = frozenset({DASHBOARD_TELEGRAM_REFUND})
# A Telegram charge whose invoice no linked resident owns: the reason staff read
# (`domain.linking.UNLINKED_UNREGISTERED` is the same word).
UNLINKED = "unlinked"

DASHBOARD_KINDS = frozenset(
    {
        DASHBOARD_REPORT,
        DASHBOARD_AUTOPAY_FAILED,
        DASHBOARD_DEAD_LETTER,
        DASHBOARD_DIGEST,
        DASHBOARD_PLATFORM,
        DASHBOARD_PAYMENT_ERRORS,
        DASHBOARD_TELEGRAM_REFUND,
    }
)
THREAD = "message_thread_id"  # in a notification's data: the forum topic to post it in
MAP_URL = "https://yandex.ru/maps/?pt={long},{lat}&z=17"
MASK = "•••"

# Separators people put inside numbers, any run of them: spaces of any kind (no-break and
# thin ones too — \s covers them), hyphens and dashes, dots, and the invisible characters a
# copy from elsewhere brings along (soft hyphen, zero-width space and joiners, word joiner,
# BOM). Review 27: «4242 - 4242 - …» and «8\u200b916…» went unmasked.
_SEP = r"[\s.\-\u2010-\u2015\u00ad\u200b-\u200d\u2060\ufeff]"
# Every run of separators is possessive (`*+`: a separator is never a digit or a bracket, so
# nothing is lost): with plain `*` two runs side by side backtracked cubically — 1,600
# characters of dots between «8» and «916» held the event loop for 6 s (review 28).
_SEPS = f"{_SEP}*+"
_PHONE = re.compile(
    # Russian, with +7 / 8 / 7 and any area code: +7 (916) 123-45-67, 8 495 123 45 67
    rf"(?<![\d+])(?:\+7|8|7){_SEPS}\(?{_SEPS}\d{{3}}{_SEPS}\)?{_SEPS}\d{{3}}{_SEPS}\d{{2}}{_SEPS}\d{{2}}(?!\d)"
    # Russian without the prefix: a mobile (9xx) or Moscow (495, 499) number — 9161234567,
    # 916-123-45-67, (916) 123-45-67
    rf"|(?<![\d+])\(?(?:9\d\d|49[59])\)?{_SEPS}\d{{3}}{_SEPS}\d{{2}}{_SEPS}\d{{2}}(?!\d)"
    r"|\+\d[\d\s()-]{8,}+(?<=\d)"  # international, with a plus
)
# A run of digit groups joined by separators (a card is looked for in it by `_cards`).
_RUN = re.compile(rf"\d++(?:{_SEPS}\d++)*+")
_GROUP = re.compile(r"\d+")
_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u2060\ufeff"))
# From the start of a word only (and possessive): tried from every character of a long word it
# read the rest of the word each time.
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]++@[\w-]+(?:\.[\w-]+)+")


def mask_personal(text: str) -> tuple[str, bool]:
    """Phone numbers (Russian in all usual writings — with +7, 8 or no prefix, brackets,
    hyphens, dots, any spaces — and international ones with a plus), card numbers (13–19
    digits with any separators, passing the Luhn check) and e-mail addresses replaced by •••;
    the second value says whether anything was masked. UINs and accounts (20+ digits) stay."""

    masked = _EMAIL.sub(MASK, text)
    masked = _PHONE.sub(MASK, _RUN.sub(_cards, masked))
    return masked, masked != text


def _cards(run: re.Match[str]) -> str:
    """A run of digit groups with any card number in it masked. A card is 13–19 digits in
    whole groups written with ONE kind of separator (invisible characters aside) that pass
    Luhn: «4242 - 4242 - 4242 - 4242 - 2 раза» keeps its «2», «Шаг 2. 4242 4242 4242 4242»
    its «2». A run longer than 19 digits written with one kind of separator throughout is one
    number (a UIN, an account in groups of four) and stays whole; so do dates and periods
    («01.10.2026 - 31.10.2026»: two kinds of separator)."""
    text = run.group()
    groups = [(g.start(), g.end()) for g in _GROUP.finditer(text)]
    seps = [text[a[1] : b[0]].translate(_INVISIBLE) for a, b in pairwise(groups)]
    sizes = [end - start for start, end in groups]
    if sum(sizes) > 19 and len(set(seps)) <= 1:
        return text  # one long number
    out, i = [], 0
    while i < len(groups):
        found = None
        digits = 0
        for j in range(i, len(groups)):
            digits += sizes[j]
            if digits > 19 or (j > i and seps[j - 1] != seps[i]):
                break
            if digits >= 13:
                number = "".join(text[s:e] for s, e in groups[i : j + 1])
                if _luhn_ok(number):
                    found = j  # the longest card from this group on
        if found is None:
            i += 1
            continue
        out.append((groups[i][0], groups[found][1]))
        i = found + 1
    for start, end in reversed(out):
        text = text[:start] + MASK + text[end:]
    return text


def _luhn_ok(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


# ---- the resident's topic -------------------------------------------------------------------


async def topic_of(
    uow: UnitOfWork, chat_id: int, telegram_user_id: int, now: datetime
) -> SupportTopic:
    """The resident's topic, its internal number given on first contact (committed)."""
    topic = await uow.support.topic_of(chat_id, telegram_user_id, now)
    await uow.commit()
    return topic


async def remember_thread(
    uow: UnitOfWork, topic: SupportTopic, thread_id: int, name: str, now: datetime
) -> SupportTopic:
    await uow.support.set_thread(topic.id, thread_id, name, now)
    await uow.commit()
    topic.thread_id, topic.name = thread_id, name
    return topic


async def topic_in_thread(uow: UnitOfWork, chat_id: int, thread_id: int) -> SupportTopic | None:
    """The resident whose topic this is; None for «General», the dashboard or foreign topics."""
    return await uow.support.by_thread(chat_id, thread_id)


# ---- the dashboard ----------------------------------------------------------------------------


async def current_dashboard(uow: UnitOfWork, chat_id: int | None) -> Dashboard | None:
    """The dashboard of the configured support chat; dashboards of any other chat (or all of
    them when support is off) are forgotten, so no event is posted where support moved away.
    Events still waiting for a chat support moved from go to this one."""
    await uow.support.keep_dashboard(chat_id)
    dashboard = await uow.support.dashboard()
    if dashboard is not None:
        await _readdress(uow, dashboard)
    await uow.commit()
    return dashboard


async def drop_waiting_events(uow: UnitOfWork) -> int:
    """Support is off (SUPPORT_CHAT_ID unset): dashboard events still waiting for the chat it
    was in fail for good — no chat will ever take them, and before they were retried every
    few minutes for ever. They stay in the outbox for the record. Returns how many (the
    caller logs them: a refund owed may be among them). Commits."""
    dropped = await uow.notifications.fail_waiting(DASHBOARD_KINDS)
    await uow.commit()
    return dropped


async def keep_dashboard(uow: UnitOfWork, dashboard: Dashboard, now: datetime) -> Dashboard:
    """Store a newly created dashboard topic; another replica's, stored first, wins. Events
    still waiting for a support chat the operator moved away from go to this one."""
    stored = await uow.support.add_dashboard(dashboard, now)
    await _readdress(uow, stored)
    await uow.commit()
    return stored


async def _readdress(uow: UnitOfWork, dashboard: Dashboard) -> None:
    """Dashboard events written for another chat and not sent yet (SUPPORT_CHAT_ID moved: the
    bot may be gone from the old chat, which would refuse them for good) go to `dashboard`."""
    await uow.notifications.readdress(DASHBOARD_KINDS, dashboard.chat_id, dashboard.thread_id)


async def _post(
    uow: UnitOfWork, kind: str, key: str, data: dict[str, object], now: datetime
) -> bool:
    """Write a dashboard event to the outbox in the caller's transaction (no commit here)."""
    dashboard = await uow.support.dashboard()
    if dashboard is None:  # no support chat configured
        return False
    return await uow.notifications.add_once(
        Notification(
            telegram_user_id=dashboard.chat_id,
            kind=kind,
            data={THREAD: dashboard.thread_id, **data},
            dedupe_key=f"dashboard:{key}",
            urgent=True,  # staff are not residents: no quiet hours
        ),
        now,
    )


async def report_sent(uow: UnitOfWork, report_id: str, draft: Draft, now: datetime) -> bool:
    """A new «Наш город» report: theme, the problem's place, a map link, the photo count.
    Neither the resident nor their description (it may hold a phone number)."""
    point = draft.point
    return await _post(
        uow,
        DASHBOARD_REPORT,
        f"report:{report_id}",
        {
            "report_id": report_id,
            "theme": draft.theme_name or "",
            "address": draft.address or "",
            "map_url": MAP_URL.format(long=point.long, lat=point.lat) if point else "",
            "photos": len(draft.photos),
        },
        now,
    )


async def autopay_failed(
    uow: UnitOfWork, autopay: Autopay, run: AutopayRun, now: datetime, *, paused: bool = False
) -> bool:
    """An autopay that failed for good — for this period, or `paused` until the resident acts
    (the card removed, expired or asking for 3-D Secure, consent revoked, the fund gone): which
    one, what for, how much (kopecks) and why (`failure`) — not the card. Once per autopay and
    period (one period ends in one of the two)."""
    return await _post(
        uow,
        DASHBOARD_AUTOPAY_FAILED,
        f"autopay:{autopay.id}:{run.period}",
        {
            "paused": paused,
            "autopay_id": autopay.id,
            "period": run.period,
            "kind": autopay.kind.value,
            "fund_name": autopay.fund_name,
            "bill_kind": autopay.bill_kind.value if autopay.bill_kind else None,
            "amount": run.amount if run.amount is not None else autopay.amount,
            "limit": autopay.limit,
            "attempts": run.attempts,
            "failure": run.failure,
        },
        now,
    )


async def dead_lettered(uow: UnitOfWork, notification: Notification, now: datetime) -> bool:
    """A notification given up after its retries (its text is not repeated here). A dashboard
    event that could not be posted is not posted about again."""
    if notification.kind in DASHBOARD_KINDS or notification.id is None:
        return False
    return await _post(
        uow,
        DASHBOARD_DEAD_LETTER,
        f"dead:{notification.id}",
        {
            "notification_id": notification.id,
            "kind": notification.kind,
            "attempts": notification.attempts,
        },
        now,
    )


def _short_hash(value: str) -> str:
    """A fixed-length stand-in for an outside id in a dedupe key (the column holds 128)."""
    return hashlib.sha256(value.encode()).hexdigest()[:16]


async def telegram_refund_needed(
    uow: UnitOfWork,
    intent: PaymentIntent,
    now: datetime,
    provider_charge_id: str | None = None,
    *,
    another_charge: bool = False,
    taken: tuple[int, str] | None = None,
) -> bool:
    """Money Telegram Payments took for an intent the city would not register (the bill paid
    meanwhile, its amount changed, a refusal): staff return it in the payment provider's
    cabinet. The charge ids, the amount (kopecks), the city's reason and the resident's internal
    number (given here if the resident never wrote to support) — no name, phone or card. Once
    per intent, however often Telegram repeats its update — once per charge for
    `another_charge` (a charge besides the one the intent keeps: `intent.external_charge_id`
    is it). `taken` is what Telegram took (smallest units, currency), kept when it is not the
    invoice's sum; nothing is committed here."""
    dashboard = await uow.support.dashboard()
    if dashboard is None:  # no support chat configured: the caller's error log is all there is
        return False
    topic = await uow.support.topic_of(dashboard.chat_id, intent.telegram_user_id, now)
    return await _post(
        uow,
        DASHBOARD_TELEGRAM_REFUND,
        f"tgrefund:{intent.id}:{_short_hash(intent.external_charge_id or '')}"
        if another_charge
        else f"tgrefund:{intent.id}",
        {
            "intent_id": intent.id,
            "resident": topic.id,
            "charge_id": intent.external_charge_id,
            "provider_charge_id": provider_charge_id,
            "amount": intent.amount,
            "failure": intent.failure,
            # what Telegram says it took (smallest units, currency) when not the invoice's
            **(
                {"taken": taken[0], "currency": taken[1]}
                if taken is not None and taken != (intent.amount, "RUB")
                else {}
            ),
        },
        now,
    )


async def has_desk(uow: UnitOfWork) -> bool:
    """Whether a support chat takes dashboard events (SUPPORT_CHAT_ID set and its topic made)."""
    return await uow.support.dashboard() is not None


async def telegram_charge_unowned(
    uow: UnitOfWork,
    charge_id: str,
    provider_charge_id: str | None,
    taken: tuple[int, str],
    now: datetime,
    intent_id: int | None = None,
) -> bool:
    """Money Telegram Payments took for an invoice no linked resident owns any more (they
    unlinked, or linked again, between the checkout and the payment: unlinking deleted the
    intent that had not been paid, review 33e): nothing can register it at the city, so staff
    return it. The charge ids and what was taken (smallest units, currency); the bot's intent
    number when one is left. Once per charge; nothing is committed here."""
    amount, currency = taken
    return await _post(
        uow,
        DASHBOARD_TELEGRAM_REFUND,
        f"tgrefund:charge:{_short_hash(charge_id)}",
        {
            "intent_id": intent_id,
            "resident": None,
            "charge_id": charge_id,
            "provider_charge_id": provider_charge_id,
            "amount": amount if currency == "RUB" else 0,
            "failure": UNLINKED,
            **({"taken": amount, "currency": currency} if currency != "RUB" else {}),
        },
        now,
    )


# ---- staff commands -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResidentCard:
    """What /resident shows: no phone, address, card or token."""

    topic_id: int
    linked: bool
    masked_name: str | None = None
    account_level: AccountLevel | None = None
    linked_at: datetime | None = None
    reports: int = 0
    autopays: int = 0


def start_of_day(now: datetime) -> datetime:
    """Midnight in Moscow, the staff's «today»."""
    return datetime.combine(now.astimezone(MOSCOW).date(), time.min, MOSCOW)


async def stats(uow: UnitOfWork, now: datetime) -> SupportStats:
    return await uow.support.stats(start_of_day(now))


async def resident_card(uow: UnitOfWork, topic_id: int) -> ResidentCard | None:
    topic = await uow.support.get(topic_id)
    if topic is None:
        return None
    resident = await uow.residents.get(topic.telegram_user_id)
    reports, autopays = await uow.support.counts(topic.telegram_user_id)
    if resident is None:
        return ResidentCard(topic_id, linked=False, reports=reports, autopays=autopays)
    return ResidentCard(
        topic_id,
        linked=True,
        masked_name=resident.masked_name,
        account_level=resident.account_level,
        linked_at=resident.linked_at,
        reports=reports,
        autopays=autopays,
    )


DIGEST_HOUR = 9  # Moscow time
DIGEST_DAYS = 7


async def post_digest(uow: UnitOfWork, now: datetime) -> bool:
    """The morning digest for staff: yesterday's figures and the last 7 days for a chart.
    Written once per day (its dedupe key), however often the job runs and on however many
    replicas; nothing before 09:00 Moscow time."""
    local = now.astimezone(MOSCOW)
    if local.hour < DIGEST_HOUR:
        return False
    today = datetime.combine(local.date(), time.min, MOSCOW)
    days = []
    for back in range(DIGEST_DAYS, 0, -1):
        start = today - timedelta(days=back)
        figures = await uow.support.day_figures(start, start + timedelta(days=1))
        days.append((start.date().isoformat(), figures))
    day, yesterday = days[-1]
    posted = await _post(
        uow,
        DASHBOARD_DIGEST,
        f"digest:{day}",
        {
            "day": day,
            **{name: getattr(yesterday, name) for name in DayFigures.__slots__},
            "series": [[d, f.paid + f.donated, f.payments + f.donations] for d, f in days],
        },
        now,
    )
    await uow.commit()
    return posted


PAYMENT_ERRORS_WINDOW = timedelta(minutes=15)
PAYMENT_ERRORS_SPIKE = 5  # unanswered payments in the window that staff should look at


async def platform_seen(uow: UnitOfWork, reachable: bool, now: datetime) -> bool:
    """The city platform went away or came back: posted once per change (the one replica whose
    conditional update changed the stored state posts it)."""
    changed = await uow.support.platform_changed(reachable, now)
    posted = False
    if changed:
        posted = await _post(
            uow,
            DASHBOARD_PLATFORM,
            f"platform:{'up' if reachable else 'down'}:{now.isoformat()}",
            {"reachable": reachable, "at": now.astimezone(MOSCOW).strftime("%d.%m.%Y %H:%M")},
            now,
        )
    await uow.commit()
    return posted


async def payment_errors_seen(uow: UnitOfWork, now: datetime) -> bool:
    """Many payments without an answer from the platform lately: one event per hour at most."""
    count = await uow.support.unanswered_payments(now - PAYMENT_ERRORS_WINDOW)
    posted = False
    if count >= PAYMENT_ERRORS_SPIKE:
        hour = now.astimezone(MOSCOW).strftime("%Y-%m-%dT%H")
        posted = await _post(
            uow, DASHBOARD_PAYMENT_ERRORS, f"payment-errors:{hour}", {"count": count}, now
        )
    await uow.commit()
    return posted
