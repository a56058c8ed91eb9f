"""«Наш город» use cases: the draft step by step, sending, following, status updates, and the
resident's answer to the city («Подтвердить» / «Не устранено»)."""

from __future__ import annotations

import math
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from domain import support
from domain.accounts import Resident
from domain.boundary import SUGGEST_WITHIN_M, Boundary, nearest_inside
from domain.errors import CityUnavailable, DomainError, NotFound, ReportRefused
from domain.ports import City, Notification, Place, TrackedReport, UnitOfWork
from domain.reports import (
    DUPLICATE_RADIUS_M,
    Draft,
    Point,
    Report,
    ReportStatus,
    Theme,
    answers_to_send,
    distance_m,
    nearby_duplicates,
    unanswered,
)
from domain.sessions import ResidentSession

PhotoLoader = Callable[[str], Awaitable[tuple[bytes, str]]]  # file id → (bytes, content type)
# Reports in a row the city fails to answer about before a poll takes it for down (one
# report's own 5xx must not stop the round).
POLL_DOWN_AFTER = 3
POLL_BATCH = 200
REPORT_SENT = "report_sent"  # notification: a lost send settled as sent (`_settle_lost_send`)
KEY_REUSED = "key_reused"  # ReportRefused kind: the Idempotence-Key was used for another body


class OutsideCity(DomainError):
    """The point is outside the city's boundary; `suggestion` is the nearest address inside it
    (within SUGGEST_WITHIN_M), when the gazetteer knows one."""

    def __init__(self, suggestion: Place | None = None) -> None:
        super().__init__()
        self.suggestion = suggestion


class ForeignReport(NotFound):
    """The report is not of the mos.ru account linked now: a notice's button of the account
    linked before (the resident relinked another one), or a forged id. Only its author's
    account may answer for it."""


class AnswersMissing(DomainError):
    """A required question of the theme (or a step) is still without an answer."""


class ConfirmWindowClosed(DomainError):
    """The 15 days to confirm or refute the answer have passed (or there is no answer yet)."""


class ReportAlreadyClosed(ConfirmWindowClosed):
    """The report is closed already — confirmed (from the card, a notification, the site) or
    closed by the city: there is nothing left to confirm or refute."""


class DraftGone(DomainError):
    """The draft an open report screen writes went while it was open: sent (by a press whose
    result screen was lost, or settled as a lost send) — `number` is the report its send made
    — or deleted (retention, unlinking): `number` None. Written to, it would start a new draft
    holding one field; the screen is told instead."""

    number: str | None = None

    def __init__(self, number: str | None = None) -> None:
        super().__init__(number or "")
        self.number = number


async def draft_of(uow: UnitOfWork, resident: Resident) -> Draft | None:
    return await uow.drafts.get(resident.telegram_user_id)


async def open_draft(uow: UnitOfWork, resident: Resident, name: str | None, own_name: str) -> Draft:
    """The draft a report screen goes on with. `name` is the `Draft.draft_id` of the draft
    that screen writes (None: it was opened before drafts were named); `own_name` names the
    screen's dialog itself, and is given to a draft saved before drafts were named (kept with
    the draft's next save; the same every time the same dialog asks, so a report sent from it
    is found by it even when nothing of that update was kept). Raises DraftGone when the
    draft the screen writes went: none is stored, or another one begun since."""
    draft = await uow.drafts.get(resident.telegram_user_id)
    if draft is not None and (name is None or draft.draft_id in (name, None)):
        draft.draft_id = draft.draft_id or name or own_name
        return draft
    raise DraftGone(await sent_from_draft(uow, resident, name or own_name))


async def keep_draft(uow: UnitOfWork, resident: Resident, draft: Draft, now: datetime) -> None:
    """Every step is saved at once: a restart, /start or a lost phone loses nothing."""
    await uow.drafts.save(resident.telegram_user_id, draft, now)
    await uow.commit()


