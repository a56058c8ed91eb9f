"""Prints `export` lines for the test services that answer on this machine.

`make test` evaluates the output: TEST_DATABASE_URL / TEST_REDIS_URL already set are kept;
otherwise they are set when PostgreSQL / Redis answer on their usual local ports.
"""

from __future__ import annotations

import os
import shlex
import socket

DEFAULTS = {
    "TEST_DATABASE_URL": ("127.0.0.1", 5432, "postgresql+asyncpg://postgres@127.0.0.1:5432/test"),
    "TEST_REDIS_URL": ("127.0.0.1", 6379, "redis://127.0.0.1:6379/15"),
}


def answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def main() -> None:
    for name, (host, port, url) in DEFAULTS.items():
        if os.environ.get(name):
            continue
        if answers(host, port):
            print(f"export {name}={shlex.quote(url)}")


if __name__ == "__main__":
    main()
