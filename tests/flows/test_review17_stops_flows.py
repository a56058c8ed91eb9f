"""Review 17: the OAuth callback commits its claim before the city calls
(`domain.linking.authorize_link`). What the city issued in the exchange when the profile call
that follows fails, and what the resident's next attempt meets."""

from __future__ import annotations

from typing import Any

from sandbox import oauth
from tests.flows.conftest import START_LINK, Harness


def _refresh_tokens(harness: Harness) -> list[str]:
    """Every refresh token the sandbox issues from now on."""
    store = harness.sandbox.app[oauth.TOKENS_KEY]
    seen: list[str] = []
    issue = store.issue_tokens

    def tokens(**kwargs: Any) -> oauth.IssuedTokens:
        issued = issue(**kwargs)
        seen.append(issued.refresh_token)
        return issued

    store.issue_tokens = tokens  # type: ignore[method-assign]
    return seen


async def test_after_a_profile_failure_the_resident_links_on_the_next_attempt(
    harness: Harness,
) -> None:
    """The code is exchanged, then /api/v1/profile answers 503: the page says the city is
    away. The claim is committed, so the state is spent; the resident's next «Привязать»
    (a new attempt) links."""
    chat = harness.chat()
    await chat.send("/start")
    await chat.press("Привязать")
    await harness.sandbox_call(
        "PUT", "/sandbox/faults", json={"status": 503, "paths": ["/api/v1/profile"]}
    )
    page = await harness.login_page(chat)
    assert not START_LINK.search(page)
    await harness.sandbox_call("PUT", "/sandbox/faults", json={})
    await harness.link(chat)
    assert await harness.stored_resident(chat) is not None


# Was (review): authorize_link: tokens from a successful exchange are never revoked when the
# profile call then fails (CityUnavailable): a live city session nobody holds
async def test_tokens_issued_before_a_profile_failure_are_revoked(harness: Harness) -> None:
    """Same as above: the exchange gave the bot a refresh token, then the profile call failed
    and the attempt was closed. Nothing keeps that token (it is not on the attempt), so no
    purge or unlink will ever revoke it: the bot must revoke it at once, as it does for a
    link burnt in the wrong hands."""
    chat = harness.chat()
    await chat.send("/start")
    await chat.press("Привязать")
    issued = _refresh_tokens(harness)
    await harness.sandbox_call(
        "PUT", "/sandbox/faults", json={"status": 503, "paths": ["/api/v1/profile"]}
    )
    page = await harness.login_page(chat)
    await harness.sandbox_call("PUT", "/sandbox/faults", json={})
    assert not START_LINK.search(page)
    assert issued, "the code was exchanged"
    live = harness.sandbox.app[oauth.TOKENS_KEY]._refresh
    assert [token for token in issued if token in live] == []
