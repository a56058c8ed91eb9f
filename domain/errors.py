"""Domain errors. Adapters translate their failures into these; handlers turn them into texts."""

from __future__ import annotations


class DomainError(Exception):
    """Something the resident can be told about in plain words."""


class CityUnavailable(DomainError):
    """The city platform did not answer in time or answered with a server error."""


class RelinkRequired(DomainError):
    """The city no longer accepts our tokens: the resident must link the account again."""


class NotFound(DomainError):
    """The city does not know the thing asked for."""


class NotLinked(DomainError):
    """The resident has not linked a city account yet."""


class InvalidGrant(DomainError):
    """The city refused an authorization code or refresh token (RFC 6749 invalid_grant)."""


class LinkError(DomainError):
    """Linking could not be finished; the subclass says why."""


class LinkStateInvalid(LinkError):
    """The link is unknown: mistyped, forged or from another installation."""


class LinkStateExpired(LinkError):
    """The link is older than its lifetime."""


class LinkStateUsed(LinkError):
    """The link was already used once."""


class LinkWrongUser(LinkError):
    """The link was started by another Telegram user."""


class LinkCodeRejected(LinkError):
    """The city refused to exchange the code (wrong PKCE verifier, stale code)."""


class ReportRefused(DomainError):
    """The city refused a report or an action on it; `str(error)` is the city's reason.

    `kinds` name the reasons the client recognised (one per error of the answer, "other"
    for an unknown one): the resident reads them in Russian, never the platform's English."""

    def __init__(self, reason: str = "", kinds: tuple[str, ...] = ("other",)) -> None:
        super().__init__(reason)
        self.kinds = kinds
