"""The bot's own aiohttp app: the OAuth callback page, the Telegram webhook, health,
readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
import hmac
import html
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from aiogram import Bot, Dispatcher
from aiogram.types import Update
from aiohttp import web
from markupsafe import escape
from pydantic import ValidationError

from bot.failures import UpdateBusy, classify
from bot.i18n import Translator
from bot.metrics import CONTENT_TYPE, ERRORS, RETRIED, exposition
from domain.errors import CityUnavailable, LinkError
from domain.linking import authorize_link
from domain.ports import CityApi, CityAuth
from handlers.texts import error_key
from storage.uow import UnitOfWorkFactory

log = structlog.get_logger(__name__)

WEBHOOK_PATH = "/telegram/webhook"
READY_TIMEOUT = 2.0
SLOT_WAIT = 10.0  # seconds a webhook delivery waits for a free slot before a 503
SLOT_RETRY_AFTER = 1  # whole seconds: Retry-After when no slot came free in time

PAGE = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}}
a.button{{display:inline-block;padding:.8rem 1.2rem;background:#2AABEE;color:#fff;
border-radius:.5rem;text-decoration:none}}</style></head>
<body><h1>{heading}</h1><p>{text}</p>{action}</body></html>
"""


Check = Callable[[], Awaitable[None]]


@dataclass
class WebContext:
    uow_factory: UnitOfWorkFactory
    auth: CityAuth
    city: CityApi
    tr: Translator
    clock: Callable[[], datetime]
    bot_username: str
    dispatcher: Dispatcher | None = None
    bot: Bot | None = None
    webhook_secret: str | None = None
    checks: dict[str, Check] = field(default_factory=dict)  # readiness: name → probe
    # Updates handled at once (Settings.updates_in_flight; 0: no bound). A delivery finding
    # them all taken waits up to SLOT_WAIT seconds for one, then is answered 503 + Retry-After.
    updates_in_flight: int = 0
    _slots: asyncio.Semaphore | None = field(default=None, init=False, repr=False)

    def update_slots(self) -> asyncio.Semaphore | None:
        if self.updates_in_flight and self._slots is None:
            self._slots = asyncio.Semaphore(self.updates_in_flight)
        return self._slots


CONTEXT = web.AppKey("context", WebContext)


