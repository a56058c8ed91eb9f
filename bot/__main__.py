"""`python -m bot [console|poll|webhook|migrate]`; no command: poll with BOT_TOKEN, else console."""

from __future__ import annotations

import argparse
import asyncio
import errno
import sys

from bot.config import (
    CannotStart,
    PortBusy,
    SettingsError,
    exit_on_bad_settings,
    load_settings,
)
from bot.i18n import TextsMissing
from bot.logs import setup_logging
from storage.migrate import DatabaseUnreachable, NotMigrated


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__)
    parser.add_argument("command", nargs="?", choices=["console", "poll", "webhook", "migrate"])
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        settings.encryption_keys()
    except SettingsError as error:
        exit_on_bad_settings(error)
        return
    except CannotStart as error:  # DATA_DIR unusable for the key file (review 34b)
        print(f"Cannot start: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    command = args.command or ("poll" if settings.bot_token else "console")
    # The console is a conversation on the terminal: routine info lines (a reconciliation every
    # 5 minutes) landed on its prompt (review 33f). Warnings and errors still show; LOG_LEVEL
    # set explicitly wins.
    level = settings.log_level
    if command == "console" and "log_level" not in settings.model_fields_set:
        level = "WARNING"
    setup_logging(level, "console" if command == "console" else settings.log_format)
    from bot import runners  # after logging is set up

    run = {
        "console": runners.console,
        "poll": runners.poll,
        "webhook": runners.webhook,
        "migrate": runners.migrate,
    }[command]
    try:
        asyncio.run(run(settings))
    except KeyboardInterrupt:
        pass
    except SettingsError as error:
        exit_on_bad_settings(error)
    except (NotMigrated, TextsMissing, PortBusy, DatabaseUnreachable, CannotStart) as error:
        print(f"Cannot start: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    except OSError as error:
        if error.errno != errno.EADDRINUSE:
            raise
        # The web server's bind raises PortBusy; the only other listener is the sandbox city.
        busy = PortBusy("SANDBOX_PORT", "127.0.0.1", settings.sandbox_port)
        print(f"Cannot start: {busy}", file=sys.stderr)
        raise SystemExit(2) from None
    except ModuleNotFoundError as error:
        if error.name != "sandbox":
            raise
        print(
            "Cannot start: the sandbox city and the console ship only with the source checkout;"
            " set BOT_TOKEN and CITY_API_URL to run this install",
            file=sys.stderr,
        )
        raise SystemExit(2) from None
    finally:
        from bot.middlewares import forget_cached_updates

        forget_cached_updates()  # no update may outlive the interpreter's datetime module


if __name__ == "__main__":
    main()
