"""A webhook replica as its own OS process, for tests that SIGKILL it mid-update.

`python -m tests.integration.replica_process` imports the bot (slow: aiogram's models), prints
`imported`, then reads one line of JSON from stdin — `{"settings": {...}, "leases": [<update
lease>, <chat lock lease>]}` (Settings fields; seconds) — so a test can start it early and
configure it once its sandbox and database exist. It prints `ready <web url>` once its webhook
serves, then serves until it is killed. Its Bot API is a LocalTelegram of its own (what it
sends is lost with it, as a dead replica's would be).
"""

from __future__ import annotations

import asyncio
import json
import sys

from bot import dedup
from bot.app import create_application
from bot.config import Settings
from sandbox.telegram_double import LocalTelegram


async def main() -> None:
    print("imported", flush=True)
    config = json.loads(await asyncio.to_thread(sys.stdin.readline))
    dedup.PROCESSING_LEASE, dedup.LOCK_LEASE = (float(lease) for lease in config["leases"])
    settings = Settings(**{**config["settings"], "_env_file": None})
    app = await create_application(settings, bot_session=LocalTelegram())
    print(f"ready {app.web_url}", flush=True)
    await asyncio.Event().wait()  # until SIGKILL: no cleanup ever runs


if __name__ == "__main__":
    asyncio.run(main())
