"""aiogram routers and dialogs: presentation only. `build_router` fixes their order."""

from __future__ import annotations

from aiogram import Router

from handlers import account, bills, errors, fallback, menu, start


def build_router() -> Router:
    """Commands first, then dialogs, then the catch-all fallback; errors are handled at the top."""
    root = Router(name="root")
    root.include_routers(
        errors.router,
        start.router,
        menu.dialog,
        bills.dialog,
        account.dialog,
        fallback.router,
    )
    return root
