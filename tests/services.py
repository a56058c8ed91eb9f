"""Prints `export` lines for the test services `make test` uses, on databases the tests own.

The suite wipes what it is given (tests/conftest.py: `DROP SCHEMA public CASCADE`, `FLUSHDB`),
so `make test` picks only databases that are provably its own:

- TEST_DATABASE_URL / TEST_REDIS_URL already set are kept as they are (and wiped as given).
- PostgreSQL answering on 127.0.0.1:5432 (user postgres): the database `resident_bot_test`,
  created if missing and marked with `COMMENT ON DATABASE` (`OWNER_MARK`). One of that name
  without the mark is refused: one line on stderr, exit 2, nothing touched.
- Redis answering on 127.0.0.1:6379: the first numbered database (15 down to 1; 0 is every
  application's default) that is empty or holds the key `OWNER_MARK`; the key is set. One with
  other data is skipped. None free: exit 2 with REQUIRE_SERVICES=1, otherwise one line on
  stderr and the Redis tests skip.

Several test processes (pytest-xdist): with TEST_WORKERS=N (`make test` asks for 2), each
worker after the first gets databases of its own the same way — PostgreSQL
`resident_bot_test_gw1`, … and the next free Redis database — exported as
TEST_DATABASE_URL_GW1, TEST_REDIS_URL_GW1, …, and `TEST_PROCESSES=N` tells `make test` to run
N workers. When any of them cannot be had (or the URLs were given explicitly), nothing of the
kind is printed and the suite runs in one process (tests/conftest.py maps a worker's URLs).

Other names, for this module's own tests: TEST_DATABASE_NAME (the owned database's name) and
TEST_REDIS_DBS (the Redis databases to try, in order: "9,8").
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import re
import shlex
import socket
import sys
import tempfile
from typing import TextIO

OWNER_MARK = "resident-bot-tests:owner"
DATABASE_COMMENT = f"{OWNER_MARK} (tests/services.py): the test suite wipes this database"
DATABASE_NAME = "resident_bot_test"
REDIS_DBS = tuple(range(15, 0, -1))
POSTGRES = ("127.0.0.1", 5432, "postgres")  # host, port, user
REDIS = ("127.0.0.1", 6379)

# Takes a Redis database for the tests in one step: empty, or already ours.
_CLAIM = """
if redis.call('DBSIZE') == 0 or redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('SET', KEYS[1], ARGV[1])
  return 1