async def came_back_to_draft(uow: UnitOfWork, resident: Resident, now: datetime) -> None:
    """The resident opened their unsent draft again: it counts as written now, so the
    retention purge (drafts not written for as long as dialog state is kept) never takes it
    from under the screens they just opened (review 35a)."""
    await uow.drafts.touch(resident.telegram_user_id, now)
    await uow.commit()


async def sent_from_draft(uow: UnitOfWork, resident: Resident, draft_id: str) -> str | None:
    """The number of the report the send of draft `draft_id` made, once that draft is gone:
    a screen left on it (its send's result screen lost to a 429, a dropped connection or a
    blocked bot, review 35e) is told that number, not only that the draft went. None: the
    draft was deleted, not sent, or sent before reports kept their draft's name."""
    made = await uow.tracked_reports.made_by_draft(resident.telegram_user_id, draft_id)
    return None if made is None else made.report_id


async def describes_draft(uow: UnitOfWork, resident: Resident, message_id: int) -> bool:
    """Whether the resident's unsent draft took its description from Telegram message
    `message_id` (an edit of that message is then about the report being written)."""
    draft = await uow.drafts.get(resident.telegram_user_id)
    return draft is not None and draft.description_message == message_id


async def discard_draft(uow: UnitOfWork, resident: Resident) -> None:
    await uow.drafts.delete(resident.telegram_user_id)
    await uow.commit()


def choose_theme(draft: Draft, theme: Theme) -> None:
    if draft.theme_code != theme.code:
        draft.answers = {}  # another theme asks other questions
    draft.theme_code, draft.theme_name = theme.code, theme.name
    draft.photo_required = theme.photo_required


async def place_at(uow: UnitOfWork, city: City, resident: Resident, point: Point) -> Place:
    """A point from Telegram's location button: refused outside the city, named when it can be."""
    if not _on_earth(point):  # Telegram never sends such a point; a forged update may
        raise OutsideCity(None)
    session = ResidentSession(resident, city, uow)
    boundary = await city.boundary(session)
    if not boundary.contains(point):
        raise OutsideCity(await _suggestion(city, session, boundary, point))
    address = await city.reverse_geocode(session, point)
    return Place(address=address or f"{point.lat:.5f}, {point.long:.5f}", point=point)


def _on_earth(point: Point) -> bool:
    """A latitude within ±90° and a longitude within ±180°, both finite numbers."""
    return (
        math.isfinite(point.lat)
        and math.isfinite(point.long)
        and -90 <= point.lat <= 90
        and -180 <= point.long <= 180
    )


async def find_places(uow: UnitOfWork, city: City, resident: Resident, query: str) -> list[Place]:
    """A typed address → candidates inside the city, for the resident to confirm."""
    session = ResidentSession(resident, city, uow)
    boundary = await city.boundary(session)
    return [p for p in await city.search_address(session, query) if boundary.contains(p.point)]


async def _suggestion(
    city: City, session: ResidentSession, boundary: Boundary, point: Point
) -> Place | None:
    """The nearest known address inside the city, when one is close enough to be meant."""
    found = await city.nearest_address(session, point, SUGGEST_WITHIN_M)
    if found is None:
        return None
    near = nearest_inside(point, [(found.address, found.point)], boundary)
    return None if near is None else Place(address=near[0], point=near[1])


def set_place(draft: Draft, place: Place) -> None:
    draft.lat, draft.long, draft.address = place.point.lat, place.point.long, place.address


async def duplicates_of(city: City, draft: Draft) -> list[Report]:
    """Open reports on the same theme within about 50 m: offered to follow instead."""
    if draft.theme_code is None or draft.point is None:
        return []
    candidates = await city.nearby_open(draft.theme_code, draft.point, DUPLICATE_RADIUS_M)
    return nearby_duplicates(candidates, draft.theme_code, draft.point)


