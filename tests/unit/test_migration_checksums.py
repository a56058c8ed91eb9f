"""A committed migration is never edited: databases out there already ran it as it was.

storage/migrations/versions/CHECKSUMS holds the SHA-256 of every revision file, in the format
of `sha256sum` (so `cd storage/migrations/versions && sha256sum -c CHECKSUMS` checks it too).
A change to the schema is a NEW revision, whose line is added when it is written.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from storage.migrate import MIGRATIONS

VERSIONS = MIGRATIONS / "versions"
CHECKSUMS = VERSIONS / "CHECKSUMS"
LINE = re.compile(r"([0-9a-f]{64}) [ *](\S.*)")  # text mode «  name», binary « *name»
ADD_LINE = (
    "add its line to storage/migrations/versions/CHECKSUMS: "
    "`cd storage/migrations/versions && sha256sum {name} >> CHECKSUMS`"
)


def recorded(text: str) -> dict[str, str]:
    """File name → hex digest, from `sha256sum` lines."""
    sums: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        match = LINE.fullmatch(line)
        assert match, f"CHECKSUMS line {number} is not `sha256sum` output: {line!r}"
        digest, name = match.groups()
        assert name not in sums, f"CHECKSUMS lists {name} twice"
        sums[name] = digest
    return sums


def revision_files() -> list[Path]:
    return sorted(VERSIONS.glob("*.py"))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_revision_file_is_recorded() -> None:
    sums = recorded(CHECKSUMS.read_text("utf-8"))
    new = [path.name for path in revision_files() if path.name not in sums]
    assert not new, "a new revision: " + "; ".join(ADD_LINE.format(name=name) for name in new)


def test_every_recorded_revision_exists() -> None:
    sums = recorded(CHECKSUMS.read_text("utf-8"))
    names = {path.name for path in revision_files()}
    gone = sorted(set(sums) - names)
    assert not gone, (
        f"{gone} are recorded but missing: a committed revision is never removed or renamed "
        "(databases already carry its id)"
    )


@pytest.mark.parametrize("path", revision_files(), ids=lambda path: path.name)
def test_committed_revision_is_unchanged(path: Path) -> None:
    sums = recorded(CHECKSUMS.read_text("utf-8"))
    if path.name not in sums:
        pytest.fail("a new revision: " + ADD_LINE.format(name=path.name))
    assert sha256(path) == sums[path.name], (
        f"{path.name} differs from the revision as it was committed: databases already ran "
        "it, so put the change in a NEW revision and restore this file (`git diff` shows "
        "what changed). Only a revision not yet committed anywhere may have its CHECKSUMS "
        "line rewritten."
    )


def test_the_guard_sees_an_edit(tmp_path: Path) -> None:
    """One changed byte changes the digest, and `recorded` reads sha256sum's own output."""
    original = revision_files()[0]
    copy = tmp_path / original.name
    copy.write_bytes(original.read_bytes() + b"\n")
    sums = recorded(CHECKSUMS.read_text("utf-8"))
    assert sha256(original) == sums[original.name]
    assert sha256(copy) != sums[original.name]


def test_recorded_reads_sha256sum_lines() -> None:
    assert recorded(f"{'a' * 64}  0001_x.py\n{'b' * 64} *0002_y.py\n") == {
        "0001_x.py": "a" * 64,
        "0002_y.py": "b" * 64,
    }
