"""«Наш город» use cases: the draft step by step, sending, following, status updates, and the
resident's answer to the city («Подтвердить» / «Не устранено»)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from domain import support
from domain.accounts import Resident
from domain.errors import DomainError, NotFound
from domain.ports import City, Notification, Place, TrackedReport, UnitOfWork
from domain.reports import (
    DUPLICATE_RADIUS_M,
    Draft,
    Point,
    Report,
    ReportStatus,
    Theme,
    inside,
    nearby_duplicates,
)
from domain.sessions import ResidentSession

PhotoLoader = Callable[[str], Awaitable[tuple[bytes, str]]]  # file id → (bytes, content type)
POLL_BATCH = 200


class OutsideCity(DomainError):
    """The point is outside the city's boundary."""


class ConfirmWindowClosed(DomainError):
    """The 15 days to confirm or refute the answer have passed (or there is no answer yet)."""


async def draft_of(uow: UnitOfWork, resident: Resident) -> Draft | None:
    return await uow.drafts.get(resident.telegram_user_id)


async def keep_draft(uow: UnitOfWork, resident: Resident, draft: Draft, now: datetime) -> None:
    """Every step is saved at once: a restart, /start or a lost phone loses nothing."""
    await uow.drafts.save(resident.telegram_user_id, draft, now)
    await uow.commit()


async def discard_draft(uow: UnitOfWork, resident: Resident) -> None:
    await uow.drafts.delete(resident.telegram_user_id)
    await uow.commit()


def choose_theme(draft: Draft, theme: Theme) -> None:
    draft.theme_code, draft.theme_name = theme.code, theme.name
    draft.photo_required = theme.photo_required


async def place_at(uow: UnitOfWork, city: City, resident: Resident, point: Point) -> Place:
    """A point from Telegram's location button: refused outside the city, named when it can be."""
    session = ResidentSession(resident, city, uow.residents)
    if not inside(point, await city.boundary(session)):
        raise OutsideCity()
    address = await city.reverse_geocode(session, point)
    return Place(address=address or f"{point.lat:.5f}, {point.long:.5f}", point=point)


async def find_places(uow: UnitOfWork, city: City, resident: Resident, query: str) -> list[Place]:
    """A typed address → candidates inside the city, for the resident to confirm."""
    session = ResidentSession(resident, city, uow.residents)
    boundary = await city.boundary(session)
    return [p for p in await city.search_address(session, query) if inside(p.point, boundary)]


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
    """Upload the photos, create the request, follow it, forget the draft."""
    media_urls = []
    for file_id in draft.photos:
        data, content_type = await load_photo(file_id)
        media_urls.append(await city.upload_media(data, content_type))
    report_id = await city.create_report(resident.city_account_id, draft, media_urls)
    await uow.tracked_reports.track(TrackedReport(resident.telegram_user_id, report_id), now)
    await uow.drafts.delete(resident.telegram_user_id)
    await support.report_sent(uow, report_id, draft, now)  # to the staff dashboard
    await uow.commit()
    return await city.report(report_id)


async def follow(
    uow: UnitOfWork, city: City, resident: Resident, report_id: str, now: datetime
) -> None:
    """Follow someone else's report instead of sending a duplicate: from now on, its changes
    (not its past) reach the resident."""
    updates = await city.report_updates(report_id)
    last = updates[-1].update_id if updates else None
    tracked = TrackedReport(resident.telegram_user_id, report_id, last_update_id=last, own=False)
    await uow.tracked_reports.track(tracked, now)
    await uow.drafts.delete(resident.telegram_user_id)
    await uow.commit()


async def my_reports(uow: UnitOfWork, city: City, resident: Resident) -> list[Report]:
    """The resident's own reports at the city and the ones they follow, newest first."""
    own = {r.id: r for r in await city.reports_of(resident.city_account_id)}
    for tracked in await uow.tracked_reports.of_resident(resident.telegram_user_id):
        if tracked.report_id not in own:
            try:
                own[tracked.report_id] = await city.report(tracked.report_id)
            except NotFound:
                continue
    return sorted(own.values(), key=lambda r: r.requested_at, reverse=True)


async def poll_statuses(uow: UnitOfWork, city: City, now: datetime) -> int:
    """Write one notification per new status update of every followed open report.

    The dedupe key is the report and the update, so a poll that runs twice, or on two
    processes at once, writes each notification once."""
    written = 0
    for tracked in await uow.tracked_reports.open_ones(POLL_BATCH):
        updates = await city.report_updates(tracked.report_id)
        seen = [u.update_id for u in updates]
        start = seen.index(tracked.last_update_id) + 1 if tracked.last_update_id in seen else 0
        fresh = updates[start:]
        if tracked.last_update_id is None:
            fresh = [u for u in fresh if u.status is not ReportStatus.MODERATION]
        report = await city.report(tracked.report_id) if fresh else None
        for update in fresh:
            assert report is not None
            added = await uow.notifications.add_once(
                Notification(
                    telegram_user_id=tracked.telegram_user_id,
                    kind="report_status",
                    dedupe_key=f"report:{tracked.report_id}:{update.update_id}",
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
        raise NotFound(report_id)  # a forged id: not this resident's report
    return report


async def confirm_fix(
    uow: UnitOfWork, city: City, resident: Resident, report_id: str, now: datetime
) -> Report:
    report = await _own_report(uow, city, resident, report_id)
    if not report.can_confirm(now):
        raise ConfirmWindowClosed()
    return await city.confirm_report(report_id, resident.city_account_id)


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
    if not report.can_confirm(now):
        raise ConfirmWindowClosed()
    media_url = await city.upload_media(*photo) if photo else None
    return await city.refute_report(report_id, resident.city_account_id, comment, media_url)
