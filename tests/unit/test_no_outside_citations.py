"""Nothing in the repository cites a file outside it: a reader of the checkout has only the
checkout. A fact is credited to its source in words (the Bot API's rule, GOST R 56042-2014,
Minfin order 107н…), never to a path on the machine it was written on."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
THIS = Path(__file__).resolve()
# Split so that this file does not hold them whole (it is skipped anyway).
OUTSIDE = ("REFERENCE" + ".md", "DESIGN" + ".md", "../" + "shared", "/" + "work/")
TREES = ("bot", "handlers", "domain", "storage", "city", "locales", "sandbox", "tests", "docs")
SINGLE = ("README.md", "Makefile", "pyproject.toml", "alembic.ini")
SKIPPED_PARTS = {"__pycache__", ".hypothesis", ".mypy_cache", ".ruff_cache"}


def repository_files() -> set[Path]:
    """Tracked files (git ls-files) and every file under the source trees, tracked or new."""
    files: set[Path] = set()
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
        ).stdout
        files |= {ROOT / name for name in listed.decode().split("\0") if name}
    except (OSError, subprocess.CalledProcessError):
        pass  # not a git checkout (an unpacked source tree): the walk below still covers it
    for tree in TREES:
        files |= {p for p in (ROOT / tree).rglob("*") if p.is_file()}
    files |= {ROOT / name for name in SINGLE}
    return {p for p in files if p.is_file() and not SKIPPED_PARTS & set(p.parts)}


def cited_lines(text: str) -> list[int]:
    """Numbers of the lines that name a file outside the repository."""
    return [
        number
        for number, line in enumerate(text.splitlines(), 1)
        if any(outside in line for outside in OUTSIDE)
    ]


def citations(path: Path) -> list[str]:
    try:
        text = path.read_text("utf-8")
    except (UnicodeDecodeError, OSError):
        return []  # a picture or other binary file
    lines = text.splitlines()
    return [f"{path.relative_to(ROOT)}:{n}: {lines[n - 1].strip()}" for n in cited_lines(text)]


def test_no_file_cites_a_file_outside_the_repository() -> None:
    files = repository_files()
    assert ROOT / "domain" / "uin.py" in files  # the walk sees the sources
    hits = [hit for path in sorted(files) if path.resolve() != THIS for hit in citations(path)]
    assert not hits, "cite the source in words, not a file outside the repository:\n" + (
        "\n".join(hits)
    )


def test_each_kind_of_citation_is_found() -> None:
    for outside in OUTSIDE:
        text = f'clean = 1\n"""The rule (see {outside}, section 5)."""\nalso_clean = 2\n'
        assert cited_lines(text) == [2], outside
    assert cited_lines("the shared design document; Minfin order 107н\n") == []