async def send_report(
    uow: UnitOfWork,
    city: City,
    resident: Resident,
    draft: Draft,
    load_photo: PhotoLoader,
    now: datetime,
) -> Report:
    """Upload the photos, create the request, follow it, forget the draft. Returns the report
    as the city reads it back — or, when that read fails, as sent (its number, no answer
    date): once the city has made it, nothing after may turn into an error.

    The request's Idempotence-Key is kept on the draft (committed) before the first POST: a
    POST whose answer was lost is repeated with it, by the client or by the resident pressing
    «Отправить» again, and the platform answers with the report it already made."""
    definition = await city.service_definition(draft.theme_code or "")
    if draft.missing() or unanswered(definition, draft):
        raise AnswersMissing()
    # The photos are uploaded once: their addresses are kept on the draft with the key, so a
    # repeated send has the very same body (a new upload would be a new address, and the
    # platform refuses a key reused with another body).
    uploaded = {f: url for f, url in draft.uploaded.items() if f in draft.photos}
    for file_id in draft.photos:
        if file_id not in uploaded:
            data, content_type = await load_photo(file_id)
            uploaded[file_id] = await city.upload_media(data, content_type)
    if draft.send_key is None or uploaded != draft.uploaded or not draft.unchanged_since_sent():
        draft.send_key = draft.send_key or secrets.token_hex(16)
        draft.uploaded = uploaded
        draft.sent_as = draft.fingerprint()
    draft.sent_at = now  # this POST's moment: how a report it made is told apart (settling)
    await uow.drafts.save(resident.telegram_user_id, draft, now)
    await uow.commit()
    media_urls = [uploaded[file_id] for file_id in draft.photos]
    attributes = answers_to_send(definition, draft)
    try:
        report_id = await city.create_report(
            resident.city_account_id, draft, media_urls, attributes, draft.send_key
        )
    except ReportRefused as refused:
        if KEY_REUSED in refused.kinds:  # the draft changed after a send that may have gone
            draft.send_key = None
            draft.sent_as = None
            draft.uploaded = {}
            await uow.drafts.save(resident.telegram_user_id, draft, now)
            await uow.commit()
        raise
    made = TrackedReport(resident.telegram_user_id, report_id, draft_id=draft.draft_id)
    await uow.tracked_reports.track(made, now)
    await uow.drafts.delete(resident.telegram_user_id)
    await support.report_sent(uow, report_id, draft, now)  # to the staff dashboard
    await uow.commit()
    try:  # the answer date, read back: the report is made whatever this answers
        return await city.report(report_id)
    except DomainError:  # told as sent, with its number, the date left out (review 31b)
        return Report(
            id=report_id,
            theme_code=draft.theme_code or "",
            theme_name=draft.theme_name or "",
            status=ReportStatus.MODERATION,
            address=draft.address or "",
            point=draft.point,
            requested_at=now,
            expected_at=None,
            account_id=resident.city_account_id,
        )


async def follow(
    uow: UnitOfWork, city: City, resident: Resident, report_id: str, now: datetime
) -> None:
    """Follow a report nearby instead of sending a duplicate: from now on, its changes (not
    its past) reach the resident. The resident's own one (made by a send whose answer was
    lost) is followed as theirs: its answer comes with «Подтвердить» and «Не устранено»."""
    updates = await city.report_updates(report_id)
    last = updates[-1].update_id if updates else None
    own = (await city.report(report_id)).account_id == resident.city_account_id
    tracked = TrackedReport(resident.telegram_user_id, report_id, last_update_id=last, own=own)
    await uow.tracked_reports.track(tracked, now)
    await uow.drafts.delete(resident.telegram_user_id)
    await uow.commit()


