"""A resident's city session: the stored tokens, refreshed once when the city says 401."""

from __future__ import annotations

from dataclasses import replace

from domain.accounts import Resident
from domain.errors import InvalidGrant, RelinkRequired
from domain.ports import CityAuth, ResidentRepository


class ResidentSession:
    """Implements the CitySession port for a stored resident.

    A refreshed token set is written back through the repository at once, so the caller's unit
    of work keeps it even if the city call that needed it fails afterwards.
    """

    def __init__(self, resident: Resident, auth: CityAuth, residents: ResidentRepository) -> None:
        self.resident = resident
        self._auth = auth
        self._residents = residents

    @property
    def access_token(self) -> str:
        return self.resident.tokens.access_token

    async def refresh(self) -> None:
        try:
            fresh = await self._auth.refresh(self.resident.tokens.refresh_token)
        except InvalidGrant as exc:
            raise RelinkRequired() from exc
        if not fresh.refresh_token:
            fresh = replace(fresh, refresh_token=self.resident.tokens.refresh_token)
        self.resident.tokens = fresh
        await self._residents.save(self.resident)
