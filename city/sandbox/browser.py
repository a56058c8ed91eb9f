"""A browser without a screen for the sandbox's login page (used by the bot's terminal console).

`demo_login` opens the authorize URL, submits the login form for a demo resident and follows the
redirect to wherever `redirect_uri` points (in real use the bot's own /oauth/callback page).
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