async def my_reports(
    uow: UnitOfWork, city: City, resident: Resident, now: datetime
) -> list[Report]:
    """Every report the city has for the resident's account (made in the bot, on the site or
    in the app) and the ones they follow, newest first. Reports made elsewhere are followed
    from now on (their changes reach the resident like those of the bot's own)."""
    own = {r.id: r for r in await city.reports_of(resident.city_account_id)}
    tracked = await uow.tracked_reports.of_resident(resident.telegram_user_id)
    if await _adopt(
        uow, city, resident.telegram_user_id, resident.city_account_id, own.values(), tracked, now
    ):
        await uow.commit()
    for followed in tracked:
        if followed.report_id not in own:
            try:
                own[followed.report_id] = await city.report(followed.report_id)
            except NotFound:
                continue
    return sorted(own.values(), key=lambda r: (r.requested_at, r.id), reverse=True)


async def my_report(uow: UnitOfWork, city: City, resident: Resident, report_id: str) -> Report:
    """One report of «Мои обращения»: the resident's own at the city, or one they follow;
    ForeignReport (a NotFound) for any other id: the account linked before, or a forged one."""
    report = await city.report(report_id)
    if report.account_id != resident.city_account_id:
        if await uow.tracked_reports.get(resident.telegram_user_id, report_id) is None:
            raise ForeignReport(report_id)
    return report


async def _adopt(
    uow: UnitOfWork,
    city: City,
    telegram_user_id: int,
    account_id: str,
    reports: Iterable[Report],
    tracked: Iterable[TrackedReport],
    now: datetime,
) -> int:
    """Follow the account's reports the bot did not know (made elsewhere): their past is not
    news, so each is followed from its latest update on. A report the resident's own lost
    send made is settled as sent instead (`_settle_lost_send`) — or, not yet settleable, left
    unknown for the next round (adopted silently now, it would never be). Returns how many
    are followed."""
    known = {t.report_id for t in tracked}
    reports = list(reports)
    unknown = [r for r in reports if r.id not in known]
    adopted = 0
    if unknown:
        settled, later = await _settle_lost_send(
            uow, city, telegram_user_id, account_id, unknown, now
        )
        known |= later
        if settled is not None:
            known.add(settled)
            adopted += 1
    for report in reports:
        if report.id in known:
            continue
        last = None
        if not report.status.final:
            updates = await city.report_updates(report.id)
            last = updates[-1].update_id if updates else None
        found = TrackedReport(telegram_user_id, report.id, last, closed=report.status.final)
        await uow.tracked_reports.track(found, now)
        adopted += 1
    return adopted


async def _settle_lost_send(
    uow: UnitOfWork,
    city: City,
    telegram_user_id: int,
    account_id: str,
    unknown: list[Report],
    now: datetime,
) -> tuple[str | None, set[str]]:
    """A send whose answer was lost, and the resident never pressed «Отправить» again (review
    31b): the draft still holds the send's Idempotence-Key, unchanged since, and the city
    lists a report of the account the bot does not know that this send made, as far as the
    city's answer tells (`_made_by`: theme, day, place, words or photo — a report of the same
    problem the resident made on the site after a send that never arrived is not one, review
    33c). Once SETTLE_AFTER has passed since the send's last POST (the resident, told the city
    did not answer, may be pressing again meanwhile), the POST is repeated with the key: by
    the platform's contract the same key and body answer with the request already made, never
    a second one. The draft is then settled as `send_report` would have: the report followed
    from its first update (none of it was told), the draft forgotten, the dashboard told, and
    the resident told its number (`report_sent`, urgent: without it they may send the problem
    again).

    Returns (the settled report's id or None, the ids of reports to leave unknown for the
    next round: those this send made while it is too early, or while the city does not answer
    the repeat). A refusal (the key used for another body) settles nothing and leaves nothing:
    the draft is left to the resident."""
    draft = await uow.drafts.get(telegram_user_id)
    if (
        draft is None
        or draft.send_key is None
        or draft.sent_at is None  # keyed before the moment was kept: left to the resident
        or not draft.unchanged_since_sent()
        or any(file_id not in draft.uploaded for file_id in draft.photos)
    ):
        return None, set()
    made = {report.id for report in unknown if _made_by(report, draft)}
    if not made:
        return None, set()
    if now - draft.sent_at < SETTLE_AFTER:
        return None, made
    try:
        definition = await city.service_definition(draft.theme_code or "")
        if unanswered(definition, draft):
            return None, set()
        report_id = await city.create_report(
            account_id,
            draft,
            [draft.uploaded[file_id] for file_id in draft.photos],
            answers_to_send(definition, draft),
            draft.send_key,
        )
    except CityUnavailable:  # the draft left as it was: the next round tries again
        return None, made
    except DomainError:  # refused: the key for another body; the draft is left to the resident
        return None, set()
    settled = TrackedReport(telegram_user_id, report_id, draft_id=draft.draft_id)
    await uow.tracked_reports.track(settled, now)
    await uow.drafts.delete(telegram_user_id)
    await support.report_sent(uow, report_id, draft, now)
    await uow.notifications.add_once(
        Notification(
            telegram_user_id=telegram_user_id,
            kind=REPORT_SENT,
            dedupe_key=f"report-sent:{report_id}:{telegram_user_id}",
            data={
                "report_id": report_id,
                "theme": draft.theme_name or "",
                "address": draft.address or "",
            },
            urgent=True,
        ),
        now,
    )
    return report_id, set()


