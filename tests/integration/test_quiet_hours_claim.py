"""The claim's quiet hours, in SQL on SQLite and PostgreSQL, are the domain's rule: at every
moment of a day each resident's non-urgent rows are claimed exactly when the moment is outside
their quiet hours, urgent rows always; and the rows held for a resident are claimed together."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncEngine

from domain.ports import Notification
from domain.quiet_hours import DEFAULT, HOLD_MARGIN, OFF, QuietHours
from storage.database import create_sessionmaker
from storage.token_cipher import TokenCipher
from storage.uow import UnitOfWorkFactory

MSK = ZoneInfo("Europe/Moscow")
WRITTEN = datetime(2026, 11, 23, 23, 30, tzinfo=MSK)
SETTINGS: dict[int, QuietHours | None] = {  # None: no settings row (the defaults)
    1: None,
    2: OFF,
    3: QuietHours(23 * 60, 8 * 60),
    4: QuietHours(13 * 60, 14 * 60 + 30),
    5: QuietHours(0, 7 * 60),
}


async def test_each_resident_is_quiet_in_their_own_hours(engine: AsyncEngine) -> None:
    factory = UnitOfWorkFactory(
        create_sessionmaker(engine), TokenCipher([TokenCipher.generate_key()])
    )
    async with factory() as uow:
        for user, quiet in SETTINGS.items():
            if quiet is not None:
                await uow.notification_settings.set_quiet_hours(user, quiet)
            for urgent in (False, True):
                note = Notification(user, "report_status", {}, f"{user}:{urgent}", urgent=urgent)
                await uow.notifications.add_once(note, WRITTEN)
        await uow.commit()
    moments = [WRITTEN + timedelta(minutes=30 * step) for step in range(1, 49)]
    moments += [datetime(2026, 11, 24, h, m, tzinfo=MSK) for h, m in ((7, 59), (8, 0), (14, 29))]
    for now in moments:
        async with factory() as uow:
            claimed = await uow.notifications.claim_to_send(now, 100)
            await uow.rollback()  # the rows stay as they were for the next moment
        got = {(c.notification.telegram_user_id, c.notification.urgent) for c in claimed}
        expected = {
            (user, urgent)
            for user, quiet in SETTINGS.items()
            for urgent in (False, True)
            if urgent or not (quiet or DEFAULT).covers(now)
        }
        assert got == expected, now
        for each in claimed:  # what the sender folds: written in the resident's quiet hours
            quiet = SETTINGS[each.notification.telegram_user_id] or DEFAULT
            assert each.quiet == quiet
            assert each.held == (not each.notification.urgent and quiet.covers(WRITTEN))


async def test_a_residents_held_rows_come_in_one_claim_past_the_limit(
    engine: AsyncEngine,
) -> None:
    """A claim of 2 rows takes the first resident's other held rows with them (so their
    digest is whole), but no row of a resident it did not take, and nothing written by day."""
    factory = UnitOfWorkFactory(
        create_sessionmaker(engine), TokenCipher([TokenCipher.generate_key()])
    )
    noon = datetime(2026, 11, 24, 12, 0, tzinfo=MSK)
    async with factory() as uow:
        for n in range(4):
            await uow.notifications.add_once(Notification(1, "report_status", {}, f"a{n}"), WRITTEN)
        await uow.notifications.add_once(Notification(1, "report_status", {}, "day"), noon)
        await uow.notifications.add_once(Notification(2, "report_status", {}, "b0"), WRITTEN)
        await uow.commit()
    async with factory() as uow:
        claimed = await uow.notifications.claim_to_send(noon + timedelta(minutes=1), 2)
        await uow.commit()
    keys = sorted(each.notification.dedupe_key for each in claimed)
    assert keys == ["a0", "a1", "a2", "a3"]
    assert all(each.held for each in claimed)


def _hold_end(quiet: QuietHours, now: datetime) -> datetime:
    """When the quiet hours in force at `now` end: walked minute by minute (the reference)."""
    moment = now.replace(second=0, microsecond=0)
    while quiet.covers(moment):
        moment += timedelta(minutes=1)
    return moment


async def test_a_notice_offering_to_stop_a_charge_is_never_held_past_it(
    engine: AsyncEngine,
) -> None:
    """«Пропустить этот раз» before a charge: at every moment of a night each resident's
    reminder (written by the autopays' multi-row INSERT, or `add_once`) is claimed in their
    quiet hours exactly when those hours would hold it past the charge less HOLD_MARGIN —
    and then goes as itself, never as a held row. A notice without a charge moment, or with
    one that does not parse, waits like any other."""
    factory = UnitOfWorkFactory(
        create_sessionmaker(engine), TokenCipher([TokenCipher.generate_key()])
    )
    charges = {  # dedupe key suffix → the charge moment
        "08": datetime(2026, 11, 24, 8, 0, tzinfo=MSK),
        "10": datetime(2026, 11, 24, 10, 0, tzinfo=MSK),
        "1430": datetime(2026, 11, 24, 14, 30, tzinfo=MSK),
    }
    async with factory() as uow:
        notes = []
        for user, quiet in SETTINGS.items():
            if quiet is not None:
                await uow.notification_settings.set_quiet_hours(user, quiet)
            for suffix, charge in charges.items():
                data = {"autopay_id": 1, "period": "2026-11", "charge_at": charge.isoformat()}
                notes.append(Notification(user, "autopay_reminder", data, f"{user}:{suffix}"))
            await uow.notifications.add_once(
                Notification(user, "bill_issued", {"charge_at": "2026-13-45T99"}, f"{user}:bad"),
                WRITTEN,
            )
            await uow.notifications.add_once(  # written before reminders carried the moment
                Notification(user, "autopay_reminder", {"due": "2026-11-24"}, f"{user}:due"),
                WRITTEN,
            )
        await uow.autopays.remind([], notes, WRITTEN)
        await uow.commit()
    charges["due"] = datetime(2026, 11, 24, 0, 0, tzinfo=MSK)
    moments = [WRITTEN + timedelta(minutes=20 * step, seconds=30) for step in range(0, 45)]
    for now in moments:
        async with factory() as uow:
            claimed = await uow.notifications.claim_to_send(now, 100)
            await uow.rollback()
        got = {each.notification.dedupe_key for each in claimed}
        expected = set()
        for user, quiet in SETTINGS.items():
            hours = quiet or DEFAULT
            for suffix, charge in charges.items():
                if not hours.covers(now) or _hold_end(hours, now) > charge - HOLD_MARGIN:
                    expected.add(f"{user}:{suffix}")
            if not hours.covers(now):
                expected.add(f"{user}:bad")
        assert got == expected, now
        for each in claimed:
            quiet_now = (SETTINGS[each.notification.telegram_user_id] or DEFAULT).covers(now)
            assert not (quiet_now and each.held)  # claimed in the quiet hours: as itself


async def test_rows_held_under_the_old_hours_stay_held_when_they_change(
    engine: AsyncEngine,
) -> None:
    """Written at 23:30 under 22:00–09:00; at 23:45 the resident moves the hours to
    00:00–07:00 (or off): the rows are claimed now, and still held (one digest). A row
    written by day is not marked; urgent rows are never held."""
    factory = UnitOfWorkFactory(
        create_sessionmaker(engine), TokenCipher([TokenCipher.generate_key()])
    )
    noon = datetime(2026, 11, 23, 12, 0, tzinfo=MSK)
    change = datetime(2026, 11, 23, 23, 45, tzinfo=MSK)
    async with factory() as uow:
        for user in (1, 2):
            for n in range(2):
                await uow.notifications.add_once(
                    Notification(user, "report_status", {}, f"{user}:{n}"), WRITTEN
                )
            await uow.notifications.add_once(
                Notification(user, "report_status", {}, f"{user}:u", urgent=True), WRITTEN
            )
        # A row of the day still waiting (its send failed, it is tried again tonight).
        await uow.notifications.add_once(Notification(1, "report_status", {}, "1:day"), noon)
        await uow.commit()
    for user, new in ((1, QuietHours(0, 7 * 60)), (2, OFF)):
        async with factory() as uow:
            before = await uow.notification_settings.quiet_hours(user)
            await uow.notifications.hold_written_in(user, before, change)
            await uow.notification_settings.set_quiet_hours(user, new)
            await uow.commit()
    async with factory() as uow:
        claimed = await uow.notifications.claim_to_send(change + timedelta(seconds=1), 100)
        await uow.rollback()
    held = {each.notification.dedupe_key: each.held for each in claimed}
    assert held == {
        "1:0": True, "1:1": True, "1:u": False, "1:day": False,
        "2:0": True, "2:1": True, "2:u": False,
    }  # fmt: skip
