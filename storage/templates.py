"""Payment templates («Шаблоны»). Every query names the resident: a template id from a forged
button finds nothing of anyone else's."""

from __future__ import annotations

from datetime import datetime

import structlog
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.templates import PaymentTemplate, readable_target
from storage.models import PaymentTemplateRow

log = structlog.get_logger(__name__)


class SqlTemplateRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, template: PaymentTemplate, now: datetime) -> None:
        row = PaymentTemplateRow(
            telegram_user_id=template.telegram_user_id, created_at=now, updated_at=now
        )
        _fill(row, template)
        self._session.add(row)
        await self._session.flush()
        template.id, template.created_at, template.updated_at = row.id, now, now

    async def get(self, telegram_user_id: int, template_id: int) -> PaymentTemplate | None:
        row = await self._row(telegram_user_id, template_id)
        return None if row is None else _domain(row)

    async def of_resident(self, telegram_user_id: int) -> list[PaymentTemplate]:
        result = await self._session.execute(
            select(PaymentTemplateRow)
            .where(PaymentTemplateRow.telegram_user_id == telegram_user_id)
            .order_by(PaymentTemplateRow.id)
        )
        return [_domain(row) for row in result.scalars()]

    async def save(self, template: PaymentTemplate, now: datetime) -> None:
        """Writes name, amount, display and target back (of a row it cannot read, only the
        name: what it could not read stays as it was); a template deleted meanwhile stays
        deleted."""
        if template.id is None:
            return
        row = await self._row(template.telegram_user_id, template.id)
        if row is None:
            return
        _fill(row, template)
        row.updated_at = template.updated_at = now
        await self._session.flush()

    async def delete(self, telegram_user_id: int, template_id: int) -> bool:
        result = await self._session.execute(
            delete(PaymentTemplateRow).where(
                PaymentTemplateRow.telegram_user_id == telegram_user_id,
                PaymentTemplateRow.id == template_id,
            )
        )
        return bool(getattr(result, "rowcount", 0))

    async def forget(self, telegram_user_id: int) -> None:
        await self._session.execute(
            delete(PaymentTemplateRow).where(
                PaymentTemplateRow.telegram_user_id == telegram_user_id
            )
        )

    async def _row(self, telegram_user_id: int, template_id: int) -> PaymentTemplateRow | None:
        result = await self._session.execute(
            select(PaymentTemplateRow).where(
                PaymentTemplateRow.telegram_user_id == telegram_user_id,
                PaymentTemplateRow.id == template_id,
            )
        )
        return result.scalar_one_or_none()


def _fill(row: PaymentTemplateRow, template: PaymentTemplate) -> None:
    row.name = template.name
    if template.kind is None:  # unreadable: its payee is left exactly as stored
        return
    row.kind = template.kind.value
    row.target = dict(template.target)
    row.amount = template.amount
    row.display = dict(template.display)


def _domain(row: PaymentTemplateRow) -> PaymentTemplate:
    """A row as this version reads it; one it cannot (written by another version) is a
    template with `kind` None — listed as unavailable and deletable, never a crash."""
    read = readable_target(row.kind, row.target)
    if read is None:
        log.warning("templates.unreadable", template_id=row.id, kind=str(row.kind)[:32])
    display = row.display if isinstance(row.display, dict) else {}
    return PaymentTemplate(
        id=row.id,
        telegram_user_id=row.telegram_user_id,
        name=row.name,
        kind=None if read is None else read[0],
        target={} if read is None else read[1],
        amount=row.amount if read is not None and isinstance(row.amount, int) else None,
        display={} if read is None else {str(k): str(v) for k, v in display.items()},
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