# A lost send is settled only this long after its last POST (the resident, told the city did
# not answer, may be pressing «Отправить» again meanwhile) …
SETTLE_AFTER = timedelta(minutes=5)
# … by a report requested within this of that POST: a bound against an old report of the same
# place, not a measure of the POST (the platform's clock is its own, and may be far off ours).
MADE_WITHIN = timedelta(days=1)
MADE_AT_M = 100  # … at this distance at most from the draft's point


def _made_by(report: Report, draft: Draft) -> bool:
    """Whether the city's answer says `report` is the one the draft's last POST made: its
    theme, requested within a day of that POST, at the draft's place, with the draft's words
    (spacing aside) and its first photo (the address the upload gave) — or, the draft having
    none, none of them. Only a report of the same theme and place made that day on the site
    with no words and no photo, after a bare send that never arrived, is taken for it."""
    if report.theme_code != draft.theme_code or draft.sent_at is None:
        return False
    if abs(report.requested_at - draft.sent_at) > MADE_WITHIN:
        return False
    if draft.point is not None and report.point is not None:
        if distance_m(draft.point, report.point) > MADE_AT_M:
            return False
    elif draft.address and report.address.casefold() != draft.address.casefold():
        return False
    # The words and the first photo agree — their absence too: a bare send is not a report
    # made on the site with words or a photo (review 34a).
    if " ".join(report.description.split()) != " ".join(draft.description.split()):
        return False
    if not draft.photos:
        return not report.media_url
    return _same_media(report.media_url or "", draft.uploaded.get(draft.photos[0], ""))


def _same_media(kept: str, sent: str) -> bool:
    """The same photo: its address's path, as the city may give it back absolute where the
    upload answered a path, over https, or with a query added (review 34b)."""
    kept_path, sent_path = urlsplit(kept).path, urlsplit(sent).path
    return bool(kept_path and sent_path) and kept_path.rstrip("/") == sent_path.rstrip("/")


@dataclass
class DiscoveryCursor:
    """Where the next poll goes on looking for reports made elsewhere: the last Telegram user
    id looked at (0: from the start). One batch of residents a tick, round and round, so a
    tick's city calls stay bounded however many residents there are."""

    after: int = 0
    # Bill discovery: ticks in a row whose whole batch the city did not answer (the batch is
    # asked again, at most DISCOVERY_STALLS times, then the round goes on).
    stalls: int = 0

    async def next_batch(self, uow: UnitOfWork, size: int) -> list[tuple[int, str]]:
        """The next `size` linked residents (Telegram user id, city account id) after the last
        looked at — from the top once the round is over — and the cursor moved past them.
        Also bill discovery's round (domain/bill_discovery.py)."""
        accounts = await uow.residents.accounts(self.after, size)
        if not accounts and self.after:  # the round is over: from the top
            accounts = await uow.residents.accounts(0, size)
        self.after = accounts[-1][0] if accounts else 0
        return accounts


