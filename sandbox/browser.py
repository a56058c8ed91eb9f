"""A browser without a screen for the sandbox's pages (used by the bot's terminal console).

`demo_login` opens the authorize URL, submits the login form for a demo resident and follows the
redirect to wherever `redirect_uri` points (in real use the bot's own /oauth/callback page).
`pay_on_page` opens a pending payment's `confirmation_url` and submits a card or a 3-D Secure
answer; `open_payment_page` / `read_payment_page` tell which of the two a page asks for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import unescape

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


_STATUS = re.compile(r'id="payment-status" data-status="([a-z_]+)"')
_TITLE = re.compile(r"<h1>(.*?)</h1>", re.S)


@dataclass(frozen=True, slots=True)
class PaymentPage:
    """What a hosted payment page shows: `step` is "card" (the card form: a payment with no
    saved card, or a new one), "confirmation" (3-D Secure: confirm or reject) or "" (nothing
    to do: finished, refused or not found); `status` the payment's, when the page tells it."""

    step: str
    status: str | None
    title: str


def read_payment_page(page: BrowserResult) -> PaymentPage:
    text = page.text
    if 'name="action" value="confirm"' in text:
        step = "confirmation"
    elif 'name="card_number"' in text:
        step = "card"
    else:
        step = ""
    status = _STATUS.search(text)
    title = _TITLE.search(text)
    return PaymentPage(
        step=step,
        status=status.group(1) if status else None,
        title=unescape(title.group(1)).strip() if title else f"HTTP {page.status}",
    )


async def open_payment_page(confirmation_url: str) -> PaymentPage:
    """Open the hosted payment page (GET) and read what it asks for."""
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        async with session.get(confirmation_url) as page:
            result = BrowserResult(url=str(page.url), status=page.status, text=await page.text())
    return read_payment_page(result)
