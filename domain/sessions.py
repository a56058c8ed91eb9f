"""A resident's city session: the stored tokens, refreshed once when the city says 401."""

from __future__ import annotations

from contextlib import suppress
from dataclasses import replace

from domain.accounts import Resident
from domain.errors import DomainError, InvalidGrant, RelinkRequired
from domain.ports import CityAuth, UnitOfWork


class ResidentSession:
    """Implements the CitySession port for a stored resident. `refresh` raises RelinkRequired
    when the city refuses the refresh token, after deleting the stored link (committed) — unless
    the stored tokens are no longer the refused ones (refreshed or linked again meanwhile by an
    update, a job or another replica): those are taken instead, and the call is tried with them.

    A refreshed token set is saved (over the same link only: a resident who unlinked while the
    city answered stays unlinked, the new tokens revoked, RelinkRequired; one who linked again
    keeps the new link's tokens) and committed at once through the caller's unit of work:
    the city rotates the refresh token, so a rollback of the action that needed the refresh
    must not take the new tokens with it (the old ones are spent: the resident would have to
    link again). Committing there also ends the update's write transaction before anything
    else writes — on SQLite the dialog state's own connection would otherwise wait for it.
    What the caller wrote before the city call is committed with the tokens; use cases
    commit their own state before calling the city anyway (intents, claims).
    """

    def __init__(self, resident: Resident, auth: CityAuth, uow: UnitOfWork) -> None:
        self.resident = resident
        self._auth = auth
        self._uow = uow

    @property
    def access_token(self) -> str:
        return self.resident.tokens.access_token

    async def refresh(self) -> None:
        spent = self.resident.tokens.refresh_token
        try:
            fresh = await self._auth.refresh(spent)
        except InvalidGrant as exc:
            # Someone else may have replaced these tokens meanwhile — another update, a job or
            # a replica refreshed them (the city rotates refresh tokens: ours is then spent),
            # or the resident linked again (the old ones revoked). Their tokens are taken, not
            # forgotten: forgetting would unlink the resident's new link.
            stored = await self._uow.residents.get(self.resident.telegram_user_id)
            if stored is not None and stored.tokens.refresh_token != spent:
                self.resident.tokens = stored.tokens
                return
            # The city refuses these tokens for good (consent withdrawn, revoked, expired): they
            # are forgotten at once, wherever the refusal met us, so every screen after it
            # offers linking again (the menu of someone not linked) and no job keeps trying them
            # (an autopay of a resident not linked pauses, asking to link).
            await self._uow.residents.delete(self.resident.telegram_user_id)
            await self._uow.commit()
            raise RelinkRequired() from exc
        if not fresh.refresh_token:
            fresh = replace(fresh, refresh_token=self.resident.tokens.refresh_token)
        # Written only over the link they were made for, read again under the row's lock: the
        # resident may have unlinked while the city answered — saving would bring a forgotten
        # link back, with tokens the unlinking never revoked — or linked again (their new
        # tokens stand).
        user = self.resident.telegram_user_id
        await self._uow.residents.lock(user, writing=True)  # committed just below
        stored = await self._uow.residents.get(user)
        if stored is None or stored.tokens.refresh_token != spent:
            await self._uow.commit()  # nothing written: the lock ends
            if stored is None or fresh.refresh_token != stored.tokens.refresh_token:
                with suppress(DomainError):  # best effort: the city forgets them in time
                    await self._auth.revoke(fresh.refresh_token)
            if stored is None:
                raise RelinkRequired()
            self.resident.tokens = stored.tokens
            return
        self.resident.tokens = fresh
        await self._uow.residents.save(self.resident)
        await self._uow.commit()