async def discover_reports(
    uow: UnitOfWork, city: City, now: datetime, cursor: DiscoveryCursor | None = None
) -> int:
    """Before a poll: linked residents' recent reports at the city (the platform's last 90
    days) are followed, also those made on the site or in the app. With a `cursor`, one batch
    of POLL_BATCH residents (then the next tick goes on); without, every resident. Returns how
    many reports are newly followed."""
    if cursor is not None:
        accounts = await cursor.next_batch(uow, POLL_BATCH)
        return await _discover(uow, city, accounts, now)
    adopted, after = 0, 0
    while accounts := await uow.residents.accounts(after, POLL_BATCH):
        adopted += await _discover(uow, city, accounts, now)
        after = accounts[-1][0]
    return adopted


async def _discover(
    uow: UnitOfWork, city: City, accounts: list[tuple[int, str]], now: datetime
) -> int:
    adopted = 0
    for telegram_user_id, account_id in accounts:
        reports = await city.reports_of(account_id, recent=True)
        tracked = await uow.tracked_reports.of_resident(telegram_user_id)
        adopted += await _adopt(uow, city, telegram_user_id, account_id, reports, tracked, now)
        await uow.commit()
    return adopted


async def poll_statuses(
    uow: UnitOfWork, city: City, now: datetime, cursor: DiscoveryCursor | None = None
) -> int:
    """Write one notification per new status update of every followed open report.

    The dedupe key is the report and the update, so a poll that runs twice, or on two
    processes at once, writes each notification once. Then the residents' reports made
    elsewhere are found and followed (their changes are told from the next poll on).

    One batch of POLL_BATCH open reports a call, the least recently checked first (claimed and
    stamped at once), so with N open reports each is asked about once in ceil(N/POLL_BATCH)
    calls. A report the city refuses on its own (e.g. NotFound: deleted there), or fails on
    alone (a 5xx for that one report), is skipped for this call — it keeps its new stamp, so
    it goes to the back — and the rest are asked about: one broken report at the front must
    not hold back every other resident's news (review 31b). Raises CityUnavailable once
    POLL_DOWN_AFTER reports in a row failed so (the city is down); the reports not yet asked
    about keep their place at the front."""
    claimed = await uow.tracked_reports.claim_for_poll(now, POLL_BATCH)
    await uow.commit()  # the claim is taken; another poller takes the next batch
    written = 0
    unavailable = 0  # failures in a row
    for index, tracked in enumerate(claimed):
        try:
            written += await _poll_one(uow, city, tracked, now)
        except CityUnavailable:
            await uow.rollback()
            unavailable += 1
            if unavailable >= POLL_DOWN_AFTER:  # the city is down: the rest wait at the front
                await uow.tracked_reports.give_back(claimed[index + 1 :])
                await uow.commit()
                raise
            continue
        except DomainError:
            # This report's own refusal: one report deleted at the city must not end the round
            # for the others (it would stretch the cycle by a tick per such report).
            await uow.rollback()
        unavailable = 0
    await discover_reports(uow, city, now, cursor)
    return written


