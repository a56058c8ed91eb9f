"""The application: configuration, wiring, runners, middlewares and background jobs.

Importing any of it first puts `bot.lazy_models`' hook in place, so aiogram's Bot API types
are built when first used rather than all at import (a lean, quick start)."""

from bot import lazy_models

lazy_models.install()
