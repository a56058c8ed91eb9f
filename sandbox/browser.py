"""A browser without a screen for the sandbox's pages (used by the bot's terminal console).

`demo_login` opens the authorize URL, submits the login form for a demo resident and follows the
redirect to wherever `redirect_uri` points (in real use the bot's own /oauth/callback page).
`pay_on_page` opens a pending payment's `confirmation_url` and submits a card or a 3-D Secure
answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from yarl import URL

TIMEOUT = aiohttp.ClientTimeout(total=30)


@dataclass(frozen=True, slots=True)
class BrowserResult:
    url: str  # the final URL after redirects
    status: int
    text: str


class DemoLoginError(RuntimeError):
    """The login page could not be opened (wrong URL or invalid authorization parameters)."""


async def demo_login(authorize_url: str, login: str, *, action: str = "approve") -> BrowserResult:
    """Log in at the sandbox as `login` (action "approve" or "deny") and follow the redirect."""
    page_url = URL(authorize_url)
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        async with session.get(page_url) as page:
            if page.status != 200:
                snippet = (await page.text())[:300]
                raise DemoLoginError(f"login page answered {page.status}: {snippet}")
        form = {**page_url.query, "login": login, "action": action}
        async with session.post(page_url.with_query(None), data=form) as final:
            return BrowserResult(url=str(final.url), status=final.status, text=await final.text())


class PaymentPageError(RuntimeError):
    """The payment page could not be opened (unknown payment, or it is not pending any more)."""


async def pay_on_page(
    confirmation_url: str, *, card_number: str | None = None, action: str | None = None
) -> BrowserResult:
    """Open the hosted payment page and submit it: `card_number` on the card form, `action`
    "confirm" or "reject" on the 3-D Secure page ("reject" also cancels on the card form).

    The result page says how it went: `<p id="payment-status" data-status="succeeded">` etc.
    """
    form: dict[str, str] = {}
    if card_number is not None:
        form["card_number"] = card_number
    if action is not None:
        form["action"] = action
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        async with session.get(confirmation_url) as page:
            if page.status != 200:
                snippet = (await page.text())[:300]
                raise PaymentPageError(f"payment page answered {page.status}: {snippet}")
        async with session.post(confirmation_url, data=form) as final:
            return BrowserResult(url=str(final.url), status=final.status, text=await final.text())