async def _poll_one(uow: UnitOfWork, city: City, tracked: TrackedReport, now: datetime) -> int:
    """One report's new status updates written as notifications; returns how many."""
    written = 0
    updates = await city.report_updates(tracked.report_id)
    seen = [u.update_id for u in updates]
    start = seen.index(tracked.last_update_id) + 1 if tracked.last_update_id in seen else 0
    fresh = updates[start:]
    if tracked.last_update_id is None:
        fresh = [u for u in fresh if u.status is not ReportStatus.MODERATION]
    if tracked.own:  # the resident's own words (a refutation) are no news to them
        fresh = [u for u in fresh if not u.by_resident]
    report = await city.report(tracked.report_id) if fresh else None
    for update in fresh:
        assert report is not None
        added = await uow.notifications.add_once(
            Notification(
                telegram_user_id=tracked.telegram_user_id,
                kind="report_status",
                # one notice per follower and update: a neighbour who follows the same report
                # is told too (the key without the resident told only the first)
                dedupe_key=(
                    f"report:{tracked.report_id}:{update.update_id}:{tracked.telegram_user_id}"
                ),
                data={
                    "report_id": tracked.report_id,
                    "theme": report.theme_name,
                    "status": update.status.value,
                    "text": update.description,
                    "media_url": update.media_url,
                    "own": tracked.own,
                    "askable": tracked.own and update.status is ReportStatus.ANSWERED,
                },
            ),
            now,
        )
        written += added
    if updates:
        tracked.last_update_id = updates[-1].update_id
        tracked.closed = updates[-1].status.final
        await uow.tracked_reports.save(tracked)
    await uow.commit()
    return written


async def _own_report(uow: UnitOfWork, city: City, resident: Resident, report_id: str) -> Report:
    tracked = await uow.tracked_reports.get(resident.telegram_user_id, report_id)
    report = await city.report(report_id)
    if (tracked is None or not tracked.own) and report.account_id != resident.city_account_id:
        raise ForeignReport(report_id)  # the account linked before, or a forged id
    return report


async def confirm_fix(
    uow: UnitOfWork, city: City, resident: Resident, report_id: str, now: datetime
) -> Report:
    report = await _own_report(uow, city, resident, report_id)
    await _check_open(city, report, now)
    try:
        return await city.confirm_report(report_id, resident.city_account_id)
    except CityUnavailable:
        # The confirmation may have gone through with its answer lost: the report says.
        try:
            after = await city.report(report_id)
        except DomainError:
            after = None
        if after is not None and after.status is ReportStatus.CLOSED:
            return after  # confirmed; the points it brought are in «Баллы»
        raise


async def _check_open(city: City, report: Report, now: datetime) -> None:
    """Confirmable now, or why not: the resident confirmed it already (its closing update is
    theirs), or the 15 days ran out (then the platform closes it itself) — or no answer yet."""
    if report.can_confirm(now):
        return
    if report.status is ReportStatus.CLOSED:
        updates = await city.report_updates(report.id)
        if updates and updates[-1].by_resident:
            raise ReportAlreadyClosed()
    raise ConfirmWindowClosed()


async def refutable_report(
    uow: UnitOfWork, city: City, resident: Resident, report_id: str, now: datetime
) -> Report:
    """The report «Не устранено» may be said of now, checked before the resident writes why:
    theirs (the account linked now), answered, within its 15 days. Raises ForeignReport (not this
    account's: e.g. a notice of the account linked before), ReportAlreadyClosed,
    ConfirmWindowClosed, CityUnavailable — as `refute_fix` would, only after the comment."""
    report = await _own_report(uow, city, resident, report_id)
    await _check_open(city, report, now)
    return report


async def refute_fix(
    uow: UnitOfWork,
    city: City,
    resident: Resident,
    report_id: str,
    comment: str,
    photo: tuple[bytes, str] | None,
    now: datetime,
) -> Report:
    """«Не устранено»: the comment (and a new photo) go back to the city services."""
    report = await _own_report(uow, city, resident, report_id)
    await _check_open(city, report, now)
    media_url = await city.upload_media(*photo) if photo else None
    return await city.refute_report(report_id, resident.city_account_id, comment, media_url)