end
return 0
"""


class Refused(Exception):
    """A database the tests would wipe is not theirs, or none can be had (one line)."""


def hold_exclusively(setting: str, url: str) -> TextIO:
    """Locks `url` for one test run on this machine: two at once (two checkouts' `make test`
    pick the same databases) would wipe each other's data mid-run. The lock is a file in the
    temporary directory, held while the returned file stays open and released by the system when
    the process ends, however it ends. Raises Refused (naming the other run's pid) when another
    process holds it."""
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    path = os.path.join(tempfile.gettempdir(), f"resident-bot-tests-{digest}.lock")
    lock = open(path, "a+")  # held open for the run
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "?"
        lock.close()
        shown = re.sub(r"://([^:/@]*):[^@]*@", r"://\1:***@", url)
        raise Refused(
            f"Another test run (pid {holder}) is using {setting}={shown}, which each run wipes: "
            f"wait for it to finish, or give this one another database in {setting}"
        ) from None
    lock.truncate(0)
    lock.write(str(os.getpid()))
    lock.flush()
    return lock


def answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


async def owned_database(name: str) -> str:
    """The URL of PostgreSQL database `name`, created with the mark if missing.

    Raises Refused when it exists without the mark."""
    import asyncpg

    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        raise Refused(f"TEST_DATABASE_NAME {name!r}: use lower-case letters, digits and _")
    host, port, user = POSTGRES
    connection = await asyncpg.connect(host=host, port=port, user=user, database="postgres")
    try:
        query = "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1"
        found = await connection.fetch(query, name)
        if not found:
            try:
                await connection.execute(f'CREATE DATABASE "{name}"')
            except asyncpg.DuplicateDatabaseError:  # created meanwhile: judged below
                pass
            else:
                comment = DATABASE_COMMENT.replace("'", "''")
                await connection.execute(f"COMMENT ON DATABASE \"{name}\" IS '{comment}'")
            found = await connection.fetch(query, name)
        if not (found[0][0] or "").startswith(OWNER_MARK):
            raise Refused(
                f"Refusing PostgreSQL database {name} on {host}:{port}: it exists without the "
                f"mark of this project's tests, which would wipe it; rename it or set "
                f"TEST_DATABASE_URL"
            )
    finally:
        await connection.close()
    return f"postgresql+asyncpg://{user}@{host}:{port}/{name}"


def owned_redis(dbs: tuple[int, ...]) -> str | None:
    """The URL of the first Redis database in `dbs` that is empty or holds OWNER_MARK, now
    holding it; None when every one holds other data."""
    from redis import Redis
    from redis.exceptions import ResponseError

    host, port = REDIS
    for db in dbs:
        client = Redis(host=host, port=port, db=db)
        try:
            if client.eval(_CLAIM, 1, OWNER_MARK, "1"):
                return f"redis://{host}:{port}/{db}"
        except ResponseError:  # no such database on this server
            continue
        finally:
            client.close()
    return None


def _workers(database: str, redis_dbs: tuple[int, ...]) -> list[str]:
    """The export lines for TEST_WORKERS - 1 more test processes, or none when one of their
    databases cannot be had (the suite then runs in one process)."""
    try:
        workers = max(1, int(os.environ.get("TEST_WORKERS") or "1"))
    except ValueError:
        workers = 1
    lines = []
    for worker in range(1, workers):
        try:
            url = asyncio.run(owned_database(f"{database}_gw{worker}"[:63]))
        except Exception:  # refused or failing: one process is still a correct run
            return []
        found = owned_redis(redis_dbs)
        if found is None:
            return []
        redis_dbs = tuple(db for db in redis_dbs if not found.endswith(f"/{db}"))
        lines += [
            f"export TEST_DATABASE_URL_GW{worker}={shlex.quote(url)}",
            f"export TEST_REDIS_URL_GW{worker}={shlex.quote(found)}",
        ]
    if workers > 1:
        lines.append(f"export TEST_PROCESSES={workers}")
    return lines


def main() -> int:
    """Prints the exports; answers the exit code (2: refused, see Refused)."""
    required = os.environ.get("REQUIRE_SERVICES") == "1"

    def unusable(message: str) -> None:
        if required:
            raise Refused(message)
        print(f"{message}; the tests that need it skip", file=sys.stderr)

    picked_database = ""  # both picked here (not given): workers may get their own
    redis_dbs: tuple[int, ...] | None = None
    try:
        if not os.environ.get("TEST_DATABASE_URL") and answers(*POSTGRES[:2]):
            name = os.environ.get("TEST_DATABASE_NAME") or DATABASE_NAME
            try:
                url = asyncio.run(owned_database(name))
            except Refused:
                raise
            except Exception as error:  # e.g. a password is needed: told, not a traceback
                unusable(f"PostgreSQL on {POSTGRES[0]}:{POSTGRES[1]} refused us ({error})")
            else:
                print(f"export TEST_DATABASE_URL={shlex.quote(url)}")
                picked_database = name
        if not os.environ.get("TEST_REDIS_URL") and answers(*REDIS):
            listed = os.environ.get("TEST_REDIS_DBS", "")
            dbs = tuple(int(db) for db in listed.split(",")) if listed else REDIS_DBS
            try:
                found = owned_redis(dbs)
            except Exception as error:
                unusable(f"Redis on {REDIS[0]}:{REDIS[1]} refused us ({error})")
            else:
                if found is None:
                    unusable(
                        f"No Redis database the tests may wipe on {REDIS[0]}:{REDIS[1]} (each "
                        f"of {','.join(map(str, dbs))} holds other data): set TEST_REDIS_URL"
                    )
                else:
                    print(f"export TEST_REDIS_URL={shlex.quote(found)}")
                    redis_dbs = tuple(db for db in dbs if not found.endswith(f"/{db}"))
        if picked_database and redis_dbs is not None:
            for line in _workers(picked_database, redis_dbs):
                print(line)
    except Refused as refused:
        print(refused, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
