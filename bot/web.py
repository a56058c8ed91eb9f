"""The bot's own aiohttp app: the OAuth callback page and the health check."""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import structlog
from aiohttp import web

from bot.i18n import Translator
from domain.errors import CityUnavailable, LinkError
from domain.linking import authorize_link
from domain.ports import CityApi, CityAuth
from handlers.texts import error_key
from storage.uow import UnitOfWorkFactory

log = structlog.get_logger(__name__)

PAGE = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}}
a.button{{display:inline-block;padding:.8rem 1.2rem;background:#2AABEE;color:#fff;
border-radius:.5rem;text-decoration:none}}</style></head>
<body><h1>{heading}</h1><p>{text}</p>{action}</body></html>
"""


@dataclass
class WebContext:
    uow_factory: UnitOfWorkFactory
    auth: CityAuth
    city: CityApi
    tr: Translator
    clock: Callable[[], datetime]
    bot_username: str


CONTEXT = web.AppKey("context", WebContext)


def _page(
    ctx: WebContext, heading: str, text: str, status: int, link: str | None = None
) -> web.Response:
    action = ""
    if link is not None:
        label = html.escape(ctx.tr("web-linked-button"))
        action = f'<p><a class="button" id="telegram" href="{html.escape(link)}">{label}</a></p>'
    body = PAGE.format(
        lang=ctx.tr.locale,
        title=html.escape(ctx.tr("web-page-title")),
        heading=html.escape(heading),
        text=html.escape(text),
        action=action,
    )
    return web.Response(text=body, status=status, content_type="text/html")


async def oauth_callback(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    tr = ctx.tr
    state, code = request.query.get("state", ""), request.query.get("code", "")
    if request.query.get("error"):
        return _page(ctx, tr("web-error-heading"), tr("web-denied-text"), 200)
    if not state or not code:
        return _page(ctx, tr("web-error-heading"), tr("web-missing-text"), 400)
    async with ctx.uow_factory() as uow:
        try:
            nonce = await authorize_link(
                uow, ctx.auth, ctx.city, state=state, code=code, now=ctx.clock()
            )
        except LinkError as error:
            await uow.commit()
            log.info("link.callback_refused", reason=type(error).__name__)
            return _page(ctx, tr("web-error-heading"), tr(error_key(error)), 400)
        except CityUnavailable:
            await uow.commit()
            return _page(ctx, tr("web-error-heading"), tr("error-city-unavailable"), 503)
        await uow.commit()
    link = f"https://t.me/{ctx.bot_username}?start={nonce}"
    return _page(ctx, tr("web-linked-heading"), tr("web-linked-text"), 200, link=link)


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_web_app(context: WebContext) -> web.Application:
    app = web.Application()
    app[CONTEXT] = context
    app.router.add_get("/oauth/callback", oauth_callback)
    app.router.add_get("/healthz", healthz)
    return app