def _page(
    ctx: WebContext, heading: str, text: str, status: int, link: str | None = None
) -> web.Response:
    action = ""
    if link is not None:
        label = escape(ctx.tr("web-linked-button"))  # tr's Markup stays as it is
        action = f'<p><a class="button" id="telegram" href="{html.escape(link)}">{label}</a></p>'
    body = PAGE.format(
        lang=ctx.tr.locale,
        title=escape(ctx.tr("web-page-title")),
        heading=escape(heading),
        text=escape(text),
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
        except Exception as error:  # the database lost, or a bug: the bot's page all the same
            transient = classify(error).transient
            if transient:
                log.warning("link.callback_failed", error=type(error).__name__)
            else:
                log.exception("link.callback_failed")
            # the attempt is spent (claimed before the city calls): a new one from the chat
            return _page(
                ctx, tr("web-error-heading"), tr("web-failed-text"), 503 if transient else 500
            )
        await uow.commit()
    link = f"https://t.me/{ctx.bot_username}?start={nonce}"
    return _page(ctx, tr("web-linked-heading"), tr("web-linked-text"), 200, link=link)


async def healthz(_request: web.Request) -> web.Response:
    """Alive: the process answers. Nothing else is checked (that is /readyz)."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready: the database, Redis (when configured) and the city platform answer."""
    results: dict[str, str] = {}
    for name, check in request.app[CONTEXT].checks.items():
        try:
            await asyncio.wait_for(check(), READY_TIMEOUT)
        except Exception as error:  # any failure means "not ready"; the reason is logged
            log.warning("ready.check_failed", check=name, error=type(error).__name__)
            results[name] = "failing"
        else:
            results[name] = "ok"
    ready = all(value == "ok" for value in results.values())
    return web.json_response(results, status=200 if ready else 503)


async def metrics(_request: web.Request) -> web.Response:
    response = web.Response(body=exposition())
    response.headers["Content-Type"] = CONTENT_TYPE
    return response


async def telegram_webhook(request: web.Request) -> web.Response:
    """Telegram's delivery, answered only after the update was handled (aiogram's own handler
    answers first). Telegram retries any non-2xx answer and holds the chat's later updates
    behind it, so the answer says whether a retry can help (`bot.failures.classify`):

    - handled, or already handled (the de-duplication marker is done): 200;
    - a deterministic failure (a Bot API 400, a bug) — the resident was told once and the
      marker is done: 200, because a retry would fail the same way and hold the chat;
    - a transient failure (database, Redis, Telegram, the city): 503, with Retry-After when the
      failure says how long; the marker was released, so the redelivery is handled;
    - another replica is handling it right now (a live lease): 503 with Retry-After 1–5 s —
      if that replica dies, the redelivery after its lease lapses is handled, not lost;
    - this replica already handles `updates_in_flight` updates and none finished within
      SLOT_WAIT seconds: 503 with Retry-After 1, before the update is claimed;
    - an update that cannot be read: 200 (logged), since it would never be readable."""
    ctx = request.app[CONTEXT]
    secret = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
    # bytes: a str with non-ASCII characters makes compare_digest raise (review 33e: a 500)
    expected = (ctx.webhook_secret or "").encode()
    # aiohttp reads header bytes with surrogateescape: back to the bytes sent (review 34a)
    given = secret.encode("utf-8", "surrogateescape")
    if not expected or not hmac.compare_digest(given, expected):
        return web.json_response({"ok": False}, status=401)
    assert ctx.dispatcher is not None and ctx.bot is not None
    try:
        update = Update.model_validate(await request.json(), context={"bot": ctx.bot})
    except (ValueError, ValidationError, web.HTTPRequestEntityTooLarge) as error:
        # Over the body limit too: Telegram retries any non-2xx for ever (review 33e).
        log.error("webhook.unreadable_update", error=type(error).__name__)
        ERRORS.inc()
        return web.json_response({"ok": False})
    slots = ctx.update_slots()
    if slots is None:
        return await _handle_update(ctx, update)
    try:  # nothing claimed yet: a 503 here leaves the de-duplication marker untouched
        await asyncio.wait_for(slots.acquire(), SLOT_WAIT)
    except TimeoutError:
        log.warning("webhook.full", in_flight=ctx.updates_in_flight)
        RETRIED.labels(reason="full").inc()
        headers = {"Retry-After": str(SLOT_RETRY_AFTER)}
        return web.json_response({"ok": False}, status=503, headers=headers)
    try:
        return await _handle_update(ctx, update)
    finally:
        slots.release()


async def _handle_update(ctx: WebContext, update: Update) -> web.Response:
    """Feed one update and put its outcome into the webhook's answer (`telegram_webhook`)."""
    assert ctx.dispatcher is not None and ctx.bot is not None
    try:
        await ctx.dispatcher.feed_update(ctx.bot, update, telegram_retries=True)
    except Exception as error:
        verdict = classify(error)
        if verdict.deterministic:  # told once (handlers/errors.py), logged there; done
            log.info("webhook.update_failed_for_good", error=type(error).__name__)
            return web.json_response({"ok": False})
        log.warning(
            "webhook.update_retry", error=type(error).__name__, retry_after=verdict.retry_after
        )
        RETRIED.labels(reason="busy" if isinstance(error, UpdateBusy) else "transient").inc()
        headers = {"Retry-After": str(verdict.retry_after)} if verdict.retry_after else None
        return web.json_response({"ok": False}, status=503, headers=headers)
    return web.json_response({"ok": True})


def create_web_app(context: WebContext) -> web.Application:
    app = web.Application()
    app[CONTEXT] = context
    app.router.add_get("/oauth/callback", oauth_callback)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_post(WEBHOOK_PATH, telegram_webhook)
    return app
