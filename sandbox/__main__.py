"""`python -m sandbox [--host 127.0.0.1] [--port 8081]`: run the sandbox standalone."""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from sandbox.app import SandboxServer
from sandbox.data import RESIDENTS
from sandbox.open311_common import API_KEY, BASE_PATH


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox",
        description="Run the city platform SANDBOX (demo data, not the real city platform).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    return parser.parse_args()


async def _serve(host: str, port: int) -> None:
    async with SandboxServer(host=host, port=port) as server:
        logins = ", ".join(resident.login for resident in RESIDENTS)
        print(f"City platform SANDBOX at {server.url}", flush=True)
        print("SANDBOX: fictional demo data, NOT the real city platform.", flush=True)
        print(f"Demo logins: {logins}. Stop with Ctrl+C.", flush=True)
        print(f"Open311: {server.url}{BASE_PATH}/ (api_key {API_KEY})", flush=True)
        await asyncio.Event().wait()


def main() -> None:
    args = _arguments()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.host, args.port))


if __name__ == "__main__":
    main()
